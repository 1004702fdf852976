//! The container store through its actor, backed by the real core `ContainerTable`: lookups by
//! ID, unique prefix (12 characters at least) and name, batch lookups, live-only listing with
//! filters, discovery from cgroup paths then enrichment, removal grace and purging, refused
//! updates, evictions, metrics and health. Updates go through the bounded intake as collectors
//! send them.

mod support;

use std::time::Duration;

use support::{eventually, registry, submit_and_wait};
use watchpost_actors::adapters::container::container_table_factory;
use watchpost_actors::stores::container::{
    ContainerEnrichment, ContainerFilter, ContainerHandle, ContainerInfo, ContainerUpdate, PodInfo,
};
use watchpost_actors::{ErrorKind, HealthStatus, IntakeSender, Registry, StoreOptions};
use watchpost_core::container::{ContainerTableConfig, DEFAULT_REMOVAL_GRACE_NS};

/// `A` and `B` share their first 12 characters and differ at the 13th; `C` shares nothing.
const A: &str = "0123456789ab0000000000000000000000000000000000000000000000000001";
const B: &str = "0123456789ab1000000000000000000000000000000000000000000000000002";
const C: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

async fn store(
    config: ContainerTableConfig,
) -> (Registry, ContainerHandle, IntakeSender<ContainerUpdate>) {
    let reg = registry().await;
    let intake = reg
        .register_container_store(container_table_factory(config), StoreOptions::default())
        .await
        .expect("container store registers");
    let handle = reg.containers();
    (reg, handle, intake)
}

fn container(id: &str, name: &str, image: &str, runtime: &str) -> ContainerInfo {
    ContainerInfo {
        id: id.into(),
        name: name.into(),
        image: image.into(),
        runtime: runtime.into(),
        ..Default::default()
    }
}

fn upsert(c: &ContainerInfo) -> ContainerUpdate {
    ContainerUpdate::Upsert(c.clone())
}

fn ids(list: &[ContainerInfo]) -> Vec<&str> {
    list.iter().map(|c| c.id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_by_id_unique_prefix_and_name() {
    let (reg, c, intake) = store(ContainerTableConfig::default()).await;
    let a = container(A, "web", "nginx:1.27", "docker");
    let b = container(B, "db", "postgres:17", "docker");
    let cc = container(C, "cache", "redis:7", "crio");
    submit_and_wait(&c, &intake, vec![upsert(&a), upsert(&b), upsert(&cc)]).await;
    let before = c.get_metrics().await;
    assert_eq!(before.item_count, 3);

    assert_eq!(c.get_container(A).await.unwrap(), a);
    assert_eq!(
        c.get_container(&A[..13]).await.unwrap(),
        a,
        "unique 13-char prefix"
    );
    assert_eq!(c.get_container(&B[..13]).await.unwrap(), b);
    assert_eq!(c.get_container(&C[..12]).await.unwrap(), cc, "12 is enough");
    let ambiguous = c.get_container(&A[..12]).await.unwrap_err();
    assert!(ambiguous.is(ErrorKind::InvalidArgument), "{ambiguous}");
    assert_eq!(ambiguous.operation, "get_container");
    let short = c.get_container(&C[..11]).await.unwrap_err();
    assert!(short.is(ErrorKind::InvalidArgument), "{short}");
    let unknown = c.get_container(&C.replace('f', "e")).await.unwrap_err();
    assert!(unknown.is(ErrorKind::NotFound), "{unknown}");
    let malformed = c.get_container("../etc/passwd").await.unwrap_err();
    assert!(malformed.is(ErrorKind::InvalidArgument), "{malformed}");

    assert_eq!(c.get_container_by_name("db").await.unwrap(), b);
    let nobody = c.get_container_by_name("nobody").await.unwrap_err();
    assert!(nobody.is(ErrorKind::NotFound), "{nobody}");

    let batch = c
        .get_containers(&[A, &A[..12], "0000000000000000", &C[..12]])
        .await
        .unwrap();
    assert_eq!(batch.len(), 4);
    assert_eq!(batch[0].as_ref().unwrap(), &a);
    assert!(
        batch[1]
            .as_ref()
            .unwrap_err()
            .is(ErrorKind::InvalidArgument)
    );
    assert!(batch[2].as_ref().unwrap_err().is(ErrorKind::NotFound));
    assert_eq!(batch[3].as_ref().unwrap(), &cc);

    // Hits: A, A13, B13, C12, db, batch A, batch C12 = 7; misses: unknown, nobody, batch
    // unknown = 3 (misses count as successes); errors: ambiguous, short, malformed, batch
    // ambiguous = 4.
    let after = c.get_metrics().await;
    assert_eq!(after.cache_hits - before.cache_hits, 7, "{after:?}");
    assert_eq!(after.cache_misses - before.cache_misses, 3, "{after:?}");
    assert_eq!(after.success_count - before.success_count, 10, "{after:?}");
    assert_eq!(after.error_count - before.error_count, 4, "{after:?}");
    assert!(after.last_access >= before.last_access && after.last_access > 0);
    assert_eq!(c.get_health().await.status, HealthStatus::Healthy);
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_from_cgroups_then_enrichment_never_erase_each_other() {
    let (reg, c, intake) = store(ContainerTableConfig::default()).await;
    let pod_uid = "b13213a6-d47e-4bd1-bc00-f175d1ad3b6e";
    let docker_cgroup = format!("0::/system.slice/docker-{A}.scope\n");
    let kubelet_cgroup = format!(
        "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{C}.scope\n",
        pod_uid.replace('-', "_")
    );
    let observed: Vec<ContainerUpdate> = [&docker_cgroup, &kubelet_cgroup]
        .iter()
        .map(|text| ContainerUpdate::observe_proc_cgroup(text).expect("a container cgroup"))
        .collect();
    submit_and_wait(&c, &intake, observed.clone()).await;

    let found = c.get_container(A).await.unwrap();
    assert_eq!(
        (found.runtime.as_str(), found.name.as_str()),
        ("docker", "")
    );
    let k8s = c.get_container(C).await.unwrap();
    assert_eq!(k8s.runtime, "containerd");
    assert_eq!(k8s.pod.as_ref().map(|p| p.uid.as_str()), Some(pod_uid));

    let enrich = vec![
        ContainerUpdate::Enrich(
            ContainerEnrichment::new(A)
                .name("web")
                .image("nginx:1.27")
                .start_time(1_700_000_000_000_000_000),
        ),
        ContainerUpdate::Enrich(ContainerEnrichment::new(C).name("app").pod(PodInfo {
            name: "app-7d4b9".into(),
            uid: pod_uid.into(),
            namespace: "shop".into(),
            sandbox: false,
        })),
    ];
    submit_and_wait(&c, &intake, enrich).await;
    // Discovery again (another process of the same containers): fills nothing, erases nothing.
    submit_and_wait(&c, &intake, observed).await;

    let web = c.get_container(A).await.unwrap();
    assert_eq!(
        (web.runtime.as_str(), web.name.as_str(), web.image.as_str()),
        ("docker", "web", "nginx:1.27")
    );
    assert_eq!(web.start_time, 1_700_000_000_000_000_000);
    let app = c.get_container_by_name("app").await.unwrap();
    assert_eq!(app.id, C);
    assert_eq!(app.runtime, "containerd", "from the cgroup, kept");
    let pod = app.pod.expect("pod from the enrichment");
    assert_eq!(
        (pod.name.as_str(), pod.namespace.as_str()),
        ("app-7d4b9", "shop")
    );
    let stats = c.container_stats().await.unwrap();
    assert_eq!((stats.inserted, stats.updated), (2, 4), "{stats:?}");
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_shows_live_containers_only_with_and_filters() {
    let (reg, c, intake) = store(ContainerTableConfig::default()).await;
    let a = container(A, "web", "nginx:1.27", "docker");
    let b = container(B, "web-old", "nginx:1.27", "docker");
    let cc = container(C, "cache", "redis:7", "crio");
    submit_and_wait(&c, &intake, vec![upsert(&a), upsert(&b), upsert(&cc)]).await;
    let removal = ContainerUpdate::Remove {
        id: B.into(),
        removed_at: watchpost_actors::clock::now(),
    };
    submit_and_wait(&c, &intake, vec![removal]).await;

    let all = c.list_containers(ContainerFilter::all()).await.unwrap();
    assert_eq!(
        ids(&all),
        [A, C],
        "removed B is not listed; least recently written first"
    );
    assert_eq!(
        c.get_container(B).await.unwrap(),
        b,
        "still gettable during its grace"
    );
    let nginx = ContainerFilter::all().with_image("nginx:1.27");
    assert_eq!(ids(&c.list_containers(nginx.clone()).await.unwrap()), [A]);
    let crio = ContainerFilter::all().with_runtime("crio");
    assert_eq!(ids(&c.list_containers(crio).await.unwrap()), [C]);
    let both = nginx.with_runtime("crio");
    assert!(c.list_containers(both).await.unwrap().is_empty(), "AND");
    let no_such_runtime = ContainerFilter::all().with_runtime("Docker");
    assert!(c.list_containers(no_such_runtime).await.unwrap().is_empty());
    let by_name = ContainerFilter::all().with_name("cache");
    assert_eq!(ids(&c.list_containers(by_name).await.unwrap()), [C]);
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_containers_vanish_after_their_grace_and_are_purged() {
    let grace = Duration::from_millis(600);
    let (reg, c, intake) = store(ContainerTableConfig {
        removal_grace_ns: grace.as_nanos() as u64,
        ..Default::default()
    })
    .await;
    assert_eq!(
        DEFAULT_REMOVAL_GRACE_NS, 30_000_000_000,
        "the reference's 30 s"
    );
    let a = container(A, "web", "nginx:1.27", "docker");
    submit_and_wait(&c, &intake, vec![upsert(&a)]).await;
    let removed_at = watchpost_actors::clock::now();
    let removal = ContainerUpdate::Remove {
        id: A.into(),
        removed_at,
    };
    submit_and_wait(&c, &intake, vec![removal]).await;
    let still = c.get_container_by_name("web").await;
    let elapsed = watchpost_actors::clock::now() - removed_at;
    if elapsed < grace.as_nanos() as u64 {
        assert_eq!(still.unwrap(), a, "gettable by name within the grace");
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            c.get_container(A)
                .await
                .is_err_and(|e| e.is(ErrorKind::NotFound))
        })
        .await,
        "gone after the grace"
    );
    assert_eq!(
        c.get_metrics().await.item_count,
        1,
        "not purged without traffic"
    );
    submit_and_wait(&c, &intake, vec![ContainerUpdate::PurgeExpired]).await;
    assert_eq!(c.get_metrics().await.item_count, 0);
    assert_eq!(c.container_stats().await.unwrap().expired_purged, 1);

    // Purging also follows any intake message: remove with a time already past the grace, then
    // write something else.
    submit_and_wait(&c, &intake, vec![upsert(&a)]).await;
    let long_ago = ContainerUpdate::Remove {
        id: A.into(),
        removed_at: watchpost_actors::clock::now() - 2 * grace.as_nanos() as u64,
    };
    let cc = container(C, "cache", "redis:7", "crio");
    submit_and_wait(&c, &intake, vec![long_ago, upsert(&cc)]).await;
    let m = c.get_metrics().await;
    assert_eq!(m.item_count, 1, "{m:?}");
    let stats = c.container_stats().await.unwrap();
    assert_eq!(
        (stats.marked_removed, stats.expired_purged),
        (2, 2),
        "{stats:?}"
    );
    // The ID starts afresh after its grace.
    submit_and_wait(&c, &intake, vec![upsert(&a)]).await;
    assert_eq!(c.get_container(A).await.unwrap(), a);
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_updates_and_evictions_are_counted_and_reported() {
    let (reg, c, intake) = store(ContainerTableConfig {
        capacity: 2,
        ..Default::default()
    })
    .await;
    let bad = vec![
        upsert(&container("not an id", "x", "", "docker")),
        upsert(&container(A, "x", "", "Docker")), // runtimes are lowercase names
        ContainerUpdate::Enrich(ContainerEnrichment::new(A).name("n".repeat(129))),
    ];
    submit_and_wait(&c, &intake, bad).await;
    let s = c.supervision();
    assert_eq!(
        (s.intake_applied_updates, s.intake_rejected_updates),
        (0, 3)
    );
    assert_eq!(c.get_metrics().await.item_count, 0);

    let fill = vec![
        upsert(&container(A, "a", "", "docker")),
        upsert(&container(B, "b", "", "docker")),
        upsert(&container(C, "c", "", "docker")),
    ];
    submit_and_wait(&c, &intake, fill).await;
    assert_eq!(c.get_metrics().await.item_count, 2);
    assert!(
        c.get_container(A)
            .await
            .is_err_and(|e| e.is(ErrorKind::NotFound)),
        "the least recently written live container made room"
    );
    assert_eq!(c.container_stats().await.unwrap().evicted_live, 1);
    let health = c.get_health().await;
    assert_eq!(health.status, HealthStatus::Healthy);
    assert!(
        health.message.contains("evicted"),
        "{:?}",
        health.message.as_str()
    );
    reg.shutdown().await;
}
