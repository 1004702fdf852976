//! A process name (the kernel's `comm`), held inline in at most 16 bytes of valid UTF-8.
//!
//! The kernel keeps `comm` in `TASK_COMM_LEN` (16) bytes; eBPF hands it over NUL-padded and
//! `/proc/<pid>/stat` prints it raw, sometimes longer (workqueue workers: `kworker/0:1H-kblockd`).
//! Storing it inline keeps process records fixed-size; normalising it to UTF-8 once, at the edge,
//! lets every reader borrow a `&str` without allocating.

use core::fmt;

/// Longest name kept, in bytes (the kernel's `TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// A process name: at most [`COMM_LEN`] bytes of UTF-8.
///
/// Built from raw bytes with [`Comm::from_bytes`]: it stops at the first NUL, replaces each invalid
/// UTF-8 sequence with `?` and keeps at most [`COMM_LEN`] bytes, cut on a character boundary.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(
        from = "heapless::String<COMM_LEN>",
        into = "heapless::String<COMM_LEN>"
    )
)]
pub struct Comm {
    /// Invariant: `bytes[..len]` is valid UTF-8 and every byte from `len` on is 0 (so the derived
    /// equality and hash see only the name).
    bytes: [u8; COMM_LEN],
    /// Invariant: `len as usize <= COMM_LEN`.
    len: u8,
}

impl Comm {
    /// The empty name (unknown).
    pub const EMPTY: Comm = Comm {
        bytes: [0; COMM_LEN],
        len: 0,
    };

    /// The name in `raw` (kernel bytes: NUL-terminated or not, maybe not UTF-8, maybe too long).
    pub fn from_bytes(raw: &[u8]) -> Self {
        let until_nul = match raw.iter().position(|&b| b == 0) {
            Some(end) => raw.get(..end).unwrap_or(raw),
            None => raw,
        };
        let mut comm = Comm::EMPTY;
        for chunk in until_nul.utf8_chunks() {
            for ch in chunk.valid().chars() {
                if !comm.push(ch) {
                    return comm;
                }
            }
            if !chunk.invalid().is_empty() && !comm.push('?') {
                return comm;
            }
        }
        comm
    }

    /// `name` cut to [`COMM_LEN`] bytes on a character boundary (a NUL ends it, as in the kernel).
    pub fn new(name: &str) -> Self {
        Self::from_bytes(name.as_bytes())
    }

    /// Appends `ch` if it fits; false (and unchanged) if it does not.
    fn push(&mut self, ch: char) -> bool {
        let mut buf = [0u8; 4];
        let encoded = ch.encode_utf8(&mut buf).as_bytes();
        let start = usize::from(self.len);
        let Some(end) = start.checked_add(encoded.len()) else {
            return false;
        };
        match self.bytes.get_mut(start..end) {
            Some(dst) => {
                dst.copy_from_slice(encoded);
                // `end <= COMM_LEN = 16`, so it fits in a u8.
                self.len = end as u8;
                true
            }
            None => false,
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Both always succeed by the field invariants; the fallbacks keep this panic-free.
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or(&[]);
        core::str::from_utf8(bytes).unwrap_or("")
    }

    /// The name's bytes (valid UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_str().len()
    }

    /// Whether the name is empty (unknown).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Comm {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}", self.as_str())
    }
}

impl From<heapless::String<COMM_LEN>> for Comm {
    fn from(s: heapless::String<COMM_LEN>) -> Self {
        Comm::new(&s)
    }
}

impl From<Comm> for heapless::String<COMM_LEN> {
    fn from(c: Comm) -> Self {
        let mut s = heapless::String::new();
        // Cannot fail: a `Comm` is at most COMM_LEN bytes.
        let _ = s.push_str(c.as_str());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_nul() {
        assert_eq!(Comm::from_bytes(b"bash\0\0\0garbage").as_str(), "bash");
        assert!(Comm::from_bytes(b"\0bash").is_empty());
    }

    #[test]
    fn cuts_at_sixteen_bytes_on_a_char_boundary() {
        assert_eq!(
            Comm::new("kworker/0:1H-kblockd").as_str(),
            "kworker/0:1H-kbl"
        );
        // 15 ASCII bytes + a 2-byte char: the char does not fit and is dropped whole.
        let c = Comm::new("abcdefghijklmnoé");
        assert_eq!(c.as_str(), "abcdefghijklmno");
        assert_eq!(c.len(), 15);
    }

    #[test]
    fn invalid_utf8_becomes_question_marks() {
        assert_eq!(Comm::from_bytes(b"a\xffb\xc3").as_str(), "a?b?");
    }

    #[test]
    fn equality_sees_only_the_name() {
        assert_eq!(Comm::new("sh"), Comm::from_bytes(b"sh\0xyz"));
        assert_ne!(Comm::new("sh"), Comm::new("bash"));
    }
}
