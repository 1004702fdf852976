//! Fault injection for tests (feature `fault-injection`, never in a shipped build): the
//! environment variable `WATCHPOST_FAULT` names one fault, which fires once.
//!
//! - `server-panic`: the query server's accept loop panics after its first accepted connection
//!   (the daemon's supervisor must restart it; `query health` then shows the restart).
//! - `engine-panic`: the detector engine panics as it starts (the daemon must stop with an
//!   error, not run on without detections).

use std::sync::atomic::{AtomicBool, Ordering};

static FIRED: AtomicBool = AtomicBool::new(false);

fn armed(name: &str) -> bool {
    std::env::var("WATCHPOST_FAULT").is_ok_and(|v| v == name) && !FIRED.swap(true, Ordering::SeqCst)
}

/// Called by the query server after it accepted a connection.
pub fn on_server_accept() {
    if armed("server-panic") {
        panic!("fault injection: the query server was told to panic");
    }
}

/// Called by the detector engine's task as it starts.
pub fn on_engine_start() {
    if armed("engine-panic") {
        panic!("fault injection: the detector engine was told to panic");
    }
}
