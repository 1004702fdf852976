//! The compact storage behind [`super::KernelSymbolTable`] and the lookups on it.
//!
//! # Layout (all reserved once, from [`SymbolTableLayout`]; never grown)
//! - `entries`: one 12-byte [`SymbolEntry`] per symbol, sorted by address. An entry keeps only
//!   the lower 32 bits of its address; the upper 32 bits are kept once per run of entries that
//!   share them, in `segments` (kernel image, modules and BPF programs of a machine share one or a
//!   few such values). Aliases (several symbols at one address) are adjacent, in text order.
//! - `names`: the name arena, ASCII, names appended in text order; a name that is a suffix of the
//!   previous symbol's name points into it instead of being copied (see [`super::layout`]).
//! - `module_starts` + `module_names`: the module-name table; index 0 is `system`, then modules in
//!   order of first appearance in the text.
//! - `by_name`: the name index, a permutation of entry indices sorted by (name, module index,
//!   entry index), built on first use in its reserved capacity (`sort_unstable` works in place).
//!
//! Per symbol that is 12 + 4 bytes plus its share of the name arena.

use alloc::{string::String, vec::Vec};
use core::cmp::Ordering;
use core::hash::BuildHasher;

use crate::kallsyms::{self, KallsymsLine, SymbolKind};

use super::SymbolTableError;
use super::layout::{MAX_MODULES, SymbolTableLayout, high_half, shares_tail};

/// Bits of [`SymbolEntry::len_kind`] holding the name length (names are at most 511 bytes).
const NAME_LEN_BITS: u32 = 9;
const NAME_LEN_MASK: u16 = (1 << NAME_LEN_BITS) - 1;

/// One symbol, 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SymbolEntry {
    /// Lower 32 bits of the address; the upper 32 come from the segment holding this entry.
    low: u32,
    /// Offset of the name in the name arena; `name_offset + name length <= names.len()`.
    name_offset: u32,
    /// Name length in bits 0..9 (at most 511) and the 7-bit ASCII type character in bits 9..16.
    len_kind: u16,
    /// Index into the module table (`< module_starts.len()`); 0 is `system`.
    module: u16,
}

const _: () = assert!(core::mem::size_of::<SymbolEntry>() == 12);

impl SymbolEntry {
    fn name_len(self) -> usize {
        usize::from(self.len_kind & NAME_LEN_MASK)
    }

    fn kind(self) -> SymbolKind {
        let byte = (self.len_kind >> NAME_LEN_BITS) as u8;
        SymbolKind::new(byte).unwrap_or(UNKNOWN_KIND)
    }
}

/// Fallback for an impossible type byte (entries are only built from validated kinds).
const UNKNOWN_KIND: SymbolKind = match SymbolKind::new(b'?') {
    Some(kind) => kind,
    None => panic!("'?' is a valid kind"),
};

/// A run of address-sorted entries sharing the upper 32 address bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AddressSegment {
    /// The shared upper 32 bits; strictly increasing from one segment to the next.
    high: u32,
    /// Index of the segment's first entry; the segment ends where the next one starts. Segments
    /// are never empty.
    start: u32,
}

/// A symbol as first collected, before sorting by address (construction scratch only, 24 bytes).
#[derive(Clone, Copy)]
struct CollectedSymbol {
    address: u64,
    /// Position among the kept symbols of the text: the alias order. (The name offset cannot
    /// serve: shared names have equal offsets.)
    sequence: u32,
    name_offset: u32,
    len_kind: u16,
    module: u16,
}

/// Facts about the table learnt while building it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BuildFacts {
    /// Distinct modules, `system` included.
    pub(super) modules: usize,
    /// Distinct symbol addresses.
    pub(super) distinct_addresses: usize,
    /// Addresses holding more than one symbol.
    pub(super) alias_addresses: usize,
    /// Most symbols at one address.
    pub(super) max_aliases: usize,
}

/// The storage; see the module docs for the layout and its invariants.
pub(crate) struct PackedSymbols {
    entries: Vec<SymbolEntry>,
    segments: Vec<AddressSegment>,
    names: String,
    module_starts: Vec<u32>,
    module_names: String,
    /// Empty until built; then `entries.len()` indices sorted by (name, module, index).
    by_name: Vec<u32>,
}

impl PackedSymbols {
    /// No symbols, nothing reserved.
    pub(super) const fn empty() -> Self {
        PackedSymbols {
            entries: Vec::new(),
            segments: Vec::new(),
            names: String::new(),
            module_starts: Vec::new(),
            module_names: String::new(),
            by_name: Vec::new(),
        }
    }

    /// Builds the storage from `text`, reserving exactly what `layout` (its pre-scan) says.
    pub(super) fn build(
        text: &[u8],
        layout: &SymbolTableLayout,
    ) -> Result<(Self, BuildFacts), SymbolTableError> {
        let mut names = reserved_string(layout.name_bytes)?;
        let mut module_starts = reserved_vec::<u32>(layout.module_slots)?;
        let mut module_names = reserved_string(layout.module_name_bytes)?;
        let mut modules = ModuleLookup::new(layout.module_slots)?;
        modules.find_or_insert(
            kallsyms::KERNEL_MODULE,
            &mut module_starts,
            &mut module_names,
        )?;

        // Construction scratch: symbols in text order with full addresses, sorted below and
        // freed before returning.
        let mut collected = reserved_vec::<CollectedSymbol>(layout.symbols)?;
        let mut previous: Option<(kallsyms::KallsymsSymbol<'_>, u32, u16)> = None;
        for item in kallsyms::lines(text) {
            let (_, line) = item?;
            let KallsymsLine::Symbol(symbol) = line else {
                continue;
            };
            let name_len = symbol.name.len();
            let name_offset = match previous {
                Some((prev, prev_offset, _)) if shares_tail(Some(prev.name), symbol.name) => {
                    let skip = prev.name.len().saturating_sub(name_len);
                    prev_offset.saturating_add(to_u32(skip)?)
                }
                _ => {
                    let offset = to_u32(names.len())?;
                    push_str_within(&mut names, symbol.name)?;
                    offset
                }
            };
            let module = match (symbol.module, previous) {
                (None, _) => 0,
                (Some(module), Some((prev, _, prev_module))) if prev.module == Some(module) => {
                    prev_module
                }
                (Some(module), _) => {
                    modules.find_or_insert(module, &mut module_starts, &mut module_names)?
                }
            };
            // Names are at most 511 bytes (9 bits); kinds are 7-bit ASCII.
            let len_kind = (name_len as u16 & NAME_LEN_MASK)
                | (u16::from(symbol.kind.as_byte()) << NAME_LEN_BITS);
            let sequence = to_u32(collected.len())?;
            push_within(
                &mut collected,
                CollectedSymbol {
                    address: symbol.address,
                    sequence,
                    name_offset,
                    len_kind,
                    module,
                },
            )?;
            previous = Some((symbol, name_offset, module));
        }
        drop(modules);

        // Aliases end up in text order. (`sort_unstable` sorts in place; a stable sort would
        // allocate another scratch buffer as large as `collected`.)
        collected.sort_unstable_by_key(|c| (c.address, c.sequence));

        let mut entries = reserved_vec::<SymbolEntry>(layout.symbols)?;
        let mut segments = reserved_vec::<AddressSegment>(layout.address_segments)?;
        let mut facts = BuildFacts {
            modules: module_starts.len(),
            ..BuildFacts::default()
        };
        let mut previous_address = None;
        let mut run = 0usize;
        for (index, c) in collected.iter().enumerate() {
            let high = high_half(c.address);
            if segments.last().map(|s| s.high) != Some(high) {
                push_within(
                    &mut segments,
                    AddressSegment {
                        high,
                        start: to_u32(index)?,
                    },
                )?;
            }
            if previous_address == Some(c.address) {
                run = run.saturating_add(1);
                if run == 2 {
                    facts.alias_addresses = facts.alias_addresses.saturating_add(1);
                }
            } else {
                run = 1;
                facts.distinct_addresses = facts.distinct_addresses.saturating_add(1);
            }
            facts.max_aliases = facts.max_aliases.max(run);
            previous_address = Some(c.address);
            push_within(
                &mut entries,
                SymbolEntry {
                    low: c.address as u32,
                    name_offset: c.name_offset,
                    len_kind: c.len_kind,
                    module: c.module,
                },
            )?;
        }
        drop(collected);

        let by_name = reserved_vec::<u32>(layout.symbols)?;
        let packed = PackedSymbols {
            entries,
            segments,
            names,
            module_starts,
            module_names,
            by_name,
        };
        Ok((packed, facts))
    }

    /// Number of symbols.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Heap bytes reserved (capacities, not lengths).
    pub(super) fn bytes_reserved(&self) -> usize {
        use core::mem::size_of;
        self.entries.capacity() * size_of::<SymbolEntry>()
            + self.segments.capacity() * size_of::<AddressSegment>()
            + self.names.capacity()
            + self.module_starts.capacity() * size_of::<u32>()
            + self.module_names.capacity()
            + self.by_name.capacity() * size_of::<u32>()
    }

    /// Bytes used in the name arena.
    pub(super) fn name_bytes(&self) -> usize {
        self.names.len()
    }

    /// Whether the name index has been built.
    pub(super) fn name_index_built(&self) -> bool {
        !self.by_name.is_empty() || self.entries.is_empty()
    }

    /// The full address of entry `index`.
    pub(super) fn address_of(&self, index: usize) -> Option<u64> {
        let entry = self.entries.get(index)?;
        let segment = self
            .segments
            .partition_point(|s| s.start as usize <= index)
            .checked_sub(1)?;
        let high = self.segments.get(segment)?.high;
        Some((u64::from(high) << 32) | u64::from(entry.low))
    }

    /// The name of entry `index` (empty if out of range).
    pub(super) fn name_of(&self, index: usize) -> &str {
        self.entries
            .get(index)
            .map_or("", |e| entry_name(&self.names, *e))
    }

    /// The module name of entry `index` (empty if out of range).
    pub(super) fn module_of(&self, index: usize) -> &str {
        self.entries
            .get(index)
            .map_or("", |e| self.module_name(e.module))
    }

    /// The module index of entry `index`.
    pub(super) fn module_index_of(&self, index: usize) -> Option<u16> {
        self.entries.get(index).map(|e| e.module)
    }

    /// The type character of entry `index`.
    pub(super) fn kind_of(&self, index: usize) -> SymbolKind {
        self.entries.get(index).map_or(UNKNOWN_KIND, |e| e.kind())
    }

    /// Name of module `module` (empty if out of range).
    fn module_name(&self, module: u16) -> &str {
        let index = usize::from(module);
        let Some(&start) = self.module_starts.get(index) else {
            return "";
        };
        let end = self
            .module_starts
            .get(index.saturating_add(1))
            .map_or(self.module_names.len(), |&s| s as usize);
        self.module_names.get(start as usize..end).unwrap_or("")
    }

    /// Bounds of segment `segment` in `entries`.
    fn segment_bounds(&self, segment: usize) -> Option<(usize, usize)> {
        let start = self.segments.get(segment)?.start as usize;
        let end = self
            .segments
            .get(segment.saturating_add(1))
            .map_or(self.entries.len(), |s| s.start as usize);
        Some((start, end))
    }

    /// The entries at exactly `address`, as an index range; `None` if there are none.
    pub(super) fn alias_range(&self, address: u64) -> Option<(usize, usize)> {
        let segment = self
            .segments
            .binary_search_by_key(&high_half(address), |s| s.high)
            .ok()?;
        let (start, end) = self.segment_bounds(segment)?;
        let slice = self.entries.get(start..end)?;
        let low = address as u32;
        let first = slice.partition_point(|e| e.low < low);
        let count = slice
            .get(first..)?
            .iter()
            .take_while(|e| e.low == low)
            .count();
        let first = start.saturating_add(first);
        (count > 0).then(|| (first, first.saturating_add(count)))
    }

    /// The entries sharing entry `index`'s address, as an index range (found by walking from
    /// `index`: aliases are adjacent and never span segments).
    pub(super) fn alias_group(&self, index: usize) -> Option<(usize, usize)> {
        let low = self.entries.get(index)?.low;
        let segment = self
            .segments
            .partition_point(|s| s.start as usize <= index)
            .checked_sub(1)?;
        let (start, end) = self.segment_bounds(segment)?;
        let before = self
            .entries
            .get(start..index)?
            .iter()
            .rev()
            .take_while(|e| e.low == low)
            .count();
        let from = self.entries.get(index..end)?;
        let after = from.iter().take_while(|e| e.low == low).count();
        Some((index.saturating_sub(before), index.saturating_add(after)))
    }

    /// Index of the last entry whose address is `<= address`; `None` below the first symbol.
    pub(super) fn last_at_or_below(&self, address: u64) -> Option<usize> {
        let high = high_half(address);
        let segment = self
            .segments
            .partition_point(|s| s.high <= high)
            .checked_sub(1)?;
        let (start, end) = self.segment_bounds(segment)?;
        if self.segments.get(segment)?.high < high {
            // The whole segment lies below `address`.
            return end.checked_sub(1);
        }
        let low = address as u32;
        let at_or_below = self
            .entries
            .get(start..end)?
            .partition_point(|e| e.low <= low);
        // None of this segment: the answer is the previous segment's last entry, if any.
        start.saturating_add(at_or_below).checked_sub(1)
    }

    /// Builds the name index in its reserved capacity, if not built yet. Never allocates.
    pub(super) fn ensure_name_index(&mut self) {
        let count = self.entries.len();
        if !self.by_name.is_empty() || count == 0 || self.by_name.capacity() < count {
            return;
        }
        let Ok(count) = u32::try_from(count) else {
            return;
        };
        self.by_name.extend(0..count);
        let PackedSymbols {
            by_name,
            entries,
            names,
            ..
        } = self;
        by_name.sort_unstable_by(|&a, &b| {
            let ea = entries.get(a as usize).copied();
            let eb = entries.get(b as usize).copied();
            let name_a = ea.map_or("", |e| entry_name(names, e));
            let name_b = eb.map_or("", |e| entry_name(names, e));
            name_a
                .cmp(name_b)
                .then_with(|| ea.map(|e| e.module).cmp(&eb.map(|e| e.module)))
                .then(a.cmp(&b))
        });
    }

    /// Positions in the name index holding `name`, first match first; empty when absent or when
    /// the index is not built.
    pub(super) fn name_range(&self, name: &str) -> (usize, usize) {
        let start = self
            .by_name
            .partition_point(|&i| self.name_of(i as usize).cmp(name) == Ordering::Less);
        let count = self
            .by_name
            .get(start..)
            .unwrap_or_default()
            .partition_point(|&i| self.name_of(i as usize) == name);
        (start, start.saturating_add(count))
    }

    /// Entry index at position `position` of the name index.
    pub(super) fn by_name_entry(&self, position: usize) -> Option<usize> {
        self.by_name.get(position).map(|&i| i as usize)
    }
}

/// The name of `entry` in `names` (empty if the entry were inconsistent).
fn entry_name(names: &str, entry: SymbolEntry) -> &str {
    let start = entry.name_offset as usize;
    names
        .get(start..start.saturating_add(entry.name_len()))
        .unwrap_or("")
}

/// Construction scratch: module name → module index, open addressing over a table at most half
/// full, so lookups stay O(1) even for adversarial text with many module runs.
struct ModuleLookup {
    /// Module index + 1; 0 = empty. Length is a power of two.
    slots: Vec<u32>,
    hasher: foldhash::fast::FixedState,
}

impl ModuleLookup {
    fn new(module_slots: usize) -> Result<Self, SymbolTableError> {
        let size = module_slots
            .saturating_mul(2)
            .max(2)
            .checked_next_power_of_two()
            .ok_or(SymbolTableError::TooManyModules)?;
        let mut slots = reserved_vec::<u32>(size)?;
        slots.resize(size, 0);
        Ok(ModuleLookup {
            slots,
            hasher: foldhash::fast::FixedState::with_seed(0x6b61_6c6c_7379_6d73),
        })
    }

    /// The index of module `name`, appending it to the module table if new.
    fn find_or_insert(
        &mut self,
        name: &str,
        module_starts: &mut Vec<u32>,
        module_names: &mut String,
    ) -> Result<u16, SymbolTableError> {
        let mask = self.slots.len().saturating_sub(1);
        let mut position = (self.hasher.hash_one(name.as_bytes()) as usize) & mask;
        for _ in 0..self.slots.len() {
            let slot = self.slots.get(position).copied().unwrap_or(0);
            if slot == 0 {
                let index = module_starts.len();
                if index >= MAX_MODULES {
                    return Err(SymbolTableError::TooManyModules);
                }
                let index = u16::try_from(index).map_err(|_| SymbolTableError::TooManyModules)?;
                push_within(module_starts, to_u32(module_names.len())?)?;
                push_str_within(module_names, name)?;
                if let Some(s) = self.slots.get_mut(position) {
                    *s = u32::from(index) + 1;
                }
                return Ok(index);
            }
            let index = slot.saturating_sub(1) as usize;
            if module_name_at(module_starts, module_names, index) == name {
                return u16::try_from(index).map_err(|_| SymbolTableError::TooManyModules);
            }
            position = position.saturating_add(1) & mask;
        }
        Err(SymbolTableError::TooManyModules)
    }
}

fn module_name_at<'a>(starts: &[u32], names: &'a str, index: usize) -> &'a str {
    let Some(&start) = starts.get(index) else {
        return "";
    };
    let end = starts
        .get(index.saturating_add(1))
        .map_or(names.len(), |&s| s as usize);
    names.get(start as usize..end).unwrap_or("")
}

fn to_u32(value: usize) -> Result<u32, SymbolTableError> {
    u32::try_from(value).map_err(|_| SymbolTableError::TooManySymbols { symbols: value })
}

fn reserved_vec<T>(capacity: usize) -> Result<Vec<T>, SymbolTableError> {
    let mut v = Vec::new();
    v.try_reserve_exact(capacity)
        .map_err(|_| SymbolTableError::OutOfMemory {
            bytes: capacity.saturating_mul(core::mem::size_of::<T>()),
        })?;
    Ok(v)
}

fn reserved_string(capacity: usize) -> Result<String, SymbolTableError> {
    let mut s = String::new();
    s.try_reserve_exact(capacity)
        .map_err(|_| SymbolTableError::OutOfMemory { bytes: capacity })?;
    Ok(s)
}

/// Pushes within the reserved capacity; running out means the fill pass disagrees with the
/// pre-scan, which is reported instead of growing.
fn push_within<T>(v: &mut Vec<T>, value: T) -> Result<(), SymbolTableError> {
    if v.len() < v.capacity() {
        v.push(value);
        Ok(())
    } else {
        Err(SymbolTableError::LayoutMismatch)
    }
}

fn push_str_within(s: &mut String, value: &str) -> Result<(), SymbolTableError> {
    if s.capacity().saturating_sub(s.len()) >= value.len() {
        s.push_str(value);
        Ok(())
    } else {
        Err(SymbolTableError::LayoutMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> PackedSymbols {
        let layout = SymbolTableLayout::from_kallsyms(text.as_bytes()).unwrap();
        let (packed, _) = PackedSymbols::build(text.as_bytes(), &layout).unwrap();
        assert_eq!(packed.bytes_reserved(), layout.bytes());
        packed
    }

    #[test]
    fn prefix_names_share_the_arena() {
        let p = build(
            "ffffffff81000000 T __pfx_do_thing\nffffffff81000010 T do_thing\nffffffff81000020 T other\n",
        );
        assert_eq!(p.name_bytes(), "__pfx_do_thing".len() + "other".len());
        assert_eq!(p.name_of(0), "__pfx_do_thing");
        assert_eq!(p.name_of(1), "do_thing");
        assert_eq!(p.name_of(2), "other");
    }

    #[test]
    fn segments_split_by_upper_half() {
        let p = build(
            "ffff800080000000 T a\nffff7fff00001000 t m\t[mod]\nffffffffc0000000 t bpf_prog\t[bpf]\n",
        );
        assert_eq!(p.segments.len(), 3);
        assert_eq!(p.address_of(0), Some(0xffff_7fff_0000_1000));
        assert_eq!(p.address_of(2), Some(0xffff_ffff_c000_0000));
        assert_eq!(p.last_at_or_below(0xffff_8000_0000_0000), Some(0));
        assert_eq!(p.last_at_or_below(0xffff_8000_7fff_ffff), Some(0));
        assert_eq!(p.last_at_or_below(0xffff_8000_8000_0000), Some(1));
        assert_eq!(p.last_at_or_below(0xffff_7fff_0000_0fff), None);
        assert_eq!(p.last_at_or_below(u64::MAX), Some(2));
        assert_eq!(p.module_of(0), "mod");
        assert_eq!(p.module_of(1), "system");
        assert_eq!(p.module_of(2), "bpf");
    }

    #[test]
    fn aliases_keep_text_order_even_with_shared_names() {
        // The second `_` shares the first's bytes (same offset): order must come from the text.
        let p = build("ffffffff81000028 t _\t[mod0]\nffffffff81000028 t _\n");
        assert_eq!(p.alias_range(0xffff_ffff_8100_0028), Some((0, 2)));
        assert_eq!((p.module_of(0), p.module_of(1)), ("mod0", "system"));
        assert_eq!(p.alias_group(1), Some((0, 2)));
    }

    #[test]
    fn module_table_dedupes_repeated_runs() {
        let p = build(
            "ffffffffc0000000 t a\t[m1]\nffffffffc0001000 t b\t[m2]\nffffffffc0002000 t c\t[m1]\n",
        );
        assert_eq!(p.module_starts.len(), 3); // system, m1, m2
        assert_eq!(p.module_of(2), "m1");
        assert_eq!(p.module_index_of(0), p.module_index_of(2));
    }
}
