//! The detectors: the engine with the built-in detectors the configuration enables. Their
//! findings go to the sinks ([`crate::sinks`]).

use watchpost_actors::Registry;
use watchpost_actors::detect::shell_from_service::ShellFromService;
use watchpost_actors::detect::tmp_exec_in_container::TmpExecInContainer;
use watchpost_actors::detect::{Detector, DetectorEngine, DetectorError, EngineOptions};

use crate::config::{Config, ms};

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
