//! The binary contract between watchpost's eBPF programs and their userspace loader.
//!
//! Both sides compile these `#[repr(C)]` types: the programs write them into ring buffers, the
//! loader reads them back. Changing a layout means rebuilding both (the loader embeds the object
//! it was built with, so they never disagree at run time).
//!
//! # Records
//! Every ring-buffer record starts with a [`RecordHeader`] whose `kind` says which record type
//! follows ([`record_kind`]). Two ring buffers exist:
//! - [`KERNEL_EVENTS_MAP`]: [`ForkRecord`], [`ExecRecord`] (exact length), [`ExitRecord`],
//!   [`ModuleLoadRecord`], [`RenameRecord`], [`CgroupRecord`];
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
/// Bytes kept of the path given to execve, including its terminating NUL: `PATH_MAX` (longer
/// names are cut and flagged by [`ExecRecord::filename_len`] reaching this value).
pub const EXEC_FILENAME_CAPACITY: usize = 4096;
/// Bytes of the executed file's path components the walk writes before it stops (it stops at
/// the first component starting past this offset, so a path of `PATH_MAX` bytes fits whole).
pub const EXEC_PATH_CAPACITY: usize = 4096;
/// Most bytes one path component takes in the record (a name of at most 255 bytes and its NUL).
pub const EXEC_PATH_COMPONENT_MAX: usize = 256;
/// Most components walked from the executed file up to the root; a deeper path is cut (the
/// components nearest the file are kept) and flagged [`exe_flag::TRUNCATED`].
pub const EXEC_PATH_MAX_DEPTH: u32 = 160;
/// Most mount crossings at one point of the path (mounts stacked on one another).
pub const EXEC_PATH_MOUNT_HOPS: u32 = 4;
/// Bytes of [`ExecRecord::data`]: room for the path components, then the filename, each at
/// its largest (the mask the programs index with is one less than a power of two above both).
pub const EXEC_DATA_CAPACITY: usize = 12 * 1024;
/// Bytes of a kernel module name (`MODULE_NAME_LEN` on 64-bit kernels).
pub const MODULE_NAME_LEN: usize = 56;
/// Bytes of a DNS answer's UDP payload kept. EDNS answers are at most 4,096 bytes in practice;
/// longer ones are cut (the record keeps the full length in `wire_len`).
pub const DNS_PAYLOAD_CAPACITY: usize = 4096;
/// The UDP source port whose datagrams are DNS answers.
pub const DNS_PORT: u16 = 53;
/// Bytes of an outgoing DNS query copied to find its question (12-byte header, a name of at
/// most 255 bytes, type and class fit; the rest of a query is never needed).
pub const DNS_QUERY_WINDOW: usize = 512;
/// Default entries of each outstanding-query map.
pub const DNS_PENDING_QUERIES: u32 = 8192;
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
/// Name of the [`ExecOptions`] global.
pub const EXEC_OPTIONS_GLOBAL: &str = "EXEC_OPTIONS";
/// Name of the LRU hash of outstanding DNS queries ([`DnsQueryKey`] → boot ns asked) from
/// trusted network namespaces (the host's and containers' the daemon knows).
pub const DNS_QUERIES_TRUSTED_MAP: &str = "DNS_QUERIES_TRUSTED";
/// The same for every other network namespace: a flood of queries there cannot push a trusted
/// namespace's queries out.
pub const DNS_QUERIES_OTHER_MAP: &str = "DNS_QUERIES_OTHER";
/// Name of the hash of trusted network namespaces (inode number → 1), written by userspace.
pub const TRUSTED_NETNS_MAP: &str = "TRUSTED_NETNS";
/// Most trusted network namespaces.
pub const TRUSTED_NETNS_CAPACITY: u32 = 4096;
/// Name of the per-CPU `u64` array of DNS verdict counters, slot = [`dns_counter`].
pub const DNS_COUNTERS_MAP: &str = "DNS_COUNTERS";
/// Slots of [`DNS_COUNTERS_MAP`].
pub const DNS_COUNTER_SLOTS: u32 = 8;
/// Name of the [`DnsMatching`] global.
pub const DNS_MATCHING_GLOBAL: &str = "DNS_MATCHING";
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
    /// `raw_tp/task_rename`: a process's name changed (`prctl(PR_SET_NAME)`, `/proc/<pid>/comm`,
    /// exec).
    pub const RENAME: &str = "task_rename";
    /// `cgroup_skb/ingress` capturing DNS answers.
    pub const DNS_INGRESS: &str = "dns_answers_ingress";
    /// `cgroup_skb/egress` recording outgoing DNS queries.
    pub const DNS_EGRESS: &str = "dns_queries_egress";
    /// `raw_tp/cgroup_mkdir`: a cgroup was created (containers get theirs before they start).
    pub const CGROUP_MKDIR: &str = "cgroup_mkdir";
    /// `raw_tp/cgroup_rmdir`: a cgroup was removed.
    pub const CGROUP_RMDIR: &str = "cgroup_rmdir";
    /// `raw_tp/cgroup_notify_populated`: a cgroup got its first process or lost its last one
    /// (itself or below it).
    pub const CGROUP_POPULATED: &str = "cgroup_notify_populated";
}

/// Slots of [`DNS_COUNTERS_MAP`]: what happened to DNS packets in the kernel.
pub mod dns_counter {
    /// Outgoing queries recorded as outstanding.
    pub const QUERIES_TRACKED: u32 = 0;
    /// Answers that matched an outstanding query (and were passed on).
    pub const ANSWERS_MATCHED: u32 = 1;
    /// Answers that matched no outstanding query: forged, replayed, or for a query sent before
    /// the program was attached. Refused.
    pub const ANSWERS_UNMATCHED: u32 = 2;
    /// Answers that matched a query older than the timeout. Refused.
    pub const ANSWERS_LATE: u32 = 3;
    /// Answers whose question could not be read (no question, compressed or malformed name).
    /// Refused.
    pub const ANSWERS_MALFORMED: u32 = 4;
    /// Answers from an untrusted network namespace beyond its rate. Refused.
    pub const ANSWERS_RATE_LIMITED: u32 = 5;
    /// Answers longer than the capture size: passed on cut (the record says so).
    pub const ANSWERS_OVERSIZED: u32 = 6;
    /// Answers whose receiving socket's network namespace could not be read. Refused.
    pub const ANSWERS_NO_NAMESPACE: u32 = 7;
}

/// Bits of [`DnsRecord::flags`].
pub mod dns_flag {
    /// The receiving socket's network namespace is in [`super::TRUSTED_NETNS_MAP`].
    pub const TRUSTED_NETNS: u32 = 1;
    /// The answer matched an outstanding query (always set when matching is on).
    pub const MATCHED: u32 = 2;
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
    /// A [`super::RenameRecord`].
    pub const RENAME: u32 = 6;
    /// A [`super::CgroupRecord`].
    pub const CGROUP: u32 = 7;
}

/// Bits of [`ExecRecord::exe_flags`].
pub mod exe_flag {
    /// The executed file had been unlinked (its dentry is unhashed).
    pub const DELETED: u32 = 1;
    /// It lives on a mount in no mount namespace (a kernel-internal mount: `memfd_create`'s,
    /// for one); with a name starting `memfd:` it is a memfd.
    pub const INTERNAL_MOUNT: u32 = 2;
    /// The walk stopped before the root (too deep, or the buffer was full): the path holds the
    /// components nearest the file only.
    pub const TRUNCATED: u32 = 4;
    /// A component could not be read: the path is incomplete.
    pub const UNRESOLVED: u32 = 8;
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
///
/// Written with its exact length: `DATA_OFFSET + path_len + filename_len` bytes. `data` holds
/// first the executed file's path components (each NUL-terminated, the file's own name first,
/// then its parent directories up to the root; mount points crossed), then the path as given
/// to execve, NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    /// `kind` = [`record_kind::EXEC`].
    pub header: RecordHeader,
    /// The process after the exec (new name and credentials).
    pub task: TaskRecord,
    /// Thread ID that called exec (differs from `task.pid` when a non-leader thread exec'd).
    pub old_tid: u32,
    /// Bits of [`exe_flag`].
    pub exe_flags: u32,
    /// Bytes of `data` holding path components (0: not resolved).
    pub path_len: u32,
    /// Bytes of the execve path after them, including the NUL, as returned by
    /// `bpf_probe_read_kernel_str`; 0 if the name could not be read. Equal to
    /// [`EXEC_FILENAME_CAPACITY`] means the name may have been cut.
    pub filename_len: u32,
    /// Path components, then `bprm->filename` (see above).
    pub data: [u8; EXEC_DATA_CAPACITY],
}

impl ExecRecord {
    /// Byte offset of `data`.
    pub const DATA_OFFSET: usize = core::mem::offset_of!(ExecRecord, data);
}

/// A process's name changed (`task_rename` of a thread-group leader).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenameRecord {
    /// `kind` = [`record_kind::RENAME`].
    pub header: RecordHeader,
    /// Process ID (the leader's `tgid`).
    pub pid: u32,
    /// Zero.
    pub reserved: u32,
    /// The process's start time: the leader's `start_boottime`, ns since boot.
    pub start_boottime: u64,
    /// The new name, NUL-padded.
    pub comm: [u8; TASK_COMM_LEN],
}

/// How the exec program works, written by the loader (read-only data).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// 1: resolve the executed file's path (the default). 0: the execve path only, as before
    /// path resolution existed (kept for benchmarks).
    pub resolve_path: u32,
    /// Zero.
    pub reserved: u32,
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
    /// Inode number of the receiving socket's network namespace (0 when matching is off).
    pub netns: u32,
    /// Bits of [`dns_flag`].
    pub flags: u32,
    /// Zero.
    pub reserved: u32,
    /// The DNS message (first `payload_len` bytes valid).
    pub payload: [u8; DNS_PAYLOAD_CAPACITY],
}

impl DnsRecord {
    /// Byte offset of `payload`: a record of `n` captured bytes is `PAYLOAD_OFFSET + n` long.
    pub const PAYLOAD_OFFSET: usize = core::mem::offset_of!(DnsRecord, payload);
}

/// What identifies an outstanding DNS query: the answer must come back in the same network
/// namespace, between the same two sockets (addresses and ports reversed), with the same
/// transaction ID and the same question.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsQueryKey {
    /// Inode number of the sending socket's network namespace.
    pub netns: u32,
    /// 4 or 6.
    pub ip_version: u32,
    /// The querying socket's address (the answer's destination); IPv4 in the first 4 bytes.
    pub client_addr: [u8; 16],
    /// The server's address (the answer's source).
    pub server_addr: [u8; 16],
    /// The querying socket's port.
    pub client_port: u16,
    /// The server's port ([`DNS_PORT`]).
    pub server_port: u16,
    /// DNS transaction ID.
    pub txid: u16,
    /// Question type.
    pub qtype: u16,
    /// FNV-1a of the question name's wire bytes (exact case) and class.
    pub question_hash: u64,
}

/// How the DNS programs match answers to queries, written by the loader (read-only data).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsMatching {
    /// 1: record queries, pass on only matching answers (the default). 0: pass on every answer
    /// from port 53 unmatched, as before matching existed (kept for benchmarks).
    pub enabled: u32,
    /// Answers per second, per CPU, passed on from untrusted network namespaces together.
    pub untrusted_answers_per_sec: u32,
    /// Burst of such answers, per CPU.
    pub untrusted_burst: u32,
    /// Zero.
    pub reserved: u32,
    /// An answer later than this after its query is refused, ns.
    pub timeout_ns: u64,
}

/// A per-CPU token bucket (the untrusted-answer rate).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateBucket {
    /// Tokens left.
    pub tokens: u64,
    /// When tokens were last added, boot ns.
    pub refilled_ns: u64,
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
    /// `sock_common.skc_net` (`possible_net_t`, whose `net` pointer is at offset 0).
    pub sock_net: u32,
    /// `net.ns.inum`: the network namespace's inode number.
    pub net_ns_inum: u32,
    /// `linux_binprm.file`: the file being executed.
    pub binprm_file: u32,
    /// `file.f_path.mnt` (`struct vfsmount *`).
    pub file_path_mnt: u32,
    /// `file.f_path.dentry`.
    pub file_path_dentry: u32,
    /// `dentry.d_parent`.
    pub dentry_parent: u32,
    /// `dentry.d_name.name`: the component's name.
    pub dentry_name: u32,
    /// `dentry.d_hash.pprev`: null when the dentry is unhashed (unlinked).
    pub dentry_hash_pprev: u32,
    /// `vfsmount.mnt_root`.
    pub vfsmount_root: u32,
    /// `mount.mnt`: where the `vfsmount` sits in its `struct mount`.
    pub mount_mnt: u32,
    /// `mount.mnt_parent`.
    pub mount_parent: u32,
    /// `mount.mnt_mountpoint`.
    pub mount_mountpoint: u32,
    /// `mount.mnt_ns`.
    pub mount_ns: u32,
    /// `cgroup.kn` (0: the cgroup programs are not loaded).
    pub cgroup_kn: u32,
    /// `cgroup.root`.
    pub cgroup_root: u32,
    /// `kernfs_node.id` (a `u64` since Linux 5.5).
    pub kernfs_node_id: u32,
    /// `cgroup_root.hierarchy_id` (0 for the v2 default hierarchy).
    pub cgroup_root_hierarchy_id: u32,
    /// Zero (keeps the struct a multiple of 8 bytes).
    pub reserved: u32,
}

/// When a program forces a wake-up of the ring-buffer reader, per ring. Every record wakes the
/// reader when the reader had caught up (the kernel's default: the first record after a quiet
/// period); a non-zero threshold also forces a wake-up once at least this many bytes wait, so a
/// reader that lets records gather under load is called back before the ring fills.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingWakeup {
    /// Forced wake-up threshold for [`KERNEL_EVENTS_MAP`], bytes (0: none).
    pub kernel_events_bytes: u32,
    /// Forced wake-up threshold for [`DNS_EVENTS_MAP`], bytes (0: none).
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
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DnsQueryKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RenameRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ExecOptions {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DnsMatching {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RateBucket {}
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
        assert_eq!(ExecRecord::DATA_OFFSET, 16 + 64 + 16);
        assert_eq!(
            size_of::<ExecRecord>(),
            ExecRecord::DATA_OFFSET + EXEC_DATA_CAPACITY
        );
        // Components (the last may start at the capacity) then the filename fit, and the
        // programs' 8 KiB index mask plus the largest write stays inside.
        const {
            assert!(
                EXEC_PATH_CAPACITY + EXEC_PATH_COMPONENT_MAX + EXEC_FILENAME_CAPACITY
                    <= 8192 + 4096
            )
        };
        const { assert!(8191 + EXEC_FILENAME_CAPACITY <= EXEC_DATA_CAPACITY) };
        assert_eq!(size_of::<RenameRecord>(), 16 + 16 + TASK_COMM_LEN);
        assert_eq!(size_of::<CgroupRecord>(), 16 + 16 + CGROUP_PATH_CAPACITY);
        assert_eq!(size_of::<ModuleLoadRecord>(), 16 + MODULE_NAME_LEN);
        assert_eq!(DnsRecord::PAYLOAD_OFFSET, 16 + 8 + 8 + 32 + 4 + 20);
        assert_eq!(size_of::<DnsQueryKey>(), 8 + 32 + 8 + 8);
        assert_eq!(size_of::<DnsMatching>(), 24);
        assert_eq!(
            size_of::<DnsRecord>(),
            DnsRecord::PAYLOAD_OFFSET + DNS_PAYLOAD_CAPACITY
        );
        assert_eq!(size_of::<KernelOffsets>(), 34 * 4);
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
            record_kind::RENAME,
            record_kind::CGROUP,
        ] {
            assert!(kind < LOST_EVENTS_SLOTS);
        }
    }
}
