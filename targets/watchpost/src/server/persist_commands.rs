//! Answers to the persistence and IP reputation commands: `snapshot`, `persistence`,
//! `reputation_write` / `_delete` / `_clear` (through the write-through path) and `reputation`.
//! The socket already admits only root and the configured group, so every admitted client may
//! write reputation.

use watchpost_actors::ErrorKind;
use watchpost_actors::stores::ip_reputation::ReputationWriteError;

use crate::persistence::reputation::ReputationFailure;
use crate::server::handler::QueryContext;
use crate::wire::reputation::{ReputationAnswer, ReputationWritten};
use crate::wire::{Answer, ErrorCode, ErrorReply, Request};

fn error(kind: ErrorCode, message: impl Into<String>) -> ErrorReply {
    ErrorReply {
        kind,
        message: message.into(),
    }
}

fn failure(e: ReputationFailure) -> ErrorReply {
    match e {
        ReputationFailure::Store(ReputationWriteError::Refused(w)) => {
            error(ErrorCode::InvalidArgument, w.to_string())
        }
        ReputationFailure::Store(ReputationWriteError::Unavailable(e)) => {
            error(ErrorCode::StoreUnhealthy, e.to_string())
        }
        ReputationFailure::NotPersisted(e) => error(
            ErrorCode::StoreUnhealthy,
            format!("written to the store but not to the snapshot file: {e}"),
        ),
    }
}

/// The answer to one of the commands above.
pub async fn answer(ctx: &QueryContext, request: Request) -> Result<Answer, ErrorReply> {
    let persistence = || {
        ctx.persistence.clone().ok_or_else(|| {
            error(
                ErrorCode::NotImplemented,
                "this daemon has no snapshot file",
            )
        })
    };
    let writer = || {
        ctx.reputation.clone().ok_or_else(|| {
            error(
                ErrorCode::NotImplemented,
                "the IP reputation store is off (ip_reputation.enabled = false)",
            )
        })
    };
    let persisted = || ctx.persistence.as_ref().is_some_and(|p| p.enabled());
    match request {
        Request::Persistence {} => Ok(Answer::Persistence(Box::new(persistence()?.status()))),
        Request::Snapshot {} => {
            let p = persistence()?;
            p.snapshot_all(&ctx.registry)
                .await
                .map_err(|e| error(ErrorCode::StoreUnhealthy, format!("snapshot failed: {e}")))?;
            Ok(Answer::Persistence(Box::new(p.status())))
        }
        Request::ReputationWrite { source, records } => {
            let now = watchpost_actors::clock::now();
            let mut parsed = Vec::with_capacity(records.len());
            for (i, r) in records.iter().enumerate() {
                parsed.push(
                    r.to_record(now).map_err(|e| {
                        error(ErrorCode::InvalidArgument, format!("record {i}: {e}"))
                    })?,
                );
            }
            let n = writer()?
                .write_batch(&source, parsed)
                .await
                .map_err(failure)?;
            Ok(Answer::ReputationWritten(ReputationWritten {
                entries: n as u64,
                persisted: persisted(),
            }))
        }
        Request::ReputationDelete { source, ip } => {
            let found = writer()?.delete(&source, &ip).await.map_err(failure)?;
            Ok(Answer::ReputationWritten(ReputationWritten {
                entries: u64::from(found),
                persisted: persisted(),
            }))
        }
        Request::ReputationClear { source } => {
            let n = writer()?.clear(&source).await.map_err(failure)?;
            Ok(Answer::ReputationWritten(ReputationWritten {
                entries: n as u64,
                persisted: persisted(),
            }))
        }
        Request::Reputation { ip } => {
            let w = writer()?;
            match w.owner().get_reputation(ip.as_str()).await {
                Ok(v) => Ok(Answer::Reputation(ReputationAnswer {
                    ip: v.record.ip.to_string(),
                    source: v.source,
                    status: v.record.status.as_str().to_owned(),
                    severity: v.record.severity,
                    tags: v
                        .record
                        .tags
                        .iter()
                        .map(|t| t.as_str().to_owned())
                        .collect(),
                    last_updated: v.record.last_updated,
                })),
                Err(e) if e.is(ErrorKind::NotFound) => Err(error(
                    ErrorCode::NotFound,
                    format!("no source has a verdict on {ip}"),
                )),
                Err(e) if e.is(ErrorKind::InvalidArgument) => Err(error(
                    ErrorCode::InvalidArgument,
                    format!("{ip:?} is not an IP address"),
                )),
                Err(e) => Err(error(ErrorCode::StoreUnhealthy, e.to_string())),
            }
        }
        _ => Err(error(ErrorCode::BadRequest, "not a persistence command")),
    }
}
