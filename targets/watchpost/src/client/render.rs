//! Human-readable output of answers: aligned `key  value` blocks for one record, tables for
//! lists, UTC timestamps, hex addresses. (`--json` prints the answer's data instead.) Every
//! value and cell goes through [`escape`]: names, paths and labels come from untrusted
//! processes and packets and must not reach the terminal raw.

use std::fmt::Write as _;

use super::escape::escape;

use watchpost_actors::stores::container::ContainerInfo;
use watchpost_actors::stores::process::ProcessInfo;
use watchpost_actors::stores::symbols::SymbolInfo;
use watchpost_core::EpochNanos;

use crate::wire::Answer;
use crate::wire::response::{DaemonStats, ProcessAnswer, StoreMetricsReport};

/// `ns` since the epoch as UTC `YYYY-MM-DDTHH:MM:SS.mmmZ`; `-` for 0.
pub fn format_time(ns: EpochNanos) -> String {
    if ns == 0 {
        return "-".to_owned();
    }
    let secs = ns / 1_000_000_000;
    let millis = (ns % 1_000_000_000) / 1_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// (year, month, day) of `days` after 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// `key  value` lines with the values aligned.
pub(crate) fn block(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<width$}  {}", escape(v));
    }
    out
}

/// A table with a header, columns aligned (the last column is not padded).
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escape(cell).into_owned()).collect())
        .collect();
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 < cols {
                let _ = write!(text, "{cell:<w$}  ", w = widths[i]);
            } else {
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

pub(crate) fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// The executable's flags in words (`-` for none).
fn exe_flags(p: &ProcessInfo) -> String {
    let mut words = Vec::new();
    if p.exe_memfd {
        words.push(match &p.memfd_name {
            Some(name) => format!("memfd ({name})"),
            None => "memfd".to_owned(),
        });
    }
    if p.exe_deleted {
        words.push("deleted".to_owned());
    }
    if p.exe_truncated {
        words.push("truncated".to_owned());
    }
    if words.is_empty() {
        "-".to_owned()
    } else {
        words.join(", ")
    }
}

fn process_answer(a: &ProcessAnswer) -> String {
    let mut rows = process_rows(&a.process);
    let container = a.container.as_ref().map_or_else(
        || "-".to_owned(),
        |c| {
            let mut text = format!("{} {}", c.id.get(..12).unwrap_or(&c.id), c.runtime);
            for extra in [&c.name, &c.image] {
                if !extra.is_empty() {
                    text.push(' ');
                    text.push_str(extra);
                }
            }
            if let Some(pod) = &c.pod {
                text.push_str(&format!(" pod {}/{}", pod.namespace, pod.name));
            }
            text
        },
    );
    rows.push(("container", container));
    block(&rows)
}

fn process_rows(p: &ProcessInfo) -> Vec<(&'static str, String)> {
    vec![
        ("entity id", p.entity_id.to_string()),
        ("pid", p.pid.to_string()),
        ("ppid", p.ppid.to_string()),
        ("name", or_dash(&p.name)),
        ("exe", or_dash(&p.exe)),
        ("invoked as", or_dash(&p.invoked_path)),
        ("exe flags", exe_flags(p)),
        ("uid", p.uid.to_string()),
        ("gid", p.gid.to_string()),
        ("started", format_time(p.start_time)),
        (
            "exited",
            match p.exit_time {
                None => "-".to_owned(),
                // Exited while the daemon was down: only when it was noticed is known.
                Some(t) if p.exit_time_unknown => {
                    format!("exit time unknown (noticed {})", format_time(t))
                }
                Some(t) => format_time(t),
            },
        ),
    ]
}

fn processes(list: &[ProcessInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .enumerate()
        .map(|(i, p)| {
            vec![
                i.to_string(),
                p.entity_id.to_string(),
                p.pid.to_string(),
                p.ppid.to_string(),
                or_dash(&p.name),
                if p.exit_time_unknown {
                    "exited?".into()
                } else if p.exit_time.is_some() {
                    "exited".into()
                } else {
                    "running".into()
                },
                or_dash(&p.exe),
            ]
        })
        .collect();
    table(
        &["#", "ENTITY_ID", "PID", "PPID", "NAME", "STATE", "EXE"],
        &rows,
    )
}

fn symbols(list: &[SymbolInfo]) -> String {
    list.iter()
        .map(|s| {
            format!(
                "{:#018x}  {}  [{}]\n",
                s.address,
                escape(&s.name),
                escape(&s.module)
            )
        })
        .collect()
}

fn container(c: &ContainerInfo) -> String {
    let mut rows = vec![
        ("id", c.id.clone()),
        ("name", or_dash(&c.name)),
        ("image", or_dash(&c.image)),
        ("image digest", or_dash(&c.image_digest)),
        ("runtime", c.runtime.clone()),
        ("started", format_time(c.start_time)),
    ];
    if let Some(pod) = &c.pod {
        rows.push(("pod", or_dash(&pod.name)));
        rows.push(("pod namespace", or_dash(&pod.namespace)));
        rows.push(("pod uid", or_dash(&pod.uid)));
        rows.push(("sandbox", pod.sandbox.to_string()));
    }
    block(&rows)
}

fn store_metrics(m: &StoreMetricsReport) -> String {
    let (d, s) = (&m.metrics, &m.supervision);
    let mut out = format!("{}\n", escape(&m.store));
    let body = block(&[
        ("items", d.item_count.to_string()),
        ("requests ok", d.success_count.to_string()),
        ("errors", d.error_count.to_string()),
        ("hits", d.cache_hits.to_string()),
        ("misses", d.cache_misses.to_string()),
        ("last access", format_time(d.last_access)),
        ("lifecycle", s.lifecycle.as_str().to_owned()),
        ("restarts", s.restarts.to_string()),
        ("intake applied", s.intake_applied_updates.to_string()),
        ("intake rejected", s.intake_rejected_updates.to_string()),
        ("intake overflow", s.intake_overflow_updates.to_string()),
        ("intake dropped", s.intake_dropped_updates.to_string()),
    ]);
    for line in body.lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

fn daemon_stats(d: &DaemonStats) -> String {
    let mut out = "daemon\n".to_owned();
    let body = block(&[
        ("started", format_time(d.started_at)),
        ("/proc scans", d.proc_scans.to_string()),
        ("processes appeared", d.processes_appeared.to_string()),
        ("processes exec", d.processes_exec.to_string()),
        ("processes exited", d.processes_exited.to_string()),
        ("read races", d.proc_read_races.to_string()),
        ("read errors", d.proc_read_errors.to_string()),
        ("over scan limit", d.proc_over_limit.to_string()),
        ("events dropped", d.events_dropped.to_string()),
        ("events judged", d.events_judged.to_string()),
        ("detections", d.detections.to_string()),
        ("detector failures", d.detector_failures.to_string()),
        ("symbol reloads", d.symbol_reloads.to_string()),
        ("module checks", d.module_checks.to_string()),
        ("kernel module loads", d.kernel_module_loads.to_string()),
        ("connections", d.connections.to_string()),
        ("denied", d.connections_denied.to_string()),
        ("busy", d.connections_busy.to_string()),
        ("requests", d.requests.to_string()),
        ("bad requests", d.bad_requests.to_string()),
        (
            "ebpf",
            if d.ebpf_active { "active" } else { "off" }.to_owned(),
        ),
        ("kernel events", d.kernel_events.to_string()),
        (
            "kernel process updates",
            d.kernel_process_updates.to_string(),
        ),
        ("kernel dns answers", d.kernel_dns_answers.to_string()),
        ("kernel events lost", d.kernel_events_lost.to_string()),
        ("ebpf attached", d.ebpf_attached.join(" ")),
        ("ebpf unavailable", d.ebpf_unavailable.join("; ")),
        (
            "dns queries tracked",
            d.kernel_dns.queries_tracked.to_string(),
        ),
        (
            "dns answers matched",
            d.kernel_dns.answers_matched.to_string(),
        ),
        (
            "dns refused: unmatched",
            d.kernel_dns.answers_unmatched.to_string(),
        ),
        ("dns refused: late", d.kernel_dns.answers_late.to_string()),
        (
            "dns refused: malformed",
            d.kernel_dns.answers_malformed.to_string(),
        ),
        (
            "dns refused: kernel rate",
            d.kernel_dns.answers_rate_limited.to_string(),
        ),
        (
            "dns refused: no namespace",
            d.kernel_dns.answers_no_namespace.to_string(),
        ),
        (
            "dns refused: namespace rate",
            d.dns_messages_rate_limited.to_string(),
        ),
        (
            "dns refused: no namespace slot",
            d.dns_messages_no_namespace_slot.to_string(),
        ),
        (
            "dns answers oversized",
            d.kernel_dns.answers_oversized.to_string(),
        ),
        (
            "containers by cgroup id",
            d.kernel_container_lookups.to_string(),
        ),
        (
            "containers by /proc read",
            d.kernel_container_proc_reads.to_string(),
        ),
    ]);
    for line in body.lines() {
        let _ = writeln!(out, "  {line}");
    }
    out.push_str(&enrichment_stats(&d.container_enrichment));
    out
}

fn enrichment_stats(e: &crate::runtimes::status::EnrichmentStats) -> String {
    let mut out = "container enrichment\n".to_owned();
    let mut rows = vec![
        ("enabled", e.enabled.to_string()),
        ("containers described", e.enriched.to_string()),
        ("removals", e.removed.to_string()),
        ("not found", e.not_found.to_string()),
        ("pending", e.pending.to_string()),
        ("queue overflow", e.queue_overflow.to_string()),
        ("coalesced", e.coalesced.to_string()),
        ("runtime events", e.events.to_string()),
        ("api calls", e.requests.to_string()),
        ("failures", e.failures.to_string()),
        ("timeouts", e.timeouts.to_string()),
        ("garbage", e.garbage.to_string()),
        ("too large", e.too_large.to_string()),
        ("fields cut", e.fields_cut.to_string()),
        ("labels cut", e.labels_cut.to_string()),
        ("reconnects", e.reconnects.to_string()),
    ];
    for endpoint in &e.endpoints {
        let state = match &endpoint.state {
            crate::runtimes::status::EndpointState::Down(why) => format!("down: {why}"),
            other => format!("{other:?}").to_lowercase(),
        };
        let name = if endpoint.engine.is_empty() {
            endpoint.kind.label().to_owned()
        } else {
            endpoint.engine.clone()
        };
        rows.push((
            "endpoint",
            format!("{} {name}: {state}", endpoint.socket.display()),
        ));
    }
    for line in block(&rows).lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// The human text of `answer`.
pub fn render(answer: &Answer) -> String {
    match answer {
        Answer::Stores(list) => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    vec![
                        s.metadata.name.clone(),
                        format!("{:?}", s.metadata.kind).to_lowercase(),
                        s.metadata.lifecycle.as_str().to_owned(),
                        s.health.clone(),
                        s.metadata.description.clone(),
                    ]
                })
                .collect();
            table(&["STORE", "KIND", "STATE", "HEALTH", "DESCRIPTION"], &rows)
        }
        Answer::Health(list) => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|h| vec![h.store.clone(), h.status.clone(), h.message.clone()])
                .collect();
            table(&["STORE", "HEALTH", "MESSAGE"], &rows)
        }
        Answer::Metrics(report) => {
            let mut out: String = report.stores.iter().map(store_metrics).collect();
            if let Some(d) = &report.daemon {
                out.push_str(&daemon_stats(d));
            }
            if let Some(p) = &report.persist {
                let pairs: Vec<(String, String)> =
                    p.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
                let borrowed: Vec<(&str, String)> =
                    pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                out.push_str("persist\n");
                out.push_str(&block(&borrowed));
            }
            out
        }
        Answer::Persistence(p) => crate::client::render_persist::persistence(p),
        Answer::Reputation(r) => crate::client::render_persist::reputation(r),
        Answer::ReputationWritten(w) => crate::client::render_persist::written(w),
        Answer::System(s) => {
            let namespaces = s
                .init_namespaces
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(" ");
            block(&[
                ("architecture", s.architecture.clone()),
                ("kernel", s.kernel_release.clone()),
                ("hostname", s.hostname.clone()),
                ("os", or_dash(&s.os_pretty_name)),
                ("os name", or_dash(&s.os_name)),
                ("os version", or_dash(&s.os_version)),
                ("boot time", format_time(s.boot_time)),
                ("watchpost", s.version.clone()),
                ("started", format_time(s.start_time)),
                ("init namespaces", or_dash(&namespaces)),
            ])
        }
        Answer::Process(p) => process_answer(p),
        Answer::Processes(list) if list.is_empty() => "(none)\n".to_owned(),
        Answer::Processes(list) => processes(list),
        Answer::Syscall(s) => format!("{} = {} ({})\n", escape(&s.name), s.id, escape(&s.arch)),
        Answer::Symbols(list) => symbols(list),
        Answer::SymbolAddress(s) => format!("{} = {:#018x}\n", escape(&s.name), s.address),
        Answer::SymbolBatch(list) if list.is_empty() => "(no address resolved)\n".to_owned(),
        Answer::SymbolBatch(list) => list.iter().map(|e| symbols(&e.symbols)).collect(),
        Answer::Dns(d) => block(&[
            ("query", d.query.clone()),
            ("ips", or_dash(&d.ips.join(" "))),
            ("domains", or_dash(&d.domains.join(" "))),
            ("truncated", d.truncated.to_string()),
        ]),
        Answer::Container(c) => container(c),
        Answer::Containers(list) if list.is_empty() => "(no containers)\n".to_owned(),
        Answer::Containers(list) => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|c| {
                    vec![
                        c.id.get(..12).unwrap_or(&c.id).to_owned(),
                        or_dash(&c.name),
                        c.runtime.clone(),
                        or_dash(&c.image),
                    ]
                })
                .collect();
            table(&["ID", "NAME", "RUNTIME", "IMAGE"], &rows)
        }
        Answer::Detection(r) => format!(
            "{} {} {} {}: {}\n",
            escape(r["time"].as_str().unwrap_or("-")),
            escape(r["host"]["name"].as_str().unwrap_or("-")),
            escape(r["severity"].as_str().unwrap_or("-")),
            escape(r["detector"].as_str().unwrap_or("-")),
            // Descriptions quote process names: untrusted text.
            escape(r["description"].as_str().unwrap_or(""))
        ),
        Answer::Skipped(n) => format!("(skipped {n} detections: this follower read too slowly)\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::response::SyscallAnswer;

    #[test]
    fn times_are_utc() {
        assert_eq!(format_time(0), "-");
        assert_eq!(format_time(1_000_000), "1970-01-01T00:00:00.001Z");
        // 2024-02-29T12:34:56.789Z (a leap day)
        assert_eq!(
            format_time(1_709_210_096_789_000_000),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(
            format_time(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn tables_align_and_blocks_pad() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
        let b = block(&[("pid", "1".into()), ("entity id", "2".into())]);
        assert_eq!(b, "pid        1\nentity id  2\n");
    }

    #[test]
    fn answers_render() {
        let s = render(&Answer::Syscall(SyscallAnswer {
            arch: "aarch64".into(),
            id: 221,
            name: "execve".into(),
        }));
        assert_eq!(s, "execve = 221 (aarch64)\n");
        let p = ProcessInfo {
            entity_id: 7,
            pid: 42,
            ppid: 1,
            name: "sleep".into(),
            exe: "/usr/bin/sleep".into(),
            start_time: 1_000_000,
            uid: 0,
            gid: 0,
            exit_time: None,
            exit_time_unknown: false,
            ..ProcessInfo::default()
        };
        let text = render(&Answer::Process(ProcessAnswer {
            process: p.clone(),
            container: None,
        }));
        assert!(text.contains("exe         /usr/bin/sleep"), "{text}");
        assert!(text.contains("exe flags   -"), "{text}");
        let text = render(&Answer::Processes(vec![p]));
        assert!(
            text.starts_with("#  ENTITY_ID  PID  PPID  NAME   STATE    EXE\n"),
            "{text}"
        );
        let text = render(&Answer::Symbols(vec![SymbolInfo {
            name: "_stext".into(),
            address: 0xffff_ffff_8100_0000,
            module: "system".into(),
        }]));
        assert_eq!(text, "0xffffffff81000000  _stext  [system]\n");
    }

    #[test]
    fn untrusted_text_is_escaped_in_blocks_and_tables() {
        let p = ProcessInfo {
            entity_id: 7,
            pid: 42,
            ppid: 1,
            name: "a\nb\x1b[2J".into(),
            exe: "/tmp/x\u{202e}gpj.exe".into(),
            start_time: 1_000_000,
            uid: 0,
            gid: 0,
            exit_time: None,
            exe_memfd: true,
            exe_deleted: true,
            memfd_name: Some("x\ny".into()),
            ..ProcessInfo::default()
        };
        for text in [
            render(&Answer::Process(ProcessAnswer {
                process: p.clone(),
                container: None,
            })),
            render(&Answer::Processes(vec![p])),
        ] {
            assert!(
                !text.contains('\x1b') && !text.contains('\u{202e}'),
                "{text}"
            );
            assert!(text.contains("a\\nb\\x1b[2J"), "{text}");
            assert!(text.contains("/tmp/x\\u{202e}gpj.exe"), "{text}");
        }
        let text = render(&Answer::Process(ProcessAnswer {
            process: ProcessInfo {
                exe_memfd: true,
                exe_deleted: true,
                memfd_name: Some("x\ny".into()),
                ..ProcessInfo::default()
            },
            container: None,
        }));
        assert!(text.contains("memfd (x\\ny), deleted"), "{text}");
        let text = render(&Answer::Symbols(vec![SymbolInfo {
            name: "evil\nline".into(),
            address: 1,
            module: "m\r".into(),
        }]));
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}
