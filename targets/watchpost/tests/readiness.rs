//! systemd readiness (`Type=notify`): started with `NOTIFY_SOCKET`, the daemon sends
//! `READY=1` (with a `STATUS=` line saying how the stores are fed) only once queries can be
//! answered — a query sent right after the datagram arrives is answered — and `STOPPING=1` when
//! SIGTERM starts the shutdown. The socket here stands in for systemd's.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The next datagram (None after `limit`).
fn receive(socket: &UnixDatagram, limit: Duration) -> Option<String> {
    socket.set_read_timeout(Some(limit)).unwrap();
    let mut buffer = [0u8; 4096];
    let n = socket.recv(&mut buffer).ok()?;
    Some(String::from_utf8_lossy(&buffer[..n]).into_owned())
}

#[test]
fn ready_once_queries_are_answered_and_stopping_on_sigterm() {
    let dir = support::temp_dir("notify");
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let socket = dir.join("s.sock");
    let config = dir.join("watchpost.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\ndata_dir = \"{}\"\n[socket]\npath = \"{}\"\n[collector]\nebpf = \"off\"\n",
            dir.join("data").display(),
            socket.display()
        ),
    )
    .unwrap();
    let mut child = support::bin_command()
        .args(["run", "--config", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();

    let ready = receive(&notify, support::START_DEADLINE);
    let ready = ready.unwrap_or_else(|| panic!("no READY=1:\n{}", stderr()));
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    assert!(
        ready
            .lines()
            .any(|l| l == "STATUS=polling /proc (collector.ebpf = \"off\")"),
        "{ready}"
    );
    // Ready means answerable: no retry.
    let reply = support::raw_exchange(&socket, &support::frame(br#"{"command":"stores"}"#));
    assert_eq!(
        reply.as_ref().map(|r| r["status"].clone()),
        Some("ok".into()),
        "{reply:?}\n{}",
        stderr()
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let stopping = receive(&notify, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no STOPPING=1:\n{}", stderr()));
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}\n{}", stderr());
    let _ = std::fs::remove_dir_all(&dir);
}
