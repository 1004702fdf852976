//! The watchpost daemon and query CLI. (being written)

fn main() {}
