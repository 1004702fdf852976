//! Time as the core sees it: plain nanoseconds since the Unix epoch, passed in by the caller.
//!
//! The core never reads a clock. Every operation that depends on time (expiry, recency, last
//! access) takes `now`, so tests drive time by hand and the same code runs without an OS.

/// Nanoseconds since 1970-01-01T00:00:00Z. `0` means "never" / "unknown".
pub type EpochNanos = u64;

/// One second in nanoseconds.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;
/// One millisecond in nanoseconds.
pub const NANOS_PER_MILLI: u64 = 1_000_000;
