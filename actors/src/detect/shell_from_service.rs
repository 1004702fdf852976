//! Detector: a shell started by a network-facing service. A web server, SSH daemon or
//! application runtime that spawns `sh`/`bash`/… somewhere below it is the classic sign of
//! remote code execution (web shell, exploited handler).
//!
//! On every exec of a shell — judged by the file the kernel executed (its basename, symlinks
//! followed, so a shell copied or linked under another name is still a shell), then by the
//! basename of the path as invoked and by `comm` as second signals; `busybox` counts when its
//! applet name is a shell — the process's ancestry (depth 5 by default) is asked of the process
//! store;
//! the first ancestor whose name or executable basename is a configured service is reported,
//! with the chain. The container store adds the container's name and image when the shell runs
//! in one.

use serde::{Deserialize, Serialize};

use crate::detect::{
    BoxFuture, Detector, DetectorError, DetectorLogger, DetectorOutput, DetectorParams, Event,
    EventKind, Severity, basename,
};
use crate::stores::container::ContainerHandle;
use crate::stores::process::{ProcessHandle, ProcessInfo};

/// Settings of [`ShellFromService`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellFromServiceConfig {
    /// Names (comm or executable basename) of network-facing services.
    pub services: Vec<String>,
    /// Names of shells.
    pub shells: Vec<String>,
    /// How far up the ancestry to look (entries, the shell itself included).
    pub depth: i32,
}

impl Default for ShellFromServiceConfig {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect();
        ShellFromServiceConfig {
            services: s(&[
                "nginx",
                "httpd",
                "apache2",
                "lighttpd",
                "caddy",
                "sshd",
                "node",
                "php-fpm",
                "java",
                "tomcat",
                "gunicorn",
                "uwsgi",
                "postgres",
                "mysqld",
                "redis-server",
                "haproxy",
                "envoy",
                "dockerd",
            ]),
            shells: s(&[
                "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh",
            ]),
            depth: 5,
        }
    }
}

/// The detector; see the module docs.
#[derive(Debug, Default)]
pub struct ShellFromService {
    config: ShellFromServiceConfig,
    processes: Option<ProcessHandle>,
    containers: Option<ContainerHandle>,
    logger: Option<DetectorLogger>,
}

/// Name of [`ShellFromService`] in outputs.
pub const NAME: &str = "shell_from_service";

impl ShellFromService {
    /// The detector with `config`.
    pub fn new(config: ShellFromServiceConfig) -> Self {
        ShellFromService {
            config,
            ..Default::default()
        }
    }

    fn is_shell(&self, comm: &str, exe: &str, invoked: &str) -> bool {
        let listed = |name: &str| self.config.shells.iter().any(|s| s == name);
        let exe_name = basename(exe);
        listed(exe_name)
            || listed(comm)
            || (!invoked.is_empty() && listed(basename(invoked)))
            || (exe_name == "busybox" && listed(comm))
    }

    fn service_of(&self, p: &ProcessInfo) -> Option<String> {
        let listed = |name: &str| self.config.services.iter().any(|s| s == name);
        if listed(&p.name) {
            return Some(p.name.clone());
        }
        let exe_name = basename(&p.exe);
        listed(exe_name).then(|| exe_name.to_owned())
    }
}

impl Detector for ShellFromService {
    fn name(&self) -> &'static str {
        NAME
    }

    fn init(&mut self, params: DetectorParams) -> BoxFuture<'_, Result<(), DetectorError>> {
        Box::pin(async move {
            self.processes = Some(params.registry.processes());
            self.containers = Some(params.registry.containers());
            if !params.registry.is_available("process").await {
                params
                    .logger
                    .warn("process store not available yet; shells are judged once it is");
            }
            self.logger = Some(params.logger);
            Ok(())
        })
    }

    fn on_event<'a>(
        &'a self,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<Vec<DetectorOutput>, DetectorError>> {
        Box::pin(async move {
            if event.kind != EventKind::Exec
                || !self.is_shell(&event.comm, &event.exe, &event.invoked)
            {
                return Ok(Vec::new());
            }
            let processes = self
                .processes
                .as_ref()
                .ok_or_else(|| DetectorError::new(NAME, "not initialised"))?;
            let ancestry = processes
                .get_ancestry(event.entity_id, self.config.depth)
                .await
                .map_err(|e| DetectorError::new(NAME, e.to_string()))?;
            // ancestry[0] is the shell itself.
            let Some((level, service, ancestor)) = ancestry
                .iter()
                .enumerate()
                .skip(1)
                .find_map(|(i, p)| self.service_of(p).map(|s| (i, s, p)))
            else {
                return Ok(Vec::new());
            };
            let chain: Vec<String> = ancestry
                .iter()
                .map(|p| format!("{}[{}] {}", p.name, p.pid, p.exe))
                .collect();
            let mut out = DetectorOutput::about(
                NAME,
                Severity::High,
                format!(
                    "shell {} spawned under network-facing service {service}",
                    event.comm
                ),
                event,
            )
            .with("shell", event.comm.as_str())
            .with("shell_exe", event.exe.as_str())
            .with("shell_invoked_as", event.invoked.as_str())
            .with("service", service)
            .with("service_pid", ancestor.pid)
            .with("service_exe", ancestor.exe.as_str())
            .with("service_level", level as u64)
            .with("ancestry", chain)
            .with("uid", event.uid);
            if let (Some(id), Some(containers)) = (&event.container_id, &self.containers)
                && let Ok(c) = containers.get_container(id).await
            {
                out = out
                    .with("container_name", c.name)
                    .with("container_image", c.image);
            }
            if let Some(logger) = &self.logger {
                logger.debug(&out.description);
            }
            Ok(vec![out])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_are_recognised_by_exe_invoked_name_comm_and_busybox_applet() {
        let d = ShellFromService::default();
        assert!(d.is_shell("bash", "/usr/bin/bash", ""));
        assert!(d.is_shell("sh", "/bin/busybox", "/bin/sh"));
        // A shell linked under another name: the executed file says "dash".
        assert!(d.is_shell("innocent", "/usr/bin/dash", "/tmp/innocent"));
        // The invoked name alone (a shell the store knows by another path).
        assert!(d.is_shell("x", "/opt/x", "/usr/local/bin/bash"));
        assert!(!d.is_shell("busybox", "/bin/busybox", "/bin/busybox"));
        assert!(!d.is_shell("python3", "/usr/bin/python3", "/usr/bin/python3"));
    }
}
