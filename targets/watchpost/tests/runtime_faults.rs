//! Container runtimes that fail: a socket that does not exist; sockets that answer garbage,
//! never answer, or answer 100 MB; a real runtime killed while the daemon asks it. Each must end
//! in a clear `query health` line for the container store, with no panic, no stuck store, the
//! daemon's memory bounded, and queries answering throughout.
//!
//! The fakes need nothing; the killed-runtime test needs the real runtimes and FAILS when they
//! cannot be started, unless `WATCHPOST_SKIP_RUNTIME_TESTS=1`.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::fake_runtime::{FakeRuntime, HUGE_BYTES, Misbehaviour};
use support::runtimes::{Fixture, IMAGE};
use support::{Daemon, eventually, temp_dir};

fn container_health(daemon: &Daemon) -> (String, String) {
    let h = daemon.query_json(&["health", "container"]);
    (
        h[0]["status"].as_str().unwrap_or_default().to_owned(),
        h[0]["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Peak resident memory of `pid`, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Queries that must keep answering while the runtimes misbehave.
fn queries_answer(daemon: &Daemon) {
    for _ in 0..10 {
        let started = Instant::now();
        let out = daemon.query(&["containers", "--json"]);
        assert_eq!(out.code, Some(0), "containers: {out:?}");
        let out = daemon.query(&["process", "--pid", &daemon.pid().to_string()]);
        assert_eq!(out.code, Some(0), "process: {out:?}");
        // Generous: only a stuck store (a query waiting on a runtime) would take this long.
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn a_missing_runtime_socket_is_reported_and_queries_keep_answering() {
    let dir = temp_dir("rt-missing");
    let daemon = Daemon::start(
        "rt-missing",
        &format!(
            "[container.runtimes]\ndocker_sockets = [\"{0}/podman.sock\"]\n\
             containerd_sockets = [\"{0}/containerd.sock\"]\n",
            dir.display()
        ),
    );
    assert!(
        eventually(Duration::from_secs(20), || container_health(&daemon).0
            == "degraded"),
        "{:?}",
        container_health(&daemon)
    );
    let (_, message) = container_health(&daemon);
    assert!(
        message.contains(&format!(
            "docker API unreachable ({}/podman.sock: socket does not exist)",
            dir.display()
        )) && message.contains(&format!(
            "containerd unreachable ({}/containerd.sock: socket does not exist)",
            dir.display()
        )),
        "{message}"
    );
    queries_answer(&daemon);

    // Enrichment off: exactly the ID-and-runtime behaviour, and health says so.
    let off = Daemon::start("rt-off", "[container]\nenrichment = false\n");
    let (status, message) = container_health(&off);
    assert_eq!(status, "healthy");
    assert!(message.contains("enrichment off"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn garbage_silence_and_100_mb_answers_stay_bounded() {
    let dir = temp_dir("rt-fakes");
    let garbage = FakeRuntime::start(&dir.join("garbage.sock"), Misbehaviour::Garbage);
    let silent = FakeRuntime::start(&dir.join("silent.sock"), Misbehaviour::Silent);
    let chunked = FakeRuntime::start(&dir.join("chunked.sock"), Misbehaviour::HugeChunked);
    let declared = FakeRuntime::start(&dir.join("declared.sock"), Misbehaviour::HugeDeclared);
    let grpc = FakeRuntime::start(&dir.join("grpc.sock"), Misbehaviour::Garbage);
    let max_response = 1u64 << 20;
    let daemon = Daemon::start(
        "rt-fakes",
        &format!(
            "[container.runtimes]\n\
             docker_sockets = [\"{0}/garbage.sock\", \"{0}/silent.sock\", \"{0}/chunked.sock\", \"{0}/declared.sock\"]\n\
             containerd_sockets = [\"{0}/grpc.sock\"]\n\
             request_timeout_ms = 500\nmax_response_bytes = {max_response}\n\
             retry_initial_ms = 100\nretry_max_ms = 400\n",
            dir.display()
        ),
    );
    let expected = [
        format!(
            "{}/garbage.sock: answered something that is not the API",
            dir.display()
        ),
        format!("{}/silent.sock: no answer within 500 ms", dir.display()),
        format!(
            "{}/chunked.sock: answered more than {max_response} bytes (cut off unread)",
            dir.display()
        ),
        format!(
            "{}/declared.sock: answered more than {max_response} bytes (cut off unread)",
            dir.display()
        ),
        format!("containerd unreachable ({}/grpc.sock", dir.display()),
    ];
    let all_reported = eventually(Duration::from_secs(30), || {
        let (status, message) = container_health(&daemon);
        status == "degraded" && expected.iter().all(|e| message.contains(e.as_str()))
    });
    assert!(all_reported, "{:?}", container_health(&daemon));

    // Keep them misbehaving for a while (several reconnection rounds) while querying.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        queries_answer(&daemon);
    }
    let metrics = daemon.query_json(&["metrics"]);
    let e = &metrics["daemon"]["container_enrichment"];
    for counter in ["garbage", "timeouts", "too_large", "failures"] {
        assert!(e[counter].as_u64().unwrap_or(0) > 0, "{counter}: {e}");
    }
    assert!(
        chunked.connections.load(Ordering::Relaxed) >= 2,
        "reconnected"
    );
    // A 100 MB answer is never read whole: the daemon stops reading past its limit (the rest
    // is what socket buffers took before it closed).
    let most = chunked.most_bytes_sent.load(Ordering::Relaxed);
    assert!(
        most < HUGE_BYTES / 4,
        "the peer took {most} bytes of a chunked answer"
    );
    let most = declared.most_bytes_sent.load(Ordering::Relaxed);
    assert!(
        most < HUGE_BYTES / 4,
        "the peer took {most} bytes of a declared answer"
    );
    let peak = peak_rss_kib(daemon.pid());
    // The same daemon without enrichment, for comparison.
    let baseline = Daemon::start("rt-baseline", "[container]\nenrichment = false\n");
    queries_answer(&baseline);
    let base = peak_rss_kib(baseline.pid());
    eprintln!(
        "MEASURED daemon peak RSS with runtimes answering garbage, nothing and 100 MB: {peak} KiB \
         (same daemon without enrichment: {base} KiB; the chunked peer got {} bytes out, the \
         declared one {} bytes)",
        chunked.most_bytes_sent.load(Ordering::Relaxed),
        declared.most_bytes_sent.load(Ordering::Relaxed)
    );
    assert!(
        peak < base + 16 * 1024,
        "peak RSS {peak} KiB vs {base} KiB without enrichment: an answer was buffered"
    );
    let daemon_alive = std::fs::metadata(format!("/proc/{}", daemon.pid())).is_ok();
    assert!(daemon_alive);
    assert!(!daemon.stderr().contains("panicked"), "{}", daemon.stderr());
    drop((garbage, silent, chunked, declared, grpc));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_runtime_killed_mid_query_degrades_then_recovers() {
    let Some(mut fixture) = Fixture::start("rt-killed") else {
        return;
    };
    let daemon = Daemon::start(
        "rt-killed",
        &format!(
            "[container.runtimes]\ndocker_sockets = [\"{}\"]\ncontainerd_sockets = [\"{}\"]\n\
             retry_initial_ms = 100\nretry_max_ms = 500\n",
            fixture.podman_socket().display(),
            fixture.containerd_socket().display()
        ),
    );
    let first = fixture.podman_run("before-kill", &[]).unwrap();
    let known = |daemon: &Daemon, id: &str| {
        let c = daemon.query(&["container", id, "--json"]);
        c.code == Some(0)
            && serde_json::from_str::<Value>(c.stdout.trim()).is_ok_and(|v| v["image"] == IMAGE)
    };
    assert!(eventually(Duration::from_secs(30), || known(
        &daemon, &first
    )));

    // A burst of starts (each one described through the API) and the service killed in the
    // middle of it, with containerd killed too.
    let mut burst = Vec::new();
    for n in 0..3 {
        burst.push(fixture.podman_run(&format!("burst-{n}"), &[]).unwrap());
    }
    fixture.kill_podman_service();
    fixture.kill_containerd();
    assert!(
        eventually(Duration::from_secs(20), || {
            let (status, message) = container_health(&daemon);
            status == "degraded"
                && message.contains("podman unreachable")
                && message.contains("containerd unreachable")
        }),
        "{:?}",
        container_health(&daemon)
    );
    queries_answer(&daemon);
    assert!(known(&daemon, &first), "what was known stays known");

    // Started while the API is down (the podman CLI needs no service), then the service
    // returns: the reconnection lists and describes what was missed.
    let during = fixture.podman_run("during-outage", &[]).unwrap();
    fixture.restart_podman_service().unwrap();
    assert!(
        eventually(Duration::from_secs(30), || {
            known(&daemon, &during) && burst.iter().all(|id| known(&daemon, id))
        }),
        "not caught up after the restart: {:?}\n{}",
        container_health(&daemon),
        daemon.query(&["metrics"]).stdout
    );
    let (_, message) = container_health(&daemon);
    assert!(message.contains("enriching from podman"), "{message}");
    let metrics = daemon.query_json(&["metrics"]);
    assert!(
        metrics["daemon"]["container_enrichment"]["reconnects"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{metrics}"
    );
    assert!(!daemon.stderr().contains("panicked"));
}
