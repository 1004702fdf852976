//! Parser for the text of `/proc/kallsyms`, the kernel's list of its own symbols.
//!
//! The symbol store is built from this text at start and on every module load, so the parser must
//! be fast, must never allocate (it runs with no features) and must turn any input — it is fuzzed —
//! into either symbols or a typed, line-numbered error, never a panic.
//!
//! # Line format
//! The kernel prints one symbol per line (`kernel/kallsyms.c`, `s_show`):
//! ```text
//! ffffffff81000000 T _text
//! ffffffffc0a01000 t nf_hook_slow    [nf_tables]
//! ```
//! an address in hexadecimal (16 digits on a 64-bit kernel, 8 on a 32-bit one), one type character
//! as `nm` prints it (upper case = exported; `?` occurs for odd module sections), the name, and for
//! a loadable module — or a kernel pseudo-module such as `[bpf]` or `[__builtin__ftrace]` — the
//! module name in brackets after a tab (spaces above). Symbols without a module belong to the kernel image, which
//! the store calls [`KERNEL_MODULE`] (`"system"`). Fields are separated by runs of spaces or tabs;
//! a trailing `\r` is tolerated; an empty line is skipped (and counted).
//!
//! # Per-CPU entries are skipped
//! A per-CPU variable has one copy per CPU, so its kallsyms "address" is not the address of
//! anything the store could resolve. Two forms occur, and both are reported as
//! [`KallsymsLine::PerCpu`] (so callers can count them) instead of [`KallsymsLine::Symbol`]:
//! - **zero-based per-CPU offsets in the kernel image**: on x86_64 SMP kernels the per-CPU section
//!   is linked at address 0, so its symbols print as small offsets: type `D`/`d` in early kernels
//!   (`0000000000004000 D gdt_page`; with KASLR shifted by the relocation offset, still small),
//!   then type `A` once `scripts/kallsyms.c --absolute-percpu` (2014) rewrote them as absolute
//!   (`0000000000000000 A fixed_percpu_data`), until x86_64 dropped zero-based per-CPU data
//!   (Linux 6.15). Rule: **a 16-digit address (64-bit kernel) in the lower half
//!   of the address space (`< 0x8000_0000_0000_0000`)**. Every 64-bit architecture watchpost runs
//!   on (x86_64, arm64) places the kernel image, modules, BPF programs and trampolines in the upper
//!   half, so a privileged reader sees nothing else there. Tracee uses the narrower test "not
//!   `0xffff…`" for the same purpose. Addresses printed with fewer digits (32-bit kernels, where
//!   per-CPU data is not zero-based) are never skipped by this rule.
//! - **module per-CPU variables**: the module loader types them `a`/`A` (`elf_type` in
//!   `kernel/module/kallsyms.c` returns `a` for the per-CPU section and for absolute symbols; both
//!   are values, not code or data at one kernel address). Rule: **type `a`/`A` with a module**.
//!
//! On kernels from 6.15 on (like the x86_64 6.18 this was developed on) and on arm64 the kernel
//! image's per-CPU symbols sit at ordinary kernel addresses in `.data..percpu` and are only listed
//! with `CONFIG_KALLSYMS_ALL`; they are kept as ordinary data symbols.
//!
//! # Hidden addresses
//! Without root / `CAP_SYSLOG` (or with `kernel.kptr_restrict=2`) the kernel prints every address
//! as zero. That text parses, but a table built from it would answer nothing, so [`scan`] and
//! [`KallsymsLines::finish`] report [`KallsymsError::AddressesHidden`] when the text has symbol
//! lines and none of them has a non-zero address. (A privileged reader can see a genuine zero —
//! `fixed_percpu_data` — but never only zeros.)

use core::fmt;

/// Module name the store uses for symbols of the kernel image (lines without `[module]`).
pub const KERNEL_MODULE: &str = "system";

/// Longest symbol name the kernel prints: `KSYM_NAME_LEN` (512 since Linux 6.1) minus the NUL.
pub const MAX_SYMBOL_NAME_LEN: usize = 511;

/// Longest module name accepted. The kernel's `MODULE_NAME_LEN` is 64 minus a pointer size, so no
/// kernel prints more than 59 bytes; pseudo-modules (`__builtin__ftrace`, `bpf`) are shorter.
pub const MAX_MODULE_NAME_LEN: usize = 63;

/// Number of hexadecimal digits a 64-bit kernel prints for every address (`%px`).
pub const ADDRESS_DIGITS_64: usize = 16;

/// First address of the upper half of a 64-bit address space; kernel symbols live at or above it.
pub const KERNEL_HALF_START: u64 = 0x8000_0000_0000_0000;

/// The symbol type character, as `nm` and the kernel print it.
///
/// Invariant: the byte is an ASCII letter or `?` (so it fits in 7 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SymbolKind(u8);

impl SymbolKind {
    /// The kind for `byte`, if it is a type character the kernel can print (a letter or `?`).
    pub const fn new(byte: u8) -> Option<Self> {
        if byte.is_ascii_alphabetic() || byte == b'?' {
            Some(SymbolKind(byte))
        } else {
            None
        }
    }

    /// The type character as a byte.
    pub const fn as_byte(self) -> u8 {
        self.0
    }

    /// The type character.
    pub const fn as_char(self) -> char {
        self.0 as char
    }

    /// Upper case: the symbol is global (exported), as `nm` prints it.
    pub const fn is_global(self) -> bool {
        self.0.is_ascii_uppercase()
    }

    /// `t`/`T`: code.
    pub const fn is_text(self) -> bool {
        matches!(self.0, b't' | b'T')
    }

    /// `a`/`A`: an absolute value rather than an address in a section.
    pub const fn is_absolute(self) -> bool {
        matches!(self.0, b'a' | b'A')
    }
}

/// One symbol line, borrowed from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct KallsymsSymbol<'a> {
    /// The address as printed (zero when the reader lacks privilege).
    pub address: u64,
    /// The type character.
    pub kind: SymbolKind,
    /// The symbol name: 1 to [`MAX_SYMBOL_NAME_LEN`] printable ASCII bytes.
    pub name: &'a str,
    /// The module, without brackets; `None` for the kernel image.
    pub module: Option<&'a str>,
}

impl<'a> KallsymsSymbol<'a> {
    /// The module name the store reports: the module, or [`KERNEL_MODULE`] for the kernel image.
    pub fn module_name(&self) -> &'a str {
        self.module.unwrap_or(KERNEL_MODULE)
    }
}

/// What one line of kallsyms text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KallsymsLine<'a> {
    /// A symbol the store keeps.
    Symbol(KallsymsSymbol<'a>),
    /// A per-CPU entry, skipped by the store (see the module docs for the rule).
    PerCpu(KallsymsSymbol<'a>),
    /// An empty (or whitespace-only) line, skipped.
    Blank,
}

/// Why kallsyms text was rejected. Line numbers start at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KallsymsError {
    /// The address field is not 1 to 16 hexadecimal digits.
    BadAddress {
        /// Line number.
        line: usize,
    },
    /// The line ends after the address: no type character.
    MissingType {
        /// Line number.
        line: usize,
    },
    /// The type field is not exactly one letter or `?`.
    BadType {
        /// Line number.
        line: usize,
    },
    /// The line ends after the type character: no name.
    MissingName {
        /// Line number.
        line: usize,
    },
    /// The name has a byte that is not printable ASCII.
    BadName {
        /// Line number.
        line: usize,
    },
    /// The name is longer than [`MAX_SYMBOL_NAME_LEN`].
    NameTooLong {
        /// Line number.
        line: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// The fourth field is not `[module]` with a printable, bracket-free, non-empty name.
    BadModule {
        /// Line number.
        line: usize,
    },
    /// The module name is longer than [`MAX_MODULE_NAME_LEN`].
    ModuleNameTooLong {
        /// Line number.
        line: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// Something follows the module field.
    TrailingField {
        /// Line number.
        line: usize,
    },
    /// Every address in the text is zero: the kernel hid them from this reader. Read
    /// `/proc/kallsyms` as root or with `CAP_SYSLOG` (and `kernel.kptr_restrict` below 2).
    AddressesHidden,
}

impl KallsymsError {
    /// The 1-based line the error is about; `None` for [`KallsymsError::AddressesHidden`].
    pub const fn line(&self) -> Option<usize> {
        match *self {
            KallsymsError::BadAddress { line }
            | KallsymsError::MissingType { line }
            | KallsymsError::BadType { line }
            | KallsymsError::MissingName { line }
            | KallsymsError::BadName { line }
            | KallsymsError::NameTooLong { line, .. }
            | KallsymsError::BadModule { line }
            | KallsymsError::ModuleNameTooLong { line, .. }
            | KallsymsError::TrailingField { line } => Some(line),
            KallsymsError::AddressesHidden => None,
        }
    }
}

impl fmt::Display for KallsymsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KallsymsError::BadAddress { line } => {
                write!(f, "kallsyms line {line}: address is not 1 to 16 hex digits")
            }
            KallsymsError::MissingType { line } => {
                write!(f, "kallsyms line {line}: missing type character")
            }
            KallsymsError::BadType { line } => {
                write!(f, "kallsyms line {line}: type is not one letter or '?'")
            }
            KallsymsError::MissingName { line } => {
                write!(f, "kallsyms line {line}: missing symbol name")
            }
            KallsymsError::BadName { line } => {
                write!(
                    f,
                    "kallsyms line {line}: symbol name is not printable ASCII"
                )
            }
            KallsymsError::NameTooLong { line, len } => write!(
                f,
                "kallsyms line {line}: symbol name of {len} bytes (at most {MAX_SYMBOL_NAME_LEN})"
            ),
            KallsymsError::BadModule { line } => {
                write!(f, "kallsyms line {line}: fourth field is not [module]")
            }
            KallsymsError::ModuleNameTooLong { line, len } => write!(
                f,
                "kallsyms line {line}: module name of {len} bytes (at most {MAX_MODULE_NAME_LEN})"
            ),
            KallsymsError::TrailingField { line } => {
                write!(f, "kallsyms line {line}: unexpected field after the module")
            }
            KallsymsError::AddressesHidden => f.write_str(
                "kallsyms addresses hidden: need root / CAP_SYSLOG (and kptr_restrict < 2)",
            ),
        }
    }
}

impl core::error::Error for KallsymsError {}

/// How the lines of a kallsyms text were classified.
///
/// Invariant after a successful [`scan`]: `lines == symbols + per_cpu + blank`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct KallsymsCounts {
    /// Lines read (a final line without `\n` counts; the empty remainder after a final `\n` does
    /// not, so this equals the number of `\n` in a text that ends with one).
    pub lines: usize,
    /// Symbol lines kept.
    pub symbols: usize,
    /// Per-CPU lines skipped.
    pub per_cpu: usize,
    /// Empty lines skipped.
    pub blank: usize,
}

/// Parses one line (without its `\n`). `line` is its 1-based number, used in errors.
pub fn parse_line(text: &[u8], line: usize) -> Result<KallsymsLine<'_>, KallsymsError> {
    let mut fields = text
        .split(|&b| matches!(b, b' ' | b'\t' | b'\r'))
        .filter(|field| !field.is_empty());

    let Some(address_field) = fields.next() else {
        return Ok(KallsymsLine::Blank);
    };
    let address = parse_hex(address_field).ok_or(KallsymsError::BadAddress { line })?;

    let kind = match fields.next() {
        None => return Err(KallsymsError::MissingType { line }),
        Some(&[byte]) => SymbolKind::new(byte).ok_or(KallsymsError::BadType { line })?,
        Some(_) => return Err(KallsymsError::BadType { line }),
    };

    let name_field = fields.next().ok_or(KallsymsError::MissingName { line })?;
    if name_field.len() > MAX_SYMBOL_NAME_LEN {
        return Err(KallsymsError::NameTooLong {
            line,
            len: name_field.len(),
        });
    }
    let name = printable_ascii(name_field).ok_or(KallsymsError::BadName { line })?;

    let module = match fields.next() {
        None => None,
        Some(field) => Some(parse_module(field, line)?),
    };
    if fields.next().is_some() {
        return Err(KallsymsError::TrailingField { line });
    }

    let symbol = KallsymsSymbol {
        address,
        kind,
        name,
        module,
    };
    let zero_based_per_cpu =
        address_field.len() == ADDRESS_DIGITS_64 && address < KERNEL_HALF_START;
    let module_per_cpu = module.is_some() && kind.is_absolute();
    if zero_based_per_cpu || module_per_cpu {
        Ok(KallsymsLine::PerCpu(symbol))
    } else {
        Ok(KallsymsLine::Symbol(symbol))
    }
}

/// Iterates over the lines of `text`, parsing each. See [`KallsymsLines`].
pub fn lines(text: &[u8]) -> KallsymsLines<'_> {
    KallsymsLines {
        rest: Some(text),
        line: 0,
        counts: KallsymsCounts::default(),
        any_nonzero_address: false,
        first_error: None,
    }
}

/// Checks a whole kallsyms text and counts its lines; the first malformed line, or hidden
/// addresses, is an error.
pub fn scan(text: &[u8]) -> Result<KallsymsCounts, KallsymsError> {
    lines(text).finish()
}

/// Iterator over parsed lines: yields `(line_number, line)` or the line's error, and keeps going
/// after an error (each line stands alone). [`KallsymsLines::finish`] consumes the rest and applies
/// the whole-text check (hidden addresses).
#[derive(Debug, Clone)]
pub struct KallsymsLines<'a> {
    /// Text not yet read; `None` once the last line was returned.
    rest: Option<&'a [u8]>,
    /// Number of the last line returned.
    line: usize,
    counts: KallsymsCounts,
    any_nonzero_address: bool,
    first_error: Option<KallsymsError>,
}

impl<'a> KallsymsLines<'a> {
    /// Counts of the lines returned so far.
    pub fn counts(&self) -> KallsymsCounts {
        self.counts
    }

    /// Reads the remaining lines and returns the counts for the whole text, or the first error:
    /// a malformed line, or [`KallsymsError::AddressesHidden`] if there were symbol lines and all
    /// of their addresses were zero.
    pub fn finish(mut self) -> Result<KallsymsCounts, KallsymsError> {
        for _ in &mut self {}
        if let Some(error) = self.first_error {
            return Err(error);
        }
        let symbol_lines = self.counts.symbols.saturating_add(self.counts.per_cpu);
        if symbol_lines > 0 && !self.any_nonzero_address {
            return Err(KallsymsError::AddressesHidden);
        }
        Ok(self.counts)
    }
}

impl<'a> Iterator for KallsymsLines<'a> {
    type Item = Result<(usize, KallsymsLine<'a>), KallsymsError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest.take().filter(|rest| !rest.is_empty())?;
        let current = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => {
                // The empty remainder after a final '\n' is not a line: `rest` stays `None`.
                let remaining = rest.get(end.saturating_add(1)..).unwrap_or_default();
                if !remaining.is_empty() {
                    self.rest = Some(remaining);
                }
                rest.get(..end).unwrap_or_default()
            }
            None => rest,
        };
        self.line = self.line.saturating_add(1);
        self.counts.lines = self.counts.lines.saturating_add(1);
        let parsed = parse_line(current, self.line);
        match &parsed {
            Ok(KallsymsLine::Symbol(symbol)) => {
                self.counts.symbols = self.counts.symbols.saturating_add(1);
                self.any_nonzero_address |= symbol.address != 0;
            }
            Ok(KallsymsLine::PerCpu(symbol)) => {
                self.counts.per_cpu = self.counts.per_cpu.saturating_add(1);
                self.any_nonzero_address |= symbol.address != 0;
            }
            Ok(KallsymsLine::Blank) => {
                self.counts.blank = self.counts.blank.saturating_add(1);
            }
            Err(error) => {
                if self.first_error.is_none() {
                    self.first_error = Some(*error);
                }
            }
        }
        Some(parsed.map(|line| (self.line, line)))
    }
}

/// 1 to 16 hexadecimal digits (either case) as a `u64`; `None` otherwise.
fn parse_hex(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 16 {
        return None;
    }
    let mut value: u64 = 0;
    for &byte in field {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            b'A'..=b'F' => byte - b'A' + 10,
            _ => return None,
        };
        // At most 16 digits, so the shift never loses a set bit.
        value = (value << 4) | u64::from(digit);
    }
    Some(value)
}

/// The field as `&str` if every byte is printable ASCII (`!`..=`~`).
fn printable_ascii(field: &[u8]) -> Option<&str> {
    if field.iter().all(|b| b.is_ascii_graphic()) {
        core::str::from_utf8(field).ok()
    } else {
        None
    }
}

/// `[name]` → `name`.
fn parse_module(field: &[u8], line: usize) -> Result<&str, KallsymsError> {
    let inner = field
        .strip_prefix(b"[")
        .and_then(|f| f.strip_suffix(b"]"))
        .ok_or(KallsymsError::BadModule { line })?;
    if inner.is_empty() || inner.iter().any(|&b| b == b'[' || b == b']') {
        return Err(KallsymsError::BadModule { line });
    }
    if inner.len() > MAX_MODULE_NAME_LEN {
        return Err(KallsymsError::ModuleNameTooLong {
            line,
            len: inner.len(),
        });
    }
    printable_ascii(inner).ok_or(KallsymsError::BadModule { line })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbol(line: KallsymsLine<'_>) -> KallsymsSymbol<'_> {
        match line {
            KallsymsLine::Symbol(s) => s,
            other => panic!("expected a symbol, got {other:?}"),
        }
    }

    #[test]
    fn kernel_and_module_lines() {
        let s = symbol(parse_line(b"ffffffff81000000 T _text", 1).unwrap());
        assert_eq!(s.address, 0xffff_ffff_8100_0000);
        assert_eq!(s.kind.as_char(), 'T');
        assert!(s.kind.is_global() && s.kind.is_text());
        assert_eq!(s.name, "_text");
        assert_eq!(s.module, None);
        assert_eq!(s.module_name(), KERNEL_MODULE);

        let s = symbol(
            parse_line(
                b"ffffffffc0203000 t ftrace_trampoline\t[__builtin__ftrace]",
                7,
            )
            .unwrap(),
        );
        assert_eq!(s.module, Some("__builtin__ftrace"));
        assert!(!s.kind.is_global());
    }

    #[test]
    fn hex_limits() {
        assert_eq!(parse_hex(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_hex(b"0"), Some(0));
        assert_eq!(parse_hex(b"ABCdef"), Some(0xabcdef));
        assert_eq!(parse_hex(b"10000000000000000"), None);
        assert_eq!(parse_hex(b""), None);
        assert_eq!(parse_hex(b"0x10"), None);
        assert_eq!(parse_hex(b"g"), None);
    }

    #[test]
    fn line_iteration_counts_like_wc() {
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"\n").count(), 1);
        assert_eq!(lines(b"\n\n").count(), 2);
        let text = b"ffffffff81000000 T a\nffffffff81000010 T b\n";
        assert_eq!(lines(text).count(), 2);
        let text = b"ffffffff81000000 T a\nffffffff81000010 T b";
        let numbers: heapless::Vec<usize, 4> = lines(text).map(|r| r.unwrap().0).collect();
        assert_eq!(numbers.as_slice(), &[1, 2]);
    }

    #[test]
    fn per_cpu_rules() {
        let zero_based = parse_line(b"0000000000001000 A cpu_debug_store", 1).unwrap();
        assert!(matches!(zero_based, KallsymsLine::PerCpu(_)));
        let old_style = parse_line(b"0000000000004000 D gdt_page", 1).unwrap();
        assert!(matches!(old_style, KallsymsLine::PerCpu(_)));
        let module_var = parse_line(b"ffff9f2e3fc1a000 a my_counter\t[mymod]", 1).unwrap();
        assert!(matches!(module_var, KallsymsLine::PerCpu(_)));
        // 32-bit kernels print 8 digits: never per-CPU by address.
        let arm32 = parse_line(b"c0008000 T stext", 1).unwrap();
        assert!(matches!(arm32, KallsymsLine::Symbol(_)));
        // An absolute symbol of the kernel image in the upper half is kept.
        let abs = parse_line(b"ffffffff81000000 A _text", 1).unwrap();
        assert!(matches!(abs, KallsymsLine::Symbol(_)));
    }
}
