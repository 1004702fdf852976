//! The container table: lookups by ID, prefix and name, listing with filters, the removal grace
//! with an injected clock, discovery then enrichment, pod info, field bounds, metrics, the
//! eviction order, invariants under random operations, and no allocation after construction.

mod support;

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

use proptest::prelude::*;
use watchpost_core::cgroup::parse_cgroup_path;
use watchpost_core::container::{
    CONTAINER_NAME_MAX_LEN, ContainerFilter, ContainerInfo, ContainerTable, ContainerTableConfig,
    ContainerUpdate, EvictionReason, IMAGE_DIGEST_MAX_LEN, IMAGE_MAX_LEN, K8sPodUpdate,
    POD_NAME_MAX_LEN, POD_NAMESPACE_MAX_LEN, POD_UID_MAX_LEN, Runtime, WriteOutcome,
};
use watchpost_core::error::store_names;
use watchpost_core::time::NANOS_PER_SEC;
use watchpost_core::{ErrorKind, HealthStatus};

const SEC: u64 = NANOS_PER_SEC;
/// A base time far from zero, so `now - x` never underflows in the tests.
const T0: u64 = 1_700_000_000 * SEC;

/// A 64-hex ID whose first 12 characters are `prefix12` followed by `n` in hex.
fn id(prefix12: &str, n: u64) -> String {
    assert_eq!(prefix12.len(), 12);
    format!("{prefix12}{n:052x}")
}

fn table(capacity: usize) -> ContainerTable {
    ContainerTable::new(ContainerTableConfig {
        capacity,
        ..ContainerTableConfig::default()
    })
}

fn put(t: &mut ContainerTable, id: &str, name: &str, image: &str, runtime: Runtime, now: u64) {
    let update = ContainerUpdate::new(id)
        .name(name)
        .image(image)
        .runtime(runtime);
    assert!(t.upsert(&update, now).is_ok(), "upsert {id}");
}

fn kind<T: core::fmt::Debug>(r: Result<T, watchpost_core::StoreError>) -> Option<ErrorKind> {
    r.err().map(|e| {
        assert_eq!(e.store, store_names::CONTAINER);
        e.kind
    })
}

fn got_id(r: Result<&ContainerInfo, watchpost_core::StoreError>) -> Option<String> {
    r.ok().map(|c| c.id.as_str().to_owned())
}

// ----- get_container ---------------------------------------------------------------------------

#[test]
fn get_by_full_id_and_by_unique_prefix() {
    let mut t = table(16);
    let a = id("aaaaaaaaaaaa", 1);
    let b = id("bbbbbbbbbbbb", 2);
    put(&mut t, &a, "web", "nginx:1", Runtime::Docker, T0);
    put(&mut t, &b, "db", "postgres:16", Runtime::Docker, T0);

    assert_eq!(got_id(t.get_container(&a, T0)), Some(a.clone()));
    assert_eq!(got_id(t.get_container(&a[..12], T0)), Some(a.clone()));
    assert_eq!(got_id(t.get_container(&b[..20], T0)), Some(b.clone()));
    let info = t.get_container(&a, T0).ok().cloned();
    assert_eq!(info.as_ref().map(|i| i.name.as_str()), Some("web"));
    assert_eq!(info.as_ref().map(|i| i.image.as_str()), Some("nginx:1"));
    assert_eq!(info.map(|i| i.runtime), Some(Runtime::Docker));
}

#[test]
fn prefix_shorter_than_12_is_invalid() {
    let mut t = table(16);
    let a = id("aaaaaaaaaaaa", 1);
    put(&mut t, &a, "web", "nginx:1", Runtime::Docker, T0);
    assert_eq!(
        kind(t.get_container(&a[..11], T0)),
        Some(ErrorKind::InvalidArgument)
    );
    assert_eq!(
        kind(t.get_container("a", T0)),
        Some(ErrorKind::InvalidArgument)
    );
}

#[test]
fn ambiguous_prefix_is_invalid_and_longer_prefix_resolves() {
    let mut t = table(16);
    let a = id("cafecafecafe", 0x001);
    let b = id("cafecafecafe", 0x100); // shares 61 characters with `a`
    put(&mut t, &a, "x", "i", Runtime::Docker, T0);
    put(&mut t, &b, "y", "i", Runtime::Docker, T0);
    assert_eq!(
        kind(t.get_container(&a[..12], T0)),
        Some(ErrorKind::InvalidArgument)
    );
    assert_eq!(got_id(t.get_container(&a[..64], T0)), Some(a.clone()));
    assert_eq!(
        kind(t.get_container(&b[..61], T0)),
        Some(ErrorKind::InvalidArgument)
    );
    assert_eq!(got_id(t.get_container(&b[..62], T0)), Some(b.clone()));
}

#[test]
fn unknown_id_or_prefix_is_not_found() {
    let mut t = table(16);
    put(
        &mut t,
        &id("aaaaaaaaaaaa", 1),
        "web",
        "i",
        Runtime::Docker,
        T0,
    );
    assert_eq!(
        kind(t.get_container(&id("bbbbbbbbbbbb", 1), T0)),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        kind(t.get_container("bbbbbbbbbbbb", T0)),
        Some(ErrorKind::NotFound)
    );
}

#[test]
fn malformed_queries_are_invalid() {
    let mut t = table(4);
    let too_long = "a".repeat(77);
    for q in ["", "has space", "a/b", "é", too_long.as_str()] {
        assert_eq!(
            kind(t.get_container(q, T0)),
            Some(ErrorKind::InvalidArgument),
            "{q:?}"
        );
    }
}

#[test]
fn short_ctr_ids_are_found_by_their_full_id() {
    let mut t = table(4);
    let found = parse_cgroup_path("/default/web");
    assert!(found.is_some());
    if let Some(found) = found {
        assert!(t.observe(&found, T0).is_ok());
    }
    assert_eq!(got_id(t.get_container("web", T0)), Some("web".to_owned()));
    assert_eq!(
        t.get_container("web", T0).ok().map(|c| c.runtime),
        Some(Runtime::Containerd)
    );
    // "we" is neither an ID nor a long enough prefix.
    assert_eq!(
        kind(t.get_container("we", T0)),
        Some(ErrorKind::InvalidArgument)
    );
}

#[test]
fn exact_id_beats_a_prefix_of_another() {
    let mut t = table(4);
    let short = "abcdefabcdef01"; // a ctr ID that is also a prefix of the next one
    let long = format!("{short}{}", "0".repeat(50));
    put(&mut t, short, "s", "i", Runtime::Containerd, T0);
    put(&mut t, &long, "l", "i", Runtime::Containerd, T0);
    assert_eq!(got_id(t.get_container(short, T0)), Some(short.to_owned()));
    assert_eq!(
        kind(t.get_container(&short[..12], T0)),
        Some(ErrorKind::InvalidArgument)
    );
}

// ----- get_container_by_name -------------------------------------------------------------------

#[test]
fn get_by_name() {
    let mut t = table(8);
    let a = id("aaaaaaaaaaaa", 1);
    put(&mut t, &a, "web", "nginx:1", Runtime::Podman, T0);
    assert_eq!(got_id(t.get_container_by_name("web", T0)), Some(a.clone()));
    assert_eq!(
        kind(t.get_container_by_name("nope", T0)),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        kind(t.get_container_by_name("", T0)),
        Some(ErrorKind::InvalidArgument)
    );
    let long = "n".repeat(CONTAINER_NAME_MAX_LEN + 1);
    assert_eq!(
        kind(t.get_container_by_name(&long, T0)),
        Some(ErrorKind::InvalidArgument)
    );
    // Renaming re-indexes: the old name is gone, the new one is found.
    assert!(
        t.upsert(&ContainerUpdate::new(&a).name("web2"), T0 + 1)
            .is_ok()
    );
    assert_eq!(
        kind(t.get_container_by_name("web", T0 + 1)),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(got_id(t.get_container_by_name("web2", T0 + 1)), Some(a));
}

#[test]
fn shared_name_live_beats_removed_then_most_recent_wins() {
    let mut t = table(8);
    let old = id("aaaaaaaaaaaa", 1);
    let new = id("bbbbbbbbbbbb", 2);
    let other = id("cccccccccccc", 3);
    put(&mut t, &old, "web", "i", Runtime::Docker, T0);
    assert_eq!(t.mark_removed(&old, T0 + SEC), Ok(true));
    // The removed one is still found by name during its grace...
    assert_eq!(
        got_id(t.get_container_by_name("web", T0 + 2 * SEC)),
        Some(old.clone())
    );
    // ...until a live container takes the name, even one written earlier than the removal.
    put(&mut t, &new, "web", "i", Runtime::Docker, T0 + 3 * SEC);
    assert_eq!(
        got_id(t.get_container_by_name("web", T0 + 4 * SEC)),
        Some(new.clone())
    );
    // Two live containers of different runtimes share a name: the most recently written wins.
    put(&mut t, &other, "web", "i", Runtime::Podman, T0 + 5 * SEC);
    assert_eq!(
        got_id(t.get_container_by_name("web", T0 + 6 * SEC)),
        Some(other)
    );
    assert!(
        t.upsert(&ContainerUpdate::new(&new).image("i2"), T0 + 7 * SEC)
            .is_ok()
    );
    assert_eq!(
        got_id(t.get_container_by_name("web", T0 + 8 * SEC)),
        Some(new)
    );
}

// ----- list_containers -------------------------------------------------------------------------

fn listed(t: &mut ContainerTable, filter: ContainerFilter<'_>, now: u64) -> Vec<String> {
    t.list_containers(&filter, now)
        .map(|c| c.name.as_str().to_owned())
        .collect()
}

fn listing_fixture() -> ContainerTable {
    let mut t = table(16);
    put(
        &mut t,
        &id("000000000001", 1),
        "web-1",
        "nginx:1",
        Runtime::Docker,
        T0,
    );
    put(
        &mut t,
        &id("000000000002", 2),
        "web-2",
        "nginx:1",
        Runtime::Containerd,
        T0 + 1,
    );
    put(
        &mut t,
        &id("000000000003", 3),
        "cache",
        "redis:7",
        Runtime::Docker,
        T0 + 2,
    );
    put(
        &mut t,
        &id("000000000004", 4),
        "queue",
        "redis:7",
        Runtime::Podman,
        T0 + 3,
    );
    put(
        &mut t,
        &id("000000000005", 5),
        "gone",
        "nginx:1",
        Runtime::Docker,
        T0 + 4,
    );
    assert_eq!(t.mark_removed(&id("000000000005", 5), T0 + 5), Ok(true));
    t
}

#[test]
fn list_without_filter_is_every_live_container_least_recently_written_first() {
    let mut t = listing_fixture();
    assert_eq!(
        listed(&mut t, ContainerFilter::all(), T0 + 6),
        ["web-1", "web-2", "cache", "queue"]
    );
    // Writing moves a container to the end.
    assert!(
        t.upsert(&ContainerUpdate::new(&id("000000000001", 1)), T0 + 7)
            .is_ok()
    );
    assert_eq!(
        listed(&mut t, ContainerFilter::all(), T0 + 8),
        ["web-2", "cache", "queue", "web-1"]
    );
}

#[test]
fn list_each_filter() {
    let mut t = listing_fixture();
    let now = T0 + 6;
    assert_eq!(
        listed(&mut t, ContainerFilter::all().with_name("cache"), now),
        ["cache"]
    );
    assert_eq!(
        listed(&mut t, ContainerFilter::all().with_image("nginx:1"), now),
        ["web-1", "web-2"]
    );
    assert_eq!(
        listed(
            &mut t,
            ContainerFilter::all().with_runtime(Runtime::Docker),
            now
        ),
        ["web-1", "cache"]
    );
    assert_eq!(
        listed(
            &mut t,
            ContainerFilter::all().with_runtime(Runtime::Crio),
            now
        ),
        Vec::<String>::new()
    );
    // Exact, not substring or case-insensitive.
    assert!(listed(&mut t, ContainerFilter::all().with_image("nginx"), now).is_empty());
    assert!(listed(&mut t, ContainerFilter::all().with_name("Cache"), now).is_empty());
}

#[test]
fn list_combined_filters_are_anded() {
    let mut t = listing_fixture();
    let now = T0 + 6;
    let redis_docker = ContainerFilter::all()
        .with_image("redis:7")
        .with_runtime(Runtime::Docker);
    assert_eq!(listed(&mut t, redis_docker, now), ["cache"]);
    let contradiction = ContainerFilter::all()
        .with_name("web-1")
        .with_runtime(Runtime::Containerd);
    assert!(listed(&mut t, contradiction, now).is_empty());
    let all_three = ContainerFilter::all()
        .with_name("web-2")
        .with_image("nginx:1")
        .with_runtime(Runtime::Containerd);
    assert_eq!(listed(&mut t, all_three, now), ["web-2"]);
}

#[test]
fn list_excludes_removed_even_within_grace() {
    let mut t = listing_fixture();
    let gone = id("000000000005", 5);
    // Still gettable...
    assert_eq!(got_id(t.get_container(&gone, T0 + 6)), Some(gone.clone()));
    // ...but never listed, with or without a filter that matches it.
    assert!(!listed(&mut t, ContainerFilter::all(), T0 + 6).contains(&"gone".to_owned()));
    assert!(listed(&mut t, ContainerFilter::all().with_name("gone"), T0 + 6).is_empty());
}

// ----- removal grace ---------------------------------------------------------------------------

#[test]
fn removed_container_expires_after_exactly_30_seconds() {
    let mut t = table(8);
    let a = id("aaaaaaaaaaaa", 1);
    put(&mut t, &a, "web", "i", Runtime::Docker, T0);
    let removed_at = T0 + 10 * SEC;
    assert_eq!(t.mark_removed(&a, removed_at), Ok(true));
    // Removing again does not restart the grace.
    assert_eq!(t.mark_removed(&a, removed_at + 20 * SEC), Ok(false));

    let last_visible = removed_at + 30 * SEC - 1;
    assert_eq!(got_id(t.get_container(&a, last_visible)), Some(a.clone()));
    assert_eq!(
        got_id(t.get_container(&a[..12], last_visible)),
        Some(a.clone())
    );
    assert_eq!(
        got_id(t.get_container_by_name("web", last_visible)),
        Some(a.clone())
    );
    assert_eq!(t.purge_expired(last_visible), 0);

    let expiry = removed_at + 30 * SEC;
    assert_eq!(kind(t.get_container(&a, expiry)), Some(ErrorKind::NotFound));
    assert_eq!(
        kind(t.get_container(&a[..12], expiry)),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        kind(t.get_container_by_name("web", expiry)),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(t.len(), 1); // held until purged
    assert_eq!(t.purge_expired(expiry), 1);
    assert_eq!(t.len(), 0);
    assert_eq!(t.stats().expired_purged, 1);
}

#[test]
fn grace_is_configurable() {
    let mut t = ContainerTable::new(ContainerTableConfig {
        capacity: 4,
        removal_grace_ns: 5 * SEC,
        ..ContainerTableConfig::default()
    });
    let a = id("aaaaaaaaaaaa", 1);
    put(&mut t, &a, "web", "i", Runtime::Docker, T0);
    assert_eq!(t.mark_removed(&a, T0), Ok(true));
    assert!(t.get_container(&a, T0 + 5 * SEC - 1).is_ok());
    assert_eq!(
        kind(t.get_container(&a, T0 + 5 * SEC)),
        Some(ErrorKind::NotFound)
    );
}

#[test]
fn rewrite_within_grace_revives_and_after_grace_starts_fresh() {
    let mut t = table(8);
    let a = id("aaaaaaaaaaaa", 1);
    put(&mut t, &a, "web", "nginx:1", Runtime::Docker, T0);
    assert_eq!(t.mark_removed(&a, T0 + SEC), Ok(true));
    // `docker restart` keeps the ID: rediscovery within the grace revives with metadata.
    let found = parse_cgroup_path(&format!("/docker/{a}"));
    let revived = found.as_ref().map(|f| t.observe(f, T0 + 2 * SEC));
    assert_eq!(
        revived.and_then(Result::ok).map(|w| w.outcome),
        Some(WriteOutcome::Revived)
    );
    assert_eq!(
        listed(&mut t, ContainerFilter::all(), T0 + 2 * SEC),
        ["web"]
    );
    assert_eq!(t.stats().revived, 1);

    // After the grace the old record is gone: the same ID starts a fresh record.
    assert_eq!(t.mark_removed(&a, T0 + 3 * SEC), Ok(true));
    let written = found.as_ref().map(|f| t.observe(f, T0 + 40 * SEC));
    assert_eq!(
        written.and_then(Result::ok).map(|w| w.outcome),
        Some(WriteOutcome::Inserted)
    );
    let info = t.get_container(&a, T0 + 40 * SEC).ok().cloned();
    assert_eq!(info.map(|i| i.name.is_empty()), Some(true));
    assert_eq!(t.len(), 1);
}

#[test]
fn mark_removed_of_unknown_or_bad_ids() {
    let mut t = table(4);
    assert_eq!(t.mark_removed(&id("aaaaaaaaaaaa", 1), T0), Ok(false));
    assert_eq!(
        kind(t.mark_removed("bad id", T0)),
        Some(ErrorKind::InvalidArgument)
    );
}

// ----- discovery, enrichment, pods -------------------------------------------------------------

#[test]
fn discovery_then_enrichment() {
    let mut t = table(8);
    let a = id("aaaaaaaaaaaa", 1);
    let uid = "b13213a6-d47e-4bd1-bc00-f175d1ad3b6e";
    let path = format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{a}.scope",
        uid.replace('-', "_")
    );
    let found = parse_cgroup_path(&path);
    assert!(found.is_some());
    let Some(found) = found else { return };
    let first = t.observe(&found, T0);
    assert_eq!(first.map(|w| w.outcome), Ok(WriteOutcome::Inserted));

    // Discovery alone: ID, runtime and a pod known only by its UID.
    let info = t.get_container(&a, T0).ok().cloned();
    let Some(info) = info else {
        panic!("not found")
    };
    assert_eq!(info.runtime, Runtime::Containerd);
    assert!(info.name.is_empty());
    assert_eq!(info.pod.as_ref().map(|p| p.uid.as_str()), Some(uid));
    assert_eq!(info.pod.as_ref().map(|p| p.name.is_empty()), Some(true));

    // Enrichment from the runtime's API fills in the rest.
    let enrich = ContainerUpdate::new(&a)
        .name("nginx")
        .image("docker.io/library/nginx:1.27")
        .image_digest("sha256:0123")
        .start_time(T0 - SEC)
        .pod(K8sPodUpdate {
            name: "web-5d8f",
            uid,
            namespace: "prod",
            sandbox: false,
        });
    assert_eq!(
        t.upsert(&enrich, T0 + 1).map(|w| w.outcome),
        Ok(WriteOutcome::Updated)
    );

    // A later rediscovery does not undo enrichment.
    assert!(t.observe(&found, T0 + 2).is_ok());
    let info = t.get_container(&a, T0 + 2).ok().cloned();
    let Some(info) = info else {
        panic!("not found")
    };
    assert_eq!(info.name.as_str(), "nginx");
    assert_eq!(info.image.as_str(), "docker.io/library/nginx:1.27");
    assert_eq!(info.image_digest.as_str(), "sha256:0123");
    assert_eq!(info.start_time, T0 - SEC);
    let pod = info.pod.unwrap_or_default();
    assert_eq!(
        (
            pod.name.as_str(),
            pod.uid.as_str(),
            pod.namespace.as_str(),
            pod.sandbox
        ),
        ("web-5d8f", uid, "prod", false)
    );
}

#[test]
fn discovery_fills_an_unknown_runtime_only() {
    let mut t = table(4);
    let a = id("aaaaaaaaaaaa", 1);
    assert!(t.upsert(&ContainerUpdate::new(&a).name("x"), T0).is_ok());
    assert_eq!(
        t.get_container(&a, T0).ok().map(|c| c.runtime),
        Some(Runtime::Unknown)
    );
    if let Some(found) = parse_cgroup_path(&format!("/system.slice/docker-{a}.scope")) {
        assert!(t.observe(&found, T0 + 1).is_ok());
    }
    assert_eq!(
        t.get_container(&a, T0).ok().map(|c| c.runtime),
        Some(Runtime::Docker)
    );
    // A bare-hex path says "unknown": it must not overwrite the known runtime.
    if let Some(found) = parse_cgroup_path(&format!("/a/b/{a}")) {
        assert_eq!(found.runtime, Runtime::Unknown);
        assert!(t.observe(&found, T0 + 2).is_ok());
    }
    assert_eq!(
        t.get_container(&a, T0).ok().map(|c| c.runtime),
        Some(Runtime::Docker)
    );
}

#[test]
fn pod_info_absent_for_plain_containers_and_present_for_pods() {
    let mut t = table(4);
    let plain = id("aaaaaaaaaaaa", 1);
    let sandbox = id("bbbbbbbbbbbb", 2);
    put(&mut t, &plain, "web", "nginx", Runtime::Docker, T0);
    let pod = K8sPodUpdate {
        name: "web-0",
        uid: "",
        namespace: "default",
        sandbox: true,
    };
    assert!(
        t.upsert(&ContainerUpdate::new(&sandbox).pod(pod), T0)
            .is_ok()
    );
    assert_eq!(
        t.get_container(&plain, T0).ok().map(|c| c.pod.is_none()),
        Some(true)
    );
    let p = t
        .get_container(&sandbox, T0)
        .ok()
        .and_then(|c| c.pod.clone());
    assert_eq!(p.as_ref().map(|p| p.name.as_str()), Some("web-0"));
    assert_eq!(p.as_ref().map(|p| p.sandbox), Some(true));
    // A pod with neither name nor UID is no pod (the reference's rule).
    let empty = K8sPodUpdate {
        namespace: "default",
        ..K8sPodUpdate::default()
    };
    assert!(
        t.upsert(&ContainerUpdate::new(&sandbox).pod(empty), T0)
            .is_ok()
    );
    assert_eq!(
        t.get_container(&sandbox, T0).ok().map(|c| c.pod.is_none()),
        Some(true)
    );
}

// ----- bounds ----------------------------------------------------------------------------------

#[test]
fn over_long_fields_are_rejected_and_nothing_is_stored() {
    let mut t = table(4);
    let a = id("aaaaaaaaaaaa", 1);
    let s = |n: usize| "x".repeat(n);
    let (name, image, digest) = (
        s(CONTAINER_NAME_MAX_LEN + 1),
        s(IMAGE_MAX_LEN + 1),
        s(IMAGE_DIGEST_MAX_LEN + 1),
    );
    let (pod_name, pod_uid, pod_ns) = (
        s(POD_NAME_MAX_LEN + 1),
        s(POD_UID_MAX_LEN + 1),
        s(POD_NAMESPACE_MAX_LEN + 1),
    );
    let pod = |name: &'static str| K8sPodUpdate {
        name,
        ..K8sPodUpdate::default()
    };
    let too_long_id = "a".repeat(77);
    let bad: Vec<ContainerUpdate<'_>> = vec![
        ContainerUpdate::new(&a).name(&name),
        ContainerUpdate::new(&a).image(&image),
        ContainerUpdate::new(&a).image_digest(&digest),
        ContainerUpdate::new(&a).pod(K8sPodUpdate {
            name: &pod_name,
            ..pod("")
        }),
        ContainerUpdate::new(&a).pod(K8sPodUpdate {
            uid: &pod_uid,
            ..pod("p")
        }),
        ContainerUpdate::new(&a).pod(K8sPodUpdate {
            namespace: &pod_ns,
            ..pod("p")
        }),
        ContainerUpdate::new(&too_long_id),
        ContainerUpdate::new("not an id"),
        ContainerUpdate::new(""),
    ];
    for (i, update) in bad.iter().enumerate() {
        assert_eq!(
            kind(t.upsert(update, T0)),
            Some(ErrorKind::InvalidArgument),
            "case {i}"
        );
    }
    assert_eq!(t.len(), 0);
    assert_eq!(t.stats().rejected, bad.len() as u64);
    // An existing record is left untouched by a rejected update.
    put(&mut t, &a, "web", "nginx", Runtime::Docker, T0);
    assert!(
        t.upsert(&ContainerUpdate::new(&a).name("ok").image(&image), T0)
            .is_err()
    );
    assert_eq!(
        t.get_container(&a, T0)
            .ok()
            .map(|c| c.name.as_str().to_owned()),
        Some("web".to_owned())
    );
    // Exactly at the bounds is fine.
    let (name, image, digest) = (
        s(CONTAINER_NAME_MAX_LEN),
        s(IMAGE_MAX_LEN),
        s(IMAGE_DIGEST_MAX_LEN),
    );
    let (pod_name, pod_uid, pod_ns) = (
        s(POD_NAME_MAX_LEN),
        s(POD_UID_MAX_LEN),
        s(POD_NAMESPACE_MAX_LEN),
    );
    let full = ContainerUpdate::new(&a)
        .name(&name)
        .image(&image)
        .image_digest(&digest)
        .pod(K8sPodUpdate {
            name: &pod_name,
            uid: &pod_uid,
            namespace: &pod_ns,
            sandbox: false,
        });
    assert!(t.upsert(&full, T0).is_ok());
    assert_eq!(
        t.get_container_by_name(&name, T0)
            .ok()
            .map(|c| c.image.len()),
        Some(IMAGE_MAX_LEN)
    );
}

// ----- metrics, health, stats ------------------------------------------------------------------

#[test]
fn metrics_follow_the_counting_rule() {
    let mut t = table(4);
    let a = id("aaaaaaaaaaaa", 1);
    assert_eq!(t.metrics().success_count, 0);
    put(&mut t, &a, "web", "i", Runtime::Docker, T0); // write: success
    let _ = t.get_container(&a, T0 + 1); // hit
    let _ = t.get_container(&a[..12], T0 + 2); // hit
    let _ = t.get_container_by_name("web", T0 + 3); // hit
    let _ = t.get_container(&id("bbbbbbbbbbbb", 1), T0 + 4); // miss
    let _ = t.get_container_by_name("db", T0 + 5); // miss
    let _ = t.get_container("short", T0 + 6); // error (short prefix)
    let _ = t.get_container("", T0 + 7); // error
    let _ = t.upsert(&ContainerUpdate::new("bad id"), T0 + 8); // error
    let _ = t.list_containers(&ContainerFilter::all(), T0 + 9).count(); // success
    let _ = t.mark_removed(&a, T0 + 10); // success
    let m = t.metrics();
    assert_eq!(m.item_count, 1);
    assert_eq!(m.cache_hits, 3);
    assert_eq!(m.cache_misses, 2);
    assert_eq!(m.error_count, 3);
    assert_eq!(m.success_count, 3 + 2 + 3); // hits + misses + (write, list, remove)
    assert_eq!(m.last_access, T0 + 10);
    // A caller's clock going backwards does not move last_access back.
    let _ = t.get_container(&a, T0);
    assert_eq!(t.metrics().last_access, T0 + 10);
}

#[test]
fn health_and_stats() {
    let mut t = table(2);
    assert_eq!(t.health(T0).status, HealthStatus::Healthy);
    assert!(t.health(T0).message.is_empty());
    for n in 0..3 {
        put(
            &mut t,
            &id("aaaaaaaaaaaa", n),
            "x",
            "i",
            Runtime::Docker,
            T0 + n,
        );
    }
    let h = t.health(T0 + 5);
    assert_eq!(h.status, HealthStatus::Healthy);
    assert!(h.message.contains("evicted"));
    assert_eq!(h.last_check, T0 + 5);
    let s = t.stats();
    assert_eq!((s.inserted, s.evicted_live, s.updated), (3, 1, 0));
    assert_eq!(t.name(), store_names::CONTAINER);
    assert_eq!(t.capacity(), 2);
    assert!(t.bytes_reserved() >= 2 * core::mem::size_of::<ContainerInfo>());
}

// ----- eviction order --------------------------------------------------------------------------

#[test]
fn eviction_order_expired_then_oldest_removed_then_least_recently_written_live() {
    let mut t = table(4);
    let ids: Vec<String> = (0..8).map(|n| id("abcdefabcdef", n)).collect();
    for (n, i) in ids.iter().take(4).enumerate() {
        put(
            &mut t,
            i,
            &format!("c{n}"),
            "img",
            Runtime::Docker,
            T0 + n as u64,
        );
    }
    // c1 removed at +10 s (expires at +40 s), c2 at +20 s (expires at +50 s).
    assert_eq!(t.mark_removed(&ids[1], T0 + 10 * SEC), Ok(true));
    assert_eq!(t.mark_removed(&ids[2], T0 + 20 * SEC), Ok(true));
    // c0 written again: c3 is now the least recently written live container.
    assert!(
        t.upsert(&ContainerUpdate::new(&ids[0]).image("img2"), T0 + 30 * SEC)
            .is_ok()
    );

    // 1. At +45 s only c1 is past its grace: it goes first.
    let w = t.upsert(&ContainerUpdate::new(&ids[4]).name("c4"), T0 + 45 * SEC);
    assert_eq!(
        w.map(|w| w.evicted),
        Ok(Some(EvictionReason::ExpiredRemoved))
    );
    assert!(
        t.get_container(&ids[2], T0 + 45 * SEC).is_ok(),
        "c2 still in grace"
    );

    // 2. Nothing expired: the oldest removed (c2) goes, although in grace.
    let w = t.upsert(&ContainerUpdate::new(&ids[5]).name("c5"), T0 + 46 * SEC);
    assert_eq!(
        w.map(|w| w.evicted),
        Ok(Some(EvictionReason::RemovedInGrace))
    );
    assert_eq!(
        kind(t.get_container(&ids[2], T0 + 46 * SEC)),
        Some(ErrorKind::NotFound)
    );

    // 3. Nothing removed: the least recently written live container (c3) goes, not c0.
    let w = t.upsert(&ContainerUpdate::new(&ids[6]).name("c6"), T0 + 47 * SEC);
    assert_eq!(
        w.map(|w| w.evicted),
        Ok(Some(EvictionReason::LeastRecentlyUpdatedLive))
    );
    assert_eq!(
        kind(t.get_container(&ids[3], T0 + 47 * SEC)),
        Some(ErrorKind::NotFound)
    );
    assert!(t.get_container(&ids[0], T0 + 47 * SEC).is_ok());
    // Reads do not refresh recency: reading c0 a lot does not save it from being next.
    for _ in 0..10 {
        let _ = t.get_container(&ids[0], T0 + 48 * SEC);
    }
    let w = t.upsert(&ContainerUpdate::new(&ids[7]).name("c7"), T0 + 49 * SEC);
    assert_eq!(
        w.map(|w| w.evicted),
        Ok(Some(EvictionReason::LeastRecentlyUpdatedLive))
    );
    assert_eq!(
        kind(t.get_container(&ids[0], T0 + 49 * SEC)),
        Some(ErrorKind::NotFound)
    );

    let s = t.stats();
    assert_eq!(
        (s.expired_purged, s.evicted_removed, s.evicted_live),
        (1, 1, 2)
    );
    assert_eq!(t.len(), 4);
    assert_eq!(
        listed(&mut t, ContainerFilter::all(), T0 + 50 * SEC),
        ["c4", "c5", "c6", "c7"]
    );
}

// ----- memory bound ----------------------------------------------------------------------------

#[test]
fn driven_far_past_capacity_without_allocating() {
    const CAP: usize = 64;
    const N: usize = 5_000;
    let mut t = table(CAP);
    let reserved = t.bytes_reserved();
    // Inputs prepared before counting.
    let ids: Vec<String> = (0..N as u64).map(|n| id("0123456789ab", n)).collect();
    let names: Vec<String> = (0..N).map(|n| format!("ctr-{n}")).collect();
    let paths: Vec<String> = ids
        .iter()
        .map(|i| format!("/system.slice/docker-{i}.scope"))
        .collect();
    let filter = ContainerFilter::all()
        .with_image("img")
        .with_runtime(Runtime::Docker);

    let (count, (max_len, listed_total, violations)) = support::count_allocations(|| {
        let mut max_len = 0usize;
        let mut listed_total = 0usize;
        let mut violations = 0usize;
        for n in 0..N {
            let now = T0 + n as u64 * SEC; // one write a second: 30 per grace period
            // Eviction order, checked at each eviction: an expired removed container goes
            // before anything else, a removed one before a live one.
            let removed_before = t.removed_len();
            let full_before = t.len() == CAP;
            let expired_before = t
                .entries()
                .any(|(_, r)| r.is_some_and(|r| now >= r + 30 * SEC));
            let written = parse_cgroup_path(&paths[n]).map(|found| t.observe(&found, now));
            match written.and_then(Result::ok).and_then(|w| w.evicted) {
                Some(EvictionReason::LeastRecentlyUpdatedLive) if removed_before > 0 => {
                    violations += 1
                }
                Some(EvictionReason::RemovedInGrace) if expired_before => violations += 1,
                Some(EvictionReason::ExpiredRemoved) if !expired_before => violations += 1,
                None if full_before => violations += 1,
                Some(_) if !full_before => violations += 1,
                _ => {}
            }
            let update = ContainerUpdate::new(&ids[n])
                .name(&names[n])
                .image("img")
                .pod(K8sPodUpdate {
                    name: "p",
                    uid: "u",
                    namespace: "ns",
                    sandbox: false,
                });
            let _ = t.upsert(&update, now);
            // Containers are removed a little after they start, in bursts, so that every
            // eviction reason occurs.
            if n >= 2 && n % 40 < 30 && n % 3 != 0 {
                let _ = t.mark_removed(&ids[n - 2], now);
            }
            let _ = t.get_container(&ids[n], now);
            let _ = t.get_container(&ids[n][..12], now); // ambiguous: all share the prefix
            let _ = t.get_container(&ids[n][..40], now);
            let _ = t.get_container_by_name(&names[n], now);
            listed_total += t.list_containers(&filter, now).count();
            if n % 500 == 0 {
                let _ = t.purge_expired(now);
            }
            let _ = t.metrics();
            let _ = t.health(now);
            max_len = max_len.max(t.len());
            if t.len() > t.capacity() || t.live_len() + t.removed_len() != t.len() {
                violations += 1;
            }
        }
        (max_len, listed_total, violations)
    });
    assert_eq!(count.allocations, 0, "{count:?}");
    assert_eq!(violations, 0);
    assert!(max_len <= CAP);
    assert_eq!(t.len(), CAP);
    assert!(listed_total > 0);
    assert_eq!(t.bytes_reserved(), reserved);

    // Every reason occurred, and the books balance: each insert past capacity freed one slot
    // (an expired purge may free several).
    let s = t.stats();
    assert!(
        s.expired_purged > 0 && s.evicted_removed > 0 && s.evicted_live > 0,
        "{s:?}"
    );
    assert_eq!(s.inserted, N as u64);
    assert_eq!(
        s.inserted - (s.expired_purged + s.evicted_removed + s.evicted_live),
        t.len() as u64
    );
    // The newest container is held.
    assert!(t.get_container(&ids[N - 1], T0 + N as u64 * SEC).is_ok());
}

#[test]
fn live_only_churn_evicts_least_recently_written_without_allocating() {
    const CAP: usize = 32;
    let mut t = table(CAP);
    let ids: Vec<String> = (0..1000u64).map(|n| id("fedcba987654", n)).collect();
    let (count, ()) = support::count_allocations(|| {
        for (n, i) in ids.iter().enumerate() {
            let _ = t.upsert(
                &ContainerUpdate::new(i).runtime(Runtime::Crio),
                T0 + n as u64,
            );
        }
    });
    assert_eq!(count.allocations, 0);
    assert_eq!(t.len(), CAP);
    assert_eq!(t.stats().evicted_live, (1000 - CAP) as u64);
    // Exactly the last CAP written are held.
    for (n, i) in ids.iter().enumerate() {
        let held = t.get_container(i, T0 + 2000).is_ok();
        assert_eq!(held, n >= 1000 - CAP, "container {n}");
    }
}

// ----- invariants under random operations ------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Upsert(u8, u8),
    Observe(u8),
    Remove(u8),
    Purge,
    Advance(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..24, 0u8..4).prop_map(|(i, n)| Op::Upsert(i, n)),
        (0u8..24).prop_map(Op::Observe),
        (0u8..24).prop_map(Op::Remove),
        Just(Op::Purge),
        (0u8..40).prop_map(Op::Advance),
    ]
}

proptest! {
    #[test]
    fn invariants_hold_under_random_operations(ops in proptest::collection::vec(op(), 1..300)) {
        let mut t = table(8);
        let ids: Vec<String> = (0..24u64).map(|n| id("0a0b0c0d0e0f", n)).collect();
        let paths: Vec<String> = ids.iter().map(|i| format!("/docker/{i}")).collect();
        let names = ["a", "b", "c", "d"];
        let mut now = T0;
        for op in ops {
            match op {
                Op::Upsert(i, n) => {
                    let u = ContainerUpdate::new(&ids[i as usize]).name(names[n as usize]);
                    prop_assert!(t.upsert(&u, now).is_ok());
                    // What was just written is gettable and listed.
                    prop_assert!(t.get_container(&ids[i as usize], now).is_ok());
                }
                Op::Observe(i) => {
                    if let Some(f) = parse_cgroup_path(&paths[i as usize]) {
                        prop_assert!(t.observe(&f, now).is_ok());
                    }
                }
                Op::Remove(i) => {
                    prop_assert!(t.mark_removed(&ids[i as usize], now).is_ok());
                    prop_assert!(!t.list_containers(&ContainerFilter::all(), now)
                        .any(|c| c.id.as_str() == ids[i as usize]));
                }
                Op::Purge => { t.purge_expired(now); }
                Op::Advance(s) => now += u64::from(s) * SEC,
            }
            prop_assert!(t.len() <= t.capacity());
            prop_assert_eq!(t.live_len() + t.removed_len(), t.len());
            let listed: Vec<String> = t
                .list_containers(&ContainerFilter::all(), now)
                .map(|c| c.id.as_str().to_owned())
                .collect();
            prop_assert_eq!(listed.len(), t.live_len());
            for id in &listed {
                prop_assert!(t.get_container(id, now).is_ok());
            }
            for name in names {
                let by_name = t.get_container_by_name(name, now).ok().map(|c| c.name.as_str().to_owned());
                if let Some(n) = by_name {
                    prop_assert_eq!(n, name);
                }
            }
        }
    }
}

// ----- footprint and serialisation -------------------------------------------------------------

#[test]
fn bytes_per_entry_are_bounded_and_reserved_up_front() {
    for capacity in [1usize, 64, 1024, 4096] {
        let t = table(capacity);
        let per_entry = t.bytes_reserved() / capacity;
        println!(
            "capacity {capacity}: {} bytes reserved, {per_entry} per entry",
            t.bytes_reserved()
        );
        // The inline record dominates; indexes and lists add a few dozen bytes per slot.
        assert!(per_entry >= core::mem::size_of::<ContainerInfo>());
        assert!(
            per_entry <= core::mem::size_of::<ContainerInfo>() + 128,
            "{per_entry}"
        );
    }
}

#[cfg(feature = "serde")]
#[test]
fn records_round_trip_through_postcard_and_bad_ids_are_refused() {
    use watchpost_core::container::ContainerId;
    let mut t = table(4);
    let a = id("aaaaaaaaaaaa", 1);
    let update = ContainerUpdate::new(&a)
        .name("web")
        .image("nginx:1")
        .runtime(Runtime::Crio)
        .start_time(T0)
        .pod(K8sPodUpdate {
            name: "p",
            uid: "u",
            namespace: "n",
            sandbox: true,
        });
    assert!(t.upsert(&update, T0).is_ok());
    let info = t.get_container(&a, T0).ok().cloned();
    let Some(info) = info else {
        panic!("not found")
    };
    let bytes = postcard::to_allocvec(&info).unwrap_or_default();
    let back: Result<ContainerInfo, _> = postcard::from_bytes(&bytes);
    assert_eq!(back.ok(), Some(info));
    // An ID that breaks the grammar does not come back from a snapshot.
    let bad = postcard::to_allocvec("bad id").unwrap_or_default();
    assert!(postcard::from_bytes::<ContainerId>(&bad).is_err());
    let good = postcard::to_allocvec("my-ctr").unwrap_or_default();
    assert_eq!(
        postcard::from_bytes::<ContainerId>(&good)
            .ok()
            .map(|i| i.as_str().to_owned()),
        Some("my-ctr".to_owned())
    );
}
