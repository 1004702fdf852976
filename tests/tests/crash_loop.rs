//! Crash loop: the daemon is killed with SIGKILL at random moments while it snapshots under a
//! synthetic process-event stream, at least 200 times (`WATCHPOST_CRASH_LOOP_ROUNDS` changes
//! it). Every restart opens the file and restores one committed snapshot: the file verifies
//! (the daemon refuses a file whose records do not match the metadata committed with them, and
//! would report it moved aside), nothing committed before the kill is lost, and the daemon never
//! refuses to start or crash-loops.

use std::time::{Duration, Instant};

use watchpost_tests::{Rng, Site, privileged_test_may_run};

#[test]
fn kill_9_at_random_moments_always_restores_one_committed_snapshot() {
    if !privileged_test_may_run("crash loop") {
        return;
    }
    let rounds: u32 = std::env::var("WATCHPOST_CRASH_LOOP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut rng = Rng::new();
    let mut site = Site::new(
        "crash",
        "[collector]\nsynthetic_events_per_second = 20000\n\
         [persist]\nsnapshot_interval_ms = 1000\nchunk_records = 1024\n",
    );
    let started = Instant::now();
    let mut committed_before_kill = 0u64;
    let mut restored_processes = 0u64;
    for round in 0..rounds {
        let mut d = site.start(&[]);
        let status = d.persistence();
        let health = d.persist_health();
        assert_eq!(
            health["status"],
            "healthy",
            "round {round}: {health}\n{}",
            d.stderr()
        );
        assert!(status["moved_aside"].is_null(), "round {round}: {status}");
        let restored = status["restored_sequence"].as_u64().unwrap();
        assert!(
            restored >= committed_before_kill,
            "round {round}: restored sequence {restored} is older than {committed_before_kill}, \
             committed before the kill"
        );
        // A kill before the first snapshot leaves nothing to restore; after one, never.
        if committed_before_kill > 0 {
            assert!(restored > 0, "round {round}: nothing restored: {status}");
            restored_processes += status["stores"]["process"]["restored"]
                .as_u64()
                .unwrap_or(0);
        }
        // Sometimes ask for a snapshot right before the kill, to land inside one.
        if rng.below(2) == 0 {
            let socket = site.socket.clone();
            std::thread::spawn(move || {
                let _ = watchpost_tests::exchange(&socket, r#"{"command":"snapshot"}"#);
            });
        }
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        committed_before_kill = d
            .ask(r#"{"command":"persistence"}"#)
            .and_then(|r| r["answer"]["data"]["sequence"].as_u64())
            .unwrap_or(committed_before_kill);
        d.kill9();
    }
    assert!(
        rounds < 10 || restored_processes > 0,
        "{rounds} rounds and no process record was ever restored"
    );
    let d = site.start(&[]);
    assert_eq!(d.persist_health()["status"], "healthy");
    assert!(site.moved_aside().is_empty(), "{:?}", site.moved_aside());
    eprintln!(
        "{rounds} kill -9 restarts in {:.0} s, {restored_processes} process records restored in all",
        started.elapsed().as_secs_f64()
    );
}
