//! The kernel symbol store through its actor against this machine's real `/proc/kallsyms`
//! (needs root, or `kptr_restrict` 0, for real addresses): a known symbol's address and back,
//! aliases at one address, a module's symbol, batches with misses, and a whole-table swap
//! through the intake while callers keep querying.
//!
//! Expected answers are read from the kallsyms text by this test's own small parser, not from
//! the store.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use support::{registry, submit_and_wait};
use watchpost_actors::adapters::symbols::KernelSymbols;
use watchpost_actors::stores::symbols::{SymbolHandle, SymbolTableSwap};
use watchpost_actors::{BuildContext, BuildError, ErrorKind, HealthStatus, Registry};
use watchpost_actors::{IntakeSender, StoreOptions};
use watchpost_core::symbols::KernelSymbolTable;

/// Kernel functions present in every kernel watchpost supports.
const KNOWN: [&str; 2] = ["vfs_read", "vfs_write"];

/// One kallsyms line: address, type, name, module (`"system"` for the kernel image).
struct Line {
    address: u64,
    kind: String,
    name: String,
    module: String,
}

fn kallsyms_text() -> Vec<u8> {
    std::fs::read("/proc/kallsyms").expect("/proc/kallsyms readable")
}

fn parse(text: &[u8]) -> Vec<Line> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let address = u64::from_str_radix(f.next()?, 16).ok()?;
            let kind = f.next()?.to_owned();
            let name = f.next()?.to_owned();
            let module = f
                .next()
                .map(|m| m.trim_matches(['[', ']']).to_owned())
                .unwrap_or_else(|| "system".to_owned());
            Some(Line {
                address,
                kind,
                name,
                module,
            })
        })
        .collect()
}

/// The kernel image's address of `name` (its first kernel line).
fn kernel_address(lines: &[Line], name: &str) -> u64 {
    lines
        .iter()
        .find(|l| l.name == name && l.module == "system")
        .map(|l| l.address)
        .unwrap_or_else(|| panic!("{name} is in /proc/kallsyms"))
}

async fn symbol_store() -> (
    Registry,
    SymbolHandle,
    IntakeSender<SymbolTableSwap>,
    Vec<Line>,
) {
    let text = kallsyms_text();
    let lines = parse(&text);
    assert!(
        lines.iter().any(|l| l.address != 0),
        "real kallsyms addresses (needs root or kptr_restrict=0)"
    );
    let reg = registry().await;
    let intake = reg
        .register_symbol_store(
            |ctx: &BuildContext| {
                KernelSymbolTable::from_kallsyms(&kallsyms_text())
                    .map(KernelSymbols::new)
                    .map_err(|e| BuildError::new(ctx.store, e.to_string()))
            },
            StoreOptions::default(),
        )
        .await
        .expect("the symbol store registers");
    let handle = reg.kernel_symbols();
    (reg, handle, intake, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kernel_symbols_resolve_both_ways() {
    let (reg, symbols, _intake, lines) = symbol_store().await;
    for name in KNOWN {
        let expected = kernel_address(&lines, name);
        assert_eq!(symbols.get_symbol_address(name).await.unwrap(), expected);
        let at = symbols.resolve_symbol_by_address(expected).await.unwrap();
        assert!(
            at.iter()
                .any(|s| s.name == name && s.module == "system" && s.address == expected),
            "{name}: {at:?}"
        );
    }

    // Every alias at the kernel's first text address, in text order.
    let text_start = kernel_address(&lines, "_stext");
    let expected_aliases: Vec<&str> = lines
        .iter()
        .filter(|l| l.address == text_start && l.module == "system")
        .map(|l| l.name.as_str())
        .collect();
    assert!(expected_aliases.len() >= 2, "{expected_aliases:?}");
    let aliases = symbols.resolve_symbol_by_address(text_start).await.unwrap();
    let names: Vec<&str> = aliases.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, expected_aliases);

    // A module's symbol carries its module's name.
    if let Some(m) = lines.iter().find(|l| l.module != "system") {
        let found = symbols.resolve_symbol_by_address(m.address).await.unwrap();
        assert!(
            found
                .iter()
                .any(|s| s.name == m.name && s.module == m.module),
            "{found:?}"
        );
    }

    let missing = symbols
        .get_symbol_address("no_such_symbol_in_any_kernel")
        .await
        .unwrap_err();
    assert!(missing.is(ErrorKind::NotFound), "{missing}");
    let vfs_read = kernel_address(&lines, "vfs_read");
    let inside = symbols
        .resolve_symbol_by_address(vfs_read + 1)
        .await
        .unwrap_err();
    assert!(inside.is(ErrorKind::NotFound), "exact addresses only");

    // A batch: found addresses in the map, misses left out.
    let vfs_write = kernel_address(&lines, "vfs_write");
    let batch = symbols
        .resolve_symbols_batch(&[vfs_read, 1, vfs_write, vfs_read + 1])
        .await
        .unwrap();
    assert_eq!(batch.len(), 2, "{batch:?}");
    assert!(batch[&vfs_read].iter().any(|s| s.name == "vfs_read"));
    assert!(batch[&vfs_write].iter().any(|s| s.name == "vfs_write"));
    assert!(!batch.contains_key(&1));

    let m = symbols.get_metrics().await;
    assert_eq!(m.item_count as usize, lines.len() - per_cpu_lines(&lines));
    assert!(m.cache_hits >= 7 && m.cache_misses >= 4, "{m:?}");
    assert_eq!(symbols.get_health().await.status, HealthStatus::Healthy);
    reg.shutdown().await;
}

/// Lines the table leaves out: per-CPU variables (offsets, not addresses): the kernel's below
/// the kernel half, modules' absolute (`A`) symbols.
fn per_cpu_lines(lines: &[Line]) -> usize {
    lines
        .iter()
        .filter(|l| {
            l.address < watchpost_core::kallsyms::KERNEL_HALF_START
                || (l.module != "system" && l.kind.eq_ignore_ascii_case("a"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_swap_through_the_intake_keeps_serving() {
    let (reg, symbols, intake, lines) = symbol_store().await;
    let vfs_read = kernel_address(&lines, "vfs_read");
    kernel_address(&lines, "vfs_open"); // held before the swap, not after
    let before = symbols.get_metrics().await;

    // Callers keep asking for a symbol both tables hold while the swap happens.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let caller = {
        let (symbols, stop, answered) = (symbols.clone(), stop.clone(), answered.clone());
        tokio::spawn(async move {
            let mut wrong = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match symbols.get_symbol_address("vfs_read").await {
                    Ok(a) if a == vfs_read => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    other => wrong.push(format!("{other:?}")),
                }
            }
            wrong
        })
    };

    // The new table is built off the actor, from a part of the same text.
    let text = kallsyms_text();
    let keep = ["vfs_read", "vfs_write", "_stext"];
    let subset: Vec<u8> = String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| {
            let name = l.split_whitespace().nth(2).unwrap_or_default();
            keep.contains(&name) && !l.contains('[')
        })
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    let table = KernelSymbolTable::from_kallsyms(&subset).unwrap();
    let subset_len = table.len();
    assert!(subset_len >= keep.len(), "{subset_len}");
    // Not a table at all: refused, counted, nothing changes.
    submit_and_wait(&symbols, &intake, vec![SymbolTableSwap::new("not a table")]).await;
    assert_eq!(symbols.supervision().intake_rejected_updates, 1);
    assert_eq!(
        symbols.get_metrics().await.item_count,
        before.item_count,
        "the refused swap changed nothing"
    );
    submit_and_wait(&symbols, &intake, vec![KernelSymbols::swap(table)]).await;
    assert_eq!(symbols.supervision().intake_applied_updates, 1);
    let kept_answering = support::eventually(std::time::Duration::from_secs(30), || {
        let n = answered.load(Ordering::Relaxed);
        async move { n >= 50 }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let wrong = caller.await.unwrap();
    assert!(
        wrong.is_empty(),
        "every call answered across the swap: {wrong:?}"
    );
    assert!(kept_answering, "the store kept answering after the swap");

    let after = symbols.get_metrics().await;
    assert_eq!(after.item_count as usize, subset_len);
    assert!(
        after.success_count > before.success_count && after.cache_hits > before.cache_hits,
        "counters of the replaced table are carried over: {before:?} -> {after:?}"
    );
    let gone = symbols.get_symbol_address("vfs_open").await.unwrap_err();
    assert!(gone.is(ErrorKind::NotFound), "only the new table answers");
    let batch: HashMap<u64, _> = symbols.resolve_symbols_batch(&[vfs_read]).await.unwrap();
    assert_eq!(batch.len(), 1);
    reg.shutdown().await;
}
