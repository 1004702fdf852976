//! watchpost: the Linux daemon that runs every datastore as an actor, keeps them current from
//! `/proc`, feeds the detectors, and answers queries on a Unix socket; and the CLI that asks.
//!
//! # Layout
//! - [`config`]: the TOML configuration, its embedded default and validation.
//! - [`procfs`]: reading processes from `/proc` with the core's canonical start times.
//! - [`wire`]: the query socket's framing and messages, shared by daemon and CLI.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
pub mod procfs;
pub mod wire;
