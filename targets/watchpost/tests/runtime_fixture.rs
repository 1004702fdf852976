//! The container-runtime fixture itself: it starts real podman and containerd, runs a container
//! in each, and leaves nothing behind when dropped — also when the test using it panics.

mod support;

use std::path::{Path, PathBuf};

use support::runtimes::{Fixture, K8S_NAMESPACE, OUTSIDE_PATHS, pids_mentioning, random_uuid};

/// What a fixture leaves on the machine that must be gone after its drop.
struct Traces {
    /// Which of the runtimes' paths outside the temp directory existed before.
    outside_before: Vec<bool>,
    dir: PathBuf,
    cgroups: Vec<PathBuf>,
    pids: Vec<i32>,
}

fn cgroup_dirs_named(id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return out;
    };
    let mut roots: Vec<PathBuf> = hierarchies.flatten().map(|e| e.path()).collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    for root in roots {
        for rel in ["libpod_parent", "kubepods/besteffort"] {
            find_named(&root.join(rel), id, &mut out);
        }
    }
    out
}

fn find_named(dir: &Path, id: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if e.file_name().to_string_lossy().contains(id) {
            out.push(e.path());
        }
        find_named(&e.path(), id, out);
    }
}

/// Starts both runtimes and a container in each; returns what must disappear.
fn populate(fixture: &mut Fixture) -> Traces {
    let podman_id = fixture.podman_run("fixture-web", &[]).expect("podman run");
    let uid = random_uuid();
    let ctr_id = fixture
        .ctr_run_k8s(&uid, &[("io.kubernetes.pod.uid", &uid)])
        .expect("ctr run");
    let tasks = fixture
        .ctr(K8S_NAMESPACE)
        .args(["tasks", "ls"])
        .output()
        .expect("ctr tasks ls");
    assert!(String::from_utf8_lossy(&tasks.stdout).contains(&ctr_id));
    let mut cgroups = cgroup_dirs_named(&podman_id);
    cgroups.extend(cgroup_dirs_named(&ctr_id));
    assert!(
        cgroups.len() >= 2,
        "both containers have cgroups: {cgroups:?}"
    );
    let pids = pids_mentioning(&fixture.dir);
    assert!(
        !pids.is_empty(),
        "conmon, shims and services mention the fixture's directory"
    );
    Traces {
        outside_before: Vec::new(),
        dir: fixture.dir.clone(),
        cgroups,
        pids,
    }
}

fn assert_gone(traces: &Traces) {
    assert!(!traces.dir.exists(), "{} left behind", traces.dir.display());
    for cg in &traces.cgroups {
        assert!(!cg.exists(), "cgroup {} left behind", cg.display());
    }
    for pid in &traces.pids {
        let alive =
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
        assert!(!alive, "process {pid} left running");
    }
    assert!(pids_mentioning(&traces.dir).is_empty());
    let outside_now: Vec<bool> = OUTSIDE_PATHS
        .iter()
        .map(|p| Path::new(p).exists())
        .collect();
    if !traces.outside_before.is_empty() {
        assert_eq!(
            outside_now, traces.outside_before,
            "files outside the temp dir left behind ({OUTSIDE_PATHS:?})"
        );
    }
}

fn outside_paths_now() -> Vec<bool> {
    OUTSIDE_PATHS
        .iter()
        .map(|p| Path::new(p).exists())
        .collect()
}

#[test]
fn the_fixture_runs_both_runtimes_and_cleans_up_even_after_a_panic() {
    // Normal drop.
    let outside_before = outside_paths_now();
    let Some(mut fixture) = Fixture::start("fixture") else {
        return;
    };
    assert!(fixture.podman_image_digest.starts_with("sha256:"));
    assert_eq!(
        fixture.podman_image_digest, fixture.containerd_image_digest,
        "both runtimes loaded the same archive"
    );
    let mut traces = populate(&mut fixture);
    traces.outside_before = outside_before.clone();
    drop(fixture);
    assert_gone(&traces);

    // A test that panics with the fixture alive.
    let mut traces = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut fixture = Fixture::start("fixture-panic").expect("not skipped");
        let mut populated = populate(&mut fixture);
        populated.outside_before = outside_before.clone();
        traces = Some(populated);
        panic!("a failing test");
    }));
    assert!(outcome.is_err());
    assert_gone(&traces.expect("populated before the panic"));
}
