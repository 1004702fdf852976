//! Making untrusted text safe for a terminal. Every string the CLI prints for a human —
//! process names and paths, container labels, DNS names, error messages — was chosen by
//! somebody else: a newline in a process name would forge extra output lines, an escape
//! sequence would reach the operator's terminal, a bidirectional override would make text read
//! differently than it is. So before printing, control characters (C0, DEL, C1), line and
//! paragraph separators and the Unicode bidirectional controls are written as escapes, and so
//! is the backslash itself, so an escaped text can never be mistaken for another one.
//! (`--json` output needs none of this: the JSON encoder escapes control characters.)

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as is.
fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\\'
            | '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `text` with every character a terminal would act on written as an escape: `\n`, `\r`, `\t`,
/// `\\`, `\xNN` for the other ASCII controls, `\u{NNNN}` for the rest. Borrowed when nothing
/// needed escaping (the common case costs no allocation).
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape`] into an owned string.
pub fn escaped(text: &str) -> String {
    escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(escape("/usr/bin/sleep"), Cow::Borrowed(_)));
        assert!(matches!(escape("héllo wörld 日本"), Cow::Borrowed(_)));
    }

    #[test]
    fn controls_and_bidi_are_escaped() {
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(escape("x\x1b[31mred"), "x\\x1b[31mred");
        assert_eq!(escape("\r\t\0\x7f"), "\\r\\t\\x00\\x7f");
        assert_eq!(escape("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("\u{2028}"), "\\u{2028}");
        // The backslash itself, so `a\nb` (escaped) and `a\\nb` (literal) stay different.
        assert_eq!(escape("a\\nb"), "a\\\\nb");
        assert_ne!(escape("a\\nb"), escape("a\nb"));
    }

    #[test]
    fn output_has_no_control_characters() {
        let nasty: String = (0u32..0x2100)
            .filter_map(char::from_u32)
            .chain(['\u{202e}', '\u{2066}', '\u{2069}'])
            .collect();
        let out = escape(&nasty);
        assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
        assert!(!out.contains('\u{202e}') && !out.contains('\u{2066}'));
    }
}
