//! Random hash seeds for the core stores' indexes. Container IDs, names and IP addresses come from
//! outside (runtimes, feeds, traffic); with a fixed seed someone who can choose them could make
//! them collide in the index and slow every lookup down. Each store build draws a fresh seed.

use std::hash::{BuildHasher, Hasher};

/// A seed nobody outside this process can predict: std's `RandomState` keys come from the OS's
/// random source once per thread and differ on every call.
pub fn random_seed() -> u64 {
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(crate::clock::now());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_between_calls() {
        let seeds: std::collections::BTreeSet<u64> = (0..16).map(|_| random_seed()).collect();
        assert_eq!(seeds.len(), 16);
    }
}
