//! What the host expects of this kernel, from the kernel package's own `config-*` file
//! (written by `cargo xtask kernels` to [`EXPECT_PATH`]): which features it lacks, and the
//! modules to load. A kernel lacking a feature the eBPF collector needs must make the daemon
//! say which and fall back; that is then the expected result, checked like any other.
//!
//! Format, one `key=value` per line: `kernel=<release>`, `lacks=<feature>\t<word the daemon's
//! message must contain>` (repeated), `module=<name>\t<path>` (repeated, dependencies first,
//! the module under test last).

use std::path::PathBuf;

/// Where the host puts the expectations.
pub const EXPECT_PATH: &str = "/etc/watchpost-check/expect";

/// A feature the kernel lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lacking {
    /// The feature (`btf`, `cgroup_bpf`, `ringbuf`, …).
    pub feature: String,
    /// A word the daemon's fallback message must contain.
    pub word: String,
}

/// A module file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// The module's name as `/proc/modules` shows it.
    pub name: String,
    /// The `.ko` file in the guest.
    pub path: PathBuf,
}

/// The host's expectations for this kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    /// The kernel release the host meant to boot.
    pub kernel: String,
    /// Features the eBPF collector needs that this kernel lacks.
    pub lacks: Vec<Lacking>,
    /// Modules to load, dependencies first.
    pub modules: Vec<ModuleFile>,
}

impl Expectations {
    /// Reads [`EXPECT_PATH`].
    pub fn load() -> Result<Expectations, String> {
        let text = std::fs::read_to_string(EXPECT_PATH)
            .map_err(|e| format!("reading {EXPECT_PATH}: {e}"))?;
        Expectations::parse(&text)
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Expectations, String> {
        let mut out = Expectations::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("not key=value: {line:?}"))?;
            match key {
                "kernel" => out.kernel = value.to_owned(),
                "lacks" => {
                    let (feature, word) = value
                        .split_once('\t')
                        .ok_or_else(|| format!("lacks needs feature<TAB>word: {line:?}"))?;
                    out.lacks.push(Lacking {
                        feature: feature.to_owned(),
                        word: word.to_owned(),
                    });
                }
                "module" => {
                    let (name, path) = value
                        .split_once('\t')
                        .ok_or_else(|| format!("module needs name<TAB>path: {line:?}"))?;
                    out.modules.push(ModuleFile {
                        name: name.to_owned(),
                        path: PathBuf::from(path),
                    });
                }
                other => return Err(format!("unknown key {other:?}")),
            }
        }
        if out.kernel.is_empty() {
            return Err("no kernel= line".to_owned());
        }
        Ok(out)
    }

    /// Whether the eBPF collector should load on this kernel.
    pub fn ebpf_expected(&self) -> bool {
        self.lacks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let e = Expectations::parse(
            "kernel=6.1.0-57-amd64\nlacks=btf\tBTF\nmodule=crc7\t/lib/modules/check/crc7.ko\n",
        )
        .unwrap();
        assert_eq!(e.kernel, "6.1.0-57-amd64");
        assert_eq!(e.lacks[0].word, "BTF");
        assert_eq!(
            e.modules[0].path,
            PathBuf::from("/lib/modules/check/crc7.ko")
        );
        assert!(!e.ebpf_expected());
    }

    #[test]
    fn refuses_garbage() {
        assert!(Expectations::parse("kernel=x\nbogus=1\n").is_err());
        assert!(Expectations::parse("module=crc7\n").is_err());
        assert!(Expectations::parse("").is_err());
    }
}
