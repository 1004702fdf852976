//! A process's name is current: `task_rename` fires when a task's `comm` changes
//! (`prctl(PR_SET_NAME)`, a write to `/proc/<pid>/comm`, and exec itself). Only the thread-group
//! leader's name is the process's name (`/proc/<pid>/comm`), so other threads' renames are
//! skipped. The exec rename comes just before the exec record, with the same name.

use core::ffi::c_void;
use core::ptr::addr_of_mut;

use aya_ebpf::helpers::generated as helper;
use aya_ebpf::macros::raw_tracepoint;
use aya_ebpf::programs::RawTracePointContext;
use watchpost_ebpf_common::{RenameRecord, TASK_COMM_LEN, record_kind};

use crate::{KERNEL_EVENTS, count_lost, header, kernel_events_flags, offsets, read_kernel};

/// `task_rename(struct task_struct *task, const char *comm)`.
#[raw_tracepoint(tracepoint = "task_rename")]
pub fn task_rename(ctx: RawTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    let comm: *const u8 = ctx.arg(1);
    let o = offsets();
    let tid: u32 = read_kernel(task, o.task_pid);
    let tgid: u32 = read_kernel(task, o.task_tgid);
    if tid != tgid {
        return 0;
    }
    let Some(mut entry) = KERNEL_EVENTS.reserve::<RenameRecord>(0) else {
        count_lost(record_kind::RENAME);
        return 0;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: raw-pointer writes into the reserved slot; the string helper writes at most
    // TASK_COMM_LEN bytes into the `comm` array of that size.
    unsafe {
        addr_of_mut!((*record).header).write(header(record_kind::RENAME));
        addr_of_mut!((*record).pid).write(tgid);
        addr_of_mut!((*record).reserved).write(0);
        // The leader's own start time (the task is the leader).
        addr_of_mut!((*record).start_boottime).write(read_kernel(task, o.task_start_boottime));
        addr_of_mut!((*record).comm).write([0; TASK_COMM_LEN]);
        helper::bpf_probe_read_kernel_str(
            addr_of_mut!((*record).comm).cast::<c_void>(),
            TASK_COMM_LEN as u32,
            comm.cast(),
        );
    }
    entry.submit(kernel_events_flags());
    0
}
