//! Supervision of the daemon's long-lived tasks (query server, `/proc` collector, kernel feed,
//! symbol reloader): a task that panics or ends with an error is restarted, counted per task in
//! [`DaemonCounters::task_restarts`] (shown by `query health` and `query metrics`), and logged;
//! a task that keeps failing — more than [`RestartBudget::max_restarts`] times within
//! [`RestartBudget::window`] — stops the daemon with a log line and a non-zero exit. The daemon
//! is never left up with a dead part.
//!
//! A task is given as a factory that builds a fresh run each time (a restarted collector
//! rescans from nothing, a restarted kernel feed reloads the eBPF programs), so a restart
//! never reuses the state that failed.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::stats::DaemonCounters;

/// How a task run ended.
#[derive(Debug)]
pub enum TaskExit {
    /// On purpose (shutdown, or its input closed because the daemon is stopping).
    Done,
    /// It failed and should be restarted: why.
    Failed(String),
}

/// How often a task may fail before the daemon gives up on it (and stops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartBudget {
    /// Restarts allowed within `window`.
    pub max_restarts: u32,
    /// The counting window.
    pub window: Duration,
    /// Wait before a restart (doubles per consecutive failure, up to 8×).
    pub backoff: Duration,
}

/// Why the daemon must stop: a task failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    /// The task.
    pub task: &'static str,
    /// Its last failure.
    pub reason: String,
}

/// Starts and restarts tasks; reports a task that failed for good on `fatal`.
#[derive(Debug, Clone)]
pub struct Supervisor {
    budget: RestartBudget,
    stats: Arc<DaemonCounters>,
    fatal: mpsc::Sender<Fatal>,
    shutdown: watch::Receiver<bool>,
}

impl Supervisor {
    /// A supervisor whose give-ups go to the returned receiver.
    pub fn new(
        budget: RestartBudget,
        stats: Arc<DaemonCounters>,
        shutdown: watch::Receiver<bool>,
    ) -> (Supervisor, mpsc::Receiver<Fatal>) {
        let (fatal, fatal_rx) = mpsc::channel(8);
        (
            Supervisor {
                budget,
                stats,
                fatal,
                shutdown,
            },
            fatal_rx,
        )
    }

    /// Runs `make()` as a task, again after each failure or panic, until a run ends with
    /// [`TaskExit::Done`], the daemon shuts down, or the budget is spent (then [`Fatal`]).
    pub fn spawn<F, Fut>(&self, task: &'static str, mut make: F) -> JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = TaskExit> + Send + 'static,
    {
        let this = self.clone();
        tokio::spawn(async move {
            let mut failures: Vec<Instant> = Vec::new();
            let mut consecutive = 0u32;
            loop {
                let reason = match tokio::spawn(make()).await {
                    Ok(TaskExit::Done) => return,
                    Ok(TaskExit::Failed(reason)) => reason,
                    Err(e) if e.is_panic() => {
                        let payload = e.into_panic();
                        let text = payload
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| payload.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "(no message)".to_owned());
                        format!("panicked: {text}")
                    }
                    Err(_cancelled) => return,
                };
                if *this.shutdown.borrow() {
                    return;
                }
                let now = Instant::now();
                failures.retain(|t| now.duration_since(*t) <= this.budget.window);
                failures.push(now);
                if failures.len() > this.budget.max_restarts as usize {
                    tracing::error!(
                        task,
                        failures = failures.len(),
                        window_ms = this.budget.window.as_millis() as u64,
                        "{task} failed too often ({reason}); stopping the daemon"
                    );
                    let _ = this.fatal.send(Fatal { task, reason }).await;
                    return;
                }
                this.stats.count_task_restart(task);
                consecutive = consecutive.saturating_add(1);
                let wait = this.budget.backoff * 2u32.pow(consecutive.min(4) - 1).min(8);
                tracing::error!(
                    task,
                    wait_ms = wait.as_millis() as u64,
                    "{task} {reason}; restarting it"
                );
                let mut shutdown = this.shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn budget(max_restarts: u32) -> RestartBudget {
        RestartBudget {
            max_restarts,
            window: Duration::from_secs(60),
            backoff: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn a_panicking_task_is_restarted_and_counted() {
        let stats = Arc::new(DaemonCounters::default());
        let (_stop, shutdown) = watch::channel(false);
        let (sup, _fatal) = Supervisor::new(budget(5), stats.clone(), shutdown);
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        sup.spawn("server", move || {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    panic!("injected");
                }
                TaskExit::Done
            }
        })
        .await
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(stats.task_restarts().get("server"), Some(&2));
    }

    #[tokio::test]
    async fn a_task_that_keeps_failing_stops_the_daemon() {
        let stats = Arc::new(DaemonCounters::default());
        let (_stop, shutdown) = watch::channel(false);
        let (sup, mut fatal) = Supervisor::new(budget(2), stats.clone(), shutdown);
        sup.spawn("collector", || async {
            TaskExit::Failed("scan broke".into())
        })
        .await
        .unwrap();
        let f = fatal.recv().await.unwrap();
        assert_eq!(f.task, "collector");
        assert_eq!(f.reason, "scan broke");
        assert_eq!(stats.task_restarts().get("collector"), Some(&2));
    }

    #[tokio::test]
    async fn no_restart_once_the_daemon_stops() {
        let stats = Arc::new(DaemonCounters::default());
        let (stop, shutdown) = watch::channel(false);
        let (sup, _fatal) = Supervisor::new(budget(5), stats.clone(), shutdown);
        stop.send(true).unwrap();
        sup.spawn("feed", || async { TaskExit::Failed("closed".into()) })
            .await
            .unwrap();
        assert!(stats.task_restarts().is_empty());
    }
}
