//! What the registry tells about a store (`metadata(name)`), and how stores are configured at
//! registration.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use watchpost_core::EpochNanos;

use crate::intake::IntakeOptions;
use crate::slot::Lifecycle;
use crate::supervision::RestartPolicy;

/// Core store (one of the six typed accessors) or a writable store registered by a detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// `process`, `container`, `system`, `syscall`, `symbol`, `dns`.
    Core,
    /// Registered with `register_writable_store`.
    Writable,
}

/// The reference's `DataStoreMetadata`, plus what the supervisor knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreMetadata {
    /// Registered name.
    pub name: String,
    /// What the store holds.
    pub description: String,
    /// Core or writable.
    pub kind: StoreKind,
    /// Rust type of the backend running behind the actor.
    pub backend: String,
    /// When it registered, epoch ns.
    pub registered_at: EpochNanos,
    /// Where it is in its life now.
    pub lifecycle: Lifecycle,
    /// Restarts after panics so far.
    pub restarts: u64,
    /// Call timeout of handles, ms.
    pub call_timeout_ms: u64,
    /// Batches the intake queue holds.
    pub intake_queue_batches: usize,
}

/// Per-store settings given at registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Call timeout of handles (None: the registry's default).
    pub call_timeout: Option<Duration>,
    /// How long a restart or an intake overflow keeps the store reported as degraded.
    pub degraded_window: Duration,
    /// Intake sizes.
    pub intake: IntakeOptions,
    /// What to do when the actor panics.
    pub restart: RestartPolicy,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            call_timeout: None,
            degraded_window: crate::slot::DEFAULT_DEGRADED_WINDOW,
            intake: IntakeOptions::default(),
            restart: RestartPolicy::default(),
        }
    }
}

/// Registry-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Default call timeout of every handle.
    pub call_timeout: Duration,
}

impl Default for RegistryConfig {
    /// 1 s call timeout.
    fn default() -> Self {
        RegistryConfig {
            call_timeout: Duration::from_secs(1),
        }
    }
}
