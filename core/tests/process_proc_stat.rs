//! `/proc/<pid>/stat` parsing: names with spaces and parentheses, malformed lines as typed
//! errors, never a panic, and every stat file of the running machine.

use proptest::prelude::*;
use watchpost_core::process::Comm;
use watchpost_core::start_time::{ProcStatError, parse_proc_stat};

/// A stat line with the given fields and realistic filler elsewhere.
fn line(pid: &str, comm: &[u8], state: &str, ppid: &str, start: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(pid.as_bytes());
    out.extend_from_slice(b" (");
    out.extend_from_slice(comm);
    out.extend_from_slice(b") ");
    out.extend_from_slice(state.as_bytes());
    out.push(b' ');
    out.extend_from_slice(ppid.as_bytes());
    // Fields 5..=21: 17 numbers.
    out.extend_from_slice(b" 100 100 0 -1 4194560 50 0 0 0 1 2 0 0 20 0 1 0 ");
    out.extend_from_slice(start.as_bytes());
    out.extend_from_slice(b" 1000000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0\n");
    out
}

#[test]
fn names_with_spaces_and_parentheses() {
    for (comm, expected) in [
        (&b"Web Content"[..], "Web Content"),
        (b"(sd-pam)", "(sd-pam)"),
        (b"a) S 1 (b", "a) S 1 (b"),
        (b")", ")"),
        (b"", ""),
        (b"kworker/0:1H-kblockd", "kworker/0:1H-kbl"),
    ] {
        let parsed = parse_proc_stat(&line("321", comm, "S", "7", "4242")).unwrap();
        assert_eq!(parsed.comm.as_str(), expected);
        assert_eq!(parsed.pid, 321);
        assert_eq!(parsed.ppid, 7);
        assert_eq!(parsed.state, b'S');
        assert_eq!(parsed.start_ticks, 4242);
    }
}

#[test]
fn without_trailing_newline() {
    let mut l = line("1", b"init", "S", "0", "1");
    l.pop();
    assert_eq!(parse_proc_stat(&l).unwrap().start_ticks, 1);
}

#[test]
fn malformed_lines_are_typed_errors() {
    use ProcStatError::*;
    let cases: Vec<(Vec<u8>, ProcStatError)> = vec![
        (b"".to_vec(), MissingCommStart),
        (b"123 bash S 1".to_vec(), MissingCommStart),
        (b"123 (bash S 1".to_vec(), MissingCommEnd),
        (b"123 )bash( S 1".to_vec(), MissingCommEnd),
        (line("x1", b"a", "S", "1", "5"), InvalidPid),
        (line("-1", b"a", "S", "1", "5"), InvalidPid),
        (line("4294967296", b"a", "S", "1", "5"), InvalidPid),
        (b"1(a) S 1".to_vec(), InvalidPid),
        (b"1 (a)".to_vec(), MissingField(3)),
        (b"1 (a)S 1".to_vec(), MissingField(3)),
        (b"1 (a) S".to_vec(), MissingField(4)),
        (b"1 (a) S 1 2 3".to_vec(), MissingField(22)),
        (line("1", b"a", "SS", "1", "5"), InvalidField(3)),
        (line("1", b"a", "7", "1", "5"), InvalidField(3)),
        (line("1", b"a", "S", "-1", "5"), InvalidField(4)),
        (line("1", b"a", "S", "1", "abc"), InvalidField(22)),
        (
            line("1", b"a", "S", "1", "18446744073709551616"),
            InvalidField(22),
        ),
        (line("1", b"a", "S", "1", ""), InvalidField(22)),
    ];
    for (input, expected) in cases {
        assert_eq!(
            parse_proc_stat(&input),
            Err(expected),
            "{:?}",
            String::from_utf8_lossy(&input)
        );
    }
    // Errors explain themselves.
    assert_eq!(MissingField(22).to_string(), "line ends before field 22");
}

proptest! {
    /// Arbitrary bytes: an answer or an error, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_proc_stat(&bytes);
    }

    /// Whatever bytes the name holds (the kernel prints it raw), the other fields survive and
    /// the name is what `Comm::from_bytes` makes of it.
    #[test]
    fn round_trip_with_any_name(
        pid in any::<u32>(),
        ppid in any::<u32>(),
        start in any::<u64>(),
        comm in proptest::collection::vec(1u8..=255, 0..24),
        state in proptest::sample::select(vec!["R", "S", "D", "Z", "T", "t", "X", "I"]),
    ) {
        let l = line(&pid.to_string(), &comm, state, &ppid.to_string(), &start.to_string());
        let parsed = parse_proc_stat(&l).unwrap();
        prop_assert_eq!(parsed.pid, pid);
        prop_assert_eq!(parsed.ppid, ppid);
        prop_assert_eq!(parsed.start_ticks, start);
        prop_assert_eq!(parsed.state, state.as_bytes()[0]);
        prop_assert_eq!(parsed.comm, Comm::from_bytes(&comm));
    }
}

/// Every process of this machine parses, with the pid of its directory (processes may vanish
/// while we read: skipped). Linux only.
#[test]
fn every_stat_file_of_this_machine() {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        eprintln!("skipped: no /proc");
        return;
    };
    let mut parsed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read(entry.path().join("stat")) else {
            continue;
        };
        let s = parse_proc_stat(&stat)
            .unwrap_or_else(|e| panic!("{pid}: {e}: {}", String::from_utf8_lossy(&stat)));
        assert_eq!(s.pid, pid);
        parsed += 1;
    }
    assert!(parsed > 0);
}
