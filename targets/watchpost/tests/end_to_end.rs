//! `watchpost query` against a real running daemon: processes (entity IDs and ancestry compared
//! with `/proc` walked by the core's own functions), syscalls of both architectures, kernel
//! symbols against the real `/proc/kallsyms`, and the introspection commands.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Daemon, ProcFacts, eventually};

/// A `sleep` child that is killed and reaped on every exit path.
struct Sleeper(Child);

impl Sleeper {
    fn start() -> Sleeper {
        Sleeper(
            Command::new("sleep")
                .arg("300")
                .stdin(Stdio::null())
                .spawn()
                .expect("sleep spawns"),
        )
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn process_queries_agree_with_proc() {
    let daemon = Daemon::start("process", "");
    let facts = ProcFacts::new();
    let mut sleeper = Sleeper::start();
    let pid = sleeper.pid().to_string();

    // The rescan (or the kernel feed) picks the new process up; with eBPF its fork can reach
    // the store before its exec, so wait for the exec's name.
    let found = eventually(Duration::from_secs(20), || {
        let out = daemon.query(&["process", "--pid", &pid, "--json"]);
        out.code == Some(0)
            && serde_json::from_str::<serde_json::Value>(&out.stdout)
                .is_ok_and(|v| v["name"] == "sleep")
    });
    assert!(found, "sleep never appeared:\n{}", daemon.stderr());
    let info = daemon.query_json(&["process", "--pid", &pid]);
    let expected_id = facts.entity_id(sleeper.pid()).unwrap();
    assert_eq!(info["entity_id"], expected_id, "{info}");
    assert_eq!(info["pid"], sleeper.pid());
    assert_eq!(info["ppid"], std::process::id());
    assert_eq!(info["name"], "sleep");
    assert!(info["exe"].as_str().unwrap().ends_with("/sleep"), "{info}");
    assert_eq!(info["uid"], rustix::process::getuid().as_raw());
    assert_eq!(info["exit_time"], serde_json::Value::Null);

    // The same record by entity ID, in human form.
    let id = expected_id.to_string();
    let human = daemon.query(&["process", &id]);
    assert_eq!(human.code, Some(0));
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("pid ") && l.split_whitespace().nth(1) == Some(pid.as_str())),
        "{human:?}"
    );

    // Ancestry equals the /proc ppid walk, at the default depth and all the way up.
    for (args, depth) in [
        (vec!["ancestry", id.as_str()], 5),
        (vec!["ancestry", id.as_str(), "--depth", "64"], 64),
    ] {
        let chain = daemon.query_json(&args);
        let got: Vec<(u64, u64)> = chain
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["pid"].as_u64().unwrap(), p["entity_id"].as_u64().unwrap()))
            .collect();
        let walked: Vec<(u64, u64)> = facts
            .ancestry(sleeper.pid(), depth)
            .into_iter()
            .map(|(p, e)| (u64::from(p), u64::from(e)))
            .collect();
        assert_eq!(got, walked, "ancestry {args:?}");
    }
    assert_eq!(
        daemon.query(&["ancestry", &id, "--depth", "0"]).code,
        Some(0)
    );

    // The sleeper is among this test process's children.
    let me = facts.entity_id(std::process::id()).unwrap().to_string();
    let children = daemon.query_json(&["children", &me]);
    assert!(
        children
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["entity_id"] == expected_id),
        "{children}"
    );

    // Unknown entity IDs and pids: exit 1 with a one-line message.
    let missing = daemon.query(&["process", "1"]);
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert_eq!(missing.stderr.trim().lines().count(), 1, "{missing:?}");
    assert_eq!(daemon.query(&["ancestry", "1"]).code, Some(1));
    assert_eq!(daemon.query(&["children", "1"]).code, Some(1));
    assert_eq!(
        daemon.query(&["process", "--pid", "4294967295"]).code,
        Some(1)
    );

    // After the sleeper exits, the store keeps it (exit grace), marked exited.
    sleeper.stop();
    let exited = eventually(Duration::from_secs(20), || {
        let out = daemon.query(&["process", &id, "--json"]);
        out.code == Some(0)
            && serde_json::from_str::<serde_json::Value>(&out.stdout)
                .is_ok_and(|v| v["exit_time"].is_u64())
    });
    assert!(exited, "exit never recorded:\n{}", daemon.stderr());
    // ... while the pid no longer resolves.
    assert_eq!(daemon.query(&["process", "--pid", &pid]).code, Some(1));
}

#[test]
fn syscalls_of_both_architectures() {
    let daemon = Daemon::start("syscall", "");
    let host = std::env::consts::ARCH;
    let expected_execve = match host {
        "x86_64" => 59,
        "aarch64" => 221,
        other => panic!("no syscall table expected for {other}"),
    };
    let own = daemon.query_json(&["syscall", "execve"]);
    assert_eq!(own["id"], expected_execve);
    assert_eq!(own["arch"], host);

    for (arch, id) in [("x86_64", 59), ("aarch64", 221)] {
        let by_name = daemon.query_json(&["syscall", "execve", "--arch", arch]);
        assert_eq!(
            (by_name["id"].as_i64(), by_name["arch"].as_str()),
            (Some(id), Some(arch))
        );
        let by_id = daemon.query_json(&["syscall", &id.to_string(), "--arch", arch]);
        assert_eq!(by_id["name"], "execve");
    }
    let human = daemon.query(&["syscall", "execve", "--arch", "aarch64"]);
    assert_eq!(human.stdout, "execve = 221 (aarch64)\n");

    // `open` does not exist on aarch64: not found.
    let open = daemon.query(&["syscall", "open", "--arch", "aarch64"]);
    assert_eq!(open.code, Some(1), "{open:?}");
    assert!(
        open.stderr.contains("open") && open.stderr.contains("aarch64"),
        "{open:?}"
    );
    assert_eq!(
        daemon.query_json(&["syscall", "open", "--arch", "x86_64"])["id"],
        2
    );
    assert_eq!(daemon.query(&["syscall", "-1"]).code, Some(1));
    // An unknown architecture is a usage error.
    assert_eq!(
        daemon.query(&["syscall", "execve", "--arch", "mips"]).code,
        Some(2)
    );
}

/// The address of the first `_stext` line of the real kallsyms (0 when addresses are hidden).
fn kallsyms_address(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/kallsyms").unwrap();
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let address = fields.next()?;
        let _kind = fields.next()?;
        (fields.next()? == name).then(|| u64::from_str_radix(address, 16).ok())?
    })
}

#[test]
fn kernel_symbols_against_the_real_kallsyms() {
    let daemon = Daemon::start("symbols", "");
    let address = kallsyms_address("_stext").expect("_stext is in kallsyms");
    if address == 0 {
        // Addresses hidden (no privilege): the store must say so rather than answer.
        let health = daemon.query_json(&["health", "symbol"]);
        assert_eq!(health[0]["status"], "unhealthy", "{health}");
        eprintln!("kallsyms addresses hidden: only the store's refusal was checked");
        return;
    }
    let hex = format!("{address:#x}");

    let by_name = daemon.query_json(&["symbol", "_stext"]);
    assert_eq!(by_name["address"], address);

    let at = daemon.query_json(&["symbol", &hex]);
    let names: Vec<&str> = at
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"_stext"), "{at}");
    assert!(
        at.as_array()
            .unwrap()
            .iter()
            .all(|s| s["address"] == address && s["module"] == "system")
    );

    // Batch: the known address resolves, a bogus one is left out; nothing resolved is exit 1.
    let batch = daemon.query_json(&["symbols", &hex, "0x1"]);
    assert_eq!(batch.as_array().unwrap().len(), 1, "{batch}");
    assert_eq!(batch[0]["address"], address);
    assert_eq!(daemon.query(&["symbols", "0x1", "0x2"]).code, Some(1));
    assert_eq!(daemon.query(&["symbol", "0x1"]).code, Some(1));
    assert_eq!(
        daemon
            .query(&["symbol", "no_such_symbol_in_any_kernel_watchpost"])
            .code,
        Some(1)
    );
}

#[test]
fn introspection_and_json() {
    let daemon = Daemon::start("introspect", "");
    let stores = daemon.query_json(&["stores"]);
    let names: Vec<&str> = stores
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "container",
            "dns",
            "ip_reputation",
            "process",
            "symbol",
            "syscall",
            "system"
        ]
    );
    assert!(
        stores
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["lifecycle"] == "running")
    );

    let health = daemon.query_json(&["health"]);
    for store in [
        "process",
        "syscall",
        "system",
        "container",
        "dns",
        "ip_reputation",
        "persist",
    ] {
        let h = health
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["store"] == store)
            .unwrap();
        assert_eq!(h["status"], "healthy", "{store}: {h}");
    }
    assert_eq!(daemon.query(&["health", "no_such_store"]).code, Some(1));

    // Metrics count queries: a process lookup moves the process store's counters.
    let before = daemon.query_json(&["metrics", "process"]);
    let m = &before["stores"][0];
    assert_eq!(m["store"], "process");
    assert!(m["metrics"]["item_count"].as_i64().unwrap() > 0, "{before}");
    assert!(before.get("daemon").is_none());
    assert_eq!(daemon.query(&["process", "1"]).code, Some(1));
    let after = daemon.query_json(&["metrics", "process"]);
    assert_eq!(
        after["stores"][0]["metrics"]["cache_misses"]
            .as_u64()
            .unwrap(),
        m["metrics"]["cache_misses"].as_u64().unwrap() + 1
    );
    let all = daemon.query_json(&["metrics"]);
    assert_eq!(all["stores"].as_array().unwrap().len(), 7);
    assert!(
        all["persist"]["persist.file_bytes"].as_u64().unwrap() > 0,
        "{all}"
    );
    assert!(all["daemon"]["proc_scans"].as_u64().unwrap() >= 1, "{all}");
    assert!(all["daemon"]["requests"].as_u64().unwrap() >= 3, "{all}");

    let system = daemon.query_json(&["system"]);
    assert_eq!(system["architecture"], std::env::consts::ARCH);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(system["kernel_release"], release.trim());
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let btime: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(system["boot_time"], btime * 1_000_000_000);

    // Containers: none on this machine unless it runs some; the list answers either way.
    assert!(daemon.query_json(&["containers"]).is_array());
    assert!(
        daemon
            .query_json(&["containers", "--runtime", "docker"])
            .is_array()
    );
    // A prefix shorter than 12 is refused as invalid (exit 2), an unknown full ID is not found.
    assert_eq!(daemon.query(&["container", "abc"]).code, Some(2));
    assert_eq!(daemon.query(&["container", &"0".repeat(64)]).code, Some(1));
    assert_eq!(daemon.query(&["container", "--name", "nope"]).code, Some(1));

    // No DNS collector yet: the cache is empty, every lookup is not found (exit 1).
    let dns = daemon.query(&["dns", "example.com"]);
    assert_eq!(dns.code, Some(1), "{dns:?}");
    assert!(dns.stderr.contains("example.com"), "{dns:?}");
    assert_eq!(daemon.query(&["dns", "192.0.2.1"]).code, Some(1));

    // Errors are JSON too with --json.
    let out = daemon.query(&["process", "1", "--json"]);
    assert_eq!(out.code, Some(1));
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["error"]["kind"], "not_found");
}
