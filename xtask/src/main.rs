//! `cargo xtask`: the project's build helper (one quick-to-compile binary, no dependencies).

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        _ => {
            eprintln!("usage: cargo xtask <command>");
            std::process::exit(2);
        }
    }
}
