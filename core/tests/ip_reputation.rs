//! The IP reputation store against its contract: sourced writes and merged reads, all-or-nothing
//! batches, the three conflict policies with their tie-breaks (independent of write order), address
//! normalisation, bounded memory with reject-when-full, metrics and stats.

mod support;

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::string::{String, ToString};
use std::vec::Vec;

use proptest::prelude::*;
use watchpost_core::ErrorKind;
use watchpost_core::ip_reputation::{
    ConflictPolicy, Contender, IpReputation, IpReputationConfig, IpReputationStore,
    ReputationStatus, parse_ip,
};
use watchpost_core::writable::{
    ReadOnly, Rejection, SourceNameError, WritableStore, WritableStoreRead,
};

const NOW: u64 = 1_700_000_000_000_000_000;

fn store_with(config: IpReputationConfig, priorities: &[(&str, i32)]) -> IpReputationStore {
    IpReputationStore::new(config, priorities).unwrap()
}

fn store(capacity: usize) -> IpReputationStore {
    store_with(IpReputationConfig::new(capacity), &[])
}

fn rep(ip: &str, status: ReputationStatus, severity: u8, last_updated: u64) -> IpReputation {
    IpReputation::new(ip, status, severity, last_updated).unwrap()
}

fn deny(ip: &str, severity: u8) -> IpReputation {
    rep(ip, ReputationStatus::Deny, severity, NOW)
}

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n))
}

/// Source and severity of the merged answer for `ip`.
fn winner(s: &mut IpReputationStore, ip: &str) -> (String, u8) {
    let v = s.get_reputation(ip, NOW).unwrap();
    (v.source().to_string(), v.severity())
}

#[test]
fn write_then_read_back() {
    let mut s = store(16);
    let mut r = rep("1.2.3.4", ReputationStatus::Deny, 8, NOW - 5);
    r.add_tag("malware").unwrap();
    r.add_tag("botnet").unwrap();
    r.set_metadata("info", "test").unwrap();
    s.write("test_source", &r, NOW).unwrap();

    let v = s.get_reputation("1.2.3.4", NOW).unwrap();
    assert_eq!(v.ip(), IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)));
    assert_eq!(v.status(), ReputationStatus::Deny);
    assert_eq!(v.severity(), 8);
    assert_eq!(v.last_updated(), NOW - 5);
    assert_eq!(v.source(), "test_source");
    assert_eq!(v.tags().collect::<Vec<_>>(), ["malware", "botnet"]);
    assert_eq!(v.metadata().collect::<Vec<_>>(), [("info", "test")]);
    assert_eq!(v.metadata_value("info"), Some("test"));
    assert_eq!(v.metadata_value("other"), None);
    assert_eq!(v.to_record(), r);
    assert_eq!(s.len(), 1);

    let e = s.get_reputation("5.6.7.8", NOW).unwrap_err();
    assert!(e.is(ErrorKind::NotFound));
    assert_eq!(e.operation, "get_reputation");
}

#[test]
fn rewriting_replaces_the_sources_verdict() {
    let mut s = store(4);
    let mut r = deny("1.2.3.4", 8);
    r.add_tag("old").unwrap();
    s.write("feed", &r, NOW).unwrap();
    let mut r2 = rep("1.2.3.4", ReputationStatus::Allow, 2, NOW + 1);
    r2.add_tag("new").unwrap();
    s.write("feed", &r2, NOW).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s.get_reputation("1.2.3.4", NOW).unwrap().to_record(), r2);
    assert_eq!(s.stats().entries_replaced, 1);
    // The replaced tag was given back: only "new" is held.
    assert_eq!(s.strings_used(), (1, 3));
}

#[test]
fn is_denied_and_is_allowed() {
    let mut s = store(16);
    s.write("source1", &deny("1.2.3.4", 9), NOW).unwrap();
    s.write(
        "source1",
        &rep("5.6.7.8", ReputationStatus::Allow, 1, NOW),
        NOW,
    )
    .unwrap();
    s.write(
        "source1",
        &rep("9.9.9.9", ReputationStatus::Suspicious, 5, NOW),
        NOW,
    )
    .unwrap();
    assert_eq!(s.is_denied("1.2.3.4", NOW), Ok(true));
    assert_eq!(s.is_allowed("1.2.3.4", NOW), Ok(false));
    assert_eq!(s.is_allowed("5.6.7.8", NOW), Ok(true));
    assert_eq!(s.is_denied("5.6.7.8", NOW), Ok(false));
    assert_eq!(s.is_denied("9.9.9.9", NOW), Ok(false));
    assert_eq!(s.is_allowed("9.9.9.9", NOW), Ok(false));
    // Unknown: neither, and not an error.
    assert_eq!(s.is_denied("4.4.4.4", NOW), Ok(false));
    assert_eq!(s.is_allowed("4.4.4.4", NOW), Ok(false));
    // Typed addresses work too.
    assert_eq!(s.is_denied(&Ipv4Addr::new(1, 2, 3, 4), NOW), Ok(true));
    let e = s.is_denied("not-an-ip", NOW).unwrap_err();
    assert!(e.is(ErrorKind::InvalidArgument));
    assert_eq!(e.operation, "is_denied");
}

#[test]
fn batch_success() {
    let mut s = store(16);
    let batch = [
        deny("1.2.3.4", 8),
        rep("5.6.7.8", ReputationStatus::Allow, 1, NOW),
        rep("2001:db8::1", ReputationStatus::Suspicious, 4, NOW),
    ];
    s.write_batch("source1", &batch, NOW).unwrap();
    assert_eq!(s.len(), 3);
    for r in &batch {
        assert_eq!(s.get_reputation(&r.ip, NOW).unwrap().to_record(), *r);
    }
    assert_eq!(s.stats().batches_written, 1);
    assert_eq!(s.stats().entries_written, 3);
    // An empty batch is a no-op that succeeds and creates no source.
    s.write_batch("empty", &[], NOW).unwrap();
    assert_eq!(s.list_sources(NOW).collect::<Vec<_>>(), ["source1"]);
}

#[test]
fn batch_with_one_invalid_record_writes_nothing() {
    let mut s = store(16);
    s.write("source1", &deny("9.9.9.9", 3), NOW).unwrap();
    let before = s.get_reputation("9.9.9.9", NOW).unwrap().to_record();

    let mut bad_tag = deny("7.7.7.7", 5);
    bad_tag.add_tag("bad\ttag").unwrap();
    for (bad_at, bad) in [(1usize, deny("5.6.7.8", 0)), (2, bad_tag)] {
        let mut batch = vec![
            deny("1.2.3.4", 8),
            rep("9.9.9.9", ReputationStatus::Allow, 1, NOW + 1),
            deny("3.3.3.3", 2),
        ];
        batch.insert(bad_at, bad);
        let e = s.write_batch("source1", &batch, NOW).unwrap_err();
        assert!(e.is(ErrorKind::InvalidArgument));
        assert!(matches!(e.rejection, Rejection::Value(_)), "{e}");
        assert_eq!(e.item, Some(bad_at));
        assert_eq!(e.error.operation, "write_batch");
        // Nothing written, nothing replaced.
        assert_eq!(s.len(), 1);
        assert!(s.get_reputation("1.2.3.4", NOW).is_err());
        assert!(s.get_reputation("3.3.3.3", NOW).is_err());
        assert_eq!(
            s.get_reputation("9.9.9.9", NOW).unwrap().to_record(),
            before
        );
    }
    assert_eq!(s.stats().rejected_invalid, 2);
    assert_eq!(s.stats().records_rejected, 8);
    assert_eq!(s.strings_used(), (0, 0), "no string reference leaked");
}

#[test]
fn batch_repeating_an_address_writes_nothing() {
    let mut s = store(16);
    let batch = [
        deny("1.2.3.4", 8),
        deny("5.5.5.5", 8),
        rep("::ffff:1.2.3.4", ReputationStatus::Allow, 1, NOW),
    ];
    let e = s.write_batch("feed", &batch, NOW).unwrap_err();
    assert_eq!(e.rejection, Rejection::DuplicateKey);
    assert_eq!(e.item, Some(2));
    assert!(s.is_empty());
    // The scratch index was left clean: the same addresses in separate batches are fine.
    s.write_batch("feed", &batch[..2], NOW).unwrap();
    s.write_batch("feed", &batch[2..], NOW).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s.is_allowed("1.2.3.4", NOW), Ok(true));
}

#[test]
fn batch_exceeding_capacity_writes_nothing() {
    let mut s = store(10);
    let first: Vec<_> = (0..8).map(|i| deny(&format!("10.0.0.{i}"), 5)).collect();
    s.write_batch("feed", &first, NOW).unwrap();

    // 3 new addresses, 2 free slots: refused whole.
    let over: Vec<_> = (8..11).map(|i| deny(&format!("10.0.0.{i}"), 6)).collect();
    let e = s.write_batch("feed", &over, NOW).unwrap_err();
    assert_eq!(e.rejection, Rejection::EntriesFull);
    assert!(e.rejection.is_capacity());
    assert!(e.is(ErrorKind::InvalidArgument));
    assert_eq!(s.len(), 8);
    for i in 8..11 {
        assert!(
            s.get_reputation(format!("10.0.0.{i}").as_str(), NOW)
                .is_err()
        );
    }
    assert_eq!(s.stats().rejected_entries_full, 1);
    assert_eq!(s.stats().records_rejected, 3);

    // Replacements need no new slot: 6 replacements + 2 new fit exactly.
    let fits: Vec<_> = (2..10).map(|i| deny(&format!("10.0.0.{i}"), 7)).collect();
    s.write_batch("feed", &fits, NOW).unwrap();
    assert_eq!(s.len(), 10);
    assert_eq!(s.len(), s.capacity());
    // A new source's batch does not fit either, and nothing of it is written.
    let e = s.write("other", &deny("10.0.0.0", 9), NOW).unwrap_err();
    assert_eq!(e.rejection, Rejection::EntriesFull);
    assert_eq!(winner(&mut s, "10.0.0.0"), ("feed".to_string(), 5));
    assert_eq!(s.list_sources(NOW).collect::<Vec<_>>(), ["feed"]);
}

#[test]
fn batch_larger_than_max_batch_is_refused() {
    let mut config = IpReputationConfig::new(100);
    config.max_batch = 4;
    let mut s = store_with(config, &[]);
    let batch: Vec<_> = (0..5).map(|i| deny(&format!("10.0.0.{i}"), 5)).collect();
    let e = s.write_batch("feed", &batch, NOW).unwrap_err();
    assert_eq!(e.rejection, Rejection::BatchTooLarge);
    assert!(s.is_empty());
    s.write_batch("feed", &batch[..4], NOW).unwrap();
    assert_eq!(s.len(), 4);
}

#[test]
fn sources_full_is_refused() {
    let mut config = IpReputationConfig::new(100);
    config.max_sources = 2;
    let mut s = store_with(config, &[]);
    s.write("a", &deny("1.1.1.1", 1), NOW).unwrap();
    s.write("b", &deny("1.1.1.1", 1), NOW).unwrap();
    let e = s.write("c", &deny("1.1.1.1", 1), NOW).unwrap_err();
    assert_eq!(e.rejection, Rejection::SourcesFull);
    assert_eq!(s.stats().rejected_sources_full, 1);
    assert!(s.health(NOW).message.contains("sources full"));
    // Existing sources still write; clearing one frees its slot.
    s.write("a", &deny("2.2.2.2", 1), NOW).unwrap();
    assert_eq!(s.clear("b", NOW), Ok(1));
    s.write("c", &deny("1.1.1.1", 1), NOW).unwrap();
    assert_eq!(s.list_sources(NOW).collect::<Vec<_>>(), ["a", "c"]);
}

#[test]
fn string_storage_full_is_refused_and_rolled_back() {
    let mut config = IpReputationConfig::new(100);
    config.max_strings = 3;
    config.max_string_bytes = 64;
    let mut s = store_with(config, &[]);
    let mut a = deny("1.1.1.1", 5);
    a.add_tag("shared").unwrap();
    a.add_tag("one").unwrap();
    s.write("feed", &a, NOW).unwrap();
    assert_eq!(s.strings_used(), (2, 9));

    // Record 0 reuses "shared" and adds "two" (fits: 3 strings); record 1 needs "three": no room.
    let mut b = deny("2.2.2.2", 5);
    b.add_tag("shared").unwrap();
    b.add_tag("two").unwrap();
    let mut c = deny("3.3.3.3", 5);
    c.add_tag("three").unwrap();
    let e = s.write_batch("feed", &[b.clone(), c], NOW).unwrap_err();
    assert_eq!(e.rejection, Rejection::StringsFull);
    assert_eq!(e.item, Some(1));
    assert_eq!(s.len(), 1);
    assert_eq!(
        s.strings_used(),
        (2, 9),
        "references taken for record 0 were given back"
    );
    assert_eq!(s.stats().rejected_strings_full, 1);

    s.write("feed", &b, NOW).unwrap();
    assert_eq!(s.strings_used(), (3, 12));
    // Deleting gives the strings back.
    assert_eq!(s.delete("feed", "1.1.1.1", NOW), Ok(true));
    assert_eq!(s.strings_used(), (2, 9));
    assert_eq!(
        s.get_reputation("2.2.2.2", NOW)
            .unwrap()
            .tags()
            .collect::<Vec<_>>(),
        ["shared", "two"]
    );
}

#[test]
fn last_write_wins_and_its_tie_breaks() {
    let mut s = store_with(
        IpReputationConfig::new(16).with_policy(ConflictPolicy::LastWriteWins),
        &[("trusted", 5)],
    );
    s.write(
        "source1",
        &rep("1.2.3.4", ReputationStatus::Deny, 5, NOW - 3600),
        NOW,
    )
    .unwrap();
    s.write(
        "source2",
        &rep("1.2.3.4", ReputationStatus::Allow, 2, NOW),
        NOW,
    )
    .unwrap();
    assert_eq!(winner(&mut s, "1.2.3.4"), ("source2".to_string(), 2));
    // Writing an older verdict later does not win: the record's time counts, not arrival.
    s.write(
        "source3",
        &rep("1.2.3.4", ReputationStatus::Deny, 9, NOW - 1),
        NOW,
    )
    .unwrap();
    assert_eq!(winner(&mut s, "1.2.3.4"), ("source2".to_string(), 2));
    // Equal timestamps: higher priority wins...
    s.write(
        "trusted",
        &rep("1.2.3.4", ReputationStatus::Deny, 7, NOW),
        NOW,
    )
    .unwrap();
    assert_eq!(winner(&mut s, "1.2.3.4"), ("trusted".to_string(), 7));
    // ...and at equal priority, the smaller source name.
    s.write("zeta", &rep("5.5.5.5", ReputationStatus::Deny, 1, NOW), NOW)
        .unwrap();
    s.write(
        "alpha",
        &rep("5.5.5.5", ReputationStatus::Allow, 1, NOW),
        NOW,
    )
    .unwrap();
    s.write("beta", &rep("5.5.5.5", ReputationStatus::Deny, 9, NOW), NOW)
        .unwrap();
    assert_eq!(winner(&mut s, "5.5.5.5"), ("alpha".to_string(), 1));
    assert_eq!(s.stats().conflicts_resolved, 4);
}

#[test]
fn max_severity_and_its_tie_breaks() {
    let mut s = store_with(
        IpReputationConfig::new(16).with_policy(ConflictPolicy::MaxSeverity),
        &[("trusted", 5)],
    );
    s.write(
        "source1",
        &rep("1.2.3.4", ReputationStatus::Suspicious, 3, NOW),
        NOW,
    )
    .unwrap();
    s.write(
        "source2",
        &rep("1.2.3.4", ReputationStatus::Deny, 9, NOW - 3600),
        NOW,
    )
    .unwrap();
    assert_eq!(winner(&mut s, "1.2.3.4"), ("source2".to_string(), 9));
    // Strictly higher wins: equal severity does not displace on severity; newer breaks the tie.
    s.write(
        "source3",
        &rep("1.2.3.4", ReputationStatus::Allow, 9, NOW - 7200),
        NOW,
    )
    .unwrap();
    assert_eq!(winner(&mut s, "1.2.3.4"), ("source2".to_string(), 9));
    s.write(
        "source4",
        &rep("1.2.3.4", ReputationStatus::Allow, 9, NOW - 60),
        NOW,
    )
    .unwrap();
    assert_eq!(winner(&mut s, "1.2.3.4"), ("source4".to_string(), 9));
    // Equal severity and time: priority, then the smaller name.
    s.write(
        "trusted",
        &rep("1.2.3.4", ReputationStatus::Deny, 9, NOW - 60),
        NOW,
    )
    .unwrap();
    assert_eq!(winner(&mut s, "1.2.3.4"), ("trusted".to_string(), 9));
    s.write("b", &rep("6.6.6.6", ReputationStatus::Deny, 4, NOW), NOW)
        .unwrap();
    s.write("a", &rep("6.6.6.6", ReputationStatus::Deny, 4, NOW), NOW)
        .unwrap();
    assert_eq!(winner(&mut s, "6.6.6.6"), ("a".to_string(), 4));
}

#[test]
fn source_priority_and_its_tie_breaks() {
    let mut s = store_with(
        IpReputationConfig::new(16).with_policy(ConflictPolicy::SourcePriority),
        &[
            ("high_priority", 10),
            ("low_priority", 1),
            ("distrusted", -1),
        ],
    );
    assert_eq!(s.priority("high_priority"), 10);
    assert_eq!(s.priority("unlisted"), 0);
    s.write(
        "low_priority",
        &rep("1.2.3.4", ReputationStatus::Deny, 9, NOW),
        NOW,
    )
    .unwrap();
    s.write(
        "high_priority",
        &rep("1.2.3.4", ReputationStatus::Allow, 2, NOW - 3600),
        NOW,
    )
    .unwrap();
    let v = s.get_reputation("1.2.3.4", NOW).unwrap();
    assert_eq!(v.source(), "high_priority");
    assert_eq!(v.priority(), 10);
    assert_eq!(v.status(), ReputationStatus::Allow);
    // An unlisted source has priority 0: above a negative one, below a listed positive one.
    s.write(
        "distrusted",
        &rep("2.2.2.2", ReputationStatus::Allow, 1, NOW),
        NOW,
    )
    .unwrap();
    s.write(
        "unlisted",
        &rep("2.2.2.2", ReputationStatus::Deny, 1, NOW - 10),
        NOW,
    )
    .unwrap();
    assert_eq!(winner(&mut s, "2.2.2.2"), ("unlisted".to_string(), 1));
    s.write(
        "low_priority",
        &rep("2.2.2.2", ReputationStatus::Deny, 3, NOW - 99),
        NOW,
    )
    .unwrap();
    assert_eq!(winner(&mut s, "2.2.2.2"), ("low_priority".to_string(), 3));
    // Equal priority: newer wins, then the smaller name.
    s.write(
        "u2",
        &rep("3.3.3.3", ReputationStatus::Deny, 1, NOW - 1),
        NOW,
    )
    .unwrap();
    s.write("u3", &rep("3.3.3.3", ReputationStatus::Deny, 2, NOW), NOW)
        .unwrap();
    assert_eq!(winner(&mut s, "3.3.3.3"), ("u3".to_string(), 2));
    s.write("u1", &rep("3.3.3.3", ReputationStatus::Deny, 3, NOW), NOW)
        .unwrap();
    assert_eq!(winner(&mut s, "3.3.3.3"), ("u1".to_string(), 3));
}

/// One source's verdict in the permutation property.
#[derive(Debug, Clone)]
struct Verdict {
    source: String,
    priority: i32,
    severity: u8,
    last_updated: u64,
}

fn verdicts() -> impl Strategy<Value = Vec<Verdict>> {
    // Narrow ranges so that ties on every criterion are common.
    proptest::collection::btree_map("[a-e]{1,2}", (-1i32..2, 1u8..4, 0u64..3), 1..8).prop_map(|m| {
        m.into_iter()
            .map(|(source, (priority, severity, t))| Verdict {
                source,
                priority,
                severity,
                last_updated: NOW + t,
            })
            .collect()
    })
}

fn policy() -> impl Strategy<Value = ConflictPolicy> {
    prop_oneof![
        Just(ConflictPolicy::LastWriteWins),
        Just(ConflictPolicy::MaxSeverity),
        Just(ConflictPolicy::SourcePriority),
    ]
}

fn contender(v: &Verdict) -> Contender<'_> {
    Contender {
        source: v.source.as_str(),
        priority: v.priority,
        severity: v.severity,
        last_updated: v.last_updated,
    }
}

/// The answer written in `order`; priorities configured from the verdicts.
fn answer(policy: ConflictPolicy, verdicts: &[Verdict], order: &[usize]) -> (String, u8) {
    let priorities: Vec<(&str, i32)> = verdicts
        .iter()
        .map(|v| (v.source.as_str(), v.priority))
        .collect();
    let mut s = store_with(IpReputationConfig::new(32).with_policy(policy), &priorities);
    for &i in order {
        let v = &verdicts[i];
        let r = rep(
            "203.0.113.7",
            ReputationStatus::Deny,
            v.severity,
            v.last_updated,
        );
        s.write(&v.source, &r, NOW).unwrap();
    }
    winner(&mut s, "203.0.113.7")
}

proptest! {
    /// The merged answer does not depend on the order in which sources wrote, and is the maximum
    /// of the documented total order.
    #[test]
    fn answer_is_independent_of_write_order(
        (verdicts, order) in verdicts().prop_flat_map(|v| {
            let n = v.len();
            (Just(v), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
        }),
        policy in policy(),
    ) {
        let in_order: Vec<usize> = (0..verdicts.len()).collect();
        let reversed: Vec<usize> = in_order.iter().rev().copied().collect();
        let expected = answer(policy, &verdicts, &in_order);
        prop_assert_eq!(&answer(policy, &verdicts, &order), &expected);
        prop_assert_eq!(&answer(policy, &verdicts, &reversed), &expected);
        let best = verdicts
            .iter()
            .max_by(|a, b| policy.compare(&contender(a), &contender(b)))
            .unwrap();
        prop_assert_eq!(expected, (best.source.clone(), best.severity));
    }
}

#[test]
fn delete_is_idempotent() {
    let mut s = store(16);
    s.write("source1", &deny("1.2.3.4", 8), NOW).unwrap();
    s.write("source2", &deny("1.2.3.4", 3), NOW).unwrap();
    assert_eq!(s.delete("source1", "1.2.3.4", NOW), Ok(true));
    assert_eq!(s.delete("source1", "1.2.3.4", NOW), Ok(false));
    assert_eq!(s.delete("never_wrote", "1.2.3.4", NOW), Ok(false));
    assert_eq!(s.delete("source2", "9.9.9.9", NOW), Ok(false));
    // source2's verdict remains.
    assert_eq!(winner(&mut s, "1.2.3.4"), ("source2".to_string(), 3));
    assert_eq!(
        s.delete("source2", &Ipv4Addr::new(1, 2, 3, 4), NOW),
        Ok(true)
    );
    assert!(s.get_reputation("1.2.3.4", NOW).is_err());
    assert!(s.is_empty());
    assert_eq!(s.list_sources(NOW).count(), 0);
    assert_eq!(s.stats().entries_deleted, 2);
    let e = s.delete("source1", "1.2.3.", NOW).unwrap_err();
    assert_eq!(e.rejection, Rejection::Key);
}

#[test]
fn clear_removes_one_source_only() {
    let mut s = store(16);
    for i in 1..=5 {
        s.write("source1", &deny(&format!("1.2.3.{i}"), i), NOW)
            .unwrap();
    }
    s.write("source2", &deny("5.6.7.8", 9), NOW).unwrap();
    s.write("source2", &deny("1.2.3.1", 9), NOW).unwrap();
    assert_eq!(s.clear("source1", NOW), Ok(5));
    for i in 2..=5 {
        assert!(
            s.get_reputation(format!("1.2.3.{i}").as_str(), NOW)
                .is_err()
        );
    }
    assert_eq!(winner(&mut s, "1.2.3.1"), ("source2".to_string(), 9));
    assert_eq!(winner(&mut s, "5.6.7.8"), ("source2".to_string(), 9));
    assert_eq!(s.len(), 2);
    assert_eq!(s.list_sources(NOW).collect::<Vec<_>>(), ["source2"]);
    // Idempotent.
    assert_eq!(s.clear("source1", NOW), Ok(0));
    assert_eq!(s.clear("nobody", NOW), Ok(0));
    assert_eq!(s.stats().entries_cleared, 5);
    // The freed slots are reusable.
    let refill: Vec<_> = (0..14).map(|i| deny(&format!("10.0.1.{i}"), 1)).collect();
    s.write_batch("source3", &refill, NOW).unwrap();
    assert_eq!(s.len(), s.capacity());
}

#[test]
fn list_sources_in_name_order() {
    let mut s = store(16);
    for source in ["source3", "source1", "Zed", "source2", "a b"] {
        s.write(source, &deny("1.2.3.4", 8), NOW).unwrap();
    }
    assert_eq!(
        s.list_sources(NOW).collect::<Vec<_>>(),
        ["Zed", "a b", "source1", "source2", "source3"]
    );
    assert_eq!(s.list_sources(NOW).len(), 5);
    assert_eq!(s.source_count(), 5);
}

#[test]
fn invalid_severity_is_refused() {
    let mut s = store(16);
    for severity in [0u8, 11, 255] {
        let e = s
            .write("source1", &deny("1.2.3.4", severity), NOW)
            .unwrap_err();
        assert!(e.is(ErrorKind::InvalidArgument), "severity {severity}");
        assert_eq!(e.rejection, Rejection::Value("severity must be 1..=10"));
        assert_eq!(e.error.operation, "write");
    }
    assert!(s.is_empty());
    assert_eq!(s.list_sources(NOW).count(), 0);
    for severity in [1u8, 5, 10] {
        s.write("source1", &deny("1.2.3.4", severity), NOW).unwrap();
    }
    assert_eq!(s.metrics().error_count, 3);
}

#[test]
fn invalid_addresses_are_refused() {
    let mut s = store(16);
    s.write("feed", &deny("1.2.3.4", 5), NOW).unwrap();
    for bad in [
        "",
        "1.2.3",
        "999.1.1.1",
        "1.2.3.4 ",
        "fe80::1%eth0",
        "evil.example",
        "::ffff:1.2.3.4.5",
    ] {
        assert!(
            IpReputation::new(bad, ReputationStatus::Deny, 5, NOW).is_err(),
            "{bad:?}"
        );
        let e = s.get_reputation(bad, NOW).unwrap_err();
        assert!(e.is(ErrorKind::InvalidArgument), "{bad:?}");
        assert!(
            s.is_allowed(bad, NOW)
                .unwrap_err()
                .is(ErrorKind::InvalidArgument)
        );
        let e = s.delete("feed", bad, NOW).unwrap_err();
        assert!(e.is(ErrorKind::InvalidArgument));
    }
    assert_eq!(s.len(), 1);
}

#[test]
fn addresses_are_normalised() {
    let mut s = store(16);
    s.write("feed", &deny("::ffff:1.2.3.4", 5), NOW).unwrap();
    let v = s.get_reputation("1.2.3.4", NOW).unwrap();
    assert_eq!(v.ip(), IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)));
    assert_eq!(s.is_denied("::FFFF:1.2.3.4", NOW), Ok(true));
    let mapped = Ipv4Addr::new(1, 2, 3, 4).to_ipv6_mapped();
    assert_eq!(s.is_denied(&mapped, NOW), Ok(true));
    assert_eq!(s.is_denied(&IpAddr::V6(mapped), NOW), Ok(true));
    // The same source writing the other spelling replaces, not duplicates.
    s.write("feed", &deny("1.2.3.4", 7), NOW).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(winner(&mut s, "::ffff:1.2.3.4"), ("feed".to_string(), 7));
    // A record built from a mapped address directly is normalised on write.
    let mut raw = deny("5.5.5.5", 2);
    raw.ip = IpAddr::V6(Ipv4Addr::new(8, 8, 4, 4).to_ipv6_mapped());
    s.write("feed", &raw, NOW).unwrap();
    assert_eq!(
        s.get_reputation("8.8.4.4", NOW).unwrap().ip(),
        parse_ip("8.8.4.4").unwrap()
    );

    s.write("feed", &deny("2001:DB8::1", 4), NOW).unwrap();
    assert_eq!(s.is_denied("2001:db8::1", NOW), Ok(true));
    assert_eq!(s.is_denied("2001:0db8:0000::0001", NOW), Ok(true));
    let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    assert_eq!(s.get_reputation(&v6, NOW).unwrap().ip(), IpAddr::V6(v6));
    // An IPv4-compatible address (::1.2.3.4) is a different, IPv6 address.
    assert!(s.get_reputation("::1.2.3.4", NOW).is_err());
}

#[test]
fn invalid_source_names_are_refused() {
    let mut s = store(16);
    let long = "s".repeat(65);
    let cases: [(&str, SourceNameError); 6] = [
        ("", SourceNameError::Empty),
        (" feed", SourceNameError::SurroundingWhitespace),
        ("feed ", SourceNameError::SurroundingWhitespace),
        ("fe\ned", SourceNameError::NotPrintable),
        ("fééd", SourceNameError::NotPrintable),
        (&long, SourceNameError::TooLong),
    ];
    for (name, why) in cases {
        let e = s.write(name, &deny("1.2.3.4", 5), NOW).unwrap_err();
        assert_eq!(e.rejection, Rejection::Source(why), "{name:?}");
        assert!(e.is(ErrorKind::InvalidArgument));
        let e = s.write_batch(name, &[deny("1.2.3.4", 5)], NOW).unwrap_err();
        assert_eq!(e.rejection, Rejection::Source(why));
        assert_eq!(
            s.delete(name, "1.2.3.4", NOW).unwrap_err().rejection,
            Rejection::Source(why)
        );
        assert_eq!(
            s.clear(name, NOW).unwrap_err().rejection,
            Rejection::Source(why)
        );
    }
    assert!(s.is_empty());
    s.write(&"s".repeat(64), &deny("1.2.3.4", 5), NOW).unwrap();
    // Priorities must name valid, distinct sources too.
    assert!(IpReputationStore::new(IpReputationConfig::new(4), &[(" x", 1)]).is_err());
    assert!(IpReputationStore::new(IpReputationConfig::new(4), &[("x", 1), ("x", 2)]).is_err());
    assert!(IpReputationStore::new(IpReputationConfig::new(0), &[]).is_err());
}

#[test]
fn check_ips_answers_each_in_order() {
    let mut s = store(16);
    for ip in ["1.2.3.1", "1.2.3.2", "1.2.3.3"] {
        s.write("source1", &deny(ip, 8), NOW).unwrap();
    }
    let query = [
        "1.2.3.1",
        "1.2.3.2",
        "1.2.3.99",
        "garbage",
        "::ffff:1.2.3.3",
    ];
    let answers: Vec<(String, Result<u8, ErrorKind>)> = s
        .check_ips(&query, NOW)
        .map(|(ip, a)| (ip.to_string(), a.map(|v| v.severity()).map_err(|e| e.kind)))
        .collect();
    assert_eq!(
        answers,
        [
            ("1.2.3.1".to_string(), Ok(8)),
            ("1.2.3.2".to_string(), Ok(8)),
            ("1.2.3.99".to_string(), Err(ErrorKind::NotFound)),
            ("garbage".to_string(), Err(ErrorKind::InvalidArgument)),
            ("::ffff:1.2.3.3".to_string(), Ok(8)),
        ]
    );
    let m = s.metrics();
    assert_eq!((m.cache_hits, m.cache_misses, m.error_count), (3, 1, 1));
    // Typed inputs, and laziness: only what is consumed is looked up.
    let typed = [v4(0x0102_0301), v4(0x0102_0302)];
    assert_eq!(s.check_ips(&typed, NOW).take(1).count(), 1);
    assert_eq!(s.metrics().cache_hits, 4);
}

#[test]
fn metrics_move() {
    let mut s = store(16);
    assert_eq!(s.metrics(), Default::default());
    s.write("feed", &deny("1.2.3.4", 8), NOW + 1).unwrap();
    s.write_batch("feed", &[deny("5.6.7.8", 8), deny("9.9.9.9", 1)], NOW + 2)
        .unwrap();
    let _ = s.write("feed", &deny("1.1.1.1", 0), NOW + 3);
    s.get_reputation("1.2.3.4", NOW + 4).unwrap();
    let _ = s.get_reputation("4.4.4.4", NOW + 5);
    let _ = s.get_reputation("x", NOW + 6);
    s.is_denied("5.6.7.8", NOW + 7).unwrap();
    s.delete("feed", "9.9.9.9", NOW + 8).unwrap();
    let _ = s.list_sources(NOW + 9);
    s.clear("nobody", NOW + 10).unwrap();
    // Time never runs backwards in the metrics.
    s.is_allowed("1.2.3.4", NOW).unwrap();
    let m = s.metrics();
    assert_eq!(m.item_count, 2);
    // write, batch, get hit, get miss, is_denied, delete, list, clear, is_allowed
    assert_eq!(m.success_count, 9);
    assert_eq!(m.error_count, 2);
    assert_eq!(m.cache_hits, 3);
    assert_eq!(m.cache_misses, 1);
    assert_eq!(m.last_access, NOW + 10);
    let st = s.stats();
    assert_eq!(st.entries_written, 3);
    assert_eq!(st.entries_deleted, 1);
    assert_eq!(st.batches_written, 1);
    assert_eq!(st.rejected_invalid, 1);
    assert_eq!(st.peak_entries, 3);
    assert_eq!(s.health(NOW).status, watchpost_core::HealthStatus::Healthy);
    assert!(s.health(NOW).message.is_empty());
}

#[test]
fn health_says_when_full() {
    let mut s = store(2);
    s.write("feed", &deny("1.1.1.1", 1), NOW).unwrap();
    assert!(s.health(NOW).message.is_empty());
    s.write("feed", &deny("2.2.2.2", 1), NOW).unwrap();
    let h = s.health(NOW + 1);
    assert_eq!(h.status, watchpost_core::HealthStatus::Healthy);
    assert!(h.message.contains("entries full"), "{}", h.message);
    assert_eq!(h.last_check, NOW + 1);
}

/// What a non-owner can do, written against the read-only contract only.
fn reader_finds<S: WritableStoreRead<Key = IpAddr>>(reader: &mut S, ip: IpAddr) -> bool {
    reader.get(&ip, NOW).is_ok()
}

/// What the owner can do, written against the write contract.
fn owner_writes<S: WritableStore<Record = IpReputation, Key = IpAddr>>(s: &mut S) {
    s.write("owner", &deny("1.2.3.4", 5), NOW).unwrap();
    s.write_batch("owner", &[deny("2.2.2.2", 5)], NOW).unwrap();
    assert_eq!(s.delete("owner", &v4(0x0202_0202), NOW), Ok(true));
    assert_eq!(s.delete("owner", &v4(0x0202_0202), NOW), Ok(false));
    assert_eq!(s.clear("other", NOW), Ok(0));
}

#[test]
fn the_contract_splits_owner_and_readers() {
    let mut s = store(8);
    owner_writes(&mut s);
    let mut reader = ReadOnly::new(&mut s);
    assert_eq!(reader.name(), "ip_reputation");
    assert_eq!((reader.len(), reader.capacity()), (1, 8));
    assert!(reader_finds(&mut reader, v4(0x0102_0304)));
    assert!(!reader_finds(&mut reader, v4(7)));
    assert_eq!(
        reader.get(&v4(0x0102_0304), NOW).map(|v| v.status()),
        Ok(ReputationStatus::Deny)
    );
    assert_eq!(reader.list_sources(NOW).collect::<Vec<_>>(), ["owner"]);
    assert_eq!(reader.metrics().item_count, 1);
    assert_eq!(reader.metrics().cache_hits, 2);
    assert!(reader.health(NOW).message.is_empty());
}

#[test]
fn entries_rebuild_an_equal_store() {
    let mut a = store_with(
        IpReputationConfig::new(32).with_policy(ConflictPolicy::MaxSeverity),
        &[("b", 3)],
    );
    for (source, ip, sev) in [
        ("a", "1.1.1.1", 4),
        ("b", "1.1.1.1", 4),
        ("a", "2.2.2.2", 9),
        ("c", "::1", 2),
    ] {
        let mut r = deny(ip, sev);
        r.add_tag(source).unwrap();
        r.set_metadata("from", source).unwrap();
        a.write(source, &r, NOW).unwrap();
    }
    let dump: Vec<(String, IpReputation)> = a
        .entries()
        .map(|v| (v.source().to_string(), v.to_record()))
        .collect();
    assert_eq!(dump.len(), a.len());
    assert_eq!(
        dump.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ["a", "a", "b", "c"]
    );
    let mut b = store_with(
        IpReputationConfig::new(32).with_policy(ConflictPolicy::MaxSeverity),
        &[("b", 3)],
    );
    for (source, r) in dump.iter().rev() {
        b.write(source, r, NOW).unwrap();
    }
    for ip in ["1.1.1.1", "2.2.2.2", "::1"] {
        let x = a.get_reputation(ip, NOW).unwrap();
        let (xs, xr) = (x.source().to_string(), x.to_record());
        let y = b.get_reputation(ip, NOW).unwrap();
        assert_eq!((xs.as_str(), &xr), (y.source(), &y.to_record()));
    }
    assert_eq!(winner(&mut b, "1.1.1.1"), ("b".to_string(), 4));
}

/// The store against a map model under random writes, deletes and clears with tiny capacities:
/// every write that fits succeeds, every one that does not is refused (never evicting), and every
/// merged answer matches the model's maximum.
#[derive(Debug, Clone)]
enum Op {
    Write {
        source: u8,
        ip: u8,
        severity: u8,
        t: u8,
    },
    Batch {
        source: u8,
        ips: Vec<u8>,
        severity: u8,
    },
    Delete {
        source: u8,
        ip: u8,
    },
    Clear {
        source: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 0u8..10, 1u8..11, 0u8..3).prop_map(|(source, ip, severity, t)| Op::Write { source, ip, severity, t }),
        2 => (0u8..4, proptest::collection::vec(0u8..10, 0..5), 1u8..11).prop_map(|(source, ips, severity)| Op::Batch { source, ips, severity }),
        2 => (0u8..4, 0u8..10).prop_map(|(source, ip)| Op::Delete { source, ip }),
        1 => (0u8..4).prop_map(|source| Op::Clear { source }),
    ]
}

proptest! {
    #[test]
    fn agrees_with_a_model(ops in proptest::collection::vec(op(), 1..120), policy in policy()) {
        const CAP: usize = 8;
        const SOURCES: usize = 3;
        let names = ["s0", "s1", "s2", "s3"];
        let mut config = IpReputationConfig::new(CAP).with_policy(policy);
        config.max_sources = SOURCES;
        let mut s = store_with(config, &[("s1", 1)]);
        let mut model: BTreeMap<(u8, u8), (u8, u64)> = BTreeMap::new();
        let ip_of = |i: u8| v4(0x0a00_0000 + u32::from(i));
        let sources_in = |m: &BTreeMap<(u8, u8), (u8, u64)>| {
            let mut v: Vec<u8> = m.keys().map(|k| k.0).collect();
            v.dedup();
            v
        };
        for op in ops {
            match op {
                Op::Write { source, ip, severity, t } => {
                    let r = IpReputation::new(&ip_of(ip), ReputationStatus::Deny, severity, NOW + u64::from(t)).unwrap();
                    let exists = model.contains_key(&(source, ip));
                    let source_known = sources_in(&model).contains(&source);
                    let fits = exists || (model.len() < CAP && (source_known || sources_in(&model).len() < SOURCES));
                    let res = s.write(names[usize::from(source)], &r, NOW);
                    prop_assert_eq!(res.is_ok(), fits, "{:?}", res);
                    if fits {
                        model.insert((source, ip), (severity, NOW + u64::from(t)));
                    }
                }
                Op::Batch { source, ips, severity } => {
                    let records: Vec<IpReputation> = ips.iter().map(|&ip| IpReputation::new(&ip_of(ip), ReputationStatus::Deny, severity, NOW).unwrap()).collect();
                    let mut distinct = ips.clone();
                    distinct.sort_unstable();
                    distinct.dedup();
                    let new = distinct.iter().filter(|&&ip| !model.contains_key(&(source, ip))).count();
                    let source_known = sources_in(&model).contains(&source);
                    let fits = distinct.len() == ips.len()
                        && model.len() + new <= CAP
                        && (ips.is_empty() || source_known || sources_in(&model).len() < SOURCES);
                    let res = s.write_batch(names[usize::from(source)], &records, NOW);
                    prop_assert_eq!(res.is_ok(), fits, "{:?}", res);
                    if fits {
                        for ip in ips {
                            model.insert((source, ip), (severity, NOW));
                        }
                    }
                }
                Op::Delete { source, ip } => {
                    let had = model.remove(&(source, ip)).is_some();
                    prop_assert_eq!(s.delete(names[usize::from(source)], &ip_of(ip), NOW), Ok(had));
                }
                Op::Clear { source } => {
                    let before = model.len();
                    model.retain(|k, _| k.0 != source);
                    prop_assert_eq!(s.clear(names[usize::from(source)], NOW), Ok(before - model.len()));
                }
            }
            prop_assert_eq!(s.len(), model.len());
            prop_assert!(s.len() <= s.capacity());
            let listed: Vec<String> = s.list_sources(NOW).map(str::to_string).collect();
            let expected: Vec<String> = sources_in(&model).iter().map(|&i| names[usize::from(i)].to_string()).collect();
            prop_assert_eq!(listed, expected);
            for ip in 0u8..10 {
                let best = model
                    .iter()
                    .filter(|(k, _)| k.1 == ip)
                    .max_by(|(ka, a), (kb, b)| {
                        let c = |k: &(u8, u8), v: &(u8, u64)| Contender {
                            source: names[usize::from(k.0)],
                            priority: i32::from(k.0 == 1),
                            severity: v.0,
                            last_updated: v.1,
                        };
                        policy.compare(&c(ka, a), &c(kb, b))
                    })
                    .map(|(k, v)| (names[usize::from(k.0)].to_string(), v.0));
                let got = s.get_reputation(&ip_of(ip), NOW).ok().map(|v| (v.source().to_string(), v.severity()));
                prop_assert_eq!(got, best);
            }
        }
        prop_assert_eq!(s.strings_used(), (0, 0));
    }
}

/// Driving the store far past every capacity allocates nothing, never holds more than its
/// capacity, and refuses (never evicts): the first entries written are the ones kept.
#[test]
fn memory_bound_far_past_capacity_without_allocating() {
    const CAP: usize = 256;
    let mut config = IpReputationConfig::new(CAP);
    config.max_sources = 4;
    config.max_batch = 32;
    config.max_strings = 64;
    config.max_string_bytes = 1024;
    let mut s = store_with(config, &[("feed-b", 2)]);

    // All inputs prepared before counting.
    let tags = ["malware", "botnet", "scanner", "tor-exit"];
    let records: Vec<IpReputation> = (0..4000u32)
        .map(|i| {
            let mut r = IpReputation::new(
                &v4(0x0a00_0000 + i),
                ReputationStatus::Deny,
                (i % 10) as u8 + 1,
                NOW + u64::from(i),
            )
            .unwrap();
            r.add_tag(tags[(i % 4) as usize]).unwrap();
            r.set_metadata("feed", "abuse-list").unwrap();
            r
        })
        .collect();
    let queries: Vec<IpAddr> = records.iter().map(|r| r.ip).collect();
    let sources = ["feed-a", "feed-b", "feed-c", "feed-d", "feed-e"];

    let (count, (accepted, refused)) = support::count_allocations(|| {
        let mut accepted = 0usize;
        let mut refused = 0usize;
        // Single writes, 4000 distinct addresses into 256 slots.
        for r in &records {
            match s.write(sources[0], r, NOW) {
                Ok(()) => accepted += 1,
                Err(e) => {
                    assert_eq!(e.rejection, Rejection::EntriesFull);
                    refused += 1;
                }
            }
            assert!(s.len() <= s.capacity());
        }
        // The first CAP addresses were kept, nothing after them.
        assert!(s.get_reputation(&queries[CAP - 1], NOW).is_ok());
        assert!(s.get_reputation(&queries[CAP], NOW).is_err());
        // Batches from other sources: all refused whole while full.
        for (k, chunk) in records.chunks(32).enumerate() {
            let source = sources[1 + k % 4];
            assert!(s.write_batch(source, chunk, NOW).is_err());
            assert!(s.len() <= s.capacity());
        }
        // Reads of every kind.
        for q in &queries {
            let _ = s.get_reputation(q, NOW).map(|v| v.to_record());
            let _ = s.is_denied(q, NOW);
        }
        let hits = s
            .check_ips(&queries, NOW)
            .filter(|(_, a)| a.is_ok())
            .count();
        assert_eq!(hits, CAP);
        assert_eq!(s.list_sources(NOW).count(), 1);
        assert_eq!(s.entries().count(), CAP);
        let _ = s.health(NOW);
        // Churn: delete half, refill from another source, clear, refill again.
        for q in queries.iter().take(CAP / 2) {
            assert_eq!(s.delete(sources[0], q, NOW), Ok(true));
        }
        for chunk in records[CAP..].chunks(32).take(4) {
            s.write_batch(sources[1], chunk, NOW).unwrap();
        }
        assert_eq!(s.len(), CAP);
        assert_eq!(s.clear(sources[0], NOW), Ok(CAP / 2));
        for chunk in records[..CAP].chunks(32).take(4) {
            s.write_batch(sources[2], chunk, NOW).unwrap();
        }
        assert_eq!(s.len(), CAP);
        assert!(s.len() <= s.capacity());
        (accepted, refused)
    });
    assert_eq!(count.allocations, 0, "{count:?}");
    assert_eq!(accepted, CAP);
    assert_eq!(refused, records.len() - CAP);
    let st = s.stats();
    assert_eq!(
        st.rejected_entries_full as usize,
        refused + records.chunks(32).count()
    );
    assert_eq!(st.peak_entries as usize, CAP);
    // Refuse, never evict: the first CAP addresses written by feed-a were the ones kept, which the
    // 128 survivors of the deletes show (they were cleared only at the end).
    assert!(s.get_reputation(&queries[CAP], NOW).is_ok()); // written by feed-b later
    assert_eq!(
        s.get_reputation(&queries[0], NOW).unwrap().source(),
        "feed-c"
    );
    assert!(s.get_reputation(&queries[4 * 32 + CAP], NOW).is_err());
    // Four tags, "feed" and "abuse-list", each stored once however many entries use them.
    assert_eq!(s.strings_used(), (6, 7 + 6 + 7 + 8 + 4 + 10));
    assert!(s.bytes_reserved() > 0);
}
