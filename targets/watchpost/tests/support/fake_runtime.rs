//! A misbehaving "runtime": a Unix socket whose every connection gets one bad answer — bytes
//! that are not HTTP, silence, or a 100 MB body — to prove the daemon's runtime clients stay
//! bounded in time and memory. Runs on a thread; stopped and its socket removed when dropped.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Bytes that are not HTTP (nor HTTP/2), then close.
    Garbage,
    /// Accept, read, never answer (connections held open).
    Silent,
    /// `200 OK`, chunked, then 100 MB of JSON-ish body as fast as the peer reads it.
    HugeChunked,
    /// `200 OK` with `Content-Length: 104857600`, then the body.
    HugeDeclared,
}

/// The 100 MB a huge answer offers.
pub const HUGE_BYTES: u64 = 100 << 20;

/// A running fake.
pub struct FakeRuntime {
    /// Its socket.
    pub socket: PathBuf,
    stop: Arc<AtomicBool>,
    /// Connections accepted.
    pub connections: Arc<AtomicU64>,
    /// Most body bytes one connection took before the peer stopped reading.
    pub most_bytes_sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

fn serve(mut stream: UnixStream, how: Misbehaviour, stop: &AtomicBool, most: &AtomicU64) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut request = [0u8; 4096];
    let _ = stream.read(&mut request);
    match how {
        Misbehaviour::Garbage => {
            let _ = stream.write_all(b"\x00\x01\x02 this is not a runtime \xff\xfe\r\n\r\n");
        }
        Misbehaviour::Silent => {
            // Until the peer gives up (end of stream) or the fake stops.
            let mut buf = [0u8; 1024];
            while !stop.load(Ordering::Relaxed) {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
        }
        Misbehaviour::HugeChunked | Misbehaviour::HugeDeclared => {
            let head = if how == Misbehaviour::HugeChunked {
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    .to_owned()
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {HUGE_BYTES}\r\n\r\n"
                )
            };
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
            let piece = vec![b' '; 64 << 10];
            let mut sent = 0u64;
            while sent < HUGE_BYTES && !stop.load(Ordering::Relaxed) {
                let ok = if how == Misbehaviour::HugeChunked {
                    stream
                        .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                        .and_then(|()| stream.write_all(&piece))
                        .and_then(|()| stream.write_all(b"\r\n"))
                } else {
                    stream.write_all(&piece)
                };
                if ok.is_err() {
                    break;
                }
                sent += piece.len() as u64;
                most.fetch_max(sent, Ordering::Relaxed);
            }
        }
    }
}

impl FakeRuntime {
    /// Listens on `socket` (replaced if it exists).
    pub fn start(socket: &Path, how: Misbehaviour) -> FakeRuntime {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).expect("bind the fake runtime");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, connections, most) = (stop.clone(), connections.clone(), most.clone());
            std::thread::spawn(move || {
                let mut handlers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            connections.fetch_add(1, Ordering::Relaxed);
                            let (stop, most) = (stop.clone(), most.clone());
                            handlers
                                .push(std::thread::spawn(move || serve(stream, how, &stop, &most)));
                            handlers.retain(|h: &JoinHandle<()>| !h.is_finished());
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                for h in handlers {
                    let _ = h.join();
                }
            })
        };
        FakeRuntime {
            socket: socket.to_path_buf(),
            stop,
            connections,
            most_bytes_sent: most,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeRuntime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}
