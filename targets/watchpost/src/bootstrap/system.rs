//! The immutable system facts, collected once at start: `uname`, os-release, `/proc/stat`
//! `btime`, and the init process's namespaces from `/proc/1/ns/*`. Parsing is the core's
//! (`system_info`, `os_release`); this file only reads.

use std::path::Path;

use watchpost_core::EpochNanos;
use watchpost_core::os_release::OsRelease;
use watchpost_core::system_info::{FieldTooLong, NamespaceKind, SystemInfo, parse_boot_time};

/// Where os-release(5) may live, in order.
const OS_RELEASE_PATHS: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

/// Why the system facts could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum SystemInfoError {
    /// A fact is longer than its field holds.
    #[error("system facts: {0}")]
    TooLong(#[from] FieldTooLong),
    /// `/proc/stat` could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// `/proc/stat` has no usable `btime`.
    #[error("{0}")]
    BootTime(#[from] watchpost_core::system_info::BootTimeError),
}

/// Collects the facts of this machine; `proc_root` is normally `/proc`, `started_at` the
/// daemon's start.
pub fn collect(proc_root: &Path, started_at: EpochNanos) -> Result<SystemInfo, SystemInfoError> {
    let mut info = SystemInfo::new();
    let uname = rustix::system::uname();
    info.set_architecture(&uname.machine().to_string_lossy())?;
    info.set_kernel_release(&uname.release().to_string_lossy())?;
    info.set_hostname(&uname.nodename().to_string_lossy())?;
    info.set_watchpost_version(env!("CARGO_PKG_VERSION"))?;
    info.watchpost_start_time = started_at;

    let stat_path = proc_root.join("stat");
    let stat = std::fs::read_to_string(&stat_path).map_err(|source| SystemInfoError::Read {
        path: stat_path.display().to_string(),
        source,
    })?;
    info.boot_time = parse_boot_time(&stat)?;

    let os_release = OS_RELEASE_PATHS
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok());
    if os_release.is_none() {
        tracing::warn!("no os-release file in /etc or /usr/lib: OS name defaults to Linux");
    }
    info.apply_os_release(&OsRelease::new(os_release.as_deref().unwrap_or("")))?;

    for kind in NamespaceKind::ALL {
        let link = proc_root.join("1/ns").join(kind.file_name());
        match std::fs::read_link(&link) {
            Ok(target) => {
                if let Err(e) = info
                    .init_namespaces
                    .record_link(kind, &target.to_string_lossy())
                {
                    tracing::warn!(link = %link.display(), error = %e, "unreadable namespace link");
                }
            }
            // Older kernels lack some namespaces (time before 5.6); reading another process's
            // links needs privilege.
            Err(e) => tracing::debug!(link = %link.display(), error = %e, "namespace not recorded"),
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_this_machine() {
        let info = collect(Path::new("/proc"), 42).unwrap();
        assert_eq!(info.architecture.as_str(), std::env::consts::ARCH);
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(info.kernel_release.as_str(), release.trim());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(info.hostname.as_str(), host.trim());
        assert!(info.boot_time > 0);
        assert_eq!(info.watchpost_start_time, 42);
        assert!(!info.os_name.is_empty());
        // Each of init's namespaces is recorded exactly when its link is readable here (root
        // in a sandbox may be refused).
        for kind in NamespaceKind::ALL {
            let link = std::fs::read_link(format!("/proc/1/ns/{}", kind.file_name()));
            match (link, info.init_namespaces.get(kind)) {
                (Ok(target), Some(inode)) => assert_eq!(
                    target.to_string_lossy(),
                    format!("{}:[{inode}]", kind.link_type())
                ),
                (Err(_), None) => {}
                (link, recorded) => panic!("{kind:?}: link {link:?}, recorded {recorded:?}"),
            }
        }
    }
}
