//! Reading a process's resident set size and judging a series of samples: its peak, and the
//! slope of a least-squares line through the second half (a leak shows as a steady climb; the
//! first half is warm-up: stores filling, caches growing to their bounds).

/// Resident bytes of `pid` now (`VmRSS` of `/proc/<pid>/status`).
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

/// One sample: seconds since the start, resident bytes.
pub type Sample = (f64, u64);

/// The least-squares slope of `samples`, bytes per second (0 for fewer than two samples).
pub fn slope(samples: &[Sample]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let mean_r = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, r) in samples {
        num += (t - mean_t) * (*r as f64 - mean_r);
        den += (t - mean_t) * (t - mean_t);
    }
    if den == 0.0 { 0.0 } else { num / den }
}

/// The second half of `samples`.
pub fn second_half(samples: &[Sample]) -> &[Sample] {
    &samples[samples.len() / 2..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_lines_and_flat_noise() {
        let rising: Vec<Sample> = (0..100).map(|i| (i as f64, 1_000 + 10 * i)).collect();
        assert!((slope(&rising) - 10.0).abs() < 1e-9);
        let flat: Vec<Sample> = (0..100)
            .map(|i| (i as f64, 5_000 + if i % 2 == 0 { 64 } else { 0 }))
            .collect();
        assert!(slope(&flat).abs() < 1.0);
        assert_eq!(slope(&[(0.0, 1)]), 0.0);
        assert_eq!(second_half(&rising).len(), 50);
        assert!(resident_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}
