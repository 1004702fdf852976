//! The wall clock the actors pass to the core stores as `now` (the core never reads a clock).

use std::time::{SystemTime, UNIX_EPOCH};

use watchpost_core::EpochNanos;

/// Nanoseconds since the Unix epoch now; 0 if the clock is set before 1970.
pub fn now() -> EpochNanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
