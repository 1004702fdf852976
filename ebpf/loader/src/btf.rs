//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): just enough to find struct
//! member offsets and tracepoint prototypes.
//!
//! aya-ebpf programs have no CO-RE relocations, so the loader looks up where `task_struct.pid`
//! and friends live in the running kernel and hands the offsets to the programs as globals.
//! The format is the kernel's `Documentation/bpf/btf.rst`: a header, a type section (records
//! numbered from 1 in order, each a 12-byte `btf_type` followed by kind-specific data) and a
//! string section. Every read is bounds-checked: a truncated or foreign file is an error, never
//! a panic.

use std::path::Path;

/// BTF's magic number, as the file's first two bytes read in the file's byte order.
const BTF_MAGIC: u16 = 0xeb9f;

/// The BTF kinds this reader needs to tell apart (`BTF_KIND_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BtfKind {
    /// `BTF_KIND_INT`.
    Int = 1,
    /// `BTF_KIND_PTR`.
    Ptr = 2,
    /// `BTF_KIND_ARRAY`.
    Array = 3,
    /// `BTF_KIND_STRUCT`.
    Struct = 4,
    /// `BTF_KIND_UNION`.
    Union = 5,
    /// `BTF_KIND_ENUM`.
    Enum = 6,
    /// `BTF_KIND_FWD`.
    Fwd = 7,
    /// `BTF_KIND_TYPEDEF`.
    Typedef = 8,
    /// `BTF_KIND_VOLATILE`.
    Volatile = 9,
    /// `BTF_KIND_CONST`.
    Const = 10,
    /// `BTF_KIND_RESTRICT`.
    Restrict = 11,
    /// `BTF_KIND_FUNC`.
    Func = 12,
    /// `BTF_KIND_FUNC_PROTO`.
    FuncProto = 13,
    /// `BTF_KIND_VAR`.
    Var = 14,
    /// `BTF_KIND_DATASEC`.
    Datasec = 15,
    /// `BTF_KIND_FLOAT`.
    Float = 16,
    /// `BTF_KIND_DECL_TAG`.
    DeclTag = 17,
    /// `BTF_KIND_TYPE_TAG`.
    TypeTag = 18,
    /// `BTF_KIND_ENUM64`.
    Enum64 = 19,
}

impl BtfKind {
    fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => BtfKind::Int,
            2 => BtfKind::Ptr,
            3 => BtfKind::Array,
            4 => BtfKind::Struct,
            5 => BtfKind::Union,
            6 => BtfKind::Enum,
            7 => BtfKind::Fwd,
            8 => BtfKind::Typedef,
            9 => BtfKind::Volatile,
            10 => BtfKind::Const,
            11 => BtfKind::Restrict,
            12 => BtfKind::Func,
            13 => BtfKind::FuncProto,
            14 => BtfKind::Var,
            15 => BtfKind::Datasec,
            16 => BtfKind::Float,
            17 => BtfKind::DeclTag,
            18 => BtfKind::TypeTag,
            19 => BtfKind::Enum64,
            _ => return None,
        })
    }

    /// Bytes of kind-specific data after the 12-byte `btf_type`, for `vlen` items.
    fn trailer_len(self, vlen: usize) -> Option<usize> {
        match self {
            BtfKind::Int | BtfKind::Var | BtfKind::DeclTag => Some(4),
            BtfKind::Array => Some(12),
            BtfKind::Struct | BtfKind::Union | BtfKind::Datasec | BtfKind::Enum64 => {
                vlen.checked_mul(12)
            }
            BtfKind::Enum | BtfKind::FuncProto => vlen.checked_mul(8),
            BtfKind::Ptr
            | BtfKind::Fwd
            | BtfKind::Typedef
            | BtfKind::Volatile
            | BtfKind::Const
            | BtfKind::Restrict
            | BtfKind::Func
            | BtfKind::Float
            | BtfKind::TypeTag => Some(0),
        }
    }
}

/// Why BTF could not be read, or did not have what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The BTF file could not be read.
    #[error("cannot read kernel BTF at {path}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not BTF this reader understands.
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    /// No type of this name and kind.
    #[error("kernel BTF has no {kind:?} named `{name}`")]
    TypeNotFound {
        /// The name looked for.
        name: String,
        /// The kind looked for.
        kind: BtfKind,
    },
    /// The struct has no such member (nor inside its anonymous members).
    #[error("kernel BTF: `struct {type_name}` has no member `{member}`")]
    MemberNotFound {
        /// The struct.
        type_name: String,
        /// The member.
        member: String,
    },
    /// The member is a bitfield or not byte-aligned, so it cannot be read by byte offset.
    #[error("kernel BTF: `{type_name}.{member}` is a bitfield (bit offset {bit_offset})")]
    NotByteAligned {
        /// The struct.
        type_name: String,
        /// The member.
        member: String,
        /// Its bit offset.
        bit_offset: u32,
    },
}

/// One type record's position and header fields.
#[derive(Debug, Clone, Copy)]
struct TypeEntry {
    /// Byte offset of the 12-byte `btf_type` within the type section.
    at: usize,
    name_off: u32,
    kind: BtfKind,
    vlen: usize,
    kind_flag: bool,
    /// `size` or `type`, by kind.
    size_or_type: u32,
}

/// A struct or union member as BTF describes it.
#[derive(Debug, Clone, Copy)]
struct Member<'a> {
    name: &'a str,
    type_id: u32,
    bit_offset: u32,
    bitfield_size: u32,
}

/// Parsed BTF: the raw bytes plus an index from type ID to its record.
pub struct KernelBtf {
    /// Whether the file's byte order differs from ours.
    swapped: bool,
    types: Vec<u8>,
    strings: Vec<u8>,
    /// `entries[id - 1]` is type `id` (ID 0 is `void`).
    entries: Vec<TypeEntry>,
}

impl std::fmt::Debug for KernelBtf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelBtf")
            .field("types", &self.entries.len())
            .field("string_bytes", &self.strings.len())
            .finish()
    }
}

/// Where the kernel publishes its own BTF.
pub const KERNEL_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

impl KernelBtf {
    /// Reads and indexes the BTF file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes)
    }

    /// Indexes raw BTF bytes (header, types, strings).
    pub fn parse(bytes: &[u8]) -> Result<Self, BtfError> {
        let magic_bytes: [u8; 2] = bytes
            .get(..2)
            .and_then(|b| b.try_into().ok())
            .ok_or(BtfError::Malformed("shorter than a header"))?;
        let swapped = if u16::from_ne_bytes(magic_bytes) == BTF_MAGIC {
            false
        } else if u16::from_ne_bytes(magic_bytes).swap_bytes() == BTF_MAGIC {
            true
        } else {
            return Err(BtfError::Malformed("bad magic"));
        };
        let read_u32 = |at: usize| -> Result<u32, BtfError> {
            read_u32_at(bytes, at, swapped).ok_or(BtfError::Malformed("truncated header"))
        };
        let hdr_len = read_u32(4)? as usize;
        let type_off = read_u32(8)? as usize;
        let type_len = read_u32(12)? as usize;
        let str_off = read_u32(16)? as usize;
        let str_len = read_u32(20)? as usize;
        let section = |off: usize, len: usize, what: &'static str| -> Result<Vec<u8>, BtfError> {
            let start = hdr_len.checked_add(off).ok_or(BtfError::Malformed(what))?;
            let end = start.checked_add(len).ok_or(BtfError::Malformed(what))?;
            bytes
                .get(start..end)
                .map(<[u8]>::to_vec)
                .ok_or(BtfError::Malformed(what))
        };
        let types = section(type_off, type_len, "type section out of bounds")?;
        let strings = section(str_off, str_len, "string section out of bounds")?;

        let mut entries = Vec::new();
        let mut at = 0usize;
        while at < types.len() {
            let name_off = read_u32_at(&types, at, swapped)
                .ok_or(BtfError::Malformed("truncated type record"))?;
            let info = read_u32_at(&types, at + 4, swapped)
                .ok_or(BtfError::Malformed("truncated type record"))?;
            let size_or_type = read_u32_at(&types, at + 8, swapped)
                .ok_or(BtfError::Malformed("truncated type record"))?;
            let kind = BtfKind::from_raw((info >> 24) & 0x1f)
                .ok_or(BtfError::Malformed("unknown type kind"))?;
            let vlen = (info & 0xffff) as usize;
            let trailer = kind
                .trailer_len(vlen)
                .ok_or(BtfError::Malformed("type record too long"))?;
            entries.push(TypeEntry {
                at,
                name_off,
                kind,
                vlen,
                kind_flag: info >> 31 == 1,
                size_or_type,
            });
            at = at
                .checked_add(12 + trailer)
                .ok_or(BtfError::Malformed("type record too long"))?;
            if at > types.len() {
                return Err(BtfError::Malformed("truncated type record"));
            }
        }
        Ok(KernelBtf {
            swapped,
            types,
            strings,
            entries,
        })
    }

    /// Number of types (not counting `void`).
    pub fn type_count(&self) -> usize {
        self.entries.len()
    }

    fn string(&self, off: u32) -> Result<&str, BtfError> {
        let tail = self
            .strings
            .get(off as usize..)
            .ok_or(BtfError::Malformed("string offset out of bounds"))?;
        let end = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or(BtfError::Malformed("unterminated string"))?;
        std::str::from_utf8(&tail[..end]).map_err(|_| BtfError::Malformed("non-UTF-8 name"))
    }

    fn entry(&self, id: u32) -> Result<&TypeEntry, BtfError> {
        id.checked_sub(1)
            .and_then(|index| self.entries.get(index as usize))
            .ok_or(BtfError::Malformed("type ID out of range"))
    }

    fn u32_in_types(&self, at: usize) -> Result<u32, BtfError> {
        read_u32_at(&self.types, at, self.swapped).ok_or(BtfError::Malformed("truncated type data"))
    }

    /// The ID of the type named `name` of kind `kind` (the first, if several).
    pub fn type_id(&self, name: &str, kind: BtfKind) -> Result<u32, BtfError> {
        for (index, entry) in self.entries.iter().enumerate() {
            if entry.kind == kind && entry.name_off != 0 && self.string(entry.name_off)? == name {
                // `index < entries.len() <= u32::MAX` since type IDs are u32 in the format.
                return Ok(index as u32 + 1);
            }
        }
        Err(BtfError::TypeNotFound {
            name: name.to_owned(),
            kind,
        })
    }

    /// Whether a type named `name` of kind `kind` exists.
    pub fn has_type(&self, name: &str, kind: BtfKind) -> bool {
        self.type_id(name, kind).is_ok()
    }

    fn members(&self, entry: &TypeEntry) -> Result<Vec<Member<'_>>, BtfError> {
        let mut members = Vec::with_capacity(entry.vlen);
        for i in 0..entry.vlen {
            let at = entry.at + 12 + i * 12;
            let name_off = self.u32_in_types(at)?;
            let type_id = self.u32_in_types(at + 4)?;
            let offset = self.u32_in_types(at + 8)?;
            let (bit_offset, bitfield_size) = if entry.kind_flag {
                (offset & 0x00ff_ffff, offset >> 24)
            } else {
                (offset, 0)
            };
            members.push(Member {
                name: self.string(name_off)?,
                type_id,
                bit_offset,
                bitfield_size,
            });
        }
        Ok(members)
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..32 {
            let entry = self.entry(id)?;
            match entry.kind {
                BtfKind::Typedef
                | BtfKind::Volatile
                | BtfKind::Const
                | BtfKind::Restrict
                | BtfKind::TypeTag => id = entry.size_or_type,
                _ => return Ok(id),
            }
        }
        Err(BtfError::Malformed("typedef chain too long"))
    }

    /// Bit offset of `member` in the struct/union `id`, searching anonymous struct/union members
    /// recursively (the kernel nests members in them, e.g. for randomised layouts).
    fn find_member_bits(
        &self,
        id: u32,
        member: &str,
        depth: u8,
    ) -> Result<Option<(u32, u32)>, BtfError> {
        if depth > 8 {
            return Ok(None);
        }
        let entry = *self.entry(self.resolve(id)?)?;
        if !matches!(entry.kind, BtfKind::Struct | BtfKind::Union) {
            return Ok(None);
        }
        for m in self.members(&entry)? {
            if m.name == member {
                return Ok(Some((m.bit_offset, m.bitfield_size)));
            }
            if m.name.is_empty()
                && let Some((inner, size)) = self.find_member_bits(m.type_id, member, depth + 1)?
            {
                return Ok(Some((m.bit_offset + inner, size)));
            }
        }
        Ok(None)
    }

    /// Byte offset of `member` in `struct type_name` (looking into anonymous members too).
    pub fn member_offset(&self, type_name: &str, member: &str) -> Result<u32, BtfError> {
        let id = self.type_id(type_name, BtfKind::Struct)?;
        let (bit_offset, bitfield_size) =
            self.find_member_bits(id, member, 0)?
                .ok_or_else(|| BtfError::MemberNotFound {
                    type_name: type_name.to_owned(),
                    member: member.to_owned(),
                })?;
        if bitfield_size != 0 || bit_offset % 8 != 0 {
            return Err(BtfError::NotByteAligned {
                type_name: type_name.to_owned(),
                member: member.to_owned(),
                bit_offset,
            });
        }
        Ok(bit_offset / 8)
    }

    /// Number of parameters of a raw tracepoint, from its `btf_trace_<name>` typedef (a pointer
    /// to a prototype whose first parameter is the `void *` context, not counted here). `None`
    /// if the kernel has no such tracepoint.
    pub fn tracepoint_arg_count(&self, tracepoint: &str) -> Result<Option<usize>, BtfError> {
        let Ok(typedef) = self.type_id(&format!("btf_trace_{tracepoint}"), BtfKind::Typedef) else {
            return Ok(None);
        };
        let ptr = self.entry(typedef)?.size_or_type;
        let ptr_entry = self.entry(ptr)?;
        if ptr_entry.kind != BtfKind::Ptr {
            return Err(BtfError::Malformed("btf_trace_ typedef is not a pointer"));
        }
        let proto = self.entry(ptr_entry.size_or_type)?;
        if proto.kind != BtfKind::FuncProto {
            return Err(BtfError::Malformed(
                "btf_trace_ typedef does not point to a prototype",
            ));
        }
        Ok(Some(proto.vlen.saturating_sub(1)))
    }
}

fn read_u32_at(bytes: &[u8], at: usize, swapped: bool) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    let value = u32::from_ne_bytes(raw);
    Some(if swapped { value.swap_bytes() } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a little BTF blob (native byte order) from type records and a string table.
    struct BtfBuilder {
        types: Vec<u8>,
        strings: Vec<u8>,
    }

    impl BtfBuilder {
        fn new() -> Self {
            BtfBuilder {
                types: Vec::new(),
                strings: vec![0],
            }
        }
        fn name(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }
        fn push_u32(&mut self, v: u32) {
            self.types.extend_from_slice(&v.to_ne_bytes());
        }
        fn ty(&mut self, name: &str, kind: BtfKind, vlen: u32, kind_flag: bool, size: u32) {
            let n = self.name(name);
            self.push_u32(n);
            self.push_u32(((kind as u32) << 24) | vlen | (u32::from(kind_flag) << 31));
            self.push_u32(size);
        }
        fn int(&mut self, name: &str) {
            self.ty(name, BtfKind::Int, 0, false, 4);
            self.push_u32(32);
        }
        fn structure(&mut self, name: &str, kind: BtfKind, members: &[(&str, u32, u32)]) {
            self.ty(name, kind, members.len() as u32, false, 64);
            for &(m, type_id, bits) in members {
                let n = self.name(m);
                self.push_u32(n);
                self.push_u32(type_id);
                self.push_u32(bits);
            }
        }
        fn build(self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&BTF_MAGIC.to_ne_bytes());
            out.extend_from_slice(&[1, 0]);
            for v in [
                24u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&v.to_ne_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    fn sample() -> Vec<u8> {
        let mut b = BtfBuilder::new();
        b.int("int"); // 1
        // 2: anonymous union { int tgid; int other; }
        b.structure("", BtfKind::Union, &[("tgid", 1, 0), ("other", 1, 0)]);
        // 3: struct task_struct { int pid @ 32 bits; union @ 64 bits; }
        b.structure(
            "task_struct",
            BtfKind::Struct,
            &[("pid", 1, 32), ("", 2, 64)],
        );
        // 4: typedef int pid_t
        b.ty("pid_t", BtfKind::Typedef, 0, false, 1);
        // 5: proto(void *ctx, struct task_struct *p, int x) -> void
        b.ty("", BtfKind::FuncProto, 3, false, 0);
        for _ in 0..3 {
            b.push_u32(0);
            b.push_u32(1);
        }
        // 6: ptr to 5; 7: typedef btf_trace_sched_process_exit
        b.ty("", BtfKind::Ptr, 0, false, 5);
        b.ty(
            "btf_trace_sched_process_exit",
            BtfKind::Typedef,
            0,
            false,
            6,
        );
        // 8: struct with a bitfield member (kind_flag: size 3 bits at bit 8)
        b.ty("bits", BtfKind::Struct, 1, true, 4);
        let n = b.name("flag");
        b.push_u32(n);
        b.push_u32(1);
        b.push_u32((3 << 24) | 8);
        b.build()
    }

    #[test]
    fn finds_direct_and_anonymous_members() {
        let btf = KernelBtf::parse(&sample()).unwrap();
        assert_eq!(btf.type_count(), 8);
        assert_eq!(btf.member_offset("task_struct", "pid").unwrap(), 4);
        assert_eq!(btf.member_offset("task_struct", "tgid").unwrap(), 8);
        assert!(matches!(
            btf.member_offset("task_struct", "comm"),
            Err(BtfError::MemberNotFound { .. })
        ));
        assert!(matches!(
            btf.member_offset("cred", "uid"),
            Err(BtfError::TypeNotFound { .. })
        ));
        assert!(matches!(
            btf.member_offset("bits", "flag"),
            Err(BtfError::NotByteAligned { bit_offset: 8, .. })
        ));
    }

    #[test]
    fn counts_tracepoint_arguments_without_the_context() {
        let btf = KernelBtf::parse(&sample()).unwrap();
        assert_eq!(
            btf.tracepoint_arg_count("sched_process_exit").unwrap(),
            Some(2)
        );
        assert_eq!(btf.tracepoint_arg_count("module_load").unwrap(), None);
    }

    #[test]
    fn truncated_or_foreign_input_is_an_error_not_a_panic() {
        let good = sample();
        for len in 0..good.len() {
            // The header names the section lengths, so every strict prefix is refused.
            assert!(
                KernelBtf::parse(&good[..len]).is_err(),
                "prefix {len} accepted"
            );
        }
        let mut foreign = good.clone();
        foreign[0] ^= 0xff;
        assert!(matches!(
            KernelBtf::parse(&foreign),
            Err(BtfError::Malformed("bad magic"))
        ));
    }
}
