//! The upper limit of every numeric setting, and the check that names the key over its limit.
//!
//! A limit is what a machine can hold, not a style preference: `process.capacity = 100000000`
//! reserves gigabytes and is killed by the OOM killer, `dns.max_names = 10^12` aborts on an
//! allocation, a queue of 2^63 batches or a semaphore of 2^63 clients panics, and a 2 GiB ring
//! buffer is mapped twice. Every limit below is far above any real gateway's need and well
//! inside what 64-bit arithmetic and a machine's memory allow, so the size arithmetic built on
//! them (see [`crate::memory::budget`]) cannot overflow. The embedded `default.toml` states each
//! limit beside its key; a unit test keeps the two in step.

use super::{Config, Problem};

/// 1 MiB.
const MIB: u64 = 1 << 20;
/// A day of milliseconds: the longest window or grace period that means anything.
const DAY_MS: u64 = 86_400_000;
/// An hour of milliseconds: the longest sensible polling interval.
const HOUR_MS: u64 = 3_600_000;
/// Five minutes of milliseconds: the longest a single wait (timeout) may last.
const FIVE_MINUTES_MS: u64 = 300_000;

/// One numeric setting: its key, its value, and its upper limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The key, `section.name`.
    pub key: &'static str,
    /// The configured value.
    pub value: u64,
    /// The largest value accepted.
    pub max: u64,
}

fn limit(key: &'static str, value: impl TryInto<u64>, max: u64) -> Limit {
    Limit {
        key,
        // A value that does not even fit u64 is over every limit.
        value: value.try_into().unwrap_or(u64::MAX),
        max,
    }
}

/// Every numeric setting with its limit, in the order of the default file.
pub fn limits(c: &Config) -> Vec<Limit> {
    let (d, s, st, i, p) = (&c.daemon, &c.socket, &c.stores, &c.intake, &c.process);
    let (dns, co, de) = (&c.dns, &c.collector, &c.detectors);
    vec![
        limit(
            "daemon.shutdown_timeout_ms",
            d.shutdown_timeout_ms,
            FIVE_MINUTES_MS,
        ),
        limit("socket.max_clients", s.max_clients, 1_024),
        limit("socket.max_request_bytes", s.max_request_bytes, MIB),
        limit("socket.max_reply_bytes", s.max_reply_bytes, 16 * MIB),
        limit("socket.max_answers_in_flight", s.max_answers_in_flight, 64),
        limit("socket.read_timeout_ms", s.read_timeout_ms, FIVE_MINUTES_MS),
        limit(
            "socket.write_timeout_ms",
            s.write_timeout_ms,
            FIVE_MINUTES_MS,
        ),
        limit("stores.call_timeout_ms", st.call_timeout_ms, 60_000),
        limit("stores.degraded_window_ms", st.degraded_window_ms, DAY_MS),
        limit("stores.max_restarts", st.max_restarts, 1_000),
        limit("stores.restart_window_ms", st.restart_window_ms, DAY_MS),
        limit("intake.queue_batches", i.queue_batches, 1_024),
        limit("intake.max_batch_len", i.max_batch_len, 65_536),
        limit("intake.batches_per_apply", i.batches_per_apply, 1_024),
        limit("intake.restart_wait_ms", i.restart_wait_ms, FIVE_MINUTES_MS),
        limit("process.capacity", p.capacity, 1_000_000),
        limit("process.exit_grace_ms", p.exit_grace_ms, DAY_MS),
        limit("process.pending_capacity", p.pending_capacity, 65_536),
        limit("process.pending_ttl_ms", p.pending_ttl_ms, FIVE_MINUTES_MS),
        limit("process.exe_path_strings", p.exe_path_strings, 1_000_000),
        limit("process.exe_path_bytes", p.exe_path_bytes, 256 * MIB),
        limit("container.capacity", c.container.capacity, 65_536),
        limit(
            "container.removal_grace_ms",
            c.container.removal_grace_ms,
            DAY_MS,
        ),
        limit("dns.max_names", dns.max_names, 1_000_000),
        limit("dns.max_addresses", dns.max_addresses, 4_000_000),
        limit("dns.max_links", dns.max_links, 8_000_000),
        limit("dns.name_bytes", dns.name_bytes, 256 * MIB),
        limit("dns.max_namespaces", dns.max_namespaces, 65_535),
        limit(
            "dns.untrusted_share_percent",
            dns.untrusted_share_percent,
            100,
        ),
        limit(
            "dns.trusted_answers_per_sec",
            dns.trusted_answers_per_sec,
            1_000_000,
        ),
        limit(
            "dns.untrusted_answers_per_sec",
            dns.untrusted_answers_per_sec,
            1_000_000,
        ),
        limit(
            "symbols.module_check_interval_ms",
            c.symbols.module_check_interval_ms,
            HOUR_MS,
        ),
        limit(
            "collector.rescan_interval_ms",
            co.rescan_interval_ms,
            HOUR_MS,
        ),
        limit(
            "collector.reconcile_interval_ms",
            co.reconcile_interval_ms,
            HOUR_MS,
        ),
        limit(
            "collector.kernel_ring_bytes",
            co.kernel_ring_bytes,
            64 * MIB,
        ),
        limit("collector.dns_ring_bytes", co.dns_ring_bytes, 64 * MIB),
        limit(
            "collector.reader_queue_batches",
            co.reader_queue_batches,
            1_024,
        ),
        limit(
            "collector.lost_check_interval_ms",
            co.lost_check_interval_ms,
            HOUR_MS,
        ),
        limit(
            "collector.dns_query_timeout_ms",
            co.dns_query_timeout_ms,
            FIVE_MINUTES_MS,
        ),
        limit(
            "collector.dns_pending_queries",
            co.dns_pending_queries,
            1_048_576,
        ),
        limit(
            "collector.dns_untrusted_answers_per_sec",
            co.dns_untrusted_answers_per_sec,
            1_000_000,
        ),
        // The kernel's own pid_max ceiling (2^22).
        limit(
            "collector.max_tracked_processes",
            co.max_tracked_processes,
            4_194_304,
        ),
        limit("detectors.event_queue", de.event_queue, 65_536),
        limit("detectors.output_queue", de.output_queue, 65_536),
        limit("detectors.max_in_flight", de.max_in_flight, 4_096),
        limit("detectors.timeout_ms", de.timeout_ms, FIVE_MINUTES_MS),
        limit(
            "detectors.shell_from_service.depth",
            de.shell_from_service.depth.max(0),
            64,
        ),
    ]
}

/// The smallest `socket.max_reply_bytes`: `health` and `metrics` for every store must fit.
pub const MIN_REPLY_BYTES: u32 = 65_536;

/// A problem for every setting above its limit.
pub fn check(config: &Config, problems: &mut Vec<Problem>) {
    if config.socket.max_reply_bytes < MIN_REPLY_BYTES {
        problems.push(Problem {
            key: "socket.max_reply_bytes".to_owned(),
            reason: format!(
                "must be at least {MIN_REPLY_BYTES} (health and metrics replies must fit)"
            ),
        });
    }
    for l in limits(config) {
        if l.value > l.max {
            problems.push(Problem {
                key: l.key.to_owned(),
                reason: format!("{} is above the limit of {}", l.value, l.max),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, DEFAULT_TOML};

    fn refused_keys(toml: &str) -> Vec<String> {
        match Config::from_toml(toml, None) {
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.into_iter().map(|p| p.key).collect()
            }
            other => panic!("expected Invalid for {toml:?}, got {other:?}"),
        }
    }

    /// The values that crashed or exhausted the daemon before these limits (issue 9).
    #[test]
    fn the_values_that_crashed_the_daemon_are_refused_by_key() {
        let cases = [
            ("[process]\ncapacity = 100000000\n", "process.capacity"),
            ("[dns]\nmax_names = 1000000000000\n", "dns.max_names"),
            (
                "[process]\npending_capacity = 9223372036854775807\n",
                "process.pending_capacity",
            ),
            (
                "[intake]\nqueue_batches = 9223372036854775807\n",
                "intake.queue_batches",
            ),
            (
                "[detectors]\nevent_queue = 9223372036854775807\n",
                "detectors.event_queue",
            ),
            (
                "[detectors]\noutput_queue = 9223372036854775807\n",
                "detectors.output_queue",
            ),
            (
                "[collector]\nkernel_ring_bytes = 2147483648\n",
                "collector.kernel_ring_bytes",
            ),
            (
                "[socket]\nmax_clients = 9223372036854775807\n",
                "socket.max_clients",
            ),
        ];
        for (toml, key) in cases {
            assert_eq!(refused_keys(toml), [key], "{toml}");
        }
        let e = Config::from_toml("[process]\ncapacity = 100000000\n", None).unwrap_err();
        assert!(
            e.to_string()
                .contains("process.capacity: 100000000 is above the limit of 1000000"),
            "{e}"
        );
    }

    #[test]
    fn every_limit_is_accepted_and_one_more_is_not() {
        let at_limits = limits(&Config::default())
            .iter()
            .map(|l| {
                let (section, key) = l.key.rsplit_once('.').unwrap();
                format!("[{section}]\n{key} = {}\n", l.max)
            })
            .collect::<Vec<_>>();
        for toml in &at_limits {
            // Some limits clash with other rules (a ring must be a power of two): only the
            // limit check itself is asserted here.
            let config: Config = toml::from_str(toml).unwrap();
            let mut problems = Vec::new();
            check(&config, &mut problems);
            assert!(problems.is_empty(), "{toml}: {problems:?}");
        }
        for l in limits(&Config::default()) {
            let (section, key) = l.key.rsplit_once('.').unwrap();
            let toml = format!("[{section}]\n{key} = {}\n", l.max + 1);
            let config: Config = toml::from_str(&toml).unwrap();
            let mut problems = Vec::new();
            check(&config, &mut problems);
            assert_eq!(problems.len(), 1, "{toml}");
            assert_eq!(problems[0].key, l.key);
        }
    }

    /// The default file states every limit beside its key (`# at most N`).
    #[test]
    fn the_default_file_documents_every_limit() {
        for l in limits(&Config::default()) {
            let name = l.key.rsplit('.').next().unwrap();
            let documented = DEFAULT_TOML
                .lines()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| {
                    w[1].starts_with(&format!("{name} = "))
                        && w[0].contains(&format!("at most {}", group_digits(l.max)))
                })
                || DEFAULT_TOML.lines().any(|line| {
                    line.starts_with(&format!("{name} = "))
                        && line.contains(&format!("at most {}", group_digits(l.max)))
                });
            assert!(
                documented,
                "default.toml does not say \"at most {}\" on or above `{name} = `",
                group_digits(l.max)
            );
        }
    }

    /// 1048576 → "1,048,576".
    fn group_digits(n: u64) -> String {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        out
    }
}
