//! The detector engine: gives each event to every detector concurrently, as tokio tasks, with a
//! bound on how many (detector, event) tasks run at once and a time limit per detector call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::detect::output::OutputContainer;
use crate::detect::{
    Detector, DetectorError, DetectorLogger, DetectorOutput, DetectorParams, Event,
};
use crate::registry::Registry;
use crate::stores::container::ContainerHandle;

/// Engine limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Most (detector, event) tasks running at once; `run` stops taking events when reached.
    pub max_in_flight: usize,
    /// Longest a detector may take for one event before its result is dropped (counted).
    pub detector_timeout: Duration,
}

impl Default for EngineOptions {
    /// 256 tasks in flight, 5 s per detector call.
    fn default() -> Self {
        EngineOptions {
            max_in_flight: 256,
            detector_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters of the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Events taken.
    pub events: u64,
    /// Findings reported.
    pub outputs: u64,
    /// Detector calls that returned an error.
    pub detector_errors: u64,
    /// Detector calls that ran out of time.
    pub detector_timeouts: u64,
}

#[derive(Default)]
struct Counters {
    events: AtomicU64,
    outputs: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
}

/// One detector's counters.
#[derive(Default)]
struct DetectorCounters {
    evaluations: AtomicU64,
    outputs: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
}

/// One detector's counters, as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorStats {
    /// Events given to it.
    pub evaluations: u64,
    /// Findings it reported.
    pub outputs: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Calls that ran out of time.
    pub timeouts: u64,
}

/// One detector of the running set and its counters.
type Judge = (Arc<dyn Detector>, Arc<DetectorCounters>);

/// Runs a set of initialised detectors over events; the set can be replaced while it runs
/// ([`DetectorEngine::replace_detectors`], e.g. on a configuration reload): an event is judged
/// by the set current when it was taken.
#[derive(Clone)]
pub struct DetectorEngine {
    /// The running set, each detector with its own counters (kept across a reload for a
    /// detector of the same name).
    detectors: Arc<arc_swap::ArcSwap<Vec<Judge>>>,
    permits: Arc<Semaphore>,
    options: EngineOptions,
    counters: Arc<Counters>,
    /// Describes each finding's container.
    containers: ContainerHandle,
}

impl std::fmt::Debug for DetectorEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorEngine")
            .field("detectors", &self.detector_names())
            .field("options", &self.options)
            .finish()
    }
}

impl DetectorEngine {
    /// Initialises every detector with the registry; the first failure stops the start.
    pub async fn start(
        registry: &Registry,
        detectors: Vec<Box<dyn Detector>>,
        options: EngineOptions,
    ) -> Result<DetectorEngine, DetectorError> {
        let ready = Self::init_all(registry, detectors).await?;
        let ready = ready
            .into_iter()
            .map(|d| (d, Arc::new(DetectorCounters::default())))
            .collect();
        Ok(DetectorEngine {
            detectors: Arc::new(arc_swap::ArcSwap::from_pointee(ready)),
            permits: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            options,
            counters: Arc::new(Counters::default()),
            containers: registry.containers(),
        })
    }

    /// Initialises `detectors` and makes them the set that judges the next events; on an
    /// initialisation failure the running set stays.
    pub async fn replace_detectors(
        &self,
        registry: &Registry,
        detectors: Vec<Box<dyn Detector>>,
    ) -> Result<(), DetectorError> {
        let ready = Self::init_all(registry, detectors).await?;
        let running = self.detectors.load_full();
        let ready = ready
            .into_iter()
            .map(|d| {
                let counters = running
                    .iter()
                    .find(|(old, _)| old.name() == d.name())
                    .map_or_else(Default::default, |(_, c)| c.clone());
                (d, counters)
            })
            .collect();
        self.detectors.store(Arc::new(ready));
        Ok(())
    }

    async fn init_all(
        registry: &Registry,
        detectors: Vec<Box<dyn Detector>>,
    ) -> Result<Vec<Arc<dyn Detector>>, DetectorError> {
        let mut ready: Vec<Arc<dyn Detector>> = Vec::with_capacity(detectors.len());
        for mut detector in detectors {
            let params = DetectorParams {
                registry: registry.clone(),
                logger: DetectorLogger::new(detector.name()),
            };
            detector.init(params).await?;
            tracing::info!(detector = detector.name(), "detector initialised");
            ready.push(Arc::from(detector));
        }
        Ok(ready)
    }

    /// Names of the detectors, in registration order.
    pub fn detector_names(&self) -> Vec<&'static str> {
        self.detectors
            .load()
            .iter()
            .map(|(d, _)| d.name())
            .collect()
    }

    /// Counters so far.
    pub fn stats(&self) -> EngineStats {
        let c = &self.counters;
        EngineStats {
            events: c.events.load(Ordering::Relaxed),
            outputs: c.outputs.load(Ordering::Relaxed),
            detector_errors: c.errors.load(Ordering::Relaxed),
            detector_timeouts: c.timeouts.load(Ordering::Relaxed),
        }
    }

    /// Each detector's counters, by name, in registration order.
    pub fn stats_by_detector(&self) -> Vec<(&'static str, DetectorStats)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.detectors
            .load()
            .iter()
            .map(|(d, c)| {
                (
                    d.name(),
                    DetectorStats {
                        evaluations: get(&c.evaluations),
                        outputs: get(&c.outputs),
                        errors: get(&c.errors),
                        timeouts: get(&c.timeouts),
                    },
                )
            })
            .collect()
    }

    /// Gives `event` to every detector concurrently and returns all their findings (in
    /// detector order).
    pub async fn process(&self, event: Event) -> Vec<DetectorOutput> {
        self.counters.events.fetch_add(1, Ordering::Relaxed);
        let event = Arc::new(event);
        let mut tasks = JoinSet::new();
        let detectors = self.detectors.load_full();
        for (index, (detector, own)) in detectors.iter().enumerate() {
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                break;
            };
            let detector = detector.clone();
            let own = own.clone();
            let event = event.clone();
            let engine = self.clone();
            tasks.spawn(async move {
                let found = engine.judge(&own, detector.as_ref(), &event).await;
                drop(permit);
                (index, found)
            });
        }
        let mut results: Vec<(usize, Vec<DetectorOutput>)> = Vec::with_capacity(detectors.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(found) => results.push(found),
                Err(e) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "detector task panicked");
                }
            }
        }
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().flat_map(|(_, o)| o).collect()
    }

    /// Names each finding's container as the container store knows it now (one lookup per
    /// container; an unknown one keeps its ID, marked `known: false`).
    async fn describe_containers(&self, outputs: &mut [DetectorOutput]) {
        let mut known: Vec<OutputContainer> = Vec::new();
        for output in outputs.iter_mut() {
            let Some(id) = output.container_id.clone() else {
                continue;
            };
            if output.container.is_some() {
                continue;
            }
            let described = match known.iter().find(|c| c.id == id) {
                Some(c) => c.clone(),
                None => {
                    let c = match self.containers.get_container(&id).await {
                        Ok(info) => OutputContainer::from(info),
                        Err(_) => OutputContainer {
                            id,
                            ..OutputContainer::default()
                        },
                    };
                    known.push(c.clone());
                    c
                }
            };
            output.container = Some(described);
        }
    }

    async fn judge(
        &self,
        own: &DetectorCounters,
        detector: &dyn Detector,
        event: &Event,
    ) -> Vec<DetectorOutput> {
        let bump = |pick: fn(&DetectorCounters) -> &AtomicU64, n: u64| {
            pick(own).fetch_add(n, Ordering::Relaxed);
        };
        bump(|c| &c.evaluations, 1);
        match tokio::time::timeout(self.options.detector_timeout, detector.on_event(event)).await {
            Ok(Ok(mut outputs)) => {
                self.counters
                    .outputs
                    .fetch_add(outputs.len() as u64, Ordering::Relaxed);
                bump(|c| &c.outputs, outputs.len() as u64);
                self.describe_containers(&mut outputs).await;
                outputs
            }
            Ok(Err(e)) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                bump(|c| &c.errors, 1);
                tracing::warn!(detector = detector.name(), error = %e, "detector failed on an event");
                Vec::new()
            }
            Err(_) => {
                self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                bump(|c| &c.timeouts, 1);
                tracing::warn!(detector = detector.name(), "detector timed out on an event");
                Vec::new()
            }
        }
    }

    /// Takes events from `events` until it closes, judging up to `max_in_flight` (detector,
    /// event) pairs at once, and sends every finding to `outputs`. Returns when every event
    /// taken has been judged.
    pub async fn run(
        &self,
        mut events: mpsc::Receiver<Event>,
        outputs: mpsc::Sender<DetectorOutput>,
    ) {
        let mut running = JoinSet::new();
        while let Some(event) = events.recv().await {
            self.counters.events.fetch_add(1, Ordering::Relaxed);
            let event = Arc::new(event);
            let detectors = self.detectors.load_full();
            for (detector, own) in detectors.iter() {
                // Waiting for a permit here is the backpressure: no more events are taken.
                let Ok(permit) = self.permits.clone().acquire_owned().await else {
                    return;
                };
                let (detector, own) = (detector.clone(), own.clone());
                let event = event.clone();
                let engine = self.clone();
                let outputs = outputs.clone();
                running.spawn(async move {
                    for found in engine.judge(&own, detector.as_ref(), &event).await {
                        if outputs.send(found).await.is_err() {
                            break;
                        }
                    }
                    drop(permit);
                });
            }
            while let Some(joined) = running.try_join_next() {
                self.count_panic(joined);
            }
        }
        while let Some(joined) = running.join_next().await {
            self.count_panic(joined);
        }
    }

    /// A detector task that panicked is a detector error, counted and logged, never silent.
    fn count_panic(&self, joined: Result<(), tokio::task::JoinError>) {
        if let Err(e) = joined {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "detector task panicked");
        }
    }
}
