//! `cargo xtask kernels`: the eBPF suite on other kernels than this machine's — Debian 12's
//! 6.1 LTS and the newest kernel the Debian mirror has, on x86_64 and aarch64 — under
//! full-system emulation (qemu, TCG), one kernel after the other (two emulated guests on two
//! cores gain nothing from running together).
//!
//! For each kernel: download the Debian package without installing it ([`packages`]), take
//! its image, config and a module ([`kernel_files`]), build the guest ([`initramfs`]) around the
//! release daemon and the check program of that architecture ([`binaries`]), boot it
//! ([`qemu`]), and read the check program's results from the console ([`console`]). What the
//! kernel's config says it lacks becomes the expected result (the daemon must name it and fall
//! back), never a silent pass. Any failed check fails the command, with the kernel, the check
//! and the daemon's own words.

mod arch;
mod binaries;
mod console;
mod exit0;
mod host;
mod initramfs;
mod kernel_files;
mod packages;
mod qemu;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use arch::Arch;
use packages::{Apt, KernelVersion};

/// The kernels the matrix runs by default: Debian 12's LTS series and the newest.
const DEFAULT_KERNELS: &[&str] = &["6.1", "newest"];
/// How long one guest may take before it is killed (emulated, on a shared machine).
const DEFAULT_TIMEOUT_SECONDS: u64 = 900;

const USAGE: &str = "cargo xtask kernels [--arch x86_64|aarch64]... [--kernel 6.1|newest|ABI]... \
                     [--timeout SECONDS]";

#[derive(Debug, PartialEq, Eq)]
struct Options {
    arches: Vec<Arch>,
    kernels: Vec<String>,
    timeout: Duration,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut arches = Vec::new();
    let mut kernels = Vec::new();
    let mut timeout = Duration::from_secs(DEFAULT_TIMEOUT_SECONDS);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value ({USAGE})"))
        };
        match flag.as_str() {
            "--arch" => {
                let arch = Arch::parse(value()?)?;
                if !arches.contains(&arch) {
                    arches.push(arch);
                }
            }
            "--kernel" => kernels.push(value()?.clone()),
            "--timeout" => {
                let v = value()?;
                let seconds: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("--timeout expects whole seconds > 0, got `{v}`"))?;
                timeout = Duration::from_secs(seconds);
            }
            other => return Err(format!("unexpected argument `{other}` ({USAGE})")),
        }
    }
    if arches.is_empty() {
        arches = Arch::ALL.to_vec();
    }
    if kernels.is_empty() {
        kernels = DEFAULT_KERNELS.iter().map(|k| k.to_string()).collect();
    }
    Ok(Options {
        arches,
        kernels,
        timeout,
    })
}

/// One kernel's result, for the table.
struct KernelRun {
    arch: Arch,
    release: String,
    outcome: Result<qemu::BootOutcome, String>,
}

impl KernelRun {
    fn passed(&self) -> bool {
        match &self.outcome {
            Ok(o) => {
                !o.timed_out
                    && o.report.done.is_some_and(|(_, failed)| failed == 0)
                    && o.report.failures().count() == 0
                    && !o.report.checks.is_empty()
            }
            Err(_) => false,
        }
    }

    fn row(&self) -> String {
        let (booted, btf, ebpf, checks, seconds) = match &self.outcome {
            Err(e) => (
                "not run".to_owned(),
                "?".to_owned(),
                "?".to_owned(),
                format!("error: {}", e.lines().next().unwrap_or("")),
                "-".to_owned(),
            ),
            Ok(o) => {
                let r = &o.report;
                let booted = match o.boot_seconds {
                    Some(s) => format!("yes ({s:.1} s to /init)"),
                    None => "no".to_owned(),
                };
                let btf = r
                    .fact("btf")
                    .map(|b| {
                        if b.starts_with("present") {
                            "yes"
                        } else {
                            "no"
                        }
                    })
                    .unwrap_or("?")
                    .to_owned();
                // One line for the table; a refusal's whole text (a verifier log) is in the
                // failed check's report.
                let ebpf = r.fact("ebpf").unwrap_or("?");
                let mut ebpf = ebpf.lines().next().unwrap_or("").to_owned();
                if ebpf.len() > 120 {
                    let cut = (0..=120)
                        .rev()
                        .find(|i| ebpf.is_char_boundary(*i))
                        .unwrap_or(0);
                    ebpf.truncate(cut);
                    ebpf.push('…');
                }
                let failed = r.failures().count();
                let expected = r.checks.iter().filter(|c| c.status == "expected").count();
                let mut checks = format!("{}/{} passed", r.checks.len() - failed, r.checks.len());
                if expected > 0 {
                    checks.push_str(&format!(" ({expected} as expected without a feature)"));
                }
                if r.done.is_none() {
                    checks.push_str(if o.timed_out {
                        ", guest timed out"
                    } else {
                        ", guest did not finish"
                    });
                }
                (booted, btf, ebpf, checks, format!("{:.0}", o.seconds))
            }
        };
        format!(
            "| {} | {} | {booted} | {btf} | {ebpf} | {checks} | {seconds} |",
            self.arch.name(),
            self.release
        )
    }

    fn failure_report(&self) -> Option<String> {
        if self.passed() {
            return None;
        }
        let head = format!("FAILED {} {}", self.arch.name(), self.release);
        Some(match &self.outcome {
            Err(e) => format!("{head}: {e}"),
            Ok(o) => {
                let mut text = String::new();
                for check in o.report.failures() {
                    text.push_str(&format!("{head}: {}: {}\n", check.name, check.detail));
                }
                if o.report.done.is_none() || o.report.checks.is_empty() {
                    let why = if o.timed_out {
                        "the guest was killed at the deadline"
                    } else if o.boot_seconds.is_none() {
                        "the guest never reached /init"
                    } else {
                        "the guest stopped before finishing its checks"
                    };
                    text.push_str(&format!(
                        "{head}: {why}; last console lines:\n  {}\n",
                        o.tail.join("\n  ")
                    ));
                }
                text.trim_end().to_owned()
            }
        })
    }
}

/// The expectations file for a kernel built with `config` (see
/// `tests/guest-check/src/expect.rs`): the features the eBPF collector needs that the kernel
/// lacks, each with a word the daemon's fallback message must contain.
fn expectations(config: &str, version: &KernelVersion, arch: Arch) -> String {
    let enabled = |option: &str| {
        config
            .lines()
            .any(|l| l == format!("{option}=y") || l == format!("{option}=m"))
    };
    let mut out = format!("kernel={}\n", version.release(arch));
    // The words are those of the loader's errors for each missing piece: the step that fails
    // (maps, a program's load) or the file that is missing.
    let features = [
        (
            "bpf_syscall",
            enabled("CONFIG_BPF_SYSCALL"),
            "creating maps",
        ),
        ("btf", enabled("CONFIG_DEBUG_INFO_BTF"), "BTF"),
        ("ringbuf", version.at_least(5, 8), "creating maps"),
        (
            "raw_tracepoints",
            enabled("CONFIG_BPF_EVENTS"),
            "sched_process_fork",
        ),
        (
            "cgroup_skb",
            enabled("CONFIG_CGROUP_BPF"),
            "dns_answers_ingress",
        ),
    ];
    for (feature, present, word) in features {
        if !present {
            out.push_str(&format!("lacks={feature}\t{word}\n"));
        }
    }
    out
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// The guest programs of one architecture, ready to pack.
struct GuestPrograms {
    daemon: PathBuf,
    check: PathBuf,
    libraries: Vec<binaries::GuestFile>,
    busybox: PathBuf,
}

fn prepare_programs(
    root: &Path,
    target: &Path,
    work: &Path,
    apt: &Apt,
    arch: Arch,
) -> Result<GuestPrograms, String> {
    let built = binaries::build(root, target, arch)?;
    let dir = work.join(arch.name()).join("bin");
    let daemon = binaries::stripped(&built[0], arch, &dir)?;
    let check = binaries::stripped(&built[1], arch, &dir)?;
    let libraries = binaries::libraries(&[daemon.clone(), check.clone()], arch)?;
    let deb = apt.download("busybox-static", arch, &work.join("debs"))?;
    let tree = work.join(arch.name()).join("busybox");
    let busybox = tree.join("bin/busybox");
    if !busybox.exists() {
        packages::extract(&deb, &["./bin/busybox"], &tree)?;
    }
    Ok(GuestPrograms {
        daemon,
        check,
        libraries,
        busybox,
    })
}

fn run_kernel(
    work: &Path,
    apt: &Apt,
    programs: &GuestPrograms,
    arch: Arch,
    version: &KernelVersion,
    timeout: Duration,
) -> Result<qemu::BootOutcome, String> {
    let release = version.release(arch);
    let dir = work.join(arch.name()).join(&version.abi);
    let deb = apt.download(&version.package(arch), arch, &work.join("debs"))?;
    let files = kernel_files::prepare(&deb, version, arch, &dir)?;
    let expect = expectations(&files.config, version, arch);
    let image = initramfs::build(&initramfs::GuestContents {
        arch,
        busybox: &programs.busybox,
        daemon: &programs.daemon,
        check: &programs.check,
        libraries: &programs.libraries,
        modules: &files.modules,
        expect: &expect,
        kernel_release: &release,
    })?;
    let initrd = dir.join("guest.cpio");
    std::fs::write(&initrd, image).map_err(|e| format!("{}: {e}", initrd.display()))?;
    eprintln!("xtask kernels: booting {} {release}", arch.name());
    qemu::boot(
        arch,
        &files.image,
        &initrd,
        &dir.join("console.log"),
        timeout,
    )
}

pub fn run(args: &[String]) -> ExitCode {
    let options = match parse_options(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xtask kernels: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    match run_matrix(&options) {
        Ok(runs) => {
            println!("| arch | kernel | booted | BTF | eBPF | checks | seconds |");
            println!("|---|---|---|---|---|---|---|");
            for r in &runs {
                println!("{}", r.row());
            }
            let failures: Vec<String> = runs.iter().filter_map(KernelRun::failure_report).collect();
            println!(
                "xtask kernels: {} kernel(s) in {:.0} s",
                runs.len(),
                started.elapsed().as_secs_f64()
            );
            if failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                for f in failures {
                    eprintln!("{f}");
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("xtask kernels: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_matrix(options: &Options) -> Result<Vec<KernelRun>, String> {
    host::ensure_packages()?;
    let root = workspace_root();
    let target = target_dir(&root);
    let work = target.join("kernels");
    let apt = Apt::new(&work.join("apt"))?;
    apt.update(false)?;

    // Resolve every kernel first: a selector that matches nothing fails before any build.
    let mut plan: Vec<(Arch, KernelVersion)> = Vec::new();
    let mut keep: Vec<(Arch, KernelVersion)> = Vec::new();
    for &arch in &options.arches {
        let available = apt.kernel_versions(arch)?;
        for selector in &options.kernels {
            let version = packages::select(&available, selector)?;
            if !plan.contains(&(arch, version.clone())) {
                plan.push((arch, version));
            }
        }
        // The newest of every series stays cached too (the other default kernel, say).
        for v in &available {
            if let Ok(newest) = packages::select(&available, &v.series())
                && !keep.contains(&(arch, newest.clone()))
            {
                keep.push((arch, newest));
            }
        }
    }
    keep.extend(plan.iter().cloned());
    prune_cache(&work, &options.arches, &keep);
    let mut runs = Vec::new();
    for &arch in &options.arches {
        let programs = match prepare_programs(&root, &target, &work, &apt, arch) {
            Ok(p) => p,
            Err(e) => {
                // Nothing of this architecture can run; say so per kernel.
                for (_, version) in plan.iter().filter(|(a, _)| *a == arch) {
                    runs.push(KernelRun {
                        arch,
                        release: version.release(arch),
                        outcome: Err(e.clone()),
                    });
                }
                continue;
            }
        };
        for (_, version) in plan.iter().filter(|(a, _)| *a == arch) {
            let outcome = run_kernel(&work, &apt, &programs, arch, version, options.timeout);
            let run = KernelRun {
                arch,
                release: version.release(arch),
                outcome,
            };
            eprintln!("{}", run.row());
            runs.push(run);
        }
    }
    Ok(runs)
}

/// Removes the cached kernels of `arches` (packages and extracted files) other than `keep` —
/// versions superseded on the mirror — so `target/kernels/` does not grow with every Debian
/// kernel update.
fn prune_cache(work: &Path, arches: &[Arch], keep: &[(Arch, KernelVersion)]) {
    let kept = |arch: Arch, deb_name: &str| {
        keep.iter()
            .any(|(a, v)| *a == arch && deb_name.starts_with(&format!("{}_", v.package(arch))))
    };
    if let Ok(entries) = std::fs::read_dir(work.join("debs")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let superseded = arches.iter().any(|arch| {
                name.starts_with("linux-image-")
                    && name.ends_with(&format!("_{}.deb", arch.debian()))
                    && !kept(*arch, &name)
            });
            if superseded {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    for &arch in arches {
        let Ok(entries) = std::fs::read_dir(work.join(arch.name())) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_kernel = KernelVersion::parse(&name).is_some();
            if is_kernel && !keep.iter().any(|(a, v)| *a == arch && v.abi == name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options() {
        let o = parse_options(&[]).unwrap();
        assert_eq!(o.arches, Arch::ALL.to_vec());
        assert_eq!(o.kernels, vec!["6.1", "newest"]);
        let o = parse_options(&strings(&[
            "--arch",
            "aarch64",
            "--kernel",
            "6.12",
            "--timeout",
            "60",
        ]))
        .unwrap();
        assert_eq!(o.arches, vec![Arch::Aarch64]);
        assert_eq!(o.kernels, vec!["6.12"]);
        assert_eq!(o.timeout, Duration::from_secs(60));
        assert!(parse_options(&strings(&["--arch"])).is_err());
        assert!(parse_options(&strings(&["--arch", "mips"])).is_err());
        assert!(parse_options(&strings(&["--timeout", "0"])).is_err());
        assert!(parse_options(&strings(&["--bogus"])).is_err());
    }

    #[test]
    fn prune_keeps_what_is_listed_and_other_architectures() {
        let work = std::env::temp_dir().join(format!("xtask-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        let debs = work.join("debs");
        std::fs::create_dir_all(&debs).unwrap();
        for name in [
            "linux-image-6.1.0-56-amd64_6.1.190-1_amd64.deb",
            "linux-image-6.1.0-57-amd64_6.1.192-3_amd64.deb",
            "linux-image-6.1.0-56-arm64_6.1.190-1_arm64.deb",
            "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb",
        ] {
            std::fs::write(debs.join(name), "").unwrap();
        }
        for dir in ["x86_64/6.1.0-56", "x86_64/6.1.0-57", "x86_64/bin"] {
            std::fs::create_dir_all(work.join(dir)).unwrap();
        }
        let keep = [(Arch::X86_64, KernelVersion::parse("6.1.0-57").unwrap())];
        prune_cache(&work, &[Arch::X86_64], &keep);
        let left = |p: &str| work.join(p).exists();
        assert!(!left("debs/linux-image-6.1.0-56-amd64_6.1.190-1_amd64.deb"));
        assert!(left("debs/linux-image-6.1.0-57-amd64_6.1.192-3_amd64.deb"));
        assert!(
            left("debs/linux-image-6.1.0-56-arm64_6.1.190-1_arm64.deb"),
            "not asked about"
        );
        assert!(left(
            "debs/busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb"
        ));
        assert!(!left("x86_64/6.1.0-56"));
        assert!(left("x86_64/6.1.0-57") && left("x86_64/bin"));
        let _ = std::fs::remove_dir_all(&work);
    }

    fn run_with(lines: &[&str], timed_out: bool) -> KernelRun {
        let mut report = console::GuestReport::default();
        for line in lines {
            report.take_line(line);
        }
        KernelRun {
            arch: Arch::Aarch64,
            release: "6.1.0-57-arm64".into(),
            outcome: Ok(qemu::BootOutcome {
                report,
                boot_seconds: Some(3.0),
                seconds: 17.0,
                timed_out,
                tail: vec!["[ 9.0] last words".into()],
            }),
        }
    }

    #[test]
    fn a_failed_check_names_kernel_check_and_the_daemons_words() {
        let run = run_with(
            &[
                "WPCHECK\tfact\tebpf\tloaded in 900 ms",
                "WPCHECK\tcheck\tDNS answer captured\tfail\tquery dns x: not_found\\ndaemon \
                 warnings:\\nWARN ring full",
                "WPCHECK\tcheck\tclean exit on SIGTERM\tpass\texit 0",
                "WPCHECK\tdone\t1\t1",
            ],
            false,
        );
        assert!(!run.passed());
        let report = run.failure_report().unwrap();
        assert!(
            report.starts_with("FAILED aarch64 6.1.0-57-arm64: DNS answer captured: query dns")
        );
        assert!(report.contains("WARN ring full"));
        assert!(run.row().contains("1/2 passed"));
    }

    #[test]
    fn a_guest_without_its_done_line_fails_with_the_console_tail() {
        let run = run_with(&["WPCHECK\tcheck\tkernel booted\tpass\tx"], true);
        assert!(!run.passed());
        let report = run.failure_report().unwrap();
        assert!(report.contains("killed at the deadline") && report.contains("last words"));
        let expected_only = run_with(
            &[
                "WPCHECK\tcheck\tburst\texpected\tneeds eBPF; the daemon said: no BTF",
                "WPCHECK\tdone\t1\t0",
            ],
            false,
        );
        assert!(
            expected_only.passed(),
            "an expected result is not a failure"
        );
        assert!(
            expected_only
                .row()
                .contains("1 as expected without a feature")
        );
    }

    #[test]
    fn expectations_follow_the_kernel_config() {
        let v = KernelVersion::parse("6.1.0-57").unwrap();
        let full = "CONFIG_BPF_SYSCALL=y\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_BPF_EVENTS=y\n\
                    CONFIG_CGROUP_BPF=y\n";
        assert_eq!(
            expectations(full, &v, Arch::X86_64),
            "kernel=6.1.0-57-amd64\n"
        );
        let no_btf = "CONFIG_BPF_SYSCALL=y\n# CONFIG_DEBUG_INFO_BTF is not set\n\
                      CONFIG_BPF_EVENTS=y\nCONFIG_CGROUP_BPF=y\n";
        assert_eq!(
            expectations(no_btf, &v, Arch::Aarch64),
            "kernel=6.1.0-57-arm64\nlacks=btf\tBTF\n"
        );
        let old = KernelVersion::parse("5.4.0-1").unwrap();
        assert!(expectations(full, &old, Arch::X86_64).contains("lacks=ringbuf"));
    }
}
