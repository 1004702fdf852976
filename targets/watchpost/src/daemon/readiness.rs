//! Telling a service manager how the daemon is doing (systemd `Type=notify`, `sd_notify(3)`):
//! `READY=1` once queries can be answered, `STOPPING=1` when a signal starts the shutdown, and a
//! `STATUS=` line with the collection's health each time. Without `NOTIFY_SOCKET` in the
//! environment (not started by systemd) every call does nothing.
//!
//! A failure to notify is logged, never fatal: the daemon is ready whether or not anyone
//! listens, and systemd itself times the start-up out if the message never arrives.

use sd_notify::NotifyState;

/// Queries can be answered from now on; `status` says how the stores are fed.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// The daemon is shutting down (after `signal`).
pub fn stopping(signal: &str) {
    let status = format!("stopping after {signal}");
    send(&[NotifyState::Stopping, NotifyState::Status(&status)]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("telling the service manager (NOTIFY_SOCKET): {e}");
    }
}
