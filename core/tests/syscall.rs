//! Syscall tables and the syscall store: known numbers, absent names, round trips over every entry,
//! out-of-range ids, metrics counting, no allocation, and a cross-check with the C headers installed
//! on this machine.

mod support;

#[global_allocator]
static ALLOC: support::CountingAllocator = support::CountingAllocator;

use proptest::prelude::*;
use watchpost_core::error::store_names;
use watchpost_core::syscall::{Arch, SyscallStats, SyscallStore};
use watchpost_core::{ErrorKind, HealthStatus};

#[test]
fn execve_has_the_number_of_each_architecture() {
    let mut x86 = SyscallStore::new(Arch::X86_64);
    let mut arm = SyscallStore::new(Arch::Aarch64);
    assert_eq!(x86.get_syscall_id("execve", 1), Ok(59));
    assert_eq!(arm.get_syscall_id("execve", 1), Ok(221));
    assert_eq!(x86.get_syscall_name(59, 2), Ok("execve"));
    assert_eq!(arm.get_syscall_name(221, 2), Ok("execve"));
    // Same number, different call: the store answers for its own architecture only.
    assert_eq!(x86.get_syscall_name(221, 3), Ok("fadvise64"));
    assert_eq!(arm.get_syscall_name(59, 3), Ok("pipe2"));
}

#[test]
fn spot_checks_against_the_kernel_tables() {
    let x86 = Arch::X86_64.syscalls();
    for (name, number) in [
        ("read", 0),
        ("open", 2),
        ("fork", 57),
        ("newfstatat", 262),
        ("openat", 257),
        ("uretprobe", 335),
        ("uprobe", 336),
        ("clone3", 435),
        ("file_setattr", 469),
        ("listns", 470),
    ] {
        assert_eq!(x86.number(name), Some(number), "x86_64 {name}");
    }
    let arm = Arch::Aarch64.syscalls();
    for (name, number) in [
        ("io_setup", 0),
        ("renameat", 38),
        ("openat", 56),
        ("newfstatat", 79),
        ("fstat", 80),
        ("getrlimit", 163),
        ("clone", 220),
        ("mmap", 222),
        ("memfd_secret", 447),
        ("clone3", 435),
        ("listns", 470),
    ] {
        assert_eq!(arm.number(name), Some(number), "aarch64 {name}");
    }
}

#[test]
fn names_absent_on_aarch64_are_not_found_never_invented() {
    let x86 = Arch::X86_64.syscalls();
    let mut arm = SyscallStore::new(Arch::Aarch64);
    for name in [
        "open",
        "fork",
        "vfork",
        "stat",
        "lstat",
        "pipe",
        "dup2",
        "poll",
        "select",
        "access",
        "creat",
        "mkdir",
        "rename",
        "unlink",
        "getdents",
        "time",
        "alarm",
        "epoll_wait",
    ] {
        // Real syscalls on x86_64, so their absence on aarch64 is a property of the table.
        assert!(x86.number(name).is_some(), "{name} should exist on x86_64");
        let err = arm.get_syscall_id(name, 5).unwrap_err();
        assert!(err.is(ErrorKind::NotFound), "{name}: {err:?}");
        assert_eq!(err.store, store_names::SYSCALL);
        assert_eq!(err.operation, "get_syscall_id");
    }
    // Other architectures' private rows of the generic table are not arm64 syscalls either.
    for name in [
        "riscv_hwprobe",
        "riscv_flush_icache",
        "cacheflush",
        "or1k_atomic",
    ] {
        assert!(arm.get_syscall_id(name, 6).is_err(), "{name}");
    }
    // Nor are 32-bit-only names.
    for name in [
        "fstatat64",
        "fstat64",
        "newfstat",
        "fcntl64",
        "mmap2",
        "clock_gettime64",
        "llseek",
    ] {
        assert!(arm.get_syscall_id(name, 7).is_err(), "{name}");
    }
}

#[test]
fn x32_rows_are_not_x86_64_syscalls() {
    let x86 = Arch::X86_64.syscalls();
    for number in 512..=547 {
        assert_eq!(x86.name(number), None, "{number}");
    }
    // `rt_sigaction` is 13 on x86_64 (the x32 row is 512).
    assert_eq!(x86.number("rt_sigaction"), Some(13));
}

#[test]
fn names_are_exact_and_case_sensitive() {
    let mut store = SyscallStore::new(Arch::X86_64);
    for name in [
        "",
        "EXECVE",
        "Execve",
        "sys_execve",
        "execve ",
        " execve",
        "execve\0",
        "execv",
        "execvee",
        "é",
    ] {
        let err = store.get_syscall_id(name, 1).unwrap_err();
        assert!(err.is(ErrorKind::NotFound), "{name:?}");
    }
}

#[test]
fn ids_outside_the_table_are_not_found() {
    for arch in Arch::ALL {
        let mut store = SyscallStore::new(arch);
        let max = store.table().max_number();
        assert_eq!(max, 470, "{arch:?}");
        for id in [
            -1,
            -59,
            i32::MIN,
            i32::MAX,
            max + 1,
            511,
            512,
            547,
            4096,
            1 << 20,
        ] {
            let err = store.get_syscall_name(id, 1).unwrap_err();
            assert!(err.is(ErrorKind::NotFound), "{arch:?} {id}");
            assert_eq!(err.operation, "get_syscall_name");
        }
    }
    // Holes inside the number range are not found either.
    let x86 = Arch::X86_64.syscalls();
    for id in [337, 386, 387, 423] {
        assert_eq!(x86.name(id), None, "x86_64 {id}");
    }
    let arm = Arch::Aarch64.syscalls();
    for id in [244, 259, 295, 402, 403, 423] {
        assert_eq!(arm.name(id), None, "aarch64 {id}");
    }
}

#[test]
fn every_entry_round_trips_id_to_name_to_id() {
    for arch in Arch::ALL {
        let table = arch.syscalls();
        let mut store = SyscallStore::new(arch);
        let mut seen = 0;
        for (number, name) in table.iter() {
            assert_eq!(store.get_syscall_name(number, 1), Ok(name));
            assert_eq!(store.get_syscall_id(name, 1), Ok(number));
            seen += 1;
        }
        assert_eq!(seen, table.len());
        // And from the other side: every name, every number, nothing more.
        let by_name: Vec<_> = table.iter_by_name().collect();
        assert_eq!(by_name.len(), table.len());
        for (name, number) in by_name {
            assert_eq!(table.name(number), Some(name));
        }
        let assigned = (-10..=table.max_number() + 10)
            .filter(|&n| table.name(n).is_some())
            .count();
        assert_eq!(assigned, table.len());
    }
    assert_eq!(Arch::X86_64.syscalls().len(), 384);
    assert_eq!(Arch::Aarch64.syscalls().len(), 326);
}

#[test]
fn tables_say_where_they_come_from() {
    let x86 = Arch::X86_64.syscalls();
    assert_eq!(x86.kernel_version(), "6.19.9");
    assert_eq!(x86.source_path(), "arch/x86/entry/syscalls/syscall_64.tbl");
    assert_eq!(x86.abis(), ["common", "64"]);
    let arm = Arch::Aarch64.syscalls();
    assert_eq!(arm.source_path(), "arch/arm64/tools/syscall_64.tbl");
    assert_eq!(
        arm.abis(),
        ["common", "64", "renameat", "rlimit", "memfd_secret"]
    );
}

#[test]
fn arch_names_and_host() {
    for arch in Arch::ALL {
        assert_eq!(Arch::from_machine(arch.machine()), Some(arch));
        assert_eq!(arch.syscalls().arch(), arch);
    }
    assert_eq!(Arch::from_machine("arm64"), Some(Arch::Aarch64));
    assert_eq!(Arch::from_machine("amd64"), Some(Arch::X86_64));
    for other in ["", "i686", "armv7l", "riscv64", "X86_64"] {
        assert_eq!(Arch::from_machine(other), None, "{other}");
    }
    let host = SyscallStore::for_host();
    assert_eq!(host.map(|s| s.arch()), Arch::host());
    if cfg!(target_arch = "x86_64") {
        assert_eq!(Arch::host(), Some(Arch::X86_64));
    }
}

#[test]
fn metrics_follow_the_counting_rule() {
    let mut store = SyscallStore::new(Arch::Aarch64);
    assert_eq!(store.name(), "syscall");
    assert_eq!(store.metrics().item_count, 326);
    assert_eq!(store.metrics().last_access, 0);

    store.get_syscall_name(221, 10).unwrap(); // hit
    store.get_syscall_name(-1, 20).unwrap_err(); // miss
    store.get_syscall_id("openat", 30).unwrap(); // hit
    store.get_syscall_id("open", 40).unwrap_err(); // miss
    store.get_syscall_id("fork", 35).unwrap_err(); // miss, earlier clock

    let m = store.metrics();
    assert_eq!(m.item_count, 326);
    assert_eq!(m.success_count, 5);
    assert_eq!(m.cache_hits, 2);
    assert_eq!(m.cache_misses, 3);
    assert_eq!(m.error_count, 0);
    assert_eq!(m.last_access, 40);
    assert_eq!(
        store.stats(),
        SyscallStats {
            names_found: 1,
            unknown_numbers: 1,
            numbers_found: 1,
            unknown_names: 2,
        }
    );
    assert_eq!(store.len(), 326);
    assert_eq!(store.capacity(), store.len());
    assert!(!store.is_empty());
}

#[test]
fn always_healthy() {
    let store = SyscallStore::new(Arch::X86_64);
    let health = store.health(77);
    assert_eq!(health.status, HealthStatus::Healthy);
    assert!(health.message.is_empty());
    assert_eq!(health.last_check, 77);
}

#[test]
fn lookups_never_allocate() {
    let mut store = SyscallStore::new(Arch::X86_64);
    let names: Vec<&str> = store.table().iter().map(|(_, name)| name).collect();
    let (count, found) = support::count_allocations(|| {
        let mut found = 0usize;
        for round in 0..10i32 {
            for id in -5..600 {
                found += usize::from(store.get_syscall_name(id, 1).is_ok());
            }
            for name in &names {
                found += usize::from(store.get_syscall_id(name, 2).is_ok());
            }
            found += usize::from(store.get_syscall_id("no_such_call", 3).is_ok());
            let _ = store.metrics();
            let _ = store.health(u64::try_from(round).unwrap_or(0));
        }
        found
    });
    assert_eq!(count.allocations, 0);
    assert_eq!(found, 10 * 2 * 384);
}

/// The C library headers of this machine (`linux-libc-dev`) define `__NR_<name>` for x86_64; every
/// one of them must agree with our table (the headers may be older, so the table may hold more).
#[test]
fn agrees_with_the_installed_x86_64_headers() {
    let candidates = [
        "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
        "/usr/include/asm/unistd_64.h",
    ];
    let Some(text) = candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
    else {
        eprintln!("no x86_64 unistd_64.h installed: cross-check skipped");
        return;
    };
    let table = Arch::X86_64.syscalls();
    let mut checked = 0;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some("#define"), Some(macro_name), Some(value)) =
            (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let (Some(name), Ok(number)) = (macro_name.strip_prefix("__NR_"), value.parse::<i32>())
        else {
            continue;
        };
        assert_eq!(
            table.number(name),
            Some(number),
            "header says {name} = {number}"
        );
        checked += 1;
    }
    assert!(
        checked > 300,
        "only {checked} definitions read from the header"
    );
}

/// The generic header (`asm-generic/unistd.h`) is what arm64 userspace builds against; where it
/// defines `__NR_<name>` as a plain number and our table has the name, the numbers agree.
#[test]
fn agrees_with_the_installed_generic_header() {
    let Ok(text) = std::fs::read_to_string("/usr/include/asm-generic/unistd.h") else {
        eprintln!("no asm-generic/unistd.h installed: cross-check skipped");
        return;
    };
    let table = Arch::Aarch64.syscalls();
    let mut checked = 0;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some("#define"), Some(macro_name), Some(value)) =
            (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let (Some(name), Ok(number)) = (macro_name.strip_prefix("__NR_"), value.parse::<i32>())
        else {
            continue;
        };
        if let Some(ours) = table.number(name) {
            assert_eq!(ours, number, "header says {name} = {number}");
            checked += 1;
        }
    }
    assert!(checked > 250, "only {checked} definitions compared");
}

proptest! {
    #[test]
    fn any_id_either_round_trips_or_is_not_found(id in any::<i32>()) {
        for arch in Arch::ALL {
            let mut store = SyscallStore::new(arch);
            match store.get_syscall_name(id, 1) {
                Ok(name) => prop_assert_eq!(store.get_syscall_id(name, 1), Ok(id)),
                Err(e) => prop_assert!(e.is(ErrorKind::NotFound)),
            }
        }
    }

    #[test]
    fn any_name_either_round_trips_or_is_not_found(name in "[a-z0-9_]{0,20}|\\PC{0,12}") {
        for arch in Arch::ALL {
            let mut store = SyscallStore::new(arch);
            match store.get_syscall_id(&name, 1) {
                Ok(id) => prop_assert_eq!(store.get_syscall_name(id, 1), Ok(name.as_str())),
                Err(e) => prop_assert!(e.is(ErrorKind::NotFound)),
            }
        }
    }
}
