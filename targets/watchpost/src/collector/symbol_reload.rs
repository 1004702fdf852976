//! Reloading kernel symbols when modules are loaded or unloaded — once per change.
//!
//! Two signals say "the module list may have changed": the kernel's `module_load` event (eBPF,
//! within milliseconds, loads only) and a check of `/proc/modules` every
//! `symbols.module_check_interval_ms` (loads and unloads, and the only signal without eBPF).
//! Both end in the same place, [`SymbolReloader`], which reloads only when the `/proc/modules`
//! fingerprint (names and load addresses, [`ModuleWatch`]) differs from the one its current
//! table reflects. So one module load is one reload whichever signal comes first: the kernel
//! lists a module in `/proc/modules` (state `Loading`, its symbols already in `/proc/kallsyms`)
//! before it fires `module_load`, and the second signal finds nothing new — nor does a check
//! after the module went `Live` with its init sections freed (a smaller size: seen in the
//! kernel matrix on 6.1 as a second reload, before sizes left the fingerprint). `/proc/kallsyms` is parsed off the store actor and the new
//! table swapped in through the symbol store's intake.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use watchpost_actors::IntakeSender;
use watchpost_actors::adapters::symbols::KernelSymbols;
use watchpost_actors::stores::symbols::SymbolTableSwap;

use crate::bootstrap::symbols::{ModuleWatch, load_kallsyms};
use crate::stats::{DaemonCounters, bump};

/// How the kernel feed tells the reloader to look now. Signals arriving while a reload runs
/// coalesce into one more check.
#[derive(Debug, Default)]
pub struct ReloadSignal {
    notify: Notify,
    forced: AtomicBool,
}

impl ReloadSignal {
    /// The kernel loaded a module: check `/proc/modules` now instead of at the next tick.
    pub fn module_loaded(&self) {
        self.notify.notify_one();
    }

    /// Reload at the next check even if `/proc/modules` looks unchanged (symbols changed
    /// without a module, or an operator asked).
    pub fn force(&self) {
        self.forced.store(true, Ordering::Relaxed);
        self.notify.notify_one();
    }
}

/// Watches the module list and swaps in fresh symbol tables.
#[derive(Debug)]
pub struct SymbolReloader {
    /// `/proc/kallsyms`.
    pub kallsyms: PathBuf,
    /// Change detection over `/proc/modules`.
    pub modules: ModuleWatch,
    /// The symbol store's intake.
    pub intake: IntakeSender<SymbolTableSwap>,
    /// Where checks and reloads are counted.
    pub stats: Arc<DaemonCounters>,
    /// Early checks asked for by the kernel feed.
    pub signal: Arc<ReloadSignal>,
}

impl SymbolReloader {
    /// Checks every `interval`, and whenever signalled, until `shutdown` turns true.
    pub async fn run(mut self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            let signalled = tokio::select! {
                _ = ticker.tick() => false,
                _ = self.signal.notify.notified() => true,
                _ = shutdown.changed() => return,
            };
            if *shutdown.borrow() {
                return;
            }
            if !self.check(signalled).await {
                return; // registry shut down
            }
        }
    }

    /// One check: reloads if the module list changed (or a reload was forced). False when the
    /// symbol store's intake is closed.
    async fn check(&mut self, signalled: bool) -> bool {
        let forced = self.signal.forced.swap(false, Ordering::Relaxed);
        // The fingerprint is taken before kallsyms is read: the table read next holds at
        // least the modules it names.
        let pending = self.modules.check();
        bump(&self.stats.module_checks);
        if pending.is_none() && !forced {
            if signalled {
                tracing::debug!("module load already reflected in the symbol table");
            }
            return true;
        }
        let path = self.kallsyms.clone();
        match tokio::task::spawn_blocking(move || load_kallsyms(&path)).await {
            Ok(Ok(table)) => {
                let symbols = table.len();
                if self
                    .intake
                    .submit(vec![KernelSymbols::swap(table)])
                    .await
                    .is_err()
                {
                    return false;
                }
                if let Some(state) = pending {
                    self.modules.accept(state);
                }
                bump(&self.stats.symbol_reloads);
                tracing::info!(symbols, "kernel modules changed: symbol table reloaded");
            }
            // Not accepted: the next check tries again.
            Ok(Err(e)) => {
                tracing::warn!("kernel modules changed but symbols could not be reloaded: {e}")
            }
            Err(e) => tracing::warn!("symbol reload task failed: {e}"),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;
    use watchpost_actors::{Registry, RegistryConfig, StoreOptions};

    const BASE_KALLSYMS: &str = "ffffffff81000000 T _stext\nffffffff81001000 T do_sys_open\n";
    const WITH_CRC7: &str = "ffffffff81000000 T _stext\nffffffff81001000 T do_sys_open\n\
                             ffffffffc0001000 T crc7_be\t[crc7]\n";
    const BASE_MODULES: &str = "ext4 1000 1 - Live 0xffffffffc0000000\n";
    // As the kernel shows a module while its init runs (init sections in the size), then after.
    const CRC7_LOADING: &str = "ext4 1000 1 - Live 0xffffffffc0000000\n\
                                crc7 16384 0 - Loading 0xffffffffc0001000\n";
    const CRC7_LIVE: &str = "ext4 1000 1 - Live 0xffffffffc0000000\n\
                             crc7 12288 0 - Live 0xffffffffc0001000\n";

    struct Fixture {
        dir: PathBuf,
        registry: Registry,
        stats: Arc<DaemonCounters>,
        signal: Arc<ReloadSignal>,
        shutdown: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Fixture {
        /// A real symbol store and a reloader over files in a temp directory, checking every
        /// `interval`.
        async fn start(tag: &str, interval: Duration) -> Fixture {
            let dir =
                std::env::temp_dir().join(format!("watchpost-reload-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("kallsyms"), BASE_KALLSYMS).unwrap();
            std::fs::write(dir.join("modules"), BASE_MODULES).unwrap();
            let registry = Registry::start(RegistryConfig::default()).await.unwrap();
            let modules = ModuleWatch::new(dir.join("modules"));
            let first = load_kallsyms(&dir.join("kallsyms")).unwrap();
            let first = std::sync::Mutex::new(Some(first));
            let intake = registry
                .register_symbol_store(
                    move |_: &watchpost_actors::BuildContext| {
                        Ok(KernelSymbols::new(first.lock().unwrap().take().unwrap()))
                    },
                    StoreOptions::default(),
                )
                .await
                .unwrap();
            let stats = Arc::new(DaemonCounters::default());
            let signal = Arc::new(ReloadSignal::default());
            let (shutdown, shutdown_rx) = watch::channel(false);
            let reloader = SymbolReloader {
                kallsyms: dir.join("kallsyms"),
                modules,
                intake,
                stats: stats.clone(),
                signal: signal.clone(),
            };
            let task = tokio::spawn(reloader.run(interval, shutdown_rx));
            Fixture {
                dir,
                registry,
                stats,
                signal,
                shutdown,
                task,
            }
        }

        /// Replaces `file` atomically (write aside, rename), as the kernel's files never show a
        /// half-written state: the reloader checks every few milliseconds and must not catch a
        /// truncated file.
        fn write(&self, file: &str, text: &str) {
            let aside = self.dir.join(format!("{file}.new"));
            std::fs::write(&aside, text).unwrap();
            std::fs::rename(&aside, self.dir.join(file)).unwrap();
        }

        fn count(counter: &AtomicU64) -> u64 {
            counter.load(Ordering::Relaxed)
        }

        /// Waits (up to 20 s) until `counter` reaches `at_least`.
        async fn wait_for(counter: &AtomicU64, at_least: u64) {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Self::count(counter) < at_least {
                assert!(
                    Instant::now() < deadline,
                    "counter stuck at {}",
                    Self::count(counter)
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }

        /// Waits until the reloader has made `n` more checks.
        async fn wait_checks(&self, n: u64) {
            let now = Self::count(&self.stats.module_checks);
            Self::wait_for(&self.stats.module_checks, now + n).await;
        }

        async fn crc7_known(&self) -> bool {
            self.registry
                .kernel_symbols()
                .get_symbol_address("crc7_be")
                .await
                .is_ok()
        }

        /// Whether the symbol store comes to answer `crc7_be` as `known` (within 20 s): the
        /// reload counter moves when the new table is handed to the store's intake, and queries
        /// see it once the store has applied and published it.
        async fn crc7_becomes(&self, known: bool) -> bool {
            let deadline = Instant::now() + Duration::from_secs(20);
            while self.crc7_known().await != known {
                if Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            true
        }

        async fn stop(self) {
            let _ = self.shutdown.send(true);
            let _ = self.task.await;
            self.registry.shutdown().await;
            let _ = std::fs::remove_dir_all(Path::new(&self.dir));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kernel_signal_then_ticks_reload_once() {
        let f = Fixture::start("signal-first", Duration::from_millis(5)).await;
        f.wait_checks(2).await;
        assert_eq!(
            Fixture::count(&f.stats.symbol_reloads),
            0,
            "nothing changed"
        );
        // The kernel lists the module (Loading) before it fires module_load.
        f.write("kallsyms", WITH_CRC7);
        f.write("modules", CRC7_LOADING);
        f.signal.module_loaded();
        Fixture::wait_for(&f.stats.symbol_reloads, 1).await;
        assert!(
            f.crc7_becomes(true).await,
            "the reloaded table has the module's symbols"
        );
        // The module goes live; polls and a late second signal see nothing new.
        f.write("modules", CRC7_LIVE);
        f.signal.module_loaded();
        f.wait_checks(5).await;
        assert_eq!(
            Fixture::count(&f.stats.symbol_reloads),
            1,
            "one load, one reload"
        );
        f.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tick_first_then_kernel_signal_reloads_once() {
        let f = Fixture::start("tick-first", Duration::from_millis(5)).await;
        f.write("kallsyms", WITH_CRC7);
        f.write("modules", CRC7_LOADING);
        Fixture::wait_for(&f.stats.symbol_reloads, 1).await;
        // The kernel's event arrives after the poll already reloaded.
        let checks = Fixture::count(&f.stats.module_checks);
        f.signal.module_loaded();
        f.wait_checks(3).await;
        assert!(Fixture::count(&f.stats.module_checks) > checks);
        assert_eq!(
            Fixture::count(&f.stats.symbol_reloads),
            1,
            "one load, one reload"
        );
        assert!(f.crc7_becomes(true).await);
        // Unloading is another change: one more reload, and the module's symbols are gone.
        f.write("kallsyms", BASE_KALLSYMS);
        f.write("modules", BASE_MODULES);
        Fixture::wait_for(&f.stats.symbol_reloads, 2).await;
        f.wait_checks(3).await;
        assert_eq!(Fixture::count(&f.stats.symbol_reloads), 2);
        assert!(f.crc7_becomes(false).await);
        f.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_signal_alone_reloads_without_waiting_for_the_tick() {
        // Ticks an hour apart: only the signal can cause this reload.
        let f = Fixture::start("signal-only", Duration::from_secs(3600)).await;
        f.write("kallsyms", WITH_CRC7);
        f.write("modules", CRC7_LIVE);
        f.signal.module_loaded();
        Fixture::wait_for(&f.stats.symbol_reloads, 1).await;
        assert!(f.crc7_becomes(true).await);
        // Forced: reloads though the module list is the same.
        f.signal.force();
        Fixture::wait_for(&f.stats.symbol_reloads, 2).await;
        f.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_reload_is_retried() {
        let f = Fixture::start("retry", Duration::from_millis(5)).await;
        // Modules changed but kallsyms unreadable: no reload, and the change stays pending.
        std::fs::remove_file(f.dir.join("kallsyms")).unwrap();
        f.write("modules", CRC7_LIVE);
        f.wait_checks(3).await;
        assert_eq!(Fixture::count(&f.stats.symbol_reloads), 0);
        f.write("kallsyms", WITH_CRC7);
        Fixture::wait_for(&f.stats.symbol_reloads, 1).await;
        f.wait_checks(3).await;
        assert_eq!(Fixture::count(&f.stats.symbol_reloads), 1);
        assert!(f.crc7_becomes(true).await);
        f.stop().await;
    }
}
