//! Real-kernel tests of the eBPF collector: real processes, a real DNS server, the real kernel.
//!
//! Needs root. If the kernel refuses to load the programs, the run FAILS (loudly, with the
//! error): a CI machine that silently loses its eBPF coverage is a regression. Set
//! `WATCHPOST_SKIP_EBPF_TESTS=1` to skip on purpose (the skip is printed).
//!
//! A custom harness (`harness = false`) so that one collector, loaded once, serves every test
//! (loading takes a while and two collectors would each see everything), and so this binary can
//! re-run itself as a helper child (`--thread-group-child`, `--expect-refusal`). Tests run one
//! after another; each looks only at events logged after it started ([`EventLog::mark`]), since
//! the machine runs other processes too. `cargo test -p watchpost-ebpf --test kernel [filter]`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use simple_dns::rdata::RData;
use watchpost_core::dns::{DnsCache, DnsCacheConfig, DnsOrigin};
use watchpost_core::entity_id::entity_id;
use watchpost_core::process::{ProcessTable, ProcessTableConfig};
use watchpost_core::start_time::{BootClock, parse_proc_stat};
use watchpost_core::system_info::parse_boot_time;
use watchpost_core::time::NANOS_PER_SEC;
use watchpost_ebpf::{
    CgroupOp, Collector, CollectorOptions, DnsAnswer, KernelEvent, LoadError, ModuleLoadSignal,
    ProcessExec, ProcessExit, ProcessFork, SymbolReloadCause,
};

const SKIP_VAR: &str = "WATCHPOST_SKIP_EBPF_TESTS";
/// How long any expected event may take to show up.
const EVENT_DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The event log the collector task fills.

#[derive(Default)]
struct EventLog {
    events: Mutex<Vec<KernelEvent>>,
    grew: Condvar,
}

impl EventLog {
    fn push_all(&self, batch: Vec<KernelEvent>) {
        self.events.lock().unwrap().extend(batch);
        self.grew.notify_all();
    }

    /// Position after every event logged so far: events of anything started later come after.
    fn mark(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// Waits until `done` holds for the events logged since `mark`; returns them. Panics with
    /// `what` on timeout.
    fn wait_until(
        &self,
        mark: usize,
        what: &str,
        mut done: impl FnMut(&[KernelEvent]) -> bool,
    ) -> Vec<KernelEvent> {
        let deadline = Instant::now() + EVENT_DEADLINE;
        let mut events = self.events.lock().unwrap();
        loop {
            let since = &events[mark.min(events.len())..];
            if done(since) {
                return since.to_vec();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out after {EVENT_DEADLINE:?} waiting for {what}"
            );
            events = self.grew.wait_timeout(events, deadline - now).unwrap().0;
        }
    }
}

fn forks_of(events: &[KernelEvent], pid: u32) -> Vec<&ProcessFork> {
    events
        .iter()
        .filter_map(|e| match e {
            KernelEvent::Fork(f) if f.process.pid == pid => Some(f),
            _ => None,
        })
        .collect()
}

fn execs_of(events: &[KernelEvent], pid: u32) -> Vec<&ProcessExec> {
    events
        .iter()
        .filter_map(|e| match e {
            KernelEvent::Exec(x) if x.process.pid == pid => Some(x),
            _ => None,
        })
        .collect()
}

fn exits_of(events: &[KernelEvent], pid: u32) -> Vec<&ProcessExit> {
    events
        .iter()
        .filter_map(|e| match e {
            KernelEvent::Exit(x) if x.process.pid == pid => Some(x),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// /proc, the independent truth.

struct ProcTruth {
    ppid: u32,
    start_ticks: u64,
    uid: u32,
    gid: u32,
    exe: PathBuf,
}

fn proc_truth(pid: u32) -> ProcTruth {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).expect("process is alive");
    let stat = parse_proc_stat(&stat).expect("valid /proc/<pid>/stat");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let id_line = |key: &str| -> u32 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|real| real.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
    };
    ProcTruth {
        ppid: stat.ppid,
        start_ticks: stat.start_ticks,
        uid: id_line("Uid:"),
        gid: id_line("Gid:"),
        exe: std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
    }
}

/// The boot clock computed independently of the collector, with the core's functions.
fn proc_boot_clock() -> BootClock {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let btime_ns = parse_boot_time(&stat).unwrap();
    let ticks = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    let ticks: u64 = String::from_utf8(ticks.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    BootClock::new(btime_ns / NANOS_PER_SEC, ticks).unwrap()
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(stat) = std::fs::read(format!("/proc/{child}/stat"))
            && let Ok(stat) = parse_proc_stat(&stat)
            && stat.ppid == pid
        {
            children.push(child);
        }
    }
    children
}

fn poll_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + EVENT_DEADLINE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill(pid: u32, signal: i32) {
    // SAFETY: plain syscall on a pid this test started.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

// ---------------------------------------------------------------------------------------------
// Tests.

struct Context {
    log: Arc<EventLog>,
    collector: CollectorHandle,
    runtime: tokio::runtime::Handle,
}

/// What tests can ask of the shared collector while its task runs.
struct CollectorHandle {
    lost: watchpost_ebpf::LostEventCounter,
    reload: watchpost_ebpf::SymbolReloadTrigger,
    attachments: watchpost_ebpf::Attachments,
    clock: BootClock,
}

/// `sh -c 'sh -c "sleep 30"'`: every process of the chain is seen forked, exec'd and exited,
/// with /proc's parent, executable, ids and start time (so the same entity ID).
fn process_chain(ctx: &Context) {
    let mark = ctx.log.mark();
    let mut outer = Command::new("sh")
        .args(["-c", "sh -c \"sleep 30\""])
        // The shell reports the SIGKILL below ("Killed"): not test output.
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let outer_pid = outer.id();
    // Walk /proc down from the outer shell to `sleep` (a shell may exec its last command).
    let chain: Vec<u32> = poll_until("the sleep at the end of the chain", || {
        let mut chain = vec![outer_pid];
        loop {
            let last = *chain.last().unwrap();
            let exe = std::fs::read_link(format!("/proc/{last}/exe")).ok()?;
            if exe.file_name().is_some_and(|n| n == "sleep") {
                return Some(chain);
            }
            match children_of(last).as_slice() {
                [only] => chain.push(*only),
                _ => return None,
            }
        }
    });
    assert!(chain.len() >= 2, "chain {chain:?} too short");
    let clock = proc_boot_clock();
    let truths: Vec<(u32, ProcTruth)> = chain.iter().map(|&p| (p, proc_truth(p))).collect();
    let my_pid = std::process::id();
    let my_start = clock
        .from_proc_ticks(proc_truth(my_pid).start_ticks)
        .unwrap();

    let events = ctx
        .log
        .wait_until(mark, "fork+exec of every process in the chain", |ev| {
            chain
                .iter()
                .all(|&p| !forks_of(ev, p).is_empty() && !execs_of(ev, p).is_empty())
        });
    for (pid, truth) in &truths {
        let forks = forks_of(&events, *pid);
        assert_eq!(forks.len(), 1, "pid {pid}: {forks:?}");
        let fork = forks[0];
        let proc_start = clock.from_proc_ticks(truth.start_ticks).unwrap();
        assert_eq!(fork.process.ppid, truth.ppid, "pid {pid} parent");
        assert_eq!(fork.process.start_time, proc_start, "pid {pid} start time");
        assert_eq!(
            fork.process.entity_id(),
            entity_id(*pid, proc_start),
            "pid {pid}: entity ID from eBPF differs from /proc's"
        );
        let parent_start = clock
            .from_proc_ticks(proc_truth(truth.ppid).start_ticks)
            .unwrap();
        assert_eq!(
            fork.process.parent_start_time, parent_start,
            "pid {pid} parent start"
        );
        if *pid == outer_pid {
            assert_eq!(fork.process.ppid, my_pid);
            assert_eq!(fork.process.parent_start_time, my_start);
        }
        let last_exec = *execs_of(&events, *pid).last().unwrap();
        assert_eq!(
            std::fs::canonicalize(&last_exec.filename).unwrap(),
            truth.exe,
            "pid {pid}: exec'd {:?}",
            last_exec.filename
        );
        // The path resolved in the kernel is /proc's, with no help from userspace.
        assert_eq!(
            Path::new(&last_exec.exe),
            truth.exe,
            "pid {pid}: resolved {:?}",
            last_exec.exe
        );
        assert_eq!(last_exec.exe_flags, Default::default());
        assert_eq!(last_exec.process.start_time, proc_start);
        assert_eq!(
            (last_exec.process.uid, last_exec.process.gid),
            (truth.uid, truth.gid)
        );
        assert_eq!(last_exec.process.ppid, truth.ppid);
        assert!(last_exec.time >= fork.time, "exec before fork for {pid}");
    }

    // The same events, converted, build the core's process table: the ancestry of `sleep` is
    // the chain, found by the entity ID computed from /proc.
    let mut table = ProcessTable::new(ProcessTableConfig {
        capacity: 64,
        ..ProcessTableConfig::default()
    });
    let mut now = 0;
    for event in &events {
        match event {
            KernelEvent::Fork(f) if chain.contains(&f.process.pid) => {
                now = f.time;
                table.apply_fork(&f.to_core(), now);
            }
            KernelEvent::Exec(x) if chain.contains(&x.process.pid) => {
                now = x.time;
                table.apply_exec(&x.to_core(), now);
            }
            _ => {}
        }
    }
    let sleep_pid = *chain.last().unwrap();
    let sleep_id = entity_id(
        sleep_pid,
        clock
            .from_proc_ticks(proc_truth(sleep_pid).start_ticks)
            .unwrap(),
    );
    let ancestry: Vec<(u32, Option<String>)> = table
        .ancestry(sleep_id, 16, now)
        .unwrap()
        .map(|p| (p.pid(), p.exe_path().map(str::to_owned)))
        .collect();
    let expected: Vec<u32> = chain.iter().rev().copied().collect();
    assert_eq!(
        ancestry.iter().map(|(pid, _)| *pid).collect::<Vec<_>>(),
        expected,
        "ancestry in the core's table"
    );
    assert!(
        ancestry[0]
            .1
            .as_deref()
            .is_some_and(|p| p.ends_with("sleep"))
    );
    println!("    chain from /proc and eBPF: {chain:?}");

    kill(sleep_pid, libc::SIGKILL);
    outer.wait().unwrap();
    let events = ctx
        .log
        .wait_until(mark, "the exit of every process in the chain", |ev| {
            chain.iter().all(|&p| !exits_of(ev, p).is_empty())
        });
    for (pid, truth) in &truths {
        let exits = exits_of(&events, *pid);
        assert_eq!(exits.len(), 1, "pid {pid}: {exits:?}");
        assert_eq!(
            exits[0].process.start_time,
            clock.from_proc_ticks(truth.start_ticks).unwrap()
        );
        assert!(exits[0].time >= forks_of(&events, *pid)[0].time);
    }
    assert_eq!(
        exits_of(&events, sleep_pid)[0].exit_code & 0x7f,
        libc::SIGKILL as u32,
        "sleep was killed by SIGKILL"
    );
}

/// 1,000 short-lived `/bin/true`: each seen forked (by this process), exec'd and exited, none
/// lost.
fn burst_of_short_lived_processes(ctx: &Context) {
    const COUNT: usize = 1000;
    const IN_FLIGHT: usize = 32;
    let lost_before = ctx.collector.lost.read().unwrap();
    let mark = ctx.log.mark();
    let my_pid = std::process::id();
    let mut pids = Vec::with_capacity(COUNT);
    let mut running: Vec<Child> = Vec::new();
    for _ in 0..COUNT {
        if running.len() == IN_FLIGHT {
            for mut child in running.drain(..) {
                assert!(child.wait().unwrap().success());
            }
        }
        let child = Command::new("/bin/true").spawn().unwrap();
        pids.push(child.id());
        running.push(child);
    }
    for mut child in running {
        assert!(child.wait().unwrap().success());
    }
    let unique: HashSet<u32> = pids.iter().copied().collect();
    assert_eq!(unique.len(), COUNT, "pids were reused within the burst");

    let events = ctx
        .log
        .wait_until(mark, "fork, exec and exit of all 1,000", |ev| {
            let mut seen: HashMap<u32, u8> = HashMap::new();
            for e in ev {
                let (pid, bit) = match e {
                    KernelEvent::Fork(f) => (f.process.pid, 1),
                    KernelEvent::Exec(x) => (x.process.pid, 2),
                    KernelEvent::Exit(x) => (x.process.pid, 4),
                    _ => continue,
                };
                if unique.contains(&pid) {
                    *seen.entry(pid).or_default() |= bit;
                }
            }
            seen.len() == COUNT && seen.values().all(|&bits| bits == 7)
        });
    let me = proc_truth(my_pid);
    for &pid in &pids {
        let forks = forks_of(&events, pid);
        let execs = execs_of(&events, pid);
        let exits = exits_of(&events, pid);
        assert_eq!(
            (forks.len(), execs.len(), exits.len()),
            (1, 1, 1),
            "pid {pid}"
        );
        let (fork, exec, exit) = (forks[0], execs[0], exits[0]);
        assert_eq!(fork.process.ppid, my_pid, "pid {pid} parent");
        assert_eq!(exec.filename, "/bin/true");
        assert_eq!(exec.process.comm.as_str(), "true");
        assert_eq!((exec.process.uid, exec.process.gid), (me.uid, me.gid));
        assert_eq!((exit.process.uid, exit.process.gid), (me.uid, me.gid));
        assert_eq!(exit.exit_code, 0);
        assert_eq!(fork.process.start_time, exec.process.start_time);
        assert_eq!(fork.process.start_time, exit.process.start_time);
        assert!(
            fork.time <= exec.time && exec.time <= exit.time,
            "pid {pid} order"
        );
    }
    let lost_after = ctx.collector.lost.read().unwrap();
    assert_eq!(
        lost_after, lost_before,
        "the collector lost records during the burst"
    );
}

/// `setpriv --reuid 65534 --regid 65534 --clear-groups /bin/true`: the exec after the
/// credential change carries the new real ids; the process's exit too.
fn credentials_after_setpriv(ctx: &Context) {
    let mark = ctx.log.mark();
    let mut child = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "/bin/true",
        ])
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    let events = ctx
        .log
        .wait_until(mark, "setpriv's two execs and its exit", |ev| {
            execs_of(ev, pid).len() == 2 && exits_of(ev, pid).len() == 1
        });
    let execs = execs_of(&events, pid);
    assert_eq!(execs[0].process.comm.as_str(), "setpriv");
    assert_eq!((execs[0].process.uid, execs[0].process.gid), (0, 0));
    assert_eq!(execs[1].filename, "/bin/true");
    assert_eq!((execs[1].process.uid, execs[1].process.gid), (65534, 65534));
    let exit = exits_of(&events, pid)[0];
    assert_eq!((exit.process.uid, exit.process.gid), (65534, 65534));
    assert_eq!(forks_of(&events, pid)[0].process.uid, 0);
}

/// A multi-threaded child: its threads' creation is no fork, its threads' exits (even the
/// leader's, first) are no process exit; the last thread's exit is the one process exit.
fn thread_exits_are_not_process_exits(ctx: &Context) {
    let mark = ctx.log.mark();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--thread-group-child")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = || lines.next().expect("child output").unwrap();
    // "threads <tid> <tid> ...": threads that ran and were joined.
    let joined: Vec<u32> = next_line()
        .strip_prefix("threads ")
        .expect("threads line")
        .split(' ')
        .map(|t| t.parse().unwrap())
        .collect();
    assert_eq!(joined.len(), 8);
    // "leader-exiting <tid of the thread that stays>".
    let survivor: u32 = next_line()
        .strip_prefix("leader-exiting ")
        .expect("leader-exiting line")
        .parse()
        .unwrap();
    poll_until("the leader thread to become a zombie", || {
        let stat = std::fs::read(format!("/proc/{pid}/task/{pid}/stat")).ok()?;
        (parse_proc_stat(&stat).ok()?.state == b'Z').then_some(())
    });
    // A sentinel process started after those exits: once its exit is logged, every exit before
    // it is too (one ring buffer, records in reservation order).
    let mut sentinel = Command::new("/bin/true").spawn().unwrap();
    let sentinel_pid = sentinel.id();
    sentinel.wait().unwrap();
    let events = ctx.log.wait_until(mark, "the sentinel's exit", |ev| {
        !exits_of(ev, sentinel_pid).is_empty()
    });
    assert!(
        exits_of(&events, pid).is_empty(),
        "thread exits were reported as the process's exit: {:?}",
        exits_of(&events, pid)
    );
    assert_eq!(forks_of(&events, pid).len(), 1, "one fork for the process");
    for tid in joined.iter().chain([&survivor]) {
        assert!(
            forks_of(&events, *tid).is_empty(),
            "thread {tid} reported as a process"
        );
        assert!(
            exits_of(&events, *tid).is_empty(),
            "thread {tid} exit reported as a process's"
        );
    }

    // Let the survivor end the process.
    child.stdin.take().unwrap().write_all(b"exit\n").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    let events = ctx.log.wait_until(mark, "the process's exit", |ev| {
        !exits_of(ev, pid).is_empty()
    });
    let exits = exits_of(&events, pid);
    assert_eq!(exits.len(), 1);
    assert_eq!(
        exits[0].process.tid, survivor,
        "the last thread ended the process"
    );
    assert_eq!(exits[0].exit_code >> 8, 3);
}

fn gettid() -> u32 {
    // SAFETY: `gettid` has no arguments and cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// The child side of [`thread_exits_are_not_process_exits`].
fn thread_group_child() -> ExitCode {
    let tids: Vec<u32> = (0..8)
        .map(|_| std::thread::spawn(gettid))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let tids: Vec<String> = tids.iter().map(u32::to_string).collect();
    println!("threads {}", tids.join(" "));
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tid_tx.send(gettid()).unwrap();
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        std::process::exit(3);
    });
    println!("leader-exiting {}", tid_rx.recv().unwrap());
    std::io::stdout().flush().unwrap();
    // SAFETY: `SYS_exit` ends only the calling (main) thread, without unwinding; nothing on
    // its stack is shared with the surviving thread, which ends the process with exit_group.
    unsafe { libc::syscall(libc::SYS_exit, 0) };
    unreachable!("SYS_exit returned");
}

/// A real DNS server (dnsmasq) on a loopback address and `dig`: every answer is captured whole,
/// with the server, the client socket's owner and cgroup.
fn dns_answers_from_a_real_server(ctx: &Context) {
    let v4 = free_loopback_v4_for_dns();
    let server = DnsServer::start(IpAddr::V4(v4));
    let client_cgroup = own_cgroup_v2_inode(ctx);

    let queries: [(&str, &str, Vec<Expected>); 3] = [
        (
            "h.watchpost.test",
            "A",
            vec![Expected::A("h.watchpost.test", Ipv4Addr::new(192, 0, 2, 7))],
        ),
        (
            "h.watchpost.test",
            "AAAA",
            vec![Expected::Aaaa(
                "h.watchpost.test",
                "2001:db8::7".parse().unwrap(),
            )],
        ),
        (
            "c.watchpost.test",
            "A",
            vec![
                Expected::Cname("c.watchpost.test", "h.watchpost.test"),
                Expected::A("h.watchpost.test", Ipv4Addr::new(192, 0, 2, 7)),
            ],
        ),
    ];
    let mut captured = Vec::new();
    for (name, qtype, expected) in &queries {
        let mark = ctx.log.mark();
        let id = dig(IpAddr::V4(v4), name, qtype);
        let answer = wait_for_answer(ctx, mark, id);
        check_answer(&answer, IpAddr::V4(v4), expected);
        assert_eq!(answer.socket_uid, 0, "dig ran as root");
        if let Some(inode) = client_cgroup {
            assert_eq!(answer.cgroup_id, inode, "cgroup of dig's socket");
        }
        captured.push(answer);
    }
    drop(server);

    // The captured messages feed the core's DNS cache as they are: forward through the CNAME,
    // reverse, and gone when the TTL (from the capture time) ends.
    let mut cache = DnsCache::new(DnsCacheConfig::default());
    for answer in &captured {
        let origin = DnsOrigin {
            netns: answer.netns,
            trusted: answer.trusted_netns,
        };
        assert!(
            origin.trusted && answer.matched,
            "dig ran in the host's namespace"
        );
        cache
            .insert_packet(&answer.message, origin, answer.time)
            .unwrap();
    }
    let now = captured.last().unwrap().time;
    let forward = cache.get_dns_response("c.watchpost.test", now).unwrap();
    assert!(
        forward
            .ips()
            .contains(&IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
        "{:?}",
        forward.ips()
    );
    let reverse = cache.get_dns_response("2001:db8::7", now).unwrap();
    assert!(
        reverse.domains().contains(&"h.watchpost.test"),
        "{:?}",
        reverse.domains()
    );
    // The CNAME came with the last answer.
    let expiry = now + u64::from(LOCAL_TTL) * NANOS_PER_SEC;
    assert!(
        cache
            .get_dns_response("c.watchpost.test", expiry - 1)
            .is_ok()
    );
    assert!(cache.get_dns_response("c.watchpost.test", expiry).is_err());

    // IPv6 (the program's extension-header walk): only if [::1]:53 is free on this machine.
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    if udp_port_53_in_use(v6) {
        println!("    note: [::1]:53 is busy; IPv6 part not run");
        return;
    }
    let server = DnsServer::start(v6);
    let mark = ctx.log.mark();
    let id = dig(v6, "h.watchpost.test", "AAAA");
    let answer = wait_for_answer(ctx, mark, id);
    check_answer(
        &answer,
        v6,
        &[Expected::Aaaa(
            "h.watchpost.test",
            "2001:db8::7".parse().unwrap(),
        )],
    );
    drop(server);
}

enum Expected {
    A(&'static str, Ipv4Addr),
    Aaaa(&'static str, Ipv6Addr),
    Cname(&'static str, &'static str),
}

/// TTL dnsmasq gives local records (`--local-ttl`).
const LOCAL_TTL: u32 = 123;

fn check_answer(answer: &DnsAnswer, server: IpAddr, expected: &[Expected]) {
    assert_eq!(answer.server, SocketAddr::new(server, 53));
    assert!(answer.client.ip().is_loopback(), "client {}", answer.client);
    assert_ne!(answer.client.port(), 53);
    assert!(!answer.is_truncated());
    assert_eq!(answer.message.len(), answer.wire_len as usize);
    let packet = simple_dns::Packet::parse(&answer.message).expect("a valid DNS message");
    assert_eq!(packet.answers.len(), expected.len(), "{:?}", packet.answers);
    for (record, want) in packet.answers.iter().zip(expected) {
        assert_eq!(record.ttl, LOCAL_TTL);
        let name = record.name.to_string();
        match (want, &record.rdata) {
            (Expected::A(n, ip), RData::A(a)) => {
                assert_eq!((name.as_str(), Ipv4Addr::from(a.address)), (*n, *ip));
            }
            (Expected::Aaaa(n, ip), RData::AAAA(a)) => {
                assert_eq!((name.as_str(), Ipv6Addr::from(a.address)), (*n, *ip));
            }
            (Expected::Cname(n, target), RData::CNAME(c)) => {
                assert_eq!((name.as_str(), c.0.to_string().as_str()), (*n, *target));
            }
            (_, other) => panic!("unexpected record {other:?} for {name}"),
        }
    }
}

fn wait_for_answer(ctx: &Context, mark: usize, id: u16) -> DnsAnswer {
    let events = ctx.log.wait_until(mark, &format!("DNS answer {id}"), |ev| {
        ev.iter()
            .any(|e| matches!(e, KernelEvent::DnsAnswer(a) if a.query_id() == Some(id)))
    });
    let answers: Vec<&DnsAnswer> = events
        .iter()
        .filter_map(|e| match e {
            KernelEvent::DnsAnswer(a) if a.query_id() == Some(id) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 1, "each answer exactly once");
    answers[0].clone()
}

/// Runs dig once and returns the query ID it printed.
fn dig(server: IpAddr, name: &str, qtype: &str) -> u16 {
    let output = Command::new("dig")
        .args([&format!("@{server}"), "+tries=1", "+time=3", name, qtype])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "dig failed: {text}");
    assert!(text.contains("status: NOERROR"), "dig: {text}");
    text.split("id: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no query id in dig output: {text}"))
}

/// A dnsmasq serving a few local records on one address, stopped (by PID) on drop.
struct DnsServer {
    child: Child,
}

impl DnsServer {
    fn start(address: IpAddr) -> DnsServer {
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--bind-interfaces",
                &format!("--listen-address={address}"),
                "--port=53",
                "--no-resolv",
                "--no-hosts",
                "--user=root",
                &format!("--local-ttl={LOCAL_TTL}"),
                "--host-record=h.watchpost.test,192.0.2.7,2001:db8::7",
                "--cname=c.watchpost.test,h.watchpost.test",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("dnsmasq (apt-get install dnsmasq)");
        poll_until("dnsmasq to listen", || {
            udp_port_53_in_use(address).then_some(())
        });
        DnsServer { child }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a UDP socket is bound to `address`:53 (from /proc/net/udp{,6}).
fn udp_port_53_in_use(address: IpAddr) -> bool {
    let (file, hex) = match address {
        IpAddr::V4(v4) => (
            "/proc/net/udp",
            format!("{:08X}:0035", u32::from_ne_bytes(v4.octets())),
        ),
        IpAddr::V6(v6) => {
            let words: String = v6
                .octets()
                .chunks(4)
                .map(|c| format!("{:08X}", u32::from_ne_bytes(c.try_into().unwrap())))
                .collect();
            ("/proc/net/udp6", format!("{words}:0035"))
        }
    };
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(hex.as_str()))
}

/// 127.0.0.77, or the next free loopback address if another test holds its port 53.
fn free_loopback_v4_for_dns() -> Ipv4Addr {
    (77..100)
        .map(|last| Ipv4Addr::new(127, 0, 0, last))
        .find(|a| !udp_port_53_in_use(IpAddr::V4(*a)))
        .expect("a free 127.0.0.x:53")
}

/// The inode of this process's cgroup v2 directory: what `bpf_skb_cgroup_id` reports.
fn own_cgroup_v2_inode(ctx: &Context) -> Option<u64> {
    let root = ctx.collector.attachments.dns_cgroup_root.clone()?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = root.join(path.trim_start_matches('/'));
    Some(std::fs::metadata(dir).ok()?.ino())
}

/// A cgroup v2 directory created and removed is reported with its inode as ID and its path; a
/// process exec'd inside it carries that ID.
fn cgroup_changes_and_exec_cgroup_ids(ctx: &Context) {
    assert!(
        ctx.collector.attachments.cgroup_events,
        "cgroup_mkdir/cgroup_rmdir not attached"
    );
    let root = watchpost_ebpf::cgroup_root::cgroup2_mount_point(
        &std::fs::read_to_string("/proc/mounts").unwrap(),
    )
    .expect("a cgroup2 mount");
    let name = format!("wp-kernel-test-{}", std::process::id());
    let dir = root.join(&name);
    let path = format!("/{name}");
    let mark = ctx.log.mark();
    std::fs::create_dir(&dir).unwrap();
    let inode = std::fs::metadata(&dir).unwrap().ino();
    let created = |ev: &[KernelEvent]| {
        ev.iter().any(|e| {
            matches!(e, KernelEvent::Cgroup(c)
                if c.op == CgroupOp::Created && c.path == path && c.cgroup_id == inode)
        })
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        ctx.log.wait_until(mark, "the cgroup's creation", created);
        // A shell that moves itself into the cgroup, then execs.
        let script = format!("echo $$ > {}/cgroup.procs && exec /bin/true", dir.display());
        let mut child = Command::new("/bin/sh")
            .args(["-c", &script])
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(child.wait().unwrap().success());
        let events = ctx
            .log
            .wait_until(mark, "the exec inside the cgroup", |ev| {
                execs_of(ev, pid).iter().any(|x| x.filename == "/bin/true")
            });
        let exec = execs_of(&events, pid)
            .into_iter()
            .find(|x| x.filename == "/bin/true")
            .unwrap();
        assert_eq!(
            exec.process.cgroup_id, inode,
            "exec carries its cgroup's ID"
        );
        let outside = own_cgroup_v2_inode(ctx);
        assert_ne!(Some(inode), outside);
        if ctx.collector.attachments.cgroup_populated_events {
            for (op, what) in [
                (CgroupOp::Populated, "the cgroup populated"),
                (CgroupOp::Emptied, "the cgroup emptied"),
            ] {
                ctx.log.wait_until(mark, what, |ev| {
                    ev.iter().any(|e| {
                        matches!(e, KernelEvent::Cgroup(c)
                            if c.op == op && c.path == path && c.cgroup_id == inode)
                    })
                });
            }
        }
    }));
    // Empty once the child is reaped; the kernel may need a moment.
    poll_until("the test cgroup to be removable", || {
        std::fs::remove_dir(&dir).ok()
    });
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    ctx.log.wait_until(mark, "the cgroup's removal", |ev| {
        ev.iter().any(|e| {
            matches!(e, KernelEvent::Cgroup(c)
                if c.op == CgroupOp::Removed && c.path == path && c.cgroup_id == inode)
        })
    });
}

/// Module loads (or, without module support, the direct trigger) produce a symbol-reload event.
fn symbol_reload_signal(ctx: &Context) {
    let modules_supported = Path::new("/proc/modules").exists();
    match ctx.collector.attachments.module_loads {
        ModuleLoadSignal::Attached => {
            assert!(modules_supported);
            let loaded = std::fs::read_to_string("/proc/modules").unwrap_or_default();
            let candidate = ["dummy", "tcp_diag", "nlmon"]
                .into_iter()
                .find(|m| !loaded.lines().any(|l| l.split(' ').next() == Some(*m)));
            match candidate {
                Some(module) => {
                    let mark = ctx.log.mark();
                    let probed = Command::new("modprobe").arg(module).status();
                    if probed.is_ok_and(|s| s.success()) {
                        ctx.log.wait_until(mark, "module load event", |ev| {
                            ev.iter().any(|e| {
                                matches!(e,
                                KernelEvent::SymbolReload(SymbolReloadCause::ModuleLoaded(m))
                                    if m.name == module)
                            })
                        });
                        let _ = Command::new("modprobe").args(["-r", module]).status();
                    } else {
                        println!("    note: `modprobe {module}` failed; module-load part not run");
                    }
                }
                None => println!("    note: no unloaded harmless module; module-load part not run"),
            }
        }
        ModuleLoadSignal::KernelWithoutModules => {
            assert!(
                !modules_supported,
                "kernel has modules but no module_load tracepoint?"
            );
            println!("    note: kernel without module support: checking the direct trigger only");
        }
        ModuleLoadSignal::NotRequested => panic!("module loads were requested"),
    }
    // The direct path, always: a request becomes an event.
    let mark = ctx.log.mark();
    ctx.collector.reload.trigger();
    ctx.collector.reload.trigger();
    let events = ctx.log.wait_until(mark, "requested reload event", |ev| {
        ev.iter()
            .any(|e| matches!(e, KernelEvent::SymbolReload(SymbolReloadCause::Requested)))
    });
    let requested = events
        .iter()
        .filter(|e| matches!(e, KernelEvent::SymbolReload(SymbolReloadCause::Requested)))
        .count();
    // Requests made before the next drain merge; the pump may drain between the two.
    assert!(
        (1..=2).contains(&requested),
        "{requested} reload events for 2 requests"
    );
}

/// A one-page ring buffer nobody reads: flooding it makes the kernel count lost records.
fn lost_records_are_counted(ctx: &Context) {
    let page = 4096;
    let mut tiny = Collector::load(CollectorOptions {
        dns_answers: false,
        module_loads: false,
        kernel_ring_bytes: page,
        dns_ring_bytes: page,
        ..CollectorOptions::default()
    })
    .expect("second collector");
    assert_eq!(tiny.lost_events().unwrap().total(), 0);
    let mut pids = HashSet::new();
    for _ in 0..200 {
        let mut child = Command::new("/bin/true").spawn().unwrap();
        pids.insert(child.id());
        child.wait().unwrap();
    }
    let lost = tiny.lost_events().unwrap();
    assert!(lost.total() > 0, "no loss counted: {lost:?}");
    assert!(
        lost.exec > 0,
        "exec records are the biggest, some must be lost: {lost:?}"
    );
    let mut read = Vec::new();
    tiny.drain_into(&mut read, usize::MAX);
    let ours = read
        .iter()
        .filter(|e| match e {
            KernelEvent::Fork(f) => pids.contains(&f.process.pid),
            KernelEvent::Exec(x) => pids.contains(&x.process.pid),
            KernelEvent::Exit(x) => pids.contains(&x.process.pid),
            _ => false,
        })
        .count();
    // Every record of ours was either delivered or counted as lost (the counter also counts
    // other processes' records, hence >=).
    assert!(
        ours as u64 + lost.total() >= 3 * 200,
        "{ours} read + {} lost < 600",
        lost.total()
    );
    assert!(ours < 600, "a one-page ring cannot have held everything");
    drop(tiny);
    // The big collector kept up meanwhile.
    let _ = ctx;
}

/// Dropping a collector unloads its programs.
fn drop_detaches(ctx: &Context) {
    let collector = Collector::load(CollectorOptions {
        dns_answers: false,
        kernel_ring_bytes: 4096,
        ..CollectorOptions::default()
    })
    .unwrap();
    let ids: Vec<u32> = collector
        .ebpf()
        .programs()
        .filter_map(|(_, p)| p.info().ok().map(|i| i.id()))
        .collect();
    assert!(
        ids.len() >= 3,
        "fork, exec and exit programs loaded: {ids:?}"
    );
    let loaded = || -> HashSet<u32> {
        aya::programs::loaded_programs()
            .filter_map(|p| p.ok().map(|p| p.id()))
            .collect()
    };
    assert!(ids.iter().all(|id| loaded().contains(id)));
    drop(collector);
    poll_until("the programs to be unloaded", || {
        let now = loaded();
        ids.iter().all(|id| !now.contains(id)).then_some(())
    });
    let _ = ctx;
}

/// An unprivileged process gets a refusal, not a bug report.
fn refusal_without_privilege(_ctx: &Context) {
    let output = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(std::env::current_exe().unwrap())
        .arg("--expect-refusal")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "unprivileged load was not a refusal: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("refused: "), "{text}");
}

fn expect_refusal() -> ExitCode {
    match Collector::load(CollectorOptions::default()) {
        Ok(_) => {
            println!("loaded without privilege?");
            ExitCode::FAILURE
        }
        Err(error) if error.is_refusal() => {
            assert!(matches!(error, LoadError::NotPermitted { .. }), "{error}");
            println!("refused: {error}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("not a refusal: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Harness.

type Test = (&'static str, fn(&Context));

const TESTS: &[Test] = &[
    ("process_chain", process_chain),
    (
        "burst_of_short_lived_processes",
        burst_of_short_lived_processes,
    ),
    ("credentials_after_setpriv", credentials_after_setpriv),
    (
        "thread_exits_are_not_process_exits",
        thread_exits_are_not_process_exits,
    ),
    (
        "dns_answers_from_a_real_server",
        dns_answers_from_a_real_server,
    ),
    ("symbol_reload_signal", symbol_reload_signal),
    (
        "cgroup_changes_and_exec_cgroup_ids",
        cgroup_changes_and_exec_cgroup_ids,
    ),
    ("lost_records_are_counted", lost_records_are_counted),
    ("drop_detaches", drop_detaches),
    ("refusal_without_privilege", refusal_without_privilege),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--thread-group-child") => return thread_group_child(),
        Some("--expect-refusal") => return expect_refusal(),
        _ => {}
    }
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    let selected: Vec<&Test> = TESTS
        .iter()
        .filter(|(name, _)| filter.as_ref().is_none_or(|f| name.contains(f.as_str())))
        .collect();
    if std::env::var_os(SKIP_VAR).is_some_and(|v| v == "1") {
        println!("kernel tests skipped on purpose ({SKIP_VAR}=1)");
        println!("0 passed, 0 failed, {} skipped", selected.len());
        return ExitCode::SUCCESS;
    }
    if selected.is_empty() {
        println!(
            "running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; {} filtered out",
            TESTS.len()
        );
        return ExitCode::SUCCESS;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let collector = match Collector::load(CollectorOptions::default()) {
        Ok(collector) => collector,
        Err(error) => {
            eprintln!(
                "error: the kernel refused the eBPF collector, so the kernel tests cannot run.\n\
                 {error}\n(is_refusal: {}; run as root, or set {SKIP_VAR}=1 to skip on purpose)",
                error.is_refusal()
            );
            println!("0 passed, {} failed", selected.len());
            return ExitCode::FAILURE;
        }
    };
    let log = Arc::new(EventLog::default());
    let handle = CollectorHandle {
        lost: collector.lost_event_counter(),
        reload: collector.symbol_reload_trigger(),
        attachments: collector.attachments().clone(),
        clock: collector.boot_clock(),
    };
    assert_eq!(handle.clock, proc_boot_clock(), "collector's boot clock");
    let mut task = {
        let _guard = runtime.enter();
        collector.spawn(64, 4096)
    };
    let pump_log = Arc::clone(&log);
    runtime.spawn(async move {
        while let Some(batch) = task.recv().await {
            pump_log.push_all(batch);
        }
    });
    let ctx = Context {
        log,
        collector: handle,
        runtime: runtime.handle().clone(),
    };

    println!("\nrunning {} tests", selected.len());
    let (mut passed, mut failed) = (0, Vec::new());
    for (name, test) in &selected {
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| test(&ctx)));
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({:.2?})", started.elapsed());
            }
            Err(_) => {
                failed.push(*name);
                println!("test {name} ... FAILED");
            }
        }
    }
    let lost = ctx.collector.lost.read().unwrap();
    let _ = &ctx.runtime;
    println!("main collector lost records: {lost:?}");
    if !failed.is_empty() {
        println!("\nfailures:\n    {}", failed.join("\n    "));
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {} filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        TESTS.len() - selected.len()
    );
    drop(ctx);
    runtime.shutdown_timeout(Duration::from_secs(5));
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
