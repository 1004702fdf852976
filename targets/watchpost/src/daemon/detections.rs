//! The detectors: the engine with the built-in detectors the configuration enables, and the
//! printer that writes every detection as one JSON line on stdout (logs go to stderr).

use std::io::Write as _;

use tokio::sync::mpsc;
use watchpost_actors::Registry;
use watchpost_actors::detect::shell_from_service::ShellFromService;
use watchpost_actors::detect::tmp_exec_in_container::TmpExecInContainer;
use watchpost_actors::detect::{
    Detector, DetectorEngine, DetectorError, DetectorOutput, EngineOptions,
};

use crate::config::{Config, ms};
use crate::stats::{DaemonCounters, bump};

/// The built-in detectors `config` enables, not yet initialised.
pub fn enabled_detectors(config: &Config) -> Vec<Box<dyn Detector>> {
    let d = &config.detectors;
    let mut detectors: Vec<Box<dyn Detector>> = Vec::new();
    if d.shell_from_service.enabled {
        detectors.push(Box::new(ShellFromService::new(config.shell_from_service())));
    }
    if d.tmp_exec_in_container.enabled {
        detectors.push(Box::new(TmpExecInContainer::new(
            config.tmp_exec_in_container(),
        )));
    }
    detectors
}

/// Initialises the enabled built-in detectors.
pub async fn start_engine(
    registry: &Registry,
    config: &Config,
) -> Result<DetectorEngine, DetectorError> {
    let d = &config.detectors;
    DetectorEngine::start(
        registry,
        enabled_detectors(config),
        EngineOptions {
            max_in_flight: d.max_in_flight,
            detector_timeout: ms(d.timeout_ms),
        },
    )
    .await
}

/// Prints detections as JSON lines until every sender is gone. Runs on the blocking pool
/// (`spawn_blocking`): writing and flushing stdout may block, which a runtime thread must not.
pub fn print_detections(mut outputs: mpsc::Receiver<DetectorOutput>, stats: &DaemonCounters) {
    let mut stdout_broken = false;
    while let Some(found) = outputs.blocking_recv() {
        bump(&stats.detections);
        let line = match serde_json::to_string(&found) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(detector = %found.detector, error = %e, "detection not encodable");
                continue;
            }
        };
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush())
            && !stdout_broken
        {
            tracing::error!(error = %e, "stdout is not writable: detections are being lost");
            stdout_broken = true;
        }
    }
}
