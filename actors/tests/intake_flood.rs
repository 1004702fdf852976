//! Bounded intake under a flood: far more batches than the queue holds arrive while the store is
//! busy. The queue never holds more than its capacity, live heap memory stays bounded, every
//! update is accounted for (applied, refused by the store, or counted as overflow), the store's
//! health says "degraded: intake overflow N", and the store keeps answering queries.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::{Gate, NotesRead, NotesWrite, eventually};
use watchpost_actors::{HealthStatus, IntakeError, IntakeOptions, StoreOptions};

/// Counts live heap bytes and their peak, to show the flood does not grow memory.
struct LiveBytes;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only adds relaxed counters.
unsafe impl GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: LiveBytes = LiveBytes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_refused_and_counted_never_buffered() {
    const QUEUE: usize = 8;
    const BATCH: usize = 100;
    const BATCHES: usize = 20_000; // 2 M updates; buffered they would take > 100 MB

    let reg = support::registry().await;
    let options = StoreOptions {
        intake: IntakeOptions {
            queue_batches: QUEUE,
            max_batch_len: BATCH,
            batches_per_apply: 4,
            restart_wait: Duration::from_secs(1),
        },
        ..StoreOptions::default()
    };
    let owner = reg
        .register_writable_store("notes", support::notes_factory(1_000), options)
        .await
        .unwrap()
        // Patient: the held write lasts the whole flood, however slow the machine is.
        .with_timeout(Duration::from_secs(300));
    let intake = owner.intake().clone();
    let owner = std::sync::Arc::new(owner);

    // Hold the store's actor for the whole flood so the queue fills, however slow the machine.
    let gate = Gate::new();
    let o = owner.clone();
    let g = gate.clone();
    let stall = tokio::spawn(async move { o.write(NotesWrite::Hold(g)).await });
    gate.entered().await;

    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let (mut accepted, mut refused, mut max_queued) = (0u64, 0u64, 0usize);
    for b in 0..BATCHES {
        let batch: Vec<NotesWrite> = (0..BATCH)
            .map(|i| NotesWrite::Put(format!("k{}", (b * BATCH + i) % 5_000), "v".into()))
            .collect();
        match intake.try_submit(batch) {
            Ok(()) => accepted += BATCH as u64,
            Err(IntakeError::Full { batch, .. }) => {
                assert_eq!(batch.len(), BATCH, "a refused batch comes back whole");
                refused += BATCH as u64;
            }
            Err(other) => panic!("unexpected {other}"),
        }
        max_queued = max_queued.max(intake.queued());
        if b % 2_000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let peak_growth = PEAK.load(Ordering::Relaxed).saturating_sub(baseline);
    gate.open();
    assert!(
        max_queued <= QUEUE,
        "queue held {max_queued} batches, capacity {QUEUE}"
    );
    // While the actor is held, the queue takes QUEUE batches and the drain task holds at most
    // one message of `batches_per_apply` batches waiting in the mailbox: nothing else fits.
    let most_accepted = ((QUEUE + 4) * BATCH) as u64;
    assert!(
        accepted <= most_accepted,
        "the flood overflowed: accepted {accepted} (at most {most_accepted}), refused {refused}"
    );
    assert_eq!(accepted + refused, (BATCHES * BATCH) as u64);
    assert!(
        peak_growth < 4 * 1024 * 1024,
        "live heap grew by {peak_growth} bytes during a flood of {} updates",
        BATCHES * BATCH
    );

    // The store answers during the overflow aftermath, and reports it.
    stall.await.unwrap().unwrap().unwrap();
    assert!(owner.read(NotesRead::Len).await.unwrap().is_ok());
    let h = owner.get_health().await;
    assert_eq!(h.status, HealthStatus::Unhealthy);
    assert_eq!(
        h.message.as_str(),
        format!("degraded: intake overflow {refused}")
    );

    // Every update is accounted for once the queue drains.
    let settled = eventually(Duration::from_secs(10), || async {
        let s = owner.supervision();
        s.intake_applied_updates + s.intake_rejected_updates == accepted
    })
    .await;
    let s = owner.supervision();
    assert!(settled, "{s:?}, accepted {accepted}");
    assert_eq!(s.intake_overflow_updates, refused);
    assert_eq!(s.intake_overflow_batches, refused / BATCH as u64);
    assert_eq!(s.intake_dropped_updates, 0);
    assert_eq!(intake.queued(), 0);

    // Oversized batches are refused and counted too.
    let big: Vec<NotesWrite> = (0..BATCH + 1)
        .map(|i| NotesWrite::Put(i.to_string(), String::new()))
        .collect();
    assert!(
        matches!(intake.try_submit(big), Err(IntakeError::TooLarge { len, max, .. }) if len == BATCH + 1 && max == BATCH)
    );
    assert_eq!(
        owner.supervision().intake_overflow_updates,
        refused + BATCH as u64 + 1
    );
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_waits_for_room_instead_of_overflowing() {
    let reg = support::registry().await;
    let options = StoreOptions {
        intake: IntakeOptions {
            queue_batches: 2,
            max_batch_len: 10,
            batches_per_apply: 1,
            restart_wait: Duration::from_secs(1),
        },
        ..StoreOptions::default()
    };
    let owner = reg
        .register_writable_store("notes", support::notes_factory(10_000), options)
        .await
        .unwrap();
    for b in 0..200 {
        let batch = (0..10)
            .map(|i| NotesWrite::Put(format!("{b}-{i}"), "v".into()))
            .collect();
        owner.intake().submit(batch).await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            owner.supervision().intake_applied_updates == 2_000
        })
        .await
    );
    assert_eq!(owner.supervision().intake_overflow_updates, 0);
    assert_eq!(owner.read(NotesRead::Len).await.unwrap().unwrap(), "2000");
    assert_eq!(owner.get_health().await.status, HealthStatus::Healthy);
    reg.shutdown().await;
}
