//! What the matrix takes out of a Debian kernel package: the bootable image, the kernel's
//! config (the features it was built with, hence what the daemon should manage), and a module
//! with the modules it depends on, uncompressed for busybox's `insmod`.
//!
//! x86_64 boots faster from the uncompressed `vmlinux` (qemu loads it through its PVH entry
//! point, skipping the emulated decompressor: ~4 s to `/init` instead of ~8 s). It is cut out
//! of the bzImage exactly, from the payload offset and length in the boot protocol header, and
//! decompressed with the host's `xz`/`zstd`/`gzip`/`lz4`. Debian's arm64 `vmlinuz` is already an
//! uncompressed `Image`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::arch::Arch;
use super::packages::{KernelVersion, extract};

/// The module every guest loads: tiny, no dependencies, present in every Debian kernel.
pub const TEST_MODULE: &str = "crc7";

/// One kernel, ready to boot.
#[derive(Debug, Clone)]
pub struct KernelFiles {
    /// What qemu's `-kernel` gets.
    pub image: PathBuf,
    /// The kernel's `CONFIG_*` lines.
    pub config: String,
    /// Modules to load (name, uncompressed `.ko`), dependencies first.
    pub modules: Vec<(String, PathBuf)>,
}

/// Extracts and prepares `deb` (the image package of `version` for `arch`) under `dir`; kept
/// there, so a second run only checks that the files exist.
pub fn prepare(
    deb: &Path,
    version: &KernelVersion,
    arch: Arch,
    dir: &Path,
) -> Result<KernelFiles, String> {
    let release = version.release(arch);
    let tree = dir.join("package");
    let modules_dir = format!("./lib/modules/{release}");
    let vmlinuz = tree.join(format!("boot/vmlinuz-{release}"));
    let config_path = tree.join(format!("boot/config-{release}"));
    let order_path = tree.join(format!("lib/modules/{release}/modules.order"));
    if !vmlinuz.exists() || !config_path.exists() || !order_path.exists() {
        extract(
            deb,
            &[
                &format!("./boot/vmlinuz-{release}"),
                &format!("./boot/config-{release}"),
                &format!("{modules_dir}/modules.order"),
            ],
            &tree,
        )?;
    }
    let config = std::fs::read_to_string(&config_path)
        .map_err(|e| format!("{}: {e}", config_path.display()))?;
    let order = std::fs::read_to_string(&order_path)
        .map_err(|e| format!("{}: {e}", order_path.display()))?;

    let image = match arch {
        Arch::Aarch64 => vmlinuz,
        Arch::X86_64 => {
            let vmlinux = dir.join("vmlinux");
            if !vmlinux.exists() {
                let bz =
                    std::fs::read(&vmlinuz).map_err(|e| format!("{}: {e}", vmlinuz.display()))?;
                let elf = decompress_bzimage(&bz)?;
                std::fs::write(&vmlinux, elf).map_err(|e| format!("{}: {e}", vmlinux.display()))?;
            }
            vmlinux
        }
    };

    // The module and its dependencies, depth first so dependencies load first.
    let mut modules: Vec<(String, PathBuf)> = Vec::new();
    let mut pending = vec![(TEST_MODULE.to_owned(), false)];
    while let Some((name, expanded)) = pending.pop() {
        if modules.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let ko = module_file(&tree, &release, &order, &name, deb, &dir.join("modules"))?;
        let bytes = std::fs::read(&ko).map_err(|e| format!("{}: {e}", ko.display()))?;
        let info = modinfo(&bytes);
        let deps: Vec<String> = info
            .iter()
            .filter(|(k, _)| k == "depends")
            .flat_map(|(_, v)| v.split(',').filter(|d| !d.is_empty()).map(normalize))
            .filter(|d| !modules.iter().any(|(n, _)| n == d))
            .collect();
        if expanded || deps.is_empty() {
            let real = info
                .iter()
                .find(|(k, _)| k == "name")
                .map(|(_, v)| normalize(v))
                .unwrap_or(name);
            modules.push((real, ko));
        } else {
            pending.push((name, true));
            pending.extend(deps.into_iter().map(|d| (d, false)));
        }
        if modules.len() + pending.len() > 64 {
            return Err(format!("{TEST_MODULE}: dependency chain too long"));
        }
    }
    Ok(KernelFiles {
        image,
        config,
        modules,
    })
}

/// Module names as the kernel shows them (`-` and `_` are the same).
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The uncompressed `.ko` of module `name`, extracted from the package into `out`.
fn module_file(
    tree: &Path,
    release: &str,
    order: &str,
    name: &str,
    deb: &Path,
    out: &Path,
) -> Result<PathBuf, String> {
    let relative = order
        .lines()
        .map(str::trim)
        .find(|line| {
            let file = line.rsplit('/').next().unwrap_or(line);
            let stem = file.split(".ko").next().unwrap_or(file);
            normalize(stem) == name
        })
        .ok_or_else(|| format!("module {name} is not in modules.order of {release}"))?;
    let relative = relative.trim_end_matches(".xz").trim_end_matches(".zst");
    let target = out.join(format!("{name}.ko"));
    if target.exists() {
        return Ok(target);
    }
    let base = format!("./lib/modules/{release}/{relative}");
    extract(deb, &[&format!("{base}*")], tree)?;
    let plain = tree.join(&base[2..]);
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let bytes = if plain.exists() {
        std::fs::read(&plain).map_err(|e| format!("{}: {e}", plain.display()))?
    } else {
        let xz = PathBuf::from(format!("{}.xz", plain.display()));
        let zst = PathBuf::from(format!("{}.zst", plain.display()));
        if xz.exists() {
            decompress(
                "xz",
                &std::fs::read(&xz).map_err(|e| format!("{}: {e}", xz.display()))?,
            )?
        } else if zst.exists() {
            decompress(
                "zstd",
                &std::fs::read(&zst).map_err(|e| format!("{}: {e}", zst.display()))?,
            )?
        } else {
            return Err(format!("{base} (or .xz/.zst) is not in the package"));
        }
    };
    if !bytes.starts_with(b"\x7fELF") {
        return Err(format!("{base} is not an ELF module"));
    }
    std::fs::write(&target, bytes).map_err(|e| format!("{}: {e}", target.display()))?;
    Ok(target)
}

/// The `key=value` strings of a module's `.modinfo` section (found by their NUL-separated
/// shape; only `name` and `depends` are used).
fn modinfo(ko: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in ["name", "depends"] {
        let needle = format!("\0{key}=");
        let mut from = 0;
        while let Some(at) = find(&ko[from..], needle.as_bytes()) {
            let start = from + at + needle.len();
            let end = ko[start..]
                .iter()
                .position(|b| *b == 0)
                .map_or(ko.len(), |p| start + p);
            out.push((
                key.to_owned(),
                String::from_utf8_lossy(&ko[start..end]).into_owned(),
            ));
            from = end;
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs `tool -dc` over `data`.
fn decompress(tool: &str, data: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new(tool)
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {tool}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let input = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{tool}: {e}"))?;
    let _ = writer.join();
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{tool} -dc failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The compressed kernel inside an x86 bzImage (boot protocol ≥ 2.08), decompressed to ELF.
pub fn decompress_bzimage(bz: &[u8]) -> Result<Vec<u8>, String> {
    let (offset, len) = bzimage_payload(bz)?;
    // Every x86 payload ends with its uncompressed size (4 bytes, the build's `size_append`),
    // which the decompressors would take for a truncated second stream.
    let payload = &bz[offset..offset + len.saturating_sub(4)];
    let tool = if payload.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "xz"
    } else if payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd"
    } else if payload.starts_with(&[0x1f, 0x8b]) {
        "gzip"
    } else if payload.starts_with(&[0x02, 0x21, 0x4c, 0x18]) {
        "lz4"
    } else {
        return Err(format!(
            "unknown compression of the bzImage payload (starts {:02x?})",
            &payload[..payload.len().min(6)]
        ));
    };
    let elf = decompress(tool, payload)?;
    if !elf.starts_with(b"\x7fELF") {
        return Err("the bzImage payload is not an ELF kernel".to_owned());
    }
    Ok(elf)
}

/// (offset, length) of the compressed payload, from the setup header: `setup_sects` at 0x1f1,
/// the `HdrS` magic at 0x202, `payload_offset`/`payload_length` at 0x248/0x24c, relative to
/// the protected-mode code after the setup sectors.
fn bzimage_payload(bz: &[u8]) -> Result<(usize, usize), String> {
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bz.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    if bz.get(0x202..0x206) != Some(b"HdrS") {
        return Err("not a bzImage (no HdrS header)".to_owned());
    }
    let version = u16::from_le_bytes([bz[0x206], bz[0x207]]);
    if version < 0x208 {
        return Err(format!("boot protocol {version:#x} has no payload fields"));
    }
    let setup_sects = match bz[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let start = (setup_sects + 1) * 512;
    let offset = u32_at(0x248).ok_or("short header")? + start;
    let len = u32_at(0x24c).ok_or("short header")?;
    if offset.checked_add(len).is_none_or(|end| end > bz.len()) {
        return Err(format!(
            "payload {offset}+{len} outside the {}-byte image",
            bz.len()
        ));
    }
    Ok((offset, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_finds_name_and_depends() {
        let ko = b"\x7fELF junk\0license=GPL\0depends=crc-itu-t,foo\0name=crc7\0vermagic=6.1\0";
        let info = modinfo(ko);
        assert!(info.contains(&("name".into(), "crc7".into())));
        assert!(info.contains(&("depends".into(), "crc-itu-t,foo".into())));
        assert!(modinfo(b"\0depends=\0").contains(&("depends".into(), String::new())));
        assert_eq!(normalize("crc-itu-t"), "crc_itu_t");
    }

    #[test]
    fn bzimage_header_bounds_are_checked() {
        let mut bz = vec![0u8; 4096];
        assert!(bzimage_payload(&bz).is_err(), "no magic");
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        bz[0x1f1] = 1;
        bz[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        bz[0x24c..0x250].copy_from_slice(&100u32.to_le_bytes());
        assert_eq!(bzimage_payload(&bz), Ok((1024 + 16, 100)));
        bz[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(bzimage_payload(&bz).is_err(), "length past the end");
    }
}
