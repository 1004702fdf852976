//! The daemon's resident set size, from `/proc/self/statm` (pages × page size).

/// Resident bytes of this process now; `None` if `/proc` cannot tell. A small read of a
/// procfs file: call it from the blocking pool when on the async runtime.
pub fn resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    resident_bytes_of(&text, rustix::param::page_size() as u64)
}

/// Resident bytes from the text of a `statm` file (second field: resident pages).
pub fn resident_bytes_of(statm: &str, page_size: u64) -> Option<u64> {
    let pages: u64 = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_is_read() {
        assert_eq!(
            resident_bytes_of("1000 250 30 4 0 50 0\n", 4096),
            Some(1_024_000)
        );
        assert_eq!(resident_bytes_of("1000\n", 4096), None);
        assert_eq!(resident_bytes_of("1 x 2", 4096), None);
        assert_eq!(resident_bytes_of(&format!("1 {} 2", u64::MAX), 4096), None);
        assert!(resident_bytes().is_some_and(|b| b > 0));
    }
}
