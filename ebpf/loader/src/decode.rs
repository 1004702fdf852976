//! Ring-buffer records (bytes in the `watchpost_ebpf_common` layouts) to typed [`KernelEvent`]s.
//!
//! Fields are read at their `offset_of!` positions with bounds checks, so a short or corrupt
//! record is an error, never undefined behaviour or a panic.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use watchpost_core::process::{Comm, ExeFlags};
use watchpost_core::start_time::{BootClock, StartTimeError};
use watchpost_ebpf_common::{
    CGROUP_PATH_CAPACITY, CgroupRecord, DNS_PAYLOAD_CAPACITY, DnsRecord, EXEC_DATA_CAPACITY,
    EXEC_FILENAME_CAPACITY, ExecRecord, ExitRecord, ForkRecord, MODULE_NAME_LEN, ModuleLoadRecord,
    RecordHeader, RenameRecord, TASK_COMM_LEN, TaskRecord, cgroup_op, dns_flag, exe_flag,
    record_kind, task_flag,
};

use crate::clock::instant_from_boot_ns;
use crate::event::{
    CgroupChange, CgroupOp, DnsAnswer, KernelEvent, ModuleLoad, ProcessExec, ProcessExit,
    ProcessFork, ProcessIdentity, ProcessRename, SymbolReloadCause,
};

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The record is shorter than its kind's layout.
    #[error("record of kind {kind} is {found} bytes, expected at least {expected}")]
    TooShort {
        /// The record kind.
        kind: u32,
        /// Bytes needed.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// The kind is not one of `record_kind`.
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    /// A DNS record names an IP version other than 4 or 6.
    #[error("DNS record with IP version {0}, expected 4 or 6")]
    IpVersion(u32),
    /// A cgroup record with an operation other than mkdir or rmdir.
    #[error("cgroup record with operation {0}, expected 1 to 4 (mkdir, rmdir, populated, emptied)")]
    CgroupOp(u32),
    /// A start time does not convert to epoch nanoseconds.
    #[error("start time: {0}")]
    StartTime(#[source] StartTimeError),
}

/// Bounds-checked reads at fixed offsets of one record.
struct Fields<'a> {
    bytes: &'a [u8],
    kind: u32,
}

impl<'a> Fields<'a> {
    fn array<const N: usize>(&self, at: usize) -> Result<[u8; N], DecodeError> {
        self.bytes
            .get(at..at + N)
            .and_then(|b| b.try_into().ok())
            .ok_or(DecodeError::TooShort {
                kind: self.kind,
                expected: at + N,
                found: self.bytes.len(),
            })
    }
    fn u16(&self, at: usize) -> Result<u16, DecodeError> {
        self.array(at).map(u16::from_ne_bytes)
    }
    fn u32(&self, at: usize) -> Result<u32, DecodeError> {
        self.array(at).map(u32::from_ne_bytes)
    }
    fn u64(&self, at: usize) -> Result<u64, DecodeError> {
        self.array(at).map(u64::from_ne_bytes)
    }
    fn require(&self, len: usize) -> Result<(), DecodeError> {
        if self.bytes.len() < len {
            return Err(DecodeError::TooShort {
                kind: self.kind,
                expected: len,
                found: self.bytes.len(),
            });
        }
        Ok(())
    }
    fn slice(&self, at: usize, len: usize) -> Result<&'a [u8], DecodeError> {
        self.bytes.get(at..at + len).ok_or(DecodeError::TooShort {
            kind: self.kind,
            expected: at + len,
            found: self.bytes.len(),
        })
    }

    fn task(&self, at: usize, clock: &BootClock) -> Result<ProcessIdentity, DecodeError> {
        let start_boottime_ns = self.u64(at + offset_of!(TaskRecord, start_boottime))?;
        let parent_start_boottime = self.u64(at + offset_of!(TaskRecord, parent_start_boottime))?;
        let comm: [u8; TASK_COMM_LEN] = self.array(at + offset_of!(TaskRecord, comm))?;
        let flags = self.u32(at + offset_of!(TaskRecord, flags))?;
        Ok(ProcessIdentity {
            pid: self.u32(at + offset_of!(TaskRecord, pid))?,
            tid: self.u32(at + offset_of!(TaskRecord, tid))?,
            ppid: self.u32(at + offset_of!(TaskRecord, ppid))?,
            uid: self.u32(at + offset_of!(TaskRecord, uid))?,
            gid: self.u32(at + offset_of!(TaskRecord, gid))?,
            start_time: clock
                .from_boottime_ns(start_boottime_ns)
                .map_err(DecodeError::StartTime)?,
            parent_start_time: clock
                .from_boottime_ns(parent_start_boottime)
                .map_err(DecodeError::StartTime)?,
            start_boottime_ns,
            comm: Comm::from_bytes(&comm),
            kernel_thread: flags & task_flag::KERNEL_THREAD != 0,
            cgroup_id: self.u64(at + offset_of!(TaskRecord, cgroup_id))?,
        })
    }
}

/// Text up to the first NUL, invalid UTF-8 replaced.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The executed file's path from its components (each NUL-terminated, the file's name first,
/// then its parents), and its flags. Empty when no component was written.
fn executed_path(components: &[u8], bits: u32) -> (String, ExeFlags) {
    let names: Vec<std::borrow::Cow<'_, str>> = components
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(String::from_utf8_lossy)
        .collect();
    let truncated = bits & exe_flag::TRUNCATED != 0;
    let mut path = String::new();
    if truncated {
        path.push('…');
    }
    for name in names.iter().rev() {
        path.push('/');
        path.push_str(name);
    }
    let leaf = names.first().map_or("", |n| n.as_ref());
    let flags = ExeFlags {
        deleted: bits & exe_flag::DELETED != 0,
        memfd: bits & exe_flag::INTERNAL_MOUNT != 0 && leaf.starts_with("memfd:"),
        truncated,
        unresolved: bits & exe_flag::UNRESOLVED != 0,
    };
    if names.is_empty() {
        return (String::new(), flags);
    }
    (path, flags)
}

fn ip_address(version: u32, raw: [u8; 16]) -> Result<IpAddr, DecodeError> {
    match version {
        4 => Ok(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        6 => Ok(IpAddr::V6(Ipv6Addr::from(raw))),
        other => Err(DecodeError::IpVersion(other)),
    }
}

/// Decodes one ring-buffer record.
pub fn decode_record(bytes: &[u8], clock: &BootClock) -> Result<KernelEvent, DecodeError> {
    let head = Fields { bytes, kind: 0 };
    let kind = head.u32(offset_of!(RecordHeader, kind))?;
    let fields = Fields { bytes, kind };
    let boot_ns = fields.u64(offset_of!(RecordHeader, boot_ns))?;
    let time = instant_from_boot_ns(clock, boot_ns);
    match kind {
        record_kind::FORK => {
            fields.require(size_of::<ForkRecord>())?;
            Ok(KernelEvent::Fork(ProcessFork {
                time,
                process: fields.task(offset_of!(ForkRecord, child), clock)?,
                parent_tid: fields.u32(offset_of!(ForkRecord, parent_tid))?,
            }))
        }
        record_kind::EXEC => {
            fields.require(ExecRecord::DATA_OFFSET)?;
            let path_len =
                (fields.u32(offset_of!(ExecRecord, path_len))? as usize).min(EXEC_DATA_CAPACITY);
            let written = (fields.u32(offset_of!(ExecRecord, filename_len))? as usize)
                .min(EXEC_FILENAME_CAPACITY);
            let components = fields.slice(ExecRecord::DATA_OFFSET, path_len)?;
            let raw = fields.slice(ExecRecord::DATA_OFFSET + path_len, written)?;
            let bits = fields.u32(offset_of!(ExecRecord, exe_flags))?;
            let (exe, exe_flags) = executed_path(components, bits);
            Ok(KernelEvent::Exec(ProcessExec {
                time,
                process: fields.task(offset_of!(ExecRecord, task), clock)?,
                old_tid: fields.u32(offset_of!(ExecRecord, old_tid))?,
                filename: c_string(raw),
                // The helper wrote the whole buffer (NUL included): the name may go on.
                filename_truncated: written >= EXEC_FILENAME_CAPACITY,
                exe,
                exe_flags,
            }))
        }
        record_kind::RENAME => {
            fields.require(size_of::<RenameRecord>())?;
            let comm: [u8; TASK_COMM_LEN] = fields.array(offset_of!(RenameRecord, comm))?;
            Ok(KernelEvent::Rename(ProcessRename {
                time,
                pid: fields.u32(offset_of!(RenameRecord, pid))?,
                start_time: clock
                    .from_boottime_ns(fields.u64(offset_of!(RenameRecord, start_boottime))?)
                    .map_err(DecodeError::StartTime)?,
                comm: Comm::from_bytes(&comm),
            }))
        }
        record_kind::EXIT => {
            fields.require(size_of::<ExitRecord>())?;
            Ok(KernelEvent::Exit(ProcessExit {
                time,
                process: fields.task(offset_of!(ExitRecord, task), clock)?,
                exit_code: fields.u32(offset_of!(ExitRecord, exit_code))?,
            }))
        }
        record_kind::MODULE_LOAD => {
            fields.require(size_of::<ModuleLoadRecord>())?;
            let name = fields.slice(offset_of!(ModuleLoadRecord, name), MODULE_NAME_LEN)?;
            Ok(KernelEvent::SymbolReload(SymbolReloadCause::ModuleLoaded(
                ModuleLoad {
                    time,
                    name: c_string(name),
                },
            )))
        }
        record_kind::DNS_ANSWER => {
            fields.require(DnsRecord::PAYLOAD_OFFSET)?;
            let version = fields.u32(offset_of!(DnsRecord, ip_version))?;
            let captured = fields.u32(offset_of!(DnsRecord, payload_len))? as usize;
            let message = fields.slice(
                DnsRecord::PAYLOAD_OFFSET,
                captured.min(DNS_PAYLOAD_CAPACITY),
            )?;
            let server = ip_address(version, fields.array(offset_of!(DnsRecord, src_addr))?)?;
            let client = ip_address(version, fields.array(offset_of!(DnsRecord, dst_addr))?)?;
            let flags = fields.u32(offset_of!(DnsRecord, flags))?;
            Ok(KernelEvent::DnsAnswer(DnsAnswer {
                time,
                server: SocketAddr::new(server, fields.u16(offset_of!(DnsRecord, src_port))?),
                client: SocketAddr::new(client, fields.u16(offset_of!(DnsRecord, dst_port))?),
                cgroup_id: fields.u64(offset_of!(DnsRecord, cgroup_id))?,
                socket_uid: fields.u32(offset_of!(DnsRecord, socket_uid))?,
                wire_len: fields.u32(offset_of!(DnsRecord, wire_len))?,
                netns: fields.u32(offset_of!(DnsRecord, netns))?,
                trusted_netns: flags & dns_flag::TRUSTED_NETNS != 0,
                matched: flags & dns_flag::MATCHED != 0,
                message: message.to_vec(),
            }))
        }
        record_kind::CGROUP => {
            fields.require(size_of::<CgroupRecord>())?;
            let op = match fields.u32(offset_of!(CgroupRecord, op))? {
                cgroup_op::MKDIR => CgroupOp::Created,
                cgroup_op::RMDIR => CgroupOp::Removed,
                cgroup_op::POPULATED => CgroupOp::Populated,
                cgroup_op::EMPTIED => CgroupOp::Emptied,
                other => return Err(DecodeError::CgroupOp(other)),
            };
            let written = fields.u32(offset_of!(CgroupRecord, path_len))? as usize;
            let raw = fields.slice(
                offset_of!(CgroupRecord, path),
                written.min(CGROUP_PATH_CAPACITY),
            )?;
            Ok(KernelEvent::Cgroup(CgroupChange {
                time,
                op,
                cgroup_id: fields.u64(offset_of!(CgroupRecord, cgroup_id))?,
                path: c_string(raw),
                path_truncated: written >= CGROUP_PATH_CAPACITY,
            }))
        }
        other => Err(DecodeError::UnknownKind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BTIME: u64 = 1_764_300_000;

    fn clock() -> BootClock {
        BootClock::new(BTIME, 100).unwrap()
    }

    fn task_bytes(pid: u32, tid: u32, start: u64) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [pid, tid, 1, 65534, 65534, 0] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&start.to_ne_bytes());
        b.extend_from_slice(&1_000_000u64.to_ne_bytes());
        let mut comm = [0u8; TASK_COMM_LEN];
        comm[..4].copy_from_slice(b"true");
        b.extend_from_slice(&comm);
        b.extend_from_slice(&4242u64.to_ne_bytes()); // cgroup id
        b
    }

    fn header_bytes(kind: u32, boot_ns: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&boot_ns.to_ne_bytes());
        b
    }

    fn exec_record(flags: u32, components: &[u8], filename: &[u8]) -> Vec<u8> {
        let mut rec = header_bytes(record_kind::EXEC, 5_000_000_000);
        rec.extend(task_bytes(42, 43, 12_345_678_901));
        rec.extend_from_slice(&43u32.to_ne_bytes());
        rec.extend_from_slice(&flags.to_ne_bytes());
        rec.extend_from_slice(&(components.len() as u32).to_ne_bytes());
        rec.extend_from_slice(&(filename.len() as u32).to_ne_bytes());
        assert_eq!(rec.len(), ExecRecord::DATA_OFFSET);
        rec.extend_from_slice(components);
        rec.extend_from_slice(filename);
        rec
    }

    #[test]
    fn exec_paths_are_rebuilt_from_components() {
        let rec = exec_record(0, b"dash\0bin\0usr\0", b"../bin/sh\0");
        let KernelEvent::Exec(exec) = decode_record(&rec, &clock()).unwrap() else {
            panic!("not an exec");
        };
        assert_eq!(exec.exe, "/usr/bin/dash");
        assert_eq!(exec.filename, "../bin/sh");
        assert_eq!(exec.exe_flags, ExeFlags::NONE);
        let core = exec.to_core();
        assert_eq!(core.exe_path, "/usr/bin/dash");
        assert_eq!(core.invoked_path, Some("../bin/sh"));

        let rec = exec_record(
            exe_flag::DELETED | exe_flag::INTERNAL_MOUNT,
            b"memfd:payload (x)\0",
            b"/dev/fd/3\0",
        );
        let KernelEvent::Exec(exec) = decode_record(&rec, &clock()).unwrap() else {
            panic!("not an exec");
        };
        assert_eq!(exec.exe, "/memfd:payload (x)");
        assert!(exec.exe_flags.memfd && exec.exe_flags.deleted);
        assert_eq!(exec.exe_flags.memfd_name(&exec.exe), Some("payload (x)"));
        // On an ordinary mount a name starting "memfd:" is just a name.
        let rec = exec_record(exe_flag::DELETED, b"memfd:x\0tmp\0", b"/tmp/memfd:x\0");
        let KernelEvent::Exec(exec) = decode_record(&rec, &clock()).unwrap() else {
            panic!("not an exec");
        };
        assert!(!exec.exe_flags.memfd && exec.exe_flags.deleted);

        let rec = exec_record(exe_flag::TRUNCATED, b"f\0e\0", b"/a/b/c/d/e/f\0");
        let KernelEvent::Exec(exec) = decode_record(&rec, &clock()).unwrap() else {
            panic!("not an exec");
        };
        assert_eq!(exec.exe, "…/e/f");
        assert!(exec.exe_flags.truncated);

        // Nothing resolved: the execve path stands in, flagged.
        let rec = exec_record(0, b"", b"/bin/true\0");
        let KernelEvent::Exec(exec) = decode_record(&rec, &clock()).unwrap() else {
            panic!("not an exec");
        };
        assert_eq!(exec.to_core().exe_path, "/bin/true");
        assert!(exec.to_core().exe_flags.unresolved);
        // Lengths beyond the record are an error, not a panic.
        let mut rec = exec_record(0, b"a\0", b"/a\0");
        rec.truncate(rec.len() - 1);
        assert!(decode_record(&rec, &clock()).is_err());
    }

    #[test]
    fn exec_record_decodes_with_canonical_start_time() {
        let rec = exec_record(0, b"true\0bin\0", b"/bin/true\0");
        let KernelEvent::Exec(exec) = decode_record(&rec, &clock()).unwrap() else {
            panic!("not an exec");
        };
        assert_eq!(exec.filename, "/bin/true");
        assert!(!exec.filename_truncated);
        assert_eq!(exec.process.pid, 42);
        assert_eq!(exec.process.tid, 43);
        assert_eq!(exec.process.uid, 65534);
        assert_eq!(exec.process.comm.as_str(), "true");
        assert_eq!(exec.process.cgroup_id, 4242);
        // 12.345678901 s after boot, floored to the 10 ms tick.
        assert_eq!(
            exec.process.start_time,
            BTIME * 1_000_000_000 + 12_340_000_000
        );
        assert_eq!(exec.time, BTIME * 1_000_000_000 + 5_000_000_000);
        assert_eq!(exec.to_core().exe_path, "/bin/true");
    }

    #[test]
    fn cgroup_records_decode_and_bad_ops_are_errors() {
        let mut rec = header_bytes(record_kind::CGROUP, 9);
        rec.extend_from_slice(&1234u64.to_ne_bytes());
        rec.extend_from_slice(&cgroup_op::MKDIR.to_ne_bytes());
        let path = b"/libpod_parent/libpod-abc\0";
        rec.extend_from_slice(&(path.len() as u32).to_ne_bytes());
        let mut buf = [0u8; CGROUP_PATH_CAPACITY];
        buf[..path.len()].copy_from_slice(path);
        rec.extend_from_slice(&buf);
        assert_eq!(rec.len(), size_of::<CgroupRecord>());
        let KernelEvent::Cgroup(c) = decode_record(&rec, &clock()).unwrap() else {
            panic!("not a cgroup record");
        };
        assert_eq!(c.op, CgroupOp::Created);
        assert_eq!(c.cgroup_id, 1234);
        assert_eq!(c.path, "/libpod_parent/libpod-abc");
        assert!(!c.path_truncated);
        let op_at = offset_of!(CgroupRecord, op);
        rec[op_at..op_at + 4].copy_from_slice(&9u32.to_ne_bytes());
        assert_eq!(decode_record(&rec, &clock()), Err(DecodeError::CgroupOp(9)));
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        let rec = header_bytes(record_kind::FORK, 1);
        assert!(matches!(
            decode_record(&rec, &clock()),
            Err(DecodeError::TooShort {
                kind: record_kind::FORK,
                ..
            })
        ));
        assert_eq!(
            decode_record(&header_bytes(99, 1), &clock()),
            Err(DecodeError::UnknownKind(99))
        );
        assert!(decode_record(&[1, 0], &clock()).is_err());
    }

    #[test]
    fn dns_record_of_exact_length_decodes() {
        let mut rec = header_bytes(record_kind::DNS_ANSWER, 7);
        rec.extend_from_slice(&77u64.to_ne_bytes()); // cgroup id
        rec.extend_from_slice(&1000u32.to_ne_bytes()); // uid
        rec.extend_from_slice(&4u32.to_ne_bytes()); // version
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[127, 0, 0, 77]);
        rec.extend_from_slice(&src);
        let mut dst = [0u8; 16];
        dst[..4].copy_from_slice(&[127, 0, 0, 1]);
        rec.extend_from_slice(&dst);
        rec.extend_from_slice(&53u16.to_ne_bytes());
        rec.extend_from_slice(&40000u16.to_ne_bytes());
        rec.extend_from_slice(&5u32.to_ne_bytes()); // wire
        rec.extend_from_slice(&5u32.to_ne_bytes()); // captured
        rec.extend_from_slice(&4_026_531_840u32.to_ne_bytes()); // netns
        rec.extend_from_slice(&3u32.to_ne_bytes()); // flags: matched, trusted
        rec.extend_from_slice(&0u32.to_ne_bytes());
        assert_eq!(rec.len(), DnsRecord::PAYLOAD_OFFSET);
        rec.extend_from_slice(&[0x12, 0x34, 0x81, 0x80, 0]);
        let KernelEvent::DnsAnswer(answer) = decode_record(&rec, &clock()).unwrap() else {
            panic!("not a DNS answer");
        };
        assert_eq!(answer.server, "127.0.0.77:53".parse().unwrap());
        assert_eq!(answer.client, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(answer.query_id(), Some(0x1234));
        assert_eq!(answer.cgroup_id, 77);
        assert_eq!(answer.netns, 4_026_531_840);
        assert!(answer.trusted_netns && answer.matched);
        assert!(!answer.is_truncated());
        // A record claiming more captured bytes than it carries is refused.
        rec.truncate(rec.len() - 1);
        assert!(decode_record(&rec, &clock()).is_err());
    }
}
