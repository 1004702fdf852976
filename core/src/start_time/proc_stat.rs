//! Parser for one `/proc/<pid>/stat` line: the fields the process table needs (pid, comm, state,
//! ppid, start time in clock ticks).
//!
//! The line is `pid (comm) state ppid … starttime …`, space separated, `starttime` being field 22
//! (1-based, as in `proc(5)`). `comm` is printed raw, so it may itself contain spaces, `(` and
//! `)`: it runs from the first `(` to the LAST `)` of the line (no later field can contain a
//! parenthesis). Input is bytes, since `comm` need not be UTF-8.

use core::fmt;

use crate::process::Comm;

/// 1-based number of the `state` field in `proc(5)`.
pub const FIELD_STATE: u8 = 3;
/// 1-based number of the `ppid` field.
pub const FIELD_PPID: u8 = 4;
/// 1-based number of the `starttime` field (clock ticks since boot).
pub const FIELD_STARTTIME: u8 = 22;

/// What the process table takes from a `/proc/<pid>/stat` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProcStat {
    /// Field 1: the process ID.
    pub pid: u32,
    /// Field 2: the name, normalised by [`Comm::from_bytes`] (cut to 16 bytes).
    pub comm: Comm,
    /// Field 3: the state letter (`R`, `S`, `D`, `Z`, …), as the byte the kernel printed.
    pub state: u8,
    /// Field 4: the parent process ID.
    pub ppid: u32,
    /// Field 22: start time in clock ticks since boot; see [`crate::start_time::from_proc_ticks`].
    pub start_ticks: u64,
}

/// Why a line is not a valid `/proc/<pid>/stat` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ProcStatError {
    /// No `(` opening the name.
    MissingCommStart,
    /// No `)` after the `(` closing the name.
    MissingCommEnd,
    /// The text before ` (` is not a decimal `u32` process ID.
    InvalidPid,
    /// The line ends before this (1-based) field.
    MissingField(u8),
    /// This (1-based) field is not what it must be (a decimal number, or one state letter).
    InvalidField(u8),
}

impl fmt::Display for ProcStatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcStatError::MissingCommStart => f.write_str("no '(' before the process name"),
            ProcStatError::MissingCommEnd => f.write_str("no ')' after the process name"),
            ProcStatError::InvalidPid => f.write_str("pid is not a decimal u32"),
            ProcStatError::MissingField(n) => write!(f, "line ends before field {n}"),
            ProcStatError::InvalidField(n) => write!(f, "field {n} is malformed"),
        }
    }
}

impl core::error::Error for ProcStatError {}

/// Decimal digits only (no sign, no spaces, not empty), checked against overflow.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Parses one `/proc/<pid>/stat` line (a trailing newline is fine).
pub fn parse_proc_stat(line: &[u8]) -> Result<ProcStat, ProcStatError> {
    let open = line
        .iter()
        .position(|&b| b == b'(')
        .ok_or(ProcStatError::MissingCommStart)?;
    let close = line
        .iter()
        .rposition(|&b| b == b')')
        .filter(|&close| close > open)
        .ok_or(ProcStatError::MissingCommEnd)?;

    // "pid (": the pid, then exactly one space before the parenthesis.
    let head = line.get(..open).unwrap_or(&[]);
    let pid_text = head.strip_suffix(b" ").ok_or(ProcStatError::InvalidPid)?;
    let pid = parse_decimal(pid_text)
        .and_then(|p| u32::try_from(p).ok())
        .ok_or(ProcStatError::InvalidPid)?;

    let comm = Comm::from_bytes(line.get(open + 1..close).unwrap_or(&[]));

    // After ") " come fields 3, 4, ... separated by single spaces.
    let tail = line.get(close + 1..).unwrap_or(&[]);
    let tail = tail.strip_suffix(b"\n").unwrap_or(tail);
    let rest = tail
        .strip_prefix(b" ")
        .ok_or(ProcStatError::MissingField(FIELD_STATE))?;
    let mut fields = rest.split(|&b| b == b' ');
    // `nth` counts from field 3; keep track of the field number reached.
    let mut next_field: u8 = FIELD_STATE;
    let mut take = |wanted: u8| -> Result<&[u8], ProcStatError> {
        let skip = usize::from(wanted.saturating_sub(next_field));
        let field = fields
            .nth(skip)
            .ok_or(ProcStatError::MissingField(wanted))?;
        next_field = wanted.saturating_add(1);
        Ok(field)
    };

    let state = match take(FIELD_STATE)? {
        &[letter] if letter.is_ascii_alphabetic() => letter,
        _ => return Err(ProcStatError::InvalidField(FIELD_STATE)),
    };
    let ppid = parse_decimal(take(FIELD_PPID)?)
        .and_then(|p| u32::try_from(p).ok())
        .ok_or(ProcStatError::InvalidField(FIELD_PPID))?;
    let start_ticks = parse_decimal(take(FIELD_STARTTIME)?)
        .ok_or(ProcStatError::InvalidField(FIELD_STARTTIME))?;

    Ok(ProcStat {
        pid,
        comm,
        state,
        ppid,
        start_ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASH: &[u8] = b"4242 (bash) S 4000 4242 4242 34816 4300 4194304 1234 5678 0 0 \
        12 3 4 5 20 0 1 0 987654 12345678 900 18446744073709551615 1 1 0 0 0 0 65536 \
        3670020 1266777851 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn plain_line() {
        let s = parse_proc_stat(BASH).unwrap();
        assert_eq!(s.pid, 4242);
        assert_eq!(s.comm.as_str(), "bash");
        assert_eq!(s.state, b'S');
        assert_eq!(s.ppid, 4000);
        assert_eq!(s.start_ticks, 987_654);
    }

    #[test]
    fn parse_decimal_rejects_signs_spaces_and_overflow() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(parse_decimal(b" 1"), None);
        assert_eq!(parse_decimal(b""), None);
    }
}
