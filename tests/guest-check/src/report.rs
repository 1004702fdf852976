//! The console protocol between the guest and `cargo xtask kernels` (its parser lives in
//! `xtask/src/kernels/console.rs`; the two must agree).
//!
//! One line per item, tab-separated, starting with [`MARKER`]:
//! - `WPCHECK\tfact\t<name>\t<value>` — something observed (kernel, BTF, eBPF state, timings);
//! - `WPCHECK\tcheck\t<name>\t<pass|fail|expected>\t<detail>` — one check's result; `expected`
//!   is a feature the kernel lacks, with the daemon's own words saying so;
//! - `WPCHECK\tdone\t<passed>\t<failed>` — the guest finished (its absence is a failure).
//!
//! Values are escaped (`\\`, `\n`, `\t`) so each item stays on one line whatever the daemon said.

use std::io::Write;

/// Starts every protocol line.
pub const MARKER: &str = "WPCHECK";

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Held.
    Pass,
    /// Did not hold.
    Fail,
    /// Not applicable on this kernel, and the daemon said why (never silent).
    Expected,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Expected => "expected",
        }
    }
}

/// Escapes `\`, newlines and tabs.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Writes one whole line in one `write` (the console is shared with the kernel's messages).
fn emit(fields: &[&str]) {
    let mut line = String::from(MARKER);
    for field in fields {
        line.push('\t');
        line.push_str(&escape(field));
    }
    line.push('\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// Reports an observation.
pub fn fact(name: &str, value: &str) {
    emit(&["fact", name, value]);
}

/// Collects check results and reports each as it comes.
#[derive(Debug, Default)]
pub struct Results {
    passed: u32,
    failed: u32,
}

impl Results {
    /// Reports one check.
    pub fn record(&mut self, name: &str, status: Status, detail: &str) {
        match status {
            Status::Fail => self.failed += 1,
            Status::Pass | Status::Expected => self.passed += 1,
        }
        emit(&["check", name, status.word(), detail]);
    }

    /// Reports a check from its outcome: `Ok((status, detail))` or `Err(why it failed)`.
    pub fn outcome(&mut self, name: &str, outcome: Result<(Status, String), String>) {
        match outcome {
            Ok((status, detail)) => self.record(name, status, &detail),
            Err(why) => self.record(name, Status::Fail, &why),
        }
    }

    /// Whether any check failed.
    pub fn any_failed(&self) -> bool {
        self.failed > 0
    }

    /// The closing line.
    pub fn done(&self) {
        emit(&["done", &self.passed.to_string(), &self.failed.to_string()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_keep_one_line() {
        assert_eq!(escape("a\tb\nc\\d\r"), "a\\tb\\nc\\\\d");
        assert_eq!(escape("plain"), "plain");
    }
}
