//! The one actor type behind every store: the only writer of the store's read view. It handles
//! one message at a time; queries never reach it (handles read the published copy).
//!
//! Writing a batch (see [`crate::view`]): the unpublished copy first catches up with the batch
//! the published one already has (if it could not right after the last publish), takes the
//! recency marks readers left, applies the new batch, and is published; then, if no reader is
//! still on the copy that was published, it takes the same marks and batch at once, else it
//! takes them at the start of the next message (so the writer never waits for a reader that
//! the scheduler preempted mid-lookup).

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use watchpost_core::EpochNanos;

use crate::clock::now;
use crate::protocol::{ApplyReport, Protocol, StoreBackend, StoreMsg, Visit, answer};
use crate::slot::StoreSlot;
use crate::view::{Side, ViewWriter};

/// The actor writing the view of a store that speaks protocol `P`.
pub(crate) struct StoreActor<P> {
    _protocol: std::marker::PhantomData<fn() -> P>,
}

impl<P> StoreActor<P> {
    pub fn new() -> Self {
        StoreActor {
            _protocol: std::marker::PhantomData,
        }
    }
}

/// What the actor starts with: its slot and the two copies of a freshly built store.
pub(crate) struct StoreStart<P: Protocol> {
    pub slot: Arc<StoreSlot<P>>,
    pub copies: [Box<P::Backend>; 2],
}

/// The writes the unpublished copy still owes (the published one has them).
enum Owed<P: Protocol> {
    Nothing,
    Batches {
        marks: Vec<(u32, u32)>,
        batches: Vec<Vec<P::Update>>,
        now: EpochNanos,
    },
    Write {
        marks: Vec<(u32, u32)>,
        update: P::Update,
        now: EpochNanos,
    },
    Visit {
        marks: Vec<(u32, u32)>,
        visit: Visit,
    },
}

pub(crate) struct StoreState<P: Protocol> {
    slot: Arc<StoreSlot<P>>,
    owed: Owed<P>,
    /// Gathered marks (tick, slot, id), preallocated for both copies' marks.
    gathered: Vec<(u32, u32, u32)>,
    #[cfg(feature = "fault-injection")]
    panic_after: Option<usize>,
}

/// Applies `updates` to `store`, counting outcomes; panics after `panic_after` updates when asked
/// (fault injection).
fn apply_all<'u, P: Protocol>(
    store: &mut P::Backend,
    updates: impl Iterator<Item = &'u P::Update>,
    now: EpochNanos,
    mut report: Option<&mut ApplyReport>,
    panic_after: Option<usize>,
) {
    for (n, update) in updates.enumerate() {
        if panic_after == Some(n) {
            panic!("fault injection: store actor told to panic mid-batch after {n} updates");
        }
        let applied = store.apply_update(update, now);
        if let Some(r) = report.as_deref_mut() {
            if P::accepted(&applied) {
                r.applied += 1;
            } else {
                r.rejected += 1;
            }
        }
    }
    store.after_apply(now);
}

impl<P: Protocol> StoreState<P> {
    /// Brings the unpublished copy level with the published one: by copying the published
    /// store in place when that is cheaper than replaying what it owes (about 1 KiB of copying
    /// per update replayed, and the store can), else by replaying.
    fn settle(&mut self, writer: &mut ViewWriter<'_, P::Backend>) {
        let owed = std::mem::replace(&mut self.owed, Owed::Nothing);
        let updates = match &owed {
            Owed::Nothing => return,
            Owed::Batches { batches, .. } => batches.iter().map(Vec::len).sum(),
            Owed::Write { .. } | Owed::Visit { .. } => 1,
        };
        let (back, published) = writer.back_and_published();
        let Some(back) = back.as_mut() else {
            return;
        };
        let store = &mut *back.store;
        if let Some(published) = published
            && updates.saturating_mul(1024) >= store.bytes_reserved()
            && store.copy_from_any(published.store.as_any())
        {
            return;
        }
        match owed {
            Owed::Nothing => {}
            Owed::Batches {
                marks,
                batches,
                now,
            } => {
                store.apply_read_marks(&marks);
                apply_all::<P>(store, batches.iter().flatten(), now, None, None);
            }
            Owed::Write { marks, update, now } => {
                store.apply_read_marks(&marks);
                apply_all::<P>(store, std::iter::once(&update), now, None, None);
            }
            Owed::Visit { marks, mut visit } => {
                store.apply_read_marks(&marks);
                visit(store.as_any_mut());
            }
        }
    }

    /// The recency marks readers left on both copies since the last write, oldest first.
    fn take_marks(&mut self, writer: &mut ViewWriter<'_, P::Backend>) -> Vec<(u32, u32)> {
        self.gathered.clear();
        if let Some(side) = writer.published() {
            side.gather_marks(&mut self.gathered);
        }
        if let Some(side) = writer.back().as_ref() {
            side.gather_marks(&mut self.gathered);
        }
        if self.gathered.is_empty() {
            return Vec::new();
        }
        // Oldest first: by age relative to now (ticks are ms and wrap every 49 days).
        let reference = (now() / 1_000_000) as u32;
        self.gathered.sort_unstable_by_key(|&(tick, slot, _)| {
            (std::cmp::Reverse(reference.wrapping_sub(tick)), slot)
        });
        self.gathered
            .iter()
            .map(|&(_, slot, id)| (slot, id))
            .collect()
    }

    /// After a publish: the old copy takes what it owes now if no reader is on it.
    fn catch_up(&mut self, writer: &mut ViewWriter<'_, P::Backend>, owed: Owed<P>) {
        self.owed = owed;
        if writer.try_back().is_some() {
            self.settle(writer);
        }
    }
}

impl<P: Protocol> Actor for StoreActor<P> {
    type Msg = StoreMsg<P>;
    type State = StoreState<P>;
    type Arguments = StoreStart<P>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        start: StoreStart<P>,
    ) -> Result<StoreState<P>, ActorProcessingErr> {
        let StoreStart { slot, copies } = start;
        let [first, second] = copies;
        let mark_slots = first.read_mark_slots();
        {
            // Installing is a publish like any other: readers of a crashed store keep its last
            // published copy until this one is published.
            let mut w = slot.view.writer();
            *w.back() = Some(Side::new(first, mark_slots));
            w.publish();
            *w.back() = Some(Side::new(second, mark_slots));
        }
        Ok(StoreState {
            slot,
            owed: Owed::Nothing,
            gathered: Vec::with_capacity(mark_slots.saturating_mul(2)),
            #[cfg(feature = "fault-injection")]
            panic_after: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut StoreState<P>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            StoreMsg::Apply { batches, reply } => {
                let t = now();
                let slot = state.slot.clone();
                let mut w = slot.view.writer();
                state.settle(&mut w);
                let marks = state.take_marks(&mut w);
                #[cfg(feature = "fault-injection")]
                let panic_after = state.panic_after.take();
                #[cfg(not(feature = "fault-injection"))]
                let panic_after = None;
                let mut report = ApplyReport::default();
                if let Some(back) = w.back().as_mut() {
                    let store = &mut *back.store;
                    store.apply_read_marks(&marks);
                    apply_all::<P>(
                        store,
                        batches.iter().flatten(),
                        t,
                        Some(&mut report),
                        panic_after,
                    );
                    w.publish();
                }
                state.catch_up(
                    &mut w,
                    Owed::Batches {
                        marks,
                        batches,
                        now: t,
                    },
                );
                answer(reply, report);
            }
            StoreMsg::Write { update, reply } => {
                let t = now();
                let slot = state.slot.clone();
                let mut w = slot.view.writer();
                state.settle(&mut w);
                let marks = state.take_marks(&mut w);
                let Some(back) = w.back().as_mut() else {
                    return Ok(());
                };
                let store = &mut *back.store;
                store.apply_read_marks(&marks);
                let applied = store.apply_update(&update, t);
                store.after_apply(t);
                w.publish();
                state.catch_up(
                    &mut w,
                    Owed::Write {
                        marks,
                        update,
                        now: t,
                    },
                );
                answer(reply, applied);
            }
            StoreMsg::Inspect(mut visit) => {
                let slot = state.slot.clone();
                let mut w = slot.view.writer();
                state.settle(&mut w);
                let marks = state.take_marks(&mut w);
                let Some(back) = w.back().as_mut() else {
                    return Ok(());
                };
                let store = &mut *back.store;
                store.apply_read_marks(&marks);
                visit(store.as_any_mut());
                w.publish();
                state.catch_up(&mut w, Owed::Visit { marks, visit });
            }
            StoreMsg::Health(reply) => {
                let health = state
                    .slot
                    .view
                    .writer()
                    .published()
                    .map(|side| side.store.health(now()));
                if let Some(health) = health {
                    answer(reply, health);
                }
            }
            StoreMsg::Metrics(reply) => {
                let metrics = state
                    .slot
                    .view
                    .writer()
                    .published()
                    .map(|side| side.store.metrics());
                if let Some(metrics) = metrics {
                    answer(reply, metrics);
                }
            }
            #[cfg(feature = "fault-injection")]
            StoreMsg::Panic => panic!("fault injection: store actor told to panic"),
            #[cfg(feature = "fault-injection")]
            StoreMsg::PanicMidBatch(after) => state.panic_after = Some(after),
        }
        Ok(())
    }
}
