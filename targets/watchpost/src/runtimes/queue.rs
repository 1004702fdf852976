//! The enrichment queue: containers waiting to be described, bounded twice.
//!
//! - The channel holds at most `queue` jobs. Requests from discovery (`try_request`) are refused
//!   when it is full and counted (`queue_overflow`): the next resync lists what was missed.
//!   Jobs from a runtime's own listing or events wait for room instead (their producer is the
//!   endpoint's task, which may wait).
//! - A container ID is pending from the moment it is admitted until its job is finished
//!   (described, given up, or failed), including while it waits to be retried. At most
//!   2 × `queue` IDs are pending; a second request for a pending ID does nothing (`coalesced`).
//!
//! Memory is therefore bounded by 3 × `queue` container IDs (≤ 76 bytes each) plus one job's
//! bookkeeping each.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use watchpost_core::container::Runtime;

use crate::runtimes::status::{EnrichmentStatus, bump};

/// Whom to ask about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The endpoint that reported it (listing or event), in this containerd namespace.
    Endpoint {
        /// Endpoint index.
        index: usize,
        /// containerd namespace (`None` for the Docker API).
        namespace: Option<String>,
    },
    /// A cgroup named it: every answering endpoint that could run a container of this runtime.
    Discovered(Runtime),
}

/// One container to describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Container ID.
    pub id: String,
    /// Whom to ask.
    pub target: Target,
    /// Attempts so far (a container no runtime knows yet is asked again, a few times).
    pub attempt: u8,
}

/// What admitting an ID did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    New,
    AlreadyPending,
    Full,
}

/// The bounded queue; see the module docs.
#[derive(Debug)]
pub struct JobQueue {
    tx: mpsc::Sender<Job>,
    pending: Mutex<HashSet<String>>,
    max_pending: usize,
}

impl JobQueue {
    /// A queue of `capacity` jobs, and its receiving end.
    pub fn new(capacity: usize) -> (JobQueue, mpsc::Receiver<Job>) {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        (
            JobQueue {
                tx,
                pending: Mutex::new(HashSet::new()),
                max_pending: capacity.saturating_mul(2),
            },
            rx,
        )
    }

    fn admit(&self, id: &str, status: &EnrichmentStatus) -> Admit {
        let Ok(mut pending) = self.pending.lock() else {
            return Admit::Full;
        };
        if pending.contains(id) {
            bump(&status.counters.coalesced);
            return Admit::AlreadyPending;
        }
        if pending.len() >= self.max_pending {
            bump(&status.counters.queue_overflow);
            return Admit::Full;
        }
        pending.insert(id.to_owned());
        status
            .pending
            .store(pending.len() as u64, Ordering::Relaxed);
        Admit::New
    }

    /// The job for `id` is over: it may be requested again.
    pub fn release(&self, id: &str, status: &EnrichmentStatus) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(id);
            status
                .pending
                .store(pending.len() as u64, Ordering::Relaxed);
        }
    }

    /// Queues `job` if there is room now; `false` if refused (counted) or already pending.
    pub fn try_push(&self, job: Job, status: &EnrichmentStatus) -> bool {
        if self.admit(&job.id, status) != Admit::New {
            return false;
        }
        let id = job.id.clone();
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(_) => {
                bump(&status.counters.queue_overflow);
                self.release(&id, status);
                false
            }
        }
    }

    /// Queues `job`, waiting for room; `false` if already pending, over the pending bound, or
    /// the queue closed.
    pub async fn push(&self, job: Job, status: &EnrichmentStatus) -> bool {
        if self.admit(&job.id, status) != Admit::New {
            return false;
        }
        let id = job.id.clone();
        if self.tx.send(job).await.is_err() {
            self.release(&id, status);
            return false;
        }
        true
    }

    /// Puts back a job whose ID is still pending (a retry), waiting for room.
    pub async fn requeue(&self, job: Job, status: &EnrichmentStatus) {
        let id = job.id.clone();
        if self.tx.send(job).await.is_err() {
            self.release(&id, status);
        }
    }

    /// IDs pending now.
    pub fn pending(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> Job {
        Job {
            id: id.into(),
            target: Target::Discovered(Runtime::Docker),
            attempt: 0,
        }
    }

    #[test]
    fn bounded_deduplicated_and_counted() {
        let status = EnrichmentStatus::default();
        let (q, mut rx) = JobQueue::new(2);
        assert!(q.try_push(job("a"), &status));
        assert!(!q.try_push(job("a"), &status), "already pending");
        assert!(q.try_push(job("b"), &status));
        assert!(!q.try_push(job("c"), &status), "channel full");
        let c = &status.counters;
        assert_eq!(c.coalesced.load(Ordering::Relaxed), 1);
        assert_eq!(c.queue_overflow.load(Ordering::Relaxed), 1);
        assert_eq!(q.pending(), 2);
        // Taking a job out leaves its ID pending until released.
        assert_eq!(rx.try_recv().map(|j| j.id), Ok("a".to_owned()));
        assert!(!q.try_push(job("a"), &status));
        q.release("a", &status);
        assert!(q.try_push(job("a"), &status));
        // Pending IDs never exceed twice the queue.
        let _ = rx.try_recv();
        let _ = rx.try_recv();
        assert!(q.try_push(job("d"), &status));
        assert_eq!(q.pending(), 3);
        let _ = rx.try_recv();
        assert!(q.try_push(job("e"), &status));
        let _ = rx.try_recv();
        assert!(!q.try_push(job("f"), &status), "pending bound");
        assert_eq!(status.pending.load(Ordering::Relaxed), 4);
    }
}
