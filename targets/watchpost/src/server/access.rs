//! Who may query: root, the daemon's own user, and (when `socket.group` is set) members of that
//! group. The socket's file mode (0600, or 0660 with the group) is the first gate; the peer's
//! credentials, taken from the kernel with `SO_PEERCRED` at connect time, are the second, so a
//! socket file whose mode was loosened by hand still lets nobody else in.

use std::path::Path;

use crate::procfs::status::parse_status_ids;

/// Why a group could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// No such group name in the group database file.
    #[error("no group named {name:?} in {file}")]
    Unknown {
        /// The name.
        name: String,
        /// The file searched.
        file: String,
    },
    /// The group file could not be read.
    #[error("reading {file}: {reason}")]
    Unreadable {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
}

/// The gid of `spec`: a decimal gid, or a group name looked up in `group_file` (`/etc/group`;
/// groups only known to NSS services such as LDAP must be given as numbers).
pub fn resolve_group(spec: &str, group_file: &Path) -> Result<u32, GroupError> {
    let spec = spec.trim();
    if let Ok(gid) = spec.parse::<u32>() {
        return Ok(gid);
    }
    let file = group_file.display().to_string();
    let text = std::fs::read_to_string(group_file).map_err(|e| GroupError::Unreadable {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    gid_in_group_file(&text, spec).ok_or(GroupError::Unknown {
        name: spec.to_owned(),
        file,
    })
}

/// The gid of group `name` in the text of a group(5) file (`name:password:gid:members`).
pub fn gid_in_group_file(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next()? == name).then_some(())?;
            fields.next()?;
            fields.next()?.trim().parse().ok()
        })
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

/// The supplementary groups of process `pid` (empty if it cannot be read: deny, don't guess).
pub fn supplementary_groups(pid: Option<u32>) -> Vec<u32> {
    let Some(pid) = pid else {
        return Vec::new();
    };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| parse_status_ids(&text).ok())
        .map(|ids| ids.groups)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_file_lookup() {
        let text = "root:x:0:\n# comment:x:5:\nwatchpost:x:998:alice,bob\nbad:x:nan:\n";
        assert_eq!(gid_in_group_file(text, "watchpost"), Some(998));
        assert_eq!(gid_in_group_file(text, "root"), Some(0));
        assert_eq!(gid_in_group_file(text, "bad"), None);
        assert_eq!(gid_in_group_file(text, "watch"), None);
        assert_eq!(gid_in_group_file(text, "# comment"), None);
    }

    #[test]
    fn numeric_groups_need_no_file_and_names_do() {
        assert_eq!(resolve_group(" 1234 ", Path::new("/nonexistent")), Ok(1234));
        assert!(matches!(
            resolve_group("staff", Path::new("/nonexistent")),
            Err(GroupError::Unreadable { .. })
        ));
        assert_eq!(resolve_group("root", Path::new("/etc/group")), Ok(0));
        assert!(matches!(
            resolve_group("no-such-group-watchpost", Path::new("/etc/group")),
            Err(GroupError::Unknown { .. })
        ));
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

    #[test]
    fn own_supplementary_groups_are_read() {
        let text = std::fs::read_to_string("/proc/self/status").unwrap();
        let expected = parse_status_ids(&text).unwrap().groups;
        assert_eq!(supplementary_groups(Some(std::process::id())), expected);
        assert!(supplementary_groups(None).is_empty());
    }
}
