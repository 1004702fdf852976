//! The registry actor: the one place that knows which stores exist, their metadata and owners,
//! and the supervisor of every store actor (they are spawned linked to it).
//!
//! When a store actor panics: its slot is emptied at once (callers get `StoreUnhealthy`, never a
//! hang), the failure is recorded, and after a backoff the store's factory rebuilds the state off
//! the registry actor (a blocking task) before a new actor is spawned and installed in the same
//! slot. More than `max_restarts` failures within the policy's window leave the store `Failed`.

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};

use crate::protocol::answer;
use crate::registry::error::RegistrationError;
use crate::registry::metadata::{StoreKind, StoreMetadata};
use crate::slot::{Lifecycle, SlotView};
use crate::supervision::{BuildContext, BuildError, PreparedStore, RestartPolicy, StoreRuntime};

/// A store being registered, everything built and checked except the name's uniqueness.
pub(crate) struct Registration {
    pub name: &'static str,
    pub kind: StoreKind,
    pub metadata: StoreMetadata,
    pub runtime: Arc<dyn StoreRuntime>,
    pub prepared: Box<dyn PreparedStore>,
    pub policy: RestartPolicy,
    /// `TypeId` of a writable store's type (what `get_custom(..).typed::<S>()` checks).
    pub writable_type: Option<TypeId>,
    /// Applied to the slot once the name is accepted: (call timeout, degraded window).
    pub timeouts: (Duration, Duration),
}

/// What the registry hands out about a registered store.
#[derive(Clone)]
pub(crate) struct EntryView {
    pub slot: Arc<dyn SlotView>,
    pub metadata: StoreMetadata,
    pub writable_type: Option<TypeId>,
}

pub(crate) enum RegistryMsg {
    Register(
        Box<Registration>,
        RpcReplyPort<Result<(), RegistrationError>>,
    ),
    Lookup(String, RpcReplyPort<Option<EntryView>>),
    List(RpcReplyPort<Vec<String>>),
    RestartDue {
        name: &'static str,
        generation: u64,
    },
    Rebuilt {
        name: &'static str,
        generation: u64,
        result: Result<Box<dyn PreparedStore>, BuildError>,
    },
    Shutdown(RpcReplyPort<()>),
}

struct Entry {
    view: EntryView,
    runtime: Arc<dyn StoreRuntime>,
    policy: RestartPolicy,
    actor: Option<ActorCell>,
    /// Bumped on every failure; a scheduled restart for an older generation is stale.
    generation: u64,
    /// Failures inside the policy window (oldest first).
    failures: VecDeque<Instant>,
    /// Successful rebuilds so far.
    rebuilds: u64,
    last_failure: Option<String>,
}

pub(crate) struct RegistryState {
    entries: BTreeMap<&'static str, Entry>,
    by_actor: HashMap<ActorId, &'static str>,
    shutting_down: bool,
}

pub(crate) struct RegistryActor;

impl Actor for RegistryActor {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<RegistryMsg>,
        _args: (),
    ) -> Result<RegistryState, ActorProcessingErr> {
        Ok(RegistryState {
            entries: BTreeMap::new(),
            by_actor: HashMap::new(),
            shutting_down: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RegistryMsg>,
        message: RegistryMsg,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RegistryMsg::Register(registration, reply) => {
                let outcome = register(&myself, state, *registration).await;
                answer(reply, outcome);
            }
            RegistryMsg::Lookup(name, reply) => {
                let view = state.entries.get(name.as_str()).map(|e| {
                    let mut view = e.view.clone();
                    let stats = view.slot.supervision_stats();
                    view.metadata.lifecycle = stats.lifecycle;
                    view.metadata.restarts = stats.restarts;
                    view
                });
                answer(reply, view);
            }
            RegistryMsg::List(reply) => {
                answer(
                    reply,
                    state.entries.keys().map(|k| (*k).to_owned()).collect(),
                );
            }
            RegistryMsg::RestartDue { name, generation } => {
                restart_due(&myself, state, name, generation);
            }
            RegistryMsg::Rebuilt {
                name,
                generation,
                result,
            } => rebuilt(&myself, state, name, generation, result).await,
            RegistryMsg::Shutdown(reply) => {
                shutdown(state).await;
                answer(reply, ());
                myself.stop(Some("shutdown".into()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RegistryMsg>,
        event: SupervisionEvent,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                let Some(name) = state.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                tracing::error!(store = name, %error, "store actor failed; restarting");
                failed(&myself, state, name, error.to_string());
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let Some(name) = state.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                if let Some(entry) = state.entries.get_mut(name) {
                    entry.actor = None;
                    if !state.shutting_down {
                        tracing::warn!(store = name, ?reason, "store actor stopped");
                        entry.view.slot.vacate(Lifecycle::Stopped, reason);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

async fn register(
    myself: &ActorRef<RegistryMsg>,
    state: &mut RegistryState,
    r: Registration,
) -> Result<(), RegistrationError> {
    if state.shutting_down {
        return Err(RegistrationError::RegistryDown);
    }
    if state.entries.contains_key(r.name) {
        return Err(RegistrationError::Duplicate(r.name.to_owned()));
    }
    let slot = r.runtime.slot();
    slot.set_timeouts(r.timeouts.0, r.timeouts.1);
    let cell = r
        .prepared
        .spawn(myself.get_cell())
        .await
        .map_err(|reason| RegistrationError::Spawn {
            name: r.name.to_owned(),
            reason,
        })?;
    state.by_actor.insert(cell.get_id(), r.name);
    tracing::info!(store = r.name, kind = ?r.kind, "store registered");
    state.entries.insert(
        r.name,
        Entry {
            view: EntryView {
                slot,
                metadata: r.metadata,
                writable_type: r.writable_type,
            },
            runtime: r.runtime,
            policy: r.policy,
            actor: Some(cell),
            generation: 0,
            failures: VecDeque::new(),
            rebuilds: 0,
            last_failure: None,
        },
    );
    Ok(())
}

/// A store went down (panic, or its rebuild failed): empty its slot and schedule a restart, or
/// give up if it failed too often.
fn failed(
    myself: &ActorRef<RegistryMsg>,
    state: &mut RegistryState,
    name: &'static str,
    error: String,
) {
    let Some(entry) = state.entries.get_mut(name) else {
        return;
    };
    entry.actor = None;
    entry.generation += 1;
    let at = Instant::now();
    entry.failures.push_back(at);
    while entry
        .failures
        .front()
        .is_some_and(|t| at.duration_since(*t) > entry.policy.window)
    {
        entry.failures.pop_front();
    }
    entry.last_failure = Some(error.clone());
    let recent = u32::try_from(entry.failures.len()).unwrap_or(u32::MAX);
    if state.shutting_down {
        entry.view.slot.vacate(Lifecycle::Stopped, Some(error));
        return;
    }
    if recent > entry.policy.max_restarts {
        tracing::error!(
            store = name,
            failures = recent,
            "store keeps failing; giving up"
        );
        entry.view.slot.vacate(
            Lifecycle::Failed,
            Some(format!(
                "gave up after {recent} failures within {:?}: {error}",
                entry.policy.window
            )),
        );
        return;
    }
    entry.view.slot.vacate(Lifecycle::Restarting, Some(error));
    let delay = entry.policy.backoff(recent);
    let generation = entry.generation;
    let registry = myself.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = registry.send_message(RegistryMsg::RestartDue { name, generation });
    });
}

fn restart_due(
    myself: &ActorRef<RegistryMsg>,
    state: &mut RegistryState,
    name: &'static str,
    generation: u64,
) {
    let Some(entry) = state.entries.get(name) else {
        return;
    };
    if entry.generation != generation || entry.actor.is_some() || state.shutting_down {
        return;
    }
    let ctx = BuildContext {
        store: name,
        attempt: entry.rebuilds + 1,
        previous_failure: entry.last_failure.clone(),
    };
    let runtime = entry.runtime.clone();
    let registry = myself.clone();
    // The factory may be slow (parsing, restoring a snapshot): never on the registry actor.
    tokio::task::spawn_blocking(move || {
        let result = runtime.build(&ctx);
        let _ = registry.send_message(RegistryMsg::Rebuilt {
            name,
            generation,
            result,
        });
    });
}

async fn rebuilt(
    myself: &ActorRef<RegistryMsg>,
    state: &mut RegistryState,
    name: &'static str,
    generation: u64,
    result: Result<Box<dyn PreparedStore>, BuildError>,
) {
    let Some(entry) = state.entries.get_mut(name) else {
        return;
    };
    if entry.generation != generation || entry.actor.is_some() || state.shutting_down {
        return;
    }
    let spawned = match result {
        Ok(prepared) => prepared.spawn(myself.get_cell()).await,
        Err(e) => Err(e.to_string()),
    };
    match spawned {
        Ok(cell) => {
            state.by_actor.insert(cell.get_id(), name);
            entry.actor = Some(cell);
            entry.rebuilds += 1;
            entry.view.slot.record_restart();
            tracing::info!(store = name, restarts = entry.rebuilds, "store restarted");
        }
        Err(error) => {
            tracing::error!(store = name, %error, "store rebuild failed");
            failed(myself, state, name, format!("rebuild failed: {error}"));
        }
    }
}

async fn shutdown(state: &mut RegistryState) {
    state.shutting_down = true;
    // Writable stores first (they may depend on core data), then core stores.
    let mut order: Vec<&'static str> = state
        .entries
        .iter()
        .filter(|(_, e)| e.view.metadata.kind == StoreKind::Writable)
        .map(|(n, _)| *n)
        .collect();
    order.extend(
        state
            .entries
            .iter()
            .filter(|(_, e)| e.view.metadata.kind == StoreKind::Core)
            .map(|(n, _)| *n),
    );
    for name in order {
        let Some(entry) = state.entries.get_mut(name) else {
            continue;
        };
        entry.view.slot.vacate(Lifecycle::Stopped, None);
        if let Some(cell) = entry.actor.take() {
            state.by_actor.remove(&cell.get_id());
            if let Err(e) = cell
                .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(2)))
                .await
            {
                tracing::warn!(store = name, error = %e, "store did not stop in time");
            }
        }
    }
}
