//! Kernel symbols: the kallsyms parser and the `KernelSymbolTable` store, on hand-written text in
//! every form the kernel prints, on this machine's real `/proc/kallsyms`, and on generated input.

mod support;

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

use proptest::prelude::*;
use watchpost_core::kallsyms::{self, KallsymsError, KallsymsLine};
use watchpost_core::symbols::{
    KernelSymbolTable, SymbolMatch, SymbolTableError, SymbolTableLayout, SymbolView,
};
use watchpost_core::{ErrorKind, HealthStatus};

/// Real forms: zero-based per-CPU (`A`), kernel aliases, `__pfx_` padding symbols, duplicate
/// static names, module symbols after a tab, a module per-CPU variable (`a`), pseudo-modules, and
/// symbols of two modules at one address.
const SAMPLE: &str = "\
0000000000000000 A fixed_percpu_data
0000000000000000 A __per_cpu_start
0000000000001000 A cpu_debug_store
000000000002c000 A __per_cpu_end
ffffffff81000000 T srso_alias_untrain_ret
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81000000 T startup_64
ffffffff81000070 T secondary_startup_64
ffffffff81001000 T __pfx_do_one_initcall
ffffffff81001010 T do_one_initcall
ffffffff81001200 T __x64_sys_write
ffffffff81001200 T sys_write
ffffffff81002000 t dup_static
ffffffff81003000 t dup_static
ffffffff81004000 T _etext
ffffffffc0a01000 t nf_hook_slow\t[nf_tables]
ffffffffc0a01100 t nft_do_chain\t[nf_tables]
ffff9f2e3fc1a000 a nft_counters\t[nf_tables]
ffffffffc0b00000 t dup_static\t[rootkit]
ffffffffc0b00100 t hook_entry\t[rootkit]
ffffffffc0b00100 t bpf_prog_6deef7357e7b4530_hook\t[bpf]
ffffffffc0b00200 t ftrace_trampoline\t[__builtin__ftrace]
";

fn sample() -> KernelSymbolTable {
    KernelSymbolTable::from_kallsyms(SAMPLE.as_bytes()).expect("sample parses")
}

fn names_of<'a>(views: impl Iterator<Item = SymbolView<'a>>) -> Vec<(String, String)> {
    views
        .map(|v| (v.name.to_string(), v.module.to_string()))
        .collect()
}

fn pair(name: &str, module: &str) -> (String, String) {
    (name.to_string(), module.to_string())
}

#[test]
fn parses_the_forms_the_kernel_prints() {
    let counts = kallsyms::scan(SAMPLE.as_bytes()).unwrap();
    assert_eq!(counts.lines, SAMPLE.lines().count());
    assert_eq!(counts.per_cpu, 5); // four zero-based `A` + the module's `a`
    assert_eq!(counts.blank, 0);
    assert_eq!(counts.symbols, counts.lines - counts.per_cpu);

    let line = kallsyms::parse_line(b"ffffffffc0a01000 t nf_hook_slow\t[nf_tables]", 9).unwrap();
    let KallsymsLine::Symbol(symbol) = line else {
        panic!("module line is a symbol: {line:?}");
    };
    assert_eq!(symbol.address, 0xffff_ffff_c0a0_1000);
    assert_eq!(symbol.kind.as_char(), 't');
    assert_eq!(symbol.name, "nf_hook_slow");
    assert_eq!(symbol.module_name(), "nf_tables");

    // Tolerated variations: extra spaces, CRLF, a blank line, no final newline.
    let text = "ffffffff81000000  T  _text\r\n\nffffffff81000010 t x\t[m]";
    let counts = kallsyms::scan(text.as_bytes()).unwrap();
    assert_eq!((counts.lines, counts.symbols, counts.blank), (3, 2, 1));
    let table = KernelSymbolTable::from_kallsyms(text.as_bytes()).unwrap();
    assert_eq!(table.len(), 2);
    assert_eq!(table.stats().blank_lines, 1);
}

#[test]
fn every_alias_at_an_address_is_returned_in_text_order() {
    let mut table = sample();
    let aliases = table
        .resolve_symbol_by_address(0xffff_ffff_8100_0000, 1)
        .unwrap();
    assert_eq!(aliases.len(), 4);
    assert_eq!(aliases.address(), 0xffff_ffff_8100_0000);
    assert_eq!(
        names_of(aliases),
        vec![
            pair("srso_alias_untrain_ret", "system"),
            pair("_stext", "system"),
            pair("_text", "system"),
            pair("startup_64", "system"),
        ]
    );

    // Across modules: a rootkit hook and a BPF program at one address.
    let aliases = table
        .resolve_symbol_by_address(0xffff_ffff_c0b0_0100, 2)
        .unwrap();
    assert_eq!(
        names_of(aliases),
        vec![
            pair("hook_entry", "rootkit"),
            pair("bpf_prog_6deef7357e7b4530_hook", "bpf"),
        ]
    );
    let stats = table.stats();
    assert_eq!(stats.alias_addresses, 3);
    assert_eq!(stats.max_aliases, 4);
}

#[test]
fn kernel_symbols_are_system_and_module_symbols_name_their_module() {
    let mut table = sample();
    let view = table
        .resolve_symbol_by_address(0xffff_ffff_c0a0_1000, 1)
        .unwrap()
        .first()
        .unwrap();
    assert_eq!(view.module, "nf_tables");
    assert!(!view.is_kernel());
    let info = view.to_info();
    assert_eq!(
        (info.name.as_str(), info.address, info.module.as_str()),
        ("nf_hook_slow", 0xffff_ffff_c0a0_1000, "nf_tables")
    );

    let view = table
        .resolve_symbol_by_address(0xffff_ffff_8100_1010, 1)
        .unwrap()
        .first()
        .unwrap();
    assert_eq!((view.name, view.module), ("do_one_initcall", "system"));
    assert!(view.is_kernel());
    assert_eq!(view.kind.as_char(), 'T');

    let view = table
        .resolve_symbol_by_address(0xffff_ffff_c0b0_0200, 1)
        .unwrap()
        .first()
        .unwrap();
    assert_eq!(view.module, "__builtin__ftrace");
    // system, nf_tables, rootkit, bpf, __builtin__ftrace
    assert_eq!(table.stats().modules, 5);
}

#[test]
fn per_cpu_entries_are_skipped() {
    let mut table = sample();
    let stats = table.stats();
    assert_eq!(stats.per_cpu_skipped, 5);
    assert_eq!(stats.symbols + stats.per_cpu_skipped, stats.lines);
    for per_cpu in [0, 0x1000, 0x2c000, 0xffff_9f2e_3fc1_a000] {
        let error = table.resolve_symbol_by_address(per_cpu, 1).unwrap_err();
        assert!(error.is(ErrorKind::NotFound), "{per_cpu:#x}");
    }
    for name in ["fixed_percpu_data", "cpu_debug_store", "nft_counters"] {
        let error = table.get_symbol_address(name, 1).unwrap_err();
        assert!(error.is(ErrorKind::NotFound), "{name}");
    }

    // Pre-4.x kernels print zero-based per-CPU symbols as D/d: skipped too.
    let old = "0000000000000000 D irq_stack_union\n0000000000004000 d exception_stacks\n\
               ffffffff81000000 T _text\n";
    let table = KernelSymbolTable::from_kallsyms(old.as_bytes()).unwrap();
    assert_eq!((table.len(), table.stats().per_cpu_skipped), (1, 2));
}

#[test]
fn empty_table_is_unhealthy_and_answers_not_found() {
    for mut table in [
        KernelSymbolTable::empty(),
        KernelSymbolTable::from_kallsyms(b"").unwrap(),
        // Only per-CPU entries (with real offsets): nothing to keep.
        KernelSymbolTable::from_kallsyms(b"0000000000001000 A cpu_debug_store\n").unwrap(),
    ] {
        assert_eq!(table.len(), 0);
        assert!(table.is_empty());
        let health = table.health(5);
        assert_eq!(health.status, HealthStatus::Unhealthy);
        assert_eq!(health.last_check, 5);
        assert!(!health.message.is_empty());
        let not_found = |e: watchpost_core::StoreError| e.is(ErrorKind::NotFound);
        assert!(not_found(
            table
                .resolve_symbol_by_address(0xffff_ffff_8100_0000, 6)
                .unwrap_err()
        ));
        assert!(not_found(table.get_symbol_address("_text", 6).unwrap_err()));
        assert!(not_found(
            table.nearest(0xffff_ffff_8100_0000, 6).unwrap_err()
        ));
        let mut out = [SymbolMatch::default(); 2];
        let batch = table.resolve_symbols_batch(&[1, 2], 6, &mut out);
        assert_eq!((batch.found, batch.missed), (0, 2));
        assert_eq!(table.metrics().cache_misses, 5);
        assert_eq!(table.bytes_per_symbol(), 0.0);
    }
    let table = sample();
    assert_eq!(table.health(7).status, HealthStatus::Healthy);
}

#[test]
fn all_zero_addresses_are_a_privilege_error_not_an_empty_table() {
    // What an unprivileged reader gets from the same kernel.
    let hidden: String = SAMPLE
        .lines()
        .map(|line| format!("0000000000000000{}\n", &line[16..]))
        .collect();
    assert_eq!(
        kallsyms::scan(hidden.as_bytes()),
        Err(KallsymsError::AddressesHidden)
    );
    let error = KernelSymbolTable::from_kallsyms(hidden.as_bytes()).unwrap_err();
    assert!(error.is_privilege_error());
    assert_eq!(
        error,
        SymbolTableError::Kallsyms(KallsymsError::AddressesHidden)
    );
    let message = error.to_string();
    assert!(
        message.contains("hidden") && message.contains("CAP_SYSLOG"),
        "{message}"
    );

    // A privileged reader can see a genuine zero (fixed_percpu_data): that alone is no error.
    assert!(kallsyms::scan(SAMPLE.as_bytes()).is_ok());

    // A failed reload keeps the table in place.
    let mut table = sample();
    let before = table.len();
    assert!(
        table
            .reload(hidden.as_bytes(), 9)
            .unwrap_err()
            .is_privilege_error()
    );
    assert_eq!(table.len(), before);
    assert_eq!(table.stats().failed_reloads, 1);
}

#[test]
fn malformed_lines_are_typed_errors_with_their_line_number() {
    let long_name = "n".repeat(512);
    let longest_name = "n".repeat(511);
    let long_module = "m".repeat(64);
    let cases: Vec<(String, KallsymsError)> = vec![
        ("zzzzzzzz T a".into(), KallsymsError::BadAddress { line: 3 }),
        (
            "0x81000000 T a".into(),
            KallsymsError::BadAddress { line: 3 },
        ),
        (
            "1ffffffff81000000 T a".into(),
            KallsymsError::BadAddress { line: 3 },
        ),
        (
            "ffffffff81000000".into(),
            KallsymsError::MissingType { line: 3 },
        ),
        (
            "ffffffff81000000 TT a".into(),
            KallsymsError::BadType { line: 3 },
        ),
        (
            "ffffffff81000000 1 a".into(),
            KallsymsError::BadType { line: 3 },
        ),
        (
            "ffffffff81000000 T".into(),
            KallsymsError::MissingName { line: 3 },
        ),
        (
            "ffffffff81000000 T caf\u{e9}".into(),
            KallsymsError::BadName { line: 3 },
        ),
        (
            format!("ffffffff81000000 T {long_name}"),
            KallsymsError::NameTooLong { line: 3, len: 512 },
        ),
        (
            "ffffffff81000000 T a\tmod".into(),
            KallsymsError::BadModule { line: 3 },
        ),
        (
            "ffffffff81000000 T a\t[]".into(),
            KallsymsError::BadModule { line: 3 },
        ),
        (
            "ffffffff81000000 T a\t[m[x]".into(),
            KallsymsError::BadModule { line: 3 },
        ),
        (
            format!("ffffffff81000000 T a\t[{long_module}]"),
            KallsymsError::ModuleNameTooLong { line: 3, len: 64 },
        ),
        (
            "ffffffff81000000 T a\t[m] extra".into(),
            KallsymsError::TrailingField { line: 3 },
        ),
    ];
    for (bad, expected) in cases {
        let text = format!("ffffffff81000000 T _text\n\n{bad}\nffffffff81000010 T after\n");
        assert_eq!(kallsyms::scan(text.as_bytes()), Err(expected), "{bad:?}");
        let error = KernelSymbolTable::from_kallsyms(text.as_bytes()).unwrap_err();
        assert_eq!(error, SymbolTableError::Kallsyms(expected), "{bad:?}");
        assert_eq!(expected.line(), Some(3));
        assert!(error.to_string().contains("line 3"), "{error}");
    }
    // The limits themselves are accepted.
    let text = format!("ffffffff81000000 T {longest_name}\t[{}]\n", "m".repeat(63));
    let mut table = KernelSymbolTable::from_kallsyms(text.as_bytes()).unwrap();
    assert_eq!(
        table.get_symbol_address(&longest_name, 1),
        Ok(0xffff_ffff_8100_0000)
    );
}

#[test]
fn nearest_finds_the_containing_symbol_and_its_offset() {
    let mut table = sample();
    let found = table.nearest(0xffff_ffff_8100_1010 + 0x42, 1).unwrap();
    assert_eq!(found.symbol_address(), 0xffff_ffff_8100_1010);
    assert_eq!(found.offset, 0x42);
    assert_eq!(
        names_of(found.aliases),
        vec![pair("do_one_initcall", "system")]
    );

    // Exact start: offset 0, every alias.
    let found = table.nearest(0xffff_ffff_8100_0000, 1).unwrap();
    assert_eq!((found.offset, found.aliases.len()), (0, 4));
    // Last byte before the next symbol.
    let found = table.nearest(0xffff_ffff_8100_11ff, 1).unwrap();
    assert_eq!(found.aliases.first().unwrap().name, "do_one_initcall");
    assert_eq!(found.offset, 0x1ef);
    // Inside a module function.
    let found = table.nearest(0xffff_ffff_c0a0_1020, 1).unwrap();
    assert_eq!(
        (found.aliases.first().unwrap().name, found.offset),
        ("nf_hook_slow", 0x20)
    );

    let not_found = |table: &mut KernelSymbolTable, address: u64| {
        table
            .nearest(address, 1)
            .map(|n| n.symbol_address())
            .unwrap_err()
            .is(ErrorKind::NotFound)
    };
    // Below the first symbol.
    assert!(not_found(&mut table, 0xffff_ffff_80ff_ffff));
    assert!(not_found(&mut table, 0));
    // Past the kernel image's last symbol, before the first module symbol.
    assert!(not_found(&mut table, 0xffff_ffff_8100_4010));
    // Past a module's last symbol (nft_do_chain), before the next module.
    assert!(not_found(&mut table, 0xffff_ffff_c0a0_1180));
    // Past the table's last symbol; its exact address still resolves.
    assert!(not_found(&mut table, 0xffff_ffff_c0b0_0201));
    assert_eq!(table.nearest(0xffff_ffff_c0b0_0200, 1).unwrap().offset, 0);
    // Aliases of two modules: the next symbol (ftrace, another module) ends neither range.
    assert!(not_found(&mut table, 0xffff_ffff_c0b0_0180));
}

#[test]
fn batch_skips_misses_and_keeps_input_order() {
    let mut table = sample();
    let addresses = [
        0xffff_ffff_8100_0000,
        0xdead_beef,
        0xffff_ffff_c0a0_1100,
        0xffff_ffff_8100_0001,
        0xffff_ffff_8100_0000,
    ];
    let mut out = [SymbolMatch::default(); 8];
    let batch = table.resolve_symbols_batch(&addresses, 3, &mut out);
    assert_eq!((batch.found, batch.missed, batch.unprocessed), (3, 2, 0));
    let found: Vec<(u64, usize)> = out[..batch.found]
        .iter()
        .map(|m| (m.address(), m.len()))
        .collect();
    assert_eq!(
        found,
        vec![
            (0xffff_ffff_8100_0000, 4),
            (0xffff_ffff_c0a0_1100, 1),
            (0xffff_ffff_8100_0000, 4)
        ]
    );
    assert_eq!(
        names_of(table.aliases(out[1])),
        vec![pair("nft_do_chain", "nf_tables")]
    );
    let metrics = table.metrics();
    assert_eq!((metrics.cache_hits, metrics.cache_misses), (3, 2));

    // An `out` too small stops the batch and says how many were not looked at.
    let mut small = [SymbolMatch::default(); 1];
    let batch = table.resolve_symbols_batch(&addresses, 4, &mut small);
    assert_eq!((batch.found, batch.missed, batch.unprocessed), (1, 0, 4));
    let metrics = table.metrics();
    assert_eq!((metrics.cache_hits, metrics.cache_misses), (4, 2));
}

#[test]
fn name_lookup_returns_the_first_match_by_the_documented_rule() {
    let mut table = sample();
    assert!(!table.stats().name_index_built);
    assert_eq!(
        table.get_symbol_address("_text", 1),
        Ok(0xffff_ffff_8100_0000)
    );
    assert!(table.stats().name_index_built);
    assert_eq!(
        table.get_symbol_address("do_one_initcall", 1),
        Ok(0xffff_ffff_8100_1010)
    );
    assert_eq!(
        table.get_symbol_address("__pfx_do_one_initcall", 1),
        Ok(0xffff_ffff_8100_1000)
    );
    // Kernel image first, lowest address first; the rootkit's same-named symbol comes last.
    assert_eq!(
        table.get_symbol_address("dup_static", 1),
        Ok(0xffff_ffff_8100_2000)
    );
    let all: Vec<(u64, String)> = table
        .symbols_named("dup_static", 1)
        .unwrap()
        .map(|v| (v.address, v.module.to_string()))
        .collect();
    assert_eq!(
        all,
        vec![
            (0xffff_ffff_8100_2000, "system".to_string()),
            (0xffff_ffff_8100_3000, "system".to_string()),
            (0xffff_ffff_c0b0_0000, "rootkit".to_string()),
        ]
    );
    // Between modules: the one appearing first in the text wins, whatever the addresses.
    let text = "ffffffff81000000 T _text\nffffffffc0200000 t probe\t[zz_late_addr]\n\
                ffffffffc0100000 t probe\t[aa_early_addr]\n";
    let mut table2 = KernelSymbolTable::from_kallsyms(text.as_bytes()).unwrap();
    assert_eq!(
        table2.get_symbol_address("probe", 1),
        Ok(0xffff_ffff_c020_0000)
    );

    assert!(
        table
            .get_symbol_address("no_such_symbol", 1)
            .unwrap_err()
            .is(ErrorKind::NotFound)
    );
    assert!(
        table
            .get_symbol_address("_tex", 1)
            .unwrap_err()
            .is(ErrorKind::NotFound)
    );
    assert!(
        table
            .symbols_named("no_such_symbol", 1)
            .unwrap_err()
            .is(ErrorKind::NotFound)
    );
    for bad in ["", "has space", "caf\u{e9}"] {
        let error = table.get_symbol_address(bad, 1).unwrap_err();
        assert!(error.is(ErrorKind::InvalidArgument), "{bad:?}");
        assert_eq!(error.operation, "get_symbol_address");
    }
    let too_long = "x".repeat(512);
    assert!(
        table
            .get_symbol_address(&too_long, 1)
            .unwrap_err()
            .is(ErrorKind::InvalidArgument)
    );
}

#[test]
fn metrics_move_by_the_counting_rule() {
    let mut table = sample();
    assert_eq!(table.metrics().success_count, 0);
    let mut hits = 0;
    let mut misses = 0;
    let mut errors = 0;
    let mut now = 100;
    let mut step = |found: Option<bool>| {
        match found {
            Some(true) => hits += 1,
            Some(false) => misses += 1,
            None => errors += 1,
        }
        now += 10;
        now
    };
    let t = step(Some(true));
    table
        .resolve_symbol_by_address(0xffff_ffff_8100_0000, t)
        .unwrap();
    let t = step(Some(false));
    table.resolve_symbol_by_address(0x1234, t).unwrap_err();
    let t = step(Some(true));
    table.get_symbol_address("sys_write", t).unwrap();
    let t = step(Some(false));
    table.get_symbol_address("missing", t).unwrap_err();
    let t = step(None);
    table.get_symbol_address("", t).unwrap_err();
    let t = step(Some(true));
    table.nearest(0xffff_ffff_8100_0071, t).unwrap();
    let t = step(Some(false));
    table.nearest(1, t).unwrap_err();
    let t = step(Some(true));
    let _ = table.symbols_named("dup_static", t).unwrap().count();
    let last = step(Some(true));
    let mut out = [SymbolMatch::default(); 2];
    step(Some(false));
    table.resolve_symbols_batch(&[0xffff_ffff_8100_1200, 7], last, &mut out);

    let m = table.metrics();
    assert_eq!(m.item_count, table.len() as i64);
    assert_eq!(m.cache_hits, hits);
    assert_eq!(m.cache_misses, misses);
    assert_eq!(m.error_count, errors);
    assert_eq!(m.success_count, hits + misses);
    assert_eq!(m.last_access, last);

    // Reload keeps the counters and counts itself as a success.
    let before = table.metrics();
    table.reload(SAMPLE.as_bytes(), last + 1).unwrap();
    let after = table.metrics();
    assert_eq!(after.success_count, before.success_count + 1);
    assert_eq!((after.cache_hits, after.cache_misses), (hits, misses));
    assert_eq!(table.stats().reloads, 1);
    // The fresh table's name index is built again on demand.
    assert!(!table.stats().name_index_built);
}

fn read_proc_kallsyms() -> Option<Vec<u8>> {
    match std::fs::read("/proc/kallsyms") {
        Ok(text) => Some(text),
        Err(error) => {
            eprintln!("skipping: cannot read /proc/kallsyms: {error}");
            None
        }
    }
}

/// A naive reading of one kallsyms line with std's string tools, independent of the parser.
struct NaiveLine {
    address: u64,
    name: String,
    module: Option<String>,
    per_cpu: bool,
}

fn naive(line: &str) -> NaiveLine {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let address = u64::from_str_radix(fields[0], 16).unwrap();
    let module = fields
        .get(3)
        .map(|m| m.trim_start_matches('[').trim_end_matches(']').to_string());
    let per_cpu = (fields[0].len() == 16 && address >> 63 == 0)
        || (module.is_some() && fields[1].eq_ignore_ascii_case("a"));
    NaiveLine {
        address,
        name: fields[2].to_string(),
        module,
        per_cpu,
    }
}

#[test]
fn this_machines_proc_kallsyms_loads_fully() {
    let Some(text) = read_proc_kallsyms() else {
        return;
    };
    let counts = match kallsyms::scan(&text) {
        Err(KallsymsError::AddressesHidden) => {
            // Not privileged: that must be the privilege error, not an empty table.
            let error = KernelSymbolTable::from_kallsyms(&text).unwrap_err();
            assert!(error.is_privilege_error());
            eprintln!("skipping the rest: /proc/kallsyms addresses are hidden for this user");
            return;
        }
        other => other.expect("the kernel's own text parses"),
    };
    let newlines = text.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(text.last(), Some(&b'\n'));
    assert_eq!(counts.lines, newlines);
    assert_eq!(counts.symbols + counts.per_cpu + counts.blank, counts.lines);

    let text_str = std::str::from_utf8(&text).unwrap();
    let lines: Vec<NaiveLine> = text_str.lines().map(naive).collect();
    let kept: Vec<&NaiveLine> = lines.iter().filter(|l| !l.per_cpu).collect();
    assert_eq!(counts.per_cpu, lines.len() - kept.len());

    let mut table = KernelSymbolTable::from_kallsyms(&text).unwrap();
    assert_eq!(table.len(), counts.symbols);
    assert_eq!(table.len(), kept.len());
    assert_eq!(table.health(1).status, HealthStatus::Healthy);

    // Address order, nothing lost: the table's symbols are the kept lines, sorted.
    let mut expected: Vec<(u64, &str, &str)> = kept
        .iter()
        .map(|l| {
            (
                l.address,
                l.name.as_str(),
                l.module.as_deref().unwrap_or("system"),
            )
        })
        .collect();
    expected.sort();
    let mut actual: Vec<(u64, &str, &str)> = table
        .iter()
        .map(|v| (v.address, v.name, v.module))
        .collect();
    assert!(actual.windows(2).all(|w| w[0].0 <= w[1].0));
    actual.sort();
    assert_eq!(actual, expected);
    drop(actual);
    drop(expected);

    // Well-known symbols, where this kernel has them: address and "first" rule against the file.
    let mut checked = 0;
    for name in [
        "_text",
        "_stext",
        "startup_64",
        "_etext",
        "do_sys_open",
        "schedule",
    ] {
        let kernel_addresses: Vec<u64> = kept
            .iter()
            .filter(|l| l.name == name && l.module.is_none())
            .map(|l| l.address)
            .collect();
        let Some(&lowest) = kernel_addresses.iter().min() else {
            continue;
        };
        assert_eq!(table.get_symbol_address(name, 1), Ok(lowest), "{name}");
        let aliases: Vec<(String, String)> =
            names_of(table.resolve_symbol_by_address(lowest, 1).unwrap());
        assert!(
            aliases.contains(&pair(name, "system")),
            "{name}: {aliases:?}"
        );
        checked += 1;
    }
    assert!(checked >= 2, "expected _text and friends in /proc/kallsyms");

    // A sample across the file (modules included): each line resolves to a group holding it.
    for line in kept.iter().step_by(997) {
        let module = line.module.as_deref().unwrap_or("system");
        let aliases = names_of(table.resolve_symbol_by_address(line.address, 1).unwrap());
        assert!(aliases.contains(&pair(&line.name, module)), "{}", line.name);
    }

    // Compact: less memory than the text it came from.
    assert_eq!(
        table.bytes_reserved(),
        SymbolTableLayout::from_kallsyms(&text).unwrap().bytes()
    );
    assert!(table.bytes_reserved() < text.len());
    eprintln!(
        "/proc/kallsyms: {} lines, {} symbols, {} per-CPU skipped, {} modules, {} bytes \
         reserved ({:.1} per symbol) for {} bytes of text ({:.1} per line)",
        counts.lines,
        table.len(),
        counts.per_cpu,
        table.stats().modules,
        table.bytes_reserved(),
        table.bytes_per_symbol(),
        text.len(),
        text.len() as f64 / counts.lines as f64
    );
}

/// The real file if readable and privileged, else a synthetic kernel of 50k symbols in 20
/// modules with `__pfx_` padding symbols and aliases.
fn big_kallsyms() -> Vec<u8> {
    if let Some(text) = read_proc_kallsyms()
        && kallsyms::scan(&text).is_ok_and(|c| c.symbols > 1000)
    {
        return text;
    }
    let mut text = String::from("0000000000000000 A fixed_percpu_data\n");
    for i in 0..25_000u64 {
        let address = 0xffff_ffff_8100_0000 + i * 0x40;
        text.push_str(&format!("{:016x} T __pfx_func_{i}\n", address));
        text.push_str(&format!("{:016x} t func_{i}\n", address + 0x10));
        if i % 100 == 0 {
            text.push_str(&format!("{:016x} T func_{i}_alias\n", address + 0x10));
        }
    }
    for m in 0..20u64 {
        for i in 0..100u64 {
            let address = 0xffff_ffff_c000_0000 + m * 0x10_0000 + i * 0x100;
            text.push_str(&format!("{address:016x} t mod{m}_fn{i}\t[module_{m}]\n"));
        }
    }
    text.into_bytes()
}

#[test]
fn memory_is_reserved_once_and_queries_never_allocate() {
    let text = big_kallsyms();
    let layout = SymbolTableLayout::from_kallsyms(&text).unwrap();
    let (built, table) = support::count_allocations(|| KernelSymbolTable::from_kallsyms(&text));
    let mut table = table.unwrap();
    assert!(built.allocations > 0);
    assert_eq!(table.bytes_reserved(), layout.bytes());
    assert_eq!(table.stats().bytes_reserved, layout.bytes());
    assert_eq!(table.len(), layout.symbols);
    assert!(table.len() <= table.capacity());
    // Construction allocates the reserved table plus a sort scratch of 24 bytes per symbol.
    let scratch = 24 * layout.symbols;
    assert!(
        built.bytes as usize <= layout.bytes() + scratch + 4096 * 16,
        "{} bytes allocated while building",
        built.bytes
    );

    // Inputs prepared before counting.
    let addresses: Vec<u64> = table.iter().map(|v| v.address).step_by(37).collect();
    let names: Vec<String> = table
        .iter()
        .step_by(53)
        .map(|v| v.name.to_string())
        .collect();
    let probes: Vec<u64> = addresses.iter().map(|a| a.wrapping_add(3)).collect();
    let mut out = vec![SymbolMatch::default(); addresses.len() + probes.len()];
    let mut sink = 0u64;

    let (count, ()) = support::count_allocations(|| {
        for round in 0..3u64 {
            // The first name lookup builds the name index, inside its reserved memory.
            for name in &names {
                sink ^= table.get_symbol_address(name, round).unwrap();
                sink ^= table
                    .symbols_named(name, round)
                    .unwrap()
                    .fold(0, |acc, v| acc ^ v.address);
            }
            for &address in &addresses {
                for view in table.resolve_symbol_by_address(address, round).unwrap() {
                    sink ^= view.name.len() as u64 ^ view.module.len() as u64;
                }
            }
            for &probe in &probes {
                if let Ok(found) = table.nearest(probe, round) {
                    sink ^= found.offset;
                }
                let _ = table.resolve_symbol_by_address(probe, round);
            }
            let batch = table.resolve_symbols_batch(&addresses, round, &mut out);
            sink ^= batch.found as u64;
            for m in &out[..batch.found] {
                sink ^= table.aliases(*m).len() as u64;
            }
            let _ = table.get_symbol_address("definitely_not_a_symbol", round);
            sink ^= table.health(round).status as u64;
            sink ^= table.metrics().success_count ^ table.stats().symbols as u64;
            sink ^= table.iter().count() as u64;
        }
    });
    assert_eq!(
        count.allocations, 0,
        "queries allocated {} bytes",
        count.bytes
    );
    assert!(table.stats().name_index_built);
    // Nothing grew.
    assert_eq!(table.bytes_reserved(), layout.bytes());
    assert!(table.len() <= table.capacity());
    assert!(sink != 1); // keep the work observable
}

/// Valid generated kallsyms: kernel symbols, then symbols of a few modules.
fn generated_text() -> impl Strategy<Value = Vec<(u64, String, Option<u8>)>> {
    prop::collection::vec(
        (
            0xffff_ffff_8100_0000u64..0xffff_ffff_8100_0400,
            "[a-c_]{1,3}",
            prop::option::of(0u8..3),
        ),
        0..60,
    )
}

fn render(symbols: &[(u64, String, Option<u8>)]) -> String {
    let mut text = String::new();
    for (address, name, module) in symbols {
        match module {
            None => text.push_str(&format!("{address:016x} t {name}\n")),
            Some(m) => text.push_str(&format!("{address:016x} t {name}\t[mod{m}]\n")),
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = kallsyms::scan(&bytes);
        if let Ok(mut table) = KernelSymbolTable::from_kallsyms(&bytes) {
            let _ = table.resolve_symbol_by_address(0, 1);
            let _ = table.nearest(u64::MAX, 1);
            let _ = table.get_symbol_address("a", 1);
            prop_assert_eq!(
                table.bytes_reserved(),
                SymbolTableLayout::from_kallsyms(&bytes).unwrap().bytes()
            );
        }
    }

    #[test]
    fn line_shaped_garbage_never_panics(
        lines in prop::collection::vec(
            "[0-9a-fA-FxX ]{0,18}[ \t]{0,2}[A-Za-z?1 ]{0,2}[ \t]{0,2}[ -~]{0,20}[\t ]?\\[?[a-z_\\[\\] ]{0,6}\\]?",
            0..20,
        )
    ) {
        let text = lines.join("\n");
        let _ = kallsyms::scan(text.as_bytes());
        if let Ok(mut table) = KernelSymbolTable::from_kallsyms(text.as_bytes()) {
            let addresses: Vec<u64> = table.iter().map(|v| v.address).collect();
            for address in addresses {
                prop_assert!(table.resolve_symbol_by_address(address, 1).is_ok());
            }
        }
    }

    #[test]
    fn generated_tables_answer_like_a_naive_model(symbols in generated_text()) {
        let text = render(&symbols);
        let mut table = KernelSymbolTable::from_kallsyms(text.as_bytes()).unwrap();
        prop_assert_eq!(table.len(), symbols.len());
        prop_assert_eq!(
            table.bytes_reserved(),
            SymbolTableLayout::from_kallsyms(text.as_bytes()).unwrap().bytes()
        );
        let module_name = |m: &Option<u8>| m.map_or("system".to_string(), |m| format!("mod{m}"));

        // Exact resolution returns exactly the symbols at that address, in text order.
        for (address, _, _) in &symbols {
            let expected: Vec<(String, String)> = symbols
                .iter()
                .filter(|(a, _, _)| a == address)
                .map(|(_, n, m)| (n.clone(), module_name(m)))
                .collect();
            let actual = names_of(table.resolve_symbol_by_address(*address, 1).unwrap());
            prop_assert_eq!(actual, expected);
        }

        // "First" by name: system first, then modules by first appearance, then lowest address.
        let mut module_rank: Vec<Option<u8>> = vec![None];
        for (_, _, m) in &symbols {
            if !module_rank.contains(m) {
                module_rank.push(*m);
            }
        }
        for (_, name, _) in &symbols {
            let expected = symbols
                .iter()
                .filter(|(_, n, _)| n == name)
                .map(|(a, _, m)| (module_rank.iter().position(|r| r == m).unwrap(), *a))
                .min()
                .unwrap()
                .1;
            prop_assert_eq!(table.get_symbol_address(name, 1), Ok(expected));
        }

        // Nearest: the greatest symbol address <= probe, if the next symbol continues its module.
        let mut sorted: Vec<(u64, String)> =
            symbols.iter().map(|(a, _, m)| (*a, module_name(m))).collect();
        sorted.sort();
        for probe in (0xffff_ffff_80ff_fff0u64..0xffff_ffff_8100_0410).step_by(7) {
            let at_or_below: Vec<&(u64, String)> =
                sorted.iter().filter(|(a, _)| *a <= probe).collect();
            let expected = at_or_below.last().and_then(|(start, _)| {
                if *start == probe {
                    return Some(*start);
                }
                let group: Vec<&String> =
                    sorted.iter().filter(|(a, _)| a == start).map(|(_, m)| m).collect();
                let next = sorted.iter().find(|(a, _)| a > start)?.0;
                let next_group: Vec<&String> =
                    sorted.iter().filter(|(a, _)| *a == next).map(|(_, m)| m).collect();
                next_group.iter().any(|m| group.contains(m)).then_some(*start)
            });
            let actual = table.nearest(probe, 1).ok().map(|n| n.symbol_address());
            prop_assert_eq!(actual, expected, "probe {:#x}", probe);
        }
    }
}
