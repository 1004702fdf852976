//! A DNS server of one answer, inside the guest: it answers an `A` question for any name with
//! one fixed address, over UDP on a loopback address. Real packets through the guest kernel's
//! network stack, so the daemon's cgroup_skb program sees the answer arrive at the client's
//! socket like any resolver's.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// Where the server listens.
pub const SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)), 53);

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// A query for `name`'s `A` records with ID `id` (recursion desired).
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&[0; 6]); // AN, NS, AR
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len().min(63) as u8);
        out.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    out.push(0);
    out.extend_from_slice(&TYPE_A.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// The end of the question section of `packet` (one question), if well formed.
fn question_end(packet: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        let len = usize::from(*packet.get(at)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        at += 1 + len;
    }
    let end = at + 1 + 4;
    (end <= packet.len()).then_some(end)
}

/// The answer to `query`: its question and one `A` record of `address`, TTL `ttl` seconds.
pub fn answer(query: &[u8], address: Ipv4Addr, ttl: u32) -> Option<Vec<u8>> {
    let end = question_end(query)?;
    let mut out = Vec::with_capacity(end + 16);
    out.extend_from_slice(&query[..2]); // ID
    out.extend_from_slice(&0x8180u16.to_be_bytes()); // QR, RD, RA, no error
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&1u16.to_be_bytes()); // ANCOUNT
    out.extend_from_slice(&[0; 4]); // NS, AR
    out.extend_from_slice(&query[12..end]);
    out.extend_from_slice(&0xC00Cu16.to_be_bytes()); // the question's name
    out.extend_from_slice(&TYPE_A.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&4u16.to_be_bytes());
    out.extend_from_slice(&address.octets());
    Some(out)
}

/// A server thread answering one query.
pub type ServerThread = std::thread::JoinHandle<Result<(), String>>;

/// Starts a server on `bind` answering one query with `address`; the thread ends after
/// answering or after `limit` without a query. Returns where it listens.
pub fn serve_one(
    bind: SocketAddr,
    address: Ipv4Addr,
    limit: Duration,
) -> Result<(SocketAddr, ServerThread), String> {
    let socket = UdpSocket::bind(bind).map_err(|e| format!("binding {bind}: {e}"))?;
    let listening = socket
        .local_addr()
        .map_err(|e| format!("server address: {e}"))?;
    socket
        .set_read_timeout(Some(limit))
        .map_err(|e| format!("server timeout: {e}"))?;
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (len, client) = socket
            .recv_from(&mut buf)
            .map_err(|e| format!("the DNS server got no query: {e}"))?;
        let reply =
            answer(&buf[..len], address, 300).ok_or_else(|| "malformed query".to_owned())?;
        socket
            .send_to(&reply, client)
            .map_err(|e| format!("sending the answer: {e}"))?;
        Ok(())
    });
    Ok((listening, thread))
}

/// Asks `server` for `name` with ID `id`; returns the answer's bytes.
pub fn resolve(
    server: SocketAddr,
    id: u16,
    name: &str,
    limit: Duration,
) -> Result<Vec<u8>, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("client socket: {e}"))?;
    socket
        .set_read_timeout(Some(limit))
        .map_err(|e| format!("client timeout: {e}"))?;
    socket
        .send_to(&query(id, name), server)
        .map_err(|e| format!("sending the query: {e}"))?;
    let mut buf = [0u8; 512];
    let (len, from) = socket
        .recv_from(&mut buf)
        .map_err(|e| format!("no answer from {server}: {e}"))?;
    if from != server || len < 2 || buf[..2] != id.to_be_bytes() {
        return Err(format!("unexpected reply from {from} ({len} bytes)"));
    }
    Ok(buf[..len].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_echoes_the_question_and_carries_the_address() {
        let q = query(0x5157, "gw-check.watchpost.test");
        let a = answer(&q, Ipv4Addr::new(192, 0, 2, 53), 300).unwrap();
        assert_eq!(&a[..2], &[0x51, 0x57]);
        assert_eq!(&a[12..q.len()], &q[12..]);
        assert_eq!(&a[a.len() - 4..], &[192, 0, 2, 53]);
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one answer");
    }

    #[test]
    fn malformed_queries_get_no_answer() {
        assert!(answer(&[0; 5], Ipv4Addr::LOCALHOST, 1).is_none());
        let mut q = query(1, "a.b");
        q.truncate(q.len() - 2);
        assert!(answer(&q, Ipv4Addr::LOCALHOST, 1).is_none());
        let mut bad_label = query(1, "abc");
        bad_label[12] = 200;
        assert!(answer(&bad_label, Ipv4Addr::LOCALHOST, 1).is_none());
    }

    #[test]
    fn a_real_exchange_over_loopback() {
        // The guest listens on port 53; any port makes the same exchange.
        let (at, server) = serve_one(
            "127.0.0.1:0".parse().unwrap(),
            Ipv4Addr::new(192, 0, 2, 1),
            Duration::from_secs(30),
        )
        .unwrap();
        let reply = resolve(at, 7, "x.test", Duration::from_secs(30)).unwrap();
        assert_eq!(&reply[reply.len() - 4..], &[192, 0, 2, 1]);
        server.join().unwrap().unwrap();
    }
}
