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
use std::collections::HashMap;

use watchpost_core::symbols::{KernelSymbolTable, SymbolAliases, SymbolMatch};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::stores::symbols::{SymbolBackend, SymbolInfo, SymbolTableSwap};

/// A kernel symbol table behind the symbol store actor.
#[derive(Debug)]
pub struct KernelSymbols {
    table: KernelSymbolTable,
    /// Counters of the tables swapped out so far (item count unused).
    carried: DataStoreMetrics,
    /// Reused buffer for batch matches (grows to the largest batch seen).
    matches: Vec<SymbolMatch>,
}

impl KernelSymbols {
    /// Serves `table`, building its name index now (see the module docs).
    pub fn new(mut table: KernelSymbolTable) -> Self {
        table.build_name_index();
        KernelSymbols {
            table,
            carried: DataStoreMetrics::default(),
            matches: Vec::new(),
        }
    }

    /// The update that swaps `table` in, with its name index built here, off the actor.
    pub fn swap(mut table: KernelSymbolTable) -> SymbolTableSwap {
        table.build_name_index();
        SymbolTableSwap::new(table)
    }

    /// The table served now.
    pub fn table(&self) -> &KernelSymbolTable {
        &self.table
    }
}

fn infos(aliases: SymbolAliases<'_>) -> Vec<SymbolInfo> {
    aliases
        .map(|v| SymbolInfo {
            name: v.name.to_owned(),
            address: v.address,
            module: v.module.to_owned(),
        })
        .collect()
}

impl SymbolBackend for KernelSymbols {
    fn resolve_symbol_by_address(
        &mut self,
        address: u64,
        now: EpochNanos,
    ) -> Result<Vec<SymbolInfo>, StoreError> {
        self.table
            .resolve_symbol_by_address(address, now)
            .map(infos)
    }

    fn get_symbol_address(&mut self, name: &str, now: EpochNanos) -> Result<u64, StoreError> {
        self.table.get_symbol_address(name, now)
    }

    fn resolve_symbols_batch(
        &mut self,
        addresses: &[u64],
        now: EpochNanos,
    ) -> Result<HashMap<u64, Vec<SymbolInfo>>, StoreError> {
        self.matches.clear();
        self.matches.resize(addresses.len(), SymbolMatch::default());
        let outcome = self
            .table
            .resolve_symbols_batch(addresses, now, &mut self.matches);
        let found = self.matches.get(..outcome.found).unwrap_or_default();
        Ok(found
            .iter()
            .map(|m| (m.address(), infos(self.table.aliases(*m))))
            .collect())
    }

    fn swap_table(&mut self, table: Box<dyn Any + Send>, _now: EpochNanos) -> bool {
        let Ok(mut table) = table.downcast::<KernelSymbolTable>() else {
            return false;
        };
        // Nothing to do if it came through `KernelSymbols::swap`.
        table.build_name_index();
        let old = std::mem::replace(&mut self.table, *table).metrics();
        let c = &mut self.carried;
        c.success_count = c.success_count.saturating_add(old.success_count);
        c.error_count = c.error_count.saturating_add(old.error_count);
        c.cache_hits = c.cache_hits.saturating_add(old.cache_hits);
        c.cache_misses = c.cache_misses.saturating_add(old.cache_misses);
        c.last_access = c.last_access.max(old.last_access);
        true
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
