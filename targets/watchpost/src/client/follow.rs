//! `watchpost query events --follow`: one connection that receives a frame per detection until
//! the daemon stops or the user interrupts; records printed as JSON lines (`--json`) or one line
//! each, skips reported on stderr.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::client::QueryClient;
use crate::client::command::{EXIT_ERROR, EXIT_FOUND};
use crate::client::escape::escape;
use crate::client::render;
use crate::client::trust::ServerTrust;
use crate::wire::{Answer, MAX_FRAME_BYTES, Request, Response, read_frame, write_frame};

/// Streams detections from the daemon at `path` (if `trust` believes its server) to stdout.
pub async fn run(path: &Path, timeout: Duration, trust: &ServerTrust, json: bool) -> ExitCode {
    let client = match QueryClient::connect(path, timeout, trust).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("watchpost: {}", escape(&e.to_string()));
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let mut stream = client.into_stream();
    let request = serde_json::to_vec(&Request::Events {}).unwrap_or_default();
    if let Err(e) = write_frame(&mut stream, &request).await {
        eprintln!("watchpost: talking to the daemon: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    loop {
        let frame = match read_frame(&mut stream, MAX_FRAME_BYTES).await {
            Ok(f) => f,
            // The daemon stopped: the stream is over.
            Err(_) => return ExitCode::from(EXIT_FOUND),
        };
        let response: Response = match serde_json::from_slice(&frame) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("watchpost: unreadable frame: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        };
        let mut out = std::io::stdout().lock();
        let written = match response {
            Response::Ok {
                answer: Answer::Skipped(n),
            } => {
                eprintln!("watchpost: skipped {n} detections (reading too slowly)");
                Ok(())
            }
            Response::Ok {
                answer: Answer::Detection(record),
            } if json => writeln!(out, "{record}"),
            Response::Ok { answer } => write!(out, "{}", render::render(&answer)),
            Response::Error { error } => {
                eprintln!("watchpost: error: {}", escape(&error.message));
                return ExitCode::from(EXIT_ERROR);
            }
        };
        if written.and_then(|()| out.flush()).is_err() {
            // stdout closed (`| head`): done.
            return ExitCode::from(EXIT_FOUND);
        }
    }
}
