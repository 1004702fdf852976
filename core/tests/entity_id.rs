//! Entity IDs are bit-compatible with Tracee's: fixed vectors computed by the reference formula.

use watchpost_core::entity_id::{ENTITY_ID_SEED, entity_id, floor_start_time};
use watchpost_core::murmur3::murmur3_x86_32;

/// (pid, start time in epoch ns before flooring, expected entity ID).
const VECTORS: &[(u32, u64, u32)] = &[
    (1, 1_764_300_000_000_000_000, 4_046_385_983),
    (4242, 1_764_300_123_456_789_012, 2_274_109_708),
    (4242, 1_764_300_123_499_999_999, 2_274_109_708),
    (4242, 1_764_300_123_500_000_000, 3_224_933_697),
    (4_294_967_295, 0, 1_829_001_335),
];

#[test]
fn reference_vectors() {
    for &(pid, start, expected) in VECTORS {
        assert_eq!(entity_id(pid, start), expected, "pid {pid} start {start}");
    }
}

#[test]
fn same_100ms_window_same_id_next_window_differs() {
    let start = 1_764_300_123_400_000_000;
    let id = entity_id(77, start);
    assert_eq!(entity_id(77, start + 99_999_999), id);
    assert_ne!(entity_id(77, start + 100_000_000), id);
    assert_ne!(entity_id(78, start), id);
}

#[test]
fn matches_hash_of_explicit_bytes() {
    let (pid, start) = (4242u32, 1_764_300_123_456_789_012u64);
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&pid.to_be_bytes());
    bytes.extend_from_slice(&floor_start_time(start).to_be_bytes());
    assert_eq!(
        entity_id(pid, start),
        murmur3_x86_32(&bytes, ENTITY_ID_SEED)
    );
}
