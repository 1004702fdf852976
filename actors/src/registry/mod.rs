//! [`Registry`]: the handle detectors and the daemon hold. Typed accessors to the six core stores
//! (synchronous, never fail: a store that is not there is a null store), registration of core and
//! writable stores, and introspection (`list`, `is_available`, `metadata`, `metrics`,
//! `get_custom`) answered by the registry actor.
//!
//! A detector asks the registry once (in `init`) and keeps the handles; each query then goes
//! straight to the store's actor.

mod actor;
mod error;
mod metadata;

use std::any::TypeId;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef, RpcReplyPort};
use watchpost_core::error::store_names;
use watchpost_core::{DataStoreMetrics, ErrorKind, HealthInfo, StoreError};

pub use error::RegistrationError;
pub use metadata::{RegistryConfig, StoreKind, StoreMetadata, StoreOptions};

use crate::clock::now;
use crate::handle::StoreHandle;
use crate::intake::{self, IntakeSender};
use crate::names;
use crate::protocol::{IntoCopies, Protocol};
use crate::slot::{Lifecycle, StoreSlot, SupervisionStats};
use crate::stores::container::{
    ContainerBackend, ContainerHandle, ContainerProtocol, ContainerUpdate,
};
use crate::stores::dns::{DnsBackend, DnsHandle, DnsPacket, DnsProtocol};
use crate::stores::process::{ProcessBackend, ProcessHandle, ProcessProtocol, ProcessUpdate};
use crate::stores::symbols::{SymbolBackend, SymbolHandle, SymbolProtocol, SymbolTableSwap};
use crate::stores::syscall::{SyscallBackend, SyscallHandle, SyscallProtocol};
use crate::stores::system::{SystemBackend, SystemHandle, SystemProtocol};
use crate::supervision::{BuildContext, StoreFactory, TypedRuntime};
use crate::writable::{ReadHandle, WritableProtocol, WritableStore, WriteHandle};
use actor::{EntryView, Registration, RegistryActor, RegistryMsg};

/// The name registry errors carry as their store.
pub const REGISTRY: &str = "registry";

const CORE_NAMES: [&str; 6] = [
    store_names::PROCESS,
    store_names::CONTAINER,
    store_names::SYSTEM,
    store_names::SYSCALL,
    store_names::SYMBOL,
    store_names::DNS,
];

/// The slots of the six core stores; they exist from the start (as null stores).
struct CoreSlots {
    process: Arc<StoreSlot<ProcessProtocol>>,
    container: Arc<StoreSlot<ContainerProtocol>>,
    system: Arc<StoreSlot<SystemProtocol>>,
    syscall: Arc<StoreSlot<SyscallProtocol>>,
    symbol: Arc<StoreSlot<SymbolProtocol>>,
    dns: Arc<StoreSlot<DnsProtocol>>,
}

/// The handle to the registry. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    actor: ActorRef<RegistryMsg>,
    core: Arc<CoreSlots>,
    config: Arc<RegistryConfig>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.config)
            .finish()
    }
}

/// The registry actor could not be started.
#[derive(Debug, thiserror::Error)]
#[error("starting the registry actor failed: {0}")]
pub struct StartError(String);

impl Registry {
    /// Starts the registry actor on the current tokio runtime, with every core store null.
    pub async fn start(config: RegistryConfig) -> Result<Registry, StartError> {
        let (actor, _join) = Actor::spawn(None, RegistryActor, ())
            .await
            .map_err(|e| StartError(e.to_string()))?;
        let t = config.call_timeout;
        let core = CoreSlots {
            process: Arc::new(StoreSlot::new(store_names::PROCESS, t)),
            container: Arc::new(StoreSlot::new(store_names::CONTAINER, t)),
            system: Arc::new(StoreSlot::new(store_names::SYSTEM, t)),
            syscall: Arc::new(StoreSlot::new(store_names::SYSCALL, t)),
            symbol: Arc::new(StoreSlot::new(store_names::SYMBOL, t)),
            dns: Arc::new(StoreSlot::new(store_names::DNS, t)),
        };
        Ok(Registry {
            actor,
            core: Arc::new(core),
            config: Arc::new(config),
        })
    }

    /// The registry's settings.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    // ----- typed accessors: never fail, no message sent -----

    /// The process store (a null store until one registers).
    pub fn processes(&self) -> ProcessHandle {
        StoreHandle::new(self.core.process.clone())
    }
    /// The container store.
    pub fn containers(&self) -> ContainerHandle {
        StoreHandle::new(self.core.container.clone())
    }
    /// The system store.
    pub fn system(&self) -> SystemHandle {
        StoreHandle::new(self.core.system.clone())
    }
    /// The syscall store.
    pub fn syscalls(&self) -> SyscallHandle {
        StoreHandle::new(self.core.syscall.clone())
    }
    /// The kernel symbol store.
    pub fn kernel_symbols(&self) -> SymbolHandle {
        StoreHandle::new(self.core.symbol.clone())
    }
    /// The DNS store.
    pub fn dns(&self) -> DnsHandle {
        StoreHandle::new(self.core.dns.clone())
    }

    // ----- registration -----

    /// Registers the process store; returns its bounded intake.
    pub async fn register_process_store<B: ProcessBackend + Clone>(
        &self,
        factory: impl StoreFactory<B>,
        options: StoreOptions,
    ) -> Result<IntakeSender<ProcessUpdate>, RegistrationError> {
        self.register_core::<ProcessProtocol, B>(
            self.core.process.clone(),
            "process tree: processes, children and ancestry",
            factory,
            options,
        )
        .await
    }

    /// Registers the container store; returns its bounded intake.
    pub async fn register_container_store<B: ContainerBackend + Clone>(
        &self,
        factory: impl StoreFactory<B>,
        options: StoreOptions,
    ) -> Result<IntakeSender<ContainerUpdate>, RegistrationError> {
        self.register_core::<ContainerProtocol, B>(
            self.core.container.clone(),
            "containers and their Kubernetes pods",
            factory,
            options,
        )
        .await
    }

    /// Registers the system store (immutable facts; no intake).
    pub async fn register_system_store<B: SystemBackend + Clone>(
        &self,
        factory: impl StoreFactory<B>,
        options: StoreOptions,
    ) -> Result<(), RegistrationError> {
        self.register_core::<SystemProtocol, B>(
            self.core.system.clone(),
            "immutable system facts",
            factory,
            options,
        )
        .await
        .map(drop)
    }

    /// Registers the syscall store (fixed tables; no intake).
    pub async fn register_syscall_store<B: SyscallBackend + Clone>(
        &self,
        factory: impl StoreFactory<B>,
        options: StoreOptions,
    ) -> Result<(), RegistrationError> {
        self.register_core::<SyscallProtocol, B>(
            self.core.syscall.clone(),
            "syscall numbers and names of the running architecture",
            factory,
            options,
        )
        .await
        .map(drop)
    }

    /// Registers the kernel symbol store; its intake takes whole-table swaps.
    pub async fn register_symbol_store<B: SymbolBackend + Clone>(
        &self,
        factory: impl StoreFactory<B>,
        options: StoreOptions,
    ) -> Result<IntakeSender<SymbolTableSwap>, RegistrationError> {
        self.register_core::<SymbolProtocol, B>(
            self.core.symbol.clone(),
            "kernel symbols: address to name and module",
            factory,
            options,
        )
        .await
    }

    /// Registers the DNS store; its intake takes observed response packets.
    pub async fn register_dns_store<B: DnsBackend + Clone>(
        &self,
        factory: impl StoreFactory<B>,
        options: StoreOptions,
    ) -> Result<IntakeSender<DnsPacket>, RegistrationError> {
        self.register_core::<DnsProtocol, B>(
            self.core.dns.clone(),
            "DNS answers observed on the wire",
            factory,
            options,
        )
        .await
    }

    /// Registers writable store `S` under `name` and returns the owner's write handle (the only
    /// one). Everybody else reads it through [`Registry::get_custom`]. The name must be
    /// non-empty, without surrounding whitespace, not a core store's name, and unique.
    pub async fn register_writable_store<S: WritableStore>(
        &self,
        name: &str,
        factory: impl StoreFactory<S>,
        options: StoreOptions,
    ) -> Result<WriteHandle<S>, RegistrationError> {
        names::validate(name).map_err(|reason| RegistrationError::InvalidName {
            name: name.to_owned(),
            reason,
        })?;
        if CORE_NAMES.contains(&name) {
            return Err(RegistrationError::ReservedName(name.to_owned()));
        }
        let name = names::intern(name);
        let slot: Arc<StoreSlot<WritableProtocol<S>>> =
            Arc::new(StoreSlot::new(name, self.timeout_of(&options)));
        let intake_options = options.intake;
        self.register_slot::<WritableProtocol<S>, S>(
            slot.clone(),
            StoreKind::Writable,
            S::DESCRIPTION,
            Some(TypeId::of::<S>()),
            factory,
            options,
        )
        .await?;
        let intake = intake::open(slot.clone(), intake_options);
        Ok(WriteHandle::new(slot, intake))
    }

    fn timeout_of(&self, options: &StoreOptions) -> Duration {
        options.call_timeout.unwrap_or(self.config.call_timeout)
    }

    async fn register_core<P: Protocol, B: IntoCopies<P>>(
        &self,
        slot: Arc<StoreSlot<P>>,
        description: &'static str,
        factory: impl StoreFactory<B>,
        options: StoreOptions,
    ) -> Result<IntakeSender<P::Update>, RegistrationError> {
        let intake_options = options.intake;
        self.register_slot::<P, B>(
            slot.clone(),
            StoreKind::Core,
            description,
            None,
            factory,
            options,
        )
        .await?;
        Ok(intake::open(slot, intake_options))
    }

    async fn register_slot<P: Protocol, B: IntoCopies<P>>(
        &self,
        slot: Arc<StoreSlot<P>>,
        kind: StoreKind,
        description: &'static str,
        writable_type: Option<TypeId>,
        factory: impl StoreFactory<B>,
        options: StoreOptions,
    ) -> Result<(), RegistrationError> {
        let name = slot.name;
        let call_timeout = self.timeout_of(&options);
        let runtime = Arc::new(TypedRuntime {
            slot,
            factory: Box::new(factory),
        });
        let ctx = BuildContext {
            store: name,
            attempt: 0,
            previous_failure: None,
        };
        let prepared = crate::supervision::StoreRuntime::build(runtime.as_ref(), &ctx)?;
        let metadata = StoreMetadata {
            name: name.to_owned(),
            description: description.to_owned(),
            kind,
            backend: std::any::type_name::<B>().to_owned(),
            registered_at: now(),
            lifecycle: Lifecycle::Running,
            restarts: 0,
            call_timeout_ms: u64::try_from(call_timeout.as_millis()).unwrap_or(u64::MAX),
            intake_queue_batches: options.intake.queue_batches,
        };
        let registration = Registration {
            name,
            kind,
            metadata,
            runtime,
            prepared,
            policy: options.restart,
            writable_type,
            timeouts: (call_timeout, options.degraded_window),
        };
        let outcome = self
            .actor
            .call(
                |reply| RegistryMsg::Register(Box::new(registration), reply),
                Some(self.config.call_timeout.max(Duration::from_secs(5))),
            )
            .await;
        match outcome {
            Ok(ractor::rpc::CallResult::Success(result)) => result,
            _ => Err(RegistrationError::RegistryDown),
        }
    }

    // ----- introspection -----

    async fn ask<R: Send + 'static>(
        &self,
        operation: &'static str,
        build: impl FnOnce(RpcReplyPort<R>) -> RegistryMsg,
    ) -> Result<R, StoreError> {
        match self.actor.call(build, Some(self.config.call_timeout)).await {
            Ok(ractor::rpc::CallResult::Success(r)) => Ok(r),
            _ => Err(StoreError::unhealthy(REGISTRY, operation)),
        }
    }

    async fn lookup(&self, operation: &'static str, name: &str) -> Result<EntryView, StoreError> {
        let name = name.to_owned();
        self.ask(operation, |reply| RegistryMsg::Lookup(name, reply))
            .await?
            .ok_or(StoreError::not_found(REGISTRY, operation))
    }

    /// Names of the registered stores, sorted.
    pub async fn list(&self) -> Result<Vec<String>, StoreError> {
        self.ask("list", RegistryMsg::List).await
    }

    /// Whether `name` is registered and its actor is running now (a crashed, restarting or
    /// stopped store is not available).
    pub async fn is_available(&self, name: &str) -> bool {
        self.lookup("is_available", name)
            .await
            .is_ok_and(|e| e.slot.lifecycle() == Lifecycle::Running)
    }

    /// Metadata of `name`; `NotFound` if nothing is registered under it.
    pub async fn metadata(&self, name: &str) -> Result<StoreMetadata, StoreError> {
        Ok(self.lookup("get_metadata", name).await?.metadata)
    }

    /// Metrics of `name` (asked of the store itself); `NotFound` if nothing is registered.
    pub async fn metrics(&self, name: &str) -> Result<DataStoreMetrics, StoreError> {
        let entry = self.lookup("get_metrics", name).await?;
        Ok(entry.slot.metrics_boxed(entry.slot.default_timeout()).await)
    }

    /// Health of `name`; `NotFound` if nothing is registered.
    pub async fn health(&self, name: &str) -> Result<HealthInfo, StoreError> {
        let entry = self.lookup("get_health", name).await?;
        Ok(entry.slot.health_boxed(entry.slot.default_timeout()).await)
    }

    /// Restart and intake counters of `name`; `NotFound` if nothing is registered.
    pub async fn supervision(&self, name: &str) -> Result<SupervisionStats, StoreError> {
        Ok(self
            .lookup("get_supervision", name)
            .await?
            .slot
            .supervision_stats())
    }

    /// Any registered store by name (core or writable), as a [`CustomStore`]; `NotFound` if
    /// nothing is registered under `name`.
    pub async fn get_custom(&self, name: &str) -> Result<CustomStore, StoreError> {
        let entry = self.lookup("get_custom", name).await?;
        Ok(CustomStore { entry })
    }

    /// Read-only handle of writable store `S` named `name`: `NotFound` if absent,
    /// `InvalidArgument` if it is a store of another type.
    pub async fn get_custom_typed<S: WritableStore>(
        &self,
        name: &str,
    ) -> Result<ReadHandle<S>, StoreError> {
        self.get_custom(name).await?.typed::<S>()
    }

    /// Stops every store (writable first, then core) and the registry. Handles answer
    /// `StoreUnhealthy` afterwards.
    pub async fn shutdown(&self) {
        let _ = self
            .actor
            .call(RegistryMsg::Shutdown, Some(Duration::from_secs(30)))
            .await;
    }
}

/// A registered store found by name: the reference's `DataStore` base interface (name, health,
/// metrics) and, for writable stores, the way to a typed read-only handle.
#[derive(Clone)]
pub struct CustomStore {
    entry: EntryView,
}

impl std::fmt::Debug for CustomStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomStore")
            .field("metadata", &self.entry.metadata)
            .finish()
    }
}

impl CustomStore {
    /// Registered name.
    pub fn name(&self) -> &'static str {
        self.entry.slot.name()
    }

    /// Metadata as of the lookup.
    pub fn metadata(&self) -> &StoreMetadata {
        &self.entry.metadata
    }

    /// Current health.
    pub async fn get_health(&self) -> HealthInfo {
        self.entry
            .slot
            .health_boxed(self.entry.slot.default_timeout())
            .await
    }

    /// Current metrics.
    pub async fn get_metrics(&self) -> DataStoreMetrics {
        self.entry
            .slot
            .metrics_boxed(self.entry.slot.default_timeout())
            .await
    }

    /// A read-only handle typed as writable store `S`; `InvalidArgument` if the store is not an
    /// `S` (a core store, or a writable store of another type).
    pub fn typed<S: WritableStore>(&self) -> Result<ReadHandle<S>, StoreError> {
        if self.entry.writable_type != Some(TypeId::of::<S>()) {
            return Err(StoreError::new(
                REGISTRY,
                "get_custom",
                ErrorKind::InvalidArgument,
            ));
        }
        let slot = self
            .entry
            .slot
            .clone()
            .as_any()
            .downcast::<StoreSlot<WritableProtocol<S>>>()
            .map_err(|_| StoreError::new(REGISTRY, "get_custom", ErrorKind::InvalidArgument))?;
        Ok(StoreHandle::new(slot))
    }
}
