//! Where detections go. The dispatcher takes the detector engine's outputs in batches, turns each
//! into a [`DetectionRecord`](crate::fleet::record::DetectionRecord), commits the batch to the
//! MQTT outbox first (when that sink is on: a detection is accepted once it is durable there),
//! then writes it to stdout and the detection file and offers it to socket followers.
//!
//! Backpressure: the dispatcher takes the next batch only when this one is written, so a slow
//! sink slows the engine's bounded output queue, never grows a buffer here.

pub mod file;
pub mod mqtt;
pub mod outbox;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{broadcast, mpsc};
use watchpost_actors::detect::DetectorOutput;

use crate::fleet::record::RecordMaker;
use crate::stats::{DaemonCounters, add, bump};
use file::FileSink;
use outbox::Outbox;

/// Most detections taken from the engine's queue in one batch.
pub const DISPATCH_BATCH: usize = 256;

/// Runs `work` where blocking is allowed: in place on a multi-thread runtime, directly otherwise
/// (tests on a current-thread runtime).
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// Counters of the sinks.
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Records written to stdout.
    pub stdout_records: AtomicU64,
    /// Records written to the detection file.
    pub file_records: AtomicU64,
    /// Detection file write failures.
    pub file_errors: AtomicU64,
    /// Detection file rotations.
    pub file_rotations: AtomicU64,
    /// Records the outbox could not store (I/O failures).
    pub outbox_errors: AtomicU64,
    /// Records that could not be encoded.
    pub encode_errors: AtomicU64,
}

/// The dispatcher's parts.
pub struct Dispatcher {
    /// Numbers and enriches records.
    pub maker: RecordMaker,
    /// Whether stdout gets records.
    pub stdout: bool,
    /// The detection file, if on.
    pub file: Option<FileSink>,
    /// The MQTT outbox, if the MQTT sink is on.
    pub outbox: Option<Arc<Outbox>>,
    /// Socket followers.
    pub follow: broadcast::Sender<Arc<str>>,
    /// Sink counters.
    pub counters: Arc<SinkCounters>,
    /// The daemon's counters (`detections`).
    pub stats: Arc<DaemonCounters>,
}

impl Dispatcher {
    /// Dispatches until every sender of `outputs` is gone.
    pub async fn run(mut self, mut outputs: mpsc::Receiver<DetectorOutput>) {
        let mut stdout_broken = false;
        let mut batch = Vec::with_capacity(DISPATCH_BATCH);
        let mut lines: Vec<String> = Vec::with_capacity(DISPATCH_BATCH);
        while outputs.recv_many(&mut batch, DISPATCH_BATCH).await > 0 {
            lines.clear();
            for output in batch.drain(..) {
                bump(&self.stats.detections);
                let record = self.maker.make(output).await;
                match serde_json::to_string(&record) {
                    Ok(line) => lines.push(line),
                    Err(e) => {
                        bump(&self.counters.encode_errors);
                        tracing::error!(detector = %record.detector, error = %e, "detection not encodable");
                    }
                }
            }
            if let Some(outbox) = &self.outbox {
                match blocking(|| outbox.append(&lines)) {
                    Ok(appended) if appended.dropped > 0 => {
                        tracing::warn!(
                            dropped = appended.dropped,
                            "the MQTT outbox is full: its oldest detections were dropped"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => {
                        add(&self.counters.outbox_errors, lines.len() as u64);
                        tracing::error!("detections not stored in the MQTT outbox: {e}");
                    }
                }
            }
            if self.stdout {
                let written = blocking(|| {
                    let mut out = std::io::stdout().lock();
                    for line in &lines {
                        writeln!(out, "{line}")?;
                    }
                    out.flush()
                });
                match written {
                    Ok(()) => add(&self.counters.stdout_records, lines.len() as u64),
                    Err(e) if !stdout_broken => {
                        tracing::error!(error = %e, "stdout is not writable: detections are being lost there");
                        stdout_broken = true;
                    }
                    Err(_) => {}
                }
            }
            if let Some(file) = self.file.as_mut() {
                let (errors, rotations) = (file.errors, file.rotations);
                blocking(|| file.write_lines(&lines));
                let failed = file.errors - errors;
                add(&self.counters.file_errors, failed);
                add(&self.counters.file_rotations, file.rotations - rotations);
                add(
                    &self.counters.file_records,
                    (lines.len() as u64).saturating_sub(failed),
                );
            }
            for line in lines.drain(..) {
                // No follower: an error, and nothing is kept.
                let _ = self.follow.send(Arc::from(line));
            }
        }
    }
}

/// Whether the counters say something went wrong, for the daemon's health.
pub fn counters_ok(c: &SinkCounters) -> bool {
    c.outbox_errors.load(Ordering::Relaxed) == 0 && c.file_errors.load(Ordering::Relaxed) == 0
}
