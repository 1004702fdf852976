//! What the daemon reads once at start (and reloads on change): the system facts and the kernel
//! symbols. The process tree's bootstrap scan is the collector's first pass ([`crate::collector`]).

pub mod symbols;
pub mod system;
