//! Load + attach time of the collector (read BTF, create maps, verify and attach the programs)
//! and the detach on drop, for the process programs alone and with the DNS capture.
//! Run as root: `cargo bench -p watchpost-ebpf --bench load`.

use criterion::{Criterion, criterion_group, criterion_main};
use watchpost_ebpf::btf::{KERNEL_BTF_PATH, KernelBtf};
use watchpost_ebpf::{Collector, CollectorOptions};

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("collector");
    group.sample_size(10);
    group.bench_function("parse kernel BTF + offsets", |b| {
        b.iter(|| {
            let btf = KernelBtf::from_file(KERNEL_BTF_PATH.as_ref()).unwrap();
            watchpost_ebpf::offsets::kernel_layout(&btf).unwrap()
        })
    });
    group.bench_function("load+attach+drop, process programs", |b| {
        b.iter(|| {
            Collector::load(CollectorOptions {
                dns_answers: false,
                ..CollectorOptions::default()
            })
            .unwrap()
        })
    });
    group.bench_function("load+attach+drop, process + DNS", |b| {
        b.iter(|| Collector::load(CollectorOptions::default()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
