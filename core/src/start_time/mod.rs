//! The one canonical process start time: the same epoch-ns value from eBPF and from `/proc`.
//!
//! Entity IDs hash the start time, so two sources that disagree by even one 100 ms boundary give
//! two different IDs for one process (Tracee issues #4074, #4868). The kernel knows a start time
//! in two forms:
//! - eBPF reads `task->start_boottime`: nanoseconds since boot (`CLOCK_BOOTTIME`);
//! - `/proc/<pid>/stat` field 22 prints the same value converted to clock ticks since boot
//!   (`nsec_to_clock_t`, `USER_HZ` ticks per second, `sysconf(_SC_CLK_TCK)`, usually 100).
//!
//! The canonical value drops the precision `/proc` does not have (floor the boot-time
//! nanoseconds to a whole clock tick, exactly as the kernel does), then adds the boot epoch from
//! `/proc/stat` `btime` (whole seconds, fixed for the whole boot). Both sources then give the
//! identical number, and so the identical entity ID. Never use a per-run estimate of the boot
//! time (wall clock minus a monotonic clock): it drifts between runs and between sources.
//!
//! Ticks are converted exactly (`ticks = floor(ns * hz / 1e9)`, `ns = floor(ticks * 1e9 / hz)`,
//! in 128-bit arithmetic); for any `hz` dividing 1e9 (100, 250, 1000) that is the kernel's
//! `ns / (1e9 / hz)`.

pub mod proc_stat;

pub use proc_stat::{ProcStat, ProcStatError, parse_proc_stat};

use core::fmt;

use crate::time::{EpochNanos, NANOS_PER_SEC};

/// Why a start time could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StartTimeError {
    /// `ticks_per_sec` was 0: no clock-tick length to convert with.
    ZeroTicksPerSecond,
    /// The result does not fit in `u64` epoch nanoseconds (a boot epoch or tick count from
    /// beyond the year 2554 is corrupt input).
    Overflow,
}

impl fmt::Display for StartTimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartTimeError::ZeroTicksPerSecond => f.write_str("clock ticks per second is 0"),
            StartTimeError::Overflow => f.write_str("start time overflows u64 epoch nanoseconds"),
        }
    }
}

impl core::error::Error for StartTimeError {}

/// Clock ticks since boot for `boot_ns` nanoseconds since boot, floored, as `/proc` prints them.
pub fn ticks_from_boottime_ns(boot_ns: u64, ticks_per_sec: u64) -> Result<u64, StartTimeError> {
    if ticks_per_sec == 0 {
        return Err(StartTimeError::ZeroTicksPerSecond);
    }
    let ticks = u128::from(boot_ns) * u128::from(ticks_per_sec) / u128::from(NANOS_PER_SEC);
    u64::try_from(ticks).map_err(|_| StartTimeError::Overflow)
}

/// Canonical start time (epoch ns) from `/proc/<pid>/stat` field 22: `ticks` clock ticks since
/// boot, `btime_secs` the boot epoch from `/proc/stat` `btime`, `ticks_per_sec` = `CLK_TCK`.
pub fn from_proc_ticks(
    ticks: u64,
    btime_secs: u64,
    ticks_per_sec: u64,
) -> Result<EpochNanos, StartTimeError> {
    if ticks_per_sec == 0 {
        return Err(StartTimeError::ZeroTicksPerSecond);
    }
    let since_boot = u128::from(ticks) * u128::from(NANOS_PER_SEC) / u128::from(ticks_per_sec);
    let boot_epoch = u128::from(btime_secs) * u128::from(NANOS_PER_SEC);
    // Both terms are < 2^64 * 1e9 < 2^94, so the u128 sum cannot overflow.
    u64::try_from(boot_epoch + since_boot).map_err(|_| StartTimeError::Overflow)
}

/// Canonical start time (epoch ns) from eBPF's `task->start_boottime` (`boot_ns` since boot):
/// floored to a whole clock tick first, so it equals [`from_proc_ticks`] for the same process.
pub fn from_boottime_ns(
    boot_ns: u64,
    btime_secs: u64,
    ticks_per_sec: u64,
) -> Result<EpochNanos, StartTimeError> {
    let ticks = ticks_from_boottime_ns(boot_ns, ticks_per_sec)?;
    from_proc_ticks(ticks, btime_secs, ticks_per_sec)
}

/// The two constants of one boot that the conversions need, checked once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BootClock {
    /// Boot epoch in whole seconds (`/proc/stat` `btime`).
    btime_secs: u64,
    /// `CLK_TCK`. Invariant: not 0 (checked by [`BootClock::new`]).
    ticks_per_sec: u64,
}

impl BootClock {
    /// The clock of a boot at `btime_secs` with `ticks_per_sec` clock ticks per second.
    pub fn new(btime_secs: u64, ticks_per_sec: u64) -> Result<Self, StartTimeError> {
        if ticks_per_sec == 0 {
            return Err(StartTimeError::ZeroTicksPerSecond);
        }
        Ok(BootClock {
            btime_secs,
            ticks_per_sec,
        })
    }

    /// Boot epoch, whole seconds.
    pub const fn btime_secs(&self) -> u64 {
        self.btime_secs
    }

    /// Clock ticks per second.
    pub const fn ticks_per_sec(&self) -> u64 {
        self.ticks_per_sec
    }

    /// [`from_boottime_ns`] with this boot's constants.
    pub fn from_boottime_ns(&self, boot_ns: u64) -> Result<EpochNanos, StartTimeError> {
        from_boottime_ns(boot_ns, self.btime_secs, self.ticks_per_sec)
    }

    /// [`from_proc_ticks`] with this boot's constants.
    pub fn from_proc_ticks(&self, ticks: u64) -> Result<EpochNanos, StartTimeError> {
        from_proc_ticks(ticks, self.btime_secs, self.ticks_per_sec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_boottime_to_the_tick_then_adds_btime() {
        // 12.345678901 s after a boot at 1_764_300_000 s, 100 Hz: tick floor is 12.34 s.
        let t = from_boottime_ns(12_345_678_901, 1_764_300_000, 100).unwrap();
        assert_eq!(t, 1_764_300_012_340_000_000);
        assert_eq!(from_proc_ticks(1234, 1_764_300_000, 100).unwrap(), t);
    }

    #[test]
    fn non_divisor_tick_rates_round_trip_through_ticks() {
        // 1024 Hz does not divide 1e9; the conversion still goes through whole ticks.
        let ticks = ticks_from_boottime_ns(5_000_000_000, 1024).unwrap();
        assert_eq!(ticks, 5120);
        assert_eq!(from_proc_ticks(ticks, 0, 1024).unwrap(), 5_000_000_000);
    }

    #[test]
    fn rejects_zero_tick_rate_and_overflow() {
        assert_eq!(
            from_boottime_ns(1, 1, 0),
            Err(StartTimeError::ZeroTicksPerSecond)
        );
        assert_eq!(
            from_proc_ticks(1, 1, 0),
            Err(StartTimeError::ZeroTicksPerSecond)
        );
        assert_eq!(
            BootClock::new(1, 0),
            Err(StartTimeError::ZeroTicksPerSecond)
        );
        assert_eq!(
            from_proc_ticks(0, u64::MAX, 100),
            Err(StartTimeError::Overflow)
        );
        assert_eq!(
            from_proc_ticks(u64::MAX, 0, 1),
            Err(StartTimeError::Overflow)
        );
        assert_eq!(
            from_boottime_ns(u64::MAX, u64::MAX / NANOS_PER_SEC, 100),
            Err(StartTimeError::Overflow)
        );
    }
}
