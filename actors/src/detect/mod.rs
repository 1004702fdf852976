//! Detectors: the [`Detector`] trait (the reference's `Init(params)` / `OnEvent(event)`), the
//! [`Event`] they receive, the serialisable [`DetectorOutput`] they report, the [`engine`] that
//! runs them concurrently, and two built-in detectors using several stores.

pub mod engine;
pub mod event;
pub mod output;
pub mod shell_from_service;
pub mod tmp_exec_in_container;

use std::future::Future;
use std::pin::Pin;

pub use engine::{DetectorEngine, DetectorStats, EngineOptions, EngineStats};
pub use event::{Event, EventKind};
pub use output::{DetectorOutput, OutputContainer, OutputValue, Severity};

use crate::registry::Registry;

/// A boxed future, as the dyn-compatible trait methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A detector could not start or could not judge an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("detector {detector}: {reason}")]
pub struct DetectorError {
    /// The detector.
    pub detector: String,
    /// What went wrong.
    pub reason: String,
}

impl DetectorError {
    /// An error of `detector` because of `reason`.
    pub fn new(detector: &str, reason: impl Into<String>) -> Self {
        DetectorError {
            detector: detector.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Logging for one detector: `tracing` events tagged with the detector's name.
#[derive(Debug, Clone)]
pub struct DetectorLogger {
    detector: &'static str,
}

impl DetectorLogger {
    /// A logger for `detector`.
    pub fn new(detector: &'static str) -> Self {
        DetectorLogger { detector }
    }
    /// Debug message.
    pub fn debug(&self, message: &str) {
        tracing::debug!(detector = self.detector, "{message}");
    }
    /// Informational message.
    pub fn info(&self, message: &str) {
        tracing::info!(detector = self.detector, "{message}");
    }
    /// Warning.
    pub fn warn(&self, message: &str) {
        tracing::warn!(detector = self.detector, "{message}");
    }
}

/// What a detector gets at start: the registry (take the store handles you need now, once) and
/// a logger.
#[derive(Debug, Clone)]
pub struct DetectorParams {
    /// The datastores.
    pub registry: Registry,
    /// Logging tagged with the detector's name.
    pub logger: DetectorLogger,
}

/// A detector: initialised once, then given every event.
pub trait Detector: Send + Sync + 'static {
    /// Stable name, used in outputs and logs.
    fn name(&self) -> &'static str;

    /// Takes the store handles it needs (and registers writable stores it owns).
    fn init(&mut self, params: DetectorParams) -> BoxFuture<'_, Result<(), DetectorError>>;

    /// Judges one event; an empty list means nothing to report.
    fn on_event<'a>(
        &'a self,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<Vec<DetectorOutput>, DetectorError>>;
}

/// The last path component of `path` (`/usr/bin/bash` → `bash`).
pub(crate) fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
