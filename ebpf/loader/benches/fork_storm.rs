//! Fork storm: how many process lifecycles per second the collector delivers, and where the
//! kernel starts dropping records.
//!
//! Two loads, each against several ring-buffer sizes, with the collector's reader as one tokio
//! task (`next_batch` on `AsyncFd`) on its own thread:
//! - **processes**: worker processes (this binary re-run with `--storm-worker`) create and reap
//!   short-lived processes as fast as they can (`fork` + `_exit` + `waitpid`: one fork and one
//!   exit record per lifecycle). On a small VM process creation itself is the bottleneck.
//! - **injected**: threads run the attached fork program through `BPF_PROG_TEST_RUN` with null
//!   task pointers, so each call writes one 88-byte fork record (all fields zero) into the same
//!   ring buffer: the capacity of the kernel → ring → reader → decoder path without the cost of
//!   creating processes. A lifecycle is two such records (fork, exit), three with an exec.
//!
//! Each line reports what was generated, what the reader saw, and what the kernel counted as
//! lost; the run fails if anything was neither seen nor counted.
//!
//! Last, the exec path with the executed file's path resolved in the kernel, off vs on, in the
//! same run: workers fork and `execv("/bin/true")` as fast as they can (fork + exec + exit per
//! lifecycle); each line gives lifecycles/s, exec records seen, lost, and the exec program's
//! own time per run from the kernel's BPF statistics (`BPF_ENABLE_STATS`, on only during this
//! section; it averages every exec on the machine). `--exec-only` runs just this section.
//!
//! Run (root): `cargo bench -p watchpost-ebpf --bench fork_storm [-- --seconds 3]`.
//! A custom harness, not criterion: the quantity is a rate over seconds of real load, and the
//! interesting output is the loss counter.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use watchpost_ebpf::{Collector, CollectorOptions, KernelEvent, WakeupPolicy};
use watchpost_ebpf_common::program_name;

/// A worker: waits for "go", creates processes for `seconds`, prints how many.
fn storm_worker(seconds: f64) -> ExitCode {
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut lifecycles = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            // SAFETY: the worker is single-threaded; the child only calls `_exit`
            // (async-signal-safe) and never returns into Rust code.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: see above.
                unsafe { libc::_exit(0) };
            }
            assert!(pid > 0, "fork failed");
            let mut status = 0;
            // SAFETY: reaps the child just created; `status` is a local.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            lifecycles += 1;
        }
    }
    println!("{lifecycles}");
    ExitCode::SUCCESS
}

/// An exec worker: like [`storm_worker`], but each child execs `/bin/true`.
fn exec_worker(seconds: f64) -> ExitCode {
    let program = c"/bin/true";
    let argv = [program.as_ptr(), std::ptr::null()];
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut lifecycles = 0u64;
    while Instant::now() < deadline {
        for _ in 0..16 {
            // SAFETY: the worker is single-threaded; the child only calls `execv` and `_exit`
            // (async-signal-safe) with pointers prepared before the fork.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: see above; `argv` is a NULL-terminated array of C strings.
                unsafe {
                    libc::execv(program.as_ptr(), argv.as_ptr());
                    libc::_exit(127);
                }
            }
            assert!(pid > 0, "fork failed");
            let mut status = 0;
            // SAFETY: reaps the child just created; `status` is a local.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            lifecycles += 1;
        }
    }
    println!("{lifecycles}");
    ExitCode::SUCCESS
}

/// `union bpf_attr` as `BPF_PROG_TEST_RUN` reads it (the `test` member), zero-padded.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    padding: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// Runs the raw-tracepoint program `prog` once with two null arguments.
fn test_run_once(prog: &OwnedFd) {
    let args = [0u64; 2];
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        ctx_size_in: size_of_val(&args) as u32,
        ctx_in: args.as_ptr() as u64,
        ..TestRunAttr::default()
    };
    // SAFETY: `attr` is a valid, fully initialised `bpf_attr.test` of the size passed, and the
    // context it points to lives until the call returns.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            size_of::<TestRunAttr>(),
        )
    };
    assert_eq!(
        rc,
        0,
        "BPF_PROG_TEST_RUN: {}",
        std::io::Error::last_os_error()
    );
}

#[derive(Clone, Copy)]
enum Load {
    /// Worker processes creating processes.
    Processes(usize),
    /// Threads injecting fork records with `BPF_PROG_TEST_RUN`.
    Injected(usize),
}

struct Outcome {
    generated: u64,
    seen: u64,
    records: u64,
    lost: u64,
    seconds: f64,
}

fn measure(ring_bytes: u32, wakeup: WakeupPolicy, load: Load, seconds: f64) -> Outcome {
    let collector = Collector::load(CollectorOptions {
        dns_answers: false,
        module_loads: false,
        kernel_ring_bytes: ring_bytes,
        wakeup,
        ..CollectorOptions::default()
    })
    .expect("load the collector (run as root)");
    let lost_counter = collector.lost_event_counter();
    let fork_program: OwnedFd = collector
        .ebpf()
        .program(program_name::FORK)
        .unwrap()
        .fd()
        .unwrap()
        .as_fd()
        .try_clone_to_owned()
        .unwrap();

    // The reader: one tokio task on its own thread. It counts exits of the workers' children,
    // or the injected (pid 0) fork records.
    let worker_pids: Arc<Mutex<HashSet<u32>>> = Arc::default();
    let seen = Arc::new(AtomicU64::new(0));
    let records = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (worker_pids, seen, records, stop) = (
            Arc::clone(&worker_pids),
            Arc::clone(&seen),
            Arc::clone(&records),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut collector = collector;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(batch) =
                        tokio::time::timeout(Duration::from_millis(50), collector.next_batch(8192))
                            .await
                    else {
                        continue;
                    };
                    let batch = batch.unwrap();
                    records.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    let pids = worker_pids.lock().unwrap();
                    let ours = batch
                        .iter()
                        .filter(|e| match (load, e) {
                            (Load::Processes(_), KernelEvent::Exit(x)) => {
                                pids.contains(&x.process.ppid)
                            }
                            (Load::Injected(_), KernelEvent::Fork(f)) => f.process.pid == 0,
                            _ => false,
                        })
                        .count();
                    seen.fetch_add(ours as u64, Ordering::Relaxed);
                }
            });
        })
    };

    let started = Instant::now();
    let generated = match load {
        Load::Processes(workers) => run_process_workers(workers, seconds, &worker_pids),
        Load::Injected(threads) => {
            let program = Arc::new(fork_program);
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let program = Arc::clone(&program);
                    std::thread::spawn(move || {
                        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
                        let mut calls = 0u64;
                        while Instant::now() < deadline {
                            for _ in 0..256 {
                                test_run_once(&program);
                            }
                            calls += 256;
                        }
                        calls
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    // Let the reader drain what is already in the ring (until it stops moving), then stop it.
    let mut last = u64::MAX;
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        let now = seen.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    Outcome {
        generated,
        seen: seen.load(Ordering::Relaxed),
        records: records.load(Ordering::Relaxed),
        lost: lost_counter.read().unwrap().total(),
        seconds: elapsed,
    }
}

/// Starts `workers` storm workers, lets them run `seconds`, returns their lifecycle count.
/// Their pids go into `pids` before any of them starts (so the reader recognises every child).
fn run_process_workers(workers: usize, seconds: f64, pids: &Mutex<HashSet<u32>>) -> u64 {
    run_workers("--storm-worker", workers, seconds, pids)
}

/// Starts `workers` of this binary in `mode`, lets them run `seconds`, returns their count.
fn run_workers(mode: &str, workers: usize, seconds: f64, pids: &Mutex<HashSet<u32>>) -> u64 {
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<_> = (0..workers)
        .map(|_| {
            Command::new(&exe)
                .args([mode, &seconds.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    pids.lock().unwrap().extend(children.iter().map(|c| c.id()));
    let mut outputs: Vec<_> = children
        .iter_mut()
        .map(|child| {
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            assert_eq!(lines.next().unwrap().unwrap(), "ready");
            lines
        })
        .collect();
    for child in &mut children {
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    let mut generated = 0;
    for (child, lines) in children.iter_mut().zip(&mut outputs) {
        generated += lines.next().unwrap().unwrap().parse::<u64>().unwrap();
        child.wait().unwrap();
    }
    generated
}

struct ExecOutcome {
    generated: u64,
    seen: u64,
    lost: u64,
    seconds: f64,
    /// The exec program's mean run time, ns.
    program_ns: f64,
}

/// Exec lifecycles with path resolution `resolve`d or not, and the exec program's cost.
fn measure_execs(resolve: bool, workers: usize, seconds: f64) -> ExecOutcome {
    let collector = Collector::load(CollectorOptions {
        dns_answers: false,
        module_loads: false,
        resolve_exe_paths: resolve,
        ..CollectorOptions::default()
    })
    .expect("load the collector (run as root)");
    let lost_counter = collector.lost_event_counter();
    let stats = |c: &Collector| {
        c.ebpf()
            .program(program_name::EXEC)
            .and_then(|p| p.info().ok())
            .map_or((Duration::ZERO, 0), |i| (i.run_time(), i.run_count()))
    };
    let before = stats(&collector);
    let worker_pids: Arc<Mutex<HashSet<u32>>> = Arc::default();
    let seen = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = {
        let (worker_pids, seen, stop) = (
            Arc::clone(&worker_pids),
            Arc::clone(&seen),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut collector = collector;
            runtime.block_on(async {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(batch) =
                        tokio::time::timeout(Duration::from_millis(50), collector.next_batch(8192))
                            .await
                    else {
                        continue;
                    };
                    let pids = worker_pids.lock().unwrap();
                    let ours = batch
                        .unwrap()
                        .iter()
                        .filter(
                            |e| matches!(e, KernelEvent::Exec(x) if pids.contains(&x.process.ppid)),
                        )
                        .count();
                    seen.fetch_add(ours as u64, Ordering::Relaxed);
                }
            });
            let _ = tx.send(collector);
        })
    };
    let started = Instant::now();
    let generated = run_workers("--exec-worker", workers, seconds, &worker_pids);
    let elapsed = started.elapsed().as_secs_f64();
    let mut last = u64::MAX;
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        let now = seen.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let collector = rx.recv().unwrap();
    let after = stats(&collector);
    let runs = after.1.saturating_sub(before.1).max(1);
    ExecOutcome {
        generated,
        seen: seen.load(Ordering::Relaxed),
        lost: lost_counter.read().unwrap().exec,
        seconds: elapsed,
        program_ns: after.0.saturating_sub(before.0).as_nanos() as f64 / runs as f64,
    }
}

/// The exec section: path resolution off vs on, interleaved, same run.
fn exec_section(seconds: f64) {
    let _stats =
        aya::sys::enable_stats(aya::sys::Stats::RunTime).expect("BPF_ENABLE_STATS (run as root)");
    println!(
        "\n{:<24} {:>8} {:>13} {:>13} {:>10} {:>15}",
        "exec path", "workers", "lifecycles/s", "execs seen/s", "lost", "exec prog ns"
    );
    let mut results: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for _round in 0..2 {
        for workers in [1, 2] {
            for resolve in [false, true] {
                let o = measure_execs(resolve, workers, seconds);
                println!(
                    "{:<24} {:>8} {:>13.0} {:>13.0} {:>10} {:>15.0}",
                    if resolve {
                        "path resolution on"
                    } else {
                        "path resolution off"
                    },
                    workers,
                    o.generated as f64 / o.seconds,
                    o.seen as f64 / o.seconds,
                    o.lost,
                    o.program_ns
                );
                assert!(
                    o.seen + o.lost >= o.generated,
                    "{} execs but {} seen and {} lost",
                    o.generated,
                    o.seen,
                    o.lost
                );
                results[usize::from(resolve)].push((o.generated as f64 / o.seconds, o.program_ns));
            }
        }
    }
    let best_rate = |v: &[(f64, f64)]| v.iter().map(|r| r.0).fold(0.0, f64::max);
    let best_ns = |v: &[(f64, f64)]| v.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
    println!(
        "best lifecycles/s off {:.0}, on {:.0} (cost {:.2}×); fastest exec program off {:.0} ns, \
         on {:.0} ns ({:.2}×)",
        best_rate(&results[0]),
        best_rate(&results[1]),
        best_rate(&results[0]) / best_rate(&results[1]),
        best_ns(&results[0]),
        best_ns(&results[1]),
        best_ns(&results[1]) / best_ns(&results[0])
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--storm-worker") {
        return storm_worker(args[i + 1].parse().unwrap());
    }
    if let Some(i) = args.iter().position(|a| a == "--exec-worker") {
        return exec_worker(args[i + 1].parse().unwrap());
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test` runs bench targets without --bench: nothing to measure then.
        return ExitCode::SUCCESS;
    }
    let seconds: f64 = args
        .iter()
        .position(|a| a == "--seconds")
        .map(|i| args[i + 1].parse().unwrap())
        .unwrap_or(3.0);
    if args.iter().any(|a| a == "--exec-only") {
        exec_section(seconds);
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<22} {:>8} {:>9} {:>13} {:>13} {:>13} {:>10}",
        "load", "wake-up", "ring", "generated/s", "seen/s", "records/s", "lost"
    );
    // The same process load without any collector: what process creation costs by itself here.
    for workers in [1, 2] {
        let started = Instant::now();
        let generated = run_process_workers(workers, seconds, &Mutex::default());
        println!(
            "{:<22} {:>8} {:>9} {:>13.0}",
            format!("processes, {workers}, no eBPF"),
            "-",
            "-",
            generated as f64 / started.elapsed().as_secs_f64()
        );
    }
    let loads = [
        ("processes, 1 worker", Load::Processes(1)),
        ("processes, 2 workers", Load::Processes(2)),
        ("injected, 1 thread", Load::Injected(1)),
        ("injected, 2 threads", Load::Injected(2)),
    ];
    let coalesced = CollectorOptions::default().wakeup;
    for (label, load) in loads {
        for (wakeup_label, wakeup) in [
            ("coalesced", coalesced),
            ("each", WakeupPolicy::EveryRecord),
        ] {
            for ring_kib in [16u32, 256, 4096] {
                let o = measure(ring_kib * 1024, wakeup, load, seconds);
                println!(
                    "{:<22} {:>8} {:>6}KiB {:>13.0} {:>13.0} {:>13.0} {:>10}",
                    label,
                    wakeup_label,
                    ring_kib,
                    o.generated as f64 / o.seconds,
                    o.seen as f64 / o.seconds,
                    o.records as f64 / o.seconds,
                    o.lost
                );
                assert!(
                    o.seen + o.lost >= o.generated,
                    "generated {} but only {} seen and {} counted lost",
                    o.generated,
                    o.seen,
                    o.lost
                );
            }
        }
    }
    exec_section(seconds);
    ExitCode::SUCCESS
}
