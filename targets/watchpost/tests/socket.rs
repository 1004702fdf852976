//! The query socket under misuse, against a real daemon: garbage, oversize frames, slow clients,
//! unknown commands, too many clients, unprivileged peers; its file mode; and a clean stop on
//! SIGTERM that removes it.

mod support;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Daemon, connect, eventually, frame, raw_exchange, read_reply};

fn error_kind(reply: &serde_json::Value) -> &str {
    assert_eq!(reply["status"], "error", "{reply}");
    reply["error"]["kind"].as_str().unwrap()
}

/// The daemon still answers a normal query.
fn still_answers(daemon: &Daemon) {
    let out = daemon.query(&["stores"]);
    assert_eq!(
        out.code,
        Some(0),
        "daemon stopped answering: {out:?}\n{}",
        daemon.stderr()
    );
}

#[test]
fn garbage_oversize_slow_and_unknown_requests_get_error_replies() {
    let daemon = Daemon::start(
        "abuse",
        "[socket]\nmax_request_bytes = 4096\nread_timeout_ms = 400\n",
    );
    let socket = daemon.socket.as_path();

    // Text where a length belongs reads as a huge length: refused from the header.
    let reply = raw_exchange(socket, b"hello daemon, how are you?\n").expect("a reply");
    assert_eq!(error_kind(&reply), "too_large");
    still_answers(&daemon);

    // A frame announcing more than the limit, body never sent.
    let reply = raw_exchange(socket, &100_000u32.to_be_bytes()).expect("a reply");
    assert_eq!(error_kind(&reply), "too_large");
    assert!(
        reply["error"]["message"].as_str().unwrap().contains("4096"),
        "{reply}"
    );

    // Garbage inside a well-formed frame, an unknown command, an unknown field, a bad value,
    // an empty frame: each answered, and the same connection keeps working.
    let mut stream = connect(socket).unwrap();
    for bad in [
        &b"\x00\xff not json"[..],
        br#"{"command":"format_disk"}"#,
        br#"{"command":"stores","please":true}"#,
        br#"{"command":"process","entity_id":-5}"#,
        br#"{"command":"symbols","addresses":[]}"#,
        b"",
    ] {
        stream.write_all(&frame(bad)).unwrap();
        let reply = read_reply(&mut stream).expect("a reply on the same connection");
        assert_eq!(
            error_kind(&reply),
            "bad_request",
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    stream
        .write_all(&frame(
            br#"{"command":"syscall_by_name","name":"read","arch":"x86_64"}"#,
        ))
        .unwrap();
    let reply = read_reply(&mut stream).unwrap();
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_eq!(reply["answer"]["data"]["id"], 0);
    drop(stream);

    // A slow client (half a header, then nothing) is answered "timeout" and cut off.
    let mut slow = connect(socket).unwrap();
    slow.write_all(&[0, 0]).unwrap();
    let started = Instant::now();
    let reply = read_reply(&mut slow).expect("a timeout reply");
    assert_eq!(error_kind(&reply), "timeout");
    assert!(started.elapsed() < Duration::from_secs(9));
    assert!(
        read_reply(&mut slow).is_none(),
        "connection closed after the timeout"
    );

    // A client that connects and vanishes mid-frame does no harm.
    let mut vanishing = connect(socket).unwrap();
    vanishing.write_all(&[0, 0, 0, 50, b'{']).unwrap();
    drop(vanishing);

    still_answers(&daemon);
    let metrics = daemon.query_json(&["metrics"]);
    assert!(
        metrics["daemon"]["bad_requests"].as_u64().unwrap() >= 9,
        "{metrics}"
    );
}

#[test]
fn clients_beyond_the_limit_are_told_busy() {
    let daemon = Daemon::start(
        "busy",
        "[socket]\nmax_clients = 2\nread_timeout_ms = 3000\n",
    );
    let socket = daemon.socket.as_path();
    // Two idle clients hold both slots (until their read timeout).
    let _a = connect(socket).unwrap();
    let _b = connect(socket).unwrap();
    // Accepting is in order, so by the time the third is accepted the two hold their slots.
    let reply = raw_exchange(socket, &frame(br#"{"command":"stores"}"#)).expect("a reply");
    assert_eq!(error_kind(&reply), "busy");
    drop((_a, _b));
    // Slots come back when clients leave.
    let answered = eventually(Duration::from_secs(10), || {
        raw_exchange(socket, &frame(br#"{"command":"stores"}"#))
            .is_some_and(|r| r["status"] == "ok")
    });
    assert!(answered);
    let metrics = daemon.query_json(&["metrics"]);
    assert!(metrics["daemon"]["connections_busy"].as_u64().unwrap() >= 1);
}

#[test]
fn socket_is_0600_and_sigterm_stops_cleanly_removing_it() {
    let mut daemon = Daemon::start("sigterm", "");
    let meta = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());

    // A second daemon on the same socket (and data directory) refuses to start and leaves the
    // socket alone; the data-directory lock is checked first.
    let second = support::watchpost(&[
        "run",
        "--config",
        daemon.dir.join("watchpost.toml").to_str().unwrap(),
    ]);
    assert_eq!(second.code, Some(2), "{second:?}");
    assert!(
        second.stderr.contains("already listening")
            || second.stderr.contains("in use by another watchpost daemon"),
        "{second:?}"
    );
    assert!(daemon.socket.exists());
    still_answers(&daemon);

    let status = daemon.terminate();
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        daemon.stderr()
    );
    assert!(!daemon.socket.exists(), "socket left behind");
    let log = daemon.stderr();
    assert!(log.contains("SIGTERM"), "{log}");
    // Data directory created with mode 0700.
    let data = std::fs::metadata(daemon.dir.join("data")).unwrap();
    assert_eq!(data.permissions().mode() & 0o777, 0o700);
}

#[test]
fn group_socket_is_0660() {
    let gid = rustix::process::getegid().as_raw();
    let daemon = Daemon::start("group", &format!("[socket]\ngroup = \"{gid}\"\n"));
    let meta = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), gid);
    still_answers(&daemon);
}

/// Runs the CLI as uid/gid 65534 (nobody) through `setpriv`, if this machine has it and we are
/// root.
fn query_as_nobody(socket: &Path) -> Option<support::CliOutput> {
    let available = rustix::process::geteuid().is_root() && Path::new("/usr/bin/setpriv").exists();
    if !support::privileged_test_may_run(available, "unprivileged-peer checks (root and setpriv)") {
        return None;
    }
    let out = Command::new("/usr/bin/setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            support::BIN,
        ])
        .args(["query", "--socket", socket.to_str().unwrap(), "stores"])
        .output()
        .unwrap();
    Some(out.into())
}

#[test]
fn unprivileged_peers_are_refused_by_mode_and_by_credentials() {
    let daemon = Daemon::start("peer", "");
    // The file mode keeps others out.
    let Some(out) = query_as_nobody(&daemon.socket) else {
        return;
    };
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("permission denied"), "{out:?}");
    // With the mode loosened by hand, the peer credential check still refuses.
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&daemon.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = query_as_nobody(&daemon.socket).unwrap();
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("not allowed"), "{out:?}");
    let metrics = daemon.query_json(&["metrics"]);
    assert_eq!(metrics["daemon"]["connections_denied"], 1, "{metrics}");
}
