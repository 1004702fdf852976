//! Reads the Linux kernel's `syscall*.tbl` format: the facts the syscall tables are generated from.
//!
//! Each non-comment line is `<number> <abi> <name> [<entry point> [<compat entry point>
//! [noreturn]]]`, fields separated by any mix of tabs and spaces (the kernel's own files mix both,
//! e.g. `462 \tcommon  mseal`). A row belongs to an architecture's table when its ABI is one the
//! architecture's build selects; rows of other ABIs (x32, 32-bit, other architectures) are skipped.

use std::fmt;

/// Highest syscall number accepted. Real tables stop below 1024 (x32 uses 512..=547, which we
/// skip); the bound keeps the generated number-indexed array small and catches garbage.
pub const MAX_NUMBER: u16 = 4095;

/// One syscall of a selected ABI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syscall {
    /// The syscall number (`__NR_<name>`).
    pub number: u16,
    /// The name column, exactly as the table spells it.
    pub name: String,
}

/// Why a table could not be read. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TblError {
    /// Fewer than the three required columns (number, ABI, name).
    MissingColumns { line: usize },
    /// The number column is not a decimal number up to [`MAX_NUMBER`].
    BadNumber { line: usize, text: String },
    /// A name with characters outside `[a-z0-9_]`, which the generated code does not expect.
    BadName { line: usize, name: String },
    /// Two selected rows share a number.
    DuplicateNumber { line: usize, number: u16 },
    /// Two selected rows share a name.
    DuplicateName { line: usize, name: String },
    /// No row matched the selected ABIs.
    Empty,
}

impl fmt::Display for TblError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TblError::MissingColumns { line } => {
                write!(f, "line {line}: expected `<number> <abi> <name> ...`")
            }
            TblError::BadNumber { line, text } => write!(
                f,
                "line {line}: expected a syscall number up to {MAX_NUMBER}, found `{text}`"
            ),
            TblError::BadName { line, name } => write!(
                f,
                "line {line}: expected a name of [a-z0-9_], found `{name}`"
            ),
            TblError::DuplicateNumber { line, number } => {
                write!(f, "line {line}: syscall number {number} is assigned twice")
            }
            TblError::DuplicateName { line, name } => {
                write!(f, "line {line}: syscall name `{name}` is assigned twice")
            }
            TblError::Empty => write!(f, "no row matches the selected ABIs"),
        }
    }
}

impl std::error::Error for TblError {}

/// The rows of `text` whose ABI is in `abis`, sorted by number.
pub fn parse(text: &str, abis: &[&str]) -> Result<Vec<Syscall>, TblError> {
    let mut syscalls: Vec<(Syscall, usize)> = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw_line.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let mut columns = content.split_whitespace();
        let (Some(number), Some(abi), Some(name)) =
            (columns.next(), columns.next(), columns.next())
        else {
            return Err(TblError::MissingColumns { line });
        };
        // The number is checked on every row, selected or not: a malformed table is an error.
        let number = number
            .parse::<u16>()
            .ok()
            .filter(|n| *n <= MAX_NUMBER)
            .ok_or_else(|| TblError::BadNumber {
                line,
                text: number.to_owned(),
            })?;
        if !abis.contains(&abi) {
            continue;
        }
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(TblError::BadName {
                line,
                name: name.to_owned(),
            });
        }
        syscalls.push((
            Syscall {
                number,
                name: name.to_owned(),
            },
            line,
        ));
    }
    if syscalls.is_empty() {
        return Err(TblError::Empty);
    }

    let mut by_name: Vec<&(Syscall, usize)> = syscalls.iter().collect();
    by_name.sort_by(|a, b| a.0.name.cmp(&b.0.name).then(a.1.cmp(&b.1)));
    if let Some(pair) = by_name.windows(2).find(|w| w[0].0.name == w[1].0.name) {
        return Err(TblError::DuplicateName {
            line: pair[1].1,
            name: pair[1].0.name.clone(),
        });
    }

    syscalls.sort_by_key(|(s, line)| (s.number, *line));
    if let Some(pair) = syscalls.windows(2).find(|w| w[0].0.number == w[1].0.number) {
        return Err(TblError::DuplicateNumber {
            line: pair[1].1,
            number: pair[1].0.number,
        });
    }
    Ok(syscalls.into_iter().map(|(s, _)| s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(syscalls: &[Syscall]) -> Vec<(u16, &str)> {
        syscalls
            .iter()
            .map(|s| (s.number, s.name.as_str()))
            .collect()
    }

    #[test]
    fn selects_only_the_given_abis_and_sorts_by_number() {
        let text = "\
# comment
1\tcommon\twrite\tsys_write

0\tcommon\tread\tsys_read
15\t64\trt_sigreturn\tsys_rt_sigreturn
512\tx32\trt_sigaction\tcompat_sys_rt_sigaction
79\tstat64\tfstatat64\tsys_fstatat64
";
        let parsed = parse(text, &["common", "64"]).unwrap();
        assert_eq!(
            names(&parsed),
            [(0, "read"), (1, "write"), (15, "rt_sigreturn")]
        );
    }

    #[test]
    fn accepts_the_kernels_mixed_whitespace_and_extra_columns() {
        let text = "462 \tcommon  mseal\t\t\tsys_mseal\n\
                    60\tcommon\texit\t\t\tsys_exit\t\t\t-\t\t\tnoreturn\n\
                    38\trenameat renameat\t\t\tsys_renameat\n";
        let parsed = parse(text, &["common", "renameat"]).unwrap();
        assert_eq!(
            names(&parsed),
            [(38, "renameat"), (60, "exit"), (462, "mseal")]
        );
    }

    #[test]
    fn rejects_duplicates_within_the_selection_only() {
        let same_number = "5\tcommon\ta\n5\t64\tb\n";
        assert_eq!(
            parse(same_number, &["common", "64"]),
            Err(TblError::DuplicateNumber { line: 2, number: 5 })
        );
        assert!(parse(same_number, &["common"]).is_ok());

        let same_name = "5\tcommon\ta\n6\t64\ta\n";
        assert_eq!(
            parse(same_name, &["common", "64"]),
            Err(TblError::DuplicateName {
                line: 2,
                name: "a".into()
            })
        );
    }

    #[test]
    fn rejects_malformed_rows() {
        assert_eq!(
            parse("1\tcommon\n", &["common"]),
            Err(TblError::MissingColumns { line: 1 })
        );
        assert!(matches!(
            parse("x\tcommon\tread\n", &["common"]),
            Err(TblError::BadNumber { line: 1, .. })
        ));
        assert!(matches!(
            parse("-1\tcommon\tread\n", &["common"]),
            Err(TblError::BadNumber { .. })
        ));
        assert!(matches!(
            parse("4096\tcommon\tread\n", &["common"]),
            Err(TblError::BadNumber { .. })
        ));
        assert!(matches!(
            parse("1\tcommon\tRead\"\n", &["common"]),
            Err(TblError::BadName { .. })
        ));
        assert_eq!(
            parse("# only comments\n", &["common"]),
            Err(TblError::Empty)
        );
    }
}
