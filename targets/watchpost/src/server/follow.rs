//! `events --follow` on the query socket: a connection that streams every detection record from
//! now on, one frame each, until the client hangs up or the daemon stops.
//!
//! Bounded per client: followers share one broadcast ring of `follow.buffer_records` records;
//! a follower that falls further behind skips the records it missed and is sent one `skipped`
//! frame with their count (counted in `follow_skipped`); a follower whose socket does not take a
//! frame within the write timeout is disconnected (counted in `follow_dropped`). Nothing is
//! buffered per client beyond one frame.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::stats::{add, bump};
use crate::wire::{Answer, Response, write_frame};

/// Counters of the follow streams.
#[derive(Debug, Default)]
pub struct FollowCounters {
    /// Followers connected now.
    pub followers: AtomicU64,
    /// Records followers skipped because they read too slowly.
    pub skipped: AtomicU64,
    /// Followers disconnected because a frame could not be written in time.
    pub dropped: AtomicU64,
}

/// Streams records from `records` to `stream` until either side ends.
pub async fn stream_events(
    mut stream: UnixStream,
    records: &broadcast::Sender<Arc<str>>,
    write_timeout: Duration,
    counters: &FollowCounters,
) {
    let mut receiver = records.subscribe();
    add(&counters.followers, 1);
    let (mut read, mut write) = stream.split();
    let mut probe = [0u8; 256];
    loop {
        let payload = tokio::select! {
            r = read.read(&mut probe) => match r {
                // The client hung up (or sent something: ignored, it has nothing to ask).
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            },
            next = receiver.recv() => match next {
                Ok(line) => format!(r#"{{"status":"ok","answer":{{"type":"detection","data":{line}}}}}"#),
                Err(RecvError::Lagged(n)) => {
                    add(&counters.skipped, n);
                    serde_json::to_string(&Response::Ok { answer: Answer::Skipped(n) })
                        .unwrap_or_default()
                }
                Err(RecvError::Closed) => break,
            },
        };
        let written =
            tokio::time::timeout(write_timeout, write_frame(&mut write, payload.as_bytes())).await;
        if !matches!(written, Ok(Ok(()))) {
            bump(&counters.dropped);
            break;
        }
    }
    counters
        .followers
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}
