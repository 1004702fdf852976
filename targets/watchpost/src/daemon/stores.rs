//! Registering every store with the registry, sized by the configuration, and filled with what
//! is read once at start (system facts, kernel symbols). Each store's factory is also how the
//! supervisor rebuilds it after a crash: the immutable stores rebuild from the same facts, the
//! symbol store re-reads kallsyms, the process and container tables start empty and the
//! collector sends them the whole tree again.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use watchpost_actors::adapters::container::container_table_factory;
use watchpost_actors::adapters::dns::dns_cache_factory;
use watchpost_actors::adapters::process::process_table_factory;
use watchpost_actors::adapters::symbols::KernelSymbols;
use watchpost_actors::adapters::system::SystemFacts;
use watchpost_actors::stores::container::ContainerUpdate;
use watchpost_actors::stores::dns::DnsPacket;
use watchpost_actors::stores::process::ProcessUpdate;
use watchpost_actors::stores::symbols::SymbolTableSwap;
use watchpost_actors::{BuildContext, IntakeSender, RegistrationError, Registry};
use watchpost_core::symbols::KernelSymbolTable;
use watchpost_core::syscall::{Arch, SyscallStore};
use watchpost_core::system_info::SystemInfo;

use crate::bootstrap::symbols::{ModuleWatch, load_kallsyms};
use crate::config::Config;

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

    let processes = registry
        .register_process_store(
            process_table_factory(config.process_table()),
            options.clone(),
        )
        .await?;
    let containers = registry
        .register_container_store(
            container_table_factory(config.container_table()),
            options.clone(),
        )
        .await?;
    // Until the eBPF collector feeds it, the DNS store stays empty: every lookup is NotFound.
    let dns = registry
        .register_dns_store(dns_cache_factory(config.dns_cache()), options)
        .await?;
    Ok(RegisteredStores {
        processes,
        containers,
        symbols,
        dns,
        host_arch,
        module_watch,
    })
}
