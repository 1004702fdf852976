//! The core [`KernelSymbolTable`] as a [`SymbolBackend`]. A new table (after a module load) is
//! parsed off the actor and swapped in through the intake as a [`SymbolTableSwap`] of a
//! `KernelSymbolTable` (best made with [`KernelSymbols::swap`]); the counters of replaced tables
//! are carried over so metrics never go backwards.
//!
//! The core builds a table's name index lazily, on the first name lookup; for a real kernel
//! (~120k symbols) that takes long enough, in a debug build, to exceed a caller's timeout. So
//! every table is indexed before it reaches the actor: [`KernelSymbols::new`] and
//! [`KernelSymbols::swap`] do it where the table is built (the factory, the collector).

use std::any::Any;
use std::sync::Arc;

use watchpost_core::symbols::{BatchResolution, KernelSymbolTable, SymbolAliases, SymbolMatch};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::stores::symbols::{SymbolBackend, SymbolTableSwap};

/// A kernel symbol table behind the symbol store: shared by both copies of the read view (the
/// table is immutable once indexed; a swap replaces the pointer in each copy).
#[derive(Debug, Clone)]
pub struct KernelSymbols {
    table: Arc<KernelSymbolTable>,
    /// Counters of the tables swapped out so far (item count unused).
    carried: DataStoreMetrics,
}

impl KernelSymbols {
    /// Serves `table`, building its name index now (see the module docs).
    pub fn new(mut table: KernelSymbolTable) -> Self {
        table.build_name_index();
        KernelSymbols {
            table: Arc::new(table),
            carried: DataStoreMetrics::default(),
        }
    }

    /// The update that swaps `table` in, with its name index built here, off the actor.
    pub fn swap(mut table: KernelSymbolTable) -> SymbolTableSwap {
        table.build_name_index();
        SymbolTableSwap::new(Arc::new(table))
    }

    /// The table served now.
    pub fn table(&self) -> &KernelSymbolTable {
        &self.table
    }
}

impl SymbolBackend for KernelSymbols {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn find_symbol_by_address(&self, address: u64) -> Result<SymbolAliases<'_>, StoreError> {
        self.table.find_symbol_by_address(address)
    }

    fn find_symbol_address(&self, name: &str) -> Result<u64, StoreError> {
        self.table.find_symbol_address(name)
    }

    fn find_symbols_batch(&self, addresses: &[u64], out: &mut [SymbolMatch]) -> BatchResolution {
        self.table.find_symbols_batch(addresses, out)
    }

    fn aliases(&self, found: SymbolMatch) -> SymbolAliases<'_> {
        self.table.aliases(found)
    }

    fn swap_table(&mut self, table: &(dyn Any + Send + Sync), _now: EpochNanos) -> bool {
        let Some(table) = table.downcast_ref::<Arc<KernelSymbolTable>>() else {
            return false;
        };
        if !table.stats().name_index_built {
            // Only `KernelSymbols::swap` makes these, and it builds the index: refuse rather
            // than serve name lookups that cannot answer.
            return false;
        }
        let old = std::mem::replace(&mut self.table, table.clone()).metrics();
        let c = &mut self.carried;
        c.success_count = c.success_count.saturating_add(old.success_count);
        c.error_count = c.error_count.saturating_add(old.error_count);
        c.cache_hits = c.cache_hits.saturating_add(old.cache_hits);
        c.cache_misses = c.cache_misses.saturating_add(old.cache_misses);
        c.last_access = c.last_access.max(old.last_access);
        true
    }

    fn bytes_reserved(&self) -> usize {
        self.table.bytes_reserved()
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        self.table.health(now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        let m = self.table.metrics();
        let c = &self.carried;
        DataStoreMetrics {
            item_count: m.item_count,
            success_count: m.success_count.saturating_add(c.success_count),
            error_count: m.error_count.saturating_add(c.error_count),
            cache_hits: m.cache_hits.saturating_add(c.cache_hits),
            cache_misses: m.cache_misses.saturating_add(c.cache_misses),
            last_access: m.last_access.max(c.last_access),
        }
    }
}
