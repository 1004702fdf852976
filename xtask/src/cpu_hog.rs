//! A CPU hog for `cargo xtask test --under-load`: one busy thread per core, so the test suite
//! runs on a machine with no idle CPU. A test that only passes when the machine is quick (a
//! sleep assumed to outlast some work, a deadline measured in milliseconds) fails here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

/// Busy threads that stop when dropped.
pub struct CpuHog {
    stop: Arc<AtomicBool>,
    spins: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl CpuHog {
    /// Starts `threads` busy threads.
    pub fn start(threads: usize) -> CpuHog {
        let stop = Arc::new(AtomicBool::new(false));
        let spins = Arc::new(AtomicU64::new(0));
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                let spins = spins.clone();
                std::thread::spawn(move || {
                    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
                    while !stop.load(Ordering::Relaxed) {
                        // Work the optimiser cannot remove, counted so the hog proves it ran.
                        for _ in 0..100_000 {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                        }
                        spins.fetch_add(std::hint::black_box(x) & 1 | 1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        CpuHog {
            stop,
            spins,
            threads,
        }
    }

    /// Rounds of busy work done so far (proof that the hog really ran).
    pub fn rounds(&self) -> u64 {
        self.spins.load(Ordering::Relaxed)
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hog_spins_and_stops() {
        let hog = CpuHog::start(1);
        while hog.rounds() == 0 {
            std::thread::yield_now();
        }
        drop(hog);
    }
}
