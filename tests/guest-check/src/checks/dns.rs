//! A DNS answer from a server inside the guest, captured by the kernel on its way to the
//! client's socket: `query dns NAME` gives the address, `query dns ADDRESS` the name.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{Answer, Request};

use super::Mode;
use crate::daemon::Daemon;
use crate::dns_server;
use crate::report::{Results, Status};

const NAME: &str = "gw-check.watchpost.test";
const ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
const QUERY_ID: u16 = 0x5157;
const LIMIT: Duration = Duration::from_secs(60);

/// One answer captured and answerable both ways.
pub fn answer(daemon: &Daemon, mode: &Mode, results: &mut Results) {
    const CHECK: &str = "DNS answer captured";
    if let Some((status, detail)) = mode.needs_kernel_feed("capturing DNS answers") {
        results.record(CHECK, status, &detail);
        return;
    }
    let outcome = (|| {
        let (server, thread) = dns_server::serve_one(dns_server::SERVER, ADDRESS, LIMIT)?;
        let reply = dns_server::resolve(server, QUERY_ID, NAME, LIMIT);
        let served = thread
            .join()
            .map_err(|_| "the DNS server thread panicked".to_owned())?;
        served?;
        let reply = reply?;
        let address = ADDRESS.to_string();
        let forward = daemon.client.ask_until(
            &Request::Dns { query: NAME.into() },
            LIMIT,
            |a| matches!(a, Answer::Dns(d) if d.ips.contains(&address)),
        );
        match &forward {
            Ok(Answer::Dns(d)) if d.ips.contains(&address) => {}
            other => {
                let stats = daemon.client.daemon_stats()?;
                return Err(format!(
                    "query dns {NAME}: {other:?} (answer of {} bytes went to the client; kernel \
                     DNS answers seen: {})",
                    reply.len(),
                    stats.kernel_dns_answers
                ));
            }
        }
        match daemon.client.ask(&Request::Dns {
            query: address.clone(),
        }) {
            Ok(Answer::Dns(d)) if d.domains.iter().any(|n| n == NAME) => Ok((
                Status::Pass,
                format!("{NAME} -> {address} and back, from {server}"),
            )),
            other => Err(format!("query dns {address}: {other:?}")),
        }
    })();
    results.outcome(CHECK, outcome.map_err(|e| daemon.explain(e)));
}
