//! The CLI side of the query socket: connect, check who runs the server ([`trust`]), send one
//! request, read its reply; and the human rendering of answers ([`render`], every string
//! escaped by [`escape`]).

pub mod command;
pub mod escape;
pub mod follow;
pub mod render;
pub mod render_persist;
pub mod trust;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::UnixStream;

use self::trust::ServerTrust;
use crate::wire::{FrameError, MAX_FRAME_BYTES, Request, Response, read_frame, write_frame};

/// Why the CLI got no reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the socket path.
    #[error("the watchpost daemon is not running ({reason} {path}); start it with `watchpost run`")]
    NotRunning {
        /// The socket path.
        path: PathBuf,
        /// What was found there.
        reason: &'static str,
    },
    /// The socket exists but this user may not use it.
    #[error("permission denied on {path}: queries are for root and the configured socket group")]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
    },
    /// Connecting failed otherwise.
    #[error("connecting to {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The server is run by somebody the CLI does not believe.
    #[error(
        "refusing the server on {path}: it runs as uid {uid}, but only {trusted} may answer \
         (someone may be impersonating the watchpost daemon; set socket.daemon_user if it \
         really runs as that user)"
    )]
    UntrustedServer {
        /// The socket path.
        path: PathBuf,
        /// The server's uid, from `SO_PEERCRED`.
        uid: u32,
        /// Who would have been believed.
        trusted: String,
    },
    /// The daemon did not answer in time.
    #[error("no reply from the daemon within {0} ms")]
    Timeout(u128),
    /// The exchange failed.
    #[error("talking to the daemon: {0}")]
    Exchange(String),
}

/// A connection to the daemon.
#[derive(Debug)]
pub struct QueryClient {
    stream: UnixStream,
    timeout: Duration,
}

impl QueryClient {
    /// The connection, for a streamed answer.
    pub fn into_stream(self) -> UnixStream {
        self.stream
    }
}

impl QueryClient {
    /// Connects to the daemon's socket at `path` and checks that `trust` believes the server's
    /// user (before anything is sent); every exchange waits at most `timeout`.
    pub async fn connect(
        path: &Path,
        timeout: Duration,
        trust: &ServerTrust,
    ) -> Result<QueryClient, ClientError> {
        let connected = tokio::time::timeout(timeout, UnixStream::connect(path))
            .await
            .map_err(|_| ClientError::Timeout(timeout.as_millis()))?;
        let stream = connected.map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ClientError::NotRunning {
                path: path.to_path_buf(),
                reason: "no socket at",
            },
            io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
                path: path.to_path_buf(),
                reason: "nothing listens on",
            },
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
                path: path.to_path_buf(),
            },
            _ => ClientError::Connect {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let cred = stream.peer_cred().map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        if !trust.allows(cred.uid()) {
            return Err(ClientError::UntrustedServer {
                path: path.to_path_buf(),
                uid: cred.uid(),
                trusted: trust.describe(),
            });
        }
        Ok(QueryClient { stream, timeout })
    }

    /// Sends `request` and reads the reply.
    pub async fn ask(&mut self, request: &Request) -> Result<Response, ClientError> {
        let payload =
            serde_json::to_vec(request).map_err(|e| ClientError::Exchange(e.to_string()))?;
        let exchange = async {
            // A daemon that refuses a client (not allowed, busy) answers at once and closes,
            // possibly before the request is written: the reply is still there to read.
            let written = write_frame(&mut self.stream, &payload).await;
            let reply = match read_frame(&mut self.stream, MAX_FRAME_BYTES).await {
                Ok(reply) => reply,
                Err(e) => {
                    written.map_err(|w| ClientError::Exchange(w.to_string()))?;
                    return Err(match e {
                        FrameError::Closed => {
                            ClientError::Exchange("the daemon closed the connection".into())
                        }
                        other => ClientError::Exchange(other.to_string()),
                    });
                }
            };
            serde_json::from_slice::<Response>(&reply)
                .map_err(|e| ClientError::Exchange(format!("unreadable reply: {e}")))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(self.timeout.as_millis()))?
    }
}
