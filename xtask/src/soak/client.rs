//! A steady query load on the daemon's socket, in its wire format (length-prefixed JSON),
//! without a JSON library: the soak only needs to know each reply came back whole.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// One request, one reply; `None` if the connection failed.
pub fn exchange(stream: &mut UnixStream, request: &str) -> Option<Vec<u8>> {
    let len = u32::try_from(request.len()).ok()?;
    stream.write_all(&len.to_be_bytes()).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// Connects with a 10 s timeout each way.
pub fn connect(socket: &Path) -> Option<UnixStream> {
    let s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(10))).ok()?;
    Some(s)
}

/// Asks a rotation of questions every `period` until `stop`; counts answers and failures
/// (an error reply such as "not found" is an answer; a broken connection is a failure).
pub fn drive(
    socket: &Path,
    period: Duration,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) {
    let own_pid = std::process::id();
    let batch: Vec<String> = (0..256u64).map(|i| (u64::MAX - i).to_string()).collect();
    let requests = [
        r#"{"command":"stores"}"#.to_owned(),
        r#"{"command":"health"}"#.to_owned(),
        r#"{"command":"metrics"}"#.to_owned(),
        format!(r#"{{"command":"process_by_pid","pid":{own_pid}}}"#),
        r#"{"command":"dns","query":"n7.soak.test"}"#.to_owned(),
        format!(
            r#"{{"command":"symbols","addresses":[{}]}}"#,
            batch.join(",")
        ),
        r#"{"command":"containers"}"#.to_owned(),
    ];
    let mut stream = None;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        if stream.is_none() {
            stream = connect(socket);
        }
        let ok = match stream.as_mut() {
            Some(s) => exchange(s, &requests[i % requests.len()])
                .is_some_and(|reply| reply.starts_with(b"{")),
            None => false,
        };
        if ok {
            answered.fetch_add(1, Ordering::Relaxed);
        } else {
            failed.fetch_add(1, Ordering::Relaxed);
            stream = None;
        }
        i += 1;
        std::thread::sleep(period);
    }
}
