//! The allocation counter the memory-bound tests rely on really counts.

mod support;

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

#[test]
fn counts_allocations_on_this_thread() {
    let (count, v) = support::count_allocations(|| std::vec::Vec::<u64>::with_capacity(100));
    assert_eq!(count.allocations, 1);
    assert_eq!(count.bytes, 800);
    drop(v);
    let (count, ()) = support::count_allocations(|| ());
    assert_eq!(count.allocations, 0);
}
