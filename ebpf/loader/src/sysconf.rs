//! The two `sysconf(3)` values the loader needs: the clock-tick rate (unit of `/proc` start
//! times) and the page size (ring buffers are a power-of-two number of pages).

/// `sysconf(name)` if positive.
fn positive_sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: `sysconf` only reads a configuration value; it has no memory arguments.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value).ok().filter(|&v| v > 0)
}

/// `sysconf(_SC_CLK_TCK)`: `USER_HZ`, usually 100.
pub fn clock_ticks_per_second() -> Option<u64> {
    positive_sysconf(libc::_SC_CLK_TCK)
}

/// `sysconf(_SC_PAGESIZE)`.
pub fn page_size() -> Option<u64> {
    positive_sysconf(libc::_SC_PAGESIZE)
}
