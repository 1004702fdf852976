//! Asking the daemon, blocking, one connection per question ([`crate::wire`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::wire::{Answer, DaemonStats, Request, StoreHealth, exchange};

/// How long one exchange may take (the guest runs under emulation on a shared machine).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// A blocking client for one socket.
pub struct Client {
    socket: PathBuf,
}

/// What one question got: the answer, or the daemon's error (`kind: message`) or why there was
/// no reply.
pub type Reply = Result<Answer, String>;

impl Client {
    /// A client for the daemon listening on `socket`.
    pub fn new(socket: &Path) -> Client {
        Client {
            socket: socket.to_path_buf(),
        }
    }

    /// Asks `request`.
    pub fn ask(&self, request: &Request) -> Reply {
        exchange(&self.socket, request, EXCHANGE_TIMEOUT)
    }

    /// Asks until `accept` takes the reply or `limit` passes; returns the last reply.
    pub fn ask_until(
        &self,
        request: &Request,
        limit: Duration,
        mut accept: impl FnMut(&Answer) -> bool,
    ) -> Reply {
        let deadline = Instant::now() + limit;
        loop {
            let reply = self.ask(request);
            if reply.as_ref().is_ok_and(&mut accept) || Instant::now() >= deadline {
                return reply;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's own counters.
    pub fn daemon_stats(&self) -> Result<DaemonStats, String> {
        match self.ask(&Request::Metrics)? {
            Answer::Metrics(stats) => Ok(stats),
            other => Err(format!("metrics answered {other:?}")),
        }
    }

    /// The `daemon` entry of `query health`.
    pub fn daemon_health(&self) -> Result<StoreHealth, String> {
        match self.ask(&Request::Health)? {
            Answer::Health(entries) => entries
                .into_iter()
                .find(|h| h.store == "daemon")
                .ok_or_else(|| "health has no daemon entry".to_owned()),
            other => Err(format!("health answered {other:?}")),
        }
    }

    /// Whether anything answers on the socket.
    pub fn answers(&self) -> bool {
        self.ask(&Request::Stores).is_ok()
    }
}

/// Waits until `condition` holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
