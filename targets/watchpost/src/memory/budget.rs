//! The memory budget of a configuration: what every part of the daemon reserves or may hold at
//! most, added up. `watchpost config --check` prints it; the running daemon records the same
//! parts in its [`MemoryLedger`] (stores with their real reservation once built).
//!
//! Two kinds of parts:
//! - **reserved**: what a store allocates at construction and never exceeds (its slabs and
//!   indexes; measured by building the store; twice, as its read view holds two copies), and the kernel ring buffers (mapped twice);
//! - **bounded**: queues and buffers that are empty when idle and grow with input up to a
//!   configured bound — intake queues, the eBPF reader's queue, the detectors' queues, the query
//!   socket's request and reply buffers, the `/proc` scan. Their bound is counted with the
//!   typical size of a variable payload (a process update's names, a DNS answer's bytes), stated
//!   below; a part made only of worst-case payloads could exceed it, never beyond the item
//!   bounds themselves.
//!
//! All arithmetic saturates: every setting is capped ([`crate::config::limits`]), so real
//! totals stay far below `u64::MAX`.

use watchpost_actors::detect::Event;
use watchpost_actors::protocol::{Protocol, StoreBackend};
use watchpost_actors::stores::container::{ContainerProtocol, ContainerUpdate};
use watchpost_actors::stores::dns::{DnsPacket, DnsProtocol};
use watchpost_actors::stores::process::{ProcessProtocol, ProcessUpdate};
use watchpost_actors::view::ViewBytes;
use watchpost_actors::writable::WritableProtocol;
use watchpost_core::container::ContainerTable;
use watchpost_core::dns::DnsCache;
use watchpost_core::ip_reputation::IpReputationStore;
use watchpost_core::process::ProcessTable;

use super::ledger::MemoryLedger;
use crate::config::{Config, EbpfMode};
use crate::procfs::ProcProcess;

/// Heap bytes of a typical process update or scanned process beyond its struct: a comm (≤ 16)
/// and an executable path.
pub const TYPICAL_PROCESS_HEAP: u64 = 96;
/// Heap bytes of a typical DNS answer (most answers are under 256 bytes on the wire; the kernel
/// copies at most 4,096).
pub const TYPICAL_DNS_ANSWER: u64 = 256;
/// Heap bytes of a typical container update (ID, name, image).
pub const TYPICAL_CONTAINER_HEAP: u64 = 256;
/// Heap bytes of a typical detection line.
pub const TYPICAL_DETECTION: u64 = 512;
/// Heap bytes of one store record encoded for a snapshot: its key and value buffers (two `Vec`s)
/// and a typical postcard encoding of a process, a DNS link or a reputation entry.
pub const TYPICAL_SNAPSHOT_RECORD: u64 = 48 + 16 + TYPICAL_PROCESS_HEAP;
/// A reply is held as the answer's structures while its JSON is encoded (the structures are
/// dropped before the JSON is written): about twice its length at the peak.
pub const REPLY_COPIES: u64 = 2;

/// One part of the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its name (as `query metrics` shows it).
    pub name: &'static str,
    /// Bytes.
    pub bytes: u64,
    /// Reserved up front (`true`) or a bound on what input can fill (`false`).
    pub reserved: bool,
}

/// The parts of a configuration's memory and their total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Every part.
    pub parts: Vec<Part>,
}

fn mul(a: u64, b: u64) -> u64 {
    a.saturating_mul(b)
}

fn size<T>() -> u64 {
    size_of::<T>() as u64
}

/// What a store built as `store` reserves once served: its read view holds two copies (one
/// published to readers, one its actor writes), their recency marks and the reader records. (The
/// symbol store's copies share one table.)
pub fn view_of<P: Protocol, B: StoreBackend<P> + ?Sized>(store: &B) -> u64 {
    ViewBytes::of::<P, B>(store).total() as u64
}

impl Budget {
    /// The sum over every part.
    pub fn total(&self) -> u64 {
        self.parts
            .iter()
            .fold(0u64, |sum, p| sum.saturating_add(p.bytes))
    }

    /// The sum of the reserved parts.
    pub fn reserved(&self) -> u64 {
        self.parts
            .iter()
            .filter(|p| p.reserved)
            .fold(0u64, |sum, p| sum.saturating_add(p.bytes))
    }

    /// Records every part in `ledger`, and the total as its budget.
    pub fn record(&self, ledger: &MemoryLedger) {
        for p in &self.parts {
            ledger.set(p.name, p.bytes);
        }
        ledger.set_budget(self.total());
    }

    /// The budget of `config`, with `symbol_bytes` for the kernel symbol table (it depends on
    /// the running kernel). Builds the process, container and DNS stores to measure them (they
    /// are dropped at once): the figures are the stores' own.
    pub fn of(config: &Config, symbol_bytes: u64) -> Budget {
        let mut parts = vec![
            Part {
                name: "process store",
                bytes: view_of::<ProcessProtocol, _>(&ProcessTable::new(config.process_table())),
                reserved: true,
            },
            Part {
                name: "container store",
                bytes: view_of::<ContainerProtocol, _>(&ContainerTable::new(
                    config.container_table(),
                )),
                reserved: true,
            },
            Part {
                name: "dns store",
                bytes: view_of::<DnsProtocol, _>(&DnsCache::new(config.dns_cache())),
                reserved: true,
            },
            Part {
                name: "symbol store",
                bytes: symbol_bytes,
                reserved: true,
            },
        ];
        let r = &config.ip_reputation;
        if r.enabled {
            let priorities = r.priority_list();
            let priorities: Vec<(&str, i32)> =
                priorities.iter().map(|(n, p)| (n.as_str(), *p)).collect();
            if let Ok(store) = IpReputationStore::new(r.store_config(), &priorities) {
                parts.push(Part {
                    name: "ip_reputation store",
                    bytes: view_of::<WritableProtocol<IpReputationStore>, _>(&store),
                    reserved: true,
                });
            }
        }
        parts.extend(Self::beyond_stores(config, symbol_bytes).parts);
        Budget { parts }
    }

    /// The parts other than the stores' own reservations (the running daemon records those as
    /// each store is built).
    pub fn beyond_stores(config: &Config, symbol_bytes: u64) -> Budget {
        let mut parts = Vec::new();
        let mut reserved = |name, bytes| {
            parts.push(Part {
                name,
                bytes,
                reserved: true,
            })
        };
        let c = &config.collector;
        let ebpf = c.ebpf != EbpfMode::Off;
        if ebpf {
            // Each ring's data pages are mapped twice (so records never wrap), plus a page of
            // producer and consumer positions.
            let page = 4096u64;
            reserved(
                "kernel rings",
                mul(2, u64::from(c.kernel_ring_bytes))
                    .saturating_add(mul(2, u64::from(c.dns_ring_bytes)))
                    .saturating_add(mul(4, page)),
            );
        }
        let i = &config.intake;
        // Queued batches, plus the batches the drain task holds in the one message it sends.
        let queued_updates = mul(
            (i.queue_batches as u64).saturating_add(i.batches_per_apply as u64),
            i.max_batch_len as u64,
        );
        let mut bounded = |name, bytes| {
            parts.push(Part {
                name,
                bytes,
                reserved: false,
            })
        };
        bounded(
            "process intake",
            mul(
                queued_updates,
                size::<ProcessUpdate>() + TYPICAL_PROCESS_HEAP,
            ),
        );
        bounded(
            "container intake",
            mul(
                queued_updates,
                size::<ContainerUpdate>() + TYPICAL_CONTAINER_HEAP,
            ),
        );
        bounded(
            "dns intake",
            mul(queued_updates, size::<DnsPacket>() + TYPICAL_DNS_ANSWER),
        );
        // A reload holds the new symbol table beside the old one until the swap.
        bounded("symbol reload", symbol_bytes);
        if ebpf {
            bounded(
                "kernel reader queue",
                mul(
                    mul(c.reader_queue_batches as u64, i.max_batch_len as u64),
                    size::<watchpost_ebpf::KernelEvent>() + TYPICAL_DNS_ANSWER,
                ),
            );
        }
        // The scan's list and the tracker's copy of the last one.
        bounded(
            "proc scan",
            mul(
                mul(2, c.max_tracked_processes as u64),
                size::<ProcProcess>() + TYPICAL_PROCESS_HEAP,
            ),
        );
        let d = &config.detectors;
        bounded(
            "detector queues",
            mul(d.event_queue as u64, size::<Event>() + TYPICAL_PROCESS_HEAP)
                .saturating_add(mul(d.output_queue as u64, TYPICAL_DETECTION))
                .saturating_add(mul(d.max_in_flight as u64, TYPICAL_DETECTION)),
        );
        if config.persist.enabled {
            // redb's capped page cache, and one store's records encoded for its snapshot (a
            // snapshot writes one store at a time).
            let largest_store = [
                config.process.capacity,
                config.container.capacity,
                config.dns.max_links,
                if config.ip_reputation.enabled {
                    config.ip_reputation.max_entries
                } else {
                    0
                },
            ]
            .into_iter()
            .max()
            .unwrap_or(0) as u64;
            bounded(
                "snapshots",
                (watchpost_persist::CACHE_BYTES as u64)
                    .saturating_add(mul(largest_store, TYPICAL_SNAPSHOT_RECORD)),
            );
        }
        if config.sinks.mqtt.enabled {
            bounded("detection outbox", crate::sinks::outbox::CACHE_BYTES as u64);
        }
        let s = &config.socket;
        bounded(
            "query requests",
            mul(s.max_clients as u64, u64::from(s.max_request_bytes)),
        );
        bounded(
            "query replies",
            mul(
                mul(s.max_answers_in_flight as u64, u64::from(s.max_reply_bytes)),
                REPLY_COPIES,
            ),
        );
        Budget { parts }
    }
}

/// Bytes as "12.3 MiB".
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_names_every_part_and_adds_up() {
        let b = Budget::of(&Config::default(), 1_000_000);
        let names: Vec<&str> = b.parts.iter().map(|p| p.name).collect();
        for expected in [
            "process store",
            "dns store",
            "kernel rings",
            "process intake",
            "query replies",
            "proc scan",
        ] {
            assert!(names.contains(&expected), "{names:?}");
        }
        assert_eq!(
            b.total(),
            b.parts.iter().map(|p| p.bytes).sum::<u64>(),
            "{b:?}"
        );
        assert!(b.reserved() < b.total());
        // 256 KiB rings, mapped twice: 1 MiB and 4 pages.
        let rings = b.parts.iter().find(|p| p.name == "kernel rings").unwrap();
        assert_eq!(rings.bytes, (1 << 20) + 4 * 4096);
    }

    #[test]
    fn limits_keep_the_arithmetic_finite() {
        let mut c = Config::default();
        c.intake.queue_batches = 1_024;
        c.intake.batches_per_apply = 1_024;
        c.intake.max_batch_len = 65_536;
        c.socket.max_clients = 1_024;
        c.socket.max_request_bytes = 1 << 20;
        let b = Budget::of(&c, u64::MAX);
        assert_eq!(b.total(), u64::MAX, "saturates, never wraps");
        assert!(human(3 << 20).starts_with("3.0 MiB"));
    }
}
