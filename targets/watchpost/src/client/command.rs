//! `watchpost query …`: turns the command line into a request, asks the daemon, prints the
//! answer, and picks the exit code: 0 found, 1 not found, 2 usage or daemon errors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{Query, QueryArgs, ReputationAction, hex_address};
use crate::client::escape::escape;
use crate::client::trust::{ServerTrust, resolve_user};
use crate::client::{QueryClient, follow, render};
use crate::config::Config;
use crate::wire::reputation::WireVerdict;
use crate::wire::{Answer, ErrorCode, ErrorReply, Request, Response};

/// Exit code: the answer was found.
pub const EXIT_FOUND: u8 = 0;
/// Exit code: not found.
pub const EXIT_NOT_FOUND: u8 = 1;
/// Exit code: usage error, daemon error, daemon not running.
pub const EXIT_ERROR: u8 = 2;

/// The request for `query`.
pub fn request_for(query: &Query) -> Request {
    match query {
        Query::Stores => Request::Stores {},
        Query::Health { store } => Request::Health {
            store: store.clone(),
        },
        Query::Metrics { store } => Request::Metrics {
            store: store.clone(),
        },
        Query::System => Request::System {},
        Query::Process { pid: Some(pid), .. } => Request::ProcessByPid { pid: *pid },
        Query::Process { entity_id, .. } => Request::Process {
            entity_id: entity_id.unwrap_or_default(),
        },
        Query::Ancestry { entity_id, depth } => Request::Ancestry {
            entity_id: *entity_id,
            depth: *depth,
        },
        Query::Children { entity_id } => Request::Children {
            entity_id: *entity_id,
        },
        Query::Syscall { name_or_id, arch } => match name_or_id.parse::<i32>() {
            Ok(id) => Request::SyscallById {
                id,
                arch: arch.clone(),
            },
            Err(_) => Request::SyscallByName {
                name: name_or_id.clone(),
                arch: arch.clone(),
            },
        },
        Query::Symbol { address_or_name } => match hex_address(address_or_name) {
            Some(address) => Request::SymbolByAddress { address },
            None => Request::SymbolByName {
                name: address_or_name.clone(),
            },
        },
        Query::Symbols { addresses } => Request::Symbols {
            addresses: addresses.clone(),
        },
        Query::Dns { name_or_ip, netns } => Request::Dns {
            query: name_or_ip.clone(),
            netns: *netns,
        },
        Query::Container {
            name: Some(name), ..
        } => Request::ContainerByName { name: name.clone() },
        Query::Container { id, .. } => Request::Container {
            id: id.clone().unwrap_or_default(),
        },
        Query::Persistence => Request::Persistence {},
        Query::Snapshot => Request::Snapshot {},
        Query::Reputation { ip } => Request::Reputation { ip: ip.clone() },
        Query::ReputationChange { action } => match action.clone() {
            ReputationAction::Write {
                source,
                ip,
                status,
                severity,
                tags,
            } => Request::ReputationWrite {
                source,
                records: vec![WireVerdict {
                    ip,
                    status,
                    severity,
                    tags,
                    last_updated: None,
                }],
            },
            ReputationAction::Delete { source, ip } => Request::ReputationDelete { source, ip },
            ReputationAction::Clear { source } => Request::ReputationClear { source },
        },
        Query::Containers {
            name,
            image,
            runtime,
        } => Request::Containers {
            name: name.clone(),
            image: image.clone(),
            runtime: runtime.clone(),
        },
        Query::Events { .. } => Request::Events {},
    }
}

/// The socket to ask (`--socket`, else `socket.path` of `--config`, else the default) and whom
/// to believe there (root, `socket.daemon_user` of `--config`, the caller).
fn socket_and_trust(args: &QueryArgs) -> Result<(PathBuf, ServerTrust), String> {
    let config = match &args.config {
        Some(file) => Config::load(file).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    let daemon_uid = match &config.socket.daemon_user {
        Some(user) => Some(
            resolve_user(user, std::path::Path::new("/etc/passwd"))
                .map_err(|e| format!("socket.daemon_user: {e}"))?,
        ),
        None => None,
    };
    let path = args.socket.clone().unwrap_or(config.socket.path);
    Ok((path, ServerTrust::for_caller(daemon_uid)))
}

/// Whether an answer counts as "found".
fn found(answer: &Answer) -> bool {
    match answer {
        // The batch form answers with what resolved; nothing resolved is "not found".
        Answer::SymbolBatch(list) => !list.is_empty(),
        Answer::Symbols(list) => !list.is_empty(),
        _ => true,
    }
}

fn print_error(json: bool, error: &ErrorReply) {
    if json {
        let line = serde_json::json!({ "error": error });
        println!("{line}");
    } else {
        let label = match error.kind {
            ErrorCode::NotFound => "not found",
            _ => "error",
        };
        eprintln!("watchpost: {label}: {}", escape(&error.message));
    }
}

/// Runs `watchpost query …`.
pub async fn run(args: QueryArgs) -> ExitCode {
    let (path, trust) = match socket_and_trust(&args) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("watchpost: {}", escape(&e.to_string()));
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let request = request_for(&args.query);
    if let Err(e) = request.validate() {
        eprintln!("watchpost: invalid query: {}", escape(&e.to_string()));
        return ExitCode::from(EXIT_ERROR);
    }
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    if matches!(request, Request::Events {}) {
        return follow::run(&path, timeout, &trust, args.json).await;
    }
    let reply = match QueryClient::connect(&path, timeout, &trust).await {
        Ok(mut client) => client.ask(&request).await,
        Err(e) => Err(e),
    };
    let response = match reply {
        Ok(r) => r,
        Err(e) => {
            eprintln!("watchpost: {}", escape(&e.to_string()));
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match response {
        Response::Ok { answer } => {
            if args.json {
                match serde_json::to_value(&answer) {
                    Ok(mut v) => println!("{}", v["data"].take()),
                    Err(e) => {
                        eprintln!("watchpost: {}", escape(&e.to_string()));
                        return ExitCode::from(EXIT_ERROR);
                    }
                }
            } else {
                print!("{}", render::render(&answer));
            }
            ExitCode::from(if found(&answer) {
                EXIT_FOUND
            } else {
                EXIT_NOT_FOUND
            })
        }
        Response::Error { error } => {
            print_error(args.json, &error);
            ExitCode::from(if error.kind == ErrorCode::NotFound {
                EXIT_NOT_FOUND
            } else {
                EXIT_ERROR
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_map_to_requests() {
        let q = |query| request_for(&query);
        assert_eq!(
            q(Query::Syscall {
                name_or_id: "59".into(),
                arch: None
            }),
            Request::SyscallById { id: 59, arch: None }
        );
        assert_eq!(
            q(Query::Syscall {
                name_or_id: "open".into(),
                arch: Some("aarch64".into())
            }),
            Request::SyscallByName {
                name: "open".into(),
                arch: Some("aarch64".into())
            }
        );
        assert_eq!(
            q(Query::Symbol {
                address_or_name: "0xffffffff81000000".into()
            }),
            Request::SymbolByAddress {
                address: 0xffff_ffff_8100_0000
            }
        );
        assert_eq!(
            q(Query::Symbol {
                address_or_name: "_stext".into()
            }),
            Request::SymbolByName {
                name: "_stext".into()
            }
        );
        assert_eq!(
            q(Query::Container {
                id: None,
                name: Some("web".into())
            }),
            Request::ContainerByName { name: "web".into() }
        );
        assert_eq!(
            q(Query::Process {
                entity_id: None,
                pid: Some(9)
            }),
            Request::ProcessByPid { pid: 9 }
        );
    }
}
