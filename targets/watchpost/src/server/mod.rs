//! The query socket: accepts clients, checks who they are, reads framed requests with a limit
//! on size and time, answers them ([`handler`]), and never lets one client hurt the daemon.
//!
//! Bounds: at most `socket.max_clients` connections are served at once (one more is answered
//! "busy" and closed without waiting for it); a request frame longer than
//! `socket.max_request_bytes` is refused from its header, before its body is read; a request
//! that does not arrive whole within `socket.read_timeout_ms` (slow or idle clients) is answered
//! "timeout" and the connection closed; a reply that cannot be written within
//! `socket.write_timeout_ms` closes the connection. Garbage, unknown commands and bad fields get
//! an error reply and the connection stays usable.
//!
//! Replies are bounded too ([`reply_limit`]): at most `socket.max_answers_in_flight` answers are
//! built and written at once (the others wait their turn), and a reply longer than
//! `socket.max_reply_bytes` is not sent: the client gets an error saying how to ask for less. So
//! the memory all replies take together is bounded whatever the number of clients.

pub mod access;
pub mod follow;
pub mod handler;
pub mod listener;
pub mod peer_groups;
pub mod persist_commands;
pub mod reply_limit;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::stats::{DaemonCounters, bump};
use crate::wire::{
    ErrorCode, FrameError, Request, Response, encode_frame, read_frame, write_frame,
};
use access::{AccessPolicy, Peer, supplementary_groups};
use handler::QueryContext;
use listener::BoundSocket;

/// Limits of the query socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once.
    pub max_clients: usize,
    /// Largest request frame.
    pub max_request_bytes: u32,
    /// Longest wait for a whole request.
    pub read_timeout: Duration,
    /// Longest wait to write a reply.
    pub write_timeout: Duration,
    /// Longest reply.
    pub max_reply_bytes: u32,
    /// Replies built or written at once.
    pub max_answers_in_flight: usize,
}

/// The query server.
#[derive(Debug)]
pub struct QueryServer {
    socket: BoundSocket,
    policy: AccessPolicy,
    limits: ServerLimits,
    ctx: Arc<QueryContext>,
    stats: Arc<DaemonCounters>,
}

/// Everything a connection task needs.
struct Connection {
    policy: AccessPolicy,
    limits: ServerLimits,
    ctx: Arc<QueryContext>,
    stats: Arc<DaemonCounters>,
    /// Permits to build and write an answer (`socket.max_answers_in_flight`).
    answers: Arc<Semaphore>,
    /// A release of free heap is queued or running (see [`Connection::after_large_reply`]).
    trimming: Arc<std::sync::atomic::AtomicBool>,
}

/// A reply at least this long makes the heap worth trimming once no answer is in flight.
const LARGE_REPLY_BYTES: usize = 64 * 1024;

fn encode(response: &Response) -> Vec<u8> {
    serde_json::to_vec(response).unwrap_or_else(|e| {
        let fallback = Response::error(ErrorCode::Internal, format!("reply not encodable: {e}"));
        serde_json::to_vec(&fallback).unwrap_or_default()
    })
}

impl QueryServer {
    /// A server on `socket` answering from `ctx`.
    pub fn new(
        socket: BoundSocket,
        policy: AccessPolicy,
        limits: ServerLimits,
        ctx: Arc<QueryContext>,
        stats: Arc<DaemonCounters>,
    ) -> Self {
        QueryServer {
            socket,
            policy,
            limits,
            ctx,
            stats,
        }
    }

    /// Serves until `shutdown` turns true, then stops accepting, ends open connections and
    /// removes the socket file. Shared (`Arc`) so the daemon's supervisor can run it again on
    /// the same socket if it ever panics.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // The configuration's limits keep both far below what a semaphore holds.
        let slots = Arc::new(Semaphore::new(
            self.limits.max_clients.clamp(1, Semaphore::MAX_PERMITS),
        ));
        let conn = Arc::new(Connection {
            policy: self.policy,
            limits: self.limits,
            ctx: self.ctx.clone(),
            stats: self.stats.clone(),
            answers: Arc::new(Semaphore::new(
                self.limits
                    .max_answers_in_flight
                    .clamp(1, Semaphore::MAX_PERMITS),
            )),
            trimming: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        });
        let mut running = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                accepted = self.socket.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        bump(&self.stats.connections);
                        #[cfg(feature = "fault-injection")]
                        crate::fault::on_server_accept();
                        match slots.clone().try_acquire_owned() {
                            Ok(permit) => {
                                let conn = conn.clone();
                                running.spawn(async move { conn.serve(stream, permit).await });
                            }
                            Err(_) => {
                                bump(&self.stats.connections_busy);
                                // Best effort, never waits: a fresh socket's buffer has room.
                                let busy = Response::error(ErrorCode::Busy, "too many clients; try again");
                                if let Some(frame) = encode_frame(&encode(&busy)) {
                                    let _ = stream.try_write(&frame);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        // Out of descriptors and the like: do not spin.
                        tracing::warn!(error = %e, "accepting a query connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = shutdown.changed() => {}
            }
            while running.try_join_next().is_some() {}
        }
        running.abort_all();
        while running.join_next().await.is_some() {}
        self.socket.remove_file();
        tracing::info!(path = %self.socket.path.display(), "query socket closed and removed");
    }
}

impl Connection {
    async fn reply(&self, stream: &mut UnixStream, response: &Response) -> bool {
        let payload = encode(response);
        matches!(
            tokio::time::timeout(self.limits.write_timeout, write_frame(stream, &payload)).await,
            Ok(Ok(()))
        )
    }

    async fn refuse(&self, stream: &mut UnixStream, code: ErrorCode, message: String) -> bool {
        bump(&self.stats.bad_requests);
        self.reply(stream, &Response::error(code, message)).await
    }

    fn peer_allowed(&self, stream: &UnixStream) -> bool {
        let Ok(cred) = stream.peer_cred() else {
            return false;
        };
        let peer = Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid().and_then(|p| u32::try_from(p).ok()),
        };
        self.policy.allows(peer, || {
            supplementary_groups(std::os::fd::AsFd::as_fd(stream))
        })
    }

    /// Once the last answer in flight is done after a large one, the allocator's free pages go
    /// back to the kernel (one trim at a time, on the blocking pool), so RSS returns after a
    /// burst instead of staying at its peak.
    fn after_large_reply(&self) {
        use std::sync::atomic::Ordering;
        let idle = self.answers.available_permits()
            >= self
                .limits
                .max_answers_in_flight
                .clamp(1, Semaphore::MAX_PERMITS);
        if idle && !self.trimming.swap(true, Ordering::AcqRel) {
            let trimming = self.trimming.clone();
            tokio::task::spawn_blocking(move || {
                crate::memory::trim::release_free_memory();
                trimming.store(false, Ordering::Release);
            });
        }
    }

    async fn serve(&self, mut stream: UnixStream, _permit: OwnedSemaphorePermit) {
        if !self.peer_allowed(&stream) {
            bump(&self.stats.connections_denied);
            let _ = self
                .reply(
                    &mut stream,
                    &Response::error(
                        ErrorCode::PermissionDenied,
                        "not allowed: queries are for root and the configured socket group",
                    ),
                )
                .await;
            return;
        }
        let limits = self.limits;
        loop {
            let read = tokio::time::timeout(
                limits.read_timeout,
                read_frame(&mut stream, limits.max_request_bytes),
            )
            .await;
            let payload = match read {
                Err(_) => {
                    let ms = limits.read_timeout.as_millis();
                    let _ = self
                        .refuse(
                            &mut stream,
                            ErrorCode::Timeout,
                            format!("no complete request within {ms} ms"),
                        )
                        .await;
                    return;
                }
                Ok(Ok(payload)) => payload,
                Ok(Err(FrameError::Closed)) => return,
                Ok(Err(e @ FrameError::TooLarge { .. })) => {
                    // The body was not read, so the stream cannot be resynchronised: close.
                    let _ = self
                        .refuse(&mut stream, ErrorCode::TooLarge, e.to_string())
                        .await;
                    return;
                }
                Ok(Err(e @ FrameError::Empty)) => {
                    if !self
                        .refuse(&mut stream, ErrorCode::BadRequest, e.to_string())
                        .await
                    {
                        return;
                    }
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "query connection ended mid-frame");
                    bump(&self.stats.bad_requests);
                    return;
                }
            };
            let parsed = serde_json::from_slice::<Request>(&payload);
            // The frame's bytes are not needed once parsed: a client waiting for its turn to be
            // answered holds only its parsed request.
            drop(payload);
            let request = match parsed {
                Ok(r) => r,
                Err(e) => {
                    let message = format!("malformed request: {e}");
                    if !self
                        .refuse(&mut stream, ErrorCode::BadRequest, message)
                        .await
                    {
                        return;
                    }
                    continue;
                }
            };
            if let Err(e) = request.validate() {
                let message = format!("invalid request: {e}");
                if !self
                    .refuse(&mut stream, ErrorCode::BadRequest, message)
                    .await
                {
                    return;
                }
                continue;
            }
            bump(&self.stats.requests);
            if matches!(request, Request::Events {}) {
                match &self.ctx.follow {
                    Some(records) => {
                        follow::stream_events(
                            stream,
                            records,
                            limits.write_timeout,
                            &self.ctx.follow_counters,
                        )
                        .await;
                        return;
                    }
                    None => {
                        let _ = self
                            .refuse(
                                &mut stream,
                                ErrorCode::NotImplemented,
                                "this daemon streams no events".to_owned(),
                            )
                            .await;
                        return;
                    }
                }
            }
            let Ok(_answering) = self.answers.acquire().await else {
                return; // closed: the server is stopping
            };
            let advice = reply_limit::advice(&request);
            let response = self.ctx.answer(request).await;
            let payload = match reply_limit::encode_within(&response, self.limits.max_reply_bytes) {
                Ok(payload) => payload,
                Err(too_long) => {
                    bump(&self.stats.replies_too_large);
                    let message = too_long.message(self.limits.max_reply_bytes, advice);
                    encode(&Response::error(ErrorCode::TooLarge, message))
                }
            };
            drop(response);
            let written = matches!(
                tokio::time::timeout(
                    self.limits.write_timeout,
                    write_frame(&mut stream, &payload)
                )
                .await,
                Ok(Ok(()))
            );
            let large = payload.len() >= LARGE_REPLY_BYTES;
            drop(payload);
            drop(_answering);
            if large {
                self.after_large_reply();
            }
            if !written {
                return;
            }
        }
    }
}
