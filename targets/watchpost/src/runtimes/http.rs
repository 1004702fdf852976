//! HTTP/1.1 over a Unix socket with hyper, bounded in time and bytes: what the Docker Engine API
//! client stands on. One connection per call (runtimes answer locally in milliseconds, and a
//! fresh connection cannot be left half-read by an earlier failure).
//!
//! Bounds, because the peer is a process we do not control (a hung runtime, a wrong socket, a
//! hostile listener):
//! - every call — connect, headers and the whole body — ends within `timeout`;
//! - a body larger than `max_body` is refused: at once when `Content-Length` says so, otherwise
//!   as soon as the bytes read pass the limit (a 100 MB answer is never buffered);
//! - an event stream's header must arrive within `timeout`; each of its lines is limited to
//!   `max_line` bytes, and the bytes held between lines are bounded by the same limit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

/// Why a call to a runtime failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The socket file does not exist.
    #[error("socket does not exist")]
    Absent,
    /// Connecting failed.
    #[error("connect: {0}")]
    Connect(String),
    /// No (complete) answer in time.
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// The peer does not speak the protocol (not HTTP, not gRPC, broken framing).
    #[error("answered something that is not the API: {0}")]
    Protocol(String),
    /// A status other than success or 404.
    #[error("HTTP {status} for {path}")]
    Status {
        /// The status code.
        status: u16,
        /// The request path.
        path: String,
    },
    /// The object does not exist (404 / gRPC NotFound).
    #[error("not found")]
    NotFound,
    /// The answer was larger than allowed; it was not read further.
    #[error("answered more than {0} bytes (cut off unread)")]
    TooLarge(usize),
    /// Well-formed transport, unexpected content (bad JSON, a field of the wrong type).
    #[error("unexpected answer: {0}")]
    Garbage(String),
    /// The event stream ended.
    #[error("event stream closed by the runtime")]
    Closed,
}

impl ApiError {
    /// Whether the endpoint itself is at fault (as opposed to one object being absent).
    pub fn is_endpoint_failure(&self) -> bool {
        !matches!(self, ApiError::NotFound)
    }
}

/// Aborts the connection task when the call is over (or abandoned at a timeout).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An HTTP client for one Unix socket; cheap to clone.
#[derive(Debug, Clone)]
pub struct UnixHttp {
    socket: PathBuf,
    timeout: Duration,
    max_body: usize,
    max_line: usize,
}

/// A streamed response read line by line (JSON-lines event streams).
pub struct LineStream {
    body: Incoming,
    buffer: Vec<u8>,
    max_line: usize,
    _connection: AbortOnDrop,
}

impl UnixHttp {
    /// A client for `socket`.
    pub fn new(socket: &Path, timeout: Duration, max_body: usize, max_line: usize) -> Self {
        UnixHttp {
            socket: socket.to_path_buf(),
            timeout,
            max_body,
            max_line,
        }
    }

    /// The socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn timeout_error(&self) -> ApiError {
        ApiError::Timeout(self.timeout.as_millis() as u64)
    }

    /// Connects and sends `GET path`; the response head and the connection's driver.
    async fn request(
        &self,
        path: &str,
    ) -> Result<(hyper::Response<Incoming>, AbortOnDrop), ApiError> {
        let stream = match UnixStream::connect(&self.socket).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ApiError::Absent),
            Err(e) => return Err(ApiError::Connect(e.to_string())),
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| ApiError::Protocol(e.to_string()))?;
        let driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let request = Request::get(path)
            .header(hyper::header::HOST, "localhost")
            .body(Empty::new())
            .map_err(|e| ApiError::Protocol(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ApiError::Protocol(e.to_string()))?;
        Ok((response, driver))
    }

    /// `GET path`: the whole body of a 2xx answer, at most `max_body` bytes, within the timeout.
    pub async fn get(&self, path: &str) -> Result<Bytes, ApiError> {
        let call = async {
            let (response, _driver) = self.request(path).await?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND {
                return Err(ApiError::NotFound);
            }
            if !status.is_success() {
                return Err(ApiError::Status {
                    status: status.as_u16(),
                    path: path.to_owned(),
                });
            }
            let declared = response
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.max_body as u64) {
                return Err(ApiError::TooLarge(self.max_body));
            }
            let collected = Limited::new(response.into_body(), self.max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<LengthLimitError>().is_some() {
                        ApiError::TooLarge(self.max_body)
                    } else {
                        ApiError::Protocol(e.to_string())
                    }
                })?;
            Ok(collected.to_bytes())
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| self.timeout_error())?
    }

    /// `GET path` as a stream of lines: the head must arrive within the timeout, the lines come
    /// when the runtime sends them.
    pub async fn stream(&self, path: &str) -> Result<LineStream, ApiError> {
        let (response, driver) = tokio::time::timeout(self.timeout, self.request(path))
            .await
            .map_err(|_| self.timeout_error())??;
        let status = response.status();
        if !status.is_success() {
            return Err(ApiError::Status {
                status: status.as_u16(),
                path: path.to_owned(),
            });
        }
        Ok(LineStream {
            body: response.into_body(),
            buffer: Vec::new(),
            max_line: self.max_line,
            _connection: driver,
        })
    }
}

impl LineStream {
    /// The next non-empty line (without its newline). `Err(Closed)` when the stream ends,
    /// `Err(TooLarge)` when a line passes the limit.
    pub async fn next_line(&mut self) -> Result<Vec<u8>, ApiError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(line);
            }
            if self.buffer.len() > self.max_line {
                return Err(ApiError::TooLarge(self.max_line));
            }
            match self.body.frame().await {
                None => return Err(ApiError::Closed),
                Some(Err(e)) => return Err(ApiError::Protocol(e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}
