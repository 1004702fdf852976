//! Framing of the query socket: every message is a big-endian `u32` byte count followed by that
//! many bytes of JSON. The reader refuses a count above its limit before reading the body, so a
//! client cannot make the daemon allocate more than the limit.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes of the length prefix.
pub const HEADER_BYTES: usize = 4;

/// Why no frame was read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection before the first byte of a frame (a clean end).
    #[error("connection closed")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed after {got} of {expected} bytes of a frame")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced (header included).
        expected: usize,
    },
    /// The announced length is above the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// A frame of length 0.
    #[error("empty frame")]
    Empty,
    /// The connection failed.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
}

/// Reads into `buf` until it is full; `Ok(n < len)` if the peer closed after `n` bytes.
async fn fill<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        let n = reader.read(rest).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Reads one frame's payload, refusing payloads longer than `max` bytes.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: u32,
) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; HEADER_BYTES];
    let got = fill(reader, &mut header).await?;
    if got == 0 {
        return Err(FrameError::Closed);
    }
    if got < HEADER_BYTES {
        return Err(FrameError::Truncated {
            got,
            expected: HEADER_BYTES,
        });
    }
    let len = u32::from_be_bytes(header);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut payload = vec![0u8; len as usize];
    let got = fill(reader, &mut payload).await?;
    if got < payload.len() {
        return Err(FrameError::Truncated {
            got: HEADER_BYTES + got,
            expected: HEADER_BYTES + payload.len(),
        });
    }
    Ok(payload)
}

/// The bytes of one frame carrying `payload`; `None` if it is longer than a `u32` can announce.
pub fn encode_frame(payload: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(payload.len()).ok()?;
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

/// Writes one frame and flushes it (header, then the payload in place: a long reply is never
/// copied into a second buffer).
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame longer than 4 GiB"))?;
    writer.write_all(&len.to_be_bytes()).await?;
    writer.write_all(payload).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], max: u32) -> Result<Vec<u8>, FrameError> {
        let mut r = bytes;
        read_frame(&mut r, max).await
    }

    #[tokio::test]
    async fn round_trip() {
        let frame = encode_frame(b"{\"command\":\"stores\"}").unwrap();
        assert_eq!(&frame[..4], &[0, 0, 0, 20]);
        assert_eq!(read(&frame, 64).await.unwrap(), b"{\"command\":\"stores\"}");
        let mut out = Vec::new();
        write_frame(&mut out, b"x").await.unwrap();
        assert_eq!(out, [0, 0, 0, 1, b'x']);
    }

    #[tokio::test]
    async fn refuses_oversize_before_reading_the_body() {
        let mut frame = 1_000_000u32.to_be_bytes().to_vec();
        frame.extend_from_slice(b"short");
        assert!(matches!(
            read(&frame, 65_536).await,
            Err(FrameError::TooLarge {
                len: 1_000_000,
                max: 65_536
            })
        ));
        // ASCII text read as a length is a huge length.
        assert!(matches!(
            read(b"hello world\n", 65_536).await,
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn closed_truncated_and_empty() {
        assert!(matches!(read(b"", 10).await, Err(FrameError::Closed)));
        assert!(matches!(
            read(&[0, 0], 10).await,
            Err(FrameError::Truncated {
                got: 2,
                expected: 4
            })
        ));
        assert!(matches!(
            read(&[0, 0, 0, 5, b'a'], 10).await,
            Err(FrameError::Truncated {
                got: 5,
                expected: 9
            })
        ));
        assert!(matches!(
            read(&[0, 0, 0, 0], 10).await,
            Err(FrameError::Empty)
        ));
    }
}
