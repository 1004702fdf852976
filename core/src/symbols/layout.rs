//! The pre-scan: how much memory a symbol table needs for a given kallsyms text, computed before
//! anything is allocated so that the table reserves it once, exactly, and never grows.
//!
//! The pre-scan and the fill pass ([`super::packed`]) apply the same three rules, defined here:
//! - **name tail sharing** ([`shares_tail`]): a name that is a suffix of the previous kept
//!   symbol's name (`foo` after `__pfx_foo`, or a repeated name) takes no new bytes in the name
//!   arena. Kernels built with function padding list `__pfx_<f>` right before `<f>`, so this saves
//!   roughly 40% of the name bytes of a real table;
//! - **module runs**: each maximal run of consecutive kept symbols of one module reserves one slot
//!   in the module table. Real kallsyms lists each module's symbols together, so runs equal
//!   distinct modules; for odd input it is an upper bound;
//! - **address segments**: each maximal run of kept symbols (in text order) sharing the upper 32
//!   address bits reserves one segment (see [`super::packed`]); an upper bound of the distinct
//!   values, usually 1 or a handful.

use core::mem::size_of;

use crate::kallsyms::{self, KallsymsCounts, KallsymsError, KallsymsLine};

use super::SymbolTableError;
use super::packed::{AddressSegment, SymbolEntry};

/// Module indices are `u16`: at most this many distinct modules, `system` included.
pub const MAX_MODULES: usize = u16::MAX as usize + 1;

/// What a table built from one kallsyms text reserves. [`SymbolTableLayout::bytes`] is exactly
/// the table's `bytes_reserved()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SymbolTableLayout {
    /// How the text's lines were classified.
    pub counts: KallsymsCounts,
    /// Symbols kept (entries of the address-sorted array and of the name index).
    pub symbols: usize,
    /// Bytes of the name arena, after tail sharing.
    pub name_bytes: usize,
    /// Bytes the shared tails saved.
    pub shared_name_bytes: usize,
    /// Module slots: `system` plus one per module run, at most [`MAX_MODULES`].
    pub module_slots: usize,
    /// Bytes of module names: `system` plus each run's module name.
    pub module_name_bytes: usize,
    /// Address segments: runs of equal upper-32-bit addresses in text order.
    pub address_segments: usize,
}

impl SymbolTableLayout {
    /// Scans `text` once, validating every line, and computes the layout.
    pub fn from_kallsyms(text: &[u8]) -> Result<Self, SymbolTableError> {
        let mut layout = SymbolTableLayout {
            module_slots: 1,
            module_name_bytes: kallsyms::KERNEL_MODULE.len(),
            ..SymbolTableLayout::default()
        };
        let mut previous: Option<kallsyms::KallsymsSymbol<'_>> = None;
        let mut lines = kallsyms::lines(text);
        for item in &mut lines {
            let (_, line) = item?;
            let KallsymsLine::Symbol(symbol) = line else {
                continue;
            };
            layout.symbols = layout.symbols.saturating_add(1);
            if shares_tail(previous.map(|p| p.name), symbol.name) {
                layout.shared_name_bytes =
                    layout.shared_name_bytes.saturating_add(symbol.name.len());
            } else {
                layout.name_bytes = layout.name_bytes.saturating_add(symbol.name.len());
            }
            if let Some(module) = symbol.module
                && previous.and_then(|p| p.module) != Some(module)
            {
                layout.module_slots = layout.module_slots.saturating_add(1);
                layout.module_name_bytes = layout.module_name_bytes.saturating_add(module.len());
            }
            if previous.map(|p| high_half(p.address)) != Some(high_half(symbol.address)) {
                layout.address_segments = layout.address_segments.saturating_add(1);
            }
            previous = Some(symbol);
        }
        layout.counts = lines.finish().map_err(SymbolTableError::from)?;
        layout.module_slots = layout.module_slots.min(MAX_MODULES);
        layout.check_limits()?;
        Ok(layout)
    }

    /// Heap bytes a table with this layout reserves.
    /// (Saturates instead of overflowing; such a layout could not be allocated anyway.)
    pub const fn bytes(&self) -> usize {
        // Per symbol: one packed entry plus one `u32` in the name index.
        let per_symbol = size_of::<SymbolEntry>() + size_of::<u32>();
        self.symbols
            .saturating_mul(per_symbol)
            .saturating_add(self.name_bytes)
            .saturating_add(self.module_slots.saturating_mul(size_of::<u32>()))
            .saturating_add(self.module_name_bytes)
            .saturating_add(
                self.address_segments
                    .saturating_mul(size_of::<AddressSegment>()),
            )
    }

    /// Entry indices, name offsets and module offsets are `u32`. (Allocation failures, including
    /// sizes that overflow on 32-bit targets, are caught when reserving.)
    fn check_limits(&self) -> Result<(), SymbolTableError> {
        let max = u32::MAX as usize;
        if self.symbols > max {
            return Err(SymbolTableError::TooManySymbols {
                symbols: self.symbols,
            });
        }
        if self.name_bytes > max || self.module_name_bytes > max {
            return Err(SymbolTableError::NamesTooLarge {
                bytes: self.name_bytes.max(self.module_name_bytes),
            });
        }
        Ok(())
    }
}

/// Whether `name` reuses the tail of the previous kept symbol's name in the arena.
pub(super) fn shares_tail(previous: Option<&str>, name: &str) -> bool {
    previous.is_some_and(|p| p.ends_with(name))
}

/// The upper 32 bits of an address: its segment key.
pub(super) const fn high_half(address: u64) -> u32 {
    (address >> 32) as u32
}

impl From<KallsymsError> for SymbolTableError {
    fn from(error: KallsymsError) -> Self {
        SymbolTableError::Kallsyms(error)
    }
}
