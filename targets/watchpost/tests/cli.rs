//! The CLI without a daemon: the "not running" hint, configuration errors that name the bad
//! key, the embedded default, and usage errors.

mod support;

use support::{temp_dir, watchpost};

#[test]
fn daemon_not_running_exits_2_with_the_hint() {
    let dir = temp_dir("norun");
    let socket = dir.join("absent.sock");
    let out = watchpost(&["query", "--socket", socket.to_str().unwrap(), "stores"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("not running"), "{out:?}");
    assert!(out.stderr.contains("watchpost run"), "{out:?}");
    assert!(out.stdout.is_empty());

    // A stale socket file nobody listens on: the same diagnosis.
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    drop(listener);
    let out = watchpost(&[
        "query",
        "--socket",
        socket.to_str().unwrap(),
        "health",
        "--json",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("not running"), "{out:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn config_errors_name_the_bad_key() {
    let dir = temp_dir("config");
    let cases = [
        ("[process]\ncapacity = 0\n", "process.capacity"),
        ("[intake]\nqueue_batches = 0\n", "intake.queue_batches"),
        (
            "[collector]\nrescan_interval_ms = 0\n",
            "collector.rescan_interval_ms",
        ),
        ("[process]\ncapasity = 10\n", "capasity"),
        (
            "[detectors.shell_from_service]\ndepth = 0\n",
            "detectors.shell_from_service.depth",
        ),
        ("[socket]\nmax_clients = \"lots\"\n", "max_clients"),
        ("[nonsense]\nx = 1\n", "nonsense"),
    ];
    for (text, key) in cases {
        let file = dir.join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let out = watchpost(&["run", "--config", file.to_str().unwrap()]);
        assert_eq!(out.code, Some(2), "{text}: {out:?}");
        assert!(
            out.stderr.contains(key),
            "{text}: expected {key} in {:?}",
            out.stderr
        );
        assert!(out.stderr.contains(file.to_str().unwrap()), "{out:?}");
        let check = watchpost(&["config", "--check", file.to_str().unwrap()]);
        assert_eq!(check.code, Some(2));
        assert!(check.stderr.contains(key), "{check:?}");
    }
    let out = watchpost(&[
        "run",
        "--config",
        dir.join("missing.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("missing.toml"), "{out:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn default_config_prints_and_checks() {
    let out = watchpost(&["config", "--print-default"]);
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.contains("[process]") && out.stdout.contains("capacity = 4096"));
    assert!(out.stdout.contains("/run/watchpost/watchpost.sock"));
    assert!(out.stdout.contains("/var/lib/watchpost"));
    let dir = temp_dir("default");
    let file = dir.join("default.toml");
    std::fs::write(&file, &out.stdout).unwrap();
    let check = watchpost(&["config", "--check", file.to_str().unwrap()]);
    assert_eq!(check.code, Some(0), "{check:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["query"][..],
        &["query", "process"],
        &["query", "ancestry", "not-a-number"],
        &["query", "symbols"],
        &["frobnicate"],
    ] {
        let out = watchpost(args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
    }
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let out = support::watchpost(&["completions", shell]);
        assert_eq!(out.code, Some(0), "{out:?}");
        assert!(out.stdout.contains("watchpost"), "{shell}: {}", out.stdout);
        assert!(
            out.stdout.contains("follow"),
            "{shell} completes query events --follow"
        );
    }
    assert_ne!(support::watchpost(&["completions", "tcsh"]).code, Some(0));
    let man = support::watchpost(&["man"]);
    assert_eq!(man.code, Some(0));
    assert!(man.stdout.contains(".TH watchpost"), "{}", man.stdout);
    assert!(man.stdout.contains("query"));
}

#[test]
fn events_without_follow_is_a_usage_error() {
    let out = support::watchpost(&["query", "events"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("--follow"), "{}", out.stderr);
}
