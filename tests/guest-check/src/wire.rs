//! The query socket's protocol as any client sees it: a 4-byte big-endian length, then one
//! JSON object (`targets/watchpost/src/wire/`). Spoken here from its published JSON shape, not
//! through the daemon's own crate: the check program stays a small build for both
//! architectures (the daemon comes from the shipped build), and a change of the protocol's JSON
//! breaks the guest checks as it would break any other client.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// Largest reply accepted (the daemon's own limit).
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// The questions the checks ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `{"command":"stores"}`.
    Stores,
    /// All stores' health.
    Health,
    /// All metrics with the daemon's counters.
    Metrics,
    /// One process.
    Process {
        /// Entity ID.
        entity_id: u32,
    },
    /// `[self, parent, …]`.
    Ancestry {
        /// Entity ID.
        entity_id: u32,
        /// Most entries.
        depth: u32,
    },
    /// An observed DNS answer.
    Dns {
        /// Name or IP.
        query: String,
    },
    /// A kernel symbol's address.
    SymbolByName {
        /// Name.
        name: String,
    },
    /// The live containers.
    Containers,
}

impl Request {
    fn to_json(&self) -> Value {
        match self {
            Request::Stores => json!({"command": "stores"}),
            Request::Health => json!({"command": "health"}),
            Request::Metrics => json!({"command": "metrics"}),
            Request::Process { entity_id } => json!({"command": "process", "entity_id": entity_id}),
            Request::Ancestry { entity_id, depth } => {
                json!({"command": "ancestry", "entity_id": entity_id, "depth": depth})
            }
            Request::Dns { query } => json!({"command": "dns", "query": query}),
            Request::SymbolByName { name } => json!({"command": "symbol_by_name", "name": name}),
            Request::Containers => json!({"command": "containers"}),
        }
    }
}

/// A process record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Entity ID.
    pub entity_id: u32,
    /// Process ID.
    pub pid: u32,
    /// Parent process ID.
    pub ppid: u32,
    /// `comm`.
    pub name: String,
    /// Executable path.
    pub exe: String,
    /// Start time, epoch ns.
    pub start_time: u64,
    /// Exit time, epoch ns, once exited.
    pub exit_time: Option<u64>,
}

/// An observed DNS answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// Addresses.
    pub ips: Vec<String>,
    /// Names.
    pub domains: Vec<String>,
}

/// A live container as the store describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Full ID.
    pub id: String,
    /// `docker`, `containerd`, …
    pub runtime: String,
}

/// The daemon's counters the checks read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonStats {
    /// The eBPF collector feeds the stores.
    pub ebpf_active: bool,
    /// eBPF programs attached, by attach point.
    pub ebpf_attached: Vec<String>,
    /// Attach points the kernel lacks, each with the daemon's fallback.
    pub ebpf_unavailable: Vec<String>,
    /// Symbol table reloads.
    pub symbol_reloads: u64,
    /// Checks of `/proc/modules`.
    pub module_checks: u64,
    /// Module loads the kernel reported.
    pub kernel_module_loads: u64,
    /// Records the kernel dropped.
    pub kernel_events_lost: u64,
    /// DNS answers from the kernel.
    pub kernel_dns_answers: u64,
}

/// One store's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    /// The store (`daemon` for the collection itself).
    pub store: String,
    /// `healthy`, `degraded`, …
    pub status: String,
    /// Why.
    pub message: String,
}

/// An answer, by the `type` the daemon gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `process`
    Process(ProcessInfo),
    /// `processes`
    Processes(Vec<ProcessInfo>),
    /// `dns`
    Dns(DnsAnswer),
    /// `symbol_address`: the address.
    SymbolAddress(u64),
    /// `containers`
    Containers(Vec<ContainerInfo>),
    /// `metrics`: the daemon's counters.
    Metrics(DaemonStats),
    /// `health`
    Health(Vec<StoreHealth>),
    /// Any other type (e.g. `stores`).
    Other(String),
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, String> {
    v.get(name).ok_or_else(|| format!("no `{name}` in {v}"))
}

fn u64_field(v: &Value, name: &str) -> Result<u64, String> {
    field(v, name)?
        .as_u64()
        .ok_or_else(|| format!("`{name}` is not a number in {v}"))
}

fn u32_field(v: &Value, name: &str) -> Result<u32, String> {
    u32::try_from(u64_field(v, name)?).map_err(|_| format!("`{name}` out of range in {v}"))
}

fn str_field(v: &Value, name: &str) -> Result<String, String> {
    field(v, name)?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("`{name}` is not a string in {v}"))
}

fn strings(v: &Value, name: &str) -> Result<Vec<String>, String> {
    field(v, name)?
        .as_array()
        .ok_or_else(|| format!("`{name}` is not a list in {v}"))?
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("non-string in `{name}`"))
        })
        .collect()
}

fn process(v: &Value) -> Result<ProcessInfo, String> {
    Ok(ProcessInfo {
        entity_id: u32_field(v, "entity_id")?,
        pid: u32_field(v, "pid")?,
        ppid: u32_field(v, "ppid")?,
        name: str_field(v, "name")?,
        exe: str_field(v, "exe")?,
        start_time: u64_field(v, "start_time")?,
        exit_time: match field(v, "exit_time")? {
            Value::Null => None,
            t => Some(t.as_u64().ok_or("`exit_time` is not a number")?),
        },
    })
}

/// Reads the `answer` of a reply, or its error as `kind: message`.
pub fn decode(reply: &Value) -> Result<Answer, String> {
    match reply.get("status").and_then(Value::as_str) {
        Some("ok") => {}
        Some("error") => {
            let error = field(reply, "error")?;
            return Err(format!(
                "{}: {}",
                str_field(error, "kind")?,
                str_field(error, "message")?
            ));
        }
        _ => return Err(format!("not a reply: {reply}")),
    }
    let answer = field(reply, "answer")?;
    let kind = str_field(answer, "type")?;
    let data = field(answer, "data")?;
    Ok(match kind.as_str() {
        "process" => Answer::Process(process(data)?),
        "processes" => Answer::Processes(
            data.as_array()
                .ok_or("`processes` is not a list")?
                .iter()
                .map(process)
                .collect::<Result<_, _>>()?,
        ),
        "dns" => Answer::Dns(DnsAnswer {
            ips: strings(data, "ips")?,
            domains: strings(data, "domains")?,
        }),
        "symbol_address" => Answer::SymbolAddress(u64_field(data, "address")?),
        "containers" => Answer::Containers(
            data.as_array()
                .ok_or("`containers` is not a list")?
                .iter()
                .map(|c| {
                    Ok(ContainerInfo {
                        id: str_field(c, "id")?,
                        runtime: str_field(c, "runtime")?,
                    })
                })
                .collect::<Result<_, String>>()?,
        ),
        "metrics" => {
            let d = field(data, "daemon")?;
            Answer::Metrics(DaemonStats {
                ebpf_active: field(d, "ebpf_active")?.as_bool().ok_or("ebpf_active")?,
                ebpf_attached: strings(d, "ebpf_attached")?,
                ebpf_unavailable: strings(d, "ebpf_unavailable")?,
                symbol_reloads: u64_field(d, "symbol_reloads")?,
                module_checks: u64_field(d, "module_checks")?,
                kernel_module_loads: u64_field(d, "kernel_module_loads")?,
                kernel_events_lost: u64_field(d, "kernel_events_lost")?,
                kernel_dns_answers: u64_field(d, "kernel_dns_answers")?,
            })
        }
        "health" => Answer::Health(
            data.as_array()
                .ok_or("`health` is not a list")?
                .iter()
                .map(|h| {
                    Ok(StoreHealth {
                        store: str_field(h, "store")?,
                        status: str_field(h, "status")?,
                        message: str_field(h, "message")?,
                    })
                })
                .collect::<Result<_, String>>()?,
        ),
        other => Answer::Other(other.to_owned()),
    })
}

/// One exchange on a new connection to `socket`.
pub fn exchange(socket: &Path, request: &Request, timeout: Duration) -> Result<Answer, String> {
    let mut stream = UnixStream::connect(socket)
        .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("socket timeouts: {e}"))?;
    let body = request.to_json().to_string();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body.as_bytes());
    stream
        .write_all(&frame)
        .map_err(|e| format!("sending: {e}"))?;
    let mut header = [0u8; 4];
    stream
        .read_exact(&mut header)
        .map_err(|e| format!("reading the reply: {e}"))?;
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_REPLY_BYTES {
        return Err(format!("reply of {len} bytes"));
    }
    let mut reply = vec![0u8; len];
    stream
        .read_exact(&mut reply)
        .map_err(|e| format!("reading the reply: {e}"))?;
    let reply: Value =
        serde_json::from_slice(&reply).map_err(|e| format!("unreadable reply: {e}"))?;
    decode(&reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_daemons_shape() {
        assert_eq!(
            Request::Ancestry {
                entity_id: 7,
                depth: 4
            }
            .to_json()
            .to_string(),
            r#"{"command":"ancestry","depth":4,"entity_id":7}"#
        );
        assert_eq!(
            Request::SymbolByName { name: "x".into() }.to_json()["command"],
            "symbol_by_name"
        );
    }

    #[test]
    fn decodes_answers_and_errors() {
        let reply = json!({"status": "ok", "answer": {"type": "process", "data": {
            "entity_id": 5, "pid": 10, "ppid": 1, "name": "sh", "exe": "/bin/sh",
            "start_time": 99, "uid": 0, "gid": 0, "exit_time": null}}});
        let Answer::Process(p) = decode(&reply).unwrap() else {
            panic!("not a process");
        };
        assert_eq!((p.pid, p.exit_time), (10, None));
        let dns = json!({"status": "ok", "answer": {"type": "dns", "data": {
            "query": "a", "ips": ["192.0.2.1"], "domains": [], "truncated": false}}});
        assert_eq!(
            decode(&dns).unwrap(),
            Answer::Dns(DnsAnswer {
                ips: vec!["192.0.2.1".into()],
                domains: vec![]
            })
        );
        let err = json!({"status": "error", "error": {"kind": "not_found", "message": "no"}});
        assert_eq!(decode(&err).unwrap_err(), "not_found: no");
        assert!(
            decode(&json!({"status": "ok", "answer": {"type": "process", "data": {}}})).is_err()
        );
        assert!(decode(&json!([1])).is_err());
        let containers = json!({"status": "ok", "answer": {"type": "containers", "data": [
            {"id": "ab", "name": "", "image": "", "image_digest": "", "runtime": "docker",
             "start_time": 0, "pod": null}]}});
        assert_eq!(
            decode(&containers).unwrap(),
            Answer::Containers(vec![ContainerInfo {
                id: "ab".into(),
                runtime: "docker".into()
            }])
        );
    }
}
