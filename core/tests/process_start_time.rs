//! The canonical start time is the same number, and so the same entity ID, whether it comes from
//! eBPF (`start_boottime`, ns since boot) or from `/proc/<pid>/stat` (clock ticks since boot).

use proptest::prelude::*;
use watchpost_core::entity_id::entity_id;
use watchpost_core::start_time::{
    BootClock, StartTimeError, from_boottime_ns, from_proc_ticks, ticks_from_boottime_ns,
};
use watchpost_core::time::NANOS_PER_SEC;

/// Tick rates that divide one second (100 is Linux's `USER_HZ` on x86_64 and arm64).
const DIVIDING_RATES: &[u64] = &[1, 2, 10, 64, 100, 128, 250, 500, 512, 1000, 1_000_000];

/// Up to ~100 years of uptime, boot epochs up to the year 2106.
fn boot_ns() -> impl Strategy<Value = u64> {
    0u64..100 * 365 * 24 * 3600 * NANOS_PER_SEC
}

proptest! {
    #[test]
    fn ebpf_and_procfs_agree_for_dividing_rates(
        boot_ns in boot_ns(),
        btime in 0u64..4_294_967_296,
        rate_index in 0..DIVIDING_RATES.len(),
        pid in any::<u32>(),
    ) {
        let hz = DIVIDING_RATES[rate_index];
        prop_assert_eq!(NANOS_PER_SEC % hz, 0);
        // What the kernel prints in /proc/<pid>/stat field 22 for this task.
        let ticks = boot_ns / (NANOS_PER_SEC / hz);
        let from_ebpf = from_boottime_ns(boot_ns, btime, hz).unwrap();
        let from_proc = from_proc_ticks(ticks, btime, hz).unwrap();
        prop_assert_eq!(from_ebpf, from_proc);
        prop_assert_eq!(entity_id(pid, from_ebpf), entity_id(pid, from_proc));
        // It is the eBPF time floored to a whole tick, on the boot epoch.
        let exact = btime * NANOS_PER_SEC + boot_ns;
        prop_assert!(from_ebpf <= exact);
        prop_assert!(exact - from_ebpf < NANOS_PER_SEC / hz);
        let clock = BootClock::new(btime, hz).unwrap();
        prop_assert_eq!(clock.from_boottime_ns(boot_ns).unwrap(), from_proc);
        prop_assert_eq!(clock.from_proc_ticks(ticks).unwrap(), from_proc);
    }

    /// Any rate: the tick count eBPF's value maps to gives the same time through /proc's path.
    #[test]
    fn any_rate_round_trips_through_ticks(
        boot_ns in boot_ns(),
        btime in 0u64..4_294_967_296,
        hz in 1u64..5000,
    ) {
        let ticks = ticks_from_boottime_ns(boot_ns, hz).unwrap();
        prop_assert_eq!(
            from_boottime_ns(boot_ns, btime, hz).unwrap(),
            from_proc_ticks(ticks, btime, hz).unwrap()
        );
    }

    /// Garbage never panics: a value or an error.
    #[test]
    fn no_input_panics(a in any::<u64>(), b in any::<u64>(), hz in any::<u64>()) {
        let boot = from_boottime_ns(a, b, hz);
        let proc = from_proc_ticks(a, b, hz);
        if hz == 0 {
            prop_assert_eq!(boot, Err(StartTimeError::ZeroTicksPerSecond));
            prop_assert_eq!(proc, Err(StartTimeError::ZeroTicksPerSecond));
        }
    }
}

/// Two processes started within one clock tick of each other get one start time; 10 ms apart
/// (one tick at 100 Hz) they differ.
#[test]
fn tick_granularity() {
    let btime = 1_764_300_000;
    let a = from_boottime_ns(5_000_000_001, btime, 100).unwrap();
    let b = from_boottime_ns(5_009_999_999, btime, 100).unwrap();
    let c = from_boottime_ns(5_010_000_000, btime, 100).unwrap();
    assert_eq!(a, b);
    assert_eq!(c - a, 10_000_000);
}

/// The start time of this very test process, read the way the /proc scanner reads it, lies
/// between boot and now. Linux only (skips elsewhere, saying so).
#[test]
fn this_process_start_time_from_proc() {
    let (Ok(stat), Ok(system)) = (
        std::fs::read("/proc/self/stat"),
        std::fs::read_to_string("/proc/stat"),
    ) else {
        eprintln!("skipped: no /proc");
        return;
    };
    let btime: u64 = system
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .expect("btime in /proc/stat");
    let parsed = watchpost_core::start_time::parse_proc_stat(&stat).unwrap();
    assert_eq!(parsed.pid, std::process::id());
    // USER_HZ is 100 on every architecture watchpost targets.
    let start = from_proc_ticks(parsed.start_ticks, btime, 100).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(start >= btime * NANOS_PER_SEC);
    assert!(start <= now + NANOS_PER_SEC);
}
