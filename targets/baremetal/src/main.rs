//! watchpost-core on a bare-metal Cortex-M4F: the proof that the core is really `no_std`.
//!
//! A store's memory comes from a fixed static heap, reserved once at start, exactly as on Linux.
//! The store lives behind an embassy-sync blocking mutex (what firmware uses to share state between
//! tasks and interrupts) and reports through defmt. Built in CI for `thumbv7em-none-eabihf`; it is
//! not run there (no board), but it links a complete firmware image.
#![no_std]
#![no_main]

use core::cell::RefCell;
use core::mem::MaybeUninit;

use cortex_m_rt::entry;
use defmt_rtt as _;
use embassy_sync::blocking_mutex::{Mutex, raw::CriticalSectionRawMutex};
use embedded_alloc::LlffHeap as Heap;
use panic_probe as _;
use watchpost_core::intern_arena::InternArena;
use watchpost_core::metrics::StoreMetrics;

#[global_allocator]
static HEAP: Heap = Heap::empty();

/// Bytes of RAM handed to the allocator; the stores take theirs once, at construction.
const HEAP_BYTES: usize = 64 * 1024;

/// A demonstration store shared the firmware way.
type SharedArena = Mutex<CriticalSectionRawMutex, RefCell<Option<(InternArena, StoreMetrics)>>>;

static STORE: SharedArena = Mutex::new(RefCell::new(None));

#[entry]
fn main() -> ! {
    {
        static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];
        // SAFETY: `main` runs once and nothing else touches `HEAP_MEM`; the heap takes the region
        // for the program's whole life, before the first allocation.
        unsafe { HEAP.init(core::ptr::addr_of_mut!(HEAP_MEM) as usize, HEAP_BYTES) }
    }

    STORE.lock(|cell| {
        cell.replace(Some((
            InternArena::with_capacity(64, 4096, 0x5eed),
            StoreMetrics::new(),
        )));
    });

    let mut now = 0u64;
    loop {
        now += 1;
        STORE.lock(|cell| {
            if let Some((arena, metrics)) = cell.borrow_mut().as_mut() {
                match arena.intern("/usr/bin/sensor-agent") {
                    Ok(handle) => {
                        metrics.hit(now);
                        arena.release(handle);
                    }
                    Err(_) => metrics.error(now),
                }
                defmt::info!("metrics: {}", metrics.snapshot(arena.len()));
            }
        });
        cortex_m::asm::wfi();
    }
}
