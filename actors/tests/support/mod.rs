//! Shared test pieces: a registry with the real core syscall and system stores, a small writable
//! store (the kind a detector registers), and polling with a deadline.

#![allow(dead_code)]

pub mod procfs;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use watchpost_actors::adapters::system::SystemFacts;
use watchpost_actors::view::Reads;
use watchpost_actors::{
    BuildError, DataStoreMetrics, ErrorKind, HealthInfo, Registry, RegistryConfig, StoreError,
    StoreOptions, WritableStore,
};
use watchpost_core::metrics::StoreMetrics;
use watchpost_core::syscall::SyscallStore;
use watchpost_core::system_info::SystemInfo as CoreSystemInfo;
use watchpost_core::{EpochNanos, HealthInfo as CoreHealth};

/// A registry with a 1 s default timeout.
pub async fn registry() -> Registry {
    Registry::start(RegistryConfig::default())
        .await
        .expect("registry starts")
}

/// Registers the real core syscall store of this machine's architecture.
pub async fn register_syscalls(registry: &Registry) {
    registry
        .register_syscall_store(
            |_: &watchpost_actors::BuildContext| {
                SyscallStore::for_host()
                    .ok_or_else(|| BuildError::new("syscall", "no table for this architecture"))
            },
            StoreOptions::default(),
        )
        .await
        .expect("syscall store registers");
}

/// Registers a system store with facts read from this machine.
pub async fn register_system(registry: &Registry) {
    registry
        .register_system_store(
            |_: &watchpost_actors::BuildContext| {
                let mut info = CoreSystemInfo::new();
                info.set_architecture(std::env::consts::ARCH)
                    .map_err(|e| BuildError::new("system", e.to_string()))?;
                let release =
                    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
                info.set_kernel_release(release.trim())
                    .map_err(|e| BuildError::new("system", e.to_string()))?;
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                info.set_hostname(host.trim())
                    .map_err(|e| BuildError::new("system", e.to_string()))?;
                Ok(SystemFacts::new(info))
            },
            StoreOptions::default(),
        )
        .await
        .expect("system store registers");
}

/// Queues `batch` on `intake` and waits (at most 5 s) until the store has applied or refused all
/// of it, as the handle's intake counters say. Panics if it does not happen in time.
pub async fn submit_and_wait<P: watchpost_actors::protocol::Protocol>(
    handle: &watchpost_actors::StoreHandle<P>,
    intake: &watchpost_actors::IntakeSender<P::Update>,
    batch: Vec<P::Update>,
) {
    let done = |h: &watchpost_actors::StoreHandle<P>| {
        let s = h.supervision();
        s.intake_applied_updates + s.intake_rejected_updates
    };
    let target = done(handle) + batch.len() as u64;
    if intake.submit(batch).await.is_err() {
        panic!("intake of {} refused the batch", intake.store());
    }
    let applied = eventually(Duration::from_secs(30), || {
        let reached = done(handle) >= target;
        async move { reached }
    })
    .await;
    assert!(applied, "store {} applied the batch in time", handle.name());
}

/// Polls `check` until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A small bounded key/value store, the kind a detector registers to share state.
#[derive(Debug, Default, Clone)]
pub struct Notes {
    entries: BTreeMap<String, String>,
    capacity: usize,
    metrics: StoreMetrics,
}

impl Notes {
    pub fn with_capacity(capacity: usize) -> Self {
        Notes {
            capacity,
            ..Default::default()
        }
    }
}

/// Reads of [`Notes`].
#[derive(Debug)]
pub enum NotesRead {
    Get(String),
    Len,
}

/// Writes of [`Notes`].
#[derive(Debug)]
pub enum NotesWrite {
    Put(String, String),
    /// Blocks the store's actor until the test opens the gate: a stall whose length does not
    /// depend on the machine's speed.
    Hold(Gate),
}

/// Holds a store's actor inside a write until the test opens it. The test waits for
/// [`Gate::entered`] (the actor is blocked now), does what must happen while the store is busy,
/// then calls [`Gate::open`].
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<(Mutex<GateState>, Condvar)>);

#[derive(Debug, Default)]
pub struct GateState {
    entered: bool,
    open: bool,
}

impl Gate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Called on the actor's thread: says "entered", then blocks until opened. A test that
    /// failed before opening must not hang the process forever: after a minute it lets go.
    fn pass(&self) {
        let (state, changed) = &*self.0;
        let mut s = state.lock().unwrap();
        s.entered = true;
        changed.notify_all();
        let (_s, _timed_out) = changed
            .wait_timeout_while(s, Duration::from_secs(60), |s| !s.open)
            .unwrap();
    }

    /// Waits (up to a generous deadline) until the actor is blocked in the gate.
    pub async fn entered(&self) {
        let gate = self.clone();
        let entered = tokio::task::spawn_blocking(move || {
            let (state, changed) = &*gate.0;
            let s = state.lock().unwrap();
            let (s, _) = changed
                .wait_timeout_while(s, Duration::from_secs(60), |s| !s.entered)
                .unwrap();
            s.entered
        })
        .await
        .unwrap();
        assert!(entered, "the store's actor never reached the gate");
    }

    /// Lets the actor go on.
    pub fn open(&self) {
        let (state, changed) = &*self.0;
        state.lock().unwrap().open = true;
        changed.notify_all();
    }
}

impl WritableStore for Notes {
    type Read = NotesRead;
    type ReadReply = Result<String, StoreError>;
    type Write = NotesWrite;
    type WriteReply = Result<(), StoreError>;
    const DESCRIPTION: &'static str = "notes shared between test detectors";

    fn read(&self, request: NotesRead, reads: &mut Reads<'_>) -> Result<String, StoreError> {
        match request {
            NotesRead::Get(key) => {
                let found = self.entries.get(&key).cloned();
                reads.lookup(found.is_some());
                found.ok_or(StoreError::not_found("notes", "get"))
            }
            NotesRead::Len => {
                reads.success();
                Ok(self.entries.len().to_string())
            }
        }
    }

    fn write(&mut self, request: &NotesWrite, now: EpochNanos) -> Result<(), StoreError> {
        match request {
            NotesWrite::Put(k, v) => {
                if self.entries.len() >= self.capacity && !self.entries.contains_key(k) {
                    self.metrics.error(now);
                    return Err(StoreError::new("notes", "put", ErrorKind::InvalidArgument));
                }
                self.entries.insert(k.clone(), v.clone());
                self.metrics.success(now);
                Ok(())
            }
            NotesWrite::Hold(gate) => {
                gate.pass();
                self.metrics.success(now);
                Ok(())
            }
        }
    }

    fn accepted(reply: &Result<(), StoreError>) -> bool {
        reply.is_ok()
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        CoreHealth::healthy(now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        self.metrics.snapshot(self.entries.len())
    }
}

/// Another writable store type, to check typed access refuses the wrong type.
#[derive(Debug, Default, Clone)]
pub struct Counter(u64, StoreMetrics);

impl WritableStore for Counter {
    type Read = ();
    type ReadReply = u64;
    type Write = u64;
    type WriteReply = u64;
    const DESCRIPTION: &'static str = "a counter";

    fn read(&self, _: (), reads: &mut Reads<'_>) -> u64 {
        reads.success();
        self.0
    }
    fn write(&mut self, add: &u64, now: EpochNanos) -> u64 {
        self.1.success(now);
        self.0 += add;
        self.0
    }
    fn accepted(_: &u64) -> bool {
        true
    }
    fn health(&self, now: EpochNanos) -> HealthInfo {
        CoreHealth::healthy(now)
    }
    fn metrics(&self) -> DataStoreMetrics {
        self.1.snapshot(1)
    }
}

pub fn notes_factory(
    capacity: usize,
) -> impl Fn(&watchpost_actors::BuildContext) -> Result<Notes, BuildError> + Send + Sync + 'static {
    move |_| Ok(Notes::with_capacity(capacity))
}
