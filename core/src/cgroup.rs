//! Which container (and Kubernetes pod) a process belongs to, read from its cgroup path.
//!
//! The kernel knows nothing about containers; runtimes name the cgroup they create after the
//! container, each in its own way. This module turns a cgroup path, one `/proc/<pid>/cgroup` line
//! or a whole `/proc/<pid>/cgroup` file into a [`CgroupContainer`]: runtime, container ID, pod UID
//! when the path is a kubelet one, and whether the path is the container's own cgroup or a
//! sub-cgroup inside it. Allocation-free, no features needed, never panics (it is fuzzed).
//!
//! # Accepted forms
//! Paths are relative to the cgroup root, as `/proc/<pid>/cgroup` prints them (strip a mount point
//! such as `/sys/fs/cgroup/memory` first). Components are read from the root down; the **first**
//! (outermost) container component wins, so a nested container (Docker in Docker, systemd inside a
//! container) is reported as the container the host's runtime knows, with
//! [`CgroupContainer::is_container_root`] `false`.
//!
//! | component | runtime | example |
//! |---|---|---|
//! | `docker-<hex64>[.scope]` | Docker | `/system.slice/docker-<id>.scope` |
//! | `cri-containerd-<hex64>[.scope]` | containerd | `/kubepods.slice/…/cri-containerd-<id>.scope` |
//! | `crio-<hex64>[.scope]` | CRI-O | `/kubepods.slice/…/crio-<id>.scope`, `/kubepods/…/crio-<id>` |
//! | `libpod-<hex64>[.scope]` | podman | `/machine.slice/libpod-<id>.scope`, `/libpod_parent/libpod-<id>` |
//! | `nerdctl-<hex64>[.scope]` | containerd | `/system.slice/nerdctl-<id>.scope` |
//! | `<slice>:cri-containerd:<hex64>` (also `:crio:`, `:docker:`, `:nerdctl:`) | by marker | `/system.slice/containerd.service/kubepods-…-pod<uid>.slice:cri-containerd:<id>` |
//! | `<hex64>` under `docker` or `actions_job` | Docker | `/docker/<id>`, `/actions_job/<id>` |
//! | `<hex64>` under a kubelet pod directory | containerd | `/kubepods/besteffort/pod<uid>/<id>` |
//! | `<hex64>` directly under a top-level directory | containerd | `/k8s.io/<id>` (`ctr`, nerdctl) |
//! | `<hex64>` anywhere else | unknown | a runtime we cannot name |
//! | `<id>` directly under a configured containerd namespace | containerd | `/default/my-ctr` (`ctr`) |
//! | `<8-4-4-4-4 hex>` | Garden | `/garden/<id>` |
//!
//! Bare 64-hex IDs below a kubelet pod directory are reported as containerd, as Tracee does:
//! dockershim (the only other runtime using that layout) left Kubernetes in 1.24.
//!
//! Not containers (→ `None`): conmon, the monitor podman and CRI-O put next to each container
//! (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`, a directory named `conmon`) — reaching
//! one ends the search; the podman pod directory (`/libpod_parent/<podid>/`) and kubelet pod and
//! QoS directories (they only supply the pod UID); and everything else (`/`, `init.scope`,
//! `/user.slice/…`, `/system.slice/sshd.service`).
//!
//! # The plain containerd form `/<namespace>/<id>`
//! `ctr run` puts a container in `/<namespace>/<container-id>`, where the ID is any containerd
//! identifier. Two-level paths are also what ordinary cgroups look like
//! (`/system.slice/cron.service`, `/lxc/web`), so a non-hex ID is accepted only when the first
//! component is one of the namespaces in [`CgroupParseOptions::containerd_namespaces`] (default
//! [`DEFAULT_CONTAINERD_NAMESPACES`]: the daemon can pass the namespaces containerd reports). A
//! 64-hex ID is unambiguous and is accepted under any top-level directory that could be a
//! containerd namespace (containerd's name grammar, not a systemd unit such as `*.slice`, and not a
//! directory with its own rule above).
//!
//! # IDs
//! Hex IDs must be exactly 64 **lowercase** hex digits: runtimes never write uppercase, so an
//! uppercase name is some other cgroup. Garden IDs are lowercase hex too. `ctr` IDs follow
//! containerd's identifier grammar (see [`ContainerId`]).
//!
//! # Pod UID
//! From `pod<uid>` (cgroupfs driver; needs a `kubepods` ancestor) or
//! `…-pod<uid_with_underscores>.slice` (systemd driver; the component itself names `kubepods`),
//! normalised to the dashed API form.
//! Kept only when it is a UUID or a static pod's 32-hex-digit hash; the container is still
//! reported when the UID is malformed (`pod123`), just without it.

use core::fmt;

use crate::container::id::{is_garden_id, is_hex64};
use crate::container::{ContainerId, PodUid, Runtime};

/// containerd namespaces under which `/<namespace>/<id>` is taken as a `ctr` container even when
/// the ID is not 64 hex digits: containerd's default namespace and the one CRI uses.
pub const DEFAULT_CONTAINERD_NAMESPACES: &[&str] = &["default", "k8s.io"];

/// Knobs for the one ambiguous form; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupParseOptions<'a> {
    /// Namespaces whose top-level directories hold `ctr` containers with arbitrary IDs.
    pub containerd_namespaces: &'a [&'a str],
}

impl Default for CgroupParseOptions<'_> {
    fn default() -> Self {
        CgroupParseOptions {
            containerd_namespaces: DEFAULT_CONTAINERD_NAMESPACES,
        }
    }
}

/// A container found in a cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CgroupContainer {
    /// Runtime named by the path.
    pub runtime: Runtime,
    /// Container ID.
    pub id: ContainerId,
    /// Kubernetes pod UID (dashed), when the path is a kubelet path with a well-formed UID.
    pub pod_uid: Option<PodUid>,
    /// `true` when the path ends at the container's own cgroup; `false` when it continues into a
    /// sub-cgroup created inside the container (systemd or another runtime in the container).
    pub is_container_root: bool,
}

/// What one path component says.
enum Component<'a> {
    /// A container: runtime, ID text (already validated), pod UID carried by the component itself.
    Container(Runtime, &'a str, Option<PodUid>),
    /// A conmon monitor: nothing at or below it is a container.
    Monitor,
    /// A kubelet pod directory or slice, with its UID when well-formed.
    PodDir(Option<PodUid>),
    /// Anything else.
    Other,
}

/// Runtime markers of the `<prefix>-<id>[.scope]` and `<slice>:<prefix>:<id>` forms.
const MARKERS: [(&str, Runtime); 5] = [
    ("docker", Runtime::Docker),
    ("cri-containerd", Runtime::Containerd),
    ("crio", Runtime::Crio),
    ("libpod", Runtime::Podman),
    ("nerdctl", Runtime::Containerd),
];

/// Top-level directories with a rule of their own, never taken as containerd namespaces.
const RESERVED_TOP_LEVEL: [&str; 3] = ["docker", "actions_job", "libpod_parent"];

/// systemd unit suffixes: a top-level directory with one is a unit, not a containerd namespace.
const UNIT_SUFFIXES: [&str; 3] = [".slice", ".scope", ".service"];

/// Where we are while walking a path from the root.
#[derive(Default)]
struct Walk<'a> {
    /// Components seen so far.
    index: usize,
    /// The first component (`""` before it is seen).
    first: &'a str,
    /// The previous component.
    parent: &'a str,
    /// Whether the previous component was a kubelet pod directory.
    parent_is_pod_dir: bool,
    /// Whether a component naming `kubepods` has been seen.
    in_kubepods: bool,
}

/// Finds the container in a cgroup path with the default options. `None` when the path is not a
/// container's (or is malformed: it must start with `/`).
pub fn parse_cgroup_path(path: &str) -> Option<CgroupContainer> {
    parse_cgroup_path_with(path, &CgroupParseOptions::default())
}

/// [`parse_cgroup_path`] with explicit options.
pub fn parse_cgroup_path_with(
    path: &str,
    options: &CgroupParseOptions<'_>,
) -> Option<CgroupContainer> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts = path.split('/').filter(|c| !c.is_empty()).peekable();
    let mut walk = Walk::default();
    let mut pod_uid: Option<PodUid> = None;
    while let Some(part) = parts.next() {
        if walk.index == 0 {
            walk.first = part;
        }
        let is_last = parts.peek().is_none();
        let mut is_pod_dir = false;
        match classify(part, &walk, options) {
            Component::Container(runtime, id, own_uid) => {
                return Some(CgroupContainer {
                    runtime,
                    id: ContainerId::new(id).ok()?,
                    pod_uid: own_uid.or(pod_uid),
                    is_container_root: is_last,
                });
            }
            Component::Monitor => return None,
            Component::PodDir(uid) => {
                is_pod_dir = true;
                if uid.is_some() {
                    pod_uid = uid;
                }
            }
            Component::Other => {}
        }
        if part.contains("kubepods") {
            walk.in_kubepods = true;
        }
        walk.parent = part;
        walk.parent_is_pod_dir = is_pod_dir;
        walk.index = walk.index.saturating_add(1);
    }
    None
}

fn classify<'a>(part: &'a str, walk: &Walk<'_>, options: &CgroupParseOptions<'_>) -> Component<'a> {
    if part == "conmon" || part.starts_with("crio-conmon-") || part.starts_with("libpod-conmon-") {
        return Component::Monitor;
    }
    if part.contains(':') {
        return classify_colon_form(part);
    }
    let stem = part.strip_suffix(".scope").unwrap_or(part);
    for (marker, runtime) in MARKERS {
        if let Some(id) = stem
            .strip_prefix(marker)
            .and_then(|rest| rest.strip_prefix('-'))
            && is_hex64(id)
        {
            return Component::Container(runtime, id, None);
        }
    }
    if let Some(uid) = kubelet_pod_slice_uid(part) {
        return Component::PodDir(uid);
    }
    if walk.in_kubepods
        && let Some(uid) = part.strip_prefix("pod")
    {
        return Component::PodDir(PodUid::new(uid));
    }
    if is_hex64(part) {
        let runtime = match walk.parent {
            "docker" | "actions_job" => Runtime::Docker,
            // A podman pod's directory: its members are `libpod-<id>` below it.
            "libpod_parent" => return Component::Other,
            _ if walk.parent_is_pod_dir => Runtime::Containerd,
            _ if walk.index == 1 && could_be_containerd_namespace(walk.first) => {
                Runtime::Containerd
            }
            _ => Runtime::Unknown,
        };
        return Component::Container(runtime, part, None);
    }
    if walk.index == 1
        && options.containerd_namespaces.contains(&walk.first)
        && crate::container::id::check_identifier(part).is_ok()
    {
        return Component::Container(Runtime::Containerd, part, None);
    }
    if is_garden_id(part) {
        return Component::Container(Runtime::Garden, part, None);
    }
    Component::Other
}

/// `<slice>:<marker>:<hex64>`: runc's systemd cgroup spec (`slice:prefix:name`) written as a
/// cgroupfs path, as containerd does when kubelet uses the systemd driver but containerd doesn't.
fn classify_colon_form(part: &str) -> Component<'_> {
    let mut fields = part.split(':');
    let (Some(slice), Some(marker), Some(id), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Component::Other;
    };
    if !is_hex64(id) {
        return Component::Other;
    }
    match MARKERS.iter().find(|(m, _)| *m == marker) {
        Some(&(_, runtime)) => {
            Component::Container(runtime, id, kubelet_pod_slice_uid(slice).flatten())
        }
        None => Component::Other,
    }
}

/// For a kubelet pod slice of the systemd driver (`kubepods-besteffort-pod<uid>.slice`,
/// `kubepods-pod<uid>.slice`, kind's `kubelet-kubepods-…-pod<uid>.slice`): `Some(uid)` with the
/// UID when well-formed. `None` when `part` is not such a slice.
fn kubelet_pod_slice_uid(part: &str) -> Option<Option<PodUid>> {
    let stem = part.strip_suffix(".slice")?;
    if !stem.contains("kubepods") {
        return None;
    }
    let at = stem.rfind("-pod")?;
    let uid = stem.get(at.saturating_add(4)..)?;
    Some(PodUid::from_systemd(uid))
}

/// Whether a top-level directory may be a containerd namespace (see the module doc).
fn could_be_containerd_namespace(name: &str) -> bool {
    crate::container::id::check_identifier(name).is_ok()
        && !RESERVED_TOP_LEVEL.contains(&name)
        && !name.contains("kubepods")
        && !UNIT_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Why a `/proc/<pid>/cgroup` line could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CgroupLineError {
    /// Fewer than the three `:`-separated fields `id:controllers:path`.
    MissingField,
    /// The hierarchy ID is not a decimal `u32`.
    BadHierarchyId,
    /// The path does not start with `/`.
    PathNotAbsolute,
}

impl fmt::Display for CgroupLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupLineError::MissingField => "cgroup line is not 'id:controllers:path'",
            CgroupLineError::BadHierarchyId => "cgroup hierarchy id is not a decimal number",
            CgroupLineError::PathNotAbsolute => "cgroup path does not start with '/'",
        })
    }
}

impl core::error::Error for CgroupLineError {}

/// One line of `/proc/<pid>/cgroup`, borrowed: `N:controllers:/path` (cgroup v1) or `0::/path`
/// (the v2 unified hierarchy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupLine<'a> {
    /// Hierarchy ID (`0` for v2).
    pub hierarchy_id: u32,
    /// Comma-separated controllers (`cpu,cpuacct`, `name=systemd`); empty for v2.
    pub controllers: &'a str,
    /// The cgroup path, without the kernel's ` (deleted)` marker.
    pub path: &'a str,
    /// Whether the kernel marked the cgroup ` (deleted)` (v2: the process outlived its cgroup).
    pub deleted: bool,
}

impl<'a> CgroupLine<'a> {
    /// Parses one line; a trailing `\n` / `\r\n` is ignored. The path may contain `:` (the
    /// containerd systemd form does): only the first two separate fields.
    pub fn parse(line: &'a str) -> Result<Self, CgroupLineError> {
        let line = line.trim_end_matches(['\n', '\r']);
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(CgroupLineError::MissingField);
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CgroupLineError::BadHierarchyId);
        }
        let hierarchy_id = id.parse().map_err(|_| CgroupLineError::BadHierarchyId)?;
        let (path, deleted) = match path.strip_suffix(" (deleted)") {
            Some(p) => (p, true),
            None => (path, false),
        };
        if !path.starts_with('/') {
            return Err(CgroupLineError::PathNotAbsolute);
        }
        Ok(CgroupLine {
            hierarchy_id,
            controllers,
            path,
            deleted,
        })
    }

    /// Whether this is the cgroup v2 unified hierarchy's line (`0::/path`).
    pub fn is_unified(&self) -> bool {
        self.hierarchy_id == 0 && self.controllers.is_empty()
    }
}

/// The non-empty lines of a `/proc/<pid>/cgroup` file, parsed.
pub fn cgroup_lines(
    contents: &str,
) -> impl Iterator<Item = Result<CgroupLine<'_>, CgroupLineError>> + '_ {
    contents
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(CgroupLine::parse)
}

/// The container of one `/proc/<pid>/cgroup` line.
pub fn parse_cgroup_line(line: &str) -> Result<Option<CgroupContainer>, CgroupLineError> {
    let line = CgroupLine::parse(line)?;
    Ok(parse_cgroup_path(line.path))
}

/// The container a whole `/proc/<pid>/cgroup` file places the process in, with default options.
///
/// The v2 unified line (`0::`) is preferred when it names a container; otherwise the first v1
/// line that names one. Malformed lines are skipped (a process may race with the read); `None`
/// when no line names a container.
pub fn parse_proc_cgroup(contents: &str) -> Option<CgroupContainer> {
    parse_proc_cgroup_with(contents, &CgroupParseOptions::default())
}

/// [`parse_proc_cgroup`] with explicit options.
pub fn parse_proc_cgroup_with(
    contents: &str,
    options: &CgroupParseOptions<'_>,
) -> Option<CgroupContainer> {
    let mut first_v1 = None;
    for line in cgroup_lines(contents).flatten() {
        let Some(found) = parse_cgroup_path_with(line.path, options) else {
            continue;
        };
        if line.is_unified() {
            return Some(found);
        }
        if first_v1.is_none() {
            first_v1 = Some(found);
        }
    }
    first_v1
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn relative_and_empty_paths_are_not_containers() {
        assert_eq!(parse_cgroup_path(""), None);
        assert_eq!(parse_cgroup_path("docker/x"), None);
        assert_eq!(parse_cgroup_path("/"), None);
    }

    #[test]
    fn slice_uid_needs_kubepods() {
        assert!(kubelet_pod_slice_uid("machine-pod1.slice").is_none());
        assert_eq!(kubelet_pod_slice_uid("kubepods-pod123.slice"), Some(None));
        assert!(kubelet_pod_slice_uid("kubepods-besteffort.slice").is_none());
    }

    #[test]
    fn line_fields() {
        let line = CgroupLine::parse("4:cpu,cpuacct:/docker/x\n");
        assert_eq!(
            line,
            Ok(CgroupLine {
                hierarchy_id: 4,
                controllers: "cpu,cpuacct",
                path: "/docker/x",
                deleted: false
            })
        );
        let v2 = CgroupLine::parse("0::/a:b:c (deleted)");
        assert_eq!(
            v2.map(|l| (l.path, l.deleted, l.is_unified())),
            Ok(("/a:b:c", true, true))
        );
        assert_eq!(
            CgroupLine::parse("0:/x"),
            Err(CgroupLineError::MissingField)
        );
        assert_eq!(
            CgroupLine::parse("x::/"),
            Err(CgroupLineError::BadHierarchyId)
        );
        assert_eq!(
            CgroupLine::parse("+1::/"),
            Err(CgroupLineError::BadHierarchyId)
        );
        assert_eq!(
            CgroupLine::parse("99999999999::/"),
            Err(CgroupLineError::BadHierarchyId)
        );
        assert_eq!(
            CgroupLine::parse("1::x"),
            Err(CgroupLineError::PathNotAbsolute)
        );
        let _ = ID;
    }
}
