//! Who may query: root, the daemon's own user, and (when `socket.group` is set) members of that
//! group. The socket's file mode (0600, or 0660 with the group) is the first gate; the peer's
//! credentials, taken from the kernel with `SO_PEERCRED` (uid, gid) and `SO_PEERGROUPS`
//! (supplementary groups) at connect time, are the second, so a socket file whose mode was
//! loosened by hand still lets nobody else in.

use std::os::fd::BorrowedFd;

use super::peer_groups::peer_groups;

/// Why a group could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The system's group database (files, LDAP, … through NSS) has no such group.
    #[error("no group named {name:?} in the system's group database")]
    Unknown {
        /// The name.
        name: String,
    },
    /// The group database could not be asked.
    #[error("looking up group {name:?}: {reason}")]
    Lookup {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The gid of `spec`: a decimal gid, or a group name looked up with the system's own lookup
/// (`getgrnam_r`, so groups from NSS services such as LDAP or systemd-userdb are found too).
pub fn resolve_group(spec: &str) -> Result<u32, GroupError> {
    let spec = spec.trim();
    if let Ok(gid) = spec.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(spec) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(GroupError::Unknown {
            name: spec.to_owned(),
        }),
        Err(e) => Err(GroupError::Lookup {
            name: spec.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// The peer as the kernel reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Effective uid at connect time.
    pub uid: u32,
    /// Effective gid at connect time.
    pub gid: u32,
    /// Process ID, when the kernel knows it (for supplementary groups).
    pub pid: Option<u32>,
}

/// The access rule of one daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessPolicy {
    /// The daemon's own effective uid (the socket's owner).
    pub owner_uid: u32,
    /// The group allowed, if any.
    pub group: Option<u32>,
}

impl AccessPolicy {
    /// Whether `peer` may query; `supplementary_groups` is asked only when group membership
    /// decides.
    pub fn allows(&self, peer: Peer, supplementary_groups: impl FnOnce() -> Vec<u32>) -> bool {
        if peer.uid == 0 || peer.uid == self.owner_uid {
            return true;
        }
        match self.group {
            None => false,
            Some(g) => peer.gid == g || supplementary_groups().contains(&g),
        }
    }
}

/// The supplementary groups of the peer of `socket`, as the kernel recorded them at connect time
/// (empty if they cannot be had: deny, don't guess).
pub fn supplementary_groups(socket: BorrowedFd<'_>) -> Vec<u32> {
    peer_groups(socket).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_the_system_lookup() {
        assert_eq!(resolve_group(" 1234 "), Ok(1234));
        assert_eq!(resolve_group("root"), Ok(0));
        assert_eq!(
            resolve_group("no-such-group-watchpost"),
            Err(GroupError::Unknown {
                name: "no-such-group-watchpost".into()
            })
        );
    }

    #[test]
    fn policy() {
        let root_only = AccessPolicy {
            owner_uid: 0,
            group: None,
        };
        let peer = |uid, gid| Peer {
            uid,
            gid,
            pid: None,
        };
        assert!(root_only.allows(peer(0, 0), Vec::new));
        assert!(!root_only.allows(peer(1000, 1000), || vec![1000]));
        let with_group = AccessPolicy {
            owner_uid: 0,
            group: Some(998),
        };
        assert!(with_group.allows(peer(1000, 998), Vec::new));
        assert!(with_group.allows(peer(1000, 1000), || vec![4, 998]));
        assert!(!with_group.allows(peer(1000, 1000), || vec![4]));
        let as_user = AccessPolicy {
            owner_uid: 1000,
            group: None,
        };
        assert!(as_user.allows(peer(1000, 1000), Vec::new));
        assert!(!as_user.allows(peer(1001, 1000), Vec::new));
    }
}
