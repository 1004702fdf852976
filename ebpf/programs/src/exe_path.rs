//! The path of the file the kernel executed, not the path the caller gave.
//!
//! `bprm->filename` is whatever was passed to execve: a symlink's name, a relative path with
//! `..`, `/dev/fd/3` for a memfd. The file the kernel actually runs is `bprm->file`; its path is
//! read here by walking its dentries up to the root, crossing mount points (`mnt_mountpoint`,
//! `mnt_parent`) the way the kernel's own `d_path` does, and writing each component's name
//! (NUL-terminated, the file's own name first) into the record. Userspace reverses them into
//! the absolute path as seen from the initial mount namespace's view of that mount tree (a
//! container's binaries appear with the container's paths, as `/proc/<pid>/exe` shows them to
//! the host).
//!
//! Also read: whether the file was unlinked (its dentry unhashed: `deleted`), and whether it
//! sits on a kernel-internal mount (no mount namespace: where `memfd_create` files live).
//!
//! Bounded: at most [`EXEC_PATH_MAX_DEPTH`] components and [`EXEC_PATH_MOUNT_HOPS`] stacked
//! mounts per component, and the components stop once [`EXEC_PATH_CAPACITY`] bytes are written;
//! a path cut short is flagged `TRUNCATED` (the components nearest the file are the ones kept).
//!
//! Verifier notes (must load on Linux 6.1): every loop has one continuing path (the others leave
//! the loop), so the verifier's states at the loop head stay equivalent and it does not explore
//! a tree of branches; all kernel pointers are plain numbers read with `bpf_probe_read_kernel`;
//! writes into the record go through an index masked with a mask the compiler cannot see.

use core::ffi::c_void;
use core::ptr::addr_of;

use aya_ebpf::helpers::generated as helper;
use watchpost_ebpf_common::{
    EXEC_PATH_CAPACITY, EXEC_PATH_COMPONENT_MAX, EXEC_PATH_MAX_DEPTH, EXEC_PATH_MOUNT_HOPS,
    KernelOffsets, exe_flag,
};

use crate::read_pointer;

/// `MNT_NS_INTERNAL`: `ERR_PTR(-EINVAL)`, the `mnt_ns` of long-term internal mounts.
const MNT_NS_INTERNAL: u64 = (-22i64) as u64;

/// A mask the compiler must keep (it cannot prove the index small, so it cannot drop it) and
/// the verifier knows (a constant spilled to the stack).
#[inline(always)]
pub(crate) fn opaque_mask(mask: u64) -> u64 {
    let slot = mask;
    // SAFETY: a volatile read of a local.
    unsafe { core::ptr::read_volatile(addr_of!(slot)) }
}

/// Writes the path components of `file` into `data` (at least `8192 + 256` bytes) and returns
/// (bytes written, `exe_flag` bits).
#[inline(always)]
pub(crate) fn resolve(file: *const u8, data: *mut u8, o: &KernelOffsets) -> (u32, u32) {
    let mut flags = 0;
    let leaf = read_pointer(file, o.file_path_dentry);
    let vfsmount = read_pointer(file, o.file_path_mnt);
    if leaf.is_null() || vfsmount.is_null() {
        return (0, exe_flag::UNRESOLVED);
    }
    let mut mount = vfsmount.wrapping_sub(o.mount_mnt as usize);
    // Unlinked: unhashed and not the root of its mount. That covers files unlinked from their
    // directory and pseudo files that never had one (a memfd: its dentry is its own parent),
    // which `/proc/<pid>/exe` also shows as "(deleted)".
    let pprev = read_pointer(leaf, o.dentry_hash_pprev);
    if pprev.is_null() && leaf != read_pointer(vfsmount, o.vfsmount_root) {
        flags |= exe_flag::DELETED;
    }
    let namespace = read_pointer(mount, o.mount_ns) as u64;
    if namespace == 0 || namespace == MNT_NS_INTERNAL {
        flags |= exe_flag::INTERNAL_MOUNT;
    }

    let mask = opaque_mask(8191);
    let mut dentry = leaf;
    let mut written: u32 = 0;
    let mut finished = false;
    for _ in 0..EXEC_PATH_MAX_DEPTH {
        // Leave the mounts `dentry` is the root of, down to the one it is a name in.
        let mut at_top = false;
        for _ in 0..EXEC_PATH_MOUNT_HOPS {
            let root = read_pointer(mount.wrapping_add(o.mount_mnt as usize), o.vfsmount_root);
            if dentry != root {
                break;
            }
            let parent = read_pointer(mount, o.mount_parent);
            if parent.is_null() || parent == mount {
                at_top = true;
                break;
            }
            dentry = read_pointer(mount, o.mount_mountpoint);
            mount = parent;
        }
        if at_top {
            finished = true;
            break;
        }
        let parent = read_pointer(dentry, o.dentry_parent);
        // Its own parent but not a mount's root: a pseudo file (memfd) when it is the file
        // itself — its name is its whole path — else a detached tree we cannot place.
        let detached = parent.is_null() || parent == dentry;
        if detached && written != 0 {
            flags |= exe_flag::UNRESOLVED;
            finished = true;
            break;
        }
        if written as usize > EXEC_PATH_CAPACITY {
            break;
        }
        let name = read_pointer(dentry, o.dentry_name);
        // SAFETY: writes at most EXEC_PATH_COMPONENT_MAX bytes at an offset of at most 8191
        // into `data`, which is larger than 8191 + EXEC_PATH_COMPONENT_MAX.
        let n = unsafe {
            helper::bpf_probe_read_kernel_str(
                data.add((u64::from(written) & mask) as usize)
                    .cast::<c_void>(),
                EXEC_PATH_COMPONENT_MAX as u32,
                name.cast(),
            )
        };
        if n <= 0 {
            flags |= exe_flag::UNRESOLVED;
            finished = true;
            break;
        }
        written += n as u32;
        if detached {
            finished = true;
            break;
        }
        dentry = parent;
    }
    if !finished {
        flags |= exe_flag::TRUNCATED;
    }
    (written, flags)
}
