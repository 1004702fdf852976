//! The os-release parser: this machine's real file, quoting and escapes, comments, empty values,
//! malformed lines, duplicate keys, bounded decoding, and properties (no panics, round trips).

use proptest::prelude::*;
use watchpost_core::os_release::{
    Entry, OsRelease, OsReleaseError, OsReleaseErrorKind, Quoting, ValueTooLong, keys,
};

/// The decoded value of `key`, as an owned string (test convenience).
fn get(text: &str, key: &str) -> Option<String> {
    OsRelease::new(text).get(key).map(|v| v.to_string())
}

fn errors(text: &str) -> Vec<OsReleaseError> {
    OsRelease::new(text).errors().collect()
}

fn error_kind(line: &str) -> Option<OsReleaseErrorKind> {
    let all = errors(line);
    assert!(all.len() <= 1);
    all.first().map(|e| e.kind)
}

#[test]
fn parses_this_machines_os_release() {
    let Some(text) = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
    else {
        panic!("neither /etc/os-release nor /usr/lib/os-release is readable");
    };
    let parsed = OsRelease::new(&text);
    assert_eq!(errors(&text), [], "real file has malformed lines");
    let entries: Vec<Entry<'_>> = parsed.entries().map(Result::unwrap).collect();
    assert!(!entries.is_empty());
    assert!(parsed.get(keys::NAME).is_some_and(|v| !v.is_empty()));
    assert!(parsed.get(keys::ID).is_some());

    // An independent, naive reading of the simple lines must agree with the parser.
    let mut compared = 0;
    for line in text.lines() {
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let naive = if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            inner
        } else {
            raw
        };
        if naive.contains(['\\', '"', '\'']) {
            continue;
        }
        let last = entries.iter().rev().find(|e| e.key == key).unwrap();
        if last.line == entries.iter().find(|e| e.key == key).unwrap().line {
            assert_eq!(last.value.as_borrowed(), Some(naive), "{key}");
            assert!(last.value.decodes_to(naive), "{key}");
            compared += 1;
        }
    }
    assert!(compared >= 3, "only {compared} lines compared");
}

#[test]
fn a_typical_file() {
    let text = r#"# Managed by the distribution
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
"#;
    assert_eq!(
        get(text, keys::PRETTY_NAME).as_deref(),
        Some("Ubuntu 22.04.4 LTS")
    );
    assert_eq!(get(text, keys::NAME).as_deref(), Some("Ubuntu"));
    assert_eq!(get(text, keys::VERSION_ID).as_deref(), Some("22.04"));
    assert_eq!(
        get(text, keys::VERSION).as_deref(),
        Some("22.04.4 LTS (Jammy Jellyfish)")
    );
    assert_eq!(get(text, keys::VERSION_CODENAME).as_deref(), Some("jammy"));
    assert_eq!(
        get(text, "HOME_URL").as_deref(),
        Some("https://www.ubuntu.com/")
    );
    assert_eq!(get(text, keys::BUILD_ID), None);
    assert_eq!(get(text, "name"), None, "keys are case-sensitive");
    let entries: Vec<_> = OsRelease::new(text).entries().collect();
    assert_eq!(entries.len(), 8);
    assert_eq!(entries[0].as_ref().unwrap().line, 2);
}

#[test]
fn quoting_styles() {
    let text = "A=\"double\"\nB='single'\nC=plain\n";
    let os = OsRelease::new(text);
    let a = os.get("A").unwrap();
    assert_eq!((a.quoting(), a.raw()), (Quoting::Double, "double"));
    let b = os.get("B").unwrap();
    assert_eq!((b.quoting(), b.raw()), (Quoting::Single, "single"));
    let c = os.get("C").unwrap();
    assert_eq!((c.quoting(), c.raw()), (Quoting::Unquoted, "plain"));
}

#[test]
fn double_quoted_escapes() {
    // Escapable: " \ $ `; any other backslash stays.
    assert_eq!(
        get(r#"A="say \"hi\"""#, "A").as_deref(),
        Some(r#"say "hi""#)
    );
    assert_eq!(
        get(r#"A="back\\slash""#, "A").as_deref(),
        Some(r"back\slash")
    );
    assert_eq!(
        get(r#"A="\$HOME \`id\`""#, "A").as_deref(),
        Some("$HOME `id`")
    );
    assert_eq!(get(r#"A="C:\temp\n""#, "A").as_deref(), Some(r"C:\temp\n"));
    assert_eq!(get(r#"A="it\'s""#, "A").as_deref(), Some(r"it\'s"));
    assert_eq!(get(r#"A="\\\"""#, "A").as_deref(), Some(r#"\""#));
    // `$` and backquotes are literal: nothing is expanded.
    assert_eq!(get(r#"A="$HOME""#, "A").as_deref(), Some("$HOME"));
    // Quotes of the other kind are plain characters.
    assert_eq!(get(r#"A="it's""#, "A").as_deref(), Some("it's"));
    assert_eq!(get(r#"A='say "hi"'"#, "A").as_deref(), Some(r#"say "hi""#));
}

#[test]
fn single_quotes_are_literal() {
    assert_eq!(get(r"A='a\b\\c\'", "A").as_deref(), Some(r"a\b\\c\"));
    assert_eq!(get(r"A='$x `y`'", "A").as_deref(), Some("$x `y`"));
    let v = OsRelease::new(r"A='a\b'").get("A").unwrap();
    assert_eq!(v.as_borrowed(), Some(r"a\b"));
}

#[test]
fn unquoted_values() {
    assert_eq!(get(r"A=a\ b", "A").as_deref(), Some("a b"));
    assert_eq!(get(r"A=a\\b", "A").as_deref(), Some(r"a\b"));
    assert_eq!(get(r"A=\$x", "A").as_deref(), Some("$x"));
    assert_eq!(get(r#"A=\"q\""#, "A").as_deref(), Some(r#""q""#));
    // Inner spaces are kept, surrounding whitespace is not.
    assert_eq!(get("A=Foo Linux  \t", "A").as_deref(), Some("Foo Linux"));
    assert_eq!(get("A=  spaced", "A").as_deref(), Some("spaced"));
    assert_eq!(get("A=x#y", "A").as_deref(), Some("x#y"));
    assert_eq!(get("A=1.0-rc1+git", "A").as_deref(), Some("1.0-rc1+git"));
}

#[test]
fn empty_values() {
    for line in ["A=", "A=\"\"", "A=''", "A=   ", "A= \"\" "] {
        let v = OsRelease::new(line).get("A").unwrap();
        assert!(v.is_empty(), "{line:?}");
        assert_eq!(v.decoded_len(), 0);
        assert_eq!(v.to_string(), "");
    }
}

#[test]
fn comments_blank_lines_and_line_ends() {
    let text = "\n# NAME=commented\n   # indented comment\n\t\n\r\nNAME=real\r\nID=\"x\"\r\n";
    assert_eq!(errors(text), []);
    assert_eq!(get(text, "NAME").as_deref(), Some("real"));
    assert_eq!(get(text, "ID").as_deref(), Some("x"));
    let lines: Vec<usize> = OsRelease::new(text)
        .entries()
        .map(|e| e.unwrap().line)
        .collect();
    assert_eq!(lines, [6, 7]);
    // Leading whitespace before a key is allowed.
    assert_eq!(get("   NAME=x", "NAME").as_deref(), Some("x"));
    // No final newline.
    assert_eq!(get("A=1\nB=2", "B").as_deref(), Some("2"));
    assert_eq!(OsRelease::new("").entries().count(), 0);
}

#[test]
fn missing_keys() {
    let text = "NAME=x\n";
    assert!(OsRelease::new(text).get("VERSION").is_none());
    assert!(OsRelease::new(text).get("").is_none());
    assert!(OsRelease::new("").get("NAME").is_none());
}

#[test]
fn malformed_lines_are_typed_errors() {
    use OsReleaseErrorKind::*;
    let cases: &[(&str, OsReleaseErrorKind)] = &[
        ("NAME", MissingEquals),
        ("just some words", MissingEquals),
        ("=value", InvalidKey),
        ("NAME =x", InvalidKey),
        ("export NAME=x", InvalidKey),
        ("1NAME=x", InvalidKey),
        ("NA-ME=x", InvalidKey),
        ("\"NAME\"=x", InvalidKey),
        ("NAME=\"open", UnterminatedQuote),
        ("NAME='open", UnterminatedQuote),
        ("NAME=\"ends in escape\\\"", UnterminatedQuote),
        ("NAME=\"a\"'b'", TrailingCharacters),
        ("NAME=\"a\" b", TrailingCharacters),
        ("NAME=\"a\" # comment", TrailingCharacters),
        ("NAME='a'b", TrailingCharacters),
        ("NAME=a\"b\"", UnexpectedQuote),
        ("NAME=it's", UnexpectedQuote),
        ("NAME=trailing\\", DanglingEscape),
    ];
    for &(line, kind) in cases {
        assert_eq!(error_kind(line), Some(kind), "{line:?}");
        assert_eq!(OsRelease::new(line).get("NAME"), None, "{line:?}");
    }
}

#[test]
fn a_bad_line_does_not_hide_the_good_ones() {
    let text = "NAME=good\nBROKEN\nID=\"unterminated\nVERSION_ID=1\n";
    let found: Vec<_> = OsRelease::new(text).entries().collect();
    assert_eq!(found.len(), 4);
    assert_eq!(
        errors(text),
        [
            OsReleaseError {
                line: 2,
                kind: OsReleaseErrorKind::MissingEquals
            },
            OsReleaseError {
                line: 3,
                kind: OsReleaseErrorKind::UnterminatedQuote
            },
        ]
    );
    assert_eq!(get(text, "NAME").as_deref(), Some("good"));
    assert_eq!(get(text, "VERSION_ID").as_deref(), Some("1"));
    assert_eq!(get(text, "ID"), None);
    let message = errors(text)[0].to_string();
    assert!(message.contains("line 2"), "{message}");
}

#[test]
fn duplicate_keys_last_well_formed_assignment_wins() {
    assert_eq!(get("A=1\nA=2\nA=3\n", "A").as_deref(), Some("3"));
    assert_eq!(get("A=1\nB=x\nA=\"2\"\n", "A").as_deref(), Some("2"));
    // A malformed later assignment does not override a good earlier one.
    assert_eq!(get("A=1\nA=\"broken\n", "A").as_deref(), Some("1"));
    // An empty later assignment does override.
    assert_eq!(get("A=1\nA=\n", "A").as_deref(), Some(""));
}

#[test]
fn unicode_values() {
    let text = "PRETTY_NAME=\"Ubuntü 24.04 — “Noble”\"\nNAME=Дебиан\n";
    assert_eq!(
        get(text, "PRETTY_NAME").as_deref(),
        Some("Ubuntü 24.04 — “Noble”")
    );
    assert_eq!(get(text, "NAME").as_deref(), Some("Дебиан"));
    // A backslash before a multi-byte character.
    assert_eq!(get("A=\"\\é\"", "A").as_deref(), Some("\\é"));
    assert_eq!(get("A=\\é", "A").as_deref(), Some("é"));
}

#[test]
fn decoding_into_caller_buffers() {
    let os = OsRelease::new(r#"A="a\"b""#);
    let v = os.get("A").unwrap();
    assert_eq!(v.decoded_len(), 3);
    let mut exact = [0u8; 3];
    assert_eq!(v.write_into(&mut exact), Ok("a\"b"));
    let mut small = [0u8; 2];
    assert_eq!(
        v.write_into(&mut small),
        Err(ValueTooLong {
            needed: 3,
            capacity: 2
        })
    );
    assert_eq!(
        v.write_into(&mut []),
        Err(ValueTooLong {
            needed: 3,
            capacity: 0
        })
    );
    assert_eq!(v.to_bounded::<3>().unwrap().as_str(), "a\"b");
    assert_eq!(
        v.to_bounded::<2>(),
        Err(ValueTooLong {
            needed: 3,
            capacity: 2
        })
    );
    // A multi-byte character never straddles the end of the buffer.
    let u = OsRelease::new("A=é").get("A").unwrap();
    let mut one = [0u8; 1];
    assert!(u.write_into(&mut one).is_err());
    assert!(u.to_bounded::<1>().is_err());
}

/// Escapes `value` for double quotes the way os-release(5) asks.
fn double_quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Escapes every non-alphanumeric ASCII character with a backslash (valid unquoted shell).
fn unquoted(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Values that fit on one line (no line breaks, no other control characters).
fn value_strategy() -> impl Strategy<Value = String> {
    "[^\\p{Cc}\\u{2028}\\u{2029}]{0,40}"
}

proptest! {
    #[test]
    fn never_panics_on_any_text(text in "\\PC{0,200}|[\"'\\\\=#A-Z_ \\t\\r\\n]{0,80}") {
        let os = OsRelease::new(&text);
        for entry in os.entries().flatten() {
            let mut buf = [0u8; 16];
            let _ = entry.value.write_into(&mut buf);
            let _ = entry.value.to_bounded::<8>();
            let _ = entry.value.to_string();
            prop_assert!(entry.line >= 1);
        }
        let _ = os.get("NAME");
    }

    #[test]
    fn double_quoted_values_round_trip(value in value_strategy()) {
        let line = format!("KEY={}", double_quoted(&value));
        let got = OsRelease::new(&line).get("KEY");
        prop_assert!(got.is_some(), "{line:?} did not parse");
        let got = got.unwrap();
        prop_assert_eq!(got.to_string(), value.clone());
        prop_assert!(got.decodes_to(&value));
        prop_assert_eq!(got.decoded_len(), value.len());
    }

    #[test]
    fn single_quoted_values_round_trip(value in "[^\\p{Cc}'\\u{2028}\\u{2029}]{0,40}") {
        let line = format!("KEY='{value}'");
        let got = OsRelease::new(&line).get("KEY").unwrap();
        prop_assert_eq!(got.as_borrowed(), Some(value.as_str()));
    }

    #[test]
    fn escaped_unquoted_values_round_trip(value in "[!-~]{1,40}") {
        let line = format!("KEY={}", unquoted(&value));
        let got = OsRelease::new(&line).get("KEY");
        prop_assert!(got.is_some(), "{line:?} did not parse");
        prop_assert_eq!(got.unwrap().to_string(), value);
    }

    #[test]
    fn last_assignment_wins(values in proptest::collection::vec("[a-z0-9]{0,8}", 1..6)) {
        let text: String = values.iter().map(|v| format!("K={v}\nOTHER=x\n")).collect();
        prop_assert_eq!(get(&text, "K"), values.last().cloned());
    }
}
