//! The query socket's protocol, shared by the daemon and the CLI: length-prefixed frames
//! ([`frame`]) carrying one JSON [`Request`] or [`Response`] each.
//!
//! A connection carries any number of request/response exchanges in turn; the daemon closes it
//! after a frame it cannot trust (oversize, truncated, late), answering with an error first.

pub mod frame;
pub mod reputation;
pub mod request;
pub mod response;

pub use frame::{FrameError, encode_frame, read_frame, write_frame};
pub use request::{Request, RequestError};
pub use response::{Answer, ErrorCode, ErrorReply, Response};

/// Largest frame either side ever accepts (replies can be long: a full container list, a large
/// symbol batch); requests are limited far below it by `socket.max_request_bytes`.
pub const MAX_FRAME_BYTES: u32 = 16 * 1024 * 1024;
