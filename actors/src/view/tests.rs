//! The view's own guarantees, with plain threads: readers never see a half-written copy, never
//! wait for the writer, keep the published copy when a writer dies mid-write; counts add up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

/// A copy whose consistency a reader can check: every word equals `generation`.
struct Words {
    generation: u64,
    words: Vec<u64>,
}

impl Words {
    fn new(len: usize) -> Self {
        Words {
            generation: 0,
            words: vec![0; len],
        }
    }

    /// Writes generation `g` word by word (a reader of this copy would see a mix).
    fn write(&mut self, g: u64) {
        self.generation = g;
        for w in self.words.iter_mut() {
            *w = g;
        }
    }

    fn consistent(&self) -> Option<u64> {
        self.words
            .iter()
            .all(|&w| w == self.generation)
            .then_some(self.generation)
    }
}

fn install(cell: &ViewCell<Words>, len: usize) {
    let mut w = cell.writer();
    *w.back() = Some(Side::new(Box::new(Words::new(len)), 4));
    w.publish();
    *w.back() = Some(Side::new(Box::new(Words::new(len)), 4));
}

fn write_generation(cell: &ViewCell<Words>, g: u64) {
    let mut w = cell.writer();
    w.back().as_mut().unwrap().store.write(g);
    w.publish();
    w.back().as_mut().unwrap().store.write(g);
}

#[test]
fn readers_see_whole_generations_in_order() {
    let cell = Arc::new(ViewCell::<Words>::new());
    assert!(cell.read(|_, _| ()).is_none(), "nothing published yet");
    install(&cell, 512);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let cell = cell.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut last = 0;
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let g = cell
                        .read(|words, r| {
                            r.hit();
                            words.consistent()
                        })
                        .unwrap();
                    let g = g.expect("a reader saw a half-written copy");
                    assert!(g >= last, "generations went backwards: {last} then {g}");
                    last = g;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for g in 1..=500 {
        write_generation(&cell, g);
    }
    stop.store(true, Ordering::Relaxed);
    let total: u64 = readers.into_iter().map(|t| t.join().unwrap()).sum();
    let (m, _) = cell.read_counts();
    assert_eq!(m.cache_hits, total);
    assert_eq!(m.success_count, total);
    assert_eq!(cell.read(|w, _| w.consistent()).unwrap(), Some(500));
}

#[test]
fn a_writer_that_dies_mid_write_leaves_the_published_copy() {
    let cell = Arc::new(ViewCell::<Words>::new());
    install(&cell, 64);
    write_generation(&cell, 7);
    let writer = {
        let cell = cell.clone();
        std::thread::spawn(move || {
            let mut w = cell.writer();
            let back = w.back().as_mut().unwrap();
            back.store.generation = 8;
            back.store.words[0] = 8;
            panic!("dies mid-write");
        })
    };
    assert!(writer.join().is_err());
    // The published copy is untouched, and a new writer (poisoned lock or not) can go on.
    assert_eq!(cell.read(|w, _| w.consistent()).unwrap(), Some(7));
    write_generation(&cell, 9);
    assert_eq!(cell.read(|w, _| w.consistent()).unwrap(), Some(9));
}

#[test]
fn a_reader_that_panics_leaves_its_side() {
    let cell = Arc::new(ViewCell::<Words>::new());
    install(&cell, 8);
    let reader = {
        let cell = cell.clone();
        std::thread::spawn(move || {
            cell.read(|_, _| panic!("reader panics"));
        })
    };
    assert!(reader.join().is_err());
    // Had the reader stayed announced, these publishes would wait forever.
    for g in 1..=3 {
        write_generation(&cell, g);
    }
    assert_eq!(cell.read(|w, _| w.consistent()).unwrap(), Some(3));
}

#[test]
fn marks_are_gathered_once_oldest_first() {
    let cell = ViewCell::<Words>::new();
    install(&cell, 8);
    cell.read(|_, r| {
        r.now = 5_000_000;
        r.mark(2, 22);
        r.now = 3_000_000;
        r.mark(1, 11);
        r.mark(99, 1); // beyond the marks: ignored
    });
    let w = cell.writer();
    let mut out = Vec::with_capacity(8);
    w.published().unwrap().gather_marks(&mut out);
    out.sort_unstable();
    assert_eq!(out, [(3, 1, 11), (5, 2, 22)]);
    out.clear();
    w.published().unwrap().gather_marks(&mut out);
    assert!(out.is_empty(), "gathered marks are cleared");
}
