//! Which eBPF programs the collector attached on this kernel, and which it could not because
//! the kernel lacks their attach point — with what the daemon does instead. An older kernel
//! loads the collector without its optional programs (module loads, cgroup events); the daemon
//! says so in `query metrics` (`ebpf_attached`, `ebpf_unavailable`), in `query health` and in
//! its log, never silently.

use serde::{Deserialize, Serialize};
use watchpost_ebpf::{Attachments, ModuleLoadSignal};

/// The programs attached and those the kernel could not take.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EbpfPrograms {
    /// Attached programs, by attach point (`sched_process_exec`, `cgroup_mkdir`, …).
    pub attached: Vec<String>,
    /// `<attach point>: <what the daemon does without it>`, for each the kernel lacks.
    pub unavailable: Vec<String>,
}

impl EbpfPrograms {
    /// The health message's note on what is missing (`None`: nothing is).
    pub fn lacking_note(&self) -> Option<String> {
        (!self.unavailable.is_empty())
            .then(|| format!("the kernel lacks {}", self.unavailable.join("; ")))
    }
}

impl From<&Attachments> for EbpfPrograms {
    /// What a collector loaded with every program asked for (the daemon's options) attached: a
    /// program asked for and not attached is one the kernel lacks.
    fn from(a: &Attachments) -> Self {
        let mut out = EbpfPrograms::default();
        let mut note = |attached: bool, names: &[&str], instead: &str| {
            if attached {
                out.attached.extend(names.iter().map(|n| (*n).to_owned()));
            } else {
                out.unavailable
                    .push(format!("{}: {instead}", names.join("/")));
            }
        };
        note(
            a.process_events,
            &[
                "sched_process_fork",
                "sched_process_exec",
                "sched_process_exit",
            ],
            "processes are found by /proc scans",
        );
        note(
            a.renames,
            &["task_rename"],
            "a renamed process keeps its old name until a /proc scan reads it",
        );
        note(
            a.dns_cgroup_root.is_some(),
            &["cgroup_skb/ingress"],
            "no DNS answers are observed",
        );
        if a.dns_cgroup_root.is_some() && a.dns_queries_matched {
            // The queries' side: answers are taken only for queries seen going out.
            note(true, &["cgroup_skb/egress"], "");
        }
        match a.module_loads {
            ModuleLoadSignal::Attached => note(true, &["module_load"], ""),
            // A kernel without modules has no module load to miss: nothing is lacking.
            ModuleLoadSignal::KernelWithoutModules | ModuleLoadSignal::NotRequested => {}
        }
        note(
            a.cgroup_events,
            &["cgroup_mkdir", "cgroup_rmdir"],
            "containers are found from their processes in /proc",
        );
        note(
            a.cgroup_populated_events,
            &["cgroup_notify_populated"],
            "a stopped container whose cgroup stays is removed when its processes are gone \
             from /proc",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn all() -> Attachments {
        Attachments {
            process_events: true,
            renames: true,
            dns_cgroup_root: Some(PathBuf::from("/sys/fs/cgroup")),
            dns_queries_matched: true,
            module_loads: ModuleLoadSignal::Attached,
            cgroup_events: true,
            cgroup_populated_events: true,
        }
    }

    #[test]
    fn everything_attached_lacks_nothing() {
        let p = EbpfPrograms::from(&all());
        assert!(p.unavailable.is_empty());
        assert_eq!(p.lacking_note(), None);
        for name in [
            "sched_process_exec",
            "task_rename",
            "cgroup_skb/ingress",
            "cgroup_skb/egress",
            "module_load",
            "cgroup_mkdir",
            "cgroup_rmdir",
            "cgroup_notify_populated",
        ] {
            assert!(p.attached.iter().any(|a| a == name), "{name}");
        }
    }

    #[test]
    fn an_older_kernel_names_what_it_lacks_and_the_fallback() {
        let p = EbpfPrograms::from(&Attachments {
            cgroup_events: false,
            cgroup_populated_events: false,
            module_loads: ModuleLoadSignal::KernelWithoutModules,
            ..all()
        });
        assert_eq!(p.unavailable.len(), 2, "{:?}", p.unavailable);
        assert!(p.unavailable[0].starts_with("cgroup_mkdir/cgroup_rmdir: "));
        assert!(!p.attached.iter().any(|a| a == "module_load"));
        assert!(
            !p.attached
                .iter()
                .any(|a| a.starts_with("cgroup_mkdir") || a.starts_with("cgroup_notify"))
        );
        let note = p.lacking_note().unwrap();
        assert!(note.contains("cgroup_notify_populated") && note.contains("/proc"));
    }
}
