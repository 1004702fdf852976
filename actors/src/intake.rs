//! Bounded intake: how collectors feed a store without ever growing its mailbox.
//!
//! Collectors put whole batches (`Vec<Update>`) into a bounded tokio channel. One drain task per
//! store takes whatever batches are queued (up to [`IntakeOptions::batches_per_apply`]) and hands
//! them to the actor in one message, then waits for the answer before taking more: at most one
//! intake message sits in the actor's mailbox at any time. When the queue is full,
//! [`IntakeSender::try_submit`] refuses the batch and counts it (the store's health then says
//! "degraded: intake overflow N"); [`IntakeSender::submit`] waits for room instead.
//!
//! The drain task is supervised: if it ever panics, the batches it held are counted as dropped,
//! the restart is counted (`intake_drain_restarts`), and a new drain task takes over the same
//! queue — an intake never stops quietly.
//!
//! While the store restarts, the drain task holds its batches and waits for the new actor (at most
//! [`IntakeOptions::restart_wait`]); a batch the store was applying when it crashed is dropped
//! and counted, never replayed (it may be what crashed it).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::clock::now;
use crate::protocol::{ApplyReport, Protocol, StoreMsg};
use crate::slot::StoreSlot;

/// Sizes of a store's intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeOptions {
    /// Batches the queue holds before `try_submit` overflows.
    pub queue_batches: usize,
    /// Largest batch accepted (longer batches are refused as overflow).
    pub max_batch_len: usize,
    /// Most queued batches handed to the actor in one message.
    pub batches_per_apply: usize,
    /// How long the drain task waits for a restarting store before dropping a batch.
    pub restart_wait: Duration,
}

impl Default for IntakeOptions {
    /// 64 batches of up to 4,096 updates, up to 16 batches per actor message, 5 s restart wait.
    fn default() -> Self {
        IntakeOptions {
            queue_batches: 64,
            max_batch_len: 4096,
            batches_per_apply: 16,
            restart_wait: Duration::from_secs(5),
        }
    }
}

/// A batch the intake did not take.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError<U> {
    /// The queue is full (counted as overflow); the batch is handed back.
    #[error("intake of store {store} is full: batch of {} updates refused", .batch.len())]
    Full {
        /// The store.
        store: &'static str,
        /// The refused batch.
        batch: Vec<U>,
    },
    /// The batch is longer than the store accepts (counted as overflow).
    #[error("batch of {len} updates exceeds the intake limit of {max} for store {store}")]
    TooLarge {
        /// The store.
        store: &'static str,
        /// Updates in the batch.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The store's intake is closed (registry shut down).
    #[error("intake of store {store} is closed")]
    Closed {
        /// The store.
        store: &'static str,
    },
}

/// Where collectors send a store's updates. Cheap to clone; every clone feeds the same queue.
pub struct IntakeSender<U> {
    tx: mpsc::Sender<Vec<U>>,
    overflow: Arc<dyn OverflowCounter>,
    store: &'static str,
    max_batch_len: usize,
    queue_batches: usize,
}

impl<U> Clone for IntakeSender<U> {
    fn clone(&self) -> Self {
        IntakeSender {
            tx: self.tx.clone(),
            overflow: self.overflow.clone(),
            store: self.store,
            max_batch_len: self.max_batch_len,
            queue_batches: self.queue_batches,
        }
    }
}

impl<U> std::fmt::Debug for IntakeSender<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeSender")
            .field("store", &self.store)
            .field("queued", &self.queued())
            .finish()
    }
}

trait OverflowCounter: Send + Sync + 'static {
    fn overflow(&self, updates: usize);
    fn dropped(&self, updates: usize);
    #[cfg(feature = "fault-injection")]
    fn inject_drain_panic(&self);
}

impl<P: Protocol> OverflowCounter for StoreSlot<P> {
    fn overflow(&self, updates: usize) {
        let c = &self.counters;
        c.overflow_batches.fetch_add(1, Ordering::Relaxed);
        c.overflow_updates
            .fetch_add(updates as u64, Ordering::Relaxed);
        c.last_overflow_at.store(now(), Ordering::Relaxed);
    }
    fn dropped(&self, updates: usize) {
        self.counters
            .dropped_updates
            .fetch_add(updates as u64, Ordering::Relaxed);
    }
    #[cfg(feature = "fault-injection")]
    fn inject_drain_panic(&self) {
        self.counters.drain_panic.store(true, Ordering::SeqCst);
    }
}

impl<U: Send + 'static> IntakeSender<U> {
    /// Queues `batch` if there is room; otherwise refuses it and counts the overflow. Never
    /// waits, never grows anything.
    pub fn try_submit(&self, batch: Vec<U>) -> Result<(), IntakeError<U>> {
        if batch.len() > self.max_batch_len {
            self.overflow.overflow(batch.len());
            return Err(IntakeError::TooLarge {
                store: self.store,
                len: batch.len(),
                max: self.max_batch_len,
            });
        }
        if batch.is_empty() {
            return Ok(());
        }
        match self.tx.try_send(batch) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(batch)) => {
                self.overflow.overflow(batch.len());
                Err(IntakeError::Full {
                    store: self.store,
                    batch,
                })
            }
            Err(mpsc::error::TrySendError::Closed(batch)) => {
                self.overflow.dropped(batch.len());
                Err(IntakeError::Closed { store: self.store })
            }
        }
    }

    /// Queues `batch`, waiting for room (backpressure for collectors that must not lose
    /// updates, such as the start-up `/proc` scan).
    pub async fn submit(&self, batch: Vec<U>) -> Result<(), IntakeError<U>> {
        if batch.len() > self.max_batch_len {
            self.overflow.overflow(batch.len());
            return Err(IntakeError::TooLarge {
                store: self.store,
                len: batch.len(),
                max: self.max_batch_len,
            });
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.tx.send(batch).await.map_err(|e| {
            self.overflow.dropped(e.0.len());
            IntakeError::Closed { store: self.store }
        })
    }
}

impl<U> IntakeSender<U> {
    /// Makes the drain task panic at its next batch (supervision tests).
    #[cfg(feature = "fault-injection")]
    pub fn inject_drain_panic(&self) {
        self.overflow.inject_drain_panic();
    }

    /// Batches waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.queue_batches.saturating_sub(self.tx.capacity())
    }

    /// Batches the queue holds at most.
    pub fn queue_capacity(&self) -> usize {
        self.queue_batches
    }

    /// Largest batch accepted.
    pub fn max_batch_len(&self) -> usize {
        self.max_batch_len
    }

    /// The store this intake feeds.
    pub fn store(&self) -> &'static str {
        self.store
    }
}

/// Creates the intake of `slot` and starts its drain task on the current runtime.
pub(crate) fn open<P: Protocol>(
    slot: Arc<StoreSlot<P>>,
    options: IntakeOptions,
) -> IntakeSender<P::Update> {
    let queue_batches = options.queue_batches.max(1);
    let (tx, rx) = mpsc::channel(queue_batches);
    let sender = IntakeSender {
        tx,
        overflow: slot.clone(),
        store: slot.name,
        max_batch_len: options.max_batch_len.max(1),
        queue_batches,
    };
    tokio::spawn(supervise_drain(slot, rx, options));
    sender
}

/// Runs [`drain`] again whenever it panics, on the same queue.
async fn supervise_drain<P: Protocol>(
    slot: Arc<StoreSlot<P>>,
    rx: mpsc::Receiver<Vec<P::Update>>,
    options: IntakeOptions,
) {
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    // Updates taken from the queue by the running drain and not yet accounted for.
    let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let run = tokio::spawn(drain(slot.clone(), rx.clone(), options, held.clone()));
        match run.await {
            Ok(()) => return, // every sender dropped
            Err(e) if e.is_panic() => {
                let lost = held.swap(0, Ordering::Relaxed);
                tracing::error!(
                    store = slot.name,
                    lost,
                    "intake drain task panicked; starting it again"
                );
                slot.dropped(lost);
                slot.counters.drain_restarts.fetch_add(1, Ordering::Relaxed);
                slot.counters.progress.notify_waiters();
            }
            Err(_cancelled) => return, // the runtime is shutting down
        }
    }
}

async fn drain<P: Protocol>(
    slot: Arc<StoreSlot<P>>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<P::Update>>>>,
    options: IntakeOptions,
    held: Arc<std::sync::atomic::AtomicUsize>,
) {
    // Released if this task panics (tokio's mutex is not poisoned): the next drain takes over.
    let mut rx = rx.lock().await;
    let per_apply = options.batches_per_apply.max(1);
    let mut taken: Vec<Vec<P::Update>> = Vec::with_capacity(per_apply);
    loop {
        if rx.recv_many(&mut taken, per_apply).await == 0 {
            return; // every sender dropped
        }
        let updates: usize = taken.iter().map(Vec::len).sum();
        held.store(updates, Ordering::Relaxed);
        #[cfg(feature = "fault-injection")]
        if slot
            .counters
            .drain_panic
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("fault injection: intake drain told to panic");
        }
        let Some(actor) = slot.wait_for_actor(options.restart_wait).await else {
            held.store(0, Ordering::Relaxed);
            slot.dropped(updates);
            slot.counters.progress.notify_waiters();
            taken.clear();
            continue;
        };
        let batches = std::mem::replace(&mut taken, Vec::with_capacity(per_apply));
        let outcome = ractor::call!(actor, |reply| StoreMsg::Apply { batches, reply });
        drop(actor);
        match outcome {
            Ok(ApplyReport { applied, rejected }) => {
                let c = &slot.counters;
                c.applied_updates.fetch_add(applied, Ordering::Relaxed);
                c.rejected_updates.fetch_add(rejected, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(store = slot.name, updates, error = %e, "intake batch lost: store went down while applying it");
                slot.dropped(updates);
            }
        }
        held.store(0, Ordering::Relaxed);
        slot.counters.progress.notify_waiters();
    }
}
