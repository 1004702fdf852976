//! Reloading kernel symbols when modules are loaded or unloaded: `/proc/modules` is checked
//! every `symbols.module_check_interval_ms`; on a change `/proc/kallsyms` is parsed off the
//! store actor and the new table swapped in through the symbol store's intake.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use watchpost_actors::IntakeSender;
use watchpost_actors::adapters::symbols::KernelSymbols;
use watchpost_actors::stores::symbols::SymbolTableSwap;

use crate::bootstrap::symbols::{ModuleWatch, load_kallsyms};
use crate::stats::{DaemonCounters, bump};

/// Watches the module list and swaps in fresh symbol tables.
#[derive(Debug)]
pub struct SymbolReloader {
    /// `/proc/kallsyms`.
    pub kallsyms: PathBuf,
    /// Change detection over `/proc/modules`.
    pub modules: ModuleWatch,
    /// The symbol store's intake.
    pub intake: IntakeSender<SymbolTableSwap>,
    /// Where reloads are counted.
    pub stats: Arc<DaemonCounters>,
}

impl SymbolReloader {
    /// Checks every `interval` until `shutdown` turns true.
    pub async fn run(mut self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            if !self.modules.changed() {
                continue;
            }
            let path = self.kallsyms.clone();
            let loaded = tokio::task::spawn_blocking(move || load_kallsyms(&path)).await;
            match loaded {
                Ok(Ok(table)) => {
                    let symbols = table.len();
                    if self
                        .intake
                        .submit(vec![KernelSymbols::swap(table)])
                        .await
                        .is_err()
                    {
                        return; // registry shut down
                    }
                    bump(&self.stats.symbol_reloads);
                    tracing::info!(symbols, "kernel modules changed: symbol table reloaded");
                }
                Ok(Err(e)) => {
                    tracing::warn!("kernel modules changed but symbols could not be reloaded: {e}")
                }
                Err(e) => tracing::warn!("symbol reload task failed: {e}"),
            }
        }
    }
}
