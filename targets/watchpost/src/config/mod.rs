//! The daemon's configuration: every capacity, queue size and interval in one TOML file, with an
//! embedded default so `watchpost run` works with no file at all.
//!
//! A file only needs the keys it changes (every section and key has the default below); unknown
//! keys are refused by name (a typo must not silently fall back to a default), and so is 0 for
//! any capacity, queue size, interval or timeout. Grace periods may be 0 ("drop at once").
//! [`DEFAULT_TOML`] is the commented default `watchpost config --print-default` prints; a unit
//! test keeps it equal to [`Config::default`].

pub mod fleet;
pub mod limits;
pub mod system;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use watchpost_actors::detect::shell_from_service::ShellFromServiceConfig;
use watchpost_actors::detect::tmp_exec_in_container::TmpExecInContainerConfig;
use watchpost_actors::{IntakeOptions, RestartPolicy, StoreOptions};
use watchpost_core::container::ContainerTableConfig;
use watchpost_core::dns::DnsCacheConfig;
use watchpost_core::process::ProcessTableConfig;

mod persist;
pub use persist::{DurabilityChoice, IpReputationSection, PersistSection, PolicyChoice};

/// The embedded default configuration, with comments.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Where the daemon keeps state, and its logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSection {
    /// Snapshot directory (created mode 0700).
    pub data_dir: PathBuf,
    /// `tracing` filter for stderr; `RUST_LOG` overrides it.
    pub log_level: String,
    /// Longest a clean shutdown may take.
    pub shutdown_timeout_ms: u64,
    /// Log lines as `text` or `json` (one object per line).
    pub log_format: LogFormat,
}

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl Default for DaemonSection {
    fn default() -> Self {
        DaemonSection {
            data_dir: PathBuf::from("/var/lib/watchpost"),
            log_level: "info".to_owned(),
            shutdown_timeout_ms: 10_000,
            log_format: LogFormat::Text,
        }
    }
}

/// The query socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SocketSection {
    /// Socket path.
    pub path: PathBuf,
    /// Group allowed to query (name or numeric gid); `None`: root only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The user the daemon runs as when not root (name or numeric uid): `watchpost query`
    /// answers only a server run by root, by this user, or by the caller itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon_user: Option<String>,
    /// Clients served at once.
    pub max_clients: usize,
    /// Largest request frame, bytes.
    pub max_request_bytes: u32,
    /// Largest reply, bytes (a longer one is refused with advice to ask for less).
    pub max_reply_bytes: u32,
    /// Replies being built or written at once.
    pub max_answers_in_flight: usize,
    /// Longest wait for one whole request frame.
    pub read_timeout_ms: u64,
    /// Longest wait for a reply to be written.
    pub write_timeout_ms: u64,
}

impl Default for SocketSection {
    fn default() -> Self {
        SocketSection {
            path: PathBuf::from("/run/watchpost/watchpost.sock"),
            group: None,
            daemon_user: None,
            max_clients: 16,
            max_request_bytes: 131_072,
            max_reply_bytes: 1_048_576,
            max_answers_in_flight: 2,
            read_timeout_ms: 5_000,
            write_timeout_ms: 5_000,
        }
    }
}

/// Settings shared by every store actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoresSection {
    /// Query timeout.
    pub call_timeout_ms: u64,
    /// How long an incident keeps a store reported degraded.
    pub degraded_window_ms: u64,
    /// Restarts allowed within `restart_window_ms`.
    pub max_restarts: u32,
    /// The restart-counting window.
    pub restart_window_ms: u64,
}

impl Default for StoresSection {
    fn default() -> Self {
        StoresSection {
            call_timeout_ms: 1_000,
            degraded_window_ms: 60_000,
            max_restarts: 5,
            restart_window_ms: 60_000,
        }
    }
}

/// Sizes of every store's bounded intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeSection {
    /// Batches a queue holds.
    pub queue_batches: usize,
    /// Most updates in one batch.
    pub max_batch_len: usize,
    /// Most batches per actor message.
    pub batches_per_apply: usize,
    /// How long batches wait for a restarting store.
    pub restart_wait_ms: u64,
}

impl Default for IntakeSection {
    fn default() -> Self {
        IntakeSection {
            queue_batches: 8,
            max_batch_len: 512,
            batches_per_apply: 4,
            restart_wait_ms: 5_000,
        }
    }
}

/// The process table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessSection {
    /// Most process records.
    pub capacity: usize,
    /// Grace after an exited process has no running descendants (0 allowed).
    pub exit_grace_ms: u64,
    /// Early exec/exit events kept.
    pub pending_capacity: usize,
    /// How long an early event waits.
    pub pending_ttl_ms: u64,
    /// Distinct executable paths.
    pub exe_path_strings: usize,
    /// Bytes of distinct executable paths.
    pub exe_path_bytes: usize,
}

impl Default for ProcessSection {
    fn default() -> Self {
        ProcessSection {
            capacity: 4_096,
            exit_grace_ms: 30_000,
            pending_capacity: 256,
            pending_ttl_ms: 5_000,
            exe_path_strings: 2_048,
            exe_path_bytes: 131_072,
        }
    }
}

/// The container table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerSection {
    /// Most containers.
    pub capacity: usize,
    /// How long a removed container stays gettable (0 allowed).
    pub removal_grace_ms: u64,
    /// Describe containers from their runtimes' APIs (off: ID and runtime from cgroups only).
    pub enrichment: bool,
    /// `[container.runtimes]`: the runtimes' sockets and the bounds on asking them.
    pub runtimes: crate::runtimes::settings::RuntimesSection,
}

impl Default for ContainerSection {
    fn default() -> Self {
        ContainerSection {
            capacity: 256,
            removal_grace_ms: 30_000,
            enrichment: true,
            runtimes: Default::default(),
        }
    }
}

/// The cache of observed DNS answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// Most names held (queried names and CNAME targets alike).
    pub max_names: usize,
    /// Most addresses held.
    pub max_addresses: usize,
    /// Most records (name → name or name → address links) held.
    pub max_links: usize,
    /// Bytes of name text, all names together.
    pub name_bytes: usize,
    /// Network namespaces with answers held at once.
    pub max_namespaces: usize,
    /// Share of each pool untrusted namespaces may hold together, percent.
    pub untrusted_share_percent: u8,
    /// Answer messages per second one trusted namespace may insert.
    pub trusted_answers_per_sec: u32,
    /// Answer messages per second one untrusted namespace may insert.
    pub untrusted_answers_per_sec: u32,
}

impl Default for DnsSection {
    fn default() -> Self {
        let d = DnsCacheConfig::default();
        // Sized for a gateway (see `default.toml`), smaller than the core's general default.
        DnsSection {
            max_names: 2_048,
            max_addresses: 4_096,
            max_links: 8_192,
            name_bytes: 65_536,
            max_namespaces: d.max_namespaces,
            untrusted_share_percent: d.untrusted_share_percent,
            trusted_answers_per_sec: d.trusted_answers_per_sec,
            untrusted_answers_per_sec: d.untrusted_answers_per_sec,
        }
    }
}

/// Kernel symbols.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SymbolsSection {
    /// Reload kallsyms when `/proc/modules` changes.
    pub reload_on_module_change: bool,
    /// How often `/proc/modules` is checked.
    pub module_check_interval_ms: u64,
}

impl Default for SymbolsSection {
    fn default() -> Self {
        SymbolsSection {
            reload_on_module_change: true,
            module_check_interval_ms: 2_000,
        }
    }
}

/// Whether the daemon collects from the kernel with eBPF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EbpfMode {
    /// Try eBPF; when the kernel refuses (or loading fails), poll `/proc` instead.
    #[default]
    Auto,
    /// Never load eBPF: poll `/proc`.
    Off,
    /// eBPF or nothing: a refusal stops the daemon.
    Required,
}

/// The collectors: eBPF, and the `/proc` rescan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorSection {
    /// `auto`, `off` or `required`.
    pub ebpf: EbpfMode,
    /// Rescan period while polling (no eBPF).
    pub rescan_interval_ms: u64,
    /// Rescan period while eBPF feeds the stores (a reconciliation only).
    pub reconcile_interval_ms: u64,
    /// Most processes one scan tracks.
    pub max_tracked_processes: usize,
    /// Kernel-side ring buffer for process events, bytes (a power of two, at least a page).
    pub kernel_ring_bytes: u32,
    /// Kernel-side ring buffer for DNS answers, bytes (a power of two, at least a page).
    pub dns_ring_bytes: u32,
    /// Batches of kernel events read and not yet applied.
    pub reader_queue_batches: usize,
    /// How often the kernel's lost-event counters are read.
    pub lost_check_interval_ms: u64,
    /// A DNS answer later than this after its query is refused.
    pub dns_query_timeout_ms: u64,
    /// Outstanding DNS queries the kernel remembers, per map (trusted namespaces, others).
    pub dns_pending_queries: u32,
    /// DNS answers per second, per CPU, the kernel passes on into untrusted namespaces.
    pub dns_untrusted_answers_per_sec: u32,
    /// A test and benchmark tool: fork/exec/exit events per second generated into the process
    /// intake with pids above any real `pid_max` (0: off).
    pub synthetic_events_per_second: u32,
}

impl Default for CollectorSection {
    fn default() -> Self {
        CollectorSection {
            ebpf: EbpfMode::Auto,
            rescan_interval_ms: 1_000,
            reconcile_interval_ms: 30_000,
            max_tracked_processes: 16_384,
            kernel_ring_bytes: 256 << 10,
            dns_ring_bytes: 256 << 10,
            reader_queue_batches: 4,
            lost_check_interval_ms: 1_000,
            dns_query_timeout_ms: 10_000,
            dns_pending_queries: 8_192,
            dns_untrusted_answers_per_sec: 200,
            synthetic_events_per_second: 0,
        }
    }
}

/// `shell_from_service` settings plus a switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShellFromServiceSection {
    /// Whether the detector runs.
    pub enabled: bool,
    /// Service names.
    pub services: Vec<String>,
    /// Shell names.
    pub shells: Vec<String>,
    /// Ancestry depth examined.
    pub depth: i32,
}

impl Default for ShellFromServiceSection {
    fn default() -> Self {
        let d = ShellFromServiceConfig::default();
        ShellFromServiceSection {
            enabled: true,
            services: d.services,
            shells: d.shells,
            depth: d.depth,
        }
    }
}

/// `tmp_exec_in_container` settings plus a switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TmpExecInContainerSection {
    /// Whether the detector runs.
    pub enabled: bool,
    /// World-writable directories.
    pub directories: Vec<String>,
}

impl Default for TmpExecInContainerSection {
    fn default() -> Self {
        TmpExecInContainerSection {
            enabled: true,
            directories: TmpExecInContainerConfig::default().directories,
        }
    }
}

/// The detector engine and the built-in detectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorsSection {
    /// Events waiting for the detectors.
    pub event_queue: usize,
    /// Detections waiting to be printed.
    pub output_queue: usize,
    /// (detector, event) evaluations at once.
    pub max_in_flight: usize,
    /// Per-call detector timeout.
    pub timeout_ms: u64,
    /// The `shell_from_service` detector.
    pub shell_from_service: ShellFromServiceSection,
    /// The `tmp_exec_in_container` detector.
    pub tmp_exec_in_container: TmpExecInContainerSection,
}

impl Default for DetectorsSection {
    fn default() -> Self {
        DetectorsSection {
            event_queue: 1_024,
            output_queue: 256,
            max_in_flight: 256,
            timeout_ms: 5_000,
            shell_from_service: ShellFromServiceSection::default(),
            tmp_exec_in_container: TmpExecInContainerSection::default(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[daemon]`
    pub daemon: DaemonSection,
    /// `[socket]`
    pub socket: SocketSection,
    /// `[stores]`
    pub stores: StoresSection,
    /// `[intake]`
    pub intake: IntakeSection,
    /// `[process]`
    pub process: ProcessSection,
    /// `[container]`
    pub container: ContainerSection,
    /// `[dns]`
    pub dns: DnsSection,
    /// `[symbols]`
    pub symbols: SymbolsSection,
    /// `[collector]`
    pub collector: CollectorSection,
    /// `[detectors]`
    pub detectors: DetectorsSection,
    /// `[persist]`
    pub persist: PersistSection,
    /// `[ip_reputation]`
    pub ip_reputation: IpReputationSection,
    /// `[metrics]`
    pub metrics: fleet::MetricsSection,
    /// `[sinks]`
    pub sinks: fleet::SinksSection,
    /// `[mqtt]`
    pub mqtt: fleet::MqttSection,
    /// `[intel]`
    pub intel: fleet::IntelSection,
    /// `[follow]`
    pub follow: fleet::FollowSection,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration (syntax, an unknown key, a wrong type).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file (`<embedded default>` for the built-in one).
        path: PathBuf,
        /// The parser's message, naming the key and its place.
        message: String,
    },
    /// Values that parse but make no sense, each naming its key.
    #[error("invalid configuration{}:\n{}", origin_suffix(.path), .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file, if one was given.
        path: Option<PathBuf>,
        /// One entry per bad key.
        problems: Vec<Problem>,
    },
}

fn origin_suffix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" in {}", p.display()))
        .unwrap_or_default()
}

/// One bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct Problem {
    /// Dotted key, `process.capacity`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Config {
    /// The embedded default.
    pub fn embedded() -> Config {
        Config::default()
    }

    /// Parses `text` (the contents of `origin`) over the defaults and validates it.
    pub fn from_toml(text: &str, origin: Option<&Path>) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.map_or_else(|| PathBuf::from("<inline>"), Path::to_path_buf),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, Some(path))
    }

    /// Every value checked; all problems reported at once.
    pub fn validate(&self, origin: Option<&Path>) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut positive = |key: &str, value: u64| {
            if value == 0 {
                problems.push(Problem {
                    key: key.to_owned(),
                    reason: "must be greater than 0".to_owned(),
                });
            }
        };
        let d = &self.daemon;
        positive("daemon.shutdown_timeout_ms", d.shutdown_timeout_ms);
        let s = &self.socket;
        positive("socket.max_clients", s.max_clients as u64);
        positive("socket.max_request_bytes", u64::from(s.max_request_bytes));
        positive("socket.max_reply_bytes", u64::from(s.max_reply_bytes));
        positive(
            "socket.max_answers_in_flight",
            s.max_answers_in_flight as u64,
        );
        positive("socket.read_timeout_ms", s.read_timeout_ms);
        positive("socket.write_timeout_ms", s.write_timeout_ms);
        let st = &self.stores;
        positive("stores.call_timeout_ms", st.call_timeout_ms);
        positive("stores.degraded_window_ms", st.degraded_window_ms);
        positive("stores.max_restarts", u64::from(st.max_restarts));
        positive("stores.restart_window_ms", st.restart_window_ms);
        let i = &self.intake;
        positive("intake.queue_batches", i.queue_batches as u64);
        positive("intake.max_batch_len", i.max_batch_len as u64);
        positive("intake.batches_per_apply", i.batches_per_apply as u64);
        positive("intake.restart_wait_ms", i.restart_wait_ms);
        let p = &self.process;
        positive("process.capacity", p.capacity as u64);
        positive("process.pending_capacity", p.pending_capacity as u64);
        positive("process.pending_ttl_ms", p.pending_ttl_ms);
        positive("process.exe_path_strings", p.exe_path_strings as u64);
        positive("process.exe_path_bytes", p.exe_path_bytes as u64);
        positive("container.capacity", self.container.capacity as u64);
        let dns = &self.dns;
        positive("dns.max_names", dns.max_names as u64);
        positive("dns.max_addresses", dns.max_addresses as u64);
        positive("dns.max_links", dns.max_links as u64);
        positive("dns.name_bytes", dns.name_bytes as u64);
        positive("dns.max_namespaces", dns.max_namespaces as u64);
        positive(
            "dns.trusted_answers_per_sec",
            u64::from(dns.trusted_answers_per_sec),
        );
        positive(
            "dns.untrusted_answers_per_sec",
            u64::from(dns.untrusted_answers_per_sec),
        );
        positive(
            "symbols.module_check_interval_ms",
            self.symbols.module_check_interval_ms,
        );
        let c = &self.collector;
        positive("collector.rescan_interval_ms", c.rescan_interval_ms);
        positive("collector.reconcile_interval_ms", c.reconcile_interval_ms);
        positive("collector.lost_check_interval_ms", c.lost_check_interval_ms);
        positive("collector.dns_query_timeout_ms", c.dns_query_timeout_ms);
        positive(
            "collector.dns_pending_queries",
            u64::from(c.dns_pending_queries),
        );
        positive(
            "collector.dns_untrusted_answers_per_sec",
            u64::from(c.dns_untrusted_answers_per_sec),
        );
        positive(
            "collector.reader_queue_batches",
            c.reader_queue_batches as u64,
        );
        positive(
            "collector.max_tracked_processes",
            c.max_tracked_processes as u64,
        );
        let de = &self.detectors;
        positive("detectors.event_queue", de.event_queue as u64);
        positive("detectors.output_queue", de.output_queue as u64);
        positive("detectors.max_in_flight", de.max_in_flight as u64);
        positive("detectors.timeout_ms", de.timeout_ms);
        positive(
            "detectors.shell_from_service.depth",
            u64::try_from(de.shell_from_service.depth).unwrap_or(0),
        );

        let mut invalid = |key: &str, reason: &str| {
            problems.push(Problem {
                key: key.to_owned(),
                reason: reason.to_owned(),
            })
        };
        if d.data_dir.as_os_str().is_empty() {
            invalid("daemon.data_dir", "must not be empty");
        }
        for (key, bytes) in [
            ("collector.kernel_ring_bytes", c.kernel_ring_bytes),
            ("collector.dns_ring_bytes", c.dns_ring_bytes),
        ] {
            if !bytes.is_power_of_two() || bytes < 4096 {
                invalid(key, "must be a power of two of at least 4096");
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&d.log_level).is_err() {
            invalid(
                "daemon.log_level",
                "is not a tracing filter (e.g. \"info\", \"watchpost=debug\")",
            );
        }
        if s.path.as_os_str().is_empty() {
            invalid("socket.path", "must not be empty");
        }
        // sockaddr_un holds 108 bytes including the terminating NUL.
        if s.path.as_os_str().len() > 107 {
            invalid(
                "socket.path",
                "is longer than the 107 bytes a Unix socket path holds",
            );
        }
        if let Some(group) = &s.group
            && group.trim().is_empty()
        {
            invalid(
                "socket.group",
                "must name a group or a gid (leave it out for root only)",
            );
        }
        if let Some(user) = &s.daemon_user
            && user.trim().is_empty()
        {
            invalid(
                "socket.daemon_user",
                "must name a user or a uid (leave it out when the daemon runs as root)",
            );
        }
        if i.max_batch_len > 0 && i.max_batch_len < 2 {
            invalid("intake.max_batch_len", "must be at least 2");
        }
        if p.capacity > watchpost_core::process::table::MAX_CAPACITY {
            invalid("process.capacity", "is larger than the table can index");
        }
        if de.shell_from_service.enabled && de.shell_from_service.shells.is_empty() {
            invalid(
                "detectors.shell_from_service.shells",
                "must not be empty while the detector is enabled",
            );
        }
        if de.tmp_exec_in_container.enabled && de.tmp_exec_in_container.directories.is_empty() {
            invalid(
                "detectors.tmp_exec_in_container.directories",
                "must not be empty while the detector is enabled",
            );
        }
        for dir in &de.tmp_exec_in_container.directories {
            if !dir.starts_with('/') {
                invalid(
                    "detectors.tmp_exec_in_container.directories",
                    &format!("{dir:?} is not an absolute path"),
                );
            }
        }
        problems.extend(self.container.runtimes.problems());
        for (key, reason) in fleet::problems(self) {
            problems.push(Problem { key, reason });
        }
        limits::check(self, &mut problems);
        persist::validate(self, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                path: origin.map(Path::to_path_buf),
                problems,
            })
        }
    }

    /// The process table's configuration (`hash_seed` chosen per build by the store's factory).
    pub fn process_table(&self) -> ProcessTableConfig {
        let p = &self.process;
        ProcessTableConfig {
            capacity: p.capacity,
            exit_grace_ns: ms_to_ns(p.exit_grace_ms),
            pending_capacity: p.pending_capacity,
            pending_ttl_ns: ms_to_ns(p.pending_ttl_ms),
            exe_path_strings: p.exe_path_strings,
            exe_path_bytes: p.exe_path_bytes,
            ..ProcessTableConfig::default()
        }
    }

    /// The container table's configuration (`hash_seed` chosen per build by the factory).
    pub fn container_table(&self) -> ContainerTableConfig {
        ContainerTableConfig {
            capacity: self.container.capacity,
            removal_grace_ns: ms_to_ns(self.container.removal_grace_ms),
            ..ContainerTableConfig::default()
        }
    }

    /// The DNS cache's configuration (`hash_seed` chosen per build by the store's factory).
    pub fn dns_cache(&self) -> DnsCacheConfig {
        let d = &self.dns;
        DnsCacheConfig {
            max_names: d.max_names,
            max_addresses: d.max_addresses,
            max_links: d.max_links,
            name_bytes: d.name_bytes,
            max_namespaces: d.max_namespaces.min(usize::from(u16::MAX)),
            untrusted_share_percent: d.untrusted_share_percent,
            trusted_answers_per_sec: d.trusted_answers_per_sec,
            untrusted_answers_per_sec: d.untrusted_answers_per_sec,
            ..DnsCacheConfig::default()
        }
    }

    /// How the kernel matches DNS answers to queries.
    pub fn dns_matching(&self) -> watchpost_ebpf::DnsMatchingOptions {
        let c = &self.collector;
        watchpost_ebpf::DnsMatchingOptions {
            query_timeout: std::time::Duration::from_millis(c.dns_query_timeout_ms),
            pending_queries: c.dns_pending_queries,
            untrusted_answers_per_sec: c.dns_untrusted_answers_per_sec,
            untrusted_burst: c.dns_untrusted_answers_per_sec.saturating_mul(2),
            ..watchpost_ebpf::DnsMatchingOptions::default()
        }
    }

    /// Registration options every store gets.
    pub fn store_options(&self) -> StoreOptions {
        let st = &self.stores;
        let i = &self.intake;
        let defaults = RestartPolicy::default();
        StoreOptions {
            call_timeout: Some(ms(st.call_timeout_ms)),
            degraded_window: ms(st.degraded_window_ms),
            intake: IntakeOptions {
                queue_batches: i.queue_batches,
                max_batch_len: i.max_batch_len,
                batches_per_apply: i.batches_per_apply,
                restart_wait: ms(i.restart_wait_ms),
            },
            restart: RestartPolicy {
                max_restarts: st.max_restarts,
                window: ms(st.restart_window_ms),
                ..defaults
            },
        }
    }

    /// The `shell_from_service` detector's settings.
    pub fn shell_from_service(&self) -> ShellFromServiceConfig {
        let s = &self.detectors.shell_from_service;
        ShellFromServiceConfig {
            services: s.services.clone(),
            shells: s.shells.clone(),
            depth: s.depth,
        }
    }

    /// The `tmp_exec_in_container` detector's settings.
    pub fn tmp_exec_in_container(&self) -> TmpExecInContainerConfig {
        TmpExecInContainerConfig {
            directories: self.detectors.tmp_exec_in_container.directories.clone(),
        }
    }
}

/// `value` milliseconds as a [`Duration`].
pub fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

fn ms_to_ns(value: u64) -> u64 {
    value.saturating_mul(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_text_is_the_default_and_valid() {
        let parsed = Config::from_toml(DEFAULT_TOML, None).expect("default parses");
        assert_eq!(parsed, Config::default());
    }

    /// Every key the configuration has appears (uncommented) in the embedded text, except the
    /// optional socket group and daemon user, which are documented commented out.
    #[test]
    fn embedded_text_spells_out_every_key() {
        fn keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(t) => keys(&key, t, out),
                    _ => out.push(key),
                }
            }
        }
        let mut from_text = Vec::new();
        keys("", &toml::from_str(DEFAULT_TOML).unwrap(), &mut from_text);
        let mut with_group = Config::default();
        with_group.socket.group = Some("g".into());
        with_group.socket.daemon_user = Some("u".into());
        let mut from_struct = Vec::new();
        keys(
            "",
            &toml::Table::try_from(&with_group).unwrap(),
            &mut from_struct,
        );
        from_struct.retain(|k| k != "socket.group" && k != "socket.daemon_user");
        from_text.sort();
        from_struct.sort();
        assert_eq!(from_text, from_struct);
        assert!(DEFAULT_TOML.contains("# group = "));
        assert!(DEFAULT_TOML.contains("# daemon_user = "));
    }

    #[test]
    fn partial_file_keeps_the_other_defaults() {
        let c = Config::from_toml("[process]\ncapacity = 42\n", None).unwrap();
        assert_eq!(c.process.capacity, 42);
        assert_eq!(
            c.process.exe_path_bytes,
            Config::default().process.exe_path_bytes
        );
        assert_eq!(c.socket, Config::default().socket);
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let e = Config::from_toml("[process]\ncapacty = 42\n", None).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("capacty"), "{text}");
        let e = Config::from_toml("[proces]\ncapacity = 42\n", None).unwrap_err();
        assert!(e.to_string().contains("proces"), "{e}");
    }

    #[test]
    fn zero_capacities_are_refused_naming_each_key() {
        let e = Config::from_toml(
            "[process]\ncapacity = 0\n[intake]\nqueue_batches = 0\n[collector]\nrescan_interval_ms = 0\n",
            Some(Path::new("/etc/watchpost.toml")),
        )
        .unwrap_err();
        let ConfigError::Invalid { problems, .. } = &e else {
            panic!("expected Invalid, got {e}");
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "intake.queue_batches",
                "process.capacity",
                "collector.rescan_interval_ms"
            ]
        );
        let text = e.to_string();
        assert!(text.contains("/etc/watchpost.toml"), "{text}");
        assert!(
            text.contains("process.capacity: must be greater than 0"),
            "{text}"
        );
    }

    #[test]
    fn grace_periods_may_be_zero() {
        let c = Config::from_toml(
            "[process]\nexit_grace_ms = 0\n[container]\nremoval_grace_ms = 0\n",
            None,
        )
        .unwrap();
        assert_eq!(c.process_table().exit_grace_ns, 0);
    }

    #[test]
    fn wrong_types_and_bad_values_name_the_key() {
        let e = Config::from_toml("[socket]\nmax_clients = \"many\"\n", None).unwrap_err();
        assert!(e.to_string().contains("max_clients"), "{e}");
        let e = Config::from_toml("[socket]\ngroup = \"  \"\n", None).unwrap_err();
        assert!(e.to_string().contains("socket.group"), "{e}");
        let e = Config::from_toml("[daemon]\nlog_level = \"[[[\"\n", None).unwrap_err();
        assert!(e.to_string().contains("daemon.log_level"), "{e}");
        let long = format!("[socket]\npath = \"/{}\"\n", "x".repeat(120));
        let e = Config::from_toml(&long, None).unwrap_err();
        assert!(e.to_string().contains("socket.path"), "{e}");
    }

    #[test]
    fn conversions_carry_the_values() {
        let c = Config::from_toml(
            "[process]\ncapacity = 7\nexit_grace_ms = 1500\n[intake]\nqueue_batches = 3\n[stores]\ncall_timeout_ms = 250\n",
            None,
        )
        .unwrap();
        let t = c.process_table();
        assert_eq!((t.capacity, t.exit_grace_ns), (7, 1_500_000_000));
        let d = Config::from_toml(
            "[dns]
max_names = 12
",
            None,
        )
        .unwrap()
        .dns_cache();
        assert_eq!((d.max_names, d.max_links), (12, 8_192));
        let o = c.store_options();
        assert_eq!(o.intake.queue_batches, 3);
        assert_eq!(o.call_timeout, Some(Duration::from_millis(250)));
    }
}
