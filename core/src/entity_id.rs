//! Entity IDs: the 32-bit process identity detectors receive in events, bit-compatible with Tracee.
//!
//! An entity ID is `murmur3_x86_32(seed 0x18273645)` over 12 bytes: the pid as a big-endian `u32`,
//! then the process start time as a big-endian `u64` of epoch nanoseconds floored to 100 ms. The
//! flooring makes the ID tolerant of small clock-source differences, but only if every source
//! derives the start time the same way: use [`crate::start_time`] for that.
//!
//! 32 bits collide at scale (about 50% chance of some collision among 77k live processes), so the
//! process table keys records by the exact (pid, start time) pair and treats the entity ID as a
//! lookup hint; see `process::ProcessTable`.

use crate::murmur3::murmur3_x86_32;
use crate::time::{EpochNanos, NANOS_PER_MILLI};

/// A process entity ID, as carried by `event.Workload.Process.EntityId` in the reference.
pub type EntityId = u32;

/// The reference's murmur3 seed for entity IDs.
pub const ENTITY_ID_SEED: u32 = 0x1827_3645;

/// Start times are floored to this granularity (100 ms) before hashing.
pub const START_TIME_GRANULARITY_NS: u64 = 100 * NANOS_PER_MILLI;

/// `start_time` floored to [`START_TIME_GRANULARITY_NS`], the value the entity ID hashes.
pub const fn floor_start_time(start_time: EpochNanos) -> EpochNanos {
    start_time - start_time % START_TIME_GRANULARITY_NS
}

/// The 12 bytes the entity ID hashes: big-endian pid, big-endian floored start time.
pub fn entity_id_input(pid: u32, start_time: EpochNanos) -> [u8; 12] {
    let mut bytes = [0u8; 12];
    let (pid_bytes, time_bytes) = bytes.split_at_mut(4);
    pid_bytes.copy_from_slice(&pid.to_be_bytes());
    time_bytes.copy_from_slice(&floor_start_time(start_time).to_be_bytes());
    bytes
}

/// The entity ID of the process `pid` started at `start_time` (epoch ns, any precision: it is
/// floored to 100 ms here).
pub fn entity_id(pid: u32, start_time: EpochNanos) -> EntityId {
    murmur3_x86_32(&entity_id_input(pid, start_time), ENTITY_ID_SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_layout_is_big_endian_pid_then_floored_time() {
        let bytes = entity_id_input(0x0102_0304, 1_234_567_890_123);
        assert_eq!(&bytes[..4], &[1, 2, 3, 4]);
        assert_eq!(&bytes[4..], &1_234_500_000_000u64.to_be_bytes());
    }

    #[test]
    fn flooring() {
        assert_eq!(floor_start_time(0), 0);
        assert_eq!(floor_start_time(99_999_999), 0);
        assert_eq!(floor_start_time(100_000_000), 100_000_000);
        assert_eq!(
            floor_start_time(u64::MAX),
            u64::MAX - u64::MAX % 100_000_000
        );
    }
}
