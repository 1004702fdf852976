//! The IP reputation store as a writable store through its actor, backed by the real core
//! `IpReputationStore`: the owner writes (single, batch, delete, clear, and bulk through the
//! intake), readers read through `get_custom` (verdicts, deny/allow checks, many addresses at
//! once, sources), batches are all-or-nothing across the actor boundary, refusals say why, and
//! the metrics move. That a reader has no write method is a compile-time property: see the
//! `compile_fail` examples in `stores::ip_reputation`.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use support::{Notes, eventually, registry, submit_and_wait};
use watchpost_actors::adapters::ip_reputation::ip_reputation_factory;
use watchpost_actors::stores::ip_reputation::{
    IpReputationOwner, IpReputationReader, IpReputationWrite,
};
use watchpost_actors::{ErrorKind, HealthStatus, Registry, StoreOptions};
use watchpost_core::ip_reputation::{
    ConflictPolicy, IpReputation, IpReputationConfig, IpReputationStore, ReputationStatus,
};
use watchpost_core::writable::{Rejection, SourceNameError};

const NAME: &str = "ip_reputation";

async fn store(config: IpReputationConfig) -> (Registry, IpReputationOwner, IpReputationReader) {
    let reg = registry().await;
    let owner = reg
        .register_writable_store(
            NAME,
            ip_reputation_factory(config, vec![("trusted_feed".into(), 10)]),
            StoreOptions::default(),
        )
        .await
        .expect("the IP reputation store registers");
    let reader = reg
        .get_custom(NAME)
        .await
        .expect("registered")
        .typed::<IpReputationStore>()
        .expect("of this type");
    (reg, owner, reader)
}

fn record(ip: &str, status: ReputationStatus, severity: u8, tags: &[&str]) -> IpReputation {
    let mut r = IpReputation::new(ip, status, severity, watchpost_actors::clock::now()).unwrap();
    for t in tags {
        r.add_tag(t).unwrap();
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_writes_and_readers_read_the_merged_verdicts() {
    let (reg, owner, reader) =
        store(IpReputationConfig::new(1000).with_policy(ConflictPolicy::MaxSeverity)).await;
    owner
        .write_reputation(
            "local_detector",
            record("203.0.113.7", ReputationStatus::Deny, 8, &["malware", "c2"]),
        )
        .await
        .unwrap();
    owner
        .write_reputation(
            "trusted_feed",
            record("203.0.113.7", ReputationStatus::Allow, 3, &["cdn"]),
        )
        .await
        .unwrap();
    owner
        .write_reputation(
            "trusted_feed",
            record("2001:db8::1", ReputationStatus::Allow, 2, &[]),
        )
        .await
        .unwrap();

    // The higher severity wins under MaxSeverity, whoever wrote last.
    let v = reader.get_reputation("203.0.113.7").await.unwrap();
    assert_eq!(v.source, "local_detector");
    assert_eq!(v.record.status, ReputationStatus::Deny);
    assert_eq!(v.record.severity, 8);
    let tags: Vec<&str> = v.record.tags.iter().map(|t| t.as_str()).collect();
    assert_eq!(tags, ["malware", "c2"]);
    // Any spelling of the address is the same address.
    let mapped = reader.get_reputation("::ffff:203.0.113.7").await.unwrap();
    assert_eq!(mapped, v);
    let parsed = reader
        .get_reputation(Ipv4Addr::new(203, 0, 113, 7))
        .await
        .unwrap();
    assert_eq!(parsed, v);
    assert_eq!(
        reader
            .get_reputation("2001:DB8:0::1")
            .await
            .unwrap()
            .priority,
        10
    );

    assert!(reader.is_denied("203.0.113.7").await.unwrap());
    assert!(!reader.is_allowed("203.0.113.7").await.unwrap());
    assert!(reader.is_allowed("2001:db8::1").await.unwrap());
    assert!(
        !reader.is_denied("198.51.100.1").await.unwrap(),
        "unknown: not denied"
    );
    let unknown = reader.get_reputation("198.51.100.1").await.unwrap_err();
    assert!(unknown.is(ErrorKind::NotFound), "{unknown}");
    let malformed = reader.get_reputation("203.0.113").await.unwrap_err();
    assert!(malformed.is(ErrorKind::InvalidArgument), "{malformed}");
    assert_eq!(malformed.operation, "get_reputation");

    let checked = reader
        .check_ips(["198.51.100.1", "203.0.113.7", "nope", "2001:db8::1"])
        .await
        .unwrap();
    assert_eq!(checked.len(), 4);
    assert!(checked[0].as_ref().unwrap_err().is(ErrorKind::NotFound));
    assert_eq!(checked[1].as_ref().unwrap().source, "local_detector");
    assert!(
        checked[2]
            .as_ref()
            .unwrap_err()
            .is(ErrorKind::InvalidArgument)
    );
    assert_eq!(checked[3].as_ref().unwrap().source, "trusted_feed");
    assert_eq!(
        reader.list_sources().await.unwrap(),
        ["local_detector", "trusted_feed"]
    );

    // Only the owner removes: the detector's verdict goes, the feed's shows through.
    assert!(owner.delete("local_detector", "203.0.113.7").await.unwrap());
    assert!(
        !owner.delete("local_detector", "203.0.113.7").await.unwrap(),
        "idempotent"
    );
    assert!(reader.is_allowed("203.0.113.7").await.unwrap());
    assert_eq!(reader.list_sources().await.unwrap(), ["trusted_feed"]);
    assert_eq!(owner.clear("trusted_feed").await.unwrap(), 2);
    assert_eq!(owner.clear("trusted_feed").await.unwrap(), 0);
    assert!(reader.list_sources().await.unwrap().is_empty());
    assert_eq!(reader.get_metrics().await.item_count, 0);

    // The typed lookup refuses another store type under this name.
    let wrong = reg.get_custom_typed::<Notes>(NAME).await.unwrap_err();
    assert!(wrong.is(ErrorKind::InvalidArgument), "{wrong}");
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_all_or_nothing_through_the_actor() {
    let (reg, owner, reader) = store(IpReputationConfig::new(4)).await;
    let ok = |ip: &str| record(ip, ReputationStatus::Deny, 5, &["scanner"]);

    let bad_severity = vec![ok("192.0.2.1"), ok("192.0.2.2"), {
        let mut r = ok("192.0.2.3");
        r.severity = 0;
        r
    }];
    let e = owner.write_batch("feed", bad_severity).await.unwrap_err();
    assert!(e.is(ErrorKind::InvalidArgument), "{e}");
    assert!(matches!(e.rejection(), Some(Rejection::Value(_))), "{e}");
    let watchpost_actors::stores::ip_reputation::ReputationWriteError::Refused(refusal) = &e else {
        panic!("a refusal, not an unavailable store: {e}")
    };
    assert_eq!(refusal.item, Some(2));
    assert_eq!(refusal.error.operation, "write_batch");

    let repeated = vec![ok("192.0.2.1"), ok("::ffff:192.0.2.1")];
    let e = owner.write_batch("feed", repeated).await.unwrap_err();
    assert_eq!(e.rejection(), Some(Rejection::DuplicateKey));
    let e = owner
        .write_batch(" feed", vec![ok("192.0.2.1")])
        .await
        .unwrap_err();
    assert_eq!(
        e.rejection(),
        Some(Rejection::Source(SourceNameError::SurroundingWhitespace))
    );
    for ip in ["192.0.2.1", "192.0.2.2"] {
        assert!(
            reader
                .get_reputation(ip)
                .await
                .is_err_and(|e| e.is(ErrorKind::NotFound)),
            "nothing of a refused batch was written ({ip})"
        );
    }

    owner
        .write_batch(
            "feed",
            vec![ok("192.0.2.1"), ok("192.0.2.2"), ok("192.0.2.3")],
        )
        .await
        .unwrap();
    // One slot left: two new addresses do not fit, so neither is written.
    let e = owner
        .write_batch("other", vec![ok("192.0.2.8"), ok("192.0.2.9")])
        .await
        .unwrap_err();
    assert_eq!(e.rejection(), Some(Rejection::EntriesFull));
    assert!(reader.get_reputation("192.0.2.8").await.is_err());
    assert_eq!(reader.get_metrics().await.item_count, 3);
    // Replacing what a source already holds needs no room.
    owner
        .write_batch("feed", vec![ok("192.0.2.1"), ok("192.0.2.4")])
        .await
        .unwrap();
    let m = reader.get_metrics().await;
    assert_eq!(m.item_count, 4);
    let health = reader.get_health().await;
    assert_eq!(health.status, HealthStatus::Healthy);
    assert!(
        health.message.contains("full"),
        "{:?}",
        health.message.as_str()
    );
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_every_request() {
    let (reg, owner, reader) = store(IpReputationConfig::new(100)).await;
    let start = reader.get_metrics().await;
    assert_eq!((start.success_count, start.error_count), (0, 0));
    owner
        .write_reputation("feed", record("192.0.2.1", ReputationStatus::Deny, 5, &[]))
        .await
        .unwrap();
    owner
        .write_reputation("", record("192.0.2.2", ReputationStatus::Deny, 5, &[]))
        .await
        .unwrap_err();
    reader.get_reputation("192.0.2.1").await.unwrap(); // hit
    reader.get_reputation("192.0.2.9").await.unwrap_err(); // miss
    reader.is_denied("192.0.2.1").await.unwrap(); // hit
    reader.get_reputation("not an ip").await.unwrap_err(); // error
    reader.check_ips(["192.0.2.1", "192.0.2.9"]).await.unwrap(); // hit + miss
    reader.list_sources().await.unwrap(); // success
    let m = reader.get_metrics().await;
    assert_eq!(m.cache_hits, 3, "{m:?}");
    assert_eq!(m.cache_misses, 2, "{m:?}");
    // 1 write + 5 lookups + 1 list; errors: the bad source, the bad address.
    assert_eq!(m.success_count, 7, "{m:?}");
    assert_eq!(m.error_count, 2, "{m:?}");
    assert_eq!(m.item_count, 1);
    assert!(m.last_access >= start.last_access && m.last_access > 0);
    // The registry reports the same store.
    assert_eq!(reg.metrics(NAME).await.unwrap().cache_hits, 3);
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_feeds_bulk_writes_through_the_intake() {
    let (reg, owner, reader) = store(IpReputationConfig::new(10_000)).await;
    let records: Vec<IpReputation> = (0..2000u32)
        .map(|i| {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            IpReputation::new(&ip, ReputationStatus::Suspicious, 4, 1).unwrap()
        })
        .collect();
    let batch = vec![
        IpReputationWrite::WriteBatch {
            source: "bulk_feed".into(),
            records,
        },
        IpReputationWrite::Clear {
            source: "bad\nname".into(),
        },
    ];
    submit_and_wait(&*owner, owner.intake(), batch).await;
    let s = owner.supervision();
    assert_eq!(
        (s.intake_applied_updates, s.intake_rejected_updates),
        (1, 1)
    );
    assert_eq!(reader.get_metrics().await.item_count, 2000);
    assert!(
        reader
            .get_reputation("10.0.7.207")
            .await
            .is_ok_and(|v| v.source == "bulk_feed")
    );
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_the_store_is_rebuilt_empty_and_handles_keep_working() {
    let (reg, owner, reader) = store(IpReputationConfig::new(100)).await;
    owner
        .write_reputation("feed", record("192.0.2.1", ReputationStatus::Deny, 5, &[]))
        .await
        .unwrap();
    assert!(owner.inject_panic());
    assert!(
        eventually(Duration::from_secs(30), || async {
            owner.supervision().restarts == 1 && reader.is_running()
        })
        .await,
        "restarted"
    );
    let gone = reader.get_reputation("192.0.2.1").await.unwrap_err();
    assert!(gone.is(ErrorKind::NotFound), "rebuilt empty: {gone}");
    owner
        .write_reputation("feed", record("192.0.2.1", ReputationStatus::Deny, 5, &[]))
        .await
        .unwrap();
    assert!(reader.is_denied("192.0.2.1").await.unwrap());
    reg.shutdown().await;
}

/// `apply_feed` is all or nothing across chunks: a full set larger than the store's batch limit
/// is applied in one message; one that does not fit (or repeats an address across chunks) leaves
/// the source exactly as it was; an update removes and writes; other sources are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_feed_is_all_or_nothing_across_chunks() {
    let mut config = IpReputationConfig::new(40);
    config.max_batch = 8;
    let (reg, owner, reader) = store(config).await;
    let ip = |n: u32| format!("10.0.0.{n}");
    let set = |from: u32, to: u32, severity: u8| -> Vec<IpReputation> {
        (from..to)
            .map(|n| record(&ip(n), ReputationStatus::Deny, severity, &["t"]))
            .collect()
    };
    owner
        .write_reputation("other", record(&ip(200), ReputationStatus::Allow, 1, &[]))
        .await
        .unwrap();
    // 20 records in chunks of 8.
    assert_eq!(
        owner
            .apply_feed("feed", true, set(0, 20, 5), vec![])
            .await
            .unwrap(),
        (0, 20)
    );
    // 45 do not fit in 40: refused, the 20 are still there as they were.
    let e = owner
        .apply_feed("feed", true, set(100, 145, 9), vec![])
        .await
        .unwrap_err();
    assert_eq!(e.rejection(), Some(Rejection::EntriesFull));
    let v = reader.get_reputation(ip(3).as_str()).await.unwrap();
    assert_eq!((v.source.as_str(), v.record.severity), ("feed", 5));
    assert!(reader.get_reputation(ip(100).as_str()).await.is_err());
    // A repeated address in different chunks: refused before anything is written.
    let mut repeated = set(50, 60, 7);
    repeated.push(record(&ip(50), ReputationStatus::Deny, 7, &[]));
    let e = owner
        .apply_feed("feed", true, repeated, vec![])
        .await
        .unwrap_err();
    assert_eq!(e.rejection(), Some(Rejection::DuplicateKey));
    assert_eq!(
        reader
            .get_reputation(ip(3).as_str())
            .await
            .unwrap()
            .record
            .severity,
        5
    );
    // An update: forget two, raise one.
    let (removed, written) = owner
        .apply_feed(
            "feed",
            false,
            set(3, 4, 9),
            vec![ip(0).parse().unwrap(), ip(1).parse().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!((removed, written), (2, 1));
    assert!(reader.get_reputation(ip(0).as_str()).await.is_err());
    assert_eq!(
        reader
            .get_reputation(ip(3).as_str())
            .await
            .unwrap()
            .record
            .severity,
        9
    );
    // A clear of "feed" (replace with nothing) leaves "other".
    assert_eq!(
        owner
            .apply_feed("feed", true, vec![], vec![])
            .await
            .unwrap(),
        (18, 0)
    );
    assert_eq!(reader.list_sources().await.unwrap(), ["other"]);
    reg.shutdown().await;
}
