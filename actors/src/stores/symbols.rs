//! The kernel symbol store as an actor: address ↔ symbol resolution, and table swaps (a new
//! table is parsed off the actor, then swapped in with one update so queries never wait for a
//! parse).

use std::any::Any;
use std::collections::HashMap;

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::handle::StoreHandle;
use crate::protocol::{Protocol, StoreBackend, answer};

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
/// Carries the backend's own table type; a backend refuses (counts as rejected) a table of a
/// type it does not know.
pub struct SymbolTableSwap(pub Box<dyn Any + Send>);

impl SymbolTableSwap {
    /// Wraps `table`.
    pub fn new<T: Send + 'static>(table: T) -> Self {
        SymbolTableSwap(Box::new(table))
    }
}

impl std::fmt::Debug for SymbolTableSwap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymbolTableSwap(..)")
    }
}

/// Queries to the kernel symbol store.
pub enum SymbolQuery {
    /// Every symbol at exactly this address.
    ResolveSymbolByAddress {
        /// Address.
        address: u64,
        /// Answer.
        reply: RpcReplyPort<Result<Vec<SymbolInfo>, StoreError>>,
    },
    /// Address of a named symbol.
    GetSymbolAddress {
        /// Name.
        name: String,
        /// Answer.
        reply: RpcReplyPort<Result<u64, StoreError>>,
    },
    /// Many addresses at once; misses are left out.
    ResolveSymbolsBatch {
        /// Addresses.
        addresses: Vec<u64>,
        /// Answer.
        reply: RpcReplyPort<Result<HashMap<u64, Vec<SymbolInfo>>, StoreError>>,
    },
}

/// The kernel symbol store protocol.
pub struct SymbolProtocol;

impl Protocol for SymbolProtocol {
    type Query = SymbolQuery;
    type Update = SymbolTableSwap;
}

/// What a kernel symbol table must do to run behind the symbol store actor.
pub trait SymbolBackend: Send + 'static {
    /// Every symbol at exactly `address` (`NotFound` if none).
    fn resolve_symbol_by_address(
        &mut self,
        address: u64,
        now: EpochNanos,
    ) -> Result<Vec<SymbolInfo>, StoreError>;
    /// Address of `name` (`NotFound` if none).
    fn get_symbol_address(&mut self, name: &str, now: EpochNanos) -> Result<u64, StoreError>;
    /// Found addresses only; never `NotFound`.
    fn resolve_symbols_batch(
        &mut self,
        addresses: &[u64],
        now: EpochNanos,
    ) -> Result<HashMap<u64, Vec<SymbolInfo>>, StoreError>;
    /// Replaces the table with `table` if it is of the backend's table type.
    fn swap_table(&mut self, table: Box<dyn Any + Send>, now: EpochNanos) -> bool;
    /// Health.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics.
    fn metrics(&self) -> DataStoreMetrics;
}

impl<T: SymbolBackend> StoreBackend<SymbolProtocol> for T {
    fn handle_query(&mut self, query: SymbolQuery, now: EpochNanos) {
        match query {
            SymbolQuery::ResolveSymbolByAddress { address, reply } => {
                answer(reply, self.resolve_symbol_by_address(address, now))
            }
            SymbolQuery::GetSymbolAddress { name, reply } => {
                answer(reply, self.get_symbol_address(&name, now))
            }
            SymbolQuery::ResolveSymbolsBatch { addresses, reply } => {
                answer(reply, self.resolve_symbols_batch(&addresses, now))
            }
        }
    }

    fn apply_update(&mut self, update: SymbolTableSwap, now: EpochNanos) -> bool {
        self.swap_table(update.0, now)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        SymbolBackend::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        SymbolBackend::metrics(self)
    }
}

/// Handle to the kernel symbol store (`registry.kernel_symbols()`).
pub type SymbolHandle = StoreHandle<SymbolProtocol>;

impl StoreHandle<SymbolProtocol> {
    /// Every symbol at exactly `address` (aliases included).
    pub async fn resolve_symbol_by_address(
        &self,
        address: u64,
    ) -> Result<Vec<SymbolInfo>, StoreError> {
        self.ask("resolve_symbol_by_address", |reply| {
            SymbolQuery::ResolveSymbolByAddress { address, reply }
        })
        .await
    }

    /// The address of the symbol `name` (the first if several share the name).
    pub async fn get_symbol_address(&self, name: &str) -> Result<u64, StoreError> {
        let name = name.to_owned();
        self.ask("get_symbol_address", |reply| {
            SymbolQuery::GetSymbolAddress { name, reply }
        })
        .await
    }

    /// Many addresses in one message; addresses that resolve to nothing are left out.
    pub async fn resolve_symbols_batch(
        &self,
        addresses: &[u64],
    ) -> Result<HashMap<u64, Vec<SymbolInfo>>, StoreError> {
        let addresses = addresses.to_vec();
        self.ask("resolve_symbols_batch", |reply| {
            SymbolQuery::ResolveSymbolsBatch { addresses, reply }
        })
        .await
    }
}
