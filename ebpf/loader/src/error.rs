//! What can go wrong loading and reading the eBPF collector, split so the daemon can act on it:
//! a kernel that *refuses* (no privilege, no support) means "fall back to `/proc` polling";
//! anything else is a bug to report.

use std::error::Error as StdError;
use std::io;

use crate::btf::BtfError;

/// The step of [`crate::Collector::load`] that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStage {
    /// Reading the boot clock (`/proc/stat` `btime`, `CLK_TCK`).
    BootClock,
    /// Reading the kernel's BTF for structure offsets.
    KernelBtf,
    /// Finding or opening the cgroup v2 root.
    CgroupRoot,
    /// Creating the maps and parsing the object (`bpf(BPF_MAP_CREATE)` and friends).
    CreateMaps,
    /// Loading (verifying) the named program.
    LoadProgram(&'static str),
    /// Attaching the named program.
    AttachProgram(&'static str),
    /// Taking a map out of the loaded object for reading.
    OpenMap(&'static str),
}

impl std::fmt::Display for LoadStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadStage::BootClock => f.write_str("reading the boot clock"),
            LoadStage::KernelBtf => f.write_str("reading kernel BTF"),
            LoadStage::CgroupRoot => f.write_str("opening the cgroup v2 root"),
            LoadStage::CreateMaps => f.write_str("creating maps"),
            LoadStage::LoadProgram(p) => write!(f, "loading program `{p}`"),
            LoadStage::AttachProgram(p) => write!(f, "attaching program `{p}`"),
            LoadStage::OpenMap(m) => write!(f, "opening map `{m}`"),
        }
    }
}

/// Why [`crate::Collector::load`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The kernel refused for lack of privilege (`EPERM`/`EACCES` outside the verifier): needs
    /// root, or `CAP_BPF` + `CAP_PERFMON` (+ `CAP_NET_ADMIN` for DNS capture). Fall back to
    /// polling.
    #[error(
        "kernel refused {stage}: {} (needs root, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN): {source}",
        std::io::Error::from_raw_os_error(*errno)
    )]
    NotPermitted {
        /// What was being done.
        stage: LoadStage,
        /// `EPERM` or `EACCES`.
        errno: i32,
        /// The underlying error (its chain ends in the OS error).
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The kernel lacks what is needed (no `bpf()` syscall, no BTF, no such tracepoint, ring
    /// buffers unsupported). Fall back to polling.
    #[error("kernel cannot run the collector ({stage}): {reason}")]
    Unsupported {
        /// What was being done.
        stage: LoadStage,
        /// What is missing, in words.
        reason: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
    /// The verifier rejected a program: a bug in the programs (or the offsets) for this kernel.
    #[error("the verifier rejected `{program}` (errno {errno}); verifier log:\n{log}")]
    Rejected {
        /// The program.
        program: &'static str,
        /// The errno of `BPF_PROG_LOAD`.
        errno: i32,
        /// The verifier's log.
        log: String,
    },
    /// The kernel's BTF lacks a structure member the programs need, or is malformed.
    #[error("kernel BTF does not describe what the programs need: {0}")]
    KernelLayout(#[source] BtfError),
    /// The options asked for something impossible.
    #[error("invalid collector options: {0}")]
    InvalidOptions(String),
    /// Anything else: a bug, with the stage and the underlying error.
    #[error("{stage} failed: {source}")]
    Other {
        /// What was being done.
        stage: LoadStage,
        /// The underlying error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl LoadError {
    /// True when the kernel refused (no privilege or no support) rather than the collector
    /// being broken: the caller should fall back to `/proc` polling and say so once.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            LoadError::NotPermitted { .. } | LoadError::Unsupported { .. }
        )
    }

    /// Classifies an error from aya (or the OS) raised during `stage` by the OS error at the end
    /// of its source chain.
    pub(crate) fn classify(
        stage: LoadStage,
        error: impl StdError + Send + Sync + 'static,
    ) -> LoadError {
        if let Some(rejected) = verifier_rejection(stage, &error) {
            return rejected;
        }
        match errno_in_chain(&error) {
            Some(errno @ (libc::EPERM | libc::EACCES)) => LoadError::NotPermitted {
                stage,
                errno,
                source: Box::new(error),
            },
            Some(errno @ (libc::ENOSYS | libc::EOPNOTSUPP | ENOTSUPP)) => LoadError::Unsupported {
                stage,
                reason: format!("{} (errno {errno})", io::Error::from_raw_os_error(errno)),
                source: Some(Box::new(error)),
            },
            Some(libc::ENOENT) if matches!(stage, LoadStage::AttachProgram(_)) => {
                LoadError::Unsupported {
                    stage,
                    reason: "the kernel has no such attach point".to_owned(),
                    source: Some(Box::new(error)),
                }
            }
            _ => LoadError::Other {
                stage,
                source: Box::new(error),
            },
        }
    }
}

/// The kernel-internal `ENOTSUPP` (524) that leaks out of some `bpf()` paths.
const ENOTSUPP: i32 = 524;

/// The OS error number at the end of `error`'s source chain, if any.
pub(crate) fn errno_in_chain(error: &(dyn StdError + 'static)) -> Option<i32> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(errno) = io.raw_os_error()
        {
            return Some(errno);
        }
        current = e.source();
    }
    None
}

/// A verifier rejection (`BPF_PROG_LOAD` failing with anything but `EPERM`) as [`LoadError::Rejected`].
fn verifier_rejection(stage: LoadStage, error: &(dyn StdError + 'static)) -> Option<LoadError> {
    let LoadStage::LoadProgram(program) = stage else {
        return None;
    };
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        }) = e.downcast_ref::<aya::programs::ProgramError>()
        {
            let errno = io_error.raw_os_error().unwrap_or(0);
            if errno == libc::EPERM {
                return None;
            }
            return Some(LoadError::Rejected {
                program,
                errno,
                log: verifier_log.to_string(),
            });
        }
        current = e.source();
    }
    None
}

/// Why reading events or counters failed after a successful load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Registering a ring buffer with the tokio reactor, or waiting on it, failed.
    #[error("waiting on ring buffer `{map}` failed: {source}")]
    Poll {
        /// The ring buffer.
        map: &'static str,
        /// What the OS or tokio said.
        #[source]
        source: io::Error,
    },
    /// Reading a map failed.
    #[error("reading map `{map}` failed: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// What aya said.
        #[source]
        source: aya::maps::MapError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper")]
    struct Wrapper(#[source] io::Error);

    #[test]
    fn refusals_are_told_apart_from_bugs_by_errno() {
        let eperm = LoadError::classify(
            LoadStage::CreateMaps,
            Wrapper(io::Error::from_raw_os_error(libc::EPERM)),
        );
        assert!(matches!(eperm, LoadError::NotPermitted { .. }), "{eperm}");
        assert!(eperm.is_refusal());

        let enosys = LoadError::classify(
            LoadStage::CreateMaps,
            Wrapper(io::Error::from_raw_os_error(libc::ENOSYS)),
        );
        assert!(matches!(enosys, LoadError::Unsupported { .. }), "{enosys}");
        assert!(enosys.is_refusal());

        let missing_tracepoint = LoadError::classify(
            LoadStage::AttachProgram("module_load"),
            Wrapper(io::Error::from_raw_os_error(libc::ENOENT)),
        );
        assert!(missing_tracepoint.is_refusal());

        let einval = LoadError::classify(
            LoadStage::CreateMaps,
            Wrapper(io::Error::from_raw_os_error(libc::EINVAL)),
        );
        assert!(matches!(einval, LoadError::Other { .. }), "{einval}");
        assert!(!einval.is_refusal());
    }

    #[test]
    fn errno_is_found_at_the_end_of_the_chain() {
        let error = Wrapper(io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(errno_in_chain(&error), Some(libc::EACCES));
        let no_errno = Wrapper(io::Error::other("no errno"));
        assert_eq!(errno_in_chain(&no_errno), None);
    }
}
