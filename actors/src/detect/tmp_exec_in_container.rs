//! Detector: a container runs a program from a world-writable temporary directory (`/tmp`,
//! `/var/tmp`, `/dev/shm`). Images ship their binaries; one that appears in a temp dir and runs
//! was dropped there at run time (downloaded payload, miner, exploit stage).
//!
//! On every exec inside a container (the event carries the container ID), the executable path
//! is checked against the directories (whole path components: `/tmpfoo/x` is not `/tmp`). The
//! container store supplies the container's name, image and runtime (a container the store does
//! not know yet is still reported, marked `container_known: false`); the process store supplies
//! the parent that launched it.

use serde::{Deserialize, Serialize};
use watchpost_core::ErrorKind;

use crate::detect::{
    BoxFuture, Detector, DetectorError, DetectorOutput, DetectorParams, Event, EventKind, Severity,
};
use crate::stores::container::ContainerHandle;
use crate::stores::process::ProcessHandle;

/// Settings of [`TmpExecInContainer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpExecInContainerConfig {
    /// World-writable directories executables should not run from.
    pub directories: Vec<String>,
}

impl Default for TmpExecInContainerConfig {
    fn default() -> Self {
        TmpExecInContainerConfig {
            directories: vec!["/tmp".into(), "/var/tmp".into(), "/dev/shm".into()],
        }
    }
}

/// The detector; see the module docs.
#[derive(Debug, Default)]
pub struct TmpExecInContainer {
    config: TmpExecInContainerConfig,
    processes: Option<ProcessHandle>,
    containers: Option<ContainerHandle>,
}

/// Name of [`TmpExecInContainer`] in outputs.
pub const NAME: &str = "tmp_exec_in_container";

impl TmpExecInContainer {
    /// The detector with `config`.
    pub fn new(config: TmpExecInContainerConfig) -> Self {
        TmpExecInContainer {
            config,
            ..Default::default()
        }
    }

    /// The configured directory `exe` lies under, if any.
    fn writable_dir_of(&self, exe: &str) -> Option<&str> {
        self.config
            .directories
            .iter()
            .map(String::as_str)
            .find(|dir| {
                let dir = dir.trim_end_matches('/');
                exe.strip_prefix(dir)
                    .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
            })
    }
}

impl Detector for TmpExecInContainer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn init(&mut self, params: DetectorParams) -> BoxFuture<'_, Result<(), DetectorError>> {
        Box::pin(async move {
            self.processes = Some(params.registry.processes());
            self.containers = Some(params.registry.containers());
            Ok(())
        })
    }

    fn on_event<'a>(
        &'a self,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<Vec<DetectorOutput>, DetectorError>> {
        Box::pin(async move {
            if event.kind != EventKind::Exec {
                return Ok(Vec::new());
            }
            let Some(container_id) = event.container_id.as_deref() else {
                return Ok(Vec::new());
            };
            let Some(dir) = self.writable_dir_of(&event.exe) else {
                return Ok(Vec::new());
            };
            let (Some(containers), Some(processes)) = (&self.containers, &self.processes) else {
                return Err(DetectorError::new(NAME, "not initialised"));
            };
            let mut out = DetectorOutput::about(
                NAME,
                Severity::High,
                format!(
                    "container {} executed {} from {dir}",
                    short(container_id),
                    event.exe
                ),
                event,
            )
            .with("directory", dir)
            .with("comm", event.comm.as_str())
            .with("uid", event.uid);
            let known = containers.with_container(container_id, |c| {
                (
                    c.name.as_str().to_owned(),
                    c.image.as_str().to_owned(),
                    c.runtime.as_str().to_owned(),
                )
            });
            match known {
                Ok((name, image, runtime)) => {
                    out = out
                        .with("container_known", true)
                        .with("container_name", name)
                        .with("container_image", image)
                        .with("container_runtime", runtime);
                }
                Err(e) if e.is(ErrorKind::NotFound) => out = out.with("container_known", false),
                Err(e) => return Err(DetectorError::new(NAME, e.to_string())),
            }
            if let Some(parent) = event.parent()
                && let Ok((pid, name, exe)) = processes.with_process(parent, |p| {
                    (
                        p.pid(),
                        p.name().to_owned(),
                        p.exe_path().unwrap_or_default().to_owned(),
                    )
                })
            {
                out = out
                    .with("parent_pid", pid)
                    .with("parent_name", name)
                    .with("parent_exe", exe);
            }
            Ok(vec![out])
        })
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_directory_components_match() {
        let d = TmpExecInContainer::default();
        assert_eq!(d.writable_dir_of("/tmp/x"), Some("/tmp"));
        assert_eq!(d.writable_dir_of("/dev/shm/a/b"), Some("/dev/shm"));
        assert_eq!(d.writable_dir_of("/var/tmp/.hidden"), Some("/var/tmp"));
        assert_eq!(d.writable_dir_of("/tmpfoo/x"), None);
        assert_eq!(d.writable_dir_of("/tmp/"), None);
        assert_eq!(d.writable_dir_of("/usr/bin/sh"), None);
    }
}
