//! The `watchpost` binary: `run` (the daemon), `query` (the CLI), `config`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use watchpost::cli::{Cli, Command, ConfigArgs, Query, QueryArgs, RunArgs};
use watchpost::client::command::{self, EXIT_ERROR};
use watchpost::config::{Config, DEFAULT_TOML, LogFormat};

fn main() -> ExitCode {
    watchpost::memory::trim::tune_allocator();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Query(args) => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("watchpost: starting the async runtime: {e}");
                    return ExitCode::from(EXIT_ERROR);
                }
            };
            runtime.block_on(command::run(args))
        }
        Command::Config(args) => config(args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "watchpost", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            match clap_mangen::Man::new(command).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("watchpost: {e}");
                    ExitCode::from(EXIT_ERROR)
                }
            }
        }
        Command::Snapshot(client) => ask(client.asking(Query::Snapshot)),
        Command::Reputation(args) => ask(args.client.asking(Query::ReputationChange {
            action: args.action,
        })),
    }
}

fn ask(args: QueryArgs) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(command::run(args)),
        Err(e) => {
            eprintln!("watchpost: starting the async runtime: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn config(args: ConfigArgs) -> ExitCode {
    if args.print_default {
        print!("{DEFAULT_TOML}");
        return ExitCode::SUCCESS;
    }
    if let Some(file) = args.check {
        return match Config::load(&file)
            .and_then(|c| watchpost::config::system::check(&c, Some(&file)))
        {
            Ok(()) => {
                println!("{}: ok", file.display());
                print_budget(&file);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("watchpost: {e}");
                ExitCode::from(EXIT_ERROR)
            }
        };
    }
    ExitCode::from(EXIT_ERROR)
}

/// The memory the configuration in `file` (already validated) lets the daemon take.
fn print_budget(file: &std::path::Path) {
    use watchpost::memory::budget::{Budget, human};
    let Ok(config) = Config::load(file) else {
        return;
    };
    // The symbol table depends on the running kernel: measured when kallsyms is readable.
    let symbols = watchpost::bootstrap::symbols::load_kallsyms(std::path::Path::new(
        watchpost::daemon::stores::KALLSYMS,
    ))
    .map_or(0, |t| t.bytes_reserved() as u64);
    let budget = Budget::of(&config, symbols);
    println!("estimated memory (reserved, or the most each part can hold):");
    for part in &budget.parts {
        let kind = if part.reserved { "reserved" } else { "at most" };
        println!("  {:<22} {:>10}  {kind}", part.name, human(part.bytes));
    }
    println!(
        "  {:<22} {:>10}  ({} reserved at start)",
        "total",
        human(budget.total()),
        human(budget.reserved())
    );
    println!("  plus the program, its libraries and thread stacks (about 8 MiB resident)");
}

fn run(args: RunArgs) -> ExitCode {
    let mut config = match &args.config {
        Some(file) => match Config::load(file) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("watchpost: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        },
        None => Config::embedded(),
    };
    if let Some(dir) = args.data_dir {
        config.daemon.data_dir = dir;
    }
    if let Some(socket) = args.socket {
        config.socket.path = socket;
    }
    if let Err(e) = config
        .validate(args.config.as_deref())
        .and_then(|()| watchpost::config::system::check(&config, args.config.as_deref()))
    {
        eprintln!("watchpost: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let from_env = std::env::var_os("RUST_LOG").is_some();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&config.daemon.log_level));
    // The filter sits behind a reload handle so SIGHUP can change `daemon.log_level`.
    let (filter, filter_handle) = tracing_subscriber::reload::Layer::new(filter);
    let json = config.daemon.log_format == LogFormat::Json;
    tracing_subscriber::registry()
        .with(filter)
        .with((!json).then(|| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
        }))
        .with(json.then(|| {
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .with_ansi(false)
        }))
        .init();
    let set_log_filter: watchpost::daemon::reload::LogFilterSetter =
        std::sync::Arc::new(move |level: &str| {
            if from_env {
                return Err("RUST_LOG is set and overrides daemon.log_level".to_owned());
            }
            let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
            filter_handle.reload(filter).map_err(|e| e.to_string())
        });
    let live = watchpost::daemon::reload::LiveReload {
        config_path: args.config.clone(),
        set_log_filter: Some(set_log_filter),
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("watchpost")
        // Blocking work (/proc reads, kallsyms, stdout) is small and short: a few threads are
        // plenty, and each idle one would keep a stack.
        .max_blocking_threads(8)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("watchpost: starting the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(watchpost::daemon::run_with(config, live)) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("watchpost: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
