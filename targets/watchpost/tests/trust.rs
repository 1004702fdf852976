//! The CLI believes only the real daemon, and prints untrusted text escaped:
//! - a fake server run by uid 65534 on a socket in a world-writable directory is refused (its
//!   forged answer never printed); the same server is believed once `socket.daemon_user` names
//!   that user; the real daemon (root) answers;
//! - a process whose name and path hold a newline and a terminal escape sequence is shown with
//!   both escaped: no forged line, no escape byte reaching the terminal.

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Daemon, eventually, temp_dir, watchpost};

/// Environment variable that turns the `fake_server_child` test into a fake daemon.
const FAKE_SERVER_SOCKET: &str = "WATCHPOST_TEST_FAKE_SERVER_SOCKET";

/// A forged "process" answer: what an impersonator would like the operator to believe.
const FORGED: &str = r#"{"status":"ok","answer":{"type":"process","data":{"entity_id":1,"pid":1,"ppid":0,"name":"FORGED","exe":"/FORGED","start_time":1,"uid":0,"gid":0,"exit_time":null}}}"#;

/// Not a test of its own: when re-executed by `fake_server_is_refused…` with the variable set,
/// it serves forged answers on the socket until killed.
#[test]
fn fake_server_child() {
    let Some(path) = std::env::var_os(FAKE_SERVER_SOCKET) else {
        return;
    };
    let listener = UnixListener::bind(&path).expect("fake server binds");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut header = [0u8; 4];
        if stream.read_exact(&mut header).is_err() {
            continue;
        }
        let mut body = vec![0u8; (u32::from_be_bytes(header) as usize).min(1 << 16)];
        let _ = stream.read_exact(&mut body);
        let _ = stream.write_all(&(FORGED.len() as u32).to_be_bytes());
        let _ = stream.write_all(FORGED.as_bytes());
    }
}

#[test]
fn fake_server_is_refused_unless_configured_and_the_real_daemon_answers() {
    let available = rustix::process::geteuid().is_root();
    if !support::privileged_test_may_run(available, "fake server as uid 65534 (needs root)") {
        return;
    }
    let dir = temp_dir("fake-server");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let socket = dir.join("watchpost.sock");
    let mut server = support::self_command()
        .args([
            "--exact",
            "fake_server_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FAKE_SERVER_SOCKET, &socket)
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("fake server starts");
    let up = eventually(Duration::from_secs(30), || socket.exists());
    let sock = socket.to_str().unwrap();

    let refused = watchpost(&["query", "--socket", sock, "process", "--pid", "1"]);
    // Believed when the configuration names that user as the daemon's.
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!("[socket]\npath = \"{sock}\"\ndaemon_user = \"65534\"\n"),
    )
    .unwrap();
    let believed = watchpost(&[
        "query",
        "--config",
        config.to_str().unwrap(),
        "process",
        "--pid",
        "1",
    ]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(up, "the fake server never bound {sock}");

    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(
        refused.stderr.contains("refusing the server") && refused.stderr.contains("uid 65534"),
        "{refused:?}"
    );
    assert!(refused.stderr.contains("impersonating"), "{refused:?}");
    assert!(!refused.stdout.contains("FORGED"), "{refused:?}");

    assert_eq!(believed.code, Some(0), "{believed:?}");
    assert!(believed.stdout.contains("FORGED"), "{believed:?}");

    // The real daemon (root) answers.
    let daemon = Daemon::start("trusted", "");
    let out = daemon.query(&["process", "--pid", &std::process::id().to_string()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn names_and_paths_with_control_characters_print_escaped() {
    let daemon = Daemon::start("escape", "");
    let dir = temp_dir("escape-bin");
    // The kernel names the process after the file: newline and an ANSI colour sequence included.
    let name = "ev\nil\x1b[31mX";
    let program = dir.join(name);
    std::fs::copy("/bin/sleep", &program).unwrap();
    let mut child = Command::new(&program)
        .arg("60")
        .spawn()
        .expect("the oddly named sleep runs");
    let pid = child.id().to_string();
    let shown = eventually(Duration::from_secs(30), || {
        let out = daemon.query(&["process", "--pid", &pid, "--json"]);
        out.code == Some(0) && out.stdout.contains("X\"")
    });
    let human = daemon.query(&["process", "--pid", &pid]);
    let json = daemon.query(&["process", "--pid", &pid, "--json"]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(shown, "process never shown with its name: {json:?}");

    assert_eq!(human.code, Some(0), "{human:?}");
    assert!(!human.stdout.contains('\x1b'), "raw escape byte: {human:?}");
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("name") && l.ends_with("ev\\nil\\x1b[31mX")),
        "{human:?}"
    );
    assert!(
        human.stdout.contains("ev\\nil\\x1b[31mX"),
        "exe not escaped: {human:?}"
    );
    // One line per field: the newline forged none.
    assert!(human.stdout.lines().all(|l| l.contains("  ")), "{human:?}");
    // JSON keeps the exact bytes (escaped by the JSON encoder).
    let value: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(value["name"], name);
    assert!(value["exe"].as_str().unwrap().ends_with(name), "{value}");
    let _ = std::fs::remove_dir_all(&dir);
}
