//! What symbol queries hand out: borrowed views into the table, iterators over them, and a plain
//! `Copy` handle for batch results. Nothing here allocates, except the explicit conversion to an
//! owned [`SymbolInfo`].

use alloc::string::{String, ToString};
use core::fmt;
use core::iter::FusedIterator;

use crate::kallsyms::{KERNEL_MODULE, SymbolKind};

use super::packed::PackedSymbols;

/// One symbol, borrowed from the table: the reference's `SymbolInfo` plus the type character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SymbolView<'a> {
    /// Symbol name, e.g. `do_sys_open`.
    pub name: &'a str,
    /// Symbol address.
    pub address: u64,
    /// Module name: `"system"` for the kernel image, otherwise the module (or pseudo-module such
    /// as `bpf`) that owns the symbol.
    pub module: &'a str,
    /// The kallsyms type character (`T`, `t`, `D`, …).
    pub kind: SymbolKind,
}

impl SymbolView<'_> {
    /// Whether the symbol belongs to the kernel image (module `"system"`).
    pub fn is_kernel(&self) -> bool {
        self.module == KERNEL_MODULE
    }

    /// An owned copy, allocated in the caller's result (never in the store).
    pub fn to_info(&self) -> SymbolInfo {
        SymbolInfo {
            name: self.name.to_string(),
            address: self.address,
            module: self.module.to_string(),
        }
    }
}

/// An owned symbol, the reference's `SymbolInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SymbolInfo {
    /// Symbol name.
    pub name: String,
    /// Symbol address.
    pub address: u64,
    /// Module name (`"system"` for the kernel image).
    pub module: String,
}

/// A batch hit: the aliases found at one address, as a plain handle. Turn it into views with
/// [`super::KernelSymbolTable::aliases`]. Valid for the table that produced it, until its next
/// reload (a stale handle yields wrong or no views, never a panic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SymbolMatch {
    address: u64,
    /// First entry (address order) at `address`.
    start: u32,
    /// Number of entries at `address`; at least 1 for a real match.
    count: u32,
}

impl SymbolMatch {
    pub(super) fn new(address: u64, range: (usize, usize)) -> Self {
        let start = u32::try_from(range.0).unwrap_or(u32::MAX);
        let count = u32::try_from(range.1.saturating_sub(range.0)).unwrap_or(0);
        SymbolMatch {
            address,
            start,
            count,
        }
    }

    /// The address that was resolved.
    pub const fn address(&self) -> u64 {
        self.address
    }

    /// How many symbols sit at that address.
    pub const fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the match holds no symbol (only a default-constructed handle).
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(super) fn range(&self) -> (usize, usize) {
        let start = self.start as usize;
        (start, start.saturating_add(self.count as usize))
    }
}

/// Every symbol at one address (aliases, across modules), in kallsyms text order.
#[derive(Clone)]
pub struct SymbolAliases<'a> {
    symbols: &'a PackedSymbols,
    address: u64,
    /// Next entry to yield; `next <= end`.
    next: usize,
    end: usize,
}

impl<'a> SymbolAliases<'a> {
    pub(super) fn new(symbols: &'a PackedSymbols, address: u64, range: (usize, usize)) -> Self {
        let end = range.1.min(symbols.len());
        SymbolAliases {
            symbols,
            address,
            next: range.0.min(end),
            end,
        }
    }

    /// The address all these symbols share.
    pub fn address(&self) -> u64 {
        self.address
    }

    /// The first alias (in text order) without advancing.
    pub fn first(&self) -> Option<SymbolView<'a>> {
        self.clone().next()
    }
}

impl<'a> Iterator for SymbolAliases<'a> {
    type Item = SymbolView<'a>;

    fn next(&mut self) -> Option<SymbolView<'a>> {
        if self.next >= self.end {
            return None;
        }
        let index = self.next;
        self.next = self.next.saturating_add(1);
        Some(view(self.symbols, index, self.address))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end.saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for SymbolAliases<'_> {}
impl FusedIterator for SymbolAliases<'_> {}

impl fmt::Debug for SymbolAliases<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// The symbol(s) containing an address, and how far into them the address is.
#[derive(Debug, Clone)]
pub struct NearestSymbol<'a> {
    /// Every symbol at the containing symbol's start address.
    pub aliases: SymbolAliases<'a>,
    /// `queried address - symbol address`.
    pub offset: u64,
}

impl NearestSymbol<'_> {
    /// The start address of the containing symbol.
    pub fn symbol_address(&self) -> u64 {
        self.aliases.address()
    }
}

/// Every symbol with one name, first match first (see [`super::KernelSymbolTable::symbols_named`]).
#[derive(Clone)]
pub struct SymbolsNamed<'a> {
    symbols: &'a PackedSymbols,
    /// Next position in the name index; `next <= end`.
    next: usize,
    end: usize,
}

impl<'a> SymbolsNamed<'a> {
    pub(super) fn new(symbols: &'a PackedSymbols, range: (usize, usize)) -> Self {
        SymbolsNamed {
            symbols,
            next: range.0.min(range.1),
            end: range.1,
        }
    }
}

impl<'a> Iterator for SymbolsNamed<'a> {
    type Item = SymbolView<'a>;

    fn next(&mut self) -> Option<SymbolView<'a>> {
        while self.next < self.end {
            let position = self.next;
            self.next = self.next.saturating_add(1);
            if let Some(index) = self.symbols.by_name_entry(position) {
                let address = self.symbols.address_of(index).unwrap_or(0);
                return Some(view(self.symbols, index, address));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.end.saturating_sub(self.next)))
    }
}

impl FusedIterator for SymbolsNamed<'_> {}

impl fmt::Debug for SymbolsNamed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// Every symbol of the table in address order (see [`super::KernelSymbolTable::iter`]).
#[derive(Clone)]
pub struct SymbolIter<'a> {
    symbols: &'a PackedSymbols,
    next: usize,
}

impl<'a> SymbolIter<'a> {
    pub(super) fn new(symbols: &'a PackedSymbols) -> Self {
        SymbolIter { symbols, next: 0 }
    }
}

impl<'a> Iterator for SymbolIter<'a> {
    type Item = SymbolView<'a>;

    fn next(&mut self) -> Option<SymbolView<'a>> {
        let index = self.next;
        let address = self.symbols.address_of(index)?;
        self.next = self.next.saturating_add(1);
        Some(view(self.symbols, index, address))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.symbols.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for SymbolIter<'_> {}
impl FusedIterator for SymbolIter<'_> {}

impl fmt::Debug for SymbolIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SymbolIter")
            .field("remaining", &self.len())
            .finish()
    }
}

fn view(symbols: &PackedSymbols, index: usize, address: u64) -> SymbolView<'_> {
    SymbolView {
        name: symbols.name_of(index),
        address,
        module: symbols.module_of(index),
        kind: symbols.kind_of(index),
    }
}
