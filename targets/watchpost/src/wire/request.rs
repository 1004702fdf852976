//! What a client may ask the daemon: one JSON object per frame, `{"command": "...", ...}`.
//! Unknown commands and unknown fields are refused by the decoder; [`Request::validate`] bounds
//! every string and list so one request cannot make the daemon do unbounded work.

use serde::{Deserialize, Serialize};
use watchpost_core::syscall::Arch;

/// Longest string accepted in a request (names, IDs, queries), bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Most addresses in one `symbols` request.
pub const MAX_BATCH_ADDRESSES: usize = 4096;
/// Deepest ancestry served.
pub const MAX_ANCESTRY_DEPTH: i32 = 4096;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Registered stores with their state. (Variants without fields are written `{}` so that
    /// unknown fields are refused for them too.)
    Stores {},
    /// Health of one store, or of all.
    Health {
        /// The store; all when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        store: Option<String>,
    },
    /// Metrics of one store, or of all plus the daemon's own counters.
    Metrics {
        /// The store; all when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        store: Option<String>,
    },
    /// The system facts.
    System {},
    /// One process by entity ID.
    Process {
        /// Entity ID.
        entity_id: u32,
    },
    /// The process running as `pid` now (its entity ID computed from `/proc` by the daemon).
    ProcessByPid {
        /// Process ID.
        pid: u32,
    },
    /// `[self, parent, …]`.
    Ancestry {
        /// Entity ID.
        entity_id: u32,
        /// Most entries.
        depth: i32,
    },
    /// Children of a process.
    Children {
        /// Entity ID.
        entity_id: u32,
    },
    /// A syscall's number by name.
    SyscallByName {
        /// Name (`execve`).
        name: String,
        /// Architecture (`x86_64`, `aarch64`); the daemon's when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arch: Option<String>,
    },
    /// A syscall's name by number.
    SyscallById {
        /// Number.
        id: i32,
        /// Architecture; the daemon's when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arch: Option<String>,
    },
    /// Every symbol at exactly this address.
    SymbolByAddress {
        /// Address.
        address: u64,
    },
    /// A symbol's address.
    SymbolByName {
        /// Name.
        name: String,
    },
    /// Many addresses at once.
    Symbols {
        /// Addresses.
        addresses: Vec<u64>,
    },
    /// An observed DNS answer, by name or IP.
    Dns {
        /// Name or IP.
        query: String,
        /// As this network namespace (inode number) saw it; absent: as the host's and known
        /// containers' namespaces saw it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netns: Option<u32>,
    },
    /// A container by full ID or unique prefix.
    Container {
        /// ID or prefix.
        id: String,
    },
    /// A container by name.
    ContainerByName {
        /// Name.
        name: String,
    },
    /// Take a snapshot of every restorable store now.
    Snapshot {},
    /// The snapshot file's state.
    Persistence {},
    /// Write verdicts of one source to the IP reputation store (all or none).
    ReputationWrite {
        /// The source (feed or detector name).
        source: String,
        /// The verdicts.
        records: Vec<super::reputation::WireVerdict>,
    },
    /// Forget one source's verdict on one address.
    ReputationDelete {
        /// The source.
        source: String,
        /// The address.
        ip: String,
    },
    /// Forget everything one source said.
    ReputationClear {
        /// The source.
        source: String,
    },
    /// The merged verdict on an address.
    Reputation {
        /// The address.
        ip: String,
    },
    /// Live containers, filtered.
    Containers {
        /// Exact name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Exact image.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        /// Runtime.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runtime: Option<String>,
    },
    /// Stream every detection record from now on, one frame each (`query events --follow`).
    Events {},
}

/// Why a decoded request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RequestError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn text(field: &'static str, value: &str) -> Result<(), RequestError> {
    if value.is_empty() {
        return Err(RequestError {
            field,
            reason: "must not be empty".into(),
        });
    }
    if value.len() > MAX_TEXT_BYTES {
        return Err(RequestError {
            field,
            reason: format!("longer than {MAX_TEXT_BYTES} bytes"),
        });
    }
    Ok(())
}

fn optional_text(field: &'static str, value: &Option<String>) -> Result<(), RequestError> {
    value.as_deref().map_or(Ok(()), |v| text(field, v))
}

/// The architecture named `name`, as the CLI and the wire spell it.
pub fn parse_arch(name: &str) -> Result<Arch, RequestError> {
    Arch::from_machine(name).ok_or_else(|| RequestError {
        field: "arch",
        reason: format!("unknown architecture {name:?}: expected x86_64 or aarch64"),
    })
}

impl Request {
    /// Checks bounds and formats the decoder cannot express.
    pub fn validate(&self) -> Result<(), RequestError> {
        match self {
            Request::Stores {}
            | Request::System {}
            | Request::Snapshot {}
            | Request::Persistence {} => Ok(()),
            Request::ReputationWrite { source, records } => {
                text("source", source)?;
                if records.is_empty() || records.len() > super::reputation::MAX_WIRE_RECORDS {
                    return Err(RequestError {
                        field: "records",
                        reason: format!(
                            "between 1 and {} records",
                            super::reputation::MAX_WIRE_RECORDS
                        ),
                    });
                }
                for r in records {
                    text("ip", &r.ip)?;
                    text("status", &r.status)?;
                    for t in &r.tags {
                        text("tags", t)?;
                    }
                }
                Ok(())
            }
            Request::ReputationDelete { source, ip } => {
                text("source", source)?;
                text("ip", ip)
            }
            Request::ReputationClear { source } => text("source", source),
            Request::Reputation { ip } => text("ip", ip),
            Request::Health { store } | Request::Metrics { store } => optional_text("store", store),
            Request::Process { .. } | Request::ProcessByPid { .. } | Request::Children { .. } => {
                Ok(())
            }
            Request::Ancestry { depth, .. } => {
                if *depth > MAX_ANCESTRY_DEPTH {
                    Err(RequestError {
                        field: "depth",
                        reason: format!("at most {MAX_ANCESTRY_DEPTH}"),
                    })
                } else {
                    Ok(())
                }
            }
            Request::SyscallByName { name, arch } => {
                text("name", name)?;
                arch.as_deref().map_or(Ok(()), |a| parse_arch(a).map(drop))
            }
            Request::SyscallById { arch, .. } => {
                arch.as_deref().map_or(Ok(()), |a| parse_arch(a).map(drop))
            }
            Request::SymbolByAddress { .. } => Ok(()),
            Request::SymbolByName { name } => text("name", name),
            Request::Symbols { addresses } => {
                if addresses.is_empty() || addresses.len() > MAX_BATCH_ADDRESSES {
                    Err(RequestError {
                        field: "addresses",
                        reason: format!("between 1 and {MAX_BATCH_ADDRESSES} addresses"),
                    })
                } else {
                    Ok(())
                }
            }
            Request::Dns { query, .. } => text("query", query),
            Request::Container { id } => text("id", id),
            Request::ContainerByName { name } => text("name", name),
            Request::Containers {
                name,
                image,
                runtime,
            } => {
                optional_text("name", name)?;
                optional_text("image", image)?;
                optional_text("runtime", runtime)
            }
            Request::Events {} => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let r: Request = serde_json::from_str(r#"{"command":"stores"}"#).unwrap();
        assert_eq!(r, Request::Stores {});
        let r: Request =
            serde_json::from_str(r#"{"command":"ancestry","entity_id":7,"depth":5}"#).unwrap();
        assert_eq!(
            r,
            Request::Ancestry {
                entity_id: 7,
                depth: 5
            }
        );
        let r: Request = serde_json::from_str(r#"{"command":"health"}"#).unwrap();
        assert_eq!(r, Request::Health { store: None });
        let r: Request = serde_json::from_str(
            r#"{"command":"symbol_by_address","address":18446744071562067968}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Request::SymbolByAddress {
                address: 0xffff_ffff_8000_0000
            }
        );
        let back = serde_json::to_string(&Request::Health { store: None }).unwrap();
        assert_eq!(back, r#"{"command":"health"}"#);
    }

    #[test]
    fn unknown_commands_fields_and_types_are_refused() {
        for bad in [
            r#"{"command":"format_disk"}"#,
            r#"{"command":"stores","extra":1}"#,
            r#"{"command":"process","entity_id":"seven"}"#,
            r#"{"command":"process"}"#,
            r#"{"entity_id":1}"#,
            r#"[1,2,3]"#,
            r#"{"command":"process","entity_id":4294967296}"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_bounds_text_lists_and_arch() {
        assert!(
            Request::Dns {
                query: String::new(),
                netns: None,
            }
            .validate()
            .is_err()
        );
        assert!(
            Request::Dns {
                query: "x".repeat(MAX_TEXT_BYTES + 1),
                netns: None,
            }
            .validate()
            .is_err()
        );
        assert!(
            Request::Dns {
                query: "example.com".into(),
                netns: None,
            }
            .validate()
            .is_ok()
        );
        assert!(Request::Symbols { addresses: vec![] }.validate().is_err());
        assert!(
            Request::Symbols {
                addresses: vec![1; MAX_BATCH_ADDRESSES + 1]
            }
            .validate()
            .is_err()
        );
        let e = Request::SyscallById {
            id: 1,
            arch: Some("mips".into()),
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "arch");
        assert!(
            Request::SyscallById {
                id: 1,
                arch: Some("arm64".into())
            }
            .validate()
            .is_ok()
        );
        assert!(
            Request::Ancestry {
                entity_id: 1,
                depth: MAX_ANCESTRY_DEPTH + 1
            }
            .validate()
            .is_err()
        );
        assert!(
            Request::Ancestry {
                entity_id: 1,
                depth: -3
            }
            .validate()
            .is_ok()
        );
    }
}
