//! The two guest architectures and everything that differs between them: Debian's names, the
//! Rust target, where the cross libraries live, and how qemu boots a kernel.

use std::path::PathBuf;

/// A guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// 64-bit x86 PCs (Debian `amd64`).
    X86_64,
    /// 64-bit Arm (Debian `arm64`).
    Aarch64,
}

impl Arch {
    /// Both, in the order the matrix runs them.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// From `--arch`.
    pub fn parse(text: &str) -> Result<Arch, String> {
        match text {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            other => Err(format!(
                "unknown architecture `{other}` (x86_64 or aarch64)"
            )),
        }
    }

    /// The kernel's name (`uname -m`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Debian's architecture, which is also the kernel flavour (`linux-image-…-amd64`).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// The Rust target triple.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// Debian's multiarch directory name.
    pub fn multiarch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::Aarch64 => "aarch64-linux-gnu",
        }
    }

    /// Host directories holding this architecture's shared libraries, searched in order.
    pub fn library_dirs(self) -> Vec<PathBuf> {
        match self {
            Arch::X86_64 => vec![
                "/lib/x86_64-linux-gnu".into(),
                "/usr/lib/x86_64-linux-gnu".into(),
                "/lib64".into(),
            ],
            Arch::Aarch64 => vec!["/usr/aarch64-linux-gnu/lib".into()],
        }
    }

    /// The `strip` that understands this architecture's binaries.
    pub fn strip(self) -> &'static str {
        match self {
            Arch::X86_64 => "strip",
            Arch::Aarch64 => "aarch64-linux-gnu-strip",
        }
    }

    /// The qemu system emulator.
    pub fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// qemu's arguments before `-kernel`: TCG only (this machine's KVM runs only kernels built
    /// for it), 1 GiB, two CPUs, the serial console on stdout, no network card, no reboot.
    /// aarch64: `pauth-impdef=on`, or pointer authentication makes emulation 2.5× slower.
    pub fn qemu_machine(self) -> Vec<&'static str> {
        let mut args = match self {
            Arch::X86_64 => vec!["-cpu", "max"],
            Arch::Aarch64 => vec!["-M", "virt", "-cpu", "max,pauth-impdef=on"],
        };
        args.extend([
            "-accel",
            "tcg",
            "-m",
            "1G",
            "-smp",
            "2",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-nic",
            "none",
            "-no-reboot",
        ]);
        args
    }

    /// The console device for the kernel command line.
    pub fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for arch in Arch::ALL {
            assert_eq!(Arch::parse(arch.name()), Ok(arch));
            assert_eq!(Arch::parse(arch.debian()), Ok(arch));
        }
        assert!(Arch::parse("riscv64").is_err());
    }
}
