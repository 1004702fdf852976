//! Asking the daemon, blocking: the daemon's own query client and wire types (so a change of the
//! protocol breaks this build, not a guest run), one connection per question.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use watchpost::client::QueryClient;
use watchpost::wire::response::{DaemonStats, MetricsReport, StoreHealth};
use watchpost::wire::{Answer, Request, Response};

/// How long one exchange may take (the guest runs under emulation on a shared machine).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// A blocking client for one socket.
pub struct Client {
    runtime: tokio::runtime::Runtime,
    socket: PathBuf,
}

/// What one question got.
pub type Reply = Result<Answer, String>;

impl Client {
    /// A client for the daemon listening on `socket`.
    pub fn new(socket: &Path) -> Result<Client, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        Ok(Client {
            runtime,
            socket: socket.to_path_buf(),
        })
    }

    /// Asks `request`; `Err` carries the daemon's error reply or why there was none.
    pub fn ask(&self, request: &Request) -> Reply {
        let response = self.runtime.block_on(async {
            let mut client = QueryClient::connect(&self.socket, EXCHANGE_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            client.ask(request).await.map_err(|e| e.to_string())
        })?;
        match response {
            Response::Ok { answer } => Ok(answer),
            Response::Error { error } => Err(format!("{:?}: {}", error.kind, error.message)),
        }
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
        match self.ask(&Request::Metrics { store: None })? {
            Answer::Metrics(MetricsReport {
                daemon: Some(stats),
                ..
            }) => Ok(stats),
            other => Err(format!("metrics without daemon counters: {other:?}")),
        }
    }

    /// The `daemon` entry of `query health`.
    pub fn daemon_health(&self) -> Result<StoreHealth, String> {
        match self.ask(&Request::Health { store: None })? {
            Answer::Health(entries) => entries
                .into_iter()
                .find(|h| h.store == "daemon")
                .ok_or_else(|| "health has no daemon entry".to_owned()),
            other => Err(format!("health answered {other:?}")),
        }
    }

    /// Whether anything answers on the socket.
    pub fn answers(&self) -> bool {
        self.ask(&Request::Stores {}).is_ok()
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
