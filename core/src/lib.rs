//! watchpost-core: the state and rules of every watchpost datastore.
//!
//! `#![no_std]`; with the `alloc` feature each store reserves all of its memory once, at
//! construction, and never allocates again; bad input is an error, never a panic. No I/O, no async:
//! time is passed in (`now`, epoch nanoseconds) so that expiry and recency are deterministic and
//! testable.
//!
//! # Layout
//! - shared vocabulary: [`error`], [`health`], [`metrics`], [`time`]
//! - fixed-capacity building blocks: [`slot_index`], [`lru_list`], [`intern_arena`]
//! - processes: [`murmur3`], [`entity_id`], [`start_time`], [`process`]
//! - containers: [`cgroup`], [`container`]
//! - system: [`os_release`], [`system_info`], [`syscall`]
//! - kernel symbols: [`kallsyms`], [`symbols`]
//! - DNS: [`dns`]
//! - writable stores: [`writable`], [`ip_reputation`]
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod error;
pub mod health;
pub mod metrics;
pub mod time;

pub mod intern_arena;
#[cfg(feature = "alloc")]
pub(crate) mod list_sort;
pub mod lru_list;
#[cfg(feature = "alloc")]
mod reserved_vec;
pub mod slot_index;

pub mod entity_id;
pub mod murmur3;
pub mod process;
pub mod start_time;

pub mod cgroup;
pub mod container;

pub mod os_release;
pub mod syscall;
pub mod system_info;

pub mod kallsyms;
pub mod symbols;

pub mod dns;

pub mod ip_reputation;
pub mod writable;

pub use error::{ErrorKind, StoreError};
pub use health::{HealthInfo, HealthStatus};
pub use metrics::{DataStoreMetrics, StoreMetrics};
pub use time::EpochNanos;
