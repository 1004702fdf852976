//! The guest: an initramfs (cpio `newc`, uncompressed — the kernel unpacks it without an
//! emulated decompressor) holding busybox, the programs under test with their libraries, the
//! burst's `exit0` program ([`exit0`]), a few
//! `/etc` files, the host's expectations, the modules to load, and an `/init` that mounts the
//! pseudo file systems the daemon needs, runs the check program and powers off.

use std::path::Path;

use super::arch::Arch;
use super::exit0;

/// The console protocol's marker (see `tests/guest-check/src/report.rs`).
pub const MARKER: &str = "WPCHECK";

/// `/init`: mounts proc, sysfs, devtmpfs, cgroup2, debugfs, tracefs and bpffs, brings up
/// loopback (the DNS check), runs the checks, powers off. `-no-reboot` and `panic=-1` turn any
/// failure of init itself into a qemu exit too.
fn init_script(arch: Arch) -> String {
    format!(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         export PATH=/bin:/usr/bin\n\
         export LD_LIBRARY_PATH=/lib/{multiarch}\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n\
         mount -t cgroup2 cgroup2 /sys/fs/cgroup\n\
         mount -t debugfs debugfs /sys/kernel/debug\n\
         mount -t tracefs tracefs /sys/kernel/tracing\n\
         mount -t bpf bpf /sys/fs/bpf\n\
         mount -t tmpfs tmpfs /run\n\
         mount -t tmpfs tmpfs /tmp\n\
         ip link set lo up\n\
         echo \"{MARKER}\tfact\tinit\tstarted\"\n\
         /usr/bin/watchpost-guest-check run\n\
         echo \"{MARKER}\tfact\tcheck_exit\t$?\"\n\
         poweroff -f\n",
        multiarch = arch.multiarch()
    )
}

/// A cpio `newc` archive being written.
#[derive(Default)]
pub struct Cpio {
    data: Vec<u8>,
    next_inode: u32,
}

const DIR: u32 = 0o040_000;
const FILE: u32 = 0o100_000;
const SYMLINK: u32 = 0o120_000;
const CHAR_DEVICE: u32 = 0o020_000;

impl Cpio {
    fn pad(&mut self) {
        while !self.data.len().is_multiple_of(4) {
            self.data.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), body: &[u8]) {
        self.next_inode += 1;
        let name = name.trim_start_matches('/');
        let fields = [
            self.next_inode,
            mode,
            0,
            0,
            if mode & 0o170_000 == DIR { 2 } else { 1 },
            0,
            body.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.data.extend_from_slice(b"070701");
        for field in fields {
            self.data
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad();
        self.data.extend_from_slice(body);
        self.pad();
    }

    /// A directory (parents are not implied: add them first).
    pub fn dir(&mut self, name: &str) {
        self.entry(name, DIR | 0o755, (0, 0), b"");
    }

    /// A file with `mode` permissions.
    pub fn file(&mut self, name: &str, mode: u32, body: &[u8]) {
        self.entry(name, FILE | mode, (0, 0), body);
    }

    /// A symbolic link.
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, SYMLINK | 0o777, (0, 0), target.as_bytes());
    }

    /// A character device.
    pub fn char_device(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, CHAR_DEVICE | 0o600, (major, minor), b"");
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), b"");
        while !self.data.len().is_multiple_of(512) {
            self.data.push(0);
        }
        self.data
    }
}

/// What goes into one guest.
pub struct GuestContents<'a> {
    /// The architecture.
    pub arch: Arch,
    /// busybox-static for that architecture.
    pub busybox: &'a Path,
    /// The daemon, stripped.
    pub daemon: &'a Path,
    /// The check program, stripped.
    pub check: &'a Path,
    /// Shared libraries (host path, guest path).
    pub libraries: &'a [(std::path::PathBuf, String)],
    /// Modules to load (name, `.ko`), dependencies first.
    pub modules: &'a [(String, std::path::PathBuf)],
    /// The expectations file's text.
    pub expect: &'a str,
    /// For `/etc/os-release`.
    pub kernel_release: &'a str,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Builds the initramfs.
pub fn build(c: &GuestContents<'_>) -> Result<Vec<u8>, String> {
    let mut cpio = Cpio::default();
    let multiarch_lib = format!("lib/{}", c.arch.multiarch());
    for dir in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "etc",
        "etc/watchpost-check",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var",
        "var/lib",
        "root",
        "lib",
        "lib64",
        &multiarch_lib,
        "lib/modules",
        "lib/modules/check",
    ] {
        cpio.dir(dir);
    }
    // Without /dev/console in the archive, init starts with no stdout: nothing would be seen.
    cpio.char_device("dev/console", 5, 1);
    cpio.file("bin/busybox", 0o755, &read(c.busybox)?);
    cpio.symlink("bin/sh", "busybox");
    cpio.file("init", 0o755, init_script(c.arch).as_bytes());
    cpio.file("usr/bin/watchpost", 0o755, &read(c.daemon)?);
    cpio.file("usr/bin/watchpost-guest-check", 0o755, &read(c.check)?);
    cpio.file("usr/bin/watchpost-exit0", 0o755, &exit0::executable(c.arch));
    for (host, guest) in c.libraries {
        cpio.file(guest, 0o755, &read(host)?);
    }
    let mut expect = c.expect.to_owned();
    for (name, ko) in c.modules {
        let guest = format!("/lib/modules/check/{name}.ko");
        cpio.file(&guest, 0o644, &read(ko)?);
        expect.push_str(&format!("module={name}\t{guest}\n"));
    }
    cpio.file("etc/watchpost-check/expect", 0o644, expect.as_bytes());
    cpio.file(
        "etc/os-release",
        0o644,
        format!(
            "PRETTY_NAME=\"watchpost kernel-matrix guest (Debian {})\"\nNAME=\"watchpost guest\"\n\
             ID=watchpost-guest\n",
            c.kernel_release
        )
        .as_bytes(),
    );
    cpio.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    cpio.file("etc/group", 0o644, b"root:x:0:\n");
    cpio.file("etc/hostname", 0o644, b"watchpost-guest\n");
    Ok(cpio.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut cpio = Cpio::default();
        cpio.file("etc/x", 0o644, b"hello");
        cpio.char_device("dev/console", 5, 1);
        let bytes = cpio.finish();
        assert!(bytes.starts_with(b"070701"));
        assert_eq!(bytes.len() % 512, 0);
        // Header (110 bytes) + "etc/x\0" (6) = 116, a multiple of 4: data follows at once.
        assert_eq!(&bytes[116..121], b"hello");
        let mode = u32::from_str_radix(std::str::from_utf8(&bytes[14..22]).unwrap(), 16).unwrap();
        assert_eq!(mode, FILE | 0o644);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("TRAILER!!!"));
        assert!(text.contains("dev/console"));
    }

    #[test]
    fn init_runs_the_checks_and_powers_off() {
        let script = init_script(Arch::Aarch64);
        assert!(script.starts_with("#!/bin/busybox sh\n"));
        assert!(script.contains("mount -t cgroup2 cgroup2 /sys/fs/cgroup"));
        assert!(script.contains("mount -t bpf bpf /sys/fs/bpf"));
        assert!(script.contains("LD_LIBRARY_PATH=/lib/aarch64-linux-gnu"));
        assert!(script.ends_with("poweroff -f\n"));
    }
}
