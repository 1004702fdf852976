//! SIGHUP: re-read the configuration file and apply what can change while the daemon runs —
//! the log filter (`daemon.log_level`) and the detectors' settings (`detectors.shell_from_service.*`,
//! `detectors.tmp_exec_in_container.*`, rebuilt and swapped in between events). Every other
//! changed key is named in a log line saying it needs a restart; nothing is half-applied. A file
//! that no longer parses or validates is refused with its errors and the running settings stay.

use std::path::PathBuf;
use std::sync::Arc;

use watchpost_actors::Registry;
use watchpost_actors::detect::DetectorEngine;

use crate::config::Config;
use crate::daemon::detections::enabled_detectors;

/// Sets the log filter (`daemon.log_level` syntax); given by `main`, which owns the subscriber.
pub type LogFilterSetter = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// What a reload needs from outside the daemon module.
#[derive(Clone, Default)]
pub struct LiveReload {
    /// The file the daemon was started with (`None`: the embedded default; nothing to reload).
    pub config_path: Option<PathBuf>,
    /// How to change the log filter.
    pub set_log_filter: Option<LogFilterSetter>,
}

impl std::fmt::Debug for LiveReload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveReload")
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

/// Keys whose change is applied live.
fn is_live(key: &str) -> bool {
    key == "daemon.log_level"
        || key.starts_with("detectors.shell_from_service.")
        || key.starts_with("detectors.tmp_exec_in_container.")
}

/// The keys (`section.name`) whose values differ between `a` and `b`, sorted.
pub fn changed_keys(a: &Config, b: &Config) -> Vec<String> {
    fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let table = |c: &Config| {
        let mut out = Vec::new();
        if let Ok(t) = toml::Table::try_from(c) {
            flatten("", &toml::Value::Table(t), &mut out);
        }
        out
    };
    let (ta, tb) = (table(a), table(b));
    let mut keys: Vec<String> = ta
        .iter()
        .filter(|kv| !tb.contains(kv))
        .chain(tb.iter().filter(|kv| !ta.contains(kv)))
        .map(|(k, _)| k.clone())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// What one reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Keys applied live.
    pub applied: Vec<String>,
    /// Keys that changed but only take effect after a restart.
    pub need_restart: Vec<String>,
}

/// Re-reads the file and applies what it can; `running` becomes the applied configuration
/// (keys that need a restart keep their running values).
pub async fn reload(
    live: &LiveReload,
    running: &mut Config,
    registry: &Registry,
    engine: &DetectorEngine,
) -> Result<ReloadOutcome, String> {
    let Some(path) = &live.config_path else {
        return Err("started without --config: there is no file to reload".to_owned());
    };
    let mut fresh = Config::load(path).map_err(|e| e.to_string())?;
    crate::config::system::check(&fresh, Some(path)).map_err(|e| e.to_string())?;
    // Command-line overrides stay as they were given.
    fresh.daemon.data_dir = running.daemon.data_dir.clone();
    fresh.socket.path = running.socket.path.clone();
    let mut outcome = ReloadOutcome::default();
    for key in changed_keys(running, &fresh) {
        if is_live(&key) {
            outcome.applied.push(key);
        } else {
            outcome.need_restart.push(key);
        }
    }
    if outcome.applied.iter().any(|k| k.starts_with("detectors.")) {
        let mut next = running.clone();
        next.detectors.shell_from_service = fresh.detectors.shell_from_service.clone();
        next.detectors.tmp_exec_in_container = fresh.detectors.tmp_exec_in_container.clone();
        engine
            .replace_detectors(registry, enabled_detectors(&next))
            .await
            .map_err(|e| format!("the new detector settings were refused: {e}"))?;
        running.detectors = next.detectors;
    }
    if outcome.applied.iter().any(|k| k == "daemon.log_level") {
        if let Some(set) = &live.set_log_filter {
            set(&fresh.daemon.log_level)?;
        }
        running.daemon.log_level = fresh.daemon.log_level.clone();
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_named_and_sorted() {
        let a = Config::default();
        let b = Config::from_toml(
            "[daemon]\nlog_level = \"debug\"\n[socket]\nmax_clients = 4\n[detectors.shell_from_service]\ndepth = 3\n",
            None,
        )
        .unwrap();
        assert_eq!(
            changed_keys(&a, &b),
            [
                "daemon.log_level",
                "detectors.shell_from_service.depth",
                "socket.max_clients"
            ]
        );
        assert!(changed_keys(&a, &a).is_empty());
        assert!(is_live("daemon.log_level"));
        assert!(is_live("detectors.shell_from_service.depth"));
        assert!(!is_live("socket.max_clients"));
        assert!(!is_live("detectors.event_queue"));
    }
}
