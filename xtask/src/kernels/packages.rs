//! Debian kernel and busybox packages, downloaded without installing them.
//!
//! apt runs with a configuration of its own under `target/kernels/apt/` (its own sources,
//! package lists for amd64 and arm64, and an empty dpkg status): the host's apt state and dpkg
//! architectures stay untouched, and no root is needed. The lists are refreshed when a day old
//! or when a download fails (Debian drops superseded kernel packages from the mirror).
//!
//! Kernel versions: `6.1` means the newest `6.1.0-N` (Debian 12's LTS kernel), `newest` the
//! highest version the mirror has (6.12 today); an exact ABI name (`6.1.0-57`,
//! `6.12.118+deb12`) is taken as is.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::arch::Arch;
use super::host;

/// Debian's mirror; `WATCHPOST_DEBIAN_MIRROR` overrides it.
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Debian's security archive; `WATCHPOST_DEBIAN_SECURITY_MIRROR` overrides it.
const DEFAULT_SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
/// The Debian release the kernels come from.
const SUITE: &str = "bookworm";
/// The archive keyring the host already has.
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Lists older than this are refreshed.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A kernel package's version, ordered: `(major, minor, patch, debian abi)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    key: (u32, u32, u32, u32),
    /// The ABI name as in the package name: `6.1.0-57`, `6.12.118+deb12`.
    pub abi: String,
}

impl KernelVersion {
    /// Parses an ABI name; `None` for anything else (cloud/rt flavours, meta packages).
    pub fn parse(abi: &str) -> Option<KernelVersion> {
        let split = abi.find(['-', '+'])?;
        let (upstream, rest) = abi.split_at(split);
        let mut numbers = upstream.split('.').map(|n| n.parse::<u32>().ok());
        let (major, minor, patch) = (numbers.next()??, numbers.next()??, numbers.next()??);
        if numbers.next().is_some() {
            return None;
        }
        let debian = if let Some(n) = rest.strip_prefix('-') {
            n.parse::<u32>().ok()?
        } else {
            let deb = rest.strip_prefix("+deb")?;
            deb.parse::<u32>().ok()?;
            0
        };
        Some(KernelVersion {
            key: (major, minor, patch, debian),
            abi: abi.to_owned(),
        })
    }

    /// `major.minor`.
    pub fn series(&self) -> String {
        format!("{}.{}", self.key.0, self.key.1)
    }

    /// Whether this kernel is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.key.0, self.key.1) >= (major, minor)
    }

    /// The release `uname -r` shows on `arch`.
    pub fn release(&self, arch: Arch) -> String {
        format!("{}-{}", self.abi, arch.debian())
    }

    /// The image package's name.
    pub fn package(&self, arch: Arch) -> String {
        format!("linux-image-{}", self.release(arch))
    }
}

/// The kernel ABI named by a package, if it is a plain `linux-image-<abi>-<arch>` image.
fn abi_of(package: &str, arch: Arch) -> Option<KernelVersion> {
    let abi = package
        .strip_prefix("linux-image-")?
        .strip_suffix(&format!("-{}", arch.debian()))?;
    KernelVersion::parse(abi)
}

/// Picks the kernel `selector` names among `available` (see the module docs).
pub fn select(available: &[KernelVersion], selector: &str) -> Result<KernelVersion, String> {
    let newest_of = |filter: &dyn Fn(&KernelVersion) -> bool| {
        available.iter().filter(|v| filter(v)).max().cloned()
    };
    let found = if selector == "newest" {
        newest_of(&|_| true)
    } else if let Some(exact) = KernelVersion::parse(selector) {
        available.iter().find(|v| **v == exact).cloned()
    } else {
        newest_of(&|v| v.series() == selector)
    };
    found.ok_or_else(|| {
        let mut names: Vec<&str> = available.iter().map(|v| v.abi.as_str()).collect();
        names.sort();
        format!(
            "no Debian kernel matches `{selector}` (the mirror has: {})",
            names.join(", ")
        )
    })
}

/// apt with its own state under `dir`.
pub struct Apt {
    dir: PathBuf,
}

impl Apt {
    /// Prepares the configuration (sources, empty status) under `dir`.
    pub fn new(dir: &Path) -> Result<Apt, String> {
        let create =
            |d: &Path| std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()));
        for sub in ["lists/partial", "cache/archives/partial", "parts", "prefs"] {
            create(&dir.join(sub))?;
        }
        let mirror =
            std::env::var("WATCHPOST_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.into());
        let security = std::env::var("WATCHPOST_DEBIAN_SECURITY_MIRROR")
            .unwrap_or_else(|_| DEFAULT_SECURITY_MIRROR.into());
        let sources = format!(
            "deb [signed-by={KEYRING}] {mirror} {SUITE} main\n\
             deb [signed-by={KEYRING}] {mirror} {SUITE}-updates main\n\
             deb [signed-by={KEYRING}] {security} {SUITE}-security main\n"
        );
        let d = dir.display();
        let config = format!(
            "Dir::State \"{d}\";\nDir::State::Lists \"{d}/lists\";\n\
             Dir::State::status \"{d}/status\";\nDir::Cache \"{d}/cache\";\n\
             Dir::Etc::SourceList \"{d}/sources.list\";\nDir::Etc::SourceParts \"{d}/parts\";\n\
             Dir::Etc::Preferences \"{d}/prefs/none\";\nDir::Etc::PreferencesParts \"{d}/prefs\";\n\
             APT::Architecture \"amd64\";\nAPT::Architectures {{ \"amd64\"; \"arm64\"; }};\n\
             Acquire::Languages \"none\";\n\
             Acquire::IndexTargets::deb::DEP-11::DefaultEnabled \"false\";\n\
             Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled \"false\";\n\
             Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled \"false\";\n\
             Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled \"false\";\n"
        );
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
        };
        write("sources.list", &sources)?;
        write("apt.conf", &config)?;
        if !dir.join("status").exists() {
            write("status", "")?;
        }
        Ok(Apt {
            dir: dir.to_path_buf(),
        })
    }

    fn run(&self, program: &str, args: &[&str], cwd: Option<&Path>) -> Result<Vec<u8>, String> {
        let config = self.dir.join("apt.conf");
        let out = std::process::Command::new(program)
            .args(args)
            .env("APT_CONFIG", &config)
            .current_dir(cwd.unwrap_or(&self.dir))
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("running {program}: {e}"))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(format!(
                "{program} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn lists_fresh(&self) -> bool {
        let stamp = self.dir.join("lists/.updated");
        std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .is_ok_and(|t| {
                SystemTime::now()
                    .duration_since(t)
                    .is_ok_and(|age| age < LISTS_MAX_AGE)
            })
    }

    /// Refreshes the package lists (always when `force`, else when a day old).
    pub fn update(&self, force: bool) -> Result<(), String> {
        if !force && self.lists_fresh() {
            return Ok(());
        }
        self.run("apt-get", &["update", "-q"], None)?;
        std::fs::write(self.dir.join("lists/.updated"), "")
            .map_err(|e| format!("stamping the lists: {e}"))
    }

    /// Kernel versions of `arch` the mirror has.
    pub fn kernel_versions(&self, arch: Arch) -> Result<Vec<KernelVersion>, String> {
        let out = self.run(
            "apt-cache",
            &["search", "--names-only", "^linux-image-[0-9]"],
            None,
        )?;
        let text = String::from_utf8_lossy(&out);
        let mut versions: Vec<KernelVersion> = text
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter_map(|name| abi_of(name, arch))
            .collect();
        versions.sort();
        versions.dedup();
        Ok(versions)
    }

    /// `package` for `arch` as a `.deb` in `into` (downloaded once, then reused).
    pub fn download(&self, package: &str, arch: Arch, into: &Path) -> Result<PathBuf, String> {
        std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
        let find = || -> Option<PathBuf> {
            let suffix = format!("_{}.deb", arch.debian());
            std::fs::read_dir(into).ok()?.find_map(|e| {
                let e = e.ok()?;
                let name = e.file_name().to_string_lossy().into_owned();
                (name.starts_with(&format!("{package}_")) && name.ends_with(&suffix))
                    .then(|| e.path())
            })
        };
        if let Some(found) = find() {
            return Ok(found);
        }
        let spec = format!("{package}:{}", arch.debian());
        if self
            .run("apt-get", &["download", "-q", &spec], Some(into))
            .is_err()
        {
            // Superseded on the mirror since the lists were fetched: refresh and retry.
            self.update(true)?;
            self.run("apt-get", &["download", "-q", &spec], Some(into))?;
        }
        find().ok_or_else(|| format!("apt-get download {spec} left no .deb in {}", into.display()))
    }
}

/// Extracts the members of `deb` matching the tar `patterns` into `into`.
pub fn extract(deb: &Path, patterns: &[&str], into: &Path) -> Result<(), String> {
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    let quoted: Vec<String> = patterns.iter().map(|p| format!("'{p}'")).collect();
    host::shell(&format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' --wildcards {}",
        deb.display(),
        into.display(),
        quoted.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(abi: &str) -> KernelVersion {
        KernelVersion::parse(abi).unwrap()
    }

    #[test]
    fn parses_both_abi_styles() {
        assert_eq!(v("6.1.0-57").key, (6, 1, 0, 57));
        assert_eq!(v("6.12.118+deb12").key, (6, 12, 118, 0));
        assert_eq!(v("6.1.0-57").series(), "6.1");
        for bad in [
            "6.1",
            "6.1.0-57-cloud",
            "6.12-amd64",
            "x.y.z-1",
            "6.1.0+bpo",
        ] {
            assert_eq!(KernelVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn package_names_pick_plain_images_only() {
        let a = Arch::X86_64;
        assert_eq!(
            abi_of("linux-image-6.1.0-57-amd64", a).unwrap().abi,
            "6.1.0-57"
        );
        assert_eq!(
            abi_of("linux-image-6.12.118+deb12-amd64", a).unwrap().abi,
            "6.12.118+deb12"
        );
        for other in [
            "linux-image-6.1.0-57-cloud-amd64",
            "linux-image-6.1.0-57-rt-amd64",
            "linux-image-6.1.0-57-amd64-dbg",
            "linux-image-6.1.0-57-amd64-unsigned",
            "linux-image-6.12-amd64",
            "linux-image-6.1.0-57-arm64",
        ] {
            assert!(abi_of(other, a).is_none(), "{other}");
        }
        assert_eq!(
            v("6.1.0-57").package(Arch::Aarch64),
            "linux-image-6.1.0-57-arm64"
        );
    }

    #[test]
    fn selectors() {
        let all = vec![
            v("6.1.0-47"),
            v("6.1.0-57"),
            v("6.12.100+deb12"),
            v("6.12.118+deb12"),
        ];
        assert_eq!(select(&all, "6.1").unwrap().abi, "6.1.0-57");
        assert_eq!(select(&all, "newest").unwrap().abi, "6.12.118+deb12");
        assert_eq!(select(&all, "6.12").unwrap().abi, "6.12.118+deb12");
        assert_eq!(select(&all, "6.1.0-47").unwrap().abi, "6.1.0-47");
        assert!(select(&all, "5.10").is_err());
        assert!(select(&all, "6.1.0-99").is_err());
        assert!(v("6.12.118+deb12") > v("6.1.0-57"));
        assert!(v("6.1.0-57").at_least(5, 8));
    }
}
