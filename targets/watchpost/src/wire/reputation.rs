//! The wire shapes of the IP reputation commands and of `persistence` / `snapshot` answers.

use serde::{Deserialize, Serialize};
use watchpost_core::ip_reputation::{
    IpReputation, ReputationStatus, record::MAX_METADATA, record::MAX_TAGS,
};

/// Most records in one `reputation_write` request (a frame holds at most 64 KiB by default).
pub const MAX_WIRE_RECORDS: usize = 4096;

/// One verdict as a client writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireVerdict {
    /// The address (`203.0.113.7`, `2001:db8::1`).
    pub ip: String,
    /// `allow`, `deny`, `suspicious` or `unknown`.
    pub status: String,
    /// 1 to 10.
    pub severity: u8,
    /// Labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// When the source decided, epoch ns (the daemon's clock when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<u64>,
}

/// `status` text as a [`ReputationStatus`].
pub fn parse_status(text: &str) -> Option<ReputationStatus> {
    Some(match text {
        "allow" => ReputationStatus::Allow,
        "deny" => ReputationStatus::Deny,
        "suspicious" => ReputationStatus::Suspicious,
        "unknown" => ReputationStatus::Unknown,
        _ => return None,
    })
}

impl WireVerdict {
    /// The core record, or why not (the store checks the rest: severity range, tag rules).
    pub fn to_record(&self, now: u64) -> Result<IpReputation, String> {
        let status = parse_status(&self.status).ok_or_else(|| {
            format!(
                "status {:?}: expected allow, deny, suspicious or unknown",
                self.status
            )
        })?;
        let mut r = IpReputation::new(
            self.ip.as_str(),
            status,
            self.severity,
            self.last_updated.unwrap_or(now),
        )
        .map_err(|e| format!("ip {:?}: {e}", self.ip))?;
        if self.tags.len() > MAX_TAGS {
            return Err(format!("at most {MAX_TAGS} tags"));
        }
        for tag in &self.tags {
            r.add_tag(tag).map_err(|e| format!("tag {tag:?}: {e}"))?;
        }
        let _ = MAX_METADATA;
        Ok(r)
    }
}

/// The merged verdict on one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReputationAnswer {
    /// The address asked about, normalised.
    pub ip: String,
    /// The winning source.
    pub source: String,
    /// Its status.
    pub status: String,
    /// Its severity.
    pub severity: u8,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its `last_updated`, epoch ns.
    pub last_updated: u64,
}

/// What a reputation write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReputationWritten {
    /// Entries written, deleted or cleared.
    pub entries: u64,
    /// Whether they are in the snapshot file (false: persistence is off).
    pub persisted: bool,
}
