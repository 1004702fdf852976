//! Null stores: every accessor of a registry with nothing registered hands out a handle whose
//! every method answers `StoreUnhealthy` (named by store and operation), whose health is
//! `Unhealthy`, and whose metrics count those errors. Also after a store is stopped.

mod support;

use watchpost_actors::{ErrorKind, HealthStatus, Lifecycle, StoreError};

fn unhealthy<T: std::fmt::Debug>(r: Result<T, StoreError>, store: &str, operation: &str) {
    let e = r.expect_err("a null store never answers with data");
    assert!(e.is(ErrorKind::StoreUnhealthy), "{store}.{operation}: {e}");
    assert_eq!((e.store, e.operation), (store, operation));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_of_every_null_store_answers_store_unhealthy() {
    let reg = support::registry().await;

    let p = reg.processes();
    unhealthy(p.get_process(1).await, "process", "get_process");
    unhealthy(p.get_processes(&[1, 2]).await, "process", "get_processes");
    unhealthy(
        p.get_child_processes(1).await,
        "process",
        "get_child_processes",
    );
    unhealthy(p.get_ancestry(1, 5).await, "process", "get_ancestry");

    let c = reg.containers();
    unhealthy(c.get_container("abc").await, "container", "get_container");
    unhealthy(
        c.get_containers(&["abc"]).await,
        "container",
        "get_containers",
    );
    unhealthy(
        c.get_container_by_name("web").await,
        "container",
        "get_container_by_name",
    );
    unhealthy(
        c.list_containers(Default::default()).await,
        "container",
        "list_containers",
    );

    unhealthy(
        reg.system().get_system_info().await,
        "system",
        "get_system_info",
    );

    let s = reg.syscalls();
    unhealthy(s.get_syscall_name(59).await, "syscall", "get_syscall_name");
    unhealthy(
        s.get_syscall_names(&[59]).await,
        "syscall",
        "get_syscall_names",
    );
    unhealthy(
        s.get_syscall_id("execve").await,
        "syscall",
        "get_syscall_id",
    );

    let k = reg.kernel_symbols();
    unhealthy(
        k.resolve_symbol_by_address(0xffff).await,
        "symbol",
        "resolve_symbol_by_address",
    );
    unhealthy(
        k.get_symbol_address("do_sys_open").await,
        "symbol",
        "get_symbol_address",
    );
    unhealthy(
        k.resolve_symbols_batch(&[1, 2]).await,
        "symbol",
        "resolve_symbols_batch",
    );

    let d = reg.dns();
    unhealthy(
        d.get_dns_response("example.com").await,
        "dns",
        "get_dns_response",
    );
    unhealthy(
        d.get_dns_responses(&["example.com"]).await,
        "dns",
        "get_dns_responses",
    );

    // Health, metrics and names of each null store; chained calls are safe.
    let expected_errors = [
        ("process", 4u64),
        ("container", 4),
        ("system", 1),
        ("syscall", 3),
        ("symbol", 3),
        ("dns", 2),
    ];
    let healths = [
        (
            p.name(),
            p.get_health().await,
            p.get_metrics().await,
            p.lifecycle(),
        ),
        (
            c.name(),
            c.get_health().await,
            c.get_metrics().await,
            c.lifecycle(),
        ),
        (
            reg.system().name(),
            reg.system().get_health().await,
            reg.system().get_metrics().await,
            reg.system().lifecycle(),
        ),
        (
            s.name(),
            s.get_health().await,
            s.get_metrics().await,
            s.lifecycle(),
        ),
        (
            k.name(),
            k.get_health().await,
            k.get_metrics().await,
            k.lifecycle(),
        ),
        (
            d.name(),
            d.get_health().await,
            d.get_metrics().await,
            d.lifecycle(),
        ),
    ];
    for ((name, health, metrics, lifecycle), (expected_name, errors)) in
        healths.into_iter().zip(expected_errors)
    {
        assert_eq!(name, expected_name);
        assert_eq!(health.status, HealthStatus::Unhealthy, "{name}");
        assert!(
            health.message.contains("not registered"),
            "{name}: {}",
            health.message
        );
        assert_eq!(lifecycle, Lifecycle::NotRegistered);
        assert_eq!(
            metrics.error_count, errors,
            "{name}: every failed call is counted"
        );
        assert_eq!(metrics.success_count, 0);
        assert_eq!(metrics.item_count, 0);
        assert!(
            metrics.last_access > 0,
            "{name}: last access moves on a null store too"
        );
    }
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_store_is_a_null_store_for_handles_taken_before() {
    let reg = support::registry().await;
    support::register_syscalls(&reg).await;
    let s = reg.syscalls();
    assert!(s.get_syscall_id("read").await.is_ok());
    reg.shutdown().await;
    unhealthy(s.get_syscall_id("read").await, "syscall", "get_syscall_id");
    let h = s.get_health().await;
    assert_eq!(h.status, HealthStatus::Unhealthy);
    assert!(h.message.starts_with("stopped"), "{}", h.message);
    assert_eq!(s.lifecycle(), Lifecycle::Stopped);
    // The registry itself is gone: its calls say so instead of hanging.
    let e = reg.list().await.unwrap_err();
    assert!(e.is(ErrorKind::StoreUnhealthy));
    assert_eq!(e.store, "registry");
}
