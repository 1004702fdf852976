//! The one actor type behind every store: owns a backend, handles one message at a time, so the
//! backend needs no lock. Generic over the protocol (message types) and the backend (state).

use std::marker::PhantomData;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::clock::now;
use crate::protocol::{ApplyReport, Protocol, StoreBackend, StoreMsg, answer};

/// The actor owning a backend `B` that speaks protocol `P`.
pub(crate) struct StoreActor<P, B> {
    _types: PhantomData<fn() -> (P, B)>,
}

impl<P, B> StoreActor<P, B> {
    pub fn new() -> Self {
        StoreActor {
            _types: PhantomData,
        }
    }
}

impl<P: Protocol, B: StoreBackend<P>> Actor for StoreActor<P, B> {
    type Msg = StoreMsg<P>;
    type State = B;
    type Arguments = B;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        backend: B,
    ) -> Result<B, ActorProcessingErr> {
        Ok(backend)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        backend: &mut B,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            StoreMsg::Query(query) => backend.handle_query(query, now()),
            StoreMsg::Apply { batches, reply } => {
                let t = now();
                let mut report = ApplyReport::default();
                for update in batches.into_iter().flatten() {
                    if backend.apply_update(update, t) {
                        report.applied += 1;
                    } else {
                        report.rejected += 1;
                    }
                }
                backend.after_apply(t);
                answer(reply, report);
            }
            StoreMsg::Health(reply) => answer(reply, backend.health(now())),
            StoreMsg::Metrics(reply) => answer(reply, backend.metrics()),
            StoreMsg::Inspect(visit) => visit(backend),
            #[cfg(feature = "fault-injection")]
            StoreMsg::Panic => panic!("fault injection: store actor told to panic"),
        }
        Ok(())
    }
}
