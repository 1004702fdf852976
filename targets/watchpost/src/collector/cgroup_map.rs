//! Which container a cgroup v2 ID belongs to, so a kernel event's cgroup ID names the process's
//! container without reading `/proc/<pid>/cgroup` (a short-lived process is gone by then).
//!
//! Filled at start by walking the cgroup v2 hierarchy (a directory's inode number is its cgroup
//! ID), then kept current by the kernel's `cgroup_mkdir`/`cgroup_rmdir` records: the programs
//! are attached before the walk, so a cgroup created during it is reported too. Only container
//! cgroups are kept (a container's sub-cgroups included); any other ID is "no container" —
//! while the map is complete. It stops being complete when the walk was cut short, the map
//! filled up, or the kernel dropped a cgroup record; lookups that miss then say "unknown" and
//! the caller falls back to `/proc` (counted).
//!
//! Bounded: at most `capacity` cgroups (the daemon gives 8 per container slot).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use watchpost_core::cgroup::{CgroupContainer, parse_cgroup_path};

/// Most directories the start-up walk visits.
pub const MAX_WALK: usize = 65_536;
/// Deepest directory the walk enters (kubelet systemd paths are about 5 deep; nested runtimes
/// a few more).
pub const MAX_WALK_DEPTH: usize = 16;

/// What a lookup knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The cgroup belongs to this container.
    Container(&'a CgroupContainer),
    /// The cgroup is no container's.
    NotContainer,
    /// Not known (the map is incomplete, or the ID is 0): ask `/proc`.
    Unknown,
}

/// cgroup ID → container; see the module docs.
#[derive(Debug)]
pub struct CgroupMap {
    by_id: HashMap<u64, CgroupContainer>,
    capacity: usize,
    complete: bool,
}

/// What a cgroup change means for the container store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A container's own cgroup appeared: the container exists (about to start).
    ContainerCreated(CgroupContainer),
    /// A container's own cgroup went away: the container stopped.
    ContainerRemoved(CgroupContainer),
    /// Nothing for the store (not a container, or a sub-cgroup of one).
    Nothing,
}

impl CgroupMap {
    /// An empty, incomplete map (lookups say `Unknown` until [`CgroupMap::walk`] succeeds).
    pub fn new(capacity: usize) -> Self {
        CgroupMap {
            by_id: HashMap::new(),
            capacity: capacity.max(1),
            complete: false,
        }
    }

    /// Container cgroups held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Whether a miss means "no container".
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// From now on misses are `Unknown` (a cgroup record was lost).
    pub fn mark_incomplete(&mut self) {
        self.complete = false;
    }

    fn insert(&mut self, id: u64, container: CgroupContainer) {
        if self.by_id.len() >= self.capacity && !self.by_id.contains_key(&id) {
            self.complete = false;
            return;
        }
        self.by_id.insert(id, container);
    }

    /// Reads every cgroup under `root` (the cgroup v2 mount point); returns the containers
    /// found whose own cgroup it is. Complete unless the walk hit its bounds or the capacity.
    pub fn walk(&mut self, root: &Path) -> std::io::Result<Vec<CgroupContainer>> {
        let mut found = Vec::new();
        let mut visited = 0usize;
        let mut stack: Vec<(PathBuf, String, usize)> = vec![(root.to_path_buf(), String::new(), 0)];
        let mut cut = false;
        std::fs::read_dir(root)?;
        while let Some((dir, relative, depth)) = stack.pop() {
            visited += 1;
            if visited > MAX_WALK {
                cut = true;
                break;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue; // removed meanwhile
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = format!("{relative}/{name}");
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                if let Some(container) = parse_cgroup_path(&path) {
                    if container.is_container_root {
                        found.push(container.clone());
                    }
                    self.insert(meta.ino(), container);
                }
                if depth + 1 < MAX_WALK_DEPTH {
                    stack.push((entry.path(), path, depth + 1));
                } else {
                    cut = true;
                }
            }
        }
        self.complete = !cut && self.by_id.len() < self.capacity;
        Ok(found)
    }

    /// A cgroup appeared.
    pub fn created(&mut self, id: u64, path: &str) -> Change {
        let Some(container) = parse_cgroup_path(path) else {
            return Change::Nothing;
        };
        self.insert(id, container.clone());
        if container.is_container_root {
            Change::ContainerCreated(container)
        } else {
            Change::Nothing
        }
    }

    /// A cgroup's first process arrived (`true`) or its last left (`false`): a container's own
    /// cgroup running again, or stopped with its cgroup kept.
    pub fn populated(&mut self, id: u64, path: &str, populated: bool) -> Change {
        let Some(container) = parse_cgroup_path(path) else {
            return Change::Nothing;
        };
        if !container.is_container_root {
            return Change::Nothing;
        }
        if populated {
            self.insert(id, container.clone());
            Change::ContainerCreated(container)
        } else {
            Change::ContainerRemoved(container)
        }
    }

    /// A cgroup went away.
    pub fn removed(&mut self, id: u64, path: &str) -> Change {
        self.by_id.remove(&id);
        match parse_cgroup_path(path) {
            Some(c) if c.is_container_root => Change::ContainerRemoved(c),
            _ => Change::Nothing,
        }
    }

    /// The container of cgroup `id`.
    pub fn lookup(&self, id: u64) -> Lookup<'_> {
        if id == 0 {
            return Lookup::Unknown;
        }
        match self.by_id.get(&id) {
            Some(c) => Lookup::Container(c),
            None if self.complete => Lookup::NotContainer,
            None => Lookup::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn kernel_changes_keep_it_current() {
        let mut m = CgroupMap::new(4);
        assert_eq!(m.lookup(7), Lookup::Unknown, "nothing walked yet");
        let root = std::env::temp_dir().join(format!("wp-cgmap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join(format!("libpod_parent/libpod-{ID}/sub"))).unwrap();
        std::fs::create_dir_all(root.join("system.slice/sshd.service")).unwrap();
        let found = m.walk(&root).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id.as_str(), ID);
        assert!(m.is_complete());
        assert_eq!(m.len(), 2, "the container's cgroup and its sub-cgroup");
        let ino = |p: &str| std::fs::metadata(root.join(p)).unwrap().ino();
        let sub = ino(&format!("libpod_parent/libpod-{ID}/sub"));
        assert!(matches!(m.lookup(sub), Lookup::Container(c) if c.id.as_str() == ID));
        assert_eq!(
            m.lookup(ino("system.slice/sshd.service")),
            Lookup::NotContainer
        );
        std::fs::remove_dir_all(&root).unwrap();

        let other = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
        let path = format!("/system.slice/docker-{other}.scope");
        assert!(
            matches!(m.created(100, &path), Change::ContainerCreated(c) if c.id.as_str() == other)
        );
        assert!(matches!(m.lookup(100), Lookup::Container(_)));
        assert_eq!(m.created(101, "/user.slice"), Change::Nothing);
        assert!(matches!(
            m.populated(100, &path, false),
            Change::ContainerRemoved(_)
        ));
        assert!(
            matches!(m.lookup(100), Lookup::Container(_)),
            "emptied, not removed"
        );
        assert!(matches!(
            m.populated(100, &path, true),
            Change::ContainerCreated(_)
        ));
        assert!(matches!(m.removed(100, &path), Change::ContainerRemoved(_)));
        assert_eq!(m.lookup(100), Lookup::NotContainer);
        assert_eq!(m.lookup(0), Lookup::Unknown);
    }

    #[test]
    fn overflow_makes_misses_unknown() {
        let mut m = CgroupMap::new(1);
        m.complete = true;
        for (n, id) in [1u64, 2].iter().enumerate() {
            let path = format!("/docker/{:064x}", n + 1);
            m.created(*id, &path);
        }
        assert_eq!(m.len(), 1);
        assert!(!m.is_complete());
        assert_eq!(m.lookup(2), Lookup::Unknown);
    }
}
