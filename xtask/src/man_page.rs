//! `cargo xtask man [--out DIR]`: writes the `watchpost(1)` man page, generated from the CLI's
//! own definition (clap_mangen, through the binary's hidden `man` command so xtask stays free of
//! dependencies), to `target/man/watchpost.1` by default.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

pub fn run(options: &[String]) -> ExitCode {
    let out = match options {
        [] => PathBuf::from("target/man"),
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        _ => {
            eprintln!("xtask man: usage: cargo xtask man [--out DIR]");
            return ExitCode::from(2);
        }
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["run", "--locked", "--quiet", "-p", "watchpost", "--", "man"])
        .output();
    let page = match output {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => o.stdout,
        Ok(o) => {
            eprintln!(
                "xtask man: `watchpost man` failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("xtask man: running cargo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let file = out.join("watchpost.1");
    if let Err(e) = std::fs::create_dir_all(&out).and_then(|()| std::fs::write(&file, page)) {
        eprintln!("xtask man: writing {}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    println!("{}", file.display());
    ExitCode::SUCCESS
}
