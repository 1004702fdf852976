//! Health of a store, as the reference defines it: a status, a message, when it was checked.

use crate::time::EpochNanos;

/// Longest health message kept; longer messages are cut at a character boundary.
pub const HEALTH_MESSAGE_LEN: usize = 128;

/// The reference's three health states (numeric values match it: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum HealthStatus {
    /// Not yet known (e.g. before the first load).
    #[default]
    Unknown = 0,
    /// Operating normally.
    Healthy = 1,
    /// Degraded or unavailable; the message says why.
    Unhealthy = 2,
}

impl HealthStatus {
    /// Lowercase name, as printed by the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Unknown => "unknown",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// A store's health at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HealthInfo {
    /// Current status.
    pub status: HealthStatus,
    /// What is wrong when unhealthy; empty when all is well. A store that still answers but has
    /// lost or refused something (evicted a live entry, is full) stays Healthy with a warning here.
    pub message: heapless::String<HEALTH_MESSAGE_LEN>,
    /// When this was determined.
    pub last_check: EpochNanos,
}

impl HealthInfo {
    /// Healthy, no message.
    pub fn healthy(now: EpochNanos) -> Self {
        HealthInfo {
            status: HealthStatus::Healthy,
            message: heapless::String::new(),
            last_check: now,
        }
    }

    /// `status` with `message` (cut to [`HEALTH_MESSAGE_LEN`] bytes at a char boundary).
    pub fn with_message(status: HealthStatus, message: &str, now: EpochNanos) -> Self {
        let mut kept = heapless::String::new();
        for ch in message.chars() {
            if kept.push(ch).is_err() {
                break;
            }
        }
        HealthInfo {
            status,
            message: kept,
            last_check: now,
        }
    }

    /// Unhealthy because of `message`.
    pub fn unhealthy(message: &str, now: EpochNanos) -> Self {
        Self::with_message(HealthStatus::Unhealthy, message, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let h = HealthInfo::unhealthy(&long, 7);
        assert_eq!(h.status, HealthStatus::Unhealthy);
        assert_eq!(h.message.len(), HEALTH_MESSAGE_LEN);
        assert!(h.message.chars().all(|c| c == 'é'));
        assert_eq!(h.last_check, 7);
    }

    #[test]
    fn numeric_values_match_the_reference() {
        assert_eq!(HealthStatus::Unknown as u8, 0);
        assert_eq!(HealthStatus::Healthy as u8, 1);
        assert_eq!(HealthStatus::Unhealthy as u8, 2);
    }
}
