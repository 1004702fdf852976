//! Every catchable signal, handled on purpose. Installed first thing at start, so no signal
//! that arrives later takes its default action (for most of them: die at once, leaving the
//! socket behind and logging nothing).
//!
//! | signal | what the daemon does |
//! |---|---|
//! | SIGTERM, SIGINT, SIGQUIT | clean stop: socket removed, collectors and stores stopped, exit 0 |
//! | SIGHUP | reload the configuration file: apply what can change live, name what needs a restart |
//! | SIGUSR1 | log a status line (RSS, requests, kernel events, task restarts) |
//! | SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGXCPU, SIGXFSZ, SIGSTKFLT, SIGTRAP, SIGTTIN, SIGTTOU, SIGTSTP, SIGWINCH, SIGURG | logged and ignored: none means anything to a daemon |
//!
//! SIGPIPE is ignored by the Rust runtime (a vanished client is a write error); SIGKILL and
//! SIGSTOP cannot be caught; SIGSEGV, SIGBUS, SIGILL and SIGFPE are faults, not requests.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// What a received signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalAction {
    /// Stop cleanly; the signal's name.
    Stop(&'static str),
    /// Reload the configuration.
    Reload,
    /// Log a status line.
    Status,
    /// Nothing; the signal's name (logged).
    Ignore(&'static str),
}

const HANDLED: &[(&str, i32, SignalAction)] = &[
    ("SIGTERM", libc::SIGTERM, SignalAction::Stop("SIGTERM")),
    ("SIGINT", libc::SIGINT, SignalAction::Stop("SIGINT")),
    ("SIGQUIT", libc::SIGQUIT, SignalAction::Stop("SIGQUIT")),
    ("SIGHUP", libc::SIGHUP, SignalAction::Reload),
    ("SIGUSR1", libc::SIGUSR1, SignalAction::Status),
    ("SIGUSR2", libc::SIGUSR2, SignalAction::Ignore("SIGUSR2")),
    ("SIGALRM", libc::SIGALRM, SignalAction::Ignore("SIGALRM")),
    (
        "SIGVTALRM",
        libc::SIGVTALRM,
        SignalAction::Ignore("SIGVTALRM"),
    ),
    ("SIGPROF", libc::SIGPROF, SignalAction::Ignore("SIGPROF")),
    ("SIGIO", libc::SIGIO, SignalAction::Ignore("SIGIO")),
    ("SIGPWR", libc::SIGPWR, SignalAction::Ignore("SIGPWR")),
    ("SIGXCPU", libc::SIGXCPU, SignalAction::Ignore("SIGXCPU")),
    ("SIGXFSZ", libc::SIGXFSZ, SignalAction::Ignore("SIGXFSZ")),
    (
        "SIGSTKFLT",
        libc::SIGSTKFLT,
        SignalAction::Ignore("SIGSTKFLT"),
    ),
    ("SIGTRAP", libc::SIGTRAP, SignalAction::Ignore("SIGTRAP")),
    ("SIGTTIN", libc::SIGTTIN, SignalAction::Ignore("SIGTTIN")),
    ("SIGTTOU", libc::SIGTTOU, SignalAction::Ignore("SIGTTOU")),
    ("SIGTSTP", libc::SIGTSTP, SignalAction::Ignore("SIGTSTP")),
    ("SIGWINCH", libc::SIGWINCH, SignalAction::Ignore("SIGWINCH")),
    ("SIGURG", libc::SIGURG, SignalAction::Ignore("SIGURG")),
];

/// The daemon's signal handlers.
pub struct Signals {
    streams: Vec<(Signal, SignalAction)>,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals")
            .field("handled", &self.streams.len())
            .finish()
    }
}

impl Signals {
    /// Installs a handler for every signal in the table above.
    pub fn install() -> std::io::Result<Signals> {
        let mut streams = Vec::with_capacity(HANDLED.len());
        for (_, number, action) in HANDLED {
            streams.push((signal(SignalKind::from_raw(*number))?, *action));
        }
        Ok(Signals { streams })
    }

    /// Waits for the next signal.
    pub async fn next(&mut self) -> SignalAction {
        std::future::poll_fn(|cx| {
            for (stream, action) in &mut self.streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*action);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// Waits for a signal that stops the daemon, handling the others the only way possible
    /// before the daemon serves (start-up): logged, not acted upon.
    pub async fn stop_requested(&mut self) -> &'static str {
        loop {
            match self.next().await {
                SignalAction::Stop(name) => return name,
                other => tracing::info!(?other, "signal during start-up: noted, nothing to do yet"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_is_listed_once() {
        let mut numbers: Vec<i32> = HANDLED.iter().map(|(_, n, _)| *n).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), HANDLED.len());
        for forbidden in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGILL] {
            assert!(!numbers.contains(&forbidden));
        }
    }
}
