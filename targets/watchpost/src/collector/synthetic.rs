//! A synthetic process-event stream: a test and benchmark tool, off unless
//! `collector.synthetic_events_per_second` is above 0.
//!
//! It feeds fork/exec/exit events into the process intake as the kernel collector would, for
//! processes whose pids are above 4,194,304 (`PID_MAX_LIMIT`, the largest `pid_max` Linux
//! allows), so they can never be mistaken for, or collide with, a real process. Each synthetic
//! process is forked under a synthetic parent, execs, and exits a little later, so the table
//! keeps a churning population (live, exited, evicted) like a busy host. The crash-loop test
//! kills the daemon while this runs and snapshots are written.

use std::time::Duration;

use tokio::sync::watch;
use watchpost_actors::IntakeSender;
use watchpost_actors::clock;
use watchpost_actors::stores::process::{ProcessExec, ProcessExit, ProcessStart, ProcessUpdate};

/// The first synthetic pid: one above `PID_MAX_LIMIT` (4,194,304).
pub const FIRST_SYNTHETIC_PID: u32 = 4_194_305;
/// Synthetic pids wrap back to [`FIRST_SYNTHETIC_PID`] after this many.
const PID_SPAN: u32 = 1 << 24;
/// How many synthetic processes run at once before the oldest exits.
const LIVE: usize = 512;
/// Batches per second the generator sends.
const BATCHES_PER_SECOND: u32 = 20;

/// Generates `events_per_second` events (about a third each fork, exec, exit) until `shutdown`.
pub async fn run(
    intake: IntakeSender<ProcessUpdate>,
    events_per_second: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    if events_per_second == 0 {
        return;
    }
    tracing::info!(
        events_per_second,
        first_pid = FIRST_SYNTHETIC_PID,
        "synthetic process events on (a test tool: collector.synthetic_events_per_second)"
    );
    let per_batch = (events_per_second / BATCHES_PER_SECOND).max(1) as usize;
    let mut ticker =
        tokio::time::interval(Duration::from_millis(1000 / u64::from(BATCHES_PER_SECOND)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next = 0u32;
    // (pid, start time) of running synthetic processes, oldest first.
    let mut live: std::collections::VecDeque<(u32, u64)> = std::collections::VecDeque::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = clock::now();
        let mut batch = Vec::with_capacity(per_batch + 2);
        while batch.len() < per_batch {
            let pid = FIRST_SYNTHETIC_PID + next % PID_SPAN;
            next = next.wrapping_add(1);
            // Start times are unique per process (clock plus a counter), floored like real ones.
            let start_time = now.saturating_add(u64::from(next % 1000));
            let (ppid, parent_start_time) = live.back().copied().unwrap_or((0, 0));
            batch.push(ProcessUpdate::Fork(ProcessStart {
                pid,
                start_time,
                ppid,
                parent_start_time,
                uid: 65_534,
                gid: 65_534,
                comm: "synthetic".into(),
                exe_path: Some("/usr/lib/watchpost/synthetic".into()),
                exe_flags: Default::default(),
            }));
            batch.push(ProcessUpdate::Exec(ProcessExec {
                pid,
                start_time,
                uid: 65_534,
                gid: 65_534,
                comm: "synthetic-exec".into(),
                exe_path: "/usr/lib/watchpost/synthetic-exec".into(),
                invoked_path: None,
                exe_flags: Default::default(),
            }));
            live.push_back((pid, start_time));
            if live.len() > LIVE
                && let Some((pid, start_time)) = live.pop_front()
            {
                batch.push(ProcessUpdate::Exit(ProcessExit {
                    pid,
                    start_time,
                    exit_time: now,
                }));
            }
        }
        // A full intake refuses the batch (counted by the intake): the generator never blocks.
        let _ = intake.try_submit(batch);
    }
}
