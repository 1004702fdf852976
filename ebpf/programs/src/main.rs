//! watchpost's eBPF programs: process lifecycle, kernel module loads, cgroup creation and
//! removal, and DNS answers.
//!
//! Every program writes `watchpost_ebpf_common` records into a ring buffer and, when the ring
//! buffer is full, counts the loss in `LOST_EVENTS` instead of dropping silently.
//!
//! Process semantics (what makes a *process*, not a thread):
//! - `sched_process_fork` fires for every new task; only a child that leads a new thread group
//!   (`pid == tgid`, i.e. no `CLONE_THREAD`) is a new process.
//! - `sched_process_exec` fires once per successful exec; after it the exec'ing thread is the
//!   group leader, so `tgid` is the process.
//! - `sched_process_exit` fires for every exiting thread; only the thread that makes the group
//!   dead (the last one, whichever it is — the leader may have exited long before) ends the
//!   process. Kernels ≥ 6.16 say so in a `group_dead` argument; older ones are asked through
//!   `task->signal->live`, already decremented when the tracepoint fires.
//!
//! Kernel structure layouts come from the loader (`KERNEL_OFFSETS`, read from the kernel's BTF);
//! every kernel pointer is read with `bpf_probe_read_kernel`, so a bad offset yields zeros, never
//! a fault.

#![no_std]
#![no_main]
#![deny(warnings)]

use core::ffi::c_void;
use core::ptr::{addr_of, addr_of_mut};

use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP};
use aya_ebpf::helpers::generated as helper;
use aya_ebpf::macros::{cgroup_skb, map, raw_tracepoint};
use aya_ebpf::maps::{PerCpuArray, RingBuf};
use aya_ebpf::programs::{RawTracePointContext, SkBuffContext};
mod dns_match;
mod exe_path;
mod rename;

use watchpost_ebpf_common::{
    CGROUP_PATH_CAPACITY, CgroupRecord, DNS_PAYLOAD_CAPACITY, DNS_PORT, DnsRecord,
    EXEC_FILENAME_CAPACITY, ExecOptions, ExecRecord, ExitRecord, ForkRecord, KernelOffsets,
    LOST_EVENTS_SLOTS, MODULE_NAME_LEN, ModuleLoadRecord, PF_KTHREAD, RecordHeader, RingWakeup,
    TASK_COMM_LEN, TaskRecord, cgroup_op, record_kind, task_flag,
};

/// Member offsets of the running kernel, written by the loader before loading (read-only data).
#[unsafe(no_mangle)]
static KERNEL_OFFSETS: KernelOffsets = KernelOffsets {
    task_pid: 0,
    task_tgid: 0,
    task_real_parent: 0,
    task_group_leader: 0,
    task_comm: 0,
    task_start_boottime: 0,
    task_real_cred: 0,
    task_signal: 0,
    task_exit_code: 0,
    task_flags: 0,
    cred_uid: 0,
    cred_gid: 0,
    signal_live: 0,
    binprm_filename: 0,
    module_name: 0,
    exit_has_group_dead: 0,
    sock_net: 0,
    net_ns_inum: 0,
    binprm_file: 0,
    file_path_mnt: 0,
    file_path_dentry: 0,
    dentry_parent: 0,
    dentry_name: 0,
    dentry_hash_pprev: 0,
    vfsmount_root: 0,
    mount_mnt: 0,
    mount_parent: 0,
    mount_mountpoint: 0,
    mount_ns: 0,
    cgroup_kn: 0,
    cgroup_root: 0,
    kernfs_node_id: 0,
    cgroup_root_hierarchy_id: 0,
    reserved: 0,
};

/// How the exec program works, written by the loader (read-only data).
#[unsafe(no_mangle)]
static EXEC_OPTIONS: ExecOptions = ExecOptions {
    resolve_path: 0,
    reserved: 0,
};

/// Wake-up thresholds of the ring buffers, written by the loader (read-only data).
#[unsafe(no_mangle)]
static RING_WAKEUP: RingWakeup = RingWakeup {
    kernel_events_bytes: 0,
    dns_events_bytes: 0,
};

/// Process and module records. The loader sets the size (a power-of-two number of pages).
#[map]
static KERNEL_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// DNS answer records. The loader sets the size.
#[map]
static DNS_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Records lost because their ring buffer was full, per CPU, slot = record kind.
#[map]
static LOST_EVENTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOST_EVENTS_SLOTS, 0);

/// Per-CPU scratch record for execs: too big for the stack, written with its exact length.
#[map]
static EXEC_SCRATCH: PerCpuArray<ExecRecord> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU scratch record for DNS answers: too big for the 512-byte eBPF stack, and written to
/// the ring buffer with its exact length.
#[map]
static DNS_SCRATCH: PerCpuArray<DnsRecord> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn offsets() -> KernelOffsets {
    // SAFETY: a plain read of a static; volatile so the compiler does not fold the zeros the
    // object file holds into the code (the loader replaces them before the program loads).
    unsafe { core::ptr::read_volatile(addr_of!(KERNEL_OFFSETS)) }
}

/// Submit flags for a record going into `ring`. 0 is the kernel's default: the record wakes the
/// reader only if the reader had consumed everything before it (the first record after a quiet
/// period), so an idle reader sleeps with no timer and a reader that is behind is not woken
/// again. With a threshold, a record also forces a wake-up once that many bytes wait, which cuts
/// short a reader that lets records gather under load (see the loader's `WakeupPolicy`).
#[inline(always)]
fn wakeup_flags(ring: &RingBuf, threshold: u32) -> u64 {
    if threshold != 0 && ring.query(u64::from(BPF_RB_AVAIL_DATA)) >= u64::from(threshold) {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        0
    }
}

#[inline(always)]
fn kernel_events_flags() -> u64 {
    // SAFETY: a plain read of a static (volatile: the loader sets it, see `offsets`).
    let threshold = unsafe { core::ptr::read_volatile(addr_of!(RING_WAKEUP.kernel_events_bytes)) };
    wakeup_flags(&KERNEL_EVENTS, threshold)
}

/// Reads a `T` at `base + offset` in kernel memory; zero if the read faults.
#[inline(always)]
fn read_kernel<T: Default>(base: *const u8, offset: u32) -> T {
    let at = base.wrapping_add(offset as usize).cast::<T>();
    // SAFETY: `bpf_probe_read_kernel` checks the source address itself and fails cleanly on a
    // bad pointer; the destination is a local.
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(at) }.unwrap_or_default()
}

/// Reads a kernel pointer stored at `base + offset`.
#[inline(always)]
fn read_pointer(base: *const u8, offset: u32) -> *const u8 {
    read_kernel::<u64>(base, offset) as *const u8
}

#[inline(always)]
fn header(kind: u32) -> RecordHeader {
    // SAFETY: helpers without memory arguments.
    unsafe {
        RecordHeader {
            kind,
            cpu: helper::bpf_get_smp_processor_id(),
            boot_ns: helper::bpf_ktime_get_boot_ns(),
        }
    }
}

/// Counts one record of `kind` lost to a full ring buffer.
#[inline(always)]
fn count_lost(kind: u32) {
    if let Some(slot) = LOST_EVENTS.get_ptr_mut(kind) {
        // SAFETY: `slot` points into this CPU's value of the per-CPU array; programs on one CPU
        // do not run concurrently (tracing programs run with migration disabled).
        unsafe { *slot += 1 };
    }
}

/// Who `task` is: its process, parent process, start times, credentials and name; and the
/// cgroup v2 ID of the task running the program (see `TaskRecord::cgroup_id`).
#[inline(always)]
fn describe_task(task: *const u8, o: &KernelOffsets) -> TaskRecord {
    let leader = read_pointer(task, o.task_group_leader);
    let parent = read_pointer(task, o.task_real_parent);
    let parent_leader = read_pointer(parent, o.task_group_leader);
    let cred = read_pointer(task, o.task_real_cred);
    let task_flags: u32 = read_kernel(task, o.task_flags);
    let mut record = TaskRecord {
        pid: read_kernel(task, o.task_tgid),
        tid: read_kernel(task, o.task_pid),
        ppid: read_kernel(parent, o.task_tgid),
        uid: read_kernel(cred, o.cred_uid),
        gid: read_kernel(cred, o.cred_gid),
        flags: if task_flags & PF_KTHREAD != 0 {
            task_flag::KERNEL_THREAD
        } else {
            0
        },
        start_boottime: read_kernel(leader, o.task_start_boottime),
        parent_start_boottime: read_kernel(parent_leader, o.task_start_boottime),
        comm: [0; TASK_COMM_LEN],
        // SAFETY: a helper without memory arguments.
        cgroup_id: unsafe { helper::bpf_get_current_cgroup_id() },
    };
    // SAFETY: reads TASK_COMM_LEN bytes of kernel memory into the local array of that size.
    unsafe {
        helper::bpf_probe_read_kernel(
            record.comm.as_mut_ptr().cast(),
            TASK_COMM_LEN as u32,
            task.wrapping_add(o.task_comm as usize).cast(),
        );
    }
    record
}

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let parent: *const u8 = ctx.arg(0);
    let child: *const u8 = ctx.arg(1);
    let o = offsets();
    let child_tid: u32 = read_kernel(child, o.task_pid);
    let child_tgid: u32 = read_kernel(child, o.task_tgid);
    if child_tid != child_tgid {
        // CLONE_THREAD: a new thread of an existing process.
        return 0;
    }
    let Some(mut entry) = KERNEL_EVENTS.reserve::<ForkRecord>(0) else {
        count_lost(record_kind::FORK);
        return 0;
    };
    let record = ForkRecord {
        header: header(record_kind::FORK),
        child: describe_task(child, &o),
        parent_tid: read_kernel(parent, o.task_pid),
        reserved: 0,
    };
    entry.write(record);
    entry.submit(kernel_events_flags());
    0
}

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`:
/// the executed file's own path ([`exe_path`]), then the path given to execve, in an
/// exact-length record built in a per-CPU scratch (too big for the stack).
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    let old_tid: u64 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);
    let o = offsets();
    let Some(record) = EXEC_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: `record` is this CPU's ExecRecord in the scratch map. Fields are written through
    // raw pointers; `data` writes stay inside it: the components at offsets below 8192 + 256,
    // the filename (at most EXEC_FILENAME_CAPACITY bytes) at an offset masked to 8191, and
    // 8191 + EXEC_FILENAME_CAPACITY <= EXEC_DATA_CAPACITY (checked by the common crate's tests).
    unsafe {
        addr_of_mut!((*record).header).write(header(record_kind::EXEC));
        addr_of_mut!((*record).task).write(describe_task(task, &o));
        addr_of_mut!((*record).old_tid).write(old_tid as u32);
        let data = addr_of_mut!((*record).data).cast::<u8>();
        // SAFETY: a plain read of a static (volatile: the loader sets it, see `offsets`).
        let resolve = core::ptr::read_volatile(addr_of!(EXEC_OPTIONS.resolve_path)) != 0;
        let (path_len, exe_flags) = if resolve {
            exe_path::resolve(read_pointer(bprm, o.binprm_file), data, &o)
        } else {
            (0, 0)
        };
        let mask = exe_path::opaque_mask(8191);
        let path_len = (u64::from(path_len) & mask) as u32;
        let filename = read_pointer(bprm, o.binprm_filename);
        let written = helper::bpf_probe_read_kernel_str(
            data.add(path_len as usize).cast::<c_void>(),
            EXEC_FILENAME_CAPACITY as u32,
            filename.cast(),
        );
        let filename_len = if written > 0 { written as u32 } else { 0 };
        addr_of_mut!((*record).exe_flags).write(exe_flags);
        addr_of_mut!((*record).path_len).write(path_len);
        addr_of_mut!((*record).filename_len).write(filename_len);
        let record_len = ExecRecord::DATA_OFFSET + path_len as usize + filename_len as usize;
        let filled = core::slice::from_raw_parts(record.cast::<u8>().cast_const(), record_len);
        if KERNEL_EVENTS
            .output::<[u8]>(filled, kernel_events_flags())
            .is_err()
        {
            count_lost(record_kind::EXEC);
        }
    }
    0
}

/// `sched_process_exit(struct task_struct *p[, bool group_dead])`: reported only when the
/// thread group is dead.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    let o = offsets();
    let group_dead = if o.exit_has_group_dead != 0 {
        let flag: u64 = ctx.arg(1);
        flag & 0xff != 0
    } else {
        let signal = read_pointer(task, o.task_signal);
        let live: u32 = read_kernel(signal, o.signal_live);
        live == 0
    };
    if !group_dead {
        return 0;
    }
    let Some(mut entry) = KERNEL_EVENTS.reserve::<ExitRecord>(0) else {
        count_lost(record_kind::EXIT);
        return 0;
    };
    let record = ExitRecord {
        header: header(record_kind::EXIT),
        task: describe_task(task, &o),
        exit_code: read_kernel(task, o.task_exit_code),
        reserved: 0,
    };
    entry.write(record);
    entry.submit(kernel_events_flags());
    0
}

/// `module_load(struct module *mod)`: a module is live, so `/proc/kallsyms` changed.
#[raw_tracepoint(tracepoint = "module_load")]
pub fn module_load(ctx: RawTracePointContext) -> i32 {
    let module: *const u8 = ctx.arg(0);
    let o = offsets();
    let Some(mut entry) = KERNEL_EVENTS.reserve::<ModuleLoadRecord>(0) else {
        count_lost(record_kind::MODULE_LOAD);
        return 0;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: as in `sched_process_exec`: raw-pointer writes into the reserved slot, the string
    // helper bounded by the size of `name`.
    unsafe {
        addr_of_mut!((*record).header).write(header(record_kind::MODULE_LOAD));
        let written = helper::bpf_probe_read_kernel_str(
            addr_of_mut!((*record).name).cast::<c_void>(),
            MODULE_NAME_LEN as u32,
            module.wrapping_add(o.module_name as usize).cast(),
        );
        if written <= 0 {
            addr_of_mut!((*record).name).write([0; MODULE_NAME_LEN]);
        }
    }
    entry.submit(kernel_events_flags());
    0
}

/// A cgroup was created or removed: its ID and path, for the default (v2) hierarchy only
/// (`cgroup_root.hierarchy_id == 0`); v1 hierarchies repeat the same paths with other IDs.
#[inline(always)]
fn report_cgroup(ctx: &RawTracePointContext, op: u32) -> i32 {
    let cgroup: *const u8 = ctx.arg(0);
    let path: *const u8 = ctx.arg(1);
    let o = offsets();
    if o.cgroup_kn == 0 {
        return 0;
    }
    let root = read_pointer(cgroup, o.cgroup_root);
    let hierarchy: u32 = read_kernel(root, o.cgroup_root_hierarchy_id);
    if root.is_null() || hierarchy != 0 {
        return 0;
    }
    let kn = read_pointer(cgroup, o.cgroup_kn);
    let id: u64 = read_kernel(kn, o.kernfs_node_id);
    let Some(mut entry) = KERNEL_EVENTS.reserve::<CgroupRecord>(0) else {
        count_lost(record_kind::CGROUP);
        return 0;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: as in `sched_process_exec`: raw-pointer writes into the reserved slot, the string
    // helper bounded by the size of `path`.
    unsafe {
        addr_of_mut!((*record).header).write(header(record_kind::CGROUP));
        addr_of_mut!((*record).cgroup_id).write(id);
        addr_of_mut!((*record).op).write(op);
        let written = helper::bpf_probe_read_kernel_str(
            addr_of_mut!((*record).path).cast::<c_void>(),
            CGROUP_PATH_CAPACITY as u32,
            path.cast(),
        );
        addr_of_mut!((*record).path_len).write(if written > 0 { written as u32 } else { 0 });
    }
    entry.submit(kernel_events_flags());
    0
}

/// `cgroup_mkdir(struct cgroup *cgrp, const char *path)`.
#[raw_tracepoint(tracepoint = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: RawTracePointContext) -> i32 {
    report_cgroup(&ctx, cgroup_op::MKDIR)
}

/// `cgroup_rmdir(struct cgroup *cgrp, const char *path)`.
#[raw_tracepoint(tracepoint = "cgroup_rmdir")]
pub fn cgroup_rmdir(ctx: RawTracePointContext) -> i32 {
    report_cgroup(&ctx, cgroup_op::RMDIR)
}

/// `cgroup_notify_populated(struct cgroup *cgrp, const char *path, int val)`.
#[raw_tracepoint(tracepoint = "cgroup_notify_populated")]
pub fn cgroup_notify_populated(ctx: RawTracePointContext) -> i32 {
    let populated: u64 = ctx.arg(2);
    let op = if populated as u32 != 0 {
        cgroup_op::POPULATED
    } else {
        cgroup_op::EMPTIED
    };
    report_cgroup(&ctx, op)
}

/// Verdict of a cgroup_skb program that lets the packet through (we only observe).
const ALLOW: i32 = 1;

const IPPROTO_UDP: u8 = 17;
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AUTH: u8 = 51;
const IPV6_DEST_OPTS: u8 = 60;
/// Extension headers followed before giving up on an IPv6 packet.
const IPV6_MAX_EXT_HEADERS: usize = 6;

/// cgroup_skb ingress on the cgroup v2 root: copies UDP payloads from port 53 (DNS answers).
/// `skb->data` starts at the IP header here; the packet is already reassembled.
#[cgroup_skb(ingress)]
pub fn dns_answers_ingress(ctx: SkBuffContext) -> i32 {
    let _ = capture_dns_answer(&ctx);
    ALLOW
}

#[inline(always)]
fn load<T>(ctx: &SkBuffContext, offset: u32) -> Result<T, ()> {
    ctx.load::<T>(offset as usize).map_err(|_| ())
}

/// Where the UDP header of an IPv4 or IPv6 packet starts, where its source address starts, the
/// address length and the IP version; `Err` for anything but UDP.
#[inline(always)]
fn udp_header(ctx: &SkBuffContext) -> Result<(u32, u32, u32, u32), ()> {
    let first: u8 = load(ctx, 0)?;
    let ip_version = u32::from(first >> 4);
    match ip_version {
        4 => {
            let header_len = u32::from(first & 0x0f) * 4;
            let protocol: u8 = load(ctx, 9)?;
            if header_len < 20 || protocol != IPPROTO_UDP {
                return Err(());
            }
            Ok((header_len, 12u32, 4u32, ip_version))
        }
        6 => {
            let mut next: u8 = load(ctx, 6)?;
            let mut offset: u32 = 40;
            for _ in 0..IPV6_MAX_EXT_HEADERS {
                match next {
                    IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                        let len: u8 = load(ctx, offset + 1)?;
                        next = load(ctx, offset)?;
                        offset += (u32::from(len) + 1) * 8;
                    }
                    IPV6_FRAGMENT => {
                        next = load(ctx, offset)?;
                        offset += 8;
                    }
                    IPV6_AUTH => {
                        let len: u8 = load(ctx, offset + 1)?;
                        next = load(ctx, offset)?;
                        offset += (u32::from(len) + 2) * 4;
                    }
                    _ => break,
                }
            }
            if next != IPPROTO_UDP {
                return Err(());
            }
            Ok((offset, 8u32, 16u32, ip_version))
        }
        _ => Err(()),
    }
}

#[inline(always)]
fn capture_dns_answer(ctx: &SkBuffContext) -> Result<(), ()> {
    let skb_len = ctx.len();
    let (udp_offset, src_at, addr_len, ip_version) = udp_header(ctx)?;
    let src_port = u16::from_be(load::<u16>(ctx, udp_offset)?);
    if src_port != DNS_PORT {
        return Err(());
    }
    let dst_port = u16::from_be(load::<u16>(ctx, udp_offset + 2)?);
    let payload_offset = udp_offset + 8;
    if payload_offset >= skb_len {
        return Err(());
    }
    let wire_len = skb_len - payload_offset;

    let scratch = DNS_SCRATCH.get_ptr_mut(0).ok_or(())?;
    let skb = ctx.skb.skb;
    // Prove 1 <= copy_len <= DNS_PAYLOAD_CAPACITY to the verifier: wire_len >= 1 here, and the
    // mask keeps the value (minus one) below the power-of-two capacity.
    let capacity = DNS_PAYLOAD_CAPACITY as u32;
    let clamped = if wire_len > capacity {
        capacity
    } else {
        wire_len
    };
    let copy_len = ((clamped - 1) & (capacity - 1)) + 1;
    // SAFETY: `scratch` is this CPU's DnsRecord in the scratch map; every write stays inside it
    // (addresses are 4 or 16 bytes into 16-byte arrays, the payload at most its capacity).
    unsafe {
        addr_of_mut!((*scratch).header).write(header(record_kind::DNS_ANSWER));
        addr_of_mut!((*scratch).cgroup_id).write(helper::bpf_skb_cgroup_id(skb));
        addr_of_mut!((*scratch).socket_uid).write(helper::bpf_get_socket_uid(skb.cast()));
        addr_of_mut!((*scratch).ip_version).write(ip_version);
        addr_of_mut!((*scratch).src_addr).write([0; 16]);
        addr_of_mut!((*scratch).dst_addr).write([0; 16]);
        if helper::bpf_skb_load_bytes(
            skb.cast_const().cast(),
            src_at,
            addr_of_mut!((*scratch).src_addr).cast(),
            addr_len,
        ) != 0
            || helper::bpf_skb_load_bytes(
                skb.cast_const().cast(),
                src_at + addr_len,
                addr_of_mut!((*scratch).dst_addr).cast(),
                addr_len,
            ) != 0
        {
            return Err(());
        }
        addr_of_mut!((*scratch).src_port).write(src_port);
        addr_of_mut!((*scratch).dst_port).write(dst_port);
        addr_of_mut!((*scratch).wire_len).write(wire_len);
        addr_of_mut!((*scratch).payload_len).write(copy_len);
        addr_of_mut!((*scratch).netns).write(0);
        addr_of_mut!((*scratch).flags).write(0);
        addr_of_mut!((*scratch).reserved).write(0);
        if helper::bpf_skb_load_bytes(
            skb.cast_const().cast(),
            payload_offset,
            addr_of_mut!((*scratch).payload).cast(),
            copy_len,
        ) != 0
        {
            return Err(());
        }
        // Only answers to a query this namespace asked go on (see `dns_match`).
        dns_match::admit_answer(ctx, scratch)?;
        // Only the filled part of the scratch record goes out (its exact length).
        let record_len = DnsRecord::PAYLOAD_OFFSET + copy_len as usize;
        let filled = core::slice::from_raw_parts(scratch.cast::<u8>().cast_const(), record_len);
        let threshold = core::ptr::read_volatile(addr_of!(RING_WAKEUP.dns_events_bytes));
        if DNS_EVENTS
            .output::<[u8]>(filled, wakeup_flags(&DNS_EVENTS, threshold))
            .is_err()
        {
            count_lost(record_kind::DNS_ANSWER);
        }
    }
    Ok(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
