//! Immutable system facts (the reference's `SystemInfo`) and the parsers that feed them.
//!
//! [`SystemInfo`] is plain bounded data: `heapless` strings and a fixed array of namespace inodes,
//! no allocation, usable without any feature. The daemon fills it once at start from `uname`,
//! `/etc/os-release` ([`SystemInfo::apply_os_release`]), `/proc/stat` ([`parse_boot_time`]) and
//! `/proc/1/ns/*` ([`parse_namespace_link`], [`InitNamespaces::record_link`]); [`SystemStore`]
//! serves it under the store contract.
//!
//! # Decisions
//!
//! - **OS version** comes from `VERSION_ID` (`22.04`, `12`), falling back to `VERSION` only when
//!   `VERSION_ID` is absent. The reference reads `VERSION` (`22.04.4 LTS (Jammy Jellyfish)`), but
//!   its own API documentation shows `OSVersion: "22.04"`, which is `VERSION_ID`: the field is
//!   meant for programs (detectors compare versions), and the human form is already in
//!   `os_pretty_name`. Missing `NAME` and `PRETTY_NAME` take os-release(5)'s default, `Linux`.
//! - **Boot time** is `btime` from `/proc/stat` (whole seconds since the epoch): fixed for the whole
//!   boot, the same in every process and after a daemon restart. The reference derives it from
//!   "wall clock now minus the eBPF clock", which drifts between runs and makes process entity IDs
//!   disagree (see DESIGN.md).
//! - **Too-long text** is an error naming the field ([`FieldTooLong`]), never silently cut: the
//!   `uname` fields cannot exceed their 64-byte bound on Linux, and an os-release value of more than
//!   [`OS_TEXT_LEN`] bytes is worth a message, not a wrong name.
//! - **Namespace inodes** are `u32`, as the kernel's `ns_common.inum` and the reference are.

use core::fmt;

use crate::error::store_names;
use crate::health::HealthInfo;
use crate::metrics::{DataStoreMetrics, StoreMetrics};
use crate::os_release::{OsRelease, keys};
use crate::syscall::Arch;
use crate::time::{EpochNanos, NANOS_PER_SEC};

/// Bytes kept for each `uname` field (the kernel's `__NEW_UTS_LEN`).
pub const UTS_FIELD_LEN: usize = 64;
/// Bytes kept for each os-release text (name, version, pretty name).
pub const OS_TEXT_LEN: usize = 128;
/// Bytes kept for the watchpost version string.
pub const VERSION_LEN: usize = 64;

/// The namespaces of `/proc/<pid>/ns/` the reference records for the init process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NamespaceKind {
    /// `cgroup`
    Cgroup,
    /// `ipc`
    Ipc,
    /// `mnt`
    Mnt,
    /// `net`
    Net,
    /// `pid`
    Pid,
    /// `pid_for_children` (a `pid` namespace)
    PidForChildren,
    /// `time`
    Time,
    /// `time_for_children` (a `time` namespace)
    TimeForChildren,
    /// `user`
    User,
    /// `uts`
    Uts,
}

impl NamespaceKind {
    /// Every kind, in the order [`InitNamespaces::iter`] reports them.
    pub const ALL: [NamespaceKind; 10] = [
        NamespaceKind::Cgroup,
        NamespaceKind::Ipc,
        NamespaceKind::Mnt,
        NamespaceKind::Net,
        NamespaceKind::Pid,
        NamespaceKind::PidForChildren,
        NamespaceKind::Time,
        NamespaceKind::TimeForChildren,
        NamespaceKind::User,
        NamespaceKind::Uts,
    ];

    /// The file name in `/proc/<pid>/ns/`, which is also the reference's map key.
    pub const fn file_name(self) -> &'static str {
        match self {
            NamespaceKind::Cgroup => "cgroup",
            NamespaceKind::Ipc => "ipc",
            NamespaceKind::Mnt => "mnt",
            NamespaceKind::Net => "net",
            NamespaceKind::Pid => "pid",
            NamespaceKind::PidForChildren => "pid_for_children",
            NamespaceKind::Time => "time",
            NamespaceKind::TimeForChildren => "time_for_children",
            NamespaceKind::User => "user",
            NamespaceKind::Uts => "uts",
        }
    }

    /// The type the link's target names: `pid:[...]` for both `pid` and `pid_for_children`,
    /// `time:[...]` for both time entries, otherwise the file name.
    pub const fn link_type(self) -> &'static str {
        match self {
            NamespaceKind::PidForChildren => "pid",
            NamespaceKind::TimeForChildren => "time",
            other => other.file_name(),
        }
    }

    /// The kind whose file in `/proc/<pid>/ns/` is `name`.
    pub fn from_file_name(name: &str) -> Option<NamespaceKind> {
        NamespaceKind::ALL
            .into_iter()
            .find(|kind| kind.file_name() == name)
    }

    /// Position in [`NamespaceKind::ALL`].
    const fn index(self) -> usize {
        self as usize
    }
}

/// Why a `/proc/<pid>/ns/<name>` link target could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NamespaceLinkError {
    /// Not of the form `<type>:[<decimal inode>]`.
    Malformed,
    /// The inode does not fit in 32 bits.
    InodeOutOfRange,
    /// The link names a different namespace type than the entry it was read from.
    TypeMismatch,
}

impl fmt::Display for NamespaceLinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NamespaceLinkError::Malformed => "expected a namespace link like `net:[4026531840]`",
            NamespaceLinkError::InodeOutOfRange => "namespace inode does not fit in 32 bits",
            NamespaceLinkError::TypeMismatch => "namespace link names another namespace type",
        })
    }
}

impl core::error::Error for NamespaceLinkError {}

/// Splits a namespace link target, `net:[4026531840]`, into its type (`"net"`) and inode.
///
/// # Errors
/// [`NamespaceLinkError::Malformed`] unless the text is exactly `<type>:[<digits>]` with a type of
/// `[a-z_]`; [`NamespaceLinkError::InodeOutOfRange`] for an inode above `u32::MAX`.
pub fn parse_namespace_link(target: &str) -> Result<(&str, u32), NamespaceLinkError> {
    let (kind, rest) = target
        .split_once(':')
        .ok_or(NamespaceLinkError::Malformed)?;
    if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(NamespaceLinkError::Malformed);
    }
    let digits = rest
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or(NamespaceLinkError::Malformed)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NamespaceLinkError::Malformed);
    }
    // All digits: a parse failure can only be overflow.
    let inode = digits
        .parse::<u32>()
        .map_err(|_| NamespaceLinkError::InodeOutOfRange)?;
    Ok((kind, inode))
}

/// The init process's namespaces: inode by [`NamespaceKind`], `None` when not recorded (e.g. no
/// `time` namespace before Linux 5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InitNamespaces {
    /// Indexed by `NamespaceKind as usize` (the order of [`NamespaceKind::ALL`]).
    inodes: [Option<u32>; 10],
}

impl InitNamespaces {
    /// None recorded.
    pub const fn new() -> Self {
        InitNamespaces { inodes: [None; 10] }
    }

    /// The inode of `kind`, if recorded.
    pub fn get(&self, kind: NamespaceKind) -> Option<u32> {
        self.inodes.get(kind.index()).copied().flatten()
    }

    /// The inode by the reference's key (`"net"`, `"pid_for_children"`, ...).
    pub fn get_by_name(&self, name: &str) -> Option<u32> {
        NamespaceKind::from_file_name(name).and_then(|kind| self.get(kind))
    }

    /// Records `inode` for `kind`, replacing any earlier value.
    pub fn set(&mut self, kind: NamespaceKind, inode: u32) {
        if let Some(slot) = self.inodes.get_mut(kind.index()) {
            *slot = Some(inode);
        }
    }

    /// Parses the target of the `/proc/1/ns/<kind>` link and records its inode.
    ///
    /// # Errors
    /// Those of [`parse_namespace_link`], and [`NamespaceLinkError::TypeMismatch`] when the target
    /// names another type than `kind`'s ([`NamespaceKind::link_type`]). Nothing is recorded then.
    pub fn record_link(
        &mut self,
        kind: NamespaceKind,
        target: &str,
    ) -> Result<u32, NamespaceLinkError> {
        let (link_type, inode) = parse_namespace_link(target)?;
        if link_type != kind.link_type() {
            return Err(NamespaceLinkError::TypeMismatch);
        }
        self.set(kind, inode);
        Ok(inode)
    }

    /// The recorded namespaces as `(kind, inode)`, in [`NamespaceKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (NamespaceKind, u32)> + '_ {
        NamespaceKind::ALL
            .into_iter()
            .filter_map(|kind| self.get(kind).map(|inode| (kind, inode)))
    }

    /// Number recorded.
    pub fn len(&self) -> usize {
        self.inodes.iter().filter(|inode| inode.is_some()).count()
    }

    /// Whether none is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why `btime` could not be read from `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BootTimeError {
    /// No `btime` line.
    Missing,
    /// The `btime` line is not `btime <decimal seconds>`.
    Malformed,
    /// The seconds do not fit in epoch nanoseconds (`u64`).
    OutOfRange,
}

impl fmt::Display for BootTimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BootTimeError::Missing => "no `btime` line in /proc/stat",
            BootTimeError::Malformed => "expected `btime <seconds>` in /proc/stat",
            BootTimeError::OutOfRange => "`btime` does not fit in epoch nanoseconds",
        })
    }
}

impl core::error::Error for BootTimeError {}

/// The boot time from the text of `/proc/stat`: its `btime` line (seconds since the epoch),
/// in epoch nanoseconds. The first `btime` line counts.
///
/// # Errors
/// See [`BootTimeError`].
pub fn parse_boot_time(proc_stat: &str) -> Result<EpochNanos, BootTimeError> {
    let line = proc_stat
        .lines()
        .find(|line| line.split_whitespace().next() == Some("btime"))
        .ok_or(BootTimeError::Missing)?;
    let mut words = line.split_whitespace().skip(1);
    let (Some(seconds), None) = (words.next(), words.next()) else {
        return Err(BootTimeError::Malformed);
    };
    if !seconds.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BootTimeError::Malformed);
    }
    let seconds = seconds
        .parse::<u64>()
        .map_err(|_| BootTimeError::OutOfRange)?;
    seconds
        .checked_mul(NANOS_PER_SEC)
        .ok_or(BootTimeError::OutOfRange)
}

/// A text field of [`SystemInfo`], for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SystemField {
    /// [`SystemInfo::architecture`]
    Architecture,
    /// [`SystemInfo::kernel_release`]
    KernelRelease,
    /// [`SystemInfo::hostname`]
    Hostname,
    /// [`SystemInfo::os_name`]
    OsName,
    /// [`SystemInfo::os_version`]
    OsVersion,
    /// [`SystemInfo::os_pretty_name`]
    OsPrettyName,
    /// [`SystemInfo::watchpost_version`]
    WatchpostVersion,
}

impl SystemField {
    /// The field's name, snake_case.
    pub const fn as_str(self) -> &'static str {
        match self {
            SystemField::Architecture => "architecture",
            SystemField::KernelRelease => "kernel_release",
            SystemField::Hostname => "hostname",
            SystemField::OsName => "os_name",
            SystemField::OsVersion => "os_version",
            SystemField::OsPrettyName => "os_pretty_name",
            SystemField::WatchpostVersion => "watchpost_version",
        }
    }
}

/// A text is longer than its [`SystemInfo`] field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FieldTooLong {
    /// Which field.
    pub field: SystemField,
    /// Bytes offered.
    pub len: usize,
    /// Bytes the field holds.
    pub max: usize,
}

impl fmt::Display for FieldTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} takes at most {} bytes, got {}",
            self.field.as_str(),
            self.max,
            self.len
        )
    }
}

impl core::error::Error for FieldTooLong {}

/// `text` as a bounded string, or the error naming `field`.
fn bounded<const N: usize>(
    field: SystemField,
    text: &str,
) -> Result<heapless::String<N>, FieldTooLong> {
    heapless::String::try_from(text).map_err(|_| FieldTooLong {
        field,
        len: text.len(),
        max: N,
    })
}

/// Immutable facts about the system, collected once at start (the reference's `SystemInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SystemInfo {
    /// CPU architecture as `uname -m` prints it: `x86_64`, `aarch64`.
    pub architecture: heapless::String<UTS_FIELD_LEN>,
    /// Kernel release as `uname -r` prints it: `6.18.4-generic`.
    pub kernel_release: heapless::String<UTS_FIELD_LEN>,
    /// Host name (`uname -n`).
    pub hostname: heapless::String<UTS_FIELD_LEN>,
    /// Boot time, epoch nanoseconds (from `/proc/stat` `btime`); 0 if unknown.
    pub boot_time: EpochNanos,
    /// When watchpost started, epoch nanoseconds.
    pub watchpost_start_time: EpochNanos,
    /// os-release `NAME`: `Ubuntu`.
    pub os_name: heapless::String<OS_TEXT_LEN>,
    /// os-release `VERSION_ID` (else `VERSION`): `22.04`.
    pub os_version: heapless::String<OS_TEXT_LEN>,
    /// os-release `PRETTY_NAME`: `Ubuntu 22.04.4 LTS`.
    pub os_pretty_name: heapless::String<OS_TEXT_LEN>,
    /// watchpost's own version.
    pub watchpost_version: heapless::String<VERSION_LEN>,
    /// The init process's namespaces.
    pub init_namespaces: InitNamespaces,
}

impl SystemInfo {
    /// Everything empty or zero; fill it with the setters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The architecture, if it has a syscall table here.
    pub fn arch(&self) -> Option<Arch> {
        Arch::from_machine(&self.architecture)
    }

    /// Sets [`architecture`](Self::architecture).
    ///
    /// # Errors
    /// [`FieldTooLong`] beyond [`UTS_FIELD_LEN`] bytes; the field is unchanged then.
    pub fn set_architecture(&mut self, machine: &str) -> Result<(), FieldTooLong> {
        self.architecture = bounded(SystemField::Architecture, machine)?;
        Ok(())
    }

    /// Sets [`kernel_release`](Self::kernel_release).
    ///
    /// # Errors
    /// [`FieldTooLong`] beyond [`UTS_FIELD_LEN`] bytes; the field is unchanged then.
    pub fn set_kernel_release(&mut self, release: &str) -> Result<(), FieldTooLong> {
        self.kernel_release = bounded(SystemField::KernelRelease, release)?;
        Ok(())
    }

    /// Sets [`hostname`](Self::hostname).
    ///
    /// # Errors
    /// [`FieldTooLong`] beyond [`UTS_FIELD_LEN`] bytes; the field is unchanged then.
    pub fn set_hostname(&mut self, hostname: &str) -> Result<(), FieldTooLong> {
        self.hostname = bounded(SystemField::Hostname, hostname)?;
        Ok(())
    }

    /// Sets [`watchpost_version`](Self::watchpost_version).
    ///
    /// # Errors
    /// [`FieldTooLong`] beyond [`VERSION_LEN`] bytes; the field is unchanged then.
    pub fn set_watchpost_version(&mut self, version: &str) -> Result<(), FieldTooLong> {
        self.watchpost_version = bounded(SystemField::WatchpostVersion, version)?;
        Ok(())
    }

    /// Fills the OS name, version and pretty name from an os-release file: `NAME` (default
    /// `Linux`), `VERSION_ID` else `VERSION` (default empty), `PRETTY_NAME` (default `Linux`).
    /// Malformed lines of the file are ignored (see [`OsRelease::get`]).
    ///
    /// # Errors
    /// [`FieldTooLong`] if a decoded value exceeds [`OS_TEXT_LEN`] bytes; then none of the three
    /// fields is changed.
    pub fn apply_os_release(&mut self, os_release: &OsRelease<'_>) -> Result<(), FieldTooLong> {
        let text = |field: SystemField, value: Option<crate::os_release::Value<'_>>, default| {
            match value {
                Some(value) => value.to_bounded::<OS_TEXT_LEN>().map_err(|e| FieldTooLong {
                    field,
                    len: e.needed,
                    max: OS_TEXT_LEN,
                }),
                None => bounded(field, default),
            }
        };
        let name = text(SystemField::OsName, os_release.get(keys::NAME), "Linux")?;
        let version = text(
            SystemField::OsVersion,
            os_release
                .get(keys::VERSION_ID)
                .or_else(|| os_release.get(keys::VERSION)),
            "",
        )?;
        let pretty = text(
            SystemField::OsPrettyName,
            os_release.get(keys::PRETTY_NAME),
            "Linux",
        )?;
        self.os_name = name;
        self.os_version = version;
        self.os_pretty_name = pretty;
        Ok(())
    }
}

/// The reference's system store: one immutable [`SystemInfo`] under the store contract. Always
/// healthy; `item_count` is 1.
#[derive(Debug, Clone)]
pub struct SystemStore {
    info: SystemInfo,
    metrics: StoreMetrics,
}

impl SystemStore {
    /// Serves `info`, which never changes afterwards.
    pub fn new(info: SystemInfo) -> Self {
        SystemStore {
            info,
            metrics: StoreMetrics::new(),
        }
    }

    /// The store's registry name, `"system"`.
    pub const fn name(&self) -> &'static str {
        store_names::SYSTEM
    }

    /// The system facts (never fails; counted as a hit).
    pub fn get_system_info(&mut self, now: EpochNanos) -> &SystemInfo {
        self.metrics.hit(now);
        &self.info
    }

    /// The system facts without counting a request (for snapshots and the store's own use).
    pub const fn info(&self) -> &SystemInfo {
        &self.info
    }

    /// Always 1: the store holds one record.
    pub const fn len(&self) -> usize {
        1
    }

    /// Never empty.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Always 1.
    pub const fn capacity(&self) -> usize {
        1
    }

    /// Always healthy: the facts were collected before the store was built.
    pub fn health(&self, now: EpochNanos) -> HealthInfo {
        HealthInfo::healthy(now)
    }

    /// The reference's metrics; `item_count` is 1.
    pub fn metrics(&self) -> DataStoreMetrics {
        self.metrics.snapshot(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_indexed_in_all_order() {
        for (i, kind) in NamespaceKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
            assert_eq!(NamespaceKind::from_file_name(kind.file_name()), Some(kind));
        }
    }
}
