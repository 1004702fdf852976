//! Human text of the persistence and IP reputation answers.

use crate::client::render::{block, format_time, or_dash};
use crate::persistence::PersistStatus;
use crate::wire::reputation::{ReputationAnswer, ReputationWritten};

/// `watchpost query persistence`, `watchpost snapshot`.
pub fn persistence(p: &PersistStatus) -> String {
    let (health, message) = p.health();
    let mut out = block(&[
        ("file", p.path.clone()),
        ("health", format!("{health}: {message}")),
        ("enabled", p.enabled.to_string()),
        ("size", format!("{} bytes", p.file_bytes)),
        ("sequence", p.sequence.to_string()),
        (
            "restored",
            if p.restored_sequence == 0 {
                "nothing".to_owned()
            } else {
                format!(
                    "sequence {} ({} boot) in {} µs",
                    p.restored_sequence,
                    if p.restored_same_boot {
                        "same"
                    } else {
                        "another"
                    },
                    p.restore_us
                )
            },
        ),
        ("exited while down", p.exited_while_down.to_string()),
        (
            "moved aside",
            or_dash(p.moved_aside.as_deref().unwrap_or("")),
        ),
        ("compactions", p.compactions.to_string()),
        ("failures", p.failures.to_string()),
        ("last error", or_dash(p.last_error.as_deref().unwrap_or(""))),
    ]);
    for (store, s) in &p.stores {
        out.push_str(&format!("{store}\n"));
        let body = block(&[
            ("records", format!("{} ({} bytes)", s.records, s.bytes)),
            (
                "restored",
                format!("{} ({} dropped)", s.restored, s.restore_dropped),
            ),
            (
                "last snapshot",
                if s.last_snapshot_at == 0 {
                    "-".to_owned()
                } else {
                    format!(
                        "{} in {} µs: {} written, {} deleted{}",
                        format_time(s.last_snapshot_at),
                        s.last_duration_us,
                        s.last_written,
                        s.last_deleted,
                        if s.last_full { " (whole store)" } else { "" }
                    )
                },
            ),
            (
                "snapshots",
                format!("{} ({} failed)", s.snapshots, s.failures),
            ),
        ]);
        for line in body.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// `watchpost query reputation IP`.
pub fn reputation(r: &ReputationAnswer) -> String {
    block(&[
        ("ip", r.ip.clone()),
        ("status", r.status.clone()),
        ("severity", r.severity.to_string()),
        ("source", r.source.clone()),
        ("tags", or_dash(&r.tags.join(" "))),
        ("updated", format_time(r.last_updated)),
    ])
}

/// `watchpost reputation write|delete|clear`.
pub fn written(w: &ReputationWritten) -> String {
    format!(
        "{} entries{}\n",
        w.entries,
        if w.persisted {
            ", in the snapshot file"
        } else {
            ""
        }
    )
}
