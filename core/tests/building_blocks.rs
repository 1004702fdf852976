//! The fixed-capacity building blocks never allocate after construction, whatever the churn.

mod support;

use watchpost_core::intern_arena::InternArena;
use watchpost_core::lru_list::LruList;
use watchpost_core::slot_index::{KeyHasher, SlotIndex};

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

#[test]
fn churn_allocates_nothing() {
    let hasher = KeyHasher::new(5);
    let mut index = SlotIndex::with_capacity(1000);
    let mut lru = LruList::with_capacity(1000);
    let mut arena = InternArena::with_capacity(100, 2000, 5);
    let words: Vec<String> = (0..300).map(|i| format!("/usr/lib/word-{i}")).collect();
    let reserved = arena.bytes_reserved() + index.bytes_reserved() + lru.bytes_reserved();

    let (count, ()) = support::count_allocations(|| {
        for round in 0u64..50 {
            for slot in 0u32..1000 {
                let hash = hasher.hash_u64(u64::from(slot) + round);
                if index.len() == index.capacity() {
                    assert!(lru.pop_least_recent().is_some(), "a full list has a victim");
                    index.clear();
                }
                index.insert(hash, slot).expect("room after clearing");
                lru.touch(slot);
            }
            for (i, w) in words.iter().enumerate() {
                if let Ok(h) = arena.intern(w)
                    && !(i as u64 + round).is_multiple_of(3)
                {
                    arena.release(h);
                }
            }
        }
    });
    assert_eq!(
        count.allocations, 0,
        "allocated after construction: {count:?}"
    );
    assert!(arena.len() <= arena.capacity());
    assert!(arena.bytes_used() <= arena.capacity_bytes());
    assert_eq!(
        arena.bytes_reserved() + index.bytes_reserved() + lru.bytes_reserved(),
        reserved
    );
}
