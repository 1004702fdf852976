//! Parser for the ID lines of `/proc/<pid>/status`: real uid and gid (what the process store
//! records, and what the reference never filled in) and the supplementary groups (what the query
//! socket checks a client's group membership against).
//!
//! The core has parsers for `/proc/<pid>/stat`, cgroup files and os-release; this file is the
//! only `/proc` text the core does not read, so its parser lives with the daemon.

/// The IDs of one process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusIds {
    /// Real user ID (first number of `Uid:`).
    pub uid: u32,
    /// Real group ID (first number of `Gid:`).
    pub gid: u32,
    /// Supplementary groups (`Groups:`), empty if none or if the line is absent.
    pub groups: Vec<u32>,
}

/// Why a status text has no usable IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// No line starting with this key (`Uid:`, `Gid:`).
    #[error("no {0} line in /proc/<pid>/status")]
    Missing(&'static str),
    /// The line does not start with a decimal `u32`.
    #[error("{0} line of /proc/<pid>/status is not a list of decimal IDs")]
    Malformed(&'static str),
}

fn first_id(text: &str, key: &'static str) -> Result<u32, StatusError> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .ok_or(StatusError::Missing(key))?;
    line.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or(StatusError::Malformed(key))
}

/// Reads real uid, real gid and supplementary groups from the text of `/proc/<pid>/status`.
pub fn parse_status_ids(text: &str) -> Result<StatusIds, StatusError> {
    let uid = first_id(text, "Uid:")?;
    let gid = first_id(text, "Gid:")?;
    let groups = match text.lines().find_map(|l| l.strip_prefix("Groups:")) {
        None => Vec::new(),
        Some(list) => list
            .split_whitespace()
            .map(|g| g.parse().map_err(|_| StatusError::Malformed("Groups:")))
            .collect::<Result<_, _>>()?,
    };
    Ok(StatusIds { uid, gid, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n\
        PPid:\t1\nUid:\t1000\t0\t0\t0\nGid:\t100\t27\t27\t27\nFDSize:\t256\n\
        Groups:\t4 24 27 \nNStgid:\t4242\n";

    #[test]
    fn real_ids_are_the_first_columns() {
        let ids = parse_status_ids(SAMPLE).unwrap();
        assert_eq!(ids.uid, 1000);
        assert_eq!(ids.gid, 100);
        assert_eq!(ids.groups, [4, 24, 27]);
    }

    #[test]
    fn empty_or_absent_groups_are_none() {
        let text = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n";
        assert!(parse_status_ids(text).unwrap().groups.is_empty());
        let text = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert!(parse_status_ids(text).unwrap().groups.is_empty());
    }

    #[test]
    fn missing_and_malformed_lines_are_errors() {
        assert_eq!(
            parse_status_ids("Gid:\t0\n"),
            Err(StatusError::Missing("Uid:"))
        );
        assert_eq!(
            parse_status_ids("Uid:\tx\nGid:\t0\n"),
            Err(StatusError::Malformed("Uid:"))
        );
        assert_eq!(
            parse_status_ids("Uid:\t1\nGid:\t99999999999\n"),
            Err(StatusError::Malformed("Gid:"))
        );
        assert_eq!(
            parse_status_ids("Uid:\t1\nGid:\t1\nGroups:\t1 two\n"),
            Err(StatusError::Malformed("Groups:"))
        );
    }

    #[test]
    fn reads_this_process() {
        let text = std::fs::read_to_string("/proc/self/status").unwrap();
        let ids = parse_status_ids(&text).unwrap();
        assert_eq!(ids.uid, rustix::process::getuid().as_raw());
        assert_eq!(ids.gid, rustix::process::getgid().as_raw());
    }
}
