//! The running kernel's structure layout, as the programs need it: member offsets read from the
//! kernel's BTF, handed to the programs as the `KERNEL_OFFSETS` global before they load.

use watchpost_ebpf_common::KernelOffsets;

use crate::btf::{BtfError, KernelBtf};

/// What the kernel offers beyond the offsets: which optional attach points exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelLayout {
    /// The offsets the programs read with.
    pub offsets: KernelOffsets,
    /// Whether the kernel has the `module_load` tracepoint (`CONFIG_MODULES`).
    pub has_module_load_tracepoint: bool,
    /// Whether the kernel has the `task_rename` tracepoint.
    pub has_task_rename_tracepoint: bool,
    /// Whether the kernel has the `cgroup_mkdir`/`cgroup_rmdir` tracepoints and the cgroup
    /// members their program reads.
    pub has_cgroup_tracepoints: bool,
    /// Whether it also has `cgroup_notify_populated` (Linux ≥ 5.3).
    pub has_populated_tracepoint: bool,
}

/// Reads every offset the programs use. A member the process programs need and the kernel lacks
/// is an error: the programs would read garbage.
pub fn kernel_layout(btf: &KernelBtf) -> Result<KernelLayout, BtfError> {
    let task = |member: &str| btf.member_offset("task_struct", member);
    let exit_args = btf.tracepoint_arg_count("sched_process_exit")?;
    let has_module_load_tracepoint = btf.tracepoint_arg_count("module_load")?.is_some();
    let has_task_rename_tracepoint = btf.tracepoint_arg_count("task_rename")?.is_some();
    let file_path = btf.member_offset("file", "f_path")?;
    // Optional: without them containers are found by /proc scans only.
    let cgroup_members = (|| -> Result<[u32; 4], BtfError> {
        Ok([
            btf.member_offset("cgroup", "kn")?,
            btf.member_offset("cgroup", "root")?,
            btf.member_offset("kernfs_node", "id")?,
            btf.member_offset("cgroup_root", "hierarchy_id")?,
        ])
    })()
    .ok();
    let has_cgroup_tracepoints = cgroup_members.is_some()
        && btf.tracepoint_arg_count("cgroup_mkdir")?.is_some()
        && btf.tracepoint_arg_count("cgroup_rmdir")?.is_some();
    let has_populated_tracepoint = has_cgroup_tracepoints
        && btf
            .tracepoint_arg_count("cgroup_notify_populated")?
            .is_some();
    let [
        cgroup_kn,
        cgroup_root,
        kernfs_node_id,
        cgroup_root_hierarchy_id,
    ] = if has_cgroup_tracepoints {
        cgroup_members.unwrap_or_default()
    } else {
        [0; 4]
    };
    let offsets = KernelOffsets {
        task_pid: task("pid")?,
        task_tgid: task("tgid")?,
        task_real_parent: task("real_parent")?,
        task_group_leader: task("group_leader")?,
        task_comm: task("comm")?,
        task_start_boottime: task("start_boottime")?,
        task_real_cred: task("real_cred")?,
        task_signal: task("signal")?,
        task_exit_code: task("exit_code")?,
        task_flags: task("flags")?,
        cred_uid: btf.member_offset("cred", "uid")?,
        cred_gid: btf.member_offset("cred", "gid")?,
        signal_live: btf.member_offset("signal_struct", "live")?,
        binprm_filename: btf.member_offset("linux_binprm", "filename")?,
        module_name: if has_module_load_tracepoint {
            btf.member_offset("module", "name")?
        } else {
            0
        },
        // sched_process_exit(struct task_struct *p, bool group_dead) since Linux 6.16.
        exit_has_group_dead: u32::from(exit_args.is_some_and(|args| args >= 2)),
        sock_net: btf.member_offset("sock_common", "skc_net")?,
        net_ns_inum: btf.member_offset("net", "ns")? + btf.member_offset("ns_common", "inum")?,
        binprm_file: btf.member_offset("linux_binprm", "file")?,
        file_path_mnt: file_path + btf.member_offset("path", "mnt")?,
        file_path_dentry: file_path + btf.member_offset("path", "dentry")?,
        dentry_parent: btf.member_offset("dentry", "d_parent")?,
        dentry_name: btf.member_offset("dentry", "d_name")? + btf.member_offset("qstr", "name")?,
        dentry_hash_pprev: btf.member_offset("dentry", "d_hash")?
            + btf.member_offset("hlist_bl_node", "pprev")?,
        vfsmount_root: btf.member_offset("vfsmount", "mnt_root")?,
        mount_mnt: btf.member_offset("mount", "mnt")?,
        mount_parent: btf.member_offset("mount", "mnt_parent")?,
        mount_mountpoint: btf.member_offset("mount", "mnt_mountpoint")?,
        mount_ns: btf.member_offset("mount", "mnt_ns")?,
        cgroup_kn,
        cgroup_root,
        kernfs_node_id,
        cgroup_root_hierarchy_id,
        reserved: 0,
    };
    Ok(KernelLayout {
        offsets,
        has_module_load_tracepoint,
        has_task_rename_tracepoint,
        has_cgroup_tracepoints,
        has_populated_tracepoint,
    })
}
