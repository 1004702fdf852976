//! The executable of a process as `/proc/<pid>/exe` tells it, with the same flags the eBPF path
//! reports: the link's text is the file's path; the kernel appends ` (deleted)` to an unlinked
//! file's path, which is stripped here and reported as `deleted` — decided by the file's link
//! count (0), not by the text, since a file may be named "x (deleted)". A memfd's path is
//! `/memfd:<name>`, and it is told apart from a file of that name by its device: the internal
//! shmem mount every memfd lives on, learned once by creating a memfd of our own.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;

use watchpost_core::process::ExeFlags;

/// The suffix the kernel's `d_path` puts on an unlinked file's path.
const DELETED_SUFFIX: &str = " (deleted)";

/// The device number of the mount memfds live on, if a memfd could be made here.
fn memfd_device() -> Option<u64> {
    static DEVICE: OnceLock<Option<u64>> = OnceLock::new();
    *DEVICE.get_or_init(|| {
        let fd =
            rustix::fs::memfd_create("watchpost-probe", rustix::fs::MemfdFlags::CLOEXEC).ok()?;
        let stat = rustix::fs::fstat(&fd).ok()?;
        Some(stat.st_dev)
    })
}

/// The path and flags of the executable behind the magic link `link` (`/proc/<pid>/exe`);
/// `None` when it cannot be read (kernel threads, zombies, permissions).
pub fn read_exe(link: &Path) -> Option<(String, ExeFlags)> {
    let text = std::fs::read_link(link)
        .ok()?
        .to_string_lossy()
        .into_owned();
    // Follows the magic link to the file itself, unlinked or not.
    let meta = std::fs::metadata(link).ok();
    Some(classify(
        text,
        meta.map(|m| (m.nlink(), m.dev())),
        memfd_device(),
    ))
}

/// The path and flags from the link's text, the file's (link count, device) and the memfd
/// device.
fn classify(text: String, file: Option<(u64, u64)>, memfd_dev: Option<u64>) -> (String, ExeFlags) {
    let deleted = file.is_some_and(|(nlink, _)| nlink == 0);
    let path = match text.strip_suffix(DELETED_SUFFIX) {
        Some(stripped) if deleted => stripped.to_owned(),
        _ => text,
    };
    let memfd = deleted
        && path.starts_with("/memfd:")
        && file.is_some_and(|(_, dev)| Some(dev) == memfd_dev);
    let flags = ExeFlags {
        deleted,
        memfd,
        ..ExeFlags::NONE
    };
    (path, flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_is_the_link_count_not_the_text() {
        let (p, f) = classify("/tmp/a (deleted)".into(), Some((0, 5)), Some(9));
        assert_eq!(p, "/tmp/a");
        assert!(f.deleted && !f.memfd);
        // A live file whose name ends in " (deleted)" keeps it.
        let (p, f) = classify("/tmp/b (deleted)".into(), Some((1, 5)), Some(9));
        assert_eq!(p, "/tmp/b (deleted)");
        assert!(!f.deleted);
        let (p, f) = classify("/memfd:x (deleted)".into(), Some((0, 9)), Some(9));
        assert_eq!(p, "/memfd:x");
        assert!(f.deleted && f.memfd);
        assert_eq!(f.memfd_name(&p), Some("x"));
        // Same name on another device: a deleted file, not a memfd.
        let (_, f) = classify("/memfd:x (deleted)".into(), Some((0, 5)), Some(9));
        assert!(f.deleted && !f.memfd);
    }

    #[test]
    fn our_own_executable_and_a_memfd_device() {
        let (path, flags) = read_exe(Path::new("/proc/self/exe")).unwrap();
        assert_eq!(Path::new(&path), std::env::current_exe().unwrap());
        assert_eq!(flags, ExeFlags::NONE);
        assert!(memfd_device().is_some());
    }
}
