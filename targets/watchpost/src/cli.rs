//! The command line: `watchpost run`, `watchpost query …`, `watchpost config …`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// watchpost: bounded-memory system-state datastores for security detectors.
#[derive(Debug, Parser)]
#[command(name = "watchpost", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (as root): stores, /proc collector, detectors, query socket.
    Run(RunArgs),
    /// Ask the running daemon.
    Query(QueryArgs),
    /// Show or check the configuration.
    Config(ConfigArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff); `cargo xtask man` writes it to a file.
    #[command(hide = true)]
    Man,
    /// Ask the running daemon to snapshot every restorable store now.
    Snapshot(ClientArgs),
    /// Write, delete or clear IP reputation verdicts (root or the socket group).
    Reputation(ReputationArgs),
}

/// How to reach the daemon (for commands other than `query`).
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Query socket (default: `socket.path` of --config, else the default path).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Read the socket path from this configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the answer as JSON (one line).
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the daemon, ms.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub timeout_ms: u64,
}

impl ClientArgs {
    /// The same, asking `query`.
    pub fn asking(self, query: Query) -> QueryArgs {
        QueryArgs {
            socket: self.socket,
            config: self.config,
            json: self.json,
            timeout_ms: self.timeout_ms,
            query,
        }
    }
}

/// `watchpost reputation`.
#[derive(Debug, Args)]
pub struct ReputationArgs {
    /// How to reach the daemon.
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: ReputationAction,
}

/// `watchpost reputation write|delete|clear`.
#[derive(Debug, Clone, Subcommand)]
pub enum ReputationAction {
    /// Write one verdict of SOURCE on IP (replacing what SOURCE said about it before).
    Write {
        /// Who says it (feed or detector name).
        #[arg(long)]
        source: String,
        /// The address.
        #[arg(long)]
        ip: String,
        /// allow, deny, suspicious or unknown.
        #[arg(long)]
        status: String,
        /// 1 (lowest) to 10.
        #[arg(long)]
        severity: u8,
        /// A label (repeat for more).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Forget what SOURCE said about IP.
    Delete {
        /// The source.
        #[arg(long)]
        source: String,
        /// The address.
        #[arg(long)]
        ip: String,
    },
    /// Forget everything SOURCE said.
    Clear {
        /// The source.
        #[arg(long)]
        source: String,
    },
}

/// `watchpost run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML); the embedded default when absent.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides `daemon.data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Query socket path (overrides `socket.path`).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// `watchpost config`.
#[derive(Debug, Args)]
#[command(arg_required_else_help = true)]
pub struct ConfigArgs {
    /// Print the embedded default configuration.
    #[arg(long, conflicts_with = "check")]
    pub print_default: bool,
    /// Check a configuration file and report every problem.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
}

/// `watchpost query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Query socket (default: `socket.path` of --config, else the default path).
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Read the socket path from this configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the answer as JSON (one line).
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for the daemon, ms.
    #[arg(long, global = true, value_name = "MS", default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// The question.
    #[command(subcommand)]
    pub query: Query,
}

/// The questions.
#[derive(Debug, Subcommand)]
pub enum Query {
    /// Registered stores and their state.
    Stores,
    /// Health of every store, or of one.
    Health {
        /// Store name (`process`, `symbol`, …).
        store: Option<String>,
    },
    /// Metrics of every store (and the daemon), or of one store.
    Metrics {
        /// Store name.
        store: Option<String>,
    },
    /// Immutable system facts.
    System,
    /// A process by entity ID, or the process running as --pid.
    Process {
        /// Entity ID (decimal or 0x-hex).
        #[arg(value_name = "ENTITY_ID", required_unless_present = "pid", conflicts_with = "pid", value_parser = parse_u32)]
        entity_id: Option<u32>,
        /// Process ID (resolved to its current entity ID by the daemon).
        #[arg(long)]
        pid: Option<u32>,
    },
    /// `[self, parent, grandparent, …]` of a process.
    Ancestry {
        /// Entity ID (decimal or 0x-hex).
        #[arg(value_parser = parse_u32)]
        entity_id: u32,
        /// Most entries, the process itself included.
        #[arg(long, default_value_t = 5, allow_negative_numbers = true)]
        depth: i32,
    },
    /// Children of a process.
    Children {
        /// Entity ID (decimal or 0x-hex).
        #[arg(value_parser = parse_u32)]
        entity_id: u32,
    },
    /// A syscall by name or number.
    Syscall {
        /// Name (`execve`) or number (`59`).
        #[arg(allow_negative_numbers = true)]
        name_or_id: String,
        /// Architecture: x86_64 or aarch64 (default: the daemon's).
        #[arg(long)]
        arch: Option<String>,
    },
    /// A kernel symbol: the symbols at 0xADDRESS, or the address of NAME.
    Symbol {
        /// 0x-hex address or symbol name.
        address_or_name: String,
    },
    /// Symbols at many addresses.
    Symbols {
        /// Addresses (0x-hex or decimal).
        #[arg(required = true, value_parser = parse_u64)]
        addresses: Vec<u64>,
    },
    /// An observed DNS answer, by name or IP (as the host's and known containers' network
    /// namespaces saw it, or one namespace with --netns).
    Dns {
        /// Domain name or IP address.
        name_or_ip: String,
        /// Ask one network namespace's view: its inode number (`stat -L -c %i
        /// /proc/<pid>/ns/net`).
        #[arg(long, value_name = "INODE")]
        netns: Option<u32>,
    },
    /// A container by ID (or unique prefix of at least 12), or by --name.
    Container {
        /// Container ID or prefix.
        #[arg(required_unless_present = "name", conflicts_with = "name")]
        id: Option<String>,
        /// Container name.
        #[arg(long)]
        name: Option<String>,
    },
    /// The snapshot file: path, size, last snapshot per store, restore at start.
    Persistence,
    /// The merged IP reputation verdict on an address.
    Reputation {
        /// The address.
        ip: String,
    },
    /// (`watchpost snapshot`.)
    #[command(hide = true)]
    Snapshot,
    /// (`watchpost reputation …`.)
    #[command(hide = true)]
    ReputationChange {
        /// What to do.
        #[command(subcommand)]
        action: ReputationAction,
    },
    /// Running containers, filtered.
    Containers {
        /// Exact name.
        #[arg(long)]
        name: Option<String>,
        /// Exact image.
        #[arg(long)]
        image: Option<String>,
        /// Runtime: docker, containerd, crio, podman, garden, unknown.
        #[arg(long)]
        runtime: Option<String>,
    },
    /// Detection records as they happen (JSON lines with --json, one line each otherwise).
    Events {
        /// Keep streaming until interrupted (required: past detections are not kept).
        #[arg(long, required = true)]
        follow: bool,
    },
}

/// A `u32` written in decimal or 0x-hex.
pub fn parse_u32(text: &str) -> Result<u32, String> {
    let v = parse_u64(text)?;
    u32::try_from(v).map_err(|_| format!("{text} does not fit in 32 bits"))
}

/// A `u64` written in decimal or 0x-hex.
pub fn parse_u64(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not a number (decimal or 0x-hex)"))
}

/// A 0x-hex address, if `text` is one.
pub fn hex_address(text: &str) -> Option<u64> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0xffffffff81000000"), Ok(0xffff_ffff_8100_0000));
        assert_eq!(parse_u64("42"), Ok(42));
        assert!(parse_u64("0xzz").is_err());
        assert!(parse_u32("4294967296").is_err());
        assert_eq!(hex_address("0x10"), Some(16));
        assert_eq!(hex_address("do_sys_open"), None);
        assert_eq!(hex_address("10"), None);
    }

    #[test]
    fn query_shapes() {
        let c =
            Cli::try_parse_from(["watchpost", "query", "process", "--pid", "1", "--json"]).unwrap();
        let Command::Query(q) = c.command else {
            panic!()
        };
        assert!(q.json);
        assert!(matches!(
            q.query,
            Query::Process {
                entity_id: None,
                pid: Some(1)
            }
        ));
        assert!(Cli::try_parse_from(["watchpost", "query", "process"]).is_err());
        assert!(Cli::try_parse_from(["watchpost", "query", "process", "5", "--pid", "1"]).is_err());
        let c = Cli::try_parse_from(["watchpost", "query", "ancestry", "0x10"]).unwrap();
        let Command::Query(q) = c.command else {
            panic!()
        };
        assert!(matches!(
            q.query,
            Query::Ancestry {
                entity_id: 16,
                depth: 5
            }
        ));
    }
}
