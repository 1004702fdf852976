//! Container identifiers: one validated, bounded type shared by the cgroup parser and the table.
//!
//! Every runtime we know names containers inside containerd's identifier grammar: Docker, CRI-O,
//! podman and CRI use 64 lowercase hex digits, Garden uses `8-4-4-4-4` hex groups and plain
//! containerd (`ctr run … <id>`) accepts any identifier of up to 76 characters made of ASCII
//! letters and digits joined by single `.`, `_` or `-`. Validating once, at the edge, means the
//! table never holds (and the CLI never prints) a string that cannot be an ID.

use core::fmt;

/// Longest container ID accepted: containerd's identifier limit.
pub const CONTAINER_ID_MAX_LEN: usize = 76;

/// Length of the IDs Docker, CRI-O, podman and CRI generate (hex digits of a SHA-256).
pub const HEX_ID_LEN: usize = 64;

/// Why a string is not a container ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ContainerIdError {
    /// The string is empty.
    Empty,
    /// Longer than [`CONTAINER_ID_MAX_LEN`].
    TooLong,
    /// A character other than ASCII letters, digits, `.`, `_`, `-`; or a separator at either end
    /// or next to another separator.
    BadCharacter,
}

impl fmt::Display for ContainerIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContainerIdError::Empty => "container id is empty",
            ContainerIdError::TooLong => "container id is longer than 76 characters",
            ContainerIdError::BadCharacter => {
                "container id must be letters and digits joined by single '.', '_' or '-'"
            }
        })
    }
}

impl core::error::Error for ContainerIdError {}

/// A container ID, valid by construction (see the module doc for the grammar).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(try_from = "heapless::String<CONTAINER_ID_MAX_LEN>")
)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ContainerId(
    /// Invariant: satisfies [`check_identifier`].
    heapless::String<CONTAINER_ID_MAX_LEN>,
);

impl ContainerId {
    /// Validates `id` and copies it.
    pub fn new(id: &str) -> Result<Self, ContainerIdError> {
        check_identifier(id)?;
        let mut s = heapless::String::new();
        // Cannot fail: the length was checked above.
        s.push_str(id).map_err(|_| ContainerIdError::TooLong)?;
        Ok(ContainerId(s))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether this is a 64-hex-digit ID (Docker, CRI-O, podman, CRI).
    pub fn is_hex64(&self) -> bool {
        is_hex64(self.as_str())
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for ContainerId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl TryFrom<&str> for ContainerId {
    type Error = ContainerIdError;
    fn try_from(id: &str) -> Result<Self, Self::Error> {
        ContainerId::new(id)
    }
}

impl TryFrom<heapless::String<CONTAINER_ID_MAX_LEN>> for ContainerId {
    type Error = ContainerIdError;
    fn try_from(id: heapless::String<CONTAINER_ID_MAX_LEN>) -> Result<Self, Self::Error> {
        check_identifier(&id)?;
        Ok(ContainerId(id))
    }
}

fn is_separator(b: u8) -> bool {
    matches!(b, b'.' | b'_' | b'-')
}

/// Checks containerd's identifier grammar: 1..=76 ASCII letters and digits, optionally joined by
/// single `.`, `_` or `-` (no separator first, last, or twice in a row).
pub fn check_identifier(id: &str) -> Result<(), ContainerIdError> {
    let bytes = id.as_bytes();
    if bytes.is_empty() {
        return Err(ContainerIdError::Empty);
    }
    if bytes.len() > CONTAINER_ID_MAX_LEN {
        return Err(ContainerIdError::TooLong);
    }
    let mut previous_was_separator = true; // a separator may not come first
    for &b in bytes {
        if b.is_ascii_alphanumeric() {
            previous_was_separator = false;
        } else if is_separator(b) && !previous_was_separator {
            previous_was_separator = true;
        } else {
            return Err(ContainerIdError::BadCharacter);
        }
    }
    if previous_was_separator {
        return Err(ContainerIdError::BadCharacter);
    }
    Ok(())
}

/// Whether `s` is exactly 64 lowercase hex digits. Runtimes only ever write lowercase IDs into
/// cgroup paths, so uppercase is treated as "not an ID" rather than normalised.
pub fn is_hex64(s: &str) -> bool {
    s.len() == HEX_ID_LEN && is_lower_hex(s)
}

/// Whether every byte of `s` is `0-9` or `a-f` (true for the empty string).
pub fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `s` is a Garden (Cloud Foundry) container ID: hex groups of 8-4-4-4-4 digits.
pub fn is_garden_id(s: &str) -> bool {
    let mut groups = s.split('-');
    for len in [8usize, 4, 4, 4, 4] {
        match groups.next() {
            Some(g) if g.len() == len && is_lower_hex(g) => {}
            _ => return false,
        }
    }
    groups.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_grammar() {
        assert!(check_identifier("a").is_ok());
        assert!(check_identifier("my-ctr_1.v2").is_ok());
        assert_eq!(check_identifier(""), Err(ContainerIdError::Empty));
        assert_eq!(check_identifier("-a"), Err(ContainerIdError::BadCharacter));
        assert_eq!(check_identifier("a-"), Err(ContainerIdError::BadCharacter));
        assert_eq!(
            check_identifier("a--b"),
            Err(ContainerIdError::BadCharacter)
        );
        assert_eq!(check_identifier("a/b"), Err(ContainerIdError::BadCharacter));
        assert_eq!(check_identifier("a b"), Err(ContainerIdError::BadCharacter));
        assert_eq!(check_identifier("é"), Err(ContainerIdError::BadCharacter));
        let max = [b'a'; CONTAINER_ID_MAX_LEN];
        let max = core::str::from_utf8(&max).unwrap_or_default();
        assert!(check_identifier(max).is_ok());
        let over = [b'a'; CONTAINER_ID_MAX_LEN + 1];
        let over = core::str::from_utf8(&over).unwrap_or_default();
        assert_eq!(check_identifier(over), Err(ContainerIdError::TooLong));
    }

    #[test]
    fn hex_and_garden_shapes() {
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert!(is_hex64(hex));
        assert!(!is_hex64(&hex[1..]));
        assert!(!is_hex64(
            "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"
        ));
        assert!(is_garden_id("0123abcd-0123-4567-89ab-cdef"));
        assert!(!is_garden_id("0123abcd-0123-4567-89ab-cdef0"));
        assert!(!is_garden_id("0123abcd-0123-4567-89ab"));
        assert!(!is_garden_id("0123abcd-0123-4567-89ab-cdef-0000"));
        assert!(!is_garden_id("0123abcg-0123-4567-89ab-cdef"));
    }

    #[test]
    fn new_keeps_the_text() {
        let id = ContainerId::new("abc").ok();
        assert_eq!(id.as_ref().map(ContainerId::as_str), Some("abc"));
        assert!(ContainerId::new("bad id").is_err());
    }
}
