//! `cargo xtask`: the project's build helper (one quick-to-compile binary, no dependencies).

fn main() {
    let command = std::env::args().nth(1);
    eprintln!("usage: cargo xtask <command> (got {command:?})");
    std::process::exit(2);
}
