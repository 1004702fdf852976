//! Who this gateway is, for records and MQTT topics: the host name and this boot's id, read once
//! at start.

use std::path::Path;

/// The host name and boot id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    /// `uname -n`.
    pub host_name: String,
    /// `/proc/sys/kernel/random/boot_id` (a UUID); `unknown` when unreadable.
    pub boot_id: String,
}

/// Longest host name kept (a DNS name is at most 253 bytes).
const MAX_HOST_NAME: usize = 253;

impl HostIdentity {
    /// Reads both from the running system (`proc` is normally `/proc`).
    pub fn read(proc: &Path) -> HostIdentity {
        let uname = rustix::system::uname();
        let host_name: String = uname
            .nodename()
            .to_string_lossy()
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_HOST_NAME)
            .collect();
        let boot_id = std::fs::read_to_string(proc.join("sys/kernel/random/boot_id"))
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 64
                    && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
            })
            .unwrap_or_else(|| "unknown".to_owned());
        HostIdentity {
            host_name: if host_name.is_empty() {
                "localhost".to_owned()
            } else {
                host_name
            },
            boot_id,
        }
    }

    /// The host name as one MQTT topic level: `/`, `+`, `#` and NUL replaced by `_`.
    pub fn topic_level(&self) -> String {
        self.host_name
            .chars()
            .map(|c| {
                if matches!(c, '/' | '+' | '#' | '\0') {
                    '_'
                } else {
                    c
                }
            })
            .collect()
    }
}
