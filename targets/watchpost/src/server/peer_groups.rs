//! The supplementary groups of a connected peer, from the kernel (`SO_PEERGROUPS`, Linux 4.13+):
//! the groups the peer had when it connected, with no race against the peer's pid being reused
//! and no `/proc` read. `getsockopt(SO_PEERGROUPS)` is wrapped by neither rustix nor nix, so this
//! is the one place of the crate with `unsafe`.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

/// `SO_PEERGROUPS` from `<asm-generic/socket.h>` (x86_64 and aarch64 use the generic value; the
/// libc crate does not export it for glibc targets).
const SO_PEERGROUPS: libc::c_int = 59;

/// The kernel's most supplementary groups (`NGROUPS_MAX`).
const NGROUPS_MAX: usize = 65_536;

/// The supplementary groups the peer of `socket` had at connect time. An error (not a Unix
/// socket, an old kernel) means "no supplementary groups": access is then decided by the uid
/// and primary gid alone — deny, don't guess.
pub fn peer_groups(socket: BorrowedFd<'_>) -> std::io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut len = libc::socklen_t::try_from(groups.len() * size_of::<libc::gid_t>())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: `groups` is a live, writable buffer of exactly `len` bytes, `len` is a valid
        // pointer to its size, and the fd is borrowed (open) for the whole call. The kernel
        // writes at most `len` bytes and stores the needed size in `len`.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(count.min(groups.len()));
            return Ok(groups);
        }
        let error = std::io::Error::last_os_error();
        // ERANGE: the buffer was too small and `len` says how much is needed.
        if error.raw_os_error() == Some(libc::ERANGE)
            && count > groups.len()
            && count <= NGROUPS_MAX
        {
            groups.resize(count, 0);
            continue;
        }
        return Err(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn the_peer_groups_are_this_process_groups() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut got = peer_groups(a.as_fd()).unwrap();
        let text = std::fs::read_to_string("/proc/self/status").unwrap();
        let mut expected = crate::procfs::status::parse_status_ids(&text)
            .unwrap()
            .groups;
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected);
    }

    #[test]
    fn not_a_socket_is_an_error() {
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(peer_groups(file.as_fd()).is_err());
    }
}
