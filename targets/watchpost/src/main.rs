//! The `watchpost` binary: `run` (the daemon), `query` (the CLI), `config`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use watchpost::cli::{Cli, Command, ConfigArgs, Query, QueryArgs, RunArgs};
use watchpost::client::command::{self, EXIT_ERROR};
use watchpost::config::{Config, DEFAULT_TOML};

fn main() -> ExitCode {
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
        return match Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
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
    if let Err(e) = config.validate(args.config.as_deref()) {
        eprintln!("watchpost: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&config.daemon.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("watchpost")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("watchpost: starting the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(watchpost::daemon::run(config)) {
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
