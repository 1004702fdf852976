//! The `watchpost` binary: `run` (the daemon), `query` (the CLI), `config`.

fn main() {}
