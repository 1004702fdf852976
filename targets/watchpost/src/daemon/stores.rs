//! Registering every store with the registry, sized by the configuration, and filled with what
//! is read once at start (system facts, kernel symbols). Each store's factory is also how the
//! supervisor rebuilds it after a crash: the immutable stores rebuild from the same facts, the
//! symbol store re-reads kallsyms, the process and container tables start empty and the
//! collector sends them the whole tree again.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use watchpost_actors::adapters::symbols::KernelSymbols;
use watchpost_actors::adapters::system::SystemFacts;
use watchpost_actors::stores::container::{ContainerProtocol, ContainerUpdate};
use watchpost_actors::stores::dns::{DnsPacket, DnsProtocol};
use watchpost_actors::stores::process::{ProcessProtocol, ProcessUpdate};
use watchpost_actors::stores::symbols::SymbolTableSwap;
use watchpost_actors::writable::WritableProtocol;
use watchpost_actors::{BuildContext, IntakeSender, RegistrationError, Registry};
use watchpost_core::ip_reputation::IpReputationStore;
use watchpost_core::symbols::KernelSymbolTable;
use watchpost_core::syscall::{Arch, SyscallStore};
use watchpost_core::system_info::SystemInfo;

use crate::bootstrap::symbols::{ModuleWatch, load_kallsyms};
use crate::config::Config;
use crate::memory::budget::{Budget, view_of};
use crate::persistence::reputation::ReputationWriter;
use crate::persistence::restore::{
    container_factory, dns_factory, process_factory, reputation_factory,
};
use crate::persistence::{Persistence, snapshot::REPUTATION_STORE};
use crate::procfs::ProcReader;
use crate::stats::DaemonCounters;

/// `/proc/kallsyms`.
pub const KALLSYMS: &str = "/proc/kallsyms";
/// `/proc/modules`.
pub const PROC_MODULES: &str = "/proc/modules";

/// What the daemon keeps after registration.
#[derive(Debug)]
pub struct RegisteredStores {
    /// The process store's intake.
    pub processes: IntakeSender<ProcessUpdate>,
    /// The container store's intake.
    pub containers: IntakeSender<ContainerUpdate>,
    /// The symbol store's intake (table swaps).
    pub symbols: IntakeSender<SymbolTableSwap>,
    /// The DNS store's intake (observed response packets; fed by the eBPF collector, later).
    pub dns: IntakeSender<DnsPacket>,
    /// The architecture the syscall store serves, if this machine's has a table.
    pub host_arch: Option<Arch>,
    /// The module list as it was just before the first kallsyms read (what the first symbol
    /// table reflects).
    pub module_watch: ModuleWatch,
    /// The IP reputation store's write path: its `WriteHandle` (`.owner()`) with every write
    /// written through to the snapshot file. Feeds write through this (`write_batch`, `delete`,
    /// `clear`); `None` when `ip_reputation.enabled = false`.
    pub ip_reputation: Option<Arc<ReputationWriter>>,
}

/// Reads kallsyms, or an empty table (the store then reports itself unhealthy) with a warning.
fn kallsyms_or_empty() -> KernelSymbolTable {
    match load_kallsyms(&PathBuf::from(KALLSYMS)) {
        Ok(table) => table,
        Err(e) if e.is_privilege_error() => {
            tracing::warn!(
                "kernel symbols unavailable: the kernel hides their addresses (run as root, or \
                 with CAP_SYSLOG and kernel.kptr_restrict < 2)"
            );
            KernelSymbolTable::empty()
        }
        Err(e) => {
            tracing::warn!("kernel symbols unavailable: {e}");
            KernelSymbolTable::empty()
        }
    }
}

/// Registers the system, syscall, symbol, process, container and DNS stores. (The process,
/// container and DNS factories choose a fresh random hash seed on every build, so IDs and names
/// cannot be chosen to collide in the indexes.)
pub async fn register_all(
    registry: &Registry,
    config: &Config,
    system: SystemInfo,
    ledger: Arc<DaemonCounters>,
    persistence: &Arc<Persistence>,
    reader: &ProcReader,
) -> Result<RegisteredStores, RegistrationError> {
    let options = config.store_options();
    let host_arch = system.arch();

    registry
        .register_system_store(
            move |_: &BuildContext| Ok(SystemFacts::new(system.clone())),
            options.clone(),
        )
        .await?;

    match host_arch {
        Some(arch) => {
            registry
                .register_syscall_store(
                    move |_: &BuildContext| Ok(SyscallStore::new(arch)),
                    options.clone(),
                )
                .await?
        }
        None => tracing::warn!(
            "no syscall table for this architecture: the syscall store stays unavailable"
        ),
    }

    // Fingerprint first: a module loaded during the read below is then a change to reload for.
    let module_watch = ModuleWatch::new(PROC_MODULES);
    let first_table = tokio::task::spawn_blocking(kallsyms_or_empty)
        .await
        .unwrap_or_else(|_| KernelSymbolTable::empty());
    tracing::info!(symbols = first_table.len(), "kernel symbols loaded");
    let symbol_bytes = first_table.bytes_reserved() as u64;
    ledger.memory.set("symbol store", symbol_bytes);
    // The budget's other parts follow from the configuration; each store's own reservation is
    // recorded by its factory below, on every (re)build.
    for part in Budget::beyond_stores(config, symbol_bytes).parts {
        ledger.memory.set(part.name, part.bytes);
    }
    let first_table = Arc::new(Mutex::new(Some(first_table)));
    let symbols = registry
        .register_symbol_store(
            move |_: &BuildContext| {
                let table = first_table
                    .lock()
                    .ok()
                    .and_then(|mut t| t.take())
                    .unwrap_or_else(kallsyms_or_empty);
                Ok(KernelSymbols::new(table))
            },
            options.clone(),
        )
        .await?;

    let build = process_factory(persistence.clone(), config.process_table(), reader.clone());
    let l = ledger.clone();
    let processes = registry
        .register_process_store(
            move |ctx: &BuildContext| {
                let table = build(ctx)?;
                l.memory
                    .set("process store", view_of::<ProcessProtocol, _>(&table));
                Ok(table)
            },
            options.clone(),
        )
        .await?;
    let build = container_factory(persistence.clone(), config.container_table());
    let l = ledger.clone();
    let containers = registry
        .register_container_store(
            move |ctx: &BuildContext| {
                let table = build(ctx)?;
                l.memory
                    .set("container store", view_of::<ContainerProtocol, _>(&table));
                Ok(table)
            },
            options.clone(),
        )
        .await?;
    // Until the eBPF collector feeds it, the DNS store stays empty: every lookup is NotFound.
    let build = dns_factory(persistence.clone(), config.dns_cache());
    let l = ledger.clone();
    let dns = registry
        .register_dns_store(
            move |ctx: &BuildContext| {
                let cache = build(ctx)?;
                l.memory.set("dns store", view_of::<DnsProtocol, _>(&cache));
                Ok(cache)
            },
            options.clone(),
        )
        .await?;
    let r = &config.ip_reputation;
    let ip_reputation = if r.enabled {
        let build = reputation_factory(persistence.clone(), r.store_config(), r.priority_list());
        let l = ledger.clone();
        let owner = registry
            .register_writable_store(
                REPUTATION_STORE,
                move |ctx: &BuildContext| {
                    let store = build(ctx)?;
                    l.memory.set(
                        "ip_reputation store",
                        view_of::<WritableProtocol<IpReputationStore>, _>(&store),
                    );
                    Ok(store)
                },
                options,
            )
            .await?;
        Some(Arc::new(ReputationWriter::new(owner, persistence.clone())))
    } else {
        None
    };
    ledger.memory.set_budget(ledger.memory.total());
    Ok(RegisteredStores {
        processes,
        containers,
        symbols,
        dns,
        host_arch,
        module_watch,
        ip_reputation,
    })
}
