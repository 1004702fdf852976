//! Domain names as they sit in a DNS message: labels, compression pointers, and the rules that
//! keep a hostile message from making the reader loop or run past the data.
//!
//! A name is read in place ([`Name`] is an offset into the message, nothing is copied) and decoded
//! on demand into a caller's fixed [`NameBuf`], case preserved. The reading rules
//! (`walk_name`), checked once when the message is parsed:
//! - a label is at most 63 bytes (a length byte of 64..=191 is a label too long, or one of the
//!   reserved label types of RFC 6891 §5 that nobody uses: both rejected);
//! - a name is at most 255 bytes in wire form, counting length bytes and the root;
//! - a compression pointer must point strictly before the start of the run of labels it ends, so
//!   every jump lands lower than the last one and the walk always ends; a pointer at or past
//!   itself is a forward pointer, a pointer back into the run it ends is a loop, a pointer into
//!   the 12-byte header is out of range; at most [`MAX_POINTER_JUMPS`] jumps per name.
//!
//! Legitimate encoders only point at names written earlier, so they satisfy every rule.

use core::fmt;

use super::wire::{HEADER_LEN, WireError};

/// Longest label, in bytes (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest name in wire form: length bytes, labels and the terminating root (RFC 1035 §2.3.4).
pub const MAX_NAME_WIRE_LEN: usize = 255;
/// Longest name as dotted text without the trailing dot: 255 wire bytes minus the first length
/// byte and the root.
pub const MAX_NAME_TEXT_LEN: usize = 253;
/// Most compression pointers followed while reading one name. Real encoders chain one to three;
/// the strictly-decreasing rule already ends every walk, this caps the work on a crafted message.
pub const MAX_POINTER_JUMPS: usize = 32;

/// Where a name ends and how big it is, as found by [`walk_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameExtent {
    /// Offset just past the name's in-place bytes (its labels up to the root byte or the first
    /// pointer): where the enclosing record continues.
    pub(crate) end: usize,
    /// Length in wire form once pointers are expanded (at most [`MAX_NAME_WIRE_LEN`]).
    pub(crate) wire_len: usize,
}

/// Reads the name at `start` in `msg`, handing each label to `on_label` in order, and checks
/// every rule of the module documentation.
pub(crate) fn walk_name(
    msg: &[u8],
    start: usize,
    mut on_label: impl FnMut(&[u8]),
) -> Result<NameExtent, WireError> {
    let mut pos = start;
    // Start of the run of labels being read: a pointer must land strictly before it.
    let mut run_start = start;
    let mut end = None;
    let mut jumps = 0usize;
    let mut wire_len = 0usize;
    loop {
        let len_byte = *msg.get(pos).ok_or(WireError::Truncated)?;
        match len_byte & 0xC0 {
            0x00 => {
                let len = usize::from(len_byte);
                wire_len = wire_len.saturating_add(len + 1);
                if wire_len > MAX_NAME_WIRE_LEN {
                    return Err(WireError::NameTooLong);
                }
                let label_start = pos.checked_add(1).ok_or(WireError::Truncated)?;
                if len == 0 {
                    return Ok(NameExtent {
                        end: end.unwrap_or(label_start),
                        wire_len,
                    });
                }
                let label_end = label_start.checked_add(len).ok_or(WireError::Truncated)?;
                let label = msg
                    .get(label_start..label_end)
                    .ok_or(WireError::Truncated)?;
                on_label(label);
                pos = label_end;
            }
            0xC0 => {
                let low = *msg
                    .get(pos.checked_add(1).ok_or(WireError::Truncated)?)
                    .ok_or(WireError::Truncated)?;
                let target = (usize::from(len_byte & 0x3F) << 8) | usize::from(low);
                if end.is_none() {
                    end = Some(pos.checked_add(2).ok_or(WireError::Truncated)?);
                }
                if target >= pos {
                    return Err(WireError::ForwardPointer);
                }
                if target >= run_start {
                    return Err(WireError::PointerLoop);
                }
                if target < HEADER_LEN {
                    return Err(WireError::PointerIntoHeader);
                }
                jumps += 1;
                if jumps > MAX_POINTER_JUMPS {
                    return Err(WireError::TooManyPointers);
                }
                pos = target;
                run_start = target;
            }
            // 0b01 and 0b10: a length over 63, or a reserved label type.
            _ => return Err(WireError::LabelTooLong),
        }
    }
}

/// A name inside a parsed message. Only the parser makes these, after checking the name, so
/// reading it cannot fail.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name<'a> {
    /// The whole message (pointers are offsets into it).
    msg: &'a [u8],
    /// Offset of the first length byte. Invariant: `walk_name(msg, start)` succeeds.
    start: usize,
    /// Wire length once expanded, from the check.
    wire_len: usize,
}

impl<'a> Name<'a> {
    /// A name already checked by [`walk_name`].
    pub(crate) fn checked(msg: &'a [u8], start: usize, extent: NameExtent) -> Self {
        Name {
            msg,
            start,
            wire_len: extent.wire_len,
        }
    }

    /// Length in wire form, pointers expanded (1 for the root).
    pub fn wire_len(&self) -> usize {
        self.wire_len
    }

    /// Whether this is the root name (no labels).
    pub fn is_root(&self) -> bool {
        self.wire_len <= 1
    }

    /// Offset of the name in the message.
    pub fn offset(&self) -> usize {
        self.start
    }

    /// The labels, first (leftmost) to last, as raw bytes, case preserved.
    pub fn labels(&self) -> Labels<'a> {
        Labels {
            msg: self.msg,
            pos: self.start,
            jumps: 0,
            done: false,
        }
    }

    /// Writes the name as dotted text (no trailing dot; the root is empty) into `out`, replacing
    /// its contents. Label bytes are copied as they are, case preserved.
    pub fn decode_into(&self, out: &mut NameBuf) {
        out.clear();
        for label in self.labels() {
            // Cannot fail for a checked name (at most 253 text bytes); a failure would only
            // shorten the text.
            if out.push_label(label).is_err() {
                break;
            }
        }
    }

    /// Whether both names have the same labels, ignoring ASCII case.
    pub fn eq_ignore_ascii_case_name(&self, other: &Name<'_>) -> bool {
        let mut mine = self.labels();
        let mut theirs = other.labels();
        loop {
            match (mine.next(), theirs.next()) {
                (None, None) => return true,
                (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => {}
                _ => return false,
            }
        }
    }

    /// Whether the name equals dotted `text` (an optional trailing dot allowed), ignoring ASCII
    /// case, without decoding it.
    pub fn eq_ignore_ascii_case(&self, text: &[u8]) -> bool {
        let text = text.strip_suffix(b".").unwrap_or(text);
        let mut rest = text;
        let mut first = true;
        for label in self.labels() {
            if !first {
                match rest.split_first() {
                    Some((b'.', tail)) => rest = tail,
                    _ => return false,
                }
            }
            first = false;
            match rest.get(..label.len()) {
                Some(head) if head.eq_ignore_ascii_case(label) => {
                    rest = rest.get(label.len()..).unwrap_or_default();
                }
                _ => return false,
            }
        }
        rest.is_empty()
    }
}

impl fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = NameBuf::new();
        self.decode_into(&mut text);
        match text.as_str() {
            Some(s) => write!(f, "Name({s:?})"),
            None => write!(f, "Name({:?})", text.as_bytes()),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Name<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        let mut text = NameBuf::new();
        self.decode_into(&mut text);
        defmt::write!(f, "Name({=[u8]})", text.as_bytes());
    }
}

/// Iterator over the labels of a [`Name`]; see [`Name::labels`].
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    msg: &'a [u8],
    pos: usize,
    jumps: usize,
    done: bool,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // The name was checked when parsed; every guard here only keeps a broken invariant from
        // turning into a panic or a loop.
        while !self.done {
            let Some(&len_byte) = self.msg.get(self.pos) else {
                break;
            };
            if len_byte & 0xC0 == 0xC0 {
                let low = self.msg.get(self.pos + 1).copied()?;
                let target = (usize::from(len_byte & 0x3F) << 8) | usize::from(low);
                self.jumps += 1;
                if target >= self.pos || self.jumps > MAX_POINTER_JUMPS {
                    break;
                }
                self.pos = target;
                continue;
            }
            let len = usize::from(len_byte);
            if len == 0 || len > MAX_LABEL_LEN {
                break;
            }
            let label = self.msg.get(self.pos + 1..self.pos + 1 + len)?;
            self.pos += 1 + len;
            return Some(label);
        }
        self.done = true;
        None
    }
}

impl core::iter::FusedIterator for Labels<'_> {}

/// Why a label does not fit a [`NameBuf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NameBufFull;

impl fmt::Display for NameBufFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("name longer than 253 bytes as text")
    }
}

impl core::error::Error for NameBufFull {}

/// A caller-owned buffer that receives a decoded name as dotted text: labels joined by `.`, no
/// trailing dot, the root as the empty string, label bytes as they were on the wire.
///
/// DNS labels may hold any byte, including `.`; such a name has no faithful dotted form, which
/// [`has_dot_in_label`](Self::has_dot_in_label) reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NameBuf {
    bytes: heapless::Vec<u8, MAX_NAME_TEXT_LEN>,
    /// Set when some label pushed since the last clear contained a `.` byte.
    dot_in_label: bool,
}

impl NameBuf {
    /// An empty buffer (the root name).
    pub const fn new() -> Self {
        NameBuf {
            bytes: heapless::Vec::new(),
            dot_in_label: false,
        }
    }

    /// Empties the buffer.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.dot_in_label = false;
    }

    /// Appends one label (with a separating dot unless it is the first). On failure the buffer is
    /// unchanged.
    pub fn push_label(&mut self, label: &[u8]) -> Result<(), NameBufFull> {
        let sep = usize::from(!self.bytes.is_empty());
        if self.bytes.len() + sep + label.len() > MAX_NAME_TEXT_LEN {
            return Err(NameBufFull);
        }
        if sep == 1 {
            self.bytes.push(b'.').map_err(|_| NameBufFull)?;
        }
        self.bytes
            .extend_from_slice(label)
            .map_err(|_| NameBufFull)?;
        if label.contains(&b'.') {
            self.dot_in_label = true;
        }
        Ok(())
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The text, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(&self.bytes).ok()
    }

    /// Length of the text in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether this is the root name (empty text).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether some label held a `.` byte, so the dotted text does not show the label boundaries.
    pub fn has_dot_in_label(&self) -> bool {
        self.dot_in_label
    }

    /// Lowercases ASCII letters in place.
    pub fn make_ascii_lowercase(&mut self) {
        self.bytes.make_ascii_lowercase();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg_with(name_at_12: &[u8]) -> heapless::Vec<u8, 512> {
        let mut m = heapless::Vec::new();
        m.extend_from_slice(&[0u8; HEADER_LEN]).unwrap();
        m.extend_from_slice(name_at_12).unwrap();
        m
    }

    fn text(msg: &[u8], start: usize) -> Result<heapless::Vec<u8, 300>, WireError> {
        let mut out = heapless::Vec::new();
        walk_name(msg, start, |l| {
            if !out.is_empty() {
                out.push(b'.').unwrap();
            }
            out.extend_from_slice(l).unwrap();
        })?;
        Ok(out)
    }

    #[test]
    fn plain_and_compressed_names() {
        // 12: "Www.Example.com", 29: "mail" + pointer to 16 ("Example.com").
        let m = msg_with(b"\x03Www\x07Example\x03com\x00\x04mail\xC0\x10");
        assert_eq!(text(&m, 12).unwrap().as_slice(), b"Www.Example.com");
        let ext = walk_name(&m, 12, |_| {}).unwrap();
        assert_eq!(
            ext,
            NameExtent {
                end: 29,
                wire_len: 17
            }
        );
        assert_eq!(text(&m, 29).unwrap().as_slice(), b"mail.Example.com");
        let ext = walk_name(&m, 29, |_| {}).unwrap();
        assert_eq!(ext.end, 36);
        let name = Name::checked(&m, 29, ext);
        let mut buf = NameBuf::new();
        name.decode_into(&mut buf);
        assert_eq!(buf.as_str(), Some("mail.Example.com"));
        assert!(name.eq_ignore_ascii_case(b"MAIL.example.COM."));
        assert!(!name.eq_ignore_ascii_case(b"mail.example.co"));
        assert!(!name.eq_ignore_ascii_case(b"mail.example.comm"));
        assert!(!name.eq_ignore_ascii_case(b"mailexample.com"));
    }

    #[test]
    fn pointer_rules() {
        // Pointer to itself / forward.
        let m = msg_with(b"\xC0\x0C");
        assert_eq!(walk_name(&m, 12, |_| {}), Err(WireError::ForwardPointer));
        let m = msg_with(b"\xC0\x20");
        assert_eq!(walk_name(&m, 12, |_| {}), Err(WireError::ForwardPointer));
        // Label then pointer back to the label: a loop.
        let m = msg_with(b"\x01a\xC0\x0C");
        assert_eq!(walk_name(&m, 12, |_| {}), Err(WireError::PointerLoop));
        // Into the header.
        let m = msg_with(b"\x01a\xC0\x02");
        assert_eq!(walk_name(&m, 12, |_| {}), Err(WireError::PointerIntoHeader));
        // Pointer cut short.
        let m = msg_with(b"\x01a\xC0");
        assert_eq!(walk_name(&m, 12, |_| {}), Err(WireError::Truncated));
    }

    #[test]
    fn jumps_are_capped() {
        // A chain of pointers, each to the previous one, ending at the root at offset 12.
        let mut body: heapless::Vec<u8, 512> = heapless::Vec::new();
        body.push(0).unwrap();
        for i in 0..=MAX_POINTER_JUMPS {
            let target = 12 + if i == 0 { 0 } else { 1 + 2 * (i - 1) };
            body.extend_from_slice(&[0xC0 | (target >> 8) as u8, target as u8])
                .unwrap();
        }
        let m = msg_with(&body);
        let last = 12 + 1 + 2 * MAX_POINTER_JUMPS;
        assert_eq!(walk_name(&m, last, |_| {}), Err(WireError::TooManyPointers));
        let ok = 12 + 1 + 2 * (MAX_POINTER_JUMPS - 1);
        assert_eq!(walk_name(&m, ok, |_| {}).unwrap().wire_len, 1);
    }

    #[test]
    fn length_limits() {
        let mut label = [b'a'; 65];
        label[0] = 64;
        let m = msg_with(&label);
        assert_eq!(walk_name(&m, 12, |_| {}), Err(WireError::LabelTooLong));
        label[0] = 0x80;
        let m = msg_with(&label);
        assert_eq!(walk_name(&m, 12, |_| {}), Err(WireError::LabelTooLong));
        // Four 63-byte labels: 4 * 64 + 1 = 257 > 255.
        let mut long: heapless::Vec<u8, 512> = heapless::Vec::new();
        for _ in 0..4 {
            long.push(63).unwrap();
            long.extend_from_slice(&[b'x'; 63]).unwrap();
        }
        long.push(0).unwrap();
        let m = msg_with(&long);
        assert_eq!(walk_name(&m, 12, |_| {}), Err(WireError::NameTooLong));
        // 3 * 64 + 62 + 1 = 255 bytes: the longest name, 253 bytes of text.
        let mut max: heapless::Vec<u8, 512> = heapless::Vec::new();
        for _ in 0..3 {
            max.push(63).unwrap();
            max.extend_from_slice(&[b'x'; 63]).unwrap();
        }
        max.push(61).unwrap();
        max.extend_from_slice(&[b'y'; 61]).unwrap();
        max.push(0).unwrap();
        let m = msg_with(&max);
        let ext = walk_name(&m, 12, |_| {}).unwrap();
        assert_eq!(ext.wire_len, 255);
        let mut buf = NameBuf::new();
        Name::checked(&m, 12, ext).decode_into(&mut buf);
        assert_eq!(buf.len(), MAX_NAME_TEXT_LEN);
    }

    #[test]
    fn dots_inside_labels_are_reported() {
        let m = msg_with(b"\x03a.b\x01c\x00");
        let ext = walk_name(&m, 12, |_| {}).unwrap();
        let mut buf = NameBuf::new();
        Name::checked(&m, 12, ext).decode_into(&mut buf);
        assert_eq!(buf.as_bytes(), b"a.b.c");
        assert!(buf.has_dot_in_label());
        buf.clear();
        assert!(!buf.has_dot_in_label());
        assert!(buf.is_empty());
    }
}
