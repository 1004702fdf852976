//! watchpost-core on a bare-metal Cortex-M4F: the proof that the core is really `no_std`.
//!
//! A store's memory comes from a fixed static heap, reserved once at start, exactly as on Linux.
//! The process table lives behind an embassy-sync blocking mutex (what firmware uses to share state between
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
use watchpost_core::process::{Comm, ExitEvent, ForkEvent, ProcessTable, ProcessTableConfig};

#[global_allocator]
static HEAP: Heap = Heap::empty();

/// Bytes of RAM handed to the allocator; the store takes its share once, at construction.
const HEAP_BYTES: usize = 128 * 1024;

/// A gateway-sized process table: 256 tasks, 64 distinct binaries in 8 KiB.
fn table_config() -> ProcessTableConfig {
    ProcessTableConfig {
        capacity: 256,
        exit_grace_ns: 5_000_000_000,
        pending_capacity: 16,
        pending_ttl_ns: 1_000_000_000,
        exe_path_strings: 64,
        exe_path_bytes: 8 * 1024,
        hash_seed: 0x5eed,
    }
}

/// The process table shared the firmware way: a blocking mutex over a critical section.
type SharedTable = Mutex<CriticalSectionRawMutex, RefCell<Option<ProcessTable>>>;

static TABLE: SharedTable = Mutex::new(RefCell::new(None));

#[entry]
fn main() -> ! {
    {
        static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];
        // SAFETY: `main` runs once and nothing else touches `HEAP_MEM`; the heap takes the region
        // for the program's whole life, before the first allocation.
        unsafe { HEAP.init(core::ptr::addr_of_mut!(HEAP_MEM) as usize, HEAP_BYTES) }
    }

    TABLE.lock(|cell| {
        cell.replace(Some(ProcessTable::new(table_config())));
    });

    // Feed a task lifecycle forever: the table stays within what it reserved above.
    let mut now = 1_000_000_000u64;
    let mut pid = 2u32;
    loop {
        now += 1_000_000;
        pid = pid.wrapping_add(1).max(2);
        TABLE.lock(|cell| {
            if let Some(table) = cell.borrow_mut().as_mut() {
                let fork = ForkEvent {
                    pid,
                    start_time: now,
                    ppid: 1,
                    parent_start_time: 0,
                    uid: 0,
                    gid: 0,
                    comm: Comm::new("sensor-agent"),
                    exe_path: Some("/bin/sensor-agent"),
                };
                table.apply_fork(&fork, now);
                if let Ok(view) = table.get(fork.key().entity_id(), now) {
                    defmt::debug!("task {} name {}", view.pid(), view.name());
                }
                table.apply_exit(
                    &ExitEvent {
                        pid,
                        start_time: now,
                        exit_time: now,
                    },
                    now,
                );
                defmt::info!("process store: {}", table.metrics());
            }
        });
        cortex_m::asm::wfi();
    }
}
