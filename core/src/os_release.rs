//! `/etc/os-release` parser: the OS name and version the system store reports.
//!
//! Allocation-free: [`OsRelease::entries`] iterates the `KEY=value` assignments, borrowing the
//! input; a [`Value`] borrows its text and decodes quotes and escapes on demand (as an iterator of
//! `char`s, into a caller's buffer, or into a bounded [`heapless::String`]). Bad input is an error
//! or a skipped line, never a panic (it is fuzzed).
//!
//! # Format (os-release(5))
//!
//! - One assignment per line: `KEY=value`. Keys are shell variable names (`[A-Za-z_][A-Za-z0-9_]*`).
//!   Whitespace before the key, and around the value (between `=` and the value, after the value),
//!   is ignored, as systemd's reader does; whitespace *inside* `KEY` or before `=` is not allowed.
//! - Lines whose first non-blank character is `#` are comments; blank lines are ignored. A `#` after
//!   a value is part of an unquoted value and an error after a quoted one (os-release has no trailing
//!   comments). `\r\n` line ends are accepted.
//! - `"double quoted"`: a backslash escapes `"`, `\`, `$` and `` ` `` (the shell's rule, which the
//!   man page prescribes); before any other character the backslash is kept (`"a\b"` is `a\b`).
//!   `$` and `` ` `` are taken literally: os-release forbids expansion, so there is nothing to expand.
//! - `'single quoted'`: everything literal up to the next `'`; no escapes.
//! - unquoted: a backslash escapes the next character (shell rule); quotes are not allowed inside
//!   (concatenating quoted strings, `"a"'b'` or `a"b"`, is not supported by the format);
//!   inner spaces are kept (`NAME=Foo Linux` is `Foo Linux`, as systemd reads it).
//! - A value must end on its line: an opening quote without its closing quote on the same line is an
//!   error (real files never continue a value over lines, and a line-based reader cannot be led to
//!   swallow the rest of a file by one stray quote).
//!
//! Where systemd's reader (`parse_env_file`) is more lenient this parser is stricter, on purpose, to
//! stay within what a shell would accept: whitespace between the key and `=`, concatenated quoted
//! strings and values continued over lines are errors here.
//!
//! # Malformed lines and duplicates
//!
//! [`OsRelease::entries`] yields each malformed line as an [`OsReleaseError`] (line number and
//! kind) and goes on with the next line: one bad line never hides the good ones.
//! [`OsRelease::get`] skips malformed lines and, when a key is assigned more than once, returns the
//! **last** well-formed assignment: the file is a shell fragment, and sourcing it leaves the last
//! value (systemd and the man page's Python example behave the same). A missing key is `None`; the
//! man page's defaults (`NAME=Linux`, `ID=linux`, `PRETTY_NAME=Linux`) are the caller's business.
//! The file may be `/etc/os-release` or, when that is absent, `/usr/lib/os-release`: reading is the
//! caller's side too.

use core::fmt;

/// Well-known keys (os-release(5)).
pub mod keys {
    /// The OS name without version, e.g. `Debian GNU/Linux`.
    pub const NAME: &str = "NAME";
    /// The OS version for humans, e.g. `12 (bookworm)`.
    pub const VERSION: &str = "VERSION";
    /// Lowercase OS identifier, e.g. `debian`.
    pub const ID: &str = "ID";
    /// Space-separated list of related OS identifiers.
    pub const ID_LIKE: &str = "ID_LIKE";
    /// The OS version for programs, e.g. `12` or `22.04`.
    pub const VERSION_ID: &str = "VERSION_ID";
    /// The release code name, e.g. `bookworm`.
    pub const VERSION_CODENAME: &str = "VERSION_CODENAME";
    /// The OS name with version for display, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub const PRETTY_NAME: &str = "PRETTY_NAME";
    /// Identifies the system image build.
    pub const BUILD_ID: &str = "BUILD_ID";
    /// Identifies the variant (edition) of the OS.
    pub const VARIANT_ID: &str = "VARIANT_ID";
}

/// What is wrong with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OsReleaseErrorKind {
    /// A line that is neither blank, a comment, nor contains `=`.
    MissingEquals,
    /// The text before `=` is not a variable name (`[A-Za-z_][A-Za-z0-9_]*`): empty, has spaces, ...
    InvalidKey,
    /// A `"` or `'` opens a value that does not close on the same line.
    UnterminatedQuote,
    /// Something other than whitespace follows the closing quote (concatenation, a comment, ...).
    TrailingCharacters,
    /// A quote character inside an unquoted value.
    UnexpectedQuote,
    /// An unquoted value ends with a lone backslash (line continuation is not supported).
    DanglingEscape,
}

impl OsReleaseErrorKind {
    /// A short lowercase description.
    pub const fn message(self) -> &'static str {
        match self {
            OsReleaseErrorKind::MissingEquals => "expected `KEY=value`, found no `=`",
            OsReleaseErrorKind::InvalidKey => "expected a variable name before `=`",
            OsReleaseErrorKind::UnterminatedQuote => "expected a closing quote on the same line",
            OsReleaseErrorKind::TrailingCharacters => {
                "expected the end of the line after the closing quote"
            }
            OsReleaseErrorKind::UnexpectedQuote => "expected no quote inside an unquoted value",
            OsReleaseErrorKind::DanglingEscape => "expected a character after the backslash",
        }
    }
}

/// A malformed line of an os-release file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OsReleaseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: OsReleaseErrorKind,
}

impl fmt::Display for OsReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "os-release line {}: {}", self.line, self.kind.message())
    }
}

impl core::error::Error for OsReleaseError {}

/// A decoded value does not fit the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ValueTooLong {
    /// Bytes the decoded value needs.
    pub needed: usize,
    /// Bytes the buffer has.
    pub capacity: usize,
}

impl fmt::Display for ValueTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "os-release value needs {} bytes, buffer has {}",
            self.needed, self.capacity
        )
    }
}

impl core::error::Error for ValueTooLong {}

/// How a value was written; decides how it decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Quoting {
    /// `KEY=value`: a backslash escapes the next character.
    Unquoted,
    /// `KEY="value"`: a backslash escapes `"`, `\`, `$`, `` ` ``, and is kept before anything else.
    Double,
    /// `KEY='value'`: literal.
    Single,
}

/// A value as written in the file, borrowed; decode it with [`chars`](Value::chars),
/// [`write_into`](Value::write_into), [`to_bounded`](Value::to_bounded) or `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    /// The text between the quotes (or the whole unquoted value), escapes not yet decoded.
    /// Invariant (checked by the parser): with `Unquoted`, every backslash is followed by a
    /// character; with `Double`, no unescaped `"` occurs.
    raw: &'a str,
    quoting: Quoting,
}

impl<'a> Value<'a> {
    /// The text as written between the quotes, escapes not decoded.
    pub const fn raw(&self) -> &'a str {
        self.raw
    }

    /// How the value was quoted.
    pub const fn quoting(&self) -> Quoting {
        self.quoting
    }

    /// The decoded text without copying, when decoding changes nothing (no backslash, or single
    /// quotes); `None` when escapes must be decoded.
    pub fn as_borrowed(&self) -> Option<&'a str> {
        match self.quoting {
            Quoting::Single => Some(self.raw),
            Quoting::Unquoted | Quoting::Double if !self.raw.contains('\\') => Some(self.raw),
            Quoting::Unquoted | Quoting::Double => None,
        }
    }

    /// The decoded characters.
    pub fn chars(&self) -> ValueChars<'a> {
        ValueChars {
            rest: self.raw.chars(),
            quoting: self.quoting,
            pending: None,
        }
    }

    /// Length of the decoded text in bytes.
    pub fn decoded_len(&self) -> usize {
        self.chars()
            .fold(0usize, |n, c| n.saturating_add(c.len_utf8()))
    }

    /// Whether the decoded value is empty.
    pub fn is_empty(&self) -> bool {
        self.chars().next().is_none()
    }

    /// Whether the decoded value equals `text`.
    pub fn decodes_to(&self, text: &str) -> bool {
        self.chars().eq(text.chars())
    }

    /// Decodes into `buf` and returns the decoded text, borrowed from `buf`.
    ///
    /// # Errors
    /// [`ValueTooLong`] if `buf` is too small; `buf` may then hold a partial value.
    pub fn write_into<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, ValueTooLong> {
        let capacity = buf.len();
        let too_long = || ValueTooLong {
            needed: self.decoded_len(),
            capacity,
        };
        let mut used = 0usize;
        for c in self.chars() {
            let end = used.checked_add(c.len_utf8()).ok_or_else(too_long)?;
            let slot = buf.get_mut(used..end).ok_or_else(too_long)?;
            c.encode_utf8(slot);
            used = end;
        }
        let written = buf.get(..used).ok_or_else(too_long)?;
        // Whole `char`s were encoded back to back, so this is valid UTF-8; the error arm is
        // unreachable and answered without panicking.
        core::str::from_utf8(written).map_err(|_| too_long())
    }

    /// Decodes into a bounded string of `N` bytes.
    ///
    /// # Errors
    /// [`ValueTooLong`] if the decoded value is longer than `N` bytes.
    pub fn to_bounded<const N: usize>(&self) -> Result<heapless::String<N>, ValueTooLong> {
        let mut out = heapless::String::new();
        for c in self.chars() {
            out.push(c).map_err(|_| ValueTooLong {
                needed: self.decoded_len(),
                capacity: N,
            })?;
        }
        Ok(out)
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        self.chars().try_for_each(|c| f.write_char(c))
    }
}

/// Iterator over the decoded characters of a [`Value`].
#[derive(Debug, Clone)]
pub struct ValueChars<'a> {
    rest: core::str::Chars<'a>,
    quoting: Quoting,
    /// A character to yield before reading on: in double quotes, the one after a backslash that
    /// did not escape it.
    pending: Option<char>,
}

impl Iterator for ValueChars<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        if let Some(c) = self.pending.take() {
            return Some(c);
        }
        let c = self.rest.next()?;
        if c != '\\' {
            return Some(c);
        }
        match self.quoting {
            Quoting::Single => Some('\\'),
            // The parser guarantees a character follows; if not, the lone backslash is dropped.
            Quoting::Unquoted => self.rest.next(),
            Quoting::Double => match self.rest.next() {
                Some(e @ ('"' | '\\' | '$' | '`')) => Some(e),
                Some(other) => {
                    self.pending = Some(other);
                    Some('\\')
                }
                None => Some('\\'),
            },
        }
    }
}

/// One well-formed assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// 1-based line number.
    pub line: usize,
    /// The variable name, e.g. `PRETTY_NAME`.
    pub key: &'a str,
    /// The value, not yet decoded.
    pub value: Value<'a>,
}

/// An os-release file's text, parsed lazily.
#[derive(Debug, Clone, Copy)]
pub struct OsRelease<'a> {
    text: &'a str,
}

impl<'a> OsRelease<'a> {
    /// Wraps the file's text; nothing is parsed until asked.
    pub const fn new(text: &'a str) -> Self {
        OsRelease { text }
    }

    /// Every assignment in file order, malformed lines as errors; blank and comment lines are not
    /// reported.
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            lines: self.text.lines(),
            line: 0,
        }
    }

    /// The value of the last well-formed assignment of `key` (exact, case-sensitive); malformed
    /// lines are skipped.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.entries()
            .filter_map(Result::ok)
            .filter(|entry| entry.key == key)
            .last()
            .map(|entry| entry.value)
    }

    /// The malformed lines, in file order.
    pub fn errors(&self) -> impl Iterator<Item = OsReleaseError> + 'a {
        self.entries().filter_map(Result::err)
    }
}

/// Iterator over the assignments of an os-release file; see [`OsRelease::entries`].
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    lines: core::str::Lines<'a>,
    /// Number of the line last read (1-based), 0 before the first.
    line: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, OsReleaseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let text = self.lines.next()?;
            self.line = self.line.saturating_add(1);
            let line = self.line;
            match parse_line(text) {
                Ok(None) => continue,
                Ok(Some((key, value))) => return Some(Ok(Entry { line, key, value })),
                Err(kind) => return Some(Err(OsReleaseError { line, kind })),
            }
        }
    }
}

/// One line: `Ok(None)` for blank and comment lines.
fn parse_line(line: &str) -> Result<Option<(&str, Value<'_>)>, OsReleaseErrorKind> {
    let content = line.trim_start();
    if content.is_empty() || content.starts_with('#') {
        return Ok(None);
    }
    let (key, rest) = content
        .split_once('=')
        .ok_or(OsReleaseErrorKind::MissingEquals)?;
    if !is_variable_name(key) {
        return Err(OsReleaseErrorKind::InvalidKey);
    }
    let value = parse_value(rest.trim())?;
    Ok(Some((key, value)))
}

/// A shell variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_variable_name(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The value part of a line, whitespace already trimmed on both sides.
fn parse_value(text: &str) -> Result<Value<'_>, OsReleaseErrorKind> {
    let mut chars = text.char_indices();
    let quoting = match chars.next() {
        None => {
            return Ok(Value {
                raw: text,
                quoting: Quoting::Unquoted,
            });
        }
        Some((_, '"')) => Quoting::Double,
        Some((_, '\'')) => Quoting::Single,
        Some(_) => {
            // Unquoted: check escapes and quotes, take the text as it is.
            let mut escaped = false;
            for (_, c) in text.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' | '\'' => return Err(OsReleaseErrorKind::UnexpectedQuote),
                    _ => {}
                }
            }
            if escaped {
                return Err(OsReleaseErrorKind::DanglingEscape);
            }
            return Ok(Value {
                raw: text,
                quoting: Quoting::Unquoted,
            });
        }
    };

    let quote = if quoting == Quoting::Double {
        '"'
    } else {
        '\''
    };
    let mut escaped = false;
    let mut close = None;
    for (index, c) in chars {
        if escaped {
            escaped = false;
        } else if c == '\\' && quoting == Quoting::Double {
            escaped = true;
        } else if c == quote {
            close = Some(index);
            break;
        }
    }
    let close = close.ok_or(OsReleaseErrorKind::UnterminatedQuote)?;
    // Both quotes are one byte long, so `1..close` and `close + 1..` lie on char boundaries; `get`
    // keeps this panic-free regardless.
    let raw = text
        .get(1..close)
        .ok_or(OsReleaseErrorKind::UnterminatedQuote)?;
    let after = text
        .get(close.saturating_add(1)..)
        .ok_or(OsReleaseErrorKind::UnterminatedQuote)?;
    if !after.is_empty() {
        // `text` was trimmed, so anything after the closing quote is not just whitespace.
        return Err(OsReleaseErrorKind::TrailingCharacters);
    }
    Ok(Value { raw, quoting })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(line: &str) -> Result<Option<(&str, Value<'_>)>, OsReleaseErrorKind> {
        parse_line(line)
    }

    #[test]
    fn double_quote_escapes_follow_the_shell() {
        let (_, v) = value(r#"A="q\" b\\ d\$ t\` keep\n""#).unwrap().unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(v.write_into(&mut buf).unwrap(), "q\" b\\ d$ t` keep\\n");
        assert_eq!(v.as_borrowed(), None);
    }

    #[test]
    fn unquoted_backslash_escapes_anything() {
        let (_, v) = value(r"A=a\ b\\c\x").unwrap().unwrap();
        let s: heapless::String<16> = v.to_bounded().unwrap();
        assert_eq!(s, r"a b\cx");
    }

    #[test]
    fn double_quoted_backslash_at_the_end_escapes_the_closing_quote() {
        assert_eq!(
            value(r#"A="abc\""#),
            Err(OsReleaseErrorKind::UnterminatedQuote)
        );
    }

    #[test]
    fn key_rules() {
        assert!(is_variable_name("_A1"));
        assert!(is_variable_name("a"));
        assert!(!is_variable_name(""));
        assert!(!is_variable_name("1A"));
        assert!(!is_variable_name("A-B"));
        assert!(!is_variable_name("A "));
        assert!(!is_variable_name("export A"));
    }
}
