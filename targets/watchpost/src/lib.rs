//! watchpost: the Linux daemon that runs every datastore as an actor, keeps them current from
//! `/proc`, feeds the detectors, and answers queries on a Unix socket; and the CLI that asks.
//!
//! # Layout
//! - [`cli`]: the command line.
//! - [`config`]: the TOML configuration, its embedded default and validation.
//! - [`daemon`]: `watchpost run`: start-up, store registration, detectors, shutdown.
//! - [`procfs`]: reading processes from `/proc` with the core's canonical start times.
//! - [`bootstrap`]: system facts and kernel symbols read at start.
//! - [`collector`]: the `/proc` rescans and symbol reloads that keep the stores current.
//! - [`runtimes`]: container enrichment from the runtimes' APIs (Docker API, containerd).
//! - [`server`]: the query socket: access control, limits, answers.
//! - [`client`]: `watchpost query`: requests, exit codes, human output.
//! - [`wire`]: the query socket's framing and messages, shared by daemon and CLI.
//! - [`stats`]: the daemon's own counters.
//! - [`fleet`]: detection records, MQTT, threat intelligence, Prometheus metrics.
//! - [`sinks`]: where detections go: stdout, a rotated file, MQTT through a crash-safe outbox.
// One module needs `unsafe` (`server::peer_groups`: a socket option no safe crate wraps).
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod bootstrap;
pub mod cli;
pub mod client;
pub mod collector;
pub mod config;
pub mod daemon;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod fleet;
pub mod memory;
pub mod persistence;
pub mod procfs;
pub mod runtimes;
pub mod server;
pub mod sinks;
pub mod stats;
pub mod wire;
