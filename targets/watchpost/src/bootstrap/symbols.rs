//! Kernel symbols: loading `/proc/kallsyms` into the core table, and noticing module loads.
//!
//! The table is built and its name index filled off the store actor (it takes a while for
//! ~200k symbols), then handed over whole. A module load or unload changes `/proc/modules`; the
//! [`ModuleWatch`] notices the change by comparing a hash of that file between checks, so the
//! daemon reloads kallsyms only when it changed (the reference re-parsed it eleven times at
//! start-up).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use watchpost_core::symbols::{KernelSymbolTable, SymbolTableError};

/// Why no symbol table was built.
#[derive(Debug, thiserror::Error)]
pub enum SymbolLoadError {
    /// `/proc/kallsyms` could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The text could not be turned into a table.
    #[error("{path}: {source}")]
    Table {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: SymbolTableError,
    },
}

impl SymbolLoadError {
    /// Whether the kernel hid the addresses (not root, no `CAP_SYSLOG`, `kptr_restrict`).
    pub fn is_privilege_error(&self) -> bool {
        matches!(self, SymbolLoadError::Table { source, .. } if source.is_privilege_error())
    }
}

/// Reads `path` (normally `/proc/kallsyms`) into a table with its name index built.
pub fn load_kallsyms(path: &Path) -> Result<KernelSymbolTable, SymbolLoadError> {
    let text = std::fs::read(path).map_err(|source| SymbolLoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut table =
        KernelSymbolTable::from_kallsyms(&text).map_err(|source| SymbolLoadError::Table {
            path: path.to_path_buf(),
            source,
        })?;
    table.build_name_index();
    Ok(table)
}

/// Notices changes of the loaded-module list.
///
/// A change is only [accepted](ModuleWatch::accept) once the symbol table that reflects it is
/// in place, so a reload that failed is retried at the next check. Take the first fingerprint
/// ([`ModuleWatch::new`]) *before* the first kallsyms read: a module loaded in between then
/// shows up as a change instead of being missed.
#[derive(Debug)]
pub struct ModuleWatch {
    path: PathBuf,
    last: Option<u64>,
}

/// The module list as one check saw it: hand it to [`ModuleWatch::accept`] after reloading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleListState {
    fingerprint: Option<u64>,
}

impl ModuleWatch {
    /// Watches `path` (normally `/proc/modules`), starting from its current contents.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let last = Self::fingerprint(&path);
        ModuleWatch { path, last }
    }

    fn fingerprint(path: &Path) -> Option<u64> {
        let text = std::fs::read(path).ok()?;
        let mut h = DefaultHasher::new();
        // Each module's name and load address (`name size refs deps state address [taints]`),
        // nothing else: the reference counts and dependants change while modules are merely in
        // use, and the state and the size change once when a module finishes loading (`Loading`
        // → `Live`, its init sections freed) — a second "change" that would reload the symbols
        // twice for one load. The address tells a module unloaded and loaded again apart (it is
        // 0 without the privilege to see it: then the names alone).
        for line in text.split(|b| *b == b'\n') {
            let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
            fields.first().hash(&mut h);
            fields.get(5).hash(&mut h);
        }
        Some(h.finish())
    }

    /// The module list now, if it differs from the last accepted one (or the one
    /// [`ModuleWatch::new`] saw). Read before kallsyms, so the table read afterwards holds at
    /// least these modules.
    pub fn check(&self) -> Option<ModuleListState> {
        let fingerprint = Self::fingerprint(&self.path);
        (fingerprint != self.last).then_some(ModuleListState { fingerprint })
    }

    /// The symbol table now reflects `state`: later checks compare against it.
    pub fn accept(&mut self, state: ModuleListState) {
        self.last = state.fingerprint;
    }

    /// Whether the module list changed since the last call (or since [`ModuleWatch::new`]),
    /// accepting the change at once.
    pub fn changed(&mut self) -> bool {
        match self.check() {
            Some(state) => {
                self.accept(state);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_watch_sees_name_changes_not_refcounts() {
        let path = std::env::temp_dir().join(format!("watchpost-modules-{}", std::process::id()));
        std::fs::write(&path, "ext4 1000 2 - Live 0x0\nloop 300 0 - Live 0x0\n").unwrap();
        let mut watch = ModuleWatch::new(&path);
        assert!(!watch.changed());
        std::fs::write(&path, "ext4 1000 5 - Live 0x0\nloop 300 1 - Live 0x0\n").unwrap();
        assert!(!watch.changed(), "use counts are not a module change");
        std::fs::write(&path, "ext4 1000 5 - Live 0x0\n").unwrap();
        assert!(watch.changed());
        assert!(!watch.changed());
        // Loading: init sections counted in the size; Live: freed. One load, one change.
        std::fs::write(
            &path,
            "ext4 1000 5 - Live 0xffa0\ncrc7 16384 0 - Loading 0xffc0\n",
        )
        .unwrap();
        assert!(watch.changed(), "a new module");
        std::fs::write(
            &path,
            "ext4 1000 5 - Live 0xffa0\ncrc7 12288 0 - Live 0xffc0\n",
        )
        .unwrap();
        assert!(!watch.changed(), "a module going live is not a change");
        std::fs::write(
            &path,
            "ext4 1000 5 - Live 0xffa0\ncrc7 12288 0 - Live 0xffe0\n",
        )
        .unwrap();
        assert!(watch.changed(), "unloaded and loaded again elsewhere");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_change_stays_pending_until_accepted() {
        let path =
            std::env::temp_dir().join(format!("watchpost-modules-acc-{}", std::process::id()));
        std::fs::write(&path, "ext4 1000 2 - Live 0x0\n").unwrap();
        let mut watch = ModuleWatch::new(&path);
        assert_eq!(watch.check(), None);
        std::fs::write(&path, "ext4 1000 2 - Live 0x0\ncrc7 12288 0 - Live 0x0\n").unwrap();
        let seen = watch.check().expect("a new module is a change");
        assert!(watch.check().is_some(), "not accepted yet: still a change");
        watch.accept(seen);
        assert_eq!(watch.check(), None);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let e = load_kallsyms(Path::new("/nonexistent/kallsyms")).unwrap_err();
        assert!(matches!(e, SymbolLoadError::Read { .. }));
        assert!(!e.is_privilege_error());
    }

    #[test]
    fn hidden_addresses_are_a_privilege_error() {
        let path = std::env::temp_dir().join(format!("watchpost-kallsyms-{}", std::process::id()));
        std::fs::write(
            &path,
            "0000000000000000 T _stext\n0000000000000000 T do_sys_open\n",
        )
        .unwrap();
        let e = load_kallsyms(&path).unwrap_err();
        assert!(e.is_privilege_error(), "{e}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn loads_the_real_kallsyms_when_readable() {
        match load_kallsyms(Path::new("/proc/kallsyms")) {
            Ok(table) => assert!(table.len() > 1000),
            Err(e) => assert!(
                e.is_privilege_error() && !rustix::process::geteuid().is_root(),
                "root must be able to read kallsyms: {e}"
            ),
        }
    }
}
