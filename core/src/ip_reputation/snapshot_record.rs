//! What a snapshot keeps of the IP reputation store: one record per (source, address), with
//! everything the source said (status, severity, tags, metadata, its own timestamp). Conflicts
//! are resolved at read time from these, so nothing else needs keeping; source priorities come
//! from the configuration.
//!
//! The one place to add a field that must survive a restart is [`IpReputation`] itself.

use super::record::IpReputation;

/// One source's verdict on one address, as a snapshot holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReputationRecord<'a> {
    /// Who said it.
    #[cfg_attr(feature = "serde", serde(borrow))]
    pub source: &'a str,
    /// What it said (address normalised).
    pub reputation: IpReputation,
}
