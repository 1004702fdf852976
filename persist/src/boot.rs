//! Which boot a snapshot belongs to. Process records are only valid within the boot that saw
//! them (pids and start times restart at every boot); DNS answers, containers and writable stores
//! outlive a reboot.

use serde::{Deserialize, Serialize};

/// The identity of the running boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootIdentity {
    /// `/proc/sys/kernel/random/boot_id`: a UUID the kernel draws at every boot.
    pub boot_id: String,
    /// Boot time, seconds since the epoch (`/proc/stat` `btime`).
    pub btime: u64,
}

impl BootIdentity {
    /// Reads the boot id of the running kernel (trimmed); `None` if unreadable or not a UUID-like
    /// token (at most 64 characters of hex digits and dashes).
    pub fn read_boot_id() -> Option<String> {
        let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = text.trim();
        let plausible = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        plausible.then(|| id.to_owned())
    }
}
