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
use crate::stores::process::ProcessHandle;
use watchpost_core::process::ProcessView;

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

    fn service_of(&self, p: &ProcessView<'_>) -> Option<String> {
        let listed = |name: &str| self.config.services.iter().any(|s| s == name);
        if listed(p.name()) {
            return Some(p.name().to_owned());
        }
        let exe_name = basename(p.exe_path().unwrap_or_default());
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
            // The ancestry is read in place (borrowed from the store's published copy); only a
            // match is copied out.
            let found = processes
                .with_ancestry(event.process(), self.config.depth, |walk| {
                    let mut chain = Vec::new();
                    let mut found = None;
                    // The first entry is the shell itself.
                    for (i, p) in walk.enumerate() {
                        chain.push(format!(
                            "{}[{}] {}",
                            p.name(),
                            p.pid(),
                            p.exe_path().unwrap_or_default()
                        ));
                        if found.is_none()
                            && i > 0
                            && let Some(service) = self.service_of(&p)
                        {
                            let exe = p.exe_path().unwrap_or_default().to_owned();
                            found = Some((i, service, p.pid(), exe));
                        }
                    }
                    found.map(|f| (f, chain))
                })
                .map_err(|e| DetectorError::new(NAME, e.to_string()))?;
            let Some(((level, service, service_pid, service_exe), chain)) = found else {
                return Ok(Vec::new());
            };
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
            .with("service_pid", service_pid)
            .with("service_exe", service_exe)
            .with("service_level", level as u64)
            .with("ancestry", chain)
            .with("uid", event.uid);
            if let (Some(id), Some(containers)) = (&event.container_id, &self.containers)
                && let Ok((name, image)) = containers.with_container(id, |c| {
                    (c.name.as_str().to_owned(), c.image.as_str().to_owned())
                })
            {
                out = out
                    .with("container_name", name)
                    .with("container_image", image);
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
