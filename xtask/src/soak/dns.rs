//! DNS load for the soak: a local dnsmasq that answers every `*.soak.test` name with a loopback
//! address, and a client that keeps a window of queries in flight. The daemon's eBPF program
//! sees each answer arrive at the client's socket and feeds it to the DNS store.
//!
//! Traffic stays on loopback: dnsmasq listens on 127.0.0.77 only and forwards nothing.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Where dnsmasq listens.
pub const SERVER: &str = "127.0.0.77:53";

/// A running dnsmasq, stopped (by its pid) when dropped.
pub struct Dnsmasq(Child);

impl Dnsmasq {
    /// Starts dnsmasq answering `*.soak.test` with 127.0.0.9, or says why it cannot.
    pub fn start() -> Result<Dnsmasq, String> {
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.77",
                "--port=53",
                "--cache-size=0",
                "--address=/soak.test/127.0.0.9",
                "--user=root",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting dnsmasq: {e} (apt-get install dnsmasq)"))?;
        let server = Dnsmasq(child);
        // Ready once it answers.
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 512];
        for i in 0..150u16 {
            let _ = socket.send_to(&query(i, "ready.soak.test"), SERVER);
            if socket.recv(&mut buf).is_ok() {
                return Ok(server);
            }
        }
        Err("dnsmasq did not answer on 127.0.0.77:53 within 30 s".to_owned())
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A DNS query packet: id, recursion desired, one question `name` type A class IN.
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(18 + name.len());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    p
}

/// Asks for `n<i>.soak.test` names, `window` at a time with a 2 ms pause between windows (at
/// most ~30,000 a second: a busy resolver's rate, not a flood), until `stop`; counts answers.
pub fn drive(stop: Arc<AtomicBool>, answered: Arc<AtomicU64>, window: u64) {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 512];
    let mut next: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..window {
            // A rotating set of 100,000 names: the daemon's cache (2,048 names by default)
            // evicts all day.
            let name = format!("n{}.soak.test", next % 100_000);
            let _ = socket.send_to(&query(next as u16, &name), SERVER);
            next += 1;
        }
        for _ in 0..window {
            match socket.recv(&mut buf) {
                Ok(_) => {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_wire_format() {
        let q = query(0x1234, "a.bc");
        assert_eq!(
            q,
            [
                0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 2, b'b', b'c', 0, 0, 1, 0, 1
            ]
        );
    }
}
