//! Restart safety end to end, against the real binary, real processes and real kills: the
//! process tree survives a SIGKILL with the same entity IDs, ancestry and executables; a process
//! that ends while the daemon is down comes back exited with an unknown exit time; 10,000
//! reputation verdicts written through the socket survive a SIGKILL right after the write under
//! every conflict policy; a reboot keeps writable stores but no processes; a second daemon on the
//! same data directory refuses to start.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use watchpost_tests::{Daemon, Site, eventually, privileged_test_may_run};

const WAIT: Duration = Duration::from_secs(60);

/// `sh -c 'sh -c "sleep 300"'`: (outer shell, middle shell, sleep) pids.
struct Chain {
    outer: Child,
    middle: u32,
    sleep: u32,
}

fn child_of(ppid: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = stat.rsplit_once(')')?.1;
        let ppid_here: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
        (ppid_here == ppid).then_some(pid)
    })
}

impl Chain {
    fn start() -> Chain {
        let outer = Command::new("sh")
            .args(["-c", "sh -c 'sleep 300'"])
            .stdin(Stdio::null())
            .spawn()
            .expect("sh runs");
        let mut middle = None;
        assert!(eventually(WAIT, || {
            middle = child_of(outer.id());
            middle.is_some()
        }));
        let middle = middle.unwrap();
        let mut sleep = None;
        assert!(eventually(WAIT, || {
            sleep = child_of(middle).filter(|&p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            });
            sleep.is_some()
        }));
        Chain {
            outer,
            middle,
            sleep: sleep.unwrap(),
        }
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        for pid in [self.sleep, self.middle] {
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        let _ = self.outer.kill();
        let _ = self.outer.wait();
    }
}

fn process_by_pid(d: &Daemon, pid: u32) -> Option<Value> {
    let reply = d.ask(&format!(r#"{{"command":"process_by_pid","pid":{pid}}}"#))?;
    (reply["status"] == "ok").then(|| reply["answer"]["data"].clone())
}

fn ancestry(d: &Daemon, entity_id: u64) -> Vec<Value> {
    d.ok(&format!(
        r#"{{"command":"ancestry","entity_id":{entity_id},"depth":3}}"#
    ))
    .as_array()
    .cloned()
    .unwrap_or_default()
}

/// (entity id, pid, exe, start time, exited, exit time unknown) of each entry.
fn summary(list: &[Value]) -> Vec<(u64, u64, String, u64, bool, bool)> {
    list.iter()
        .map(|p| {
            (
                p["entity_id"].as_u64().unwrap(),
                p["pid"].as_u64().unwrap(),
                p["exe"].as_str().unwrap_or("").to_owned(),
                p["start_time"].as_u64().unwrap(),
                !p["exit_time"].is_null(),
                p["exit_time_unknown"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// Starts a site, waits until the daemon knows the chain's sleep, takes a snapshot, returns the
/// sleep's ancestry as the daemon saw it.
fn known_and_snapshotted(site: &mut Site, chain: &Chain) -> (Daemon, u64, Vec<Value>) {
    let d = site.start(&[]);
    let mut sleep = None;
    assert!(
        eventually(WAIT, || {
            sleep = process_by_pid(&d, chain.sleep);
            sleep.is_some()
        }),
        "the daemon never saw the sleep:\n{}",
        d.stderr()
    );
    let id = sleep.unwrap()["entity_id"].as_u64().unwrap();
    let before = ancestry(&d, id);
    assert_eq!(before.len(), 3, "{before:?}");
    d.ok(r#"{"command":"snapshot"}"#);
    (d, id, before)
}

#[test]
fn the_process_tree_survives_a_sigkill_with_the_same_ids() {
    if !privileged_test_may_run("restart: process tree") {
        return;
    }
    let mut site = Site::new("tree", "");
    let chain = Chain::start();
    let (mut d, id, before) = known_and_snapshotted(&mut site, &chain);
    d.kill9();
    let d = site.start(&[]);
    let status = d.persistence();
    assert!(status["restored_same_boot"].as_bool().unwrap(), "{status}");
    assert!(
        status["stores"]["process"]["restored"].as_u64().unwrap() > 0,
        "{status}"
    );
    let after = ancestry(&d, id);
    assert_eq!(summary(&after), summary(&before));
    // The executables are the files the kernel ran.
    for s in summary(&after) {
        let exe = std::fs::read_link(format!("/proc/{}/exe", s.1)).unwrap();
        assert_eq!(s.2, exe.display().to_string(), "pid {}", s.1);
    }
    assert!(
        summary(&after).iter().all(|s| !s.4),
        "all still running: {after:?}"
    );
}

#[test]
fn a_shell_killed_while_the_daemon_is_down_comes_back_exited_with_the_flag() {
    if !privileged_test_may_run("restart: exited while down") {
        return;
    }
    let mut site = Site::new("middle", "");
    let chain = Chain::start();
    let (mut d, id, before) = known_and_snapshotted(&mut site, &chain);
    d.kill9();
    let middle = rustix::process::Pid::from_raw(chain.middle as i32).unwrap();
    rustix::process::kill_process(middle, rustix::process::Signal::KILL).unwrap();
    assert!(eventually(WAIT, || !std::path::Path::new(&format!(
        "/proc/{}",
        chain.middle
    ))
    .exists()
        || std::fs::read_to_string(format!(
            "/proc/{}/stat",
            chain.middle
        ))
        .is_ok_and(|s| s.contains(") Z"))));
    let d = site.start(&[]);
    let after = summary(&ancestry(&d, id));
    let before = summary(&before);
    // Same IDs, same places in the ancestry.
    assert_eq!(
        after.iter().map(|s| (s.0, s.1, s.3)).collect::<Vec<_>>(),
        before.iter().map(|s| (s.0, s.1, s.3)).collect::<Vec<_>>()
    );
    // The sleep still runs; the middle shell exited while nobody watched.
    assert!(!after[0].4, "{after:?}");
    assert!(after[1].4 && after[1].5, "middle shell: {after:?}");
    let middle_id = after[1].0;
    let text = std::process::Command::new(watchpost_tests::binary())
        .args(["query", "--socket"])
        .arg(&site.socket)
        .args(["process", &middle_id.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("exit time unknown"), "{text}");
    assert!(d.persistence()["exited_while_down"].as_u64().unwrap() >= 1);
}

/// Feed A and feed B each say something about the same 5,000 addresses: 10,000 entries.
fn verdicts(i: u32) -> [(&'static str, &'static str, u32, u64); 2] {
    [
        ("feed-a", "deny", 1 + i % 10, 1_000 + u64::from(i)),
        (
            "feed-b",
            "allow",
            1 + (i * 7) % 10,
            1_000 + u64::from(i % 3) * 2_000,
        ),
    ]
}

fn ip(i: u32) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

/// The source that must win `i` under `policy` (priorities: feed-a 5, feed-b 1).
fn winner(policy: &str, i: u32) -> &'static str {
    let [a, b] = verdicts(i);
    let prio = |s: &str| if s == "feed-a" { 5 } else { 1 };
    let key = |v: (&'static str, &str, u32, u64)| match policy {
        "last_write_wins" => (v.3, 0, prio(v.0)),
        "max_severity" => (u64::from(v.2), v.3, prio(v.0)),
        _ => (prio(v.0) as u64, v.3, 0),
    };
    // Ties end in the smaller name: feed-a.
    if key(b) > key(a) { b.0 } else { a.0 }
}

#[test]
fn ten_thousand_reputation_entries_survive_a_sigkill_under_every_policy() {
    if !privileged_test_may_run("restart: reputation") {
        return;
    }
    const N: u32 = 5_000;
    for policy in ["last_write_wins", "max_severity", "priority_based"] {
        let mut site = Site::new(
            "reputation",
            &format!(
                "[ip_reputation]\npolicy = \"{policy}\"\nmax_entries = 20000\n\
                 [ip_reputation.priorities]\n\"feed-a\" = 5\n\"feed-b\" = 1\n\
                 [persist]\nsnapshot_interval_ms = 86400000\n"
            ),
        );
        let mut d = site.start(&[]);
        for source in 0..2 {
            for chunk in (0..N).collect::<Vec<_>>().chunks(250) {
                let records: Vec<Value> = chunk
                    .iter()
                    .map(|&i| {
                        let (_, status, severity, t) = verdicts(i)[source];
                        serde_json::json!({"ip": ip(i), "status": status, "severity": severity, "last_updated": t})
                    })
                    .collect();
                let request = serde_json::json!({
                    "command": "reputation_write",
                    "source": verdicts(0)[source].0,
                    "records": records,
                });
                let w = d.ok(&request.to_string());
                assert_eq!(w["persisted"], true);
            }
        }
        // Right after the last write returned: no snapshot was taken (period: one day).
        d.kill9();
        let d = site.start(&[]);
        let metrics = d.ok(r#"{"command":"metrics","store":"ip_reputation"}"#);
        assert_eq!(
            metrics["stores"][0]["metrics"]["item_count"], 10_000,
            "{policy}"
        );
        for i in 0..N {
            let v = d.ok(&format!(r#"{{"command":"reputation","ip":"{}"}}"#, ip(i)));
            let want = winner(policy, i);
            assert_eq!(v["source"], want, "{policy} {}: {v}", ip(i));
            let status = if want == "feed-a" { "deny" } else { "allow" };
            assert_eq!(v["status"], status, "{policy} {}", ip(i));
        }
    }
}

#[test]
fn a_reboot_restores_writable_stores_but_no_processes() {
    if !privileged_test_may_run("restart: reboot") {
        return;
    }
    let mut site = Site::new("reboot", "");
    let mut d = site.start(&[("WATCHPOST_TEST_BOOT_ID", "11111111-aaaa")]);
    d.ok(r#"{"command":"reputation_write","source":"local","records":[{"ip":"203.0.113.7","status":"deny","severity":9}]}"#);
    d.ok(r#"{"command":"snapshot"}"#);
    assert!(
        d.persistence()["stores"]["process"]["records"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(d.terminate(), Some(0));
    let d = site.start(&[("WATCHPOST_TEST_BOOT_ID", "22222222-bbbb")]);
    let status = d.persistence();
    assert_eq!(status["restored_same_boot"], false, "{status}");
    assert_eq!(
        status["stores"]["process"]["restored"]
            .as_u64()
            .unwrap_or(0),
        0,
        "{status}"
    );
    assert_eq!(status["stores"]["ip_reputation"]["restored"], 1, "{status}");
    let v = d.ok(r#"{"command":"reputation","ip":"203.0.113.7"}"#);
    assert_eq!(
        (v["source"].as_str(), v["status"].as_str()),
        (Some("local"), Some("deny"))
    );
}

#[test]
fn a_second_daemon_on_the_same_data_dir_refuses_to_start() {
    if !privileged_test_may_run("restart: second daemon") {
        return;
    }
    let mut site = Site::new("second", "");
    let first = site.start(&[]);
    // Same data directory, another socket.
    let other = site.dir.join("other.toml");
    let text = std::fs::read_to_string(&site.config)
        .unwrap()
        .replace("s.sock", "other.sock");
    std::fs::write(&other, text).unwrap();
    site.config = other;
    let mut second = site.spawn(&[]);
    let code = second.wait_exit(WAIT);
    assert_eq!(code, Some(2), "{}", second.stderr());
    assert!(
        second
            .stderr()
            .contains("in use by another watchpost daemon"),
        "{}",
        second.stderr()
    );
    // The first one's file is untouched and it still answers.
    assert!(first.persist_health()["status"] == "healthy");
    assert!(site.moved_aside().is_empty());
}
