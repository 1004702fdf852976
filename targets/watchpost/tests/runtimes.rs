//! Container enrichment against real runtimes (started by `support::runtimes::Fixture`): podman
//! through its Docker-compatible API socket, containerd through gRPC. The daemon must list
//! containers by ID, 12-character prefix and name, with image, digest, runtime, start time and
//! pod right; know a container started after it with name and image within a second; drop a
//! removed one from `containers` at once and purge it after the grace; and report a program run
//! from /tmp inside a container with the container's name and image.
//!
//! These FAIL when the runtimes cannot be installed or started, unless
//! `WATCHPOST_SKIP_RUNTIME_TESTS=1`.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::runtimes::{Fixture, IMAGE, random_uuid};
use support::{Daemon, eventually, frame, raw_exchange};

/// The daemon's config: the fixture's sockets only (never the machine's default paths).
fn sockets(f: &Fixture, extra: &str) -> String {
    format!(
        "[container.runtimes]\ndocker_sockets = [\"{}\"]\ncontainerd_sockets = [\"{}\"]\n{extra}",
        f.podman_socket().display(),
        f.containerd_socket().display()
    )
}

/// `podman inspect`'s `State.StartedAt` of `id`, epoch ns (computed independently of the daemon
/// with `date`).
fn podman_started_at(f: &Fixture, id: &str) -> u64 {
    let out = f
        .podman()
        .args(["inspect", "--format", "{{.State.StartedAt.UnixNano}}", id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("podman inspect: {out:?}"))
}

fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The raw answer to `request` (one JSON object), or None.
fn ask(daemon: &Daemon, request: &str) -> Option<Value> {
    raw_exchange(&daemon.socket, &frame(request.as_bytes()))
}

/// The container called `name`, once the daemon knows its image; None before.
fn known_by_name(daemon: &Daemon, name: &str) -> Option<Value> {
    let reply = ask(
        daemon,
        &format!(r#"{{"command":"container_by_name","name":"{name}"}}"#),
    )?;
    let data = reply.get("answer")?.get("data")?.clone();
    (data["image"] == IMAGE).then_some(data)
}

fn listed_ids(daemon: &Daemon) -> Vec<String> {
    let list = daemon.query_json(&["containers"]);
    list.as_array()
        .unwrap_or_else(|| panic!("containers: {list}"))
        .iter()
        .map(|c| c["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn podman_containers_are_listed_with_image_digest_runtime_and_pod() {
    let Some(mut fixture) = Fixture::start("podman-list") else {
        return;
    };
    let pod_uid = random_uuid();
    let web = fixture.podman_run("web", &[]).unwrap();
    let member = fixture
        .podman_run(
            "shop-api",
            &[
                ("io.kubernetes.pod.name", "shop-7d9f"),
                ("io.kubernetes.pod.namespace", "shop"),
                ("io.kubernetes.pod.uid", &pod_uid),
            ],
        )
        .unwrap();
    // Both run before the daemon starts: they must be listed from the runtime at start.
    let daemon = Daemon::start("podman-list", &sockets(&fixture, ""));
    let both = eventually(Duration::from_secs(30), || {
        known_by_name(&daemon, "web").is_some() && known_by_name(&daemon, "shop-api").is_some()
    });
    assert!(both, "not enriched:\n{}", daemon.stderr());

    let by_id = daemon.query_json(&["container", &web]);
    assert_eq!(by_id["id"], web.as_str());
    assert_eq!(by_id["name"], "web");
    assert_eq!(by_id["image"], IMAGE);
    assert_eq!(by_id["image_digest"], fixture.podman_image_digest.as_str());
    assert_eq!(by_id["runtime"], "podman");
    assert_eq!(by_id["start_time"], podman_started_at(&fixture, &web));
    assert!(by_id["pod"].is_null(), "{by_id}");

    let by_prefix = daemon.query_json(&["container", &member[..12]]);
    assert_eq!(by_prefix["id"], member.as_str());
    assert_eq!(by_prefix["name"], "shop-api");
    assert_eq!(by_prefix["pod"]["name"], "shop-7d9f");
    assert_eq!(by_prefix["pod"]["namespace"], "shop");
    assert_eq!(by_prefix["pod"]["uid"], pod_uid.as_str());
    assert_eq!(by_prefix["pod"]["sandbox"], false);

    let by_name = daemon.query_json(&["container", "--name", "shop-api"]);
    assert_eq!(by_name["id"], member.as_str());

    let filtered = daemon.query_json(&["containers", "--image", IMAGE, "--runtime", "podman"]);
    let mut ids: Vec<&str> = filtered
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![web.as_str(), member.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    // `query process` names the container a process runs in.
    let pid = fixture
        .podman()
        .args(["inspect", "--format", "{{.State.Pid}}", &member])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_owned();
    assert!(eventually(Duration::from_secs(20), || {
        daemon.query(&["process", "--pid", &pid]).code == Some(0)
    }));
    let process = daemon.query_json(&["process", "--pid", &pid]);
    assert_eq!(process["container"]["id"], member.as_str(), "{process}");
    assert_eq!(process["container"]["name"], "shop-api", "{process}");
    assert_eq!(process["container"]["image"], IMAGE, "{process}");
    assert_eq!(
        process["container"]["pod"]["name"], "shop-7d9f",
        "{process}"
    );
    let human = daemon.query(&["process", "--pid", &pid]);
    // Alignment-independent: the label column is as wide as the longest label.
    let row = format!("{} podman shop-api", &member[..12]);
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("container ") && l.contains(&format!(" {row}"))),
        "{}",
        human.stdout
    );
    let host = daemon.query_json(&["process", "--pid", &daemon.pid().to_string()]);
    assert!(host.get("container").is_none(), "{host}");

    let health = daemon.query_json(&["health", "container"]);
    let entry = &health[0];
    assert_eq!(entry["status"], "healthy", "{health}");
    assert!(
        entry["message"]
            .as_str()
            .unwrap_or_default()
            .contains("enriching from podman 4"),
        "{health}"
    );
}

#[test]
fn containers_are_known_within_a_second_of_starting_and_leave_at_once_when_removed() {
    let Some(mut fixture) = Fixture::start("podman-timing") else {
        return;
    };
    // A short grace, so the purge is seen within the test.
    let daemon = Daemon::start(
        "podman-timing",
        &sockets(&fixture, "[container]\nremoval_grace_ms = 3000\n"),
    );
    assert!(eventually(Duration::from_secs(30), || {
        daemon.query_json(&["health", "container"])[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("enriching from podman"))
    }));

    // Start → known with name and image, 20 times. Measured from the runtime's own start time
    // (State.StartedAt) to the first answer naming the image; polled every 2 ms on the raw
    // socket (no CLI start-up in the measurement).
    let mut start_to_known = Vec::new();
    let mut run_to_known = Vec::new();
    let mut ids = Vec::new();
    for n in 0..20 {
        let name = format!("timed-{n}");
        let before_run = Instant::now();
        let id = fixture.podman_run(&name, &[]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let (known, known_wall) = loop {
            if known_by_name(&daemon, &name).is_some() {
                break (Instant::now(), wall_clock_ns());
            }
            assert!(
                Instant::now() < deadline,
                "{name} not known within 20 s:\n{}",
                daemon.stderr()
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        let started = podman_started_at(&fixture, &id);
        start_to_known.push(known_wall.saturating_sub(started) / 1_000_000);
        run_to_known.push(known.duration_since(before_run).as_millis() as u64);
        ids.push(id);
    }
    let summary = |v: &mut Vec<u64>| {
        v.sort_unstable();
        format!(
            "min {} / p50 {} / p90 {} / max {} ms",
            v[0],
            v[v.len() / 2],
            v[v.len() * 9 / 10],
            v[v.len() - 1]
        )
    };
    eprintln!(
        "MEASURED start (State.StartedAt) -> known with name and image, 20 podman starts: {}",
        summary(&mut start_to_known)
    );
    eprintln!(
        "MEASURED `podman run` invoked -> known, 20 starts: {}",
        summary(&mut run_to_known)
    );

    // Removal: gone from `containers` at once, still gettable in the grace, purged after it.
    let victim = ids[0].clone();
    assert!(listed_ids(&daemon).contains(&victim));
    // The store's removal time is the runtime's `die` event, before `podman rm` returns.
    let removed_at = Instant::now();
    fixture.podman_rm(&victim).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || !listed_ids(&daemon)
            .contains(&victim)),
        "a removed container is still listed"
    );
    eprintln!(
        "MEASURED `podman rm` invoked -> not listed: {} ms",
        removed_at.elapsed().as_millis()
    );
    let during_grace = daemon.query(&["container", &victim]);
    if removed_at.elapsed() < Duration::from_millis(2_500) {
        assert_eq!(
            during_grace.code,
            Some(0),
            "gettable during the grace: {during_grace:?}"
        );
    }
    assert!(
        eventually(Duration::from_secs(20), || {
            daemon.query(&["container", &victim]).code == Some(1)
        }),
        "purged after the grace"
    );
    assert!(removed_at.elapsed() >= Duration::from_millis(3_000));
}

#[test]
fn containerd_kubernetes_containers_carry_their_pod_and_sandbox_flag() {
    let Some(mut fixture) = Fixture::start("containerd-k8s") else {
        return;
    };
    let pod_uid = random_uuid();
    let labels = |kind: &'static str| {
        vec![
            ("io.kubernetes.pod.name", "cart-5c6b"),
            ("io.kubernetes.pod.namespace", "shop"),
            ("io.kubernetes.pod.uid", pod_uid.as_str()),
            ("io.cri-containerd.kind", kind),
        ]
    };
    let sandbox = fixture.ctr_run_k8s(&pod_uid, &labels("sandbox")).unwrap();
    let daemon = Daemon::start(
        "containerd-k8s",
        &sockets(
            &fixture,
            "[daemon]\nlog_level = \"info,watchpost::runtimes=debug\"\n",
        ),
    );
    // One before the daemon, one after.
    let mut app_labels = labels("container");
    app_labels.push(("io.kubernetes.container.name", "cart"));
    let app = fixture.ctr_run_k8s(&pod_uid, &app_labels).unwrap();

    let enriched = |id: &str| {
        let c = daemon.query(&["container", id, "--json"]);
        c.code == Some(0)
            && serde_json::from_str::<Value>(c.stdout.trim())
                .is_ok_and(|v| v["image"] == IMAGE && v["pod"]["name"] == "cart-5c6b")
    };
    assert!(
        eventually(Duration::from_secs(30), || enriched(&sandbox)
            && enriched(&app)),
        "containerd containers not enriched:\n{}\n{}",
        daemon.query(&["metrics"]).stdout,
        daemon.stderr()
    );
    let s = daemon.query_json(&["container", &sandbox]);
    assert_eq!(s["runtime"], "containerd");
    assert_eq!(s["image_digest"], fixture.containerd_image_digest.as_str());
    assert_eq!(s["pod"]["namespace"], "shop");
    assert_eq!(s["pod"]["uid"], pod_uid.as_str());
    assert_eq!(s["pod"]["sandbox"], true);
    assert!(s["start_time"].as_u64().unwrap_or(0) > 0, "{s}");
    let a = daemon.query_json(&["container", &app[..12]]);
    assert_eq!(a["name"], "cart");
    assert_eq!(a["pod"]["sandbox"], false);
    let listed = daemon.query_json(&["containers", "--runtime", "containerd"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
}

#[test]
fn tmp_exec_in_a_real_container_names_the_container_and_image() {
    let Some(mut fixture) = Fixture::start("podman-detect") else {
        return;
    };
    let id = fixture.podman_run("dropper", &[]).unwrap();
    let daemon = Daemon::start("podman-detect", &sockets(&fixture, ""));
    assert!(eventually(Duration::from_secs(30), || known_by_name(
        &daemon, "dropper"
    )
    .is_some()));
    // A payload copied to /tmp and run; it exits at once (`sleep 0`), so its container must come
    // from the exec event's cgroup ID, not from a later /proc read.
    fixture
        .podman_exec(
            &id,
            &[
                "sh",
                "-c",
                "cp /bin/busybox /tmp/x && exec -a sleep /tmp/x 0",
            ],
        )
        .unwrap();
    let found = eventually(Duration::from_secs(20), || {
        daemon.stdout().lines().any(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|d| {
                d["detector"] == "tmp_exec_in_container"
                    && d["process"]["exe"] == "/tmp/x"
                    && d["container"]["id"] == id.as_str()
            })
        })
    });
    assert!(
        found,
        "no detection:\n{}\n{}",
        daemon.stdout(),
        daemon.stderr()
    );
    let detection: Value = daemon
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|d| d["detector"] == "tmp_exec_in_container" && d["process"]["exe"] == "/tmp/x")
        .unwrap();
    assert_eq!(
        detection["data"]["container_name"], "dropper",
        "{detection}"
    );
    assert_eq!(detection["data"]["container_image"], IMAGE, "{detection}");
    assert_eq!(
        detection["data"]["container_runtime"], "podman",
        "{detection}"
    );
    // The engine describes the container on every finding (the record's schema v1 shape).
    let c = &detection["container"];
    assert_eq!(c["id"], id.as_str(), "{detection}");
    assert_eq!(c["name"], "dropper", "{detection}");
    assert_eq!(c["image"], IMAGE, "{detection}");
    assert_eq!(
        c["image_digest"],
        fixture.podman_image_digest.as_str(),
        "{detection}"
    );
    assert_eq!(c["runtime"], "podman", "{detection}");
    let metrics = daemon.query_json(&["metrics"]);
    assert!(
        metrics["daemon"]["kernel_container_lookups"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{metrics}"
    );
    assert_eq!(
        metrics["daemon"]["kernel_container_proc_reads"], 0,
        "no exec needed a /proc read: {metrics}"
    );
}

#[test]
fn the_kernel_reports_a_container_when_its_cgroup_appears_and_goes() {
    let Some(mut fixture) = Fixture::start("cgroup-discovery") else {
        return;
    };
    // No enrichment and no /proc reconciliation: only the kernel's cgroup records can tell.
    let daemon = Daemon::start(
        "cgroup-discovery",
        "[container]\nenrichment = false\n\
         [collector]\nebpf = \"required\"\nrescan_interval_ms = 3600000\n\
         reconcile_interval_ms = 3600000\n",
    );
    let id = fixture.podman_run("kernel-found", &[]).unwrap();
    let seen = eventually(Duration::from_secs(10), || {
        listed_ids(&daemon).contains(&id)
    });
    assert!(seen, "not discovered from its cgroup:\n{}", daemon.stderr());
    let c = daemon.query_json(&["container", &id]);
    assert_eq!(c["runtime"], "podman");
    assert_eq!(c["name"], "", "enrichment is off");
    fixture.podman_rm(&id).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || !listed_ids(&daemon)
            .contains(&id)),
        "still listed after its cgroup was removed"
    );
}
