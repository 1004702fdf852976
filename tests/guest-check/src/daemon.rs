//! The daemon under test, as a child process: its configuration for the guest, start-up with a
//! deadline, its log (the words a failing check quotes), and a stop by SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::client::{Client, eventually};

/// The release binary under test.
pub const DAEMON_BIN: &str = "/usr/bin/watchpost";
/// Its query socket.
pub const SOCKET: &str = "/run/watchpost/watchpost.sock";
/// How long start-up may take (kallsyms and the eBPF load, emulated).
const START_LIMIT: Duration = Duration::from_secs(180);
/// How long a SIGTERM may take to end it.
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// The guest's configuration: eBPF when the kernel allows, polling `/proc` (twice a second)
/// otherwise; while eBPF feeds the stores `/proc` is not rescanned, so what they learn comes
/// from the kernel. Module checks four times a second, so "a second signal finds nothing new"
/// is proven within a second. Exited processes stay queryable for ten minutes and store calls
/// may take ten seconds: an emulated guest on a busy host is slow, and no check may depend on
/// its speed.
fn config_text(data_dir: &Path) -> String {
    format!(
        "[daemon]\ndata_dir = \"{}\"\nlog_level = \"info\"\n\
         [socket]\npath = \"{SOCKET}\"\n\
         [stores]\ncall_timeout_ms = 10000\n\
         [process]\nexit_grace_ms = 600000\n\
         [symbols]\nmodule_check_interval_ms = 250\n\
         [collector]\nebpf = \"auto\"\nrescan_interval_ms = 500\nreconcile_interval_ms = 3600000\n",
        data_dir.display()
    )
}

/// A running daemon.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    /// Talks to it.
    pub client: Client,
    /// How long it took to answer its first query.
    pub ready_after: Duration,
}

impl Daemon {
    /// Starts it with the guest configuration (files under `dir`) and waits until its socket
    /// answers. The error quotes its log.
    pub fn start(dir: &Path) -> Result<Daemon, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let config = dir.join("watchpost.toml");
        std::fs::write(&config, config_text(&dir.join("data")))
            .map_err(|e| format!("{}: {e}", config.display()))?;
        let log = dir.join("daemon.log");
        let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let stdout = std::fs::File::create(dir.join("detections.jsonl"))
            .map_err(|e| format!("detections file: {e}"))?;
        let started = Instant::now();
        let child = Command::new(DAEMON_BIN)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting {DAEMON_BIN}: {e}"))?;
        let mut daemon = Daemon {
            child: Some(child),
            log,
            client: Client::new(Path::new(SOCKET)),
            ready_after: Duration::ZERO,
        };
        let mut exited = None;
        let ready = eventually(START_LIMIT, || {
            if let Some(status) = daemon.try_exit_status() {
                exited = Some(status);
                return true;
            }
            daemon.client.answers()
        });
        if let Some(status) = exited {
            return Err(format!(
                "the daemon exited during start-up ({status}); its log:\n{}",
                daemon.log()
            ));
        }
        if !ready {
            return Err(format!(
                "the daemon did not answer within {} s; its log:\n{}",
                START_LIMIT.as_secs(),
                daemon.log()
            ));
        }
        daemon.ready_after = started.elapsed();
        Ok(daemon)
    }

    fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Its whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The lines of its log at WARN or ERROR, or mentioning `word` (what a failing check quotes).
    pub fn log_lines(&self, word: &str) -> String {
        self.log()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains(word))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `failure` followed by the daemon's warnings and errors, if it logged any: a failed check
    /// is reported with the daemon's own words.
    pub fn explain(&self, failure: String) -> String {
        let warnings: Vec<String> = self
            .log()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .map(str::to_owned)
            .collect();
        if warnings.is_empty() {
            format!("{failure}\n(the daemon logged no warning)")
        } else {
            format!("{failure}\ndaemon warnings:\n{}", warnings.join("\n"))
        }
    }

    /// Sends SIGTERM and waits for the exit; the exit status, or why there was none.
    pub fn stop(&mut self) -> Result<(ExitStatus, Duration), String> {
        let Some(mut child) = self.child.take() else {
            return Err("the daemon was already stopped".to_owned());
        };
        let started = Instant::now();
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .map_err(|e| format!("SIGTERM: {e}"))?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok((status, started.elapsed())),
                Ok(None) => {}
                Err(e) => return Err(format!("waiting for the daemon: {e}")),
            }
            if started.elapsed() > STOP_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the daemon did not exit within {} s of SIGTERM (killed); its log:\n{}",
                    STOP_LIMIT.as_secs(),
                    self.log_lines("shutting down")
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
