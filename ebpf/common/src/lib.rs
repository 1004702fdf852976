//! The binary contract between watchpost's eBPF programs and their userspace loader.
//!
//! Both sides compile these `#[repr(C)]` types: the programs write them into ring buffers, the
//! loader reads them back. Changing a layout means rebuilding both (the loader embeds the object
//! it was built with, so they never disagree at run time).
//!
//! # Records
//! Every ring-buffer record starts with a [`RecordHeader`] whose `kind` says which record type
//! follows ([`record_kind`]). Two ring buffers exist:
//! - [`KERNEL_EVENTS_MAP`]: [`ForkRecord`], [`ExecRecord`], [`ExitRecord`], [`ModuleLoadRecord`],
//!   [`CgroupRecord`];
//! - [`DNS_EVENTS_MAP`]: [`DnsRecord`], written with its exact length (header + captured bytes).
//!
//! # Kernel layout
//! aya-ebpf has no CO-RE relocation, so the loader reads `task_struct` and friends from the
//! running kernel's BTF and writes the member offsets into the [`KernelOffsets`] global
//! ([`KERNEL_OFFSETS_GLOBAL`]) before the programs load.
//!
//! # Lost records
//! When a ring buffer is full, the program adds one to slot `kind` of the per-CPU array
//! [`LOST_EVENTS_MAP`] ([`LOST_EVENTS_SLOTS`] slots); userspace sums the CPUs.

#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

/// Bytes of a task's name (`TASK_COMM_LEN`).
pub const TASK_COMM_LEN: usize = 16;
/// Bytes kept of an executed file name, including its terminating NUL (longer names are cut and
/// flagged by [`ExecRecord::filename_len`] reaching this value).
pub const EXEC_FILENAME_CAPACITY: usize = 512;
/// Bytes of a kernel module name (`MODULE_NAME_LEN` on 64-bit kernels).
pub const MODULE_NAME_LEN: usize = 56;
/// Bytes of a DNS answer's UDP payload kept. EDNS answers are at most 4,096 bytes in practice;
/// longer ones are cut (the record keeps the full length in `wire_len`).
pub const DNS_PAYLOAD_CAPACITY: usize = 4096;
/// The UDP source port whose datagrams are DNS answers.
pub const DNS_PORT: u16 = 53;
/// Bytes kept of a cgroup's path, including its NUL (longer paths are cut and flagged by
/// [`CgroupRecord::path_len`] reaching this value). Container cgroup paths, systemd's included,
/// are a few hundred bytes.
pub const CGROUP_PATH_CAPACITY: usize = 1024;

/// Name of the ring buffer of process and module records.
pub const KERNEL_EVENTS_MAP: &str = "KERNEL_EVENTS";
/// Name of the ring buffer of DNS answer records.
pub const DNS_EVENTS_MAP: &str = "DNS_EVENTS";
/// Name of the per-CPU `u64` array counting records dropped because a ring buffer was full.
pub const LOST_EVENTS_MAP: &str = "LOST_EVENTS";
/// Slots of [`LOST_EVENTS_MAP`]: one per [`record_kind`] value (slot 0 unused).
pub const LOST_EVENTS_SLOTS: u32 = 8;
/// Name of the [`KernelOffsets`] global.
pub const KERNEL_OFFSETS_GLOBAL: &str = "KERNEL_OFFSETS";
/// Name of the [`RingWakeup`] global.
pub const RING_WAKEUP_GLOBAL: &str = "RING_WAKEUP";

/// Names of the programs in the object, as the loader finds them.
pub mod program_name {
    /// `raw_tp/sched_process_fork`.
    pub const FORK: &str = "sched_process_fork";
    /// `raw_tp/sched_process_exec`.
    pub const EXEC: &str = "sched_process_exec";
    /// `raw_tp/sched_process_exit`.
    pub const EXIT: &str = "sched_process_exit";
    /// `raw_tp/module_load`.
    pub const MODULE_LOAD: &str = "module_load";
    /// `cgroup_skb/ingress` capturing DNS answers.
    pub const DNS_INGRESS: &str = "dns_answers_ingress";
    /// `raw_tp/cgroup_mkdir`: a cgroup was created (containers get theirs before they start).
    pub const CGROUP_MKDIR: &str = "cgroup_mkdir";
    /// `raw_tp/cgroup_rmdir`: a cgroup was removed.
    pub const CGROUP_RMDIR: &str = "cgroup_rmdir";
    /// `raw_tp/cgroup_notify_populated`: a cgroup got its first process or lost its last one
    /// (itself or below it).
    pub const CGROUP_POPULATED: &str = "cgroup_notify_populated";
}

/// Values of [`RecordHeader::kind`]; also the slot of [`LOST_EVENTS_MAP`] that counts the kind.
pub mod record_kind {
    /// A [`super::ForkRecord`]: a new process (never a new thread).
    pub const FORK: u32 = 1;
    /// An [`super::ExecRecord`].
    pub const EXEC: u32 = 2;
    /// An [`super::ExitRecord`]: the last thread of a thread group exited.
    pub const EXIT: u32 = 3;
    /// A [`super::ModuleLoadRecord`].
    pub const MODULE_LOAD: u32 = 4;
    /// A [`super::DnsRecord`].
    pub const DNS_ANSWER: u32 = 5;
    /// A [`super::CgroupRecord`]. (6 is left for another record kind.)
    pub const CGROUP: u32 = 7;
}

/// Values of [`CgroupRecord::op`].
pub mod cgroup_op {
    /// `cgroup_mkdir`.
    pub const MKDIR: u32 = 1;
    /// `cgroup_rmdir`.
    pub const RMDIR: u32 = 2;
    /// `cgroup_notify_populated` with `val = 1`: a first process entered it (or a descendant).
    pub const POPULATED: u32 = 3;
    /// `cgroup_notify_populated` with `val = 0`: its last process (and its descendants') left.
    pub const EMPTIED: u32 = 4;
}

/// Bits of [`TaskRecord::flags`].
pub mod task_flag {
    /// The task is a kernel thread (`PF_KTHREAD`).
    pub const KERNEL_THREAD: u32 = 1;
}

/// The kernel's `PF_KTHREAD` bit of `task_struct.flags` (stable since Linux 2.6).
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// First bytes of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// One of [`record_kind`].
    pub kind: u32,
    /// CPU the program ran on.
    pub cpu: u32,
    /// When the program ran, `CLOCK_BOOTTIME` nanoseconds (`bpf_ktime_get_boot_ns`).
    pub boot_ns: u64,
}

/// Who a process record is about. "pid" is the thread-group ID (what userspace calls a process
/// ID), "tid" the kernel task's own ID; both in the initial pid namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskRecord {
    /// Process ID: `task->tgid`.
    pub pid: u32,
    /// Thread ID: `task->pid`.
    pub tid: u32,
    /// Parent process ID: `task->real_parent->tgid` (0 if none).
    pub ppid: u32,
    /// Real user ID: `task->real_cred->uid`.
    pub uid: u32,
    /// Real group ID: `task->real_cred->gid`.
    pub gid: u32,
    /// Bits of [`task_flag`].
    pub flags: u32,
    /// The process's start time: `task->group_leader->start_boottime`, ns since boot.
    pub start_boottime: u64,
    /// The parent's start time: `task->real_parent->group_leader->start_boottime`.
    pub parent_start_boottime: u64,
    /// `task->comm`, NUL-padded.
    pub comm: [u8; TASK_COMM_LEN],
    /// cgroup v2 ID of the task that ran the program (`bpf_get_current_cgroup_id`: the cgroup
    /// directory's inode number): the process itself for exec and exit; for fork the parent,
    /// whose cgroup the child starts in (except with `clone3(CLONE_INTO_CGROUP)`). The root
    /// cgroup's ID on hosts whose containers live in cgroup v1 only.
    pub cgroup_id: u64,
}

/// A process was created: `sched_process_fork` whose child leads a new thread group.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkRecord {
    /// `kind` = [`record_kind::FORK`].
    pub header: RecordHeader,
    /// The new process.
    pub child: TaskRecord,
    /// Thread ID of the task that called fork/clone (the child's `ppid` is its process).
    pub parent_tid: u32,
    /// Zero.
    pub reserved: u32,
}

/// A process executed a new program: `sched_process_exec`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    /// `kind` = [`record_kind::EXEC`].
    pub header: RecordHeader,
    /// The process after the exec (new name and credentials).
    pub task: TaskRecord,
    /// Thread ID that called exec (differs from `task.pid` when a non-leader thread exec'd).
    pub old_tid: u32,
    /// Bytes of `filename` written, including the NUL, as returned by
    /// `bpf_probe_read_kernel_str`; 0 if the name could not be read. Equal to
    /// [`EXEC_FILENAME_CAPACITY`] means the name may have been cut.
    pub filename_len: u32,
    /// `bprm->filename`: the path as given to execve (or `/dev/fd/N` for fexecve).
    pub filename: [u8; EXEC_FILENAME_CAPACITY],
}

/// A process ended: the last live thread of a thread group passed `sched_process_exit`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitRecord {
    /// `kind` = [`record_kind::EXIT`].
    pub header: RecordHeader,
    /// The process; `tid` is the thread that exited last.
    pub task: TaskRecord,
    /// `task->exit_code` of that thread (wait status encoding: `code << 8 | signal`).
    pub exit_code: u32,
    /// Zero.
    pub reserved: u32,
}

/// A cgroup of the cgroup v2 (default) hierarchy was created, removed, populated or emptied:
/// `cgroup_mkdir`, `cgroup_rmdir`, `cgroup_notify_populated`. cgroups of v1 hierarchies are not
/// reported.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupRecord {
    /// `kind` = [`record_kind::CGROUP`].
    pub header: RecordHeader,
    /// The cgroup's ID (`cgrp->kn->id`, what `bpf_get_current_cgroup_id` returns inside it).
    pub cgroup_id: u64,
    /// One of [`cgroup_op`].
    pub op: u32,
    /// Bytes of `path` written, including the NUL; 0 if the path could not be read. Equal to
    /// [`CGROUP_PATH_CAPACITY`] means the path may have been cut.
    pub path_len: u32,
    /// The cgroup's path from the hierarchy's root (`/libpod_parent/libpod-<id>`).
    pub path: [u8; CGROUP_PATH_CAPACITY],
}

/// A kernel module finished loading: `module_load`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleLoadRecord {
    /// `kind` = [`record_kind::MODULE_LOAD`].
    pub header: RecordHeader,
    /// `mod->name`, NUL-terminated.
    pub name: [u8; MODULE_NAME_LEN],
}

/// A UDP datagram from port 53 delivered to a local socket: a DNS answer.
///
/// The program writes only the first `DnsRecord::PAYLOAD_OFFSET + payload_len` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsRecord {
    /// `kind` = [`record_kind::DNS_ANSWER`].
    pub header: RecordHeader,
    /// cgroup v2 ID of the receiving socket (`bpf_skb_cgroup_id`: the cgroup directory's inode).
    pub cgroup_id: u64,
    /// Owner of the receiving socket (`bpf_get_socket_uid`; the overflow uid if unknown).
    pub socket_uid: u32,
    /// 4 or 6.
    pub ip_version: u32,
    /// Source (the DNS server); IPv4 addresses fill the first 4 bytes.
    pub src_addr: [u8; 16],
    /// Destination (the local resolver client).
    pub dst_addr: [u8; 16],
    /// Source UDP port ([`DNS_PORT`]).
    pub src_port: u16,
    /// Destination UDP port.
    pub dst_port: u16,
    /// UDP payload length on the wire.
    pub wire_len: u32,
    /// Bytes of `payload` captured: `min(wire_len, DNS_PAYLOAD_CAPACITY)`.
    pub payload_len: u32,
    /// Zero.
    pub reserved: u32,
    /// The DNS message (first `payload_len` bytes valid).
    pub payload: [u8; DNS_PAYLOAD_CAPACITY],
}

impl DnsRecord {
    /// Byte offset of `payload`: a record of `n` captured bytes is `PAYLOAD_OFFSET + n` long.
    pub const PAYLOAD_OFFSET: usize = core::mem::offset_of!(DnsRecord, payload);
}

/// Member offsets (bytes) in the running kernel's structures, read from its BTF by the loader.
///
/// A zero for a member the program needs means "not found"; the loader refuses to load then, so
/// the programs may trust every value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `task_struct.pid`.
    pub task_pid: u32,
    /// `task_struct.tgid`.
    pub task_tgid: u32,
    /// `task_struct.real_parent`.
    pub task_real_parent: u32,
    /// `task_struct.group_leader`.
    pub task_group_leader: u32,
    /// `task_struct.comm`.
    pub task_comm: u32,
    /// `task_struct.start_boottime`.
    pub task_start_boottime: u32,
    /// `task_struct.real_cred`.
    pub task_real_cred: u32,
    /// `task_struct.signal`.
    pub task_signal: u32,
    /// `task_struct.exit_code`.
    pub task_exit_code: u32,
    /// `task_struct.flags`.
    pub task_flags: u32,
    /// `cred.uid` (`kuid_t`, whose `val` is at offset 0).
    pub cred_uid: u32,
    /// `cred.gid`.
    pub cred_gid: u32,
    /// `signal_struct.live` (`atomic_t`, whose `counter` is at offset 0).
    pub signal_live: u32,
    /// `linux_binprm.filename`.
    pub binprm_filename: u32,
    /// `module.name` (0 if the kernel has no module support).
    pub module_name: u32,
    /// 1 if `sched_process_exit` passes `bool group_dead` as its second argument (Linux ≥ 6.16);
    /// otherwise the program reads `task->signal->live` instead.
    pub exit_has_group_dead: u32,
    /// `cgroup.kn` (0: the cgroup programs are not loaded).
    pub cgroup_kn: u32,
    /// `cgroup.root`.
    pub cgroup_root: u32,
    /// `kernfs_node.id` (a `u64` since Linux 5.5).
    pub kernfs_node_id: u32,
    /// `cgroup_root.hierarchy_id` (0 for the v2 default hierarchy).
    pub cgroup_root_hierarchy_id: u32,
}

/// When a program wakes the ring-buffer reader, per ring: after each record (0, the kernel's
/// default: wake if the reader had caught up), or only once at least this many bytes wait
/// (the reader then also polls on a timer, so records never wait longer than its latency).
/// Batching wake-ups saves a cross-CPU wake-up per record under load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingWakeup {
    /// Threshold for [`KERNEL_EVENTS_MAP`], bytes (0: every record).
    pub kernel_events_bytes: u32,
    /// Threshold for [`DNS_EVENTS_MAP`], bytes (0: every record).
    pub dns_events_bytes: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type here is `#[repr(C)]`, `Copy`, built only of integers and integer arrays
    // (every bit pattern is a valid value) and has no padding the compiler could leave
    // uninitialised when the value is created in Rust: field sizes are multiples of 4 with u64
    // fields at 8-byte offsets (checked by the layout tests below).
    unsafe impl aya::Pod for super::RecordHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TaskRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ForkRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ExecRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ExitRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ModuleLoadRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CgroupRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DnsRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::KernelOffsets {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RingWakeup {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn layouts_have_no_padding_and_fit_ring_buffer_alignment() {
        assert_eq!(size_of::<RecordHeader>(), 16);
        assert_eq!(size_of::<TaskRecord>(), 24 + 16 + TASK_COMM_LEN + 8);
        assert_eq!(offset_of!(TaskRecord, cgroup_id), 56);
        assert_eq!(size_of::<ForkRecord>(), 16 + 64 + 8);
        assert_eq!(size_of::<ExitRecord>(), 16 + 64 + 8);
        assert_eq!(
            size_of::<ExecRecord>(),
            16 + 64 + 8 + EXEC_FILENAME_CAPACITY
        );
        assert_eq!(size_of::<CgroupRecord>(), 16 + 16 + CGROUP_PATH_CAPACITY);
        assert_eq!(size_of::<ModuleLoadRecord>(), 16 + MODULE_NAME_LEN);
        assert_eq!(DnsRecord::PAYLOAD_OFFSET, 16 + 8 + 8 + 32 + 4 + 12);
        assert_eq!(
            size_of::<DnsRecord>(),
            DnsRecord::PAYLOAD_OFFSET + DNS_PAYLOAD_CAPACITY
        );
        assert_eq!(size_of::<KernelOffsets>(), 20 * 4);
        // The kernel reserves ring-buffer records 8-byte aligned.
        for align in [
            align_of::<ForkRecord>(),
            align_of::<ExecRecord>(),
            align_of::<ExitRecord>(),
            align_of::<ModuleLoadRecord>(),
            align_of::<DnsRecord>(),
            align_of::<CgroupRecord>(),
        ] {
            assert!(8 % align == 0);
        }
        assert_eq!(offset_of!(ForkRecord, header), 0);
        assert_eq!(offset_of!(DnsRecord, header), 0);
    }

    #[test]
    fn every_kind_has_a_lost_slot() {
        for kind in [
            record_kind::FORK,
            record_kind::EXEC,
            record_kind::EXIT,
            record_kind::MODULE_LOAD,
            record_kind::DNS_ANSWER,
            record_kind::CGROUP,
        ] {
            assert!(kind < LOST_EVENTS_SLOTS);
        }
    }
}
