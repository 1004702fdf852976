//! The kernel symbol store: every symbol of `/proc/kallsyms` in a compact, read-only table that
//! answers "which symbols sit at this address?", "where is this symbol?" and "which function holds
//! this address?" without allocating.
//!
//! The table is built once from kallsyms text and replaced whole on reload (module load). Building
//! pre-scans the text ([`SymbolTableLayout`]), reserves exactly that much memory, fills it, and
//! never grows; queries take `&mut self` only to count metrics (and, once, to build the name index
//! inside its reserved memory). The `packed` submodule documents the memory layout: 16 bytes per
//! symbol plus its share of the name bytes — about 30 bytes per symbol for a real x86_64 kernel,
//! 70% of the text it was built from. While building, a sort scratch of 24 bytes per symbol is
//! allocated and freed again.
//!
//! # Semantics
//! - [`KernelSymbolTable::resolve_symbol_by_address`]: **exact** address only, every alias at
//!   that address across modules, in kallsyms text order; `NotFound` if none.
//! - [`KernelSymbolTable::get_symbol_address`]: the **first** symbol of that name, defined as:
//!   the kernel image's (`"system"`) before any module's, modules in order of first appearance in
//!   the kallsyms text, and within one module the lowest address. The reference says "first one
//!   found"; this makes it deterministic and never lets a module's same-named static function
//!   shadow the kernel's. Binary search over a name-sorted index.
//! - [`KernelSymbolTable::resolve_symbols_batch`]: exact resolution of many addresses; misses are
//!   skipped and counted, never an error.
//! - [`KernelSymbolTable::nearest`]: the symbol containing an address. kallsyms has no sizes, so a
//!   symbol is taken to extend up to the next higher symbol address **of the same module range**
//!   (a maximal run of address-adjacent symbols of one module): the symbols at the next higher
//!   address must include one of the same module as the symbols at the start address. `NotFound` below the first symbol,
//!   and past the last symbol of a module range (the gap before the next module, or the end of the
//!   table) — there the symbol's end is unknown, and attributing e.g. a hook trampoline's address
//!   to whichever kernel symbol happens to precede it would be a wrong answer. An exact symbol
//!   address always resolves, with offset 0.
//! - Metrics follow [`crate::metrics`]: each lookup is a hit or a miss; in a batch each address
//!   counts as one lookup; a malformed name is an error. Health is `Unhealthy` while the table is
//!   empty (queries then answer `NotFound`).
#![cfg(feature = "alloc")]

use core::fmt;

use crate::error::{ErrorKind, StoreError, store_names};
use crate::health::HealthInfo;
use crate::kallsyms::{KallsymsError, MAX_SYMBOL_NAME_LEN};
use crate::metrics::{DataStoreMetrics, StoreMetrics};
use crate::time::EpochNanos;

mod layout;
mod packed;
mod view;

pub use layout::{MAX_MODULES, SymbolTableLayout};
pub use view::{
    NearestSymbol, SymbolAliases, SymbolInfo, SymbolIter, SymbolMatch, SymbolView, SymbolsNamed,
};

use packed::PackedSymbols;

/// Why a symbol table could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SymbolTableError {
    /// The kallsyms text is malformed, or its addresses are hidden (privilege).
    Kallsyms(KallsymsError),
    /// More symbols than `u32` indices can address.
    TooManySymbols {
        /// Symbols in the text.
        symbols: usize,
    },
    /// More distinct modules than [`MAX_MODULES`].
    TooManyModules,
    /// The symbol or module names exceed 4 GiB.
    NamesTooLarge {
        /// Bytes needed.
        bytes: usize,
    },
    /// Reserving the table's memory failed.
    OutOfMemory {
        /// Bytes requested.
        bytes: usize,
    },
    /// The fill pass disagreed with the pre-scan (a bug); reported instead of growing memory.
    LayoutMismatch,
}

impl SymbolTableError {
    /// Whether this is the "addresses hidden: need root / CAP_SYSLOG" case.
    pub const fn is_privilege_error(&self) -> bool {
        matches!(
            self,
            SymbolTableError::Kallsyms(KallsymsError::AddressesHidden)
        )
    }
}

impl fmt::Display for SymbolTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SymbolTableError::Kallsyms(error) => fmt::Display::fmt(error, f),
            SymbolTableError::TooManySymbols { symbols } => {
                write!(f, "{symbols} kernel symbols: more than a table can index")
            }
            SymbolTableError::TooManyModules => {
                write!(f, "more than {MAX_MODULES} distinct kernel modules")
            }
            SymbolTableError::NamesTooLarge { bytes } => {
                write!(
                    f,
                    "{bytes} bytes of symbol names: more than a table can index"
                )
            }
            SymbolTableError::OutOfMemory { bytes } => {
                write!(f, "cannot reserve {bytes} bytes for the symbol table")
            }
            SymbolTableError::LayoutMismatch => {
                f.write_str("symbol table fill disagreed with its pre-scan")
            }
        }
    }
}

impl core::error::Error for SymbolTableError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            SymbolTableError::Kallsyms(error) => Some(error),
            _ => None,
        }
    }
}

/// Facts about the loaded table and its history; every counter is real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SymbolTableStats {
    /// Symbols held.
    pub symbols: usize,
    /// Distinct modules, `system` included (0 for an empty table).
    pub modules: usize,
    /// Distinct symbol addresses.
    pub distinct_addresses: usize,
    /// Addresses holding more than one symbol (aliases).
    pub alias_addresses: usize,
    /// Most symbols at one address.
    pub max_aliases: usize,
    /// Lines of the kallsyms text the table was built from.
    pub lines: usize,
    /// Per-CPU lines skipped.
    pub per_cpu_skipped: usize,
    /// Empty lines skipped.
    pub blank_lines: usize,
    /// Bytes used in the name arena.
    pub name_bytes: usize,
    /// Name bytes not stored thanks to tail sharing.
    pub shared_name_bytes: usize,
    /// Heap bytes reserved by the table.
    pub bytes_reserved: usize,
    /// Whether the name index has been built (it is built on the first name lookup).
    pub name_index_built: bool,
    /// Successful reloads.
    pub reloads: u64,
    /// Reloads rejected (the previous table was kept).
    pub failed_reloads: u64,
}

/// Outcome of [`KernelSymbolTable::resolve_symbols_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BatchResolution {
    /// Addresses resolved: `out[..found]` holds their matches, in input order.
    pub found: usize,
    /// Addresses with no symbol (skipped).
    pub missed: usize,
    /// Addresses not looked at because `out` was full (not counted in the metrics).
    pub unprocessed: usize,
}

/// The kernel symbol store. See the module docs for the semantics.
pub struct KernelSymbolTable {
    symbols: PackedSymbols,
    stats: SymbolTableStats,
    metrics: StoreMetrics,
}

impl KernelSymbolTable {
    /// A table with no symbols (health `Unhealthy`, every lookup `NotFound`), reserving nothing.
    pub const fn empty() -> Self {
        KernelSymbolTable {
            symbols: PackedSymbols::empty(),
            stats: SymbolTableStats {
                symbols: 0,
                modules: 0,
                distinct_addresses: 0,
                alias_addresses: 0,
                max_aliases: 0,
                lines: 0,
                per_cpu_skipped: 0,
                blank_lines: 0,
                name_bytes: 0,
                shared_name_bytes: 0,
                bytes_reserved: 0,
                name_index_built: true,
                reloads: 0,
                failed_reloads: 0,
            },
            metrics: StoreMetrics::new(),
        }
    }

    /// Builds a table from the text of `/proc/kallsyms`: pre-scan, reserve exactly, fill. The
    /// name index is reserved but built on the first name lookup (or [`Self::build_name_index`]).
    pub fn from_kallsyms(text: &[u8]) -> Result<Self, SymbolTableError> {
        let layout = SymbolTableLayout::from_kallsyms(text)?;
        let (symbols, facts) = PackedSymbols::build(text, &layout)?;
        let stats = SymbolTableStats {
            symbols: symbols.len(),
            modules: if symbols.len() == 0 { 0 } else { facts.modules },
            distinct_addresses: facts.distinct_addresses,
            alias_addresses: facts.alias_addresses,
            max_aliases: facts.max_aliases,
            lines: layout.counts.lines,
            per_cpu_skipped: layout.counts.per_cpu,
            blank_lines: layout.counts.blank,
            name_bytes: symbols.name_bytes(),
            shared_name_bytes: layout.shared_name_bytes,
            bytes_reserved: symbols.bytes_reserved(),
            name_index_built: symbols.name_index_built(),
            reloads: 0,
            failed_reloads: 0,
        };
        Ok(KernelSymbolTable {
            symbols,
            stats,
            metrics: StoreMetrics::new(),
        })
    }

    /// Replaces the table with one built from `text` (after a module load), keeping the metrics
    /// and reload counters. On error the current table stays in place.
    ///
    /// This is the one operation that allocates: the new table's memory, reserved exactly as in
    /// [`Self::from_kallsyms`]; the old table's memory is freed.
    pub fn reload(&mut self, text: &[u8], now: EpochNanos) -> Result<(), SymbolTableError> {
        match Self::from_kallsyms(text) {
            Ok(fresh) => {
                let reloads = self.stats.reloads.saturating_add(1);
                let failed_reloads = self.stats.failed_reloads;
                self.symbols = fresh.symbols;
                self.stats = SymbolTableStats {
                    reloads,
                    failed_reloads,
                    ..fresh.stats
                };
                self.metrics.success(now);
                Ok(())
            }
            Err(error) => {
                self.stats.failed_reloads = self.stats.failed_reloads.saturating_add(1);
                self.metrics.error(now);
                Err(error)
            }
        }
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether the table holds no symbol.
    pub fn is_empty(&self) -> bool {
        self.symbols.len() == 0
    }

    /// Symbols the table has room for: exactly [`Self::len`], it is built to size.
    pub fn capacity(&self) -> usize {
        self.symbols.len()
    }

    /// Heap bytes reserved; equals the pre-scan's [`SymbolTableLayout::bytes`].
    pub fn bytes_reserved(&self) -> usize {
        self.symbols.bytes_reserved()
    }

    /// Reserved bytes per symbol (0 for an empty table).
    pub fn bytes_per_symbol(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.bytes_reserved() as f64 / self.len() as f64
        }
    }

    /// Builds the name index now instead of on the first name lookup. Never allocates.
    pub fn build_name_index(&mut self) {
        self.symbols.ensure_name_index();
        self.stats.name_index_built = self.symbols.name_index_built();
    }

    /// Every symbol at exactly `address`, across modules, in kallsyms text order.
    /// `NotFound` if no symbol starts there.
    pub fn resolve_symbol_by_address(
        &mut self,
        address: u64,
        now: EpochNanos,
    ) -> Result<SymbolAliases<'_>, StoreError> {
        const OPERATION: &str = "resolve_symbol_by_address";
        let range = self.symbols.alias_range(address);
        self.metrics.lookup(range.is_some(), now);
        let range = range.ok_or(StoreError::not_found(store_names::SYMBOL, OPERATION))?;
        Ok(SymbolAliases::new(&self.symbols, address, range))
    }

    /// The address of the first symbol named `name` (see the module docs for "first").
    /// `NotFound` if there is none; `InvalidArgument` if `name` cannot be a kallsyms name (empty,
    /// longer than 511 bytes, or not printable ASCII).
    pub fn get_symbol_address(&mut self, name: &str, now: EpochNanos) -> Result<u64, StoreError> {
        const OPERATION: &str = "get_symbol_address";
        let (start, end) = self.name_lookup(name, OPERATION, now)?;
        let address = if start < end {
            self.symbols
                .by_name_entry(start)
                .and_then(|index| self.symbols.address_of(index))
        } else {
            None
        };
        self.metrics.lookup(address.is_some(), now);
        address.ok_or(StoreError::not_found(store_names::SYMBOL, OPERATION))
    }

    /// Every symbol named `name`, first match first (the order [`Self::get_symbol_address`]
    /// picks from): lets a detector ask "which modules define this name?". Errors as
    /// [`Self::get_symbol_address`].
    pub fn symbols_named(
        &mut self,
        name: &str,
        now: EpochNanos,
    ) -> Result<SymbolsNamed<'_>, StoreError> {
        const OPERATION: &str = "symbols_named";
        let range = self.name_lookup(name, OPERATION, now)?;
        let found = range.0 < range.1;
        self.metrics.lookup(found, now);
        if found {
            Ok(SymbolsNamed::new(&self.symbols, range))
        } else {
            Err(StoreError::not_found(store_names::SYMBOL, OPERATION))
        }
    }

    /// Validates `name`, builds the name index if needed, and finds `name`'s range in it.
    fn name_lookup(
        &mut self,
        name: &str,
        operation: &'static str,
        now: EpochNanos,
    ) -> Result<(usize, usize), StoreError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_SYMBOL_NAME_LEN
            && name.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            self.metrics.error(now);
            return Err(StoreError::new(
                store_names::SYMBOL,
                operation,
                ErrorKind::InvalidArgument,
            ));
        }
        self.build_name_index();
        Ok(self.symbols.name_range(name))
    }

    /// Resolves each of `addresses` exactly, writing one [`SymbolMatch`] per resolved address
    /// into `out` in input order (duplicates included); misses are skipped, never an error. Stops
    /// when `out` is full (the rest are reported as `unprocessed`). Turn a match into views with
    /// [`Self::aliases`]. Each processed address counts as one lookup in the metrics.
    pub fn resolve_symbols_batch(
        &mut self,
        addresses: &[u64],
        now: EpochNanos,
        out: &mut [SymbolMatch],
    ) -> BatchResolution {
        let mut result = BatchResolution::default();
        for (position, &address) in addresses.iter().enumerate() {
            let Some(slot) = out.get_mut(result.found) else {
                result.unprocessed = addresses.len().saturating_sub(position);
                break;
            };
            match self.symbols.alias_range(address) {
                Some(range) => {
                    *slot = SymbolMatch::new(address, range);
                    result.found = result.found.saturating_add(1);
                    self.metrics.hit(now);
                }
                None => {
                    result.missed = result.missed.saturating_add(1);
                    self.metrics.miss(now);
                }
            }
        }
        result
    }

    // ----- read-only queries --------------------------------------------------------------
    // For readers of a shared copy (the actors' published read view): the same answers as the
    // counted queries above, counted nowhere (the caller counts by the rule of
    // `crate::metrics`), from `&self`.

    /// Read-only [`resolve_symbol_by_address`](Self::resolve_symbol_by_address).
    pub fn find_symbol_by_address(&self, address: u64) -> Result<SymbolAliases<'_>, StoreError> {
        let range = self
            .symbols
            .alias_range(address)
            .ok_or(StoreError::not_found(
                store_names::SYMBOL,
                "resolve_symbol_by_address",
            ))?;
        Ok(SymbolAliases::new(&self.symbols, address, range))
    }

    /// Read-only [`get_symbol_address`](Self::get_symbol_address). Needs the name index (built
    /// by [`Self::build_name_index`] or a counted name lookup): without it, `StoreUnhealthy`.
    pub fn find_symbol_address(&self, name: &str) -> Result<u64, StoreError> {
        const OPERATION: &str = "get_symbol_address";
        let valid = !name.is_empty()
            && name.len() <= MAX_SYMBOL_NAME_LEN
            && name.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(StoreError::new(
                store_names::SYMBOL,
                OPERATION,
                ErrorKind::InvalidArgument,
            ));
        }
        if !self.symbols.name_index_built() {
            return Err(StoreError::unhealthy(store_names::SYMBOL, OPERATION));
        }
        let (start, end) = self.symbols.name_range(name);
        (start < end)
            .then(|| self.symbols.by_name_entry(start))
            .flatten()
            .and_then(|index| self.symbols.address_of(index))
            .ok_or(StoreError::not_found(store_names::SYMBOL, OPERATION))
    }

    /// Read-only [`resolve_symbols_batch`](Self::resolve_symbols_batch): each processed address
    /// is a hit (`found`) or a miss (`missed`) for the caller to count.
    pub fn find_symbols_batch(
        &self,
        addresses: &[u64],
        out: &mut [SymbolMatch],
    ) -> BatchResolution {
        let mut result = BatchResolution::default();
        for (position, &address) in addresses.iter().enumerate() {
            let Some(slot) = out.get_mut(result.found) else {
                result.unprocessed = addresses.len().saturating_sub(position);
                break;
            };
            match self.symbols.alias_range(address) {
                Some(range) => {
                    *slot = SymbolMatch::new(address, range);
                    result.found = result.found.saturating_add(1);
                }
                None => result.missed = result.missed.saturating_add(1),
            }
        }
        result
    }

    /// The symbols of a batch match (not counted: the batch already was).
    pub fn aliases(&self, found: SymbolMatch) -> SymbolAliases<'_> {
        SymbolAliases::new(&self.symbols, found.address(), found.range())
    }

    /// The symbol(s) containing `address` and the offset into them; see the module docs for the
    /// containment rule. `NotFound` below the first symbol or past the last symbol of a module
    /// range.
    pub fn nearest(
        &mut self,
        address: u64,
        now: EpochNanos,
    ) -> Result<NearestSymbol<'_>, StoreError> {
        let found = self.containing(address);
        self.metrics.lookup(found.is_some(), now);
        let (symbol_address, range) =
            found.ok_or(StoreError::not_found(store_names::SYMBOL, "nearest"))?;
        Ok(NearestSymbol {
            aliases: SymbolAliases::new(&self.symbols, symbol_address, range),
            offset: address.saturating_sub(symbol_address),
        })
    }

    /// The alias group containing `address`: its start address and entry range.
    fn containing(&self, address: u64) -> Option<(u64, (usize, usize))> {
        let last = self.symbols.last_at_or_below(address)?;
        let symbol_address = self.symbols.address_of(last)?;
        let range = self.symbols.alias_group(last)?;
        if symbol_address == address {
            return Some((symbol_address, range));
        }
        // The next higher address must hold a symbol of one of the group's modules: then the
        // group's end is known and `address` lies before it.
        let next = self.symbols.alias_group(range.1)?;
        let module = |i: usize| self.symbols.module_index_of(i);
        let continues =
            (next.0..next.1).any(|n| (range.0..range.1).any(|g| module(g) == module(n)));
        continues.then_some((symbol_address, range))
    }

    /// Every symbol in address order. A maintenance view (snapshots, diagnostics): not counted
    /// in the metrics.
    pub fn iter(&self) -> SymbolIter<'_> {
        SymbolIter::new(&self.symbols)
    }

    /// The reference's metrics, with `item_count` = symbols held.
    pub fn metrics(&self) -> DataStoreMetrics {
        self.metrics.snapshot(self.len())
    }

    /// `Unhealthy` while the table is empty, `Healthy` otherwise.
    pub fn health(&self, now: EpochNanos) -> HealthInfo {
        if self.is_empty() {
            HealthInfo::unhealthy("no kernel symbols loaded", now)
        } else {
            HealthInfo::healthy(now)
        }
    }

    /// Facts about the table and its reloads.
    pub fn stats(&self) -> SymbolTableStats {
        SymbolTableStats {
            name_index_built: self.symbols.name_index_built(),
            ..self.stats
        }
    }
}

impl Default for KernelSymbolTable {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for KernelSymbolTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelSymbolTable")
            .field("stats", &self.stats())
            .field("metrics", &self.metrics)
            .finish()
    }
}
