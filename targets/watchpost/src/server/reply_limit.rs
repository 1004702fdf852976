//! The longest reply the daemon sends (`socket.max_reply_bytes`): a reply is encoded into a
//! buffer that refuses to grow past the limit, so an over-long answer costs at most the limit in
//! memory, and the client is told how to ask for less instead.

use std::io::Write;

use crate::wire::{Request, Response};

/// The reply would be longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTooLong;

impl ReplyTooLong {
    /// The error message: the limit and how to ask for less.
    pub fn message(self, max_reply_bytes: u32, advice: &str) -> String {
        format!(
            "the reply would be longer than socket.max_reply_bytes ({max_reply_bytes} bytes); {advice}"
        )
    }
}

/// A writer that fails once more than `limit` bytes are written.
struct Bounded {
    buf: Vec<u8>,
    limit: usize,
}

impl Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            return Err(std::io::Error::other("reply too long"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `response` as JSON, unless it is longer than `max_reply_bytes`.
pub fn encode_within(response: &Response, max_reply_bytes: u32) -> Result<Vec<u8>, ReplyTooLong> {
    let limit = max_reply_bytes as usize;
    let mut out = Bounded {
        buf: Vec::with_capacity(limit.min(16 * 1024)),
        limit,
    };
    match serde_json::to_writer(&mut out, response) {
        Ok(()) => Ok(out.buf),
        Err(_) => Err(ReplyTooLong),
    }
}

/// How to ask `request` for less.
pub fn advice(request: &Request) -> &'static str {
    match request {
        Request::Symbols { .. } => "ask for fewer addresses per batch",
        Request::Containers { .. } => {
            "narrow the list with a filter (--name, --image or --runtime)"
        }
        Request::Metrics { .. } | Request::Health { .. } => "ask about one store at a time",
        Request::Ancestry { .. } => "ask for a smaller depth",
        _ => "ask for less, or raise socket.max_reply_bytes",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ErrorCode;

    #[test]
    fn short_replies_pass_and_long_ones_are_refused_within_the_limit() {
        let short = Response::error(ErrorCode::NotFound, "x");
        let bytes = encode_within(&short, 1024).unwrap();
        assert_eq!(bytes, serde_json::to_vec(&short).unwrap());
        let long = Response::error(ErrorCode::NotFound, "y".repeat(5_000));
        assert_eq!(encode_within(&long, 4_096), Err(ReplyTooLong));
        let text = ReplyTooLong.message(4_096, advice(&Request::Symbols { addresses: vec![] }));
        assert!(
            text.contains("socket.max_reply_bytes (4096 bytes)"),
            "{text}"
        );
        assert!(text.contains("fewer addresses"), "{text}");
    }
}
