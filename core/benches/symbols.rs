//! Kernel symbol store benchmarks over this machine's real `/proc/kallsyms` (read once at start;
//! a synthetic 120k-symbol text if it is unreadable or its addresses are hidden): parse + build,
//! name-index build, exact resolution of one address and of a batch of 1024, name lookup, and the
//! containing-symbol lookup. Prints the table's memory per symbol next to the text's size.
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use watchpost_core::kallsyms;
use watchpost_core::symbols::{KernelSymbolTable, SymbolMatch};

fn kallsyms_text() -> (Vec<u8>, &'static str) {
    if let Ok(text) = std::fs::read("/proc/kallsyms")
        && kallsyms::scan(&text).is_ok()
    {
        return (text, "/proc/kallsyms");
    }
    let mut text = String::new();
    for i in 0..60_000u64 {
        let address = 0xffff_ffff_8100_0000 + i * 0x40;
        text.push_str(&format!("{address:016x} T __pfx_kernel_function_{i}\n"));
        text.push_str(&format!("{:016x} t kernel_function_{i}\n", address + 0x10));
    }
    (text.into_bytes(), "synthetic")
}

/// Spreads `count` picks evenly over `items`.
fn spread<T: Copy>(items: &[T], count: usize) -> Vec<T> {
    let step = (items.len() / count).max(1);
    items.iter().step_by(step).take(count).copied().collect()
}

fn symbols(c: &mut Criterion) {
    let (text, source) = kallsyms_text();
    let mut table = KernelSymbolTable::from_kallsyms(&text).expect("kallsyms text loads");
    let stats = table.stats();
    println!(
        "{source}: {} bytes, {} lines ({:.1} bytes/line); table: {} symbols, {} modules, {} bytes \
         reserved = {:.1} bytes/symbol ({:.0}% of the text); names {} bytes (+{} shared)",
        text.len(),
        stats.lines,
        text.len() as f64 / stats.lines.max(1) as f64,
        table.len(),
        stats.modules,
        table.bytes_reserved(),
        table.bytes_per_symbol(),
        100.0 * table.bytes_reserved() as f64 / text.len() as f64,
        stats.name_bytes,
        stats.shared_name_bytes,
    );

    let addresses: Vec<u64> = table.iter().map(|v| v.address).collect();
    let step = (table.len() / 1024).max(1);
    let names: Vec<String> = table
        .iter()
        .step_by(step)
        .take(1024)
        .map(|v| v.name.to_string())
        .collect();
    let batch = spread(&addresses, 1024);
    let inside: Vec<u64> = batch.iter().map(|a| a + 4).collect();

    let mut group = c.benchmark_group("symbols");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(20);
    group.bench_function("kallsyms_scan", |b| {
        b.iter(|| kallsyms::scan(black_box(&text)).unwrap())
    });
    group.bench_function("parse_and_build", |b| {
        b.iter(|| KernelSymbolTable::from_kallsyms(black_box(&text)).unwrap())
    });
    group.bench_function("parse_build_and_name_index", |b| {
        b.iter(|| {
            let mut table = KernelSymbolTable::from_kallsyms(black_box(&text)).unwrap();
            table.build_name_index();
            table
        })
    });
    group.bench_function("name_index_only", |b| {
        b.iter_batched(
            || KernelSymbolTable::from_kallsyms(&text).unwrap(),
            |mut table| {
                table.build_name_index();
                table
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    table.build_name_index();
    let mut group = c.benchmark_group("symbols_query");
    let mut next = 0usize;
    group.bench_function("resolve_symbol_by_address", |b| {
        b.iter(|| {
            next = (next + 1) % batch.len();
            let aliases = table
                .resolve_symbol_by_address(black_box(batch[next]), 1)
                .unwrap();
            black_box(aliases.len())
        })
    });
    group.bench_function("nearest", |b| {
        b.iter(|| {
            next = (next + 1) % inside.len();
            black_box(table.nearest(black_box(inside[next]), 1).map(|n| n.offset))
        })
    });
    group.bench_function("get_symbol_address", |b| {
        b.iter(|| {
            next = (next + 1) % names.len();
            black_box(
                table
                    .get_symbol_address(black_box(&names[next]), 1)
                    .unwrap(),
            )
        })
    });
    let mut out = vec![SymbolMatch::default(); batch.len()];
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("resolve_symbols_batch_1024", |b| {
        b.iter(|| black_box(table.resolve_symbols_batch(black_box(&batch), 1, &mut out)))
    });
    group.finish();
}

criterion_group!(benches, symbols);
criterion_main!(benches);
