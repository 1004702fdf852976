//! System facts: namespace links and `btime` parsing (vectors, this machine's /proc), bounded
//! fields, os-release mapping (VERSION_ID first), and the system store's contract.

use std::os::unix::fs::MetadataExt;

use proptest::prelude::*;
use watchpost_core::HealthStatus;
use watchpost_core::os_release::OsRelease;
use watchpost_core::syscall::Arch;
use watchpost_core::system_info::{
    BootTimeError, FieldTooLong, InitNamespaces, NamespaceKind, NamespaceLinkError, OS_TEXT_LEN,
    SystemField, SystemInfo, SystemStore, UTS_FIELD_LEN, parse_boot_time, parse_namespace_link,
};
use watchpost_core::time::NANOS_PER_SEC;

#[test]
fn namespace_link_vectors() {
    assert_eq!(
        parse_namespace_link("net:[4026531840]"),
        Ok(("net", 4026531840))
    );
    assert_eq!(parse_namespace_link("cgroup:[1]"), Ok(("cgroup", 1)));
    assert_eq!(parse_namespace_link("mnt:[0]"), Ok(("mnt", 0)));
    assert_eq!(
        parse_namespace_link("user:[4294967295]"),
        Ok(("user", u32::MAX))
    );
    assert_eq!(
        parse_namespace_link("user:[4294967296]"),
        Err(NamespaceLinkError::InodeOutOfRange)
    );
    assert_eq!(
        parse_namespace_link("user:[99999999999999999999999]"),
        Err(NamespaceLinkError::InodeOutOfRange)
    );
    for bad in [
        "",
        "net",
        "net:",
        "net:[]",
        "net:[abc]",
        "net:[-1]",
        "net:[+1]",
        "net:[ 1]",
        "net:[1 ]",
        "net:[1]x",
        "net:[1",
        "net:1]",
        "net:4026531840",
        ":[1]",
        "NET:[1]",
        "n-t:[1]",
        " net:[1]",
        "net:[١]",
        "net:[[1]]",
        "/proc/1/ns/net",
    ] {
        assert_eq!(
            parse_namespace_link(bad),
            Err(NamespaceLinkError::Malformed),
            "{bad:?}"
        );
    }
}

#[test]
fn recording_checks_the_link_type() {
    let mut ns = InitNamespaces::new();
    assert!(ns.is_empty());
    assert_eq!(ns.record_link(NamespaceKind::Net, "net:[10]"), Ok(10));
    // The *_for_children entries link to namespaces of the plain type.
    assert_eq!(
        ns.record_link(NamespaceKind::PidForChildren, "pid:[11]"),
        Ok(11)
    );
    assert_eq!(
        ns.record_link(NamespaceKind::TimeForChildren, "time:[12]"),
        Ok(12)
    );
    assert_eq!(
        ns.record_link(NamespaceKind::Pid, "net:[13]"),
        Err(NamespaceLinkError::TypeMismatch)
    );
    assert_eq!(
        ns.record_link(NamespaceKind::PidForChildren, "pid_for_children:[14]"),
        Err(NamespaceLinkError::TypeMismatch)
    );
    assert_eq!(
        ns.record_link(NamespaceKind::Uts, "uts:[x]"),
        Err(NamespaceLinkError::Malformed)
    );
    assert_eq!(
        ns.get(NamespaceKind::Pid),
        None,
        "nothing recorded on error"
    );
    assert_eq!(ns.get(NamespaceKind::Uts), None);
    assert_eq!(ns.len(), 3);
    assert_eq!(ns.get_by_name("pid_for_children"), Some(11));
    assert_eq!(ns.get_by_name("net"), Some(10));
    assert_eq!(ns.get_by_name("pid"), None);
    assert_eq!(ns.get_by_name("bogus"), None);
    assert_eq!(
        ns.iter().collect::<Vec<_>>(),
        [
            (NamespaceKind::Net, 10),
            (NamespaceKind::PidForChildren, 11),
            (NamespaceKind::TimeForChildren, 12)
        ]
    );
    ns.set(NamespaceKind::Net, 20);
    assert_eq!(ns.get(NamespaceKind::Net), Some(20));
}

#[test]
fn namespace_names_match_the_reference_keys() {
    let names: Vec<&str> = NamespaceKind::ALL.iter().map(|k| k.file_name()).collect();
    assert_eq!(
        names,
        [
            "cgroup",
            "ipc",
            "mnt",
            "net",
            "pid",
            "pid_for_children",
            "time",
            "time_for_children",
            "user",
            "uts"
        ]
    );
}

/// Every namespace link of this process parses, and its inode is the one `stat` reports for the
/// same file (a second, independent reading of the kernel's answer).
#[test]
fn reads_this_machines_namespace_links() {
    let mut ns = InitNamespaces::new();
    for kind in NamespaceKind::ALL {
        let path = format!("/proc/self/ns/{}", kind.file_name());
        let target = std::fs::read_link(&path).unwrap();
        let target = target.to_str().unwrap();
        let inode = ns.record_link(kind, target).unwrap();
        let stat_inode = std::fs::metadata(&path).unwrap().ino();
        assert_eq!(u64::from(inode), stat_inode, "{path} -> {target}");
    }
    // Linux 6.18 has all ten.
    assert_eq!(ns.len(), NamespaceKind::ALL.len());
}

#[test]
fn boot_time_vectors() {
    let stat = "cpu  1 2 3 4\nintr 5\nctxt 6\nbtime 1700000000\nprocesses 7\n";
    assert_eq!(parse_boot_time(stat), Ok(1_700_000_000 * NANOS_PER_SEC));
    assert_eq!(parse_boot_time("btime 0"), Ok(0));
    assert_eq!(parse_boot_time("btime\t42  \n"), Ok(42 * NANOS_PER_SEC));
    // The first btime line counts.
    assert_eq!(parse_boot_time("btime 1\nbtime 2\n"), Ok(NANOS_PER_SEC));
    assert_eq!(parse_boot_time(""), Err(BootTimeError::Missing));
    assert_eq!(parse_boot_time("cpu 1\n"), Err(BootTimeError::Missing));
    assert_eq!(
        parse_boot_time("btimex 5\n"),
        Err(BootTimeError::Missing),
        "only the exact key"
    );
    for bad in [
        "btime",
        "btime x",
        "btime 1 2",
        "btime -1",
        "btime +1",
        "btime 1.5",
    ] {
        assert_eq!(parse_boot_time(bad), Err(BootTimeError::Malformed), "{bad}");
    }
    // u64::MAX seconds parse but overflow nanoseconds; larger numbers do not parse at all.
    assert_eq!(
        parse_boot_time("btime 18446744073709551615"),
        Err(BootTimeError::OutOfRange)
    );
    assert_eq!(
        parse_boot_time("btime 99999999999999999999999"),
        Err(BootTimeError::OutOfRange)
    );
    assert_eq!(
        parse_boot_time("btime 18446744073"),
        Ok(18_446_744_073 * NANOS_PER_SEC)
    );
    assert_eq!(
        parse_boot_time("btime 18446744074"),
        Err(BootTimeError::OutOfRange)
    );
}

/// `btime` of this machine agrees with "now minus /proc/uptime" to within a few seconds.
#[test]
fn reads_this_machines_boot_time() {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let boot = parse_boot_time(&stat).unwrap();
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let estimate = now - uptime;
    let btime = boot as f64 / NANOS_PER_SEC as f64;
    assert!(
        (btime - estimate).abs() < 5.0,
        "btime {btime} vs now - uptime {estimate}"
    );
}

#[test]
fn text_fields_are_bounded_and_errors_name_the_field() {
    let mut info = SystemInfo::new();
    let max = "x".repeat(UTS_FIELD_LEN);
    info.set_hostname(&max).unwrap();
    assert_eq!(info.hostname.as_str(), max);
    let too_long = "y".repeat(UTS_FIELD_LEN + 1);
    assert_eq!(
        info.set_hostname(&too_long),
        Err(FieldTooLong {
            field: SystemField::Hostname,
            len: UTS_FIELD_LEN + 1,
            max: UTS_FIELD_LEN
        })
    );
    assert_eq!(info.hostname.as_str(), max, "unchanged after an error");
    // Multi-byte text counts bytes.
    let wide = "é".repeat(UTS_FIELD_LEN / 2 + 1);
    let err = info.set_kernel_release(&wide).unwrap_err();
    assert_eq!(err.field, SystemField::KernelRelease);
    assert_eq!(
        err.to_string(),
        format!("kernel_release takes at most 64 bytes, got {}", wide.len())
    );
    assert!(info.set_architecture(&too_long).is_err());
    assert!(info.set_watchpost_version(&"v".repeat(65)).is_err());
    info.set_watchpost_version("0.1.0").unwrap();
    assert_eq!(info.watchpost_version.as_str(), "0.1.0");
}

#[test]
fn architecture_maps_to_a_syscall_table() {
    let mut info = SystemInfo::new();
    assert_eq!(info.arch(), None);
    info.set_architecture("aarch64").unwrap();
    assert_eq!(info.arch(), Some(Arch::Aarch64));
    info.set_architecture("x86_64").unwrap();
    assert_eq!(info.arch(), Some(Arch::X86_64));
    info.set_architecture("armv7l").unwrap();
    assert_eq!(info.arch(), None);
}

#[test]
fn os_version_prefers_version_id_then_version() {
    let mut info = SystemInfo::new();
    let both = "NAME=\"Ubuntu\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\nVERSION_ID=\"22.04\"\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\n";
    info.apply_os_release(&OsRelease::new(both)).unwrap();
    assert_eq!(info.os_name.as_str(), "Ubuntu");
    assert_eq!(info.os_version.as_str(), "22.04");
    assert_eq!(info.os_pretty_name.as_str(), "Ubuntu 22.04.4 LTS");

    let version_only = "NAME=Foo\nVERSION=\"7 (Seven)\"\n";
    info.apply_os_release(&OsRelease::new(version_only))
        .unwrap();
    assert_eq!(info.os_version.as_str(), "7 (Seven)");

    // Neither: empty version; missing NAME/PRETTY_NAME take the man page's default.
    let rolling = "ID=arch\nBUILD_ID=rolling\n";
    info.apply_os_release(&OsRelease::new(rolling)).unwrap();
    assert_eq!(info.os_name.as_str(), "Linux");
    assert_eq!(info.os_version.as_str(), "");
    assert_eq!(info.os_pretty_name.as_str(), "Linux");
}

#[test]
fn os_release_too_long_changes_nothing() {
    let mut info = SystemInfo::new();
    info.apply_os_release(&OsRelease::new("NAME=Before\nVERSION_ID=1\n"))
        .unwrap();
    let long = "p".repeat(OS_TEXT_LEN + 1);
    let text = format!("NAME=After\nVERSION_ID=2\nPRETTY_NAME=\"{long}\"\n");
    assert_eq!(
        info.apply_os_release(&OsRelease::new(&text)),
        Err(FieldTooLong {
            field: SystemField::OsPrettyName,
            len: OS_TEXT_LEN + 1,
            max: OS_TEXT_LEN
        })
    );
    assert_eq!(info.os_name.as_str(), "Before");
    assert_eq!(info.os_version.as_str(), "1");
}

/// Collects this machine's facts the way the daemon will, end to end.
#[test]
fn collects_this_machines_system_info() {
    let mut info = SystemInfo::new();
    info.set_architecture(std::env::consts::ARCH).unwrap();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    info.set_kernel_release(release.trim()).unwrap();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    info.set_hostname(hostname.trim()).unwrap();
    info.boot_time = parse_boot_time(&std::fs::read_to_string("/proc/stat").unwrap()).unwrap();
    let os_release = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap();
    info.apply_os_release(&OsRelease::new(&os_release)).unwrap();
    for kind in NamespaceKind::ALL {
        let target = std::fs::read_link(format!("/proc/self/ns/{}", kind.file_name())).unwrap();
        info.init_namespaces
            .record_link(kind, target.to_str().unwrap())
            .unwrap();
    }
    assert_eq!(info.arch(), Arch::host());
    assert!(info.kernel_release.starts_with(char::is_numeric));
    assert!(!info.os_name.is_empty());
    assert!(info.boot_time > 0);
    assert_eq!(info.init_namespaces.len(), 10);
}

#[test]
fn system_store_contract() {
    let mut info = SystemInfo::new();
    info.set_hostname("gateway-7").unwrap();
    let mut store = SystemStore::new(info.clone());
    assert_eq!(store.name(), "system");
    assert_eq!(store.len(), 1);
    assert_eq!(store.capacity(), 1);
    let first: *const SystemInfo = store.get_system_info(10);
    let second: *const SystemInfo = store.get_system_info(30);
    assert!(std::ptr::eq(first, second), "the same record every time");
    assert_eq!(store.get_system_info(20), &info);
    let m = store.metrics();
    assert_eq!(m.item_count, 1);
    assert_eq!(m.success_count, 3);
    assert_eq!(m.cache_hits, 3);
    assert_eq!(m.cache_misses, 0);
    assert_eq!(m.error_count, 0);
    assert_eq!(m.last_access, 30);
    // `info()` does not count.
    assert_eq!(store.info().hostname.as_str(), "gateway-7");
    assert_eq!(store.metrics().success_count, 3);
    let health = store.health(40);
    assert_eq!(health.status, HealthStatus::Healthy);
    assert_eq!(health.last_check, 40);
}

proptest! {
    #[test]
    fn namespace_links_round_trip(kind in "[a-z_]{1,20}", inode in any::<u32>()) {
        let text = format!("{kind}:[{inode}]");
        prop_assert_eq!(parse_namespace_link(&text), Ok((kind.as_str(), inode)));
    }

    #[test]
    fn parsers_never_panic(text in "\\PC{0,80}|[a-z:\\[\\]0-9 \\n]{0,40}") {
        let _ = parse_namespace_link(&text);
        let _ = parse_boot_time(&text);
        let mut ns = InitNamespaces::new();
        for kind in NamespaceKind::ALL {
            let _ = ns.record_link(kind, &text);
        }
    }

    #[test]
    fn boot_time_round_trips(seconds in 0u64..=u64::MAX / NANOS_PER_SEC) {
        let text = format!("cpu 1 2\nbtime {seconds}\n");
        prop_assert_eq!(parse_boot_time(&text), Ok(seconds * NANOS_PER_SEC));
    }
}

#[cfg(feature = "serde")]
#[test]
fn system_info_survives_a_postcard_round_trip() {
    let mut info = SystemInfo::new();
    info.set_architecture("aarch64").unwrap();
    info.set_hostname("edge-1").unwrap();
    info.boot_time = 1_700_000_000 * NANOS_PER_SEC;
    info.apply_os_release(&OsRelease::new(
        "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n",
    ))
    .unwrap();
    info.init_namespaces.set(NamespaceKind::Net, 4026531840);
    let bytes = postcard::to_allocvec(&info).unwrap();
    let back: SystemInfo = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, info);
}
