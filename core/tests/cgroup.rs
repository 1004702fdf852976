//! Cgroup path parsing: every runtime's form under both cgroup drivers, kubelet pod UIDs, conmon
//! and other non-container paths, Tracee's 11 test cases, whole `/proc/<pid>/cgroup` files, and a
//! never-panics property over arbitrary input.

use proptest::prelude::*;
use watchpost_core::cgroup::{
    CgroupContainer, CgroupLine, CgroupLineError, CgroupParseOptions, cgroup_lines,
    parse_cgroup_line, parse_cgroup_path, parse_cgroup_path_with, parse_proc_cgroup,
};
use watchpost_core::container::Runtime;

const ID: &str = "1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef";
const ID2: &str = "fedcba0987654321fedcba0987654321fedcba0987654321fedcba0987654321";
const POD_UID: &str = "b13213a6-d47e-4bd1-bc00-f175d1ad3b6e";
const POD_UID_SYSTEMD: &str = "b13213a6_d47e_4bd1_bc00_f175d1ad3b6e";

/// (runtime, id, pod uid, is root) of a parse, for compact assertions.
fn parts(found: Option<CgroupContainer>) -> Option<(Runtime, String, Option<String>, bool)> {
    found.map(|c| {
        (
            c.runtime,
            c.id.as_str().to_owned(),
            c.pod_uid.map(|u| u.as_str().to_owned()),
            c.is_container_root,
        )
    })
}

fn root(runtime: Runtime, id: &str) -> Option<(Runtime, String, Option<String>, bool)> {
    Some((runtime, id.to_owned(), None, true))
}

fn in_pod(runtime: Runtime, id: &str) -> Option<(Runtime, String, Option<String>, bool)> {
    Some((runtime, id.to_owned(), Some(POD_UID.to_owned()), true))
}

fn parse(path: &str) -> Option<(Runtime, String, Option<String>, bool)> {
    parts(parse_cgroup_path(path))
}

// ----- Tracee's 11 cases (pkg/datastores/container, TestParseContainerIdFromCgroupPath) ------

#[test]
fn tracee_docker_systemd_format() {
    let p = format!("/kubepods/besteffort/pod123/docker-{ID}.scope");
    // `pod123` is not a well-formed UID: the container is found, the UID is not kept.
    assert_eq!(parse(&p), root(Runtime::Docker, ID));
}

#[test]
fn tracee_crio_systemd_format() {
    let p = format!("/kubepods/besteffort/pod123/crio-{ID}.scope");
    assert_eq!(parse(&p), root(Runtime::Crio, ID));
}

#[test]
fn tracee_crio_conmon_is_not_a_container() {
    let p = format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_UID_SYSTEMD}.slice/crio-conmon-{ID}.scope"
    );
    assert_eq!(parse(&p), None);
}

#[test]
fn tracee_cri_containerd_systemd_format() {
    let p = format!("/kubepods/besteffort/pod123/cri-containerd-{ID}.scope");
    assert_eq!(parse(&p), root(Runtime::Containerd, ID));
}

#[test]
fn tracee_containerd_colon_separator() {
    let p = format!("/kubepods/besteffort/pod123/some:cri-containerd:{ID}");
    assert_eq!(parse(&p), root(Runtime::Containerd, ID));
}

#[test]
fn tracee_libpod_systemd_format() {
    let p = format!("/machine.slice/libpod-{ID}.scope");
    assert_eq!(parse(&p), root(Runtime::Podman, ID));
}

#[test]
fn tracee_libpod_conmon_is_not_a_container() {
    let p = format!("/machine.slice/libpod-conmon-{ID}.scope");
    assert_eq!(parse(&p), None);
}

#[test]
fn tracee_docker_cgroupfs_format() {
    assert_eq!(parse(&format!("/docker/{ID}")), root(Runtime::Docker, ID));
}

#[test]
fn tracee_containerd_under_pod_directory() {
    let p = format!("/kubepods/besteffort/pod123/{ID}");
    assert_eq!(parse(&p), root(Runtime::Containerd, ID));
}

#[test]
fn tracee_non_container_path() {
    assert_eq!(parse("/user.slice/user-1000.slice"), None);
}

#[test]
fn tracee_nested_returns_outer_not_root() {
    let p = format!("/kubepods/besteffort/pod123/docker-{ID}.scope/system.slice");
    assert_eq!(
        parse(&p),
        Some((Runtime::Docker, ID.to_owned(), None, false))
    );
}

// ----- systemd driver --------------------------------------------------------------------------

#[test]
fn systemd_driver_plain_runtimes() {
    assert_eq!(
        parse(&format!("/system.slice/docker-{ID}.scope")),
        root(Runtime::Docker, ID)
    );
    assert_eq!(
        parse(&format!("/system.slice/crio-{ID}.scope")),
        root(Runtime::Crio, ID)
    );
    assert_eq!(
        parse(&format!("/system.slice/nerdctl-{ID}.scope")),
        root(Runtime::Containerd, ID)
    );
    // rootless podman under the user's manager
    assert_eq!(
        parse(&format!(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
        )),
        root(Runtime::Podman, ID)
    );
    // podman pod member (systemd): the pod slice is not a container
    assert_eq!(
        parse(&format!(
            "/machine.slice/machine-libpod_pod_{ID2}.slice/libpod-{ID}.scope"
        )),
        root(Runtime::Podman, ID)
    );
}

#[test]
fn systemd_driver_kubepods_each_qos_and_runtime() {
    for (qos_path, pod_slice) in [
        (
            "/kubepods.slice/kubepods-besteffort.slice",
            "kubepods-besteffort-pod",
        ),
        (
            "/kubepods.slice/kubepods-burstable.slice",
            "kubepods-burstable-pod",
        ),
        ("/kubepods.slice", "kubepods-pod"), // guaranteed QoS
    ] {
        for (prefix, runtime) in [
            ("cri-containerd", Runtime::Containerd),
            ("crio", Runtime::Crio),
            ("docker", Runtime::Docker),
        ] {
            let p = format!("{qos_path}/{pod_slice}{POD_UID_SYSTEMD}.slice/{prefix}-{ID}.scope");
            assert_eq!(parse(&p), in_pod(runtime, ID), "{p}");
        }
        let conmon =
            format!("{qos_path}/{pod_slice}{POD_UID_SYSTEMD}.slice/crio-conmon-{ID}.scope");
        assert_eq!(parse(&conmon), None, "{conmon}");
        // The pod slice alone is not a container.
        assert_eq!(
            parse(&format!("{qos_path}/{pod_slice}{POD_UID_SYSTEMD}.slice")),
            None
        );
    }
}

#[test]
fn systemd_driver_kind_nested_kubelet_slices() {
    let p = format!(
        "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{POD_UID_SYSTEMD}.slice/cri-containerd-{ID}.scope"
    );
    assert_eq!(parse(&p), in_pod(Runtime::Containerd, ID));
}

#[test]
fn systemd_driver_static_pod_uid_is_a_hash() {
    let hash = "3b4c2b7d8f1e2a5c6d7e8f9a0b1c2d3e";
    let p = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{hash}.slice/cri-containerd-{ID}.scope"
    );
    assert_eq!(
        parse(&p),
        Some((
            Runtime::Containerd,
            ID.to_owned(),
            Some(hash.to_owned()),
            true
        ))
    );
}

#[test]
fn containerd_systemd_colon_form_under_containerd_service() {
    let p = format!(
        "/system.slice/containerd.service/kubepods-besteffort-pod{POD_UID_SYSTEMD}.slice:cri-containerd:{ID}"
    );
    assert_eq!(parse(&p), in_pod(Runtime::Containerd, ID));
    let crio = format!("/kubepods-burstable-pod{POD_UID_SYSTEMD}.slice:crio:{ID}");
    assert_eq!(parse(&crio), in_pod(Runtime::Crio, ID));
    // Unknown marker, wrong field count, bad ID: not containers.
    assert_eq!(parse(&format!("/x.slice:runq:{ID}")), None);
    assert_eq!(parse(&format!("/a:cri-containerd:{ID}:extra")), None);
    assert_eq!(parse("/a:cri-containerd:1234"), None);
}

// ----- cgroupfs driver -------------------------------------------------------------------------

#[test]
fn cgroupfs_driver_kubepods_each_qos() {
    for qos in ["/kubepods/besteffort", "/kubepods/burstable", "/kubepods"] {
        let p = format!("{qos}/pod{POD_UID}/{ID}");
        assert_eq!(parse(&p), in_pod(Runtime::Containerd, ID), "{p}");
        let crio = format!("{qos}/pod{POD_UID}/crio-{ID}");
        assert_eq!(parse(&crio), in_pod(Runtime::Crio, ID), "{crio}");
        assert_eq!(parse(&format!("{qos}/pod{POD_UID}")), None);
    }
    assert_eq!(parse("/kubepods/besteffort"), None);
}

#[test]
fn cgroupfs_driver_docker_and_actions_job() {
    assert_eq!(parse(&format!("/docker/{ID}")), root(Runtime::Docker, ID));
    assert_eq!(
        parse(&format!("/actions_job/{ID}")),
        root(Runtime::Docker, ID)
    );
    // Docker in Docker: the outer container is the one the host knows.
    assert_eq!(
        parse(&format!("/docker/{ID}/docker/{ID2}")),
        Some((Runtime::Docker, ID.to_owned(), None, false))
    );
    assert_eq!(parse("/docker"), None);
    assert_eq!(parse("/docker/not-an-id"), None);
}

#[test]
fn cgroupfs_driver_podman() {
    assert_eq!(
        parse(&format!("/libpod_parent/libpod-{ID}")),
        root(Runtime::Podman, ID)
    );
    // Pod member: the 64-hex pod directory is not the container.
    assert_eq!(
        parse(&format!("/libpod_parent/{ID2}/libpod-{ID}")),
        root(Runtime::Podman, ID)
    );
    assert_eq!(parse(&format!("/libpod_parent/{ID2}")), None);
    assert_eq!(parse("/libpod_parent/conmon"), None);
    assert_eq!(parse(&format!("/libpod_parent/{ID2}/conmon")), None);
    assert_eq!(parse("/libpod_parent"), None);
    // crun/cgroup v2 puts the payload in a sub-cgroup of the container.
    assert_eq!(
        parse(&format!("/libpod_parent/libpod-{ID}/container")),
        Some((Runtime::Podman, ID.to_owned(), None, false))
    );
}

#[test]
fn plain_containerd_namespace_form() {
    // 64-hex IDs under any plausible namespace directory.
    assert_eq!(
        parse(&format!("/k8s.io/{ID}")),
        root(Runtime::Containerd, ID)
    );
    assert_eq!(
        parse(&format!("/default/{ID}")),
        root(Runtime::Containerd, ID)
    );
    assert_eq!(
        parse(&format!("/tenant-a/{ID}")),
        root(Runtime::Containerd, ID)
    );
    // Non-hex `ctr` IDs only under the configured namespaces.
    assert_eq!(
        parse("/default/my-ctr"),
        root(Runtime::Containerd, "my-ctr")
    );
    assert_eq!(parse("/k8s.io/web.1"), root(Runtime::Containerd, "web.1"));
    assert_eq!(
        parse("/default/my-ctr/sub"),
        Some((Runtime::Containerd, "my-ctr".to_owned(), None, false))
    );
    assert_eq!(parse("/tenant-a/my-ctr"), None);
    let options = CgroupParseOptions {
        containerd_namespaces: &["tenant-a"],
    };
    assert_eq!(
        parts(parse_cgroup_path_with("/tenant-a/my-ctr", &options)),
        root(Runtime::Containerd, "my-ctr")
    );
    assert_eq!(
        parts(parse_cgroup_path_with("/default/my-ctr", &options)),
        None
    );
    // Ordinary two-level cgroups are not containers.
    for p in [
        "/system.slice/cron.service",
        "/lxc/web",
        "/machine/qemu-1-vm.libvirt-qemu",
        "/default",
        "/default/bad id",
        "/default/-x",
    ] {
        assert_eq!(parse(p), None, "{p}");
    }
    // A 64-hex directory under a systemd unit is a container of an unknown runtime, not ctr's.
    assert_eq!(
        parse(&format!("/system.slice/{ID}")),
        root(Runtime::Unknown, ID)
    );
}

#[test]
fn bare_hex_elsewhere_is_an_unknown_runtime() {
    assert_eq!(parse(&format!("/a/b/{ID}")), root(Runtime::Unknown, ID));
    // ...and a bare pod-looking directory outside kubepods is not a pod.
    assert_eq!(
        parse(&format!("/a/pod{POD_UID}/{ID}")),
        root(Runtime::Unknown, ID)
    );
}

#[test]
fn garden_ids() {
    let g = "0123abcd-0123-4567-89ab-cdef";
    assert_eq!(parse(&format!("/garden/{g}")), root(Runtime::Garden, g));
    assert_eq!(parse("/garden/0123abcd-0123-4567-89ab"), None);
}

#[test]
fn ids_must_be_exactly_64_lowercase_hex() {
    let upper = ID.to_uppercase();
    assert_eq!(parse(&format!("/docker/{upper}")), None);
    assert_eq!(parse(&format!("/system.slice/docker-{upper}.scope")), None);
    assert_eq!(parse(&format!("/docker/{}", &ID[..63])), None);
    assert_eq!(parse(&format!("/docker/{ID}0")), None);
    assert_eq!(
        parse(&format!("/system.slice/docker-{}.scope", &ID[..63])),
        None
    );
    assert_eq!(parse(&format!("/system.slice/docker-{ID}.mount")), None);
    assert_eq!(parse("/system.slice/docker-.scope"), None);
}

#[test]
fn non_container_paths() {
    for p in [
        "/",
        "",
        "relative/docker",
        "/init.scope",
        "/user.slice/user-1000.slice/session-3.scope",
        "/user.slice/user-1000.slice/user@1000.service/app.slice/dbus.service",
        "/system.slice/sshd.service",
        "/system.slice/docker.service",
        "/system.slice/containerd.service",
        "/libpod_parent/conmon",
        "/kubepods.slice/kubepods-besteffort.slice",
        "/machine.slice",
        "//",
    ] {
        assert_eq!(parse(p), None, "{p:?}");
    }
}

#[test]
fn tolerates_empty_components() {
    assert_eq!(parse(&format!("/docker//{ID}/")), root(Runtime::Docker, ID));
}

// ----- lines and files -------------------------------------------------------------------------

#[test]
fn one_line_of_each_version() {
    let v1 = format!("4:memory:/docker/{ID}");
    assert_eq!(
        parse_cgroup_line(&v1).map(parts),
        Ok(root(Runtime::Docker, ID))
    );
    let v2 = format!("0::/system.slice/docker-{ID}.scope\n");
    assert_eq!(
        parse_cgroup_line(&v2).map(parts),
        Ok(root(Runtime::Docker, ID))
    );
    assert_eq!(parse_cgroup_line("0::/init.scope").map(parts), Ok(None));
    assert_eq!(
        parse_cgroup_line("garbage"),
        Err(CgroupLineError::MissingField)
    );
}

#[test]
fn line_with_colons_in_the_path() {
    let line = format!(
        "0::/system.slice/containerd.service/kubepods-besteffort-pod{POD_UID_SYSTEMD}.slice:cri-containerd:{ID}"
    );
    let parsed = CgroupLine::parse(&line);
    assert!(parsed.is_ok_and(|l| l.is_unified() && l.path.ends_with(ID)));
    assert_eq!(
        parse_cgroup_line(&line).map(parts),
        Ok(in_pod(Runtime::Containerd, ID))
    );
}

#[test]
fn v1_file_docker_cgroupfs() {
    let file = format!(
        "12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n10:cpu,cpuacct:/docker/{ID}\n1:name=systemd:/docker/{ID}\n"
    );
    assert_eq!(parts(parse_proc_cgroup(&file)), root(Runtime::Docker, ID));
    assert_eq!(cgroup_lines(&file).count(), 4);
}

#[test]
fn v2_file_podman_and_host() {
    let file = format!("0::/libpod_parent/libpod-{ID}\n");
    assert_eq!(parts(parse_proc_cgroup(&file)), root(Runtime::Podman, ID));
    assert_eq!(parse_proc_cgroup("0::/init.scope\n"), None);
    assert_eq!(parse_proc_cgroup("0::/\n"), None);
    assert_eq!(parse_proc_cgroup(""), None);
}

#[test]
fn hybrid_file_prefers_the_unified_line() {
    // v1 controllers in one container, unified hierarchy in another: the unified answer wins.
    let file = format!(
        "5:memory:/docker/{ID2}\n1:name=systemd:/docker/{ID2}\n0::/system.slice/docker-{ID}.scope\n"
    );
    assert_eq!(parts(parse_proc_cgroup(&file)), root(Runtime::Docker, ID));
    // Unified line not in a container: the first v1 line that is answers.
    let file = format!("5:memory:/\n4:cpu:/docker/{ID2}\n3:pids:/docker/{ID}\n0::/\n");
    assert_eq!(parts(parse_proc_cgroup(&file)), root(Runtime::Docker, ID2));
}

#[test]
fn file_with_malformed_and_deleted_lines() {
    let file = format!(
        "garbage\n\n7:x\nabc::/docker/{ID2}\n0::/kubepods/burstable/pod{POD_UID}/{ID} (deleted)\r\n"
    );
    assert_eq!(
        parts(parse_proc_cgroup(&file)),
        in_pod(Runtime::Containerd, ID)
    );
    let lines: Vec<_> = cgroup_lines(&file).collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0], Err(CgroupLineError::MissingField));
    assert_eq!(lines[2], Err(CgroupLineError::BadHierarchyId));
    assert!(lines[3].is_ok_and(|l| l.deleted));
}

#[test]
fn conmon_process_file_is_not_in_a_container() {
    let file = "0::/libpod_parent/conmon\n";
    assert_eq!(parse_proc_cgroup(file), None);
}

// ----- never panics ----------------------------------------------------------------------------

/// Fragments that steer random paths into the parser's interesting branches.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("docker".to_owned()),
        Just("kubepods".to_owned()),
        Just("kubepods-besteffort-pod".to_owned()),
        Just("libpod_parent".to_owned()),
        Just("actions_job".to_owned()),
        Just("default".to_owned()),
        Just("conmon".to_owned()),
        Just("crio-conmon-".to_owned()),
        Just("cri-containerd-".to_owned()),
        Just(":cri-containerd:".to_owned()),
        Just(".scope".to_owned()),
        Just(".slice".to_owned()),
        Just("pod".to_owned()),
        Just(POD_UID_SYSTEMD.to_owned()),
        Just(ID.to_owned()),
        Just(ID[..40].to_owned()),
        Just("/".to_owned()),
        Just(":".to_owned()),
        Just(" (deleted)".to_owned()),
        "[a-f0-9_-]{0,70}",
        "\\PC{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn never_panics_on_arbitrary_strings(s in "\\PC*") {
        let _ = parse_cgroup_path(&s);
        let _ = parse_cgroup_line(&s);
        let _ = parse_proc_cgroup(&s);
        let _ = parse_cgroup_path(&format!("/{s}"));
    }

    #[test]
    fn never_panics_on_path_like_strings(frags in proptest::collection::vec(fragment(), 0..12)) {
        let path = format!("/{}", frags.join("/"));
        let found = parse_cgroup_path(&path);
        // Whatever is found is a well-formed ID that occurs in the path.
        if let Some(c) = &found {
            prop_assert!(path.contains(c.id.as_str()));
        }
        let glued = frags.concat();
        let _ = parse_cgroup_path(&glued);
        let _ = parse_proc_cgroup(&format!("0::{path}\n3:cpu:{glued}\n"));
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = parse_proc_cgroup(&s);
        let _ = parse_cgroup_path(&s);
    }
}
