//! Where the daemon's memory goes: the bytes each store and part reserves or may hold at most
//! ([`ledger`], shown by `query metrics`), the estimate of the whole for a configuration
//! ([`budget`], printed by `watchpost config --check`), and the process's resident size
//! ([`rss`]).

pub mod budget;
pub mod ledger;
pub mod rss;
pub mod trim;
