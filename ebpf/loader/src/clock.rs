//! The boot clock that turns kernel `CLOCK_BOOTTIME` nanoseconds into the core's canonical
//! epoch times: `btime` from `/proc/stat` (fixed for the whole boot) and `CLK_TCK`.
//!
//! Start times go through [`watchpost_core::start_time::BootClock::from_boottime_ns`] (floored
//! to a clock tick first), so an entity ID computed from an eBPF event equals the one computed
//! from `/proc/<pid>/stat`. Event times (exit time, capture time) are `btime + boot_ns`, not
//! floored: they are instants, not identities.

use std::io;

use watchpost_core::start_time::{BootClock, StartTimeError};
use watchpost_core::system_info::{BootTimeError, parse_boot_time};
use watchpost_core::time::{EpochNanos, NANOS_PER_SEC};

/// Why the boot clock could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BootClockError {
    /// `/proc/stat` could not be read.
    #[error("cannot read /proc/stat: {0}")]
    Read(#[source] io::Error),
    /// `/proc/stat` has no usable `btime`.
    #[error("/proc/stat: {0}")]
    BootTime(#[source] BootTimeError),
    /// `sysconf(_SC_CLK_TCK)` gave no positive value.
    #[error("sysconf(_SC_CLK_TCK) gave no positive tick rate")]
    TickRate,
    /// The core refused the constants.
    #[error("boot clock: {0}")]
    StartTime(#[source] StartTimeError),
}

/// This boot's clock, read from `/proc/stat` and `sysconf(_SC_CLK_TCK)`.
pub fn read_boot_clock() -> Result<BootClock, BootClockError> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(BootClockError::Read)?;
    let btime_ns = parse_boot_time(&stat).map_err(BootClockError::BootTime)?;
    let ticks = crate::sysconf::clock_ticks_per_second().ok_or(BootClockError::TickRate)?;
    BootClock::new(btime_ns / NANOS_PER_SEC, ticks).map_err(BootClockError::StartTime)
}

/// An instant `boot_ns` after boot as epoch nanoseconds (saturating; never floored).
pub fn instant_from_boot_ns(clock: &BootClock, boot_ns: u64) -> EpochNanos {
    clock
        .btime_secs()
        .saturating_mul(NANOS_PER_SEC)
        .saturating_add(boot_ns)
}
