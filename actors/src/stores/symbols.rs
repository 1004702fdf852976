//! The kernel symbol store: address ↔ symbol resolution answered from the published read view,
//! and table swaps (a new table is parsed off the actor, then swapped in with one update, shared
//! by both copies of the view, so queries never wait for a parse).

use std::any::Any;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use watchpost_core::symbols::{BatchResolution, SymbolAliases, SymbolMatch};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::handle::StoreHandle;
use crate::protocol::{IntoCopies, Protocol, StoreBackend};

/// One kernel symbol, owned (the reference's `SymbolInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SymbolInfo {
    /// Symbol name.
    pub name: String,
    /// Address.
    pub address: u64,
    /// Owning module; `"system"` for the kernel itself.
    pub module: String,
}

/// A whole new symbol table, built off the actor (e.g. after a module load), to swap in.
/// Carries the backend's own table type, shared (both copies of the read view point at one
/// table); a backend refuses (counts as rejected) a table of a type it does not know.
pub struct SymbolTableSwap(pub Box<dyn Any + Send + Sync>);

impl SymbolTableSwap {
    /// Wraps `table`.
    pub fn new<T: Send + Sync + 'static>(table: T) -> Self {
        SymbolTableSwap(Box::new(table))
    }
}

impl std::fmt::Debug for SymbolTableSwap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymbolTableSwap(..)")
    }
}

/// The kernel symbol store protocol.
pub struct SymbolProtocol;

impl Protocol for SymbolProtocol {
    type Update = SymbolTableSwap;
    type Applied = bool;
    type Backend = dyn SymbolBackend;

    fn accepted(applied: &bool) -> bool {
        *applied
    }
}

/// What a kernel symbol table must do to run behind the symbol store: read-only lookups from
/// `&self` (answers borrow the published copy) and whole-table swaps.
pub trait SymbolBackend: Send + Sync + 'static {
    /// Every symbol at exactly `address` (`NotFound` if none). Counts nothing.
    fn find_symbol_by_address(&self, address: u64) -> Result<SymbolAliases<'_>, StoreError>;
    /// Address of `name` (`NotFound` if none; `InvalidArgument` for a name kallsyms cannot have).
    fn find_symbol_address(&self, name: &str) -> Result<u64, StoreError>;
    /// Resolves `addresses` into `out` (see the core's batch resolution).
    fn find_symbols_batch(&self, addresses: &[u64], out: &mut [SymbolMatch]) -> BatchResolution;
    /// The symbols of a batch match.
    fn aliases(&self, found: SymbolMatch) -> SymbolAliases<'_>;
    /// Replaces the table with the one `table` carries if it is of the backend's table type.
    fn swap_table(&mut self, table: &(dyn Any + Send + Sync), now: EpochNanos) -> bool;
    /// Bytes reserved.
    fn bytes_reserved(&self) -> usize {
        0
    }
    /// The store itself, to downcast to its concrete type (snapshots, inspection).
    fn as_any(&self) -> &dyn std::any::Any;
    /// The store itself, mutably.
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    /// Health.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics (writes; the view counts reads).
    fn metrics(&self) -> DataStoreMetrics;
}

impl<T: SymbolBackend + ?Sized> StoreBackend<SymbolProtocol> for T {
    fn apply_update(&mut self, update: &SymbolTableSwap, now: EpochNanos) -> bool {
        self.swap_table(&*update.0, now)
    }

    fn bytes_reserved(&self) -> usize {
        SymbolBackend::bytes_reserved(self)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        SymbolBackend::as_any(self)
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        SymbolBackend::as_any_mut(self)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        SymbolBackend::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        SymbolBackend::metrics(self)
    }
}

impl<T: SymbolBackend + Clone> IntoCopies<SymbolProtocol> for T {
    fn into_copies(self) -> [Box<dyn SymbolBackend>; 2] {
        [Box::new(self.clone()), Box::new(self)]
    }
}

/// Handle to the kernel symbol store (`registry.kernel_symbols()`).
pub type SymbolHandle = StoreHandle<SymbolProtocol>;

fn infos(aliases: SymbolAliases<'_>) -> Vec<SymbolInfo> {
    aliases
        .map(|v| SymbolInfo {
            name: v.name.to_owned(),
            address: v.address,
            module: v.module.to_owned(),
        })
        .collect()
}

/// Queries answer from the store's published copy in the caller's task; each counts in the
/// store's metrics.
impl StoreHandle<SymbolProtocol> {
    /// Every symbol at exactly `address` (aliases included).
    pub async fn resolve_symbol_by_address(
        &self,
        address: u64,
    ) -> Result<Vec<SymbolInfo>, StoreError> {
        self.read_view("resolve_symbol_by_address", |store, reads| {
            let found = store.find_symbol_by_address(address);
            reads.count(&found);
            found.map(infos)
        })?
    }

    /// The address of the symbol `name` (the first if several share the name).
    pub async fn get_symbol_address(&self, name: &str) -> Result<u64, StoreError> {
        self.read_view("get_symbol_address", |store, reads| {
            let found = store.find_symbol_address(name);
            reads.count(&found);
            found
        })?
    }

    /// Many addresses from one published copy; addresses that resolve to nothing are left out.
    pub async fn resolve_symbols_batch(
        &self,
        addresses: &[u64],
    ) -> Result<HashMap<u64, Vec<SymbolInfo>>, StoreError> {
        let mut matches = vec![SymbolMatch::default(); addresses.len()];
        self.read_view("resolve_symbols_batch", |store, reads| {
            let outcome = store.find_symbols_batch(addresses, &mut matches);
            for _ in 0..outcome.found {
                reads.hit();
            }
            for _ in 0..outcome.missed {
                reads.miss();
            }
            let found = matches.get(..outcome.found).unwrap_or_default();
            found
                .iter()
                .map(|m| (m.address(), infos(store.aliases(*m))))
                .collect()
        })
    }
}
