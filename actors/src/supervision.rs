//! How stores are (re)built: a [`StoreFactory`] registered with each store, the
//! [`RestartPolicy`] the supervisor follows when a store actor panics, and the type-erased
//! runtime the registry actor uses to respawn a store without knowing its types.
//!
//! Persistence seam: the factory receives a [`BuildContext`] saying whether this is the first
//! start or a restart (and why). A persistence layer wraps a factory to restore the last snapshot
//! on restart (`ctx.attempt > 0`) or at start after a daemon restart; the actors never touch the
//! snapshot format themselves.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell};

use crate::protocol::{IntoCopies, Protocol};
use crate::slot::{SlotView, StoreSlot};
use crate::store_actor::{StoreActor, StoreStart};

/// Why and how often a store is being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildContext {
    /// The store's registered name.
    pub store: &'static str,
    /// 0 at registration; n for the n-th rebuild after a failure.
    pub attempt: u64,
    /// What the previous instance died of (panic message), on a restart.
    pub previous_failure: Option<String>,
}

/// A factory could not build its store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("building store {store} failed: {reason}")]
pub struct BuildError {
    /// The store being built.
    pub store: String,
    /// What went wrong.
    pub reason: String,
}

impl BuildError {
    /// A failure to build `store` because of `reason`.
    pub fn new(store: impl Into<String>, reason: impl Into<String>) -> Self {
        BuildError {
            store: store.into(),
            reason: reason.into(),
        }
    }
}

/// Builds a store's state, at registration and again after every crash.
pub trait StoreFactory<B>: Send + Sync + 'static {
    /// A fresh (or restored) backend.
    fn build(&self, ctx: &BuildContext) -> Result<B, BuildError>;
}

impl<B, F> StoreFactory<B> for F
where
    F: Fn(&BuildContext) -> Result<B, BuildError> + Send + Sync + 'static,
{
    fn build(&self, ctx: &BuildContext) -> Result<B, BuildError> {
        self(ctx)
    }
}

/// What the supervisor does when a store actor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Most restarts within `window`; one more and the store is left `Failed`.
    pub max_restarts: u32,
    /// The window over which restarts are counted.
    pub window: Duration,
    /// Delay before the first restart; doubled for each further restart inside the window.
    pub initial_backoff: Duration,
    /// Longest delay between restarts.
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    /// 5 restarts per minute, backoff 10 ms doubling up to 2 s.
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            window: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RestartPolicy {
    /// Delay before the `nth` restart inside the window (1-based).
    pub fn backoff(&self, nth: u32) -> Duration {
        let doublings = nth.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A store's build recipe with its types erased, so the registry can rebuild any store.
pub(crate) trait StoreRuntime: Send + Sync + 'static {
    fn slot(&self) -> Arc<dyn SlotView>;
    /// Runs the factory (may be slow: call it off the registry actor).
    fn build(&self, ctx: &BuildContext) -> Result<Box<dyn PreparedStore>, BuildError>;
}

/// A built backend waiting to be spawned as an actor under a supervisor.
pub(crate) trait PreparedStore: Send + 'static {
    /// Spawns the actor linked to `supervisor` and installs it in its slot.
    fn spawn(
        self: Box<Self>,
        supervisor: ActorCell,
    ) -> BoxFuture<'static, Result<ActorCell, String>>;
}

pub(crate) struct TypedRuntime<P: Protocol, B> {
    pub slot: Arc<StoreSlot<P>>,
    pub factory: Box<dyn StoreFactory<B>>,
}

impl<P: Protocol, B: IntoCopies<P>> StoreRuntime for TypedRuntime<P, B> {
    fn slot(&self) -> Arc<dyn SlotView> {
        self.slot.clone()
    }

    fn build(&self, ctx: &BuildContext) -> Result<Box<dyn PreparedStore>, BuildError> {
        // Both copies of the read view are made here, off the registry actor: the second is a
        // clone of the first (same hash seeds, same contents), so the copies stay equal.
        let copies = self.factory.build(ctx)?.into_copies();
        Ok(Box::new(Prepared {
            slot: self.slot.clone(),
            copies,
        }))
    }
}

struct Prepared<P: Protocol> {
    slot: Arc<StoreSlot<P>>,
    copies: [Box<P::Backend>; 2],
}

impl<P: Protocol> PreparedStore for Prepared<P> {
    fn spawn(
        self: Box<Self>,
        supervisor: ActorCell,
    ) -> BoxFuture<'static, Result<ActorCell, String>> {
        let Prepared { slot, copies } = *self;
        Box::pin(async move {
            let start = StoreStart {
                slot: slot.clone(),
                copies,
            };
            let (actor, _join) =
                Actor::spawn_linked(None, StoreActor::<P>::new(), start, supervisor)
                    .await
                    .map_err(|e| e.to_string())?;
            let cell = actor.get_cell();
            slot.install(actor);
            Ok(cell)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RestartPolicy {
            max_restarts: 10,
            window: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(10));
        assert_eq!(p.backoff(2), Duration::from_millis(20));
        assert_eq!(p.backoff(3), Duration::from_millis(40));
        assert_eq!(p.backoff(4), Duration::from_millis(50));
        assert_eq!(p.backoff(400), Duration::from_millis(50));
    }
}
