//! `cargo xtask deb [--test]`: Debian packages of the shipped binaries (`target/dist/`,
//! `watchpost_<version>-1_{amd64,arm64}.deb`) made by cargo-deb from the `dist-release` builds,
//! each checked (architecture field, contents, the packaged binary's architecture).
//!
//! `--test` (root) then treats this machine as a target: installs the amd64 package with
//! `dpkg -i`, checks what it installed (binary, conffile, unit, account), verifies the unit with
//! `systemd-analyze verify`, runs the installed binary with the installed configuration the way
//! the unit runs it (user `watchpost`, exactly the unit's capabilities, `NOTIFY_SOCKET`), queries
//! it as root and as a member of the `watchpost` group, stops it, then `dpkg -r` (the conffile
//! stays) and `dpkg -P` (nothing of the package stays but the `watchpost` account, which Debian
//! packages keep on purpose). One line per check.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::dist::{self, Arch};

/// The package name (`targets/watchpost/Cargo.toml`, `[package.metadata.deb]`).
const PACKAGE: &str = "watchpost";
/// Where the package installs the unit.
const UNIT_PATHS: &[&str] = &[
    "/lib/systemd/system/watchpost.service",
    "/usr/lib/systemd/system/watchpost.service",
];
const CONFFILE: &str = "/etc/watchpost/watchpost.toml";
const BINARY: &str = "/usr/bin/watchpost";
const STATE_DIR: &str = "/var/lib/watchpost";
const RUNTIME_DIR: &str = "/run/watchpost";
const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/watchpost.service";

pub fn run(options: &[String]) -> ExitCode {
    let test = match options {
        [] => false,
        [flag] if flag == "--test" => true,
        other => {
            eprintln!("xtask deb: unexpected arguments {other:?} (expected: [--test])");
            return ExitCode::from(2);
        }
    };
    let result = build_packages().and_then(|packages| {
        if test {
            let amd64 = packages
                .iter()
                .find(|(arch, _)| *arch == Arch::X86_64)
                .map(|(_, path)| path.clone())
                .ok_or("no amd64 package")?;
            install_test(&amd64)
        } else {
            Ok(())
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask deb: {message}");
            ExitCode::FAILURE
        }
    }
}

fn say(line: &str) {
    eprintln!("xtask deb: {line}");
}

/// Runs a command, returning its stdout; an error names it and quotes its stderr.
fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check(condition: bool, what: &str) -> Result<(), String> {
    if condition {
        say(&format!("ok: {what}"));
        Ok(())
    } else {
        Err(format!("FAILED: {what}"))
    }
}

/// Builds the binaries, then one package per architecture; checks each.
fn build_packages() -> Result<Vec<(Arch, PathBuf)>, String> {
    dist::build_all()?;
    let out_dir = dist::target_dir().join("dist");
    let mut packages = Vec::new();
    for arch in Arch::ALL {
        let mut args = vec![
            "deb",
            "-p",
            PACKAGE,
            "--no-build",
            "--no-strip",
            "--profile",
            dist::PROFILE,
            "--output",
        ];
        let out = out_dir.to_str().ok_or("target directory is not UTF-8")?;
        args.push(out);
        if arch == Arch::Aarch64 {
            args.extend(["--target", arch.triple()]);
        }
        say(&format!("{}: cargo {}", arch.debian(), args.join(" ")));
        let printed = output(env!("CARGO"), &args)?;
        let path = PathBuf::from(
            printed
                .lines()
                .rev()
                .find(|l| l.trim_end().ends_with(".deb"))
                .ok_or_else(|| format!("cargo deb printed no package path: {printed}"))?
                .trim(),
        );
        check_package(arch, &path)?;
        packages.push((arch, path));
    }
    Ok(packages)
}

/// The package's architecture field, its file list, and its binary's architecture.
fn check_package(arch: Arch, deb: &Path) -> Result<(), String> {
    let deb_str = deb.to_str().ok_or("package path is not UTF-8")?;
    let field = output("dpkg-deb", &["--field", deb_str, "Architecture"])?;
    check(
        field.trim() == arch.debian(),
        &format!("{}: Architecture: {}", deb.display(), field.trim()),
    )?;
    let contents = output("dpkg-deb", &["--contents", deb_str])?;
    for wanted in [
        "./usr/bin/watchpost",
        "./etc/watchpost/watchpost.toml",
        "/systemd/system/watchpost.service",
    ] {
        check(
            contents.lines().any(|l| l.trim_end().ends_with(wanted)),
            &format!("{}: contains {wanted}", arch.debian()),
        )?;
    }
    let scratch = dist::target_dir()
        .join("dist")
        .join(format!("extract-{}", arch.debian()));
    let _ = std::fs::remove_dir_all(&scratch);
    let scratch_str = scratch.to_str().ok_or("path is not UTF-8")?;
    output("dpkg-deb", &["--extract", deb_str, scratch_str])?;
    let binary = scratch.join("usr/bin/watchpost");
    let file = output("file", &["-b", binary.to_str().ok_or("path is not UTF-8")?])?;
    let expected = match arch {
        Arch::X86_64 => "x86-64",
        Arch::Aarch64 => "ARM aarch64",
    };
    check(
        file.contains(expected),
        &format!("{}: packaged binary is {}", arch.debian(), file.trim()),
    )?;
    let _ = std::fs::remove_dir_all(&scratch);
    let size = std::fs::metadata(deb).map(|m| m.len()).unwrap_or(0);
    println!("{}: {size} bytes", deb.display());
    Ok(())
}

/// What the install test leaves to clean up if it fails half-way.
struct Cleanup {
    daemon: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(RUNTIME_DIR);
        if package_status().is_some() {
            say("cleaning up: dpkg -P watchpost");
            let _ = Command::new("dpkg").args(["-P", PACKAGE]).status();
        }
    }
}

/// `dpkg-query`'s status of the package, `None` when dpkg does not know it.
fn package_status() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", PACKAGE])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !status.is_empty() && status != "unknown ok not-installed")
        .then_some(status)
}

fn install_test(deb: &Path) -> Result<(), String> {
    if !crate::install::is_root() {
        if std::env::var_os("WATCHPOST_SKIP_PRIVILEGED_TESTS").is_some_and(|v| v == "1") {
            say("package install test skipped (not root; WATCHPOST_SKIP_PRIVILEGED_TESTS=1)");
            return Ok(());
        }
        return Err(
            "the package install test needs root (or WATCHPOST_SKIP_PRIVILEGED_TESTS=1)".into(),
        );
    }
    if let Some(status) = package_status() {
        say(&format!(
            "watchpost is already known to dpkg ({status}): purging it first"
        ));
        output("dpkg", &["-P", PACKAGE])?;
    }
    let mut cleanup = Cleanup { daemon: None };
    let deb_str = deb.to_str().ok_or("package path is not UTF-8")?;

    say(&format!("dpkg -i {deb_str}"));
    output("dpkg", &["-i", deb_str])?;
    check(
        package_status().as_deref() == Some("install ok installed"),
        "dpkg says installed",
    )?;
    let files: Vec<String> = output("dpkg", &["-L", PACKAGE])?
        .lines()
        .map(str::to_owned)
        .collect();
    let installed_files: Vec<&String> = files
        .iter()
        .filter(|f| Path::new(f.as_str()).is_file())
        .collect();
    check(
        is_executable(Path::new(BINARY)),
        "the binary is installed and executable",
    )?;
    let unit = UNIT_PATHS
        .iter()
        .find(|p| Path::new(p).is_file())
        .ok_or("the systemd unit is not installed")?;
    check(true, &format!("the unit is installed at {unit}"))?;
    let conffiles = output("dpkg-query", &["-W", "-f", "${Conffiles}", PACKAGE])?;
    check(
        conffiles.contains(CONFFILE),
        "the configuration is a conffile",
    )?;
    check(
        Command::new("getent")
            .args(["passwd", "watchpost"])
            .output()
            .is_ok_and(|o| o.status.success())
            && Command::new("getent")
                .args(["group", "watchpost"])
                .output()
                .is_ok_and(|o| o.status.success()),
        "the watchpost user and group exist",
    )?;
    check(
        Path::new(WANTS_LINK).exists() || Path::new(WANTS_LINK).is_symlink(),
        "the unit is enabled (multi-user.target.wants)",
    )?;
    output("systemd-analyze", &["verify", unit])?;
    check(true, &format!("systemd-analyze verify {unit}"))?;
    output(BINARY, &["config", "--check", CONFFILE])?;
    check(
        true,
        "the installed configuration passes `watchpost config --check`",
    )?;

    // Run it as the unit does: systemd would create these two directories for the service.
    let unit_text = std::fs::read_to_string(unit).map_err(|e| e.to_string())?;
    let caps = ambient_capabilities(&unit_text)?;
    output(
        "install",
        &[
            "-d",
            "-o",
            "watchpost",
            "-g",
            "watchpost",
            "-m",
            "0750",
            RUNTIME_DIR,
        ],
    )?;
    let state_existed = Path::new(STATE_DIR).exists();
    output(
        "install",
        &[
            "-d",
            "-o",
            "watchpost",
            "-g",
            "watchpost",
            "-m",
            "0700",
            STATE_DIR,
        ],
    )?;
    let notify_path = std::env::temp_dir().join(format!("watchpost-notify-{}", std::process::id()));
    let _ = std::fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path).map_err(|e| format!("notify socket: {e}"))?;
    // Let the daemon (user watchpost) send to it.
    output("chmod", &["0666", notify_path.to_str().ok_or("path")?])?;
    notify
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let cap_list = caps
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(",");
    let log = dist::target_dir()
        .join("dist")
        .join("package-test-daemon.log");
    say(&format!(
        "running {BINARY} as watchpost with {} (log {})",
        caps.join(" "),
        log.display()
    ));
    let started = Instant::now();
    let child = Command::new("setpriv")
        .args([
            "--reuid=watchpost",
            "--regid=watchpost",
            "--init-groups",
            &format!("--inh-caps=-all,{cap_list}"),
            &format!("--ambient-caps=-all,{cap_list}"),
            &format!("--bounding-set=-all,{cap_list}"),
            "--no-new-privs",
            BINARY,
            "run",
            "--config",
            CONFFILE,
        ])
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot run setpriv: {e}"))?;
    let pid = child.id();
    cleanup.daemon = Some(child);
    let ready = wait_for_notification(&notify, "READY=1");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    check(
        ready.is_some(),
        &format!(
            "READY=1 after {:.0?} ({})",
            started.elapsed(),
            ready.clone().unwrap_or_default().replace('\n', " ")
        ),
    )
    .map_err(|e| format!("{e}\n{}", log_text()))?;
    let health = output(BINARY, &["query", "--config", CONFFILE, "health"])?;
    check(
        health.contains("collecting with eBPF"),
        "queried right after READY=1 as root: collecting with eBPF",
    )
    .map_err(|e| format!("{e}\n{health}\n{}", log_text()))?;
    output(
        BINARY,
        &["query", "--config", CONFFILE, "process", "--pid", "1"],
    )?;
    check(true, "query process --pid 1")?;
    let member = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--groups=watchpost",
            BINARY,
            "query",
            "--config",
            CONFFILE,
            "stores",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    check(
        member.status.success(),
        "a member of the watchpost group may query",
    )?;
    let stranger = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            BINARY,
            "query",
            "--config",
            CONFFILE,
            "stores",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    check(
        stranger.status.code() == Some(2),
        "a user outside the group may not",
    )?;
    output("kill", &["-TERM", &pid.to_string()])?;
    let stopping = wait_for_notification(&notify, "STOPPING=1");
    let status = wait_exit(
        cleanup.daemon.as_mut().expect("daemon"),
        Duration::from_secs(30),
    );
    cleanup.daemon = None;
    check(
        stopping.is_some() && status == Some(0),
        &format!("SIGTERM: STOPPING=1 sent, exit status {status:?}"),
    )
    .map_err(|e| format!("{e}\n{}", log_text()))?;
    let _ = std::fs::remove_file(&notify_path);
    // systemd removes the RuntimeDirectory when the service stops.
    let _ = std::fs::remove_dir_all(RUNTIME_DIR);
    check(
        state_existed || Path::new(STATE_DIR).is_dir(),
        "the state directory is in place",
    )?;

    say("dpkg -r watchpost");
    output("dpkg", &["-r", PACKAGE])?;
    check(
        package_status().as_deref() == Some("deinstall ok config-files"),
        "removed: dpkg keeps only the configuration",
    )?;
    check(!Path::new(BINARY).exists(), "the binary is gone")?;
    check(!Path::new(unit).exists(), "the unit is gone")?;
    check(Path::new(CONFFILE).is_file(), "the conffile stays")?;

    say("dpkg -P watchpost");
    output("dpkg", &["-P", PACKAGE])?;
    check(
        package_status().is_none(),
        "purged: dpkg no longer knows it",
    )?;
    let left: Vec<&&String> = installed_files
        .iter()
        .filter(|f| Path::new(f.as_str()).exists())
        .collect();
    check(
        left.is_empty(),
        &format!("no packaged file is left ({left:?})"),
    )?;
    for gone in [
        "/etc/watchpost",
        STATE_DIR,
        WANTS_LINK,
        "/usr/share/doc/watchpost",
    ] {
        check(
            !Path::new(gone).exists() && !Path::new(gone).is_symlink(),
            &format!("{gone} is gone"),
        )?;
    }
    say("left on purpose: the watchpost user and group (Debian keeps system accounts)");
    Ok(())
}

/// The capabilities in the unit's `AmbientCapabilities=` lines.
fn ambient_capabilities(unit: &str) -> Result<Vec<String>, String> {
    let caps: Vec<String> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("AmbientCapabilities="))
        .flat_map(|v| v.split_whitespace().map(str::to_owned))
        .collect();
    if caps.is_empty() || caps.iter().any(|c| !c.starts_with("CAP_")) {
        return Err(format!(
            "unexpected AmbientCapabilities in the unit: {caps:?}"
        ));
    }
    Ok(caps)
}

/// The first datagram containing `wanted` (`None` after the socket's read timeout).
fn wait_for_notification(socket: &UnixDatagram, wanted: &str) -> Option<String> {
    let mut buffer = [0u8; 4096];
    loop {
        let n = socket.recv(&mut buffer).ok()?;
        let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
        if message.lines().any(|l| l == wanted) {
            return Some(message);
        }
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_units_capabilities_are_read_from_the_unit() {
        let unit = std::fs::read_to_string(
            crate::workspace_root().join("targets/watchpost/packaging/watchpost.service"),
        )
        .unwrap();
        let caps = ambient_capabilities(&unit).unwrap();
        assert!(caps.contains(&"CAP_BPF".to_owned()), "{caps:?}");
        // The bounding set names exactly the same capabilities.
        let bounding: Vec<&str> = unit
            .lines()
            .filter_map(|l| l.trim().strip_prefix("CapabilityBoundingSet="))
            .flat_map(str::split_whitespace)
            .collect();
        assert_eq!(bounding, caps);
        assert!(ambient_capabilities("AmbientCapabilities=bpf\n").is_err());
    }
}
