//! The executable is the file the kernel executed, against a real daemon on the real kernel
//! (root): each case starts a real process and checks `query process --pid` — exe (resolved),
//! invoked path, flags, name:
//! - a shell started through a symlink with another name;
//! - a relative path with `..`;
//! - a memfd (fileless) exec;
//! - an exec of a file already unlinked;
//! - a 4,000-byte path;
//! - a `prctl(PR_SET_NAME)` rename (perl sets `$0` with it).
//!
//! `shell_from_service` fires for a shell started through a symlink with another name under a
//! service; and `/proc` scans (eBPF off) report the same memfd and deleted flags.

mod support;

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Daemon, eventually, temp_dir};

const DEADLINE: Duration = Duration::from_secs(30);

/// Kills the children and removes the directory on every exit path.
struct Cleanup {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Spawns, retrying while a concurrent fork still holds a freshly written binary open for
/// writing ("text file busy").
fn spawn(command: &mut Command) -> Child {
    for _ in 0..200 {
        match command.spawn() {
            Ok(child) => return child,
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("spawning {command:?}: {e}"),
        }
    }
    panic!("{command:?} stayed busy");
}

/// `query process --pid` once `check` holds for it (the exec may still be on its way).
fn process_when(
    daemon: &Daemon,
    pid: u32,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let pid = pid.to_string();
    let mut last = serde_json::Value::Null;
    let seen = eventually(DEADLINE, || {
        let out = daemon.query(&["process", "--pid", &pid, "--json"]);
        if out.code != Some(0) {
            return false;
        }
        last = serde_json::from_str(out.stdout.trim()).unwrap();
        check(&last)
    });
    assert!(seen, "process {pid} never matched; last answer: {last}");
    last
}

fn canonical(path: &str) -> String {
    std::fs::canonicalize(path)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn each_exec_is_recorded_as_the_file_the_kernel_ran() {
    if !support::ebpf_test_may_run(
        rustix::process::geteuid().is_root(),
        "exec records from the kernel (eBPF, root)",
    ) {
        return;
    }
    let daemon = Daemon::start("exe", "");
    let dir = temp_dir("exe-cases");
    let mut cleanup = Cleanup {
        children: Vec::new(),
        dir: dir.clone(),
    };
    let shell = canonical("/bin/sh");

    // 1. A shell through a symlink with another name (kept alive reading its stdin).
    let link = dir.join("innocent");
    std::os::unix::fs::symlink("/bin/sh", &link).unwrap();
    let child = spawn(
        Command::new(&link)
            .args(["-c", "read x"])
            .stdin(Stdio::piped()),
    );
    let p = process_when(&daemon, child.id(), |p| p["invoked_path"] != "");
    cleanup.children.push(child);
    assert_eq!(p["exe"], shell.as_str(), "{p}");
    assert_eq!(p["invoked_path"], link.to_str().unwrap(), "{p}");
    assert_eq!(p["name"], "innocent", "{p}");
    assert_eq!(p["exe_deleted"], false);

    // 2. A relative path with `..`.
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    std::fs::create_dir_all(dir.join("c")).unwrap();
    let target = dir.join("c/mysleep");
    std::fs::copy("/bin/sleep", &target).unwrap();
    let child = spawn(
        Command::new("../../c/mysleep")
            .arg("60")
            .current_dir(dir.join("a/b")),
    );
    let p = process_when(&daemon, child.id(), |p| p["invoked_path"] != "");
    cleanup.children.push(child);
    assert_eq!(p["exe"], target.to_str().unwrap(), "{p}");
    assert_eq!(p["invoked_path"], "../../c/mysleep", "{p}");
    assert_eq!(p["name"], "mysleep");

    // 3. A memfd: no file on any file system.
    let memfd: OwnedFd =
        rustix::fs::memfd_create("payload", rustix::fs::MemfdFlags::empty()).unwrap();
    let mut file = std::fs::File::from(memfd);
    file.write_all(&std::fs::read("/bin/sleep").unwrap())
        .unwrap();
    let fd_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let child = spawn(Command::new(&fd_path).arg("60"));
    drop(file);
    let p = process_when(&daemon, child.id(), |p| p["exe_memfd"] == true);
    cleanup.children.push(child);
    assert_eq!(p["exe"], "/memfd:payload", "{p}");
    assert_eq!(p["memfd_name"], "payload", "{p}");
    assert_eq!(p["exe_deleted"], true, "{p}");
    assert_eq!(p["invoked_path"], fd_path.as_str(), "{p}");

    // 4. A file unlinked before it was executed (run through its descriptor).
    let doomed = dir.join("doomed");
    std::fs::copy("/bin/sleep", &doomed).unwrap();
    let handle = std::fs::File::open(&doomed).unwrap();
    std::fs::remove_file(&doomed).unwrap();
    let fd_path = format!("/proc/self/fd/{}", handle.as_raw_fd());
    let child = spawn(Command::new(&fd_path).arg("60"));
    drop(handle);
    let p = process_when(&daemon, child.id(), |p| p["exe_deleted"] == true);
    cleanup.children.push(child);
    assert_eq!(p["exe"], doomed.to_str().unwrap(), "{p}");
    assert_eq!(p["exe_memfd"], false, "{p}");

    // 5. A 4,000-byte path.
    let mut deep = dir.clone();
    let component = "d".repeat(200);
    while deep.as_os_str().len() < 4_000 - 210 {
        deep.push(&component);
    }
    std::fs::create_dir_all(&deep).unwrap();
    let name_len = 4_000 - deep.as_os_str().len() - 1;
    let long = deep.join("s".repeat(name_len));
    assert_eq!(long.as_os_str().len(), 4_000);
    std::fs::copy("/bin/sleep", &long).unwrap();
    let child = spawn(Command::new(&long).arg("60"));
    let p = process_when(&daemon, child.id(), |p| p["invoked_path"] != "");
    cleanup.children.push(child);
    assert_eq!(p["exe"], long.to_str().unwrap(), "{p}");
    assert_eq!(p["invoked_path"], long.to_str().unwrap(), "{p}");
    assert_eq!(p["exe_truncated"], false, "{p}");

    // 6. A rename with prctl(PR_SET_NAME) (perl assigns $0 with it on Linux).
    let new_name = format!("rn{}", std::process::id() % 100_000);
    let script = format!("$0 = '{new_name}'; sleep 60");
    let child = spawn(Command::new("perl").args(["-e", &script]));
    let p = process_when(&daemon, child.id(), |p| p["name"] == new_name.as_str());
    cleanup.children.push(child);
    assert_eq!(p["exe"], canonical("/usr/bin/perl").as_str(), "{p}");
    // And the human output says all of it.
    let human = daemon.query(&["process", "--pid", &cleanup.children[2].id().to_string()]);
    assert!(
        human.stdout.contains("memfd (payload), deleted"),
        "{}",
        human.stdout
    );
}

/// The detections printed so far, parsed.
fn detections(daemon: &Daemon) -> Vec<serde_json::Value> {
    daemon
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn a_symlinked_shell_under_a_service_is_still_a_shell() {
    if !support::ebpf_test_may_run(
        rustix::process::geteuid().is_root(),
        "shell detection from the kernel's exec events (eBPF, root)",
    ) {
        return;
    }
    let daemon = Daemon::start("exe-shell", "");
    let dir = temp_dir("exe-nginx");
    let mut cleanup = Cleanup {
        children: Vec::new(),
        dir: dir.clone(),
    };
    let service = dir.join("nginx");
    std::fs::copy("/bin/sh", &service).unwrap();
    let disguised = dir.join("healthcheck");
    std::os::unix::fs::symlink("/bin/sh", &disguised).unwrap();
    // `nginx` runs the disguised shell, which stays alive (`; :` keeps it from exec'ing sleep).
    let script = format!("{} -c 'sleep 60; :'; :", disguised.display());
    let nginx = spawn(Command::new(&service).args(["-c", &script]));
    let nginx_pid = nginx.id();
    cleanup.children.push(nginx);
    let shell = canonical("/bin/sh");
    let reported = eventually(DEADLINE, || {
        detections(&daemon).iter().any(|d| {
            d["detector"] == "shell_from_service"
                && d["data"]["service_pid"] == nginx_pid
                && d["data"]["shell"] == "healthcheck"
        })
    });
    assert!(
        reported,
        "no detection; stdout:\n{}\nstderr:\n{}",
        daemon.stdout(),
        daemon.stderr()
    );
    let d = detections(&daemon)
        .into_iter()
        .find(|d| d["data"]["shell"] == "healthcheck")
        .unwrap();
    assert_eq!(d["data"]["shell_exe"], shell.as_str(), "{d}");
    assert_eq!(
        d["data"]["shell_invoked_as"],
        disguised.to_str().unwrap(),
        "{d}"
    );
}

#[test]
fn proc_scans_report_the_same_flags() {
    let daemon = Daemon::start("exe-scan", "[collector]\nebpf = \"off\"\n");
    let dir = temp_dir("exe-scan");
    let mut cleanup = Cleanup {
        children: Vec::new(),
        dir: dir.clone(),
    };
    let memfd: OwnedFd =
        rustix::fs::memfd_create("scanned", rustix::fs::MemfdFlags::empty()).unwrap();
    let mut file = std::fs::File::from(memfd);
    file.write_all(&std::fs::read("/bin/sleep").unwrap())
        .unwrap();
    let child = spawn(Command::new(format!("/proc/self/fd/{}", file.as_raw_fd())).arg("60"));
    drop(file);
    let p = process_when(&daemon, child.id(), |p| p["exe_memfd"] == true);
    cleanup.children.push(child);
    assert_eq!(p["exe"], "/memfd:scanned", "{p}");
    assert_eq!(p["memfd_name"], "scanned", "{p}");
    assert_eq!(p["exe_deleted"], true, "{p}");
    assert_eq!(p["invoked_path"], "", "a scan cannot know it: {p}");

    let doomed = dir.join("doomed (deleted)");
    std::fs::copy("/bin/sleep", &doomed).unwrap();
    let child = spawn(Command::new(&doomed).arg("60"));
    let pid = child.id();
    cleanup.children.push(child);
    let p = process_when(&daemon, pid, |p| p["exe"] == doomed.to_str().unwrap());
    assert_eq!(p["exe_deleted"], false, "a name is not a flag: {p}");
    std::fs::remove_file(&doomed).unwrap();
    // A new process's scan sees it deleted (the store keeps the first path of a process, so a
    // second process is started from a fresh copy and then unlinked).
    let again = dir.join("again");
    std::fs::copy("/bin/sleep", &again).unwrap();
    let handle = std::fs::File::open(&again).unwrap();
    std::fs::remove_file(&again).unwrap();
    let child = spawn(Command::new(format!("/proc/self/fd/{}", handle.as_raw_fd())).arg("60"));
    drop(handle);
    let p = process_when(&daemon, child.id(), |p| p["exe_deleted"] == true);
    cleanup.children.push(child);
    assert_eq!(p["exe"], again.to_str().unwrap(), "{p}");
    assert_eq!(p["exe_memfd"], false, "{p}");
}
