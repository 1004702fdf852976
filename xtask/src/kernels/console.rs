//! Reading a guest's console: the check program's result lines (protocol in
//! `tests/guest-check/src/report.rs`) among the kernel's own messages.

use super::initramfs::MARKER;

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// What was checked.
    pub name: String,
    /// `pass`, `fail` or `expected`.
    pub status: String,
    /// What the guest (often quoting the daemon) said.
    pub detail: String,
}

/// Everything a guest reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestReport {
    /// `fact` lines, in order.
    pub facts: Vec<(String, String)>,
    /// `check` lines, in order.
    pub checks: Vec<CheckResult>,
    /// The `done` line's counts: (passed, failed).
    pub done: Option<(u32, u32)>,
}

impl GuestReport {
    /// The value of fact `name`.
    pub fn fact(&self, name: &str) -> Option<&str> {
        self.facts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks
            .iter()
            .filter(|c| c.status != "pass" && c.status != "expected")
    }

    /// Takes one console line; true if it was a protocol line.
    pub fn take_line(&mut self, line: &str) -> bool {
        // The marker may follow kernel output on the same console line.
        let Some(at) = line.find(MARKER) else {
            return false;
        };
        let fields: Vec<String> = line[at..]
            .trim_end_matches(['\r', '\n'])
            .split('\t')
            .map(unescape)
            .collect();
        match fields.get(1).map(String::as_str) {
            Some("fact") if fields.len() >= 4 => {
                self.facts.push((fields[2].clone(), fields[3].clone()));
            }
            Some("check") if fields.len() >= 5 => self.checks.push(CheckResult {
                name: fields[2].clone(),
                status: fields[3].clone(),
                detail: fields[4].clone(),
            }),
            Some("done") if fields.len() >= 4 => {
                self.done = Some((
                    fields[2].parse().unwrap_or(0),
                    fields[3].parse().unwrap_or(u32::MAX),
                ));
            }
            _ => return false,
        }
        true
    }
}

/// Undoes the guest's escaping (`\\`, `\n`, `\t`).
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_protocol_lines_among_kernel_messages() {
        let mut r = GuestReport::default();
        assert!(!r.take_line("[    1.234] Run /init as init process"));
        assert!(r.take_line("WPCHECK\tfact\tbtf\tpresent (5 bytes)\r"));
        assert!(r.take_line("[ 9.1] crc7: loaded WPCHECK\tcheck\tburst\tfail\tlost 3\\nline two"));
        assert!(r.take_line("WPCHECK\tcheck\tdns\tpass\tok"));
        assert!(r.take_line("WPCHECK\tdone\t1\t1"));
        assert!(!r.take_line("WPCHECK\tcheck\ttruncated"));
        assert_eq!(r.fact("btf"), Some("present (5 bytes)"));
        assert_eq!(r.checks[0].detail, "lost 3\nline two");
        assert_eq!(r.failures().count(), 1);
        assert_eq!(r.done, Some((1, 1)));
    }

    #[test]
    fn unescape_inverts_the_guest_escape() {
        assert_eq!(unescape("a\\tb\\nc\\\\d"), "a\tb\nc\\d");
        assert_eq!(unescape("trailing\\"), "trailing\\");
    }
}
