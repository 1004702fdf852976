//! The built-in detectors against real processes: stores fed from the real `/proc` through the
//! bounded intake, events built from real processes, the engine running both detectors.
//!
//! 1. `shell_from_service`: `/bin/sh` copied to a temp dir as `nginx` runs
//!    `sh -c 'sleep 5; :'`; the exec of that child shell is reported with `nginx` as the service.
//!    A shell whose ancestry holds no service is not.
//! 2. `tmp_exec_in_container`: a real cgroup v2 directory named like a Docker scope
//!    (`docker-<64 hex>.scope`) receives a real process running a binary copied into `/tmp`; its
//!    exec is reported with the container's name from the container store (the real core
//!    container table, fed the container as discovered from the process's real
//!    `/proc/<pid>/cgroup`, then enriched). The same binary outside the container, and a
//!    container process running from `/usr/bin`, are not.
//! 3. `DetectorEngine::run`: events in through a channel, every detector's findings out through
//!    another, failures counted, one (detector, event) pair in flight at a time.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use support::eventually;
use support::procfs::{ProcReader, children_named};
use watchpost_actors::adapters::container::container_table_factory;
use watchpost_actors::detect::shell_from_service::{ShellFromService, ShellFromServiceConfig};
use watchpost_actors::detect::tmp_exec_in_container::TmpExecInContainer;
use watchpost_actors::detect::{
    BoxFuture, Detector, DetectorEngine, DetectorError, DetectorOutput, DetectorParams,
    EngineOptions, Event, EventKind, OutputValue, Severity,
};
use watchpost_actors::stores::container::{ContainerEnrichment, ContainerUpdate};
use watchpost_actors::stores::process::ProcessUpdate;
use watchpost_actors::{BuildContext, Registry, StoreOptions};
use watchpost_core::container::ContainerTableConfig;
use watchpost_core::process::{ProcessTable, ProcessTableConfig};

/// Kills and reaps its child, removes its paths, on every exit path of a test.
struct Cleanup {
    children: Vec<Child>,
    paths: Vec<PathBuf>,
    cgroups: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for p in &self.paths {
            let _ = std::fs::remove_dir_all(p);
        }
        for cg in &self.cgroups {
            // The cgroup is empty once its process is reaped; rmdir may need a moment.
            for _ in 0..50 {
                if std::fs::remove_dir(cg).is_ok() || !cg.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "watchpost-{tag}-{}-{}",
        std::process::id(),
        watchpost_actors::clock::now()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_exe(from: &str, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

/// Spawns `program args`, retrying while the kernel says "text file busy": a test thread that
/// forks while another thread still has the freshly copied binary open for writing holds that
/// descriptor until its exec.
fn spawn(program: &Path, args: &[&str]) -> Child {
    let mut tries = 0;
    loop {
        match Command::new(program).args(args).spawn() {
            Ok(child) => return child,
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 3_000 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("spawning {}: {e}", program.display()),
        }
    }
}

async fn registry_with_stores() -> (
    Registry,
    watchpost_actors::IntakeSender<ProcessUpdate>,
    watchpost_actors::IntakeSender<ContainerUpdate>,
) {
    let reg = support::registry().await;
    let processes = reg
        .register_process_store(
            |_: &BuildContext| {
                Ok(ProcessTable::new(ProcessTableConfig {
                    capacity: 8192,
                    ..Default::default()
                }))
            },
            StoreOptions::default(),
        )
        .await
        .unwrap();
    let containers = reg
        .register_container_store(
            // A short removal grace, so a removed container is gone within the test.
            container_table_factory(ContainerTableConfig {
                removal_grace_ns: 50_000_000,
                ..Default::default()
            }),
            StoreOptions::default(),
        )
        .await
        .unwrap();
    (reg, processes, containers)
}

/// Feeds a full `/proc` scan and waits until the store holds `must_hold`.
async fn feed_scan(
    reg: &Registry,
    intake: &watchpost_actors::IntakeSender<ProcessUpdate>,
    must_hold: u32,
) {
    let updates: Vec<ProcessUpdate> = ProcReader::new()
        .scan()
        .into_iter()
        .map(ProcessUpdate::Scan)
        .collect();
    for chunk in updates.chunks(intake.max_batch_len()) {
        intake.submit(chunk.to_vec()).await.unwrap();
    }
    let p = reg.processes();
    assert!(
        eventually(Duration::from_secs(30), || async {
            p.get_process(must_hold).await.is_ok()
        })
        .await,
        "scan applied"
    );
}

fn exec_event(reader: &ProcReader, pid: u32) -> Event {
    let f = reader.read(pid).expect("process readable");
    Event {
        kind: EventKind::Exec,
        entity_id: f.entity_id,
        pid,
        start_time: f.start.start_time,
        ppid: f.start.ppid,
        parent_entity_id: f.parent_entity_id,
        parent_start_time: f.start.parent_start_time,
        exe: f.start.exe_path.clone().unwrap_or_default(),
        invoked: String::new(),
        comm: f.start.comm.clone(),
        uid: f.start.uid,
        gid: f.start.gid,
        container_id: reader.container_id(pid),
        time: watchpost_actors::clock::now(),
    }
}

fn detectors(services: &[&str]) -> Vec<Box<dyn Detector>> {
    let config = ShellFromServiceConfig {
        services: services.iter().map(|s| (*s).to_owned()).collect(),
        ..ShellFromServiceConfig::default()
    };
    vec![
        Box::new(ShellFromService::new(config)),
        Box::new(TmpExecInContainer::default()),
    ]
}

/// A real fake service (`/bin/sh` copied as `nginx`) running a child shell, and a plain shell
/// that is not under any service; both sleep 5 s.
struct ServiceScene {
    service_pid: u32,
    shell_pid: u32,
    plain_pid: u32,
    fake_nginx: PathBuf,
    _cleanup: Cleanup,
}

impl ServiceScene {
    fn start() -> ServiceScene {
        let dir = temp_dir("svc");
        let mut cleanup = Cleanup {
            children: vec![],
            paths: vec![dir.clone()],
            cgroups: vec![],
        };
        let fake_nginx = dir.join("nginx");
        copy_exe("/bin/sh", &fake_nginx);
        // Trailing `; :` keeps each shell from exec'ing its last command in place.
        let service = spawn(&fake_nginx, &["-c", "sh -c 'sleep 5; :'; :"]);
        let service_pid = service.id();
        cleanup.children.push(service);
        let plain = Command::new("/bin/sh")
            .args(["-c", "sleep 5; :"])
            .spawn()
            .unwrap();
        let plain_pid = plain.id();
        cleanup.children.push(plain);

        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let shell_pid = loop {
            let shell = children_named(service_pid, "sh").first().copied();
            if let Some(shell) = shell
                && !children_named(plain_pid, "sleep").is_empty()
            {
                break shell;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the service's child shell and the plain shell's sleep appear"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        ServiceScene {
            service_pid,
            shell_pid,
            plain_pid,
            fake_nginx,
            _cleanup: cleanup,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_under_a_service_is_reported_with_its_ancestry() {
    let scene = ServiceScene::start();
    let (service_pid, shell_pid, plain_pid) = (scene.service_pid, scene.shell_pid, scene.plain_pid);
    let fake_nginx = scene.fake_nginx.clone();

    let (reg, processes, _containers) = registry_with_stores().await;
    let reader = ProcReader::new();
    feed_scan(&reg, &processes, reader.entity_id(shell_pid).unwrap()).await;

    let engine = DetectorEngine::start(
        &reg,
        detectors(&["nginx", "httpd"]),
        EngineOptions::default(),
    )
    .await
    .unwrap();
    let found = engine.process(exec_event(&reader, shell_pid)).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    let out = &found[0];
    assert_eq!(out.detector, "shell_from_service");
    assert_eq!(out.pid, shell_pid);
    assert_eq!(out.data["service"], OutputValue::Text("nginx".into()));
    assert_eq!(
        out.data["service_pid"],
        OutputValue::Number(u64::from(service_pid))
    );
    assert_eq!(out.data["service_level"], OutputValue::Number(1));
    assert_eq!(
        out.data["service_exe"],
        OutputValue::Text(fake_nginx.to_string_lossy().into_owned())
    );
    let OutputValue::List(chain) = &out.data["ancestry"] else {
        panic!("ancestry is a list")
    };
    assert!(
        chain[0].starts_with(&format!("sh[{shell_pid}]")),
        "{chain:?}"
    );
    assert!(
        chain[1].starts_with(&format!("nginx[{service_pid}]")),
        "{chain:?}"
    );
    // Serialisable as one JSON line for the daemon.
    let line = serde_json::to_string(out).unwrap();
    assert!(line.contains("\"detector\":\"shell_from_service\"") && !line.contains('\n'));

    // The plain shell (parent: this test) has no service in its ancestry.
    assert!(
        engine
            .process(exec_event(&reader, plain_pid))
            .await
            .is_empty()
    );
    // Not an exec: nothing to judge.
    let mut fork = exec_event(&reader, shell_pid);
    fork.kind = EventKind::Fork;
    assert!(engine.process(fork).await.is_empty());
    assert_eq!(engine.stats().outputs, 1);
    assert_eq!(engine.stats().detector_errors, 0);
    reg.shutdown().await;
}

fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_dev, path, kind) = (f.next()?, f.next()?, f.next()?);
        (kind == "cgroup2").then(|| PathBuf::from(path))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_running_a_binary_from_tmp_is_reported() {
    let root = cgroup2_root().expect("a cgroup2 mount (the test needs root and cgroup v2)");
    let hex: String = format!("{:016x}", watchpost_actors::clock::now()).repeat(4);
    let container_id = hex[..64].to_owned();
    let cgroup = root.join(format!("docker-{container_id}.scope"));
    std::fs::create_dir(&cgroup).expect("create the container's cgroup (root needed)");
    let dir = temp_dir("ctr");
    let mut cleanup = Cleanup {
        children: vec![],
        paths: vec![dir.clone()],
        cgroups: vec![cgroup.clone()],
    };

    let payload = dir.join("payload");
    copy_exe("/bin/sleep", &payload);
    let inside = spawn(&payload, &["30"]);
    let inside_pid = inside.id();
    cleanup.children.push(inside);
    let outside = spawn(&payload, &["30"]);
    let outside_pid = outside.id();
    cleanup.children.push(outside);
    let usr_bin = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    let usr_bin_pid = usr_bin.id();
    cleanup.children.push(usr_bin);
    for pid in [inside_pid, usr_bin_pid] {
        std::fs::write(cgroup.join("cgroup.procs"), pid.to_string()).expect("move into the cgroup");
    }

    let reader = ProcReader::new();
    assert_eq!(
        reader.container_id(inside_pid).as_deref(),
        Some(container_id.as_str())
    );
    assert_eq!(reader.container_id(outside_pid), None);

    let (reg, processes, containers) = registry_with_stores().await;
    // Discovery from the process's real cgroup file, then what a runtime's API would add.
    let cgroup_file = std::fs::read_to_string(format!("/proc/{inside_pid}/cgroup")).unwrap();
    let discovered =
        ContainerUpdate::observe_proc_cgroup(&cgroup_file).expect("the process is in a container");
    let ContainerUpdate::Observe(found) = &discovered else {
        panic!("an observation")
    };
    assert_eq!(found.id.as_str(), container_id);
    containers
        .submit(vec![
            discovered,
            ContainerUpdate::Enrich(
                ContainerEnrichment::new(&container_id)
                    .name("web-1")
                    .image("nginx:1.27"),
            ),
        ])
        .await
        .unwrap();
    feed_scan(&reg, &processes, reader.entity_id(inside_pid).unwrap()).await;
    let c = reg.containers();
    assert!(
        eventually(Duration::from_secs(30), || async {
            c.get_container(&container_id[..12])
                .await
                .is_ok_and(|found| found.name == "web-1" && found.runtime == "docker")
        })
        .await
    );

    let engine = DetectorEngine::start(&reg, detectors(&["nginx"]), EngineOptions::default())
        .await
        .unwrap();
    let found = engine.process(exec_event(&reader, inside_pid)).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    let out = &found[0];
    assert_eq!(out.detector, "tmp_exec_in_container");
    assert_eq!(out.container_id.as_deref(), Some(container_id.as_str()));
    assert_eq!(out.exe, payload.to_string_lossy());
    assert_eq!(out.data["container_known"], OutputValue::Flag(true));
    assert_eq!(
        out.data["container_name"],
        OutputValue::Text("web-1".into())
    );
    assert_eq!(
        out.data["container_image"],
        OutputValue::Text("nginx:1.27".into())
    );
    assert_eq!(
        out.data["directory"],
        OutputValue::Text(
            std::env::temp_dir()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_owned()
        )
    );
    assert_eq!(
        out.data["parent_pid"],
        OutputValue::Number(u64::from(std::process::id())),
        "parent from the process store"
    );

    assert!(
        engine
            .process(exec_event(&reader, outside_pid))
            .await
            .is_empty(),
        "same binary outside a container"
    );
    assert!(
        engine
            .process(exec_event(&reader, usr_bin_pid))
            .await
            .is_empty(),
        "container process from /usr/bin"
    );

    // A container the store does not know (any more) is still reported, marked unknown.
    containers
        .submit(vec![ContainerUpdate::Remove {
            id: container_id.clone(),
            removed_at: watchpost_actors::clock::now(),
        }])
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || async {
            c.get_container(&container_id).await.is_err()
        })
        .await
    );
    let found = engine.process(exec_event(&reader, inside_pid)).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].data["container_known"], OutputValue::Flag(false));
    reg.shutdown().await;
    drop(cleanup);
    assert!(!cgroup.exists(), "the test cgroup is removed");
}

/// Reports every exec it sees and fails on forks: shows that `run` delivers every detector's
/// findings and counts failures without stopping.
struct EveryExec;

impl Detector for EveryExec {
    fn name(&self) -> &'static str {
        "every_exec"
    }

    fn init(&mut self, _params: DetectorParams) -> BoxFuture<'_, Result<(), DetectorError>> {
        Box::pin(async { Ok(()) })
    }

    fn on_event<'a>(
        &'a self,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<Vec<DetectorOutput>, DetectorError>> {
        Box::pin(async move {
            match event.kind {
                EventKind::Exec => Ok(vec![DetectorOutput::about(
                    "every_exec",
                    Severity::Low,
                    "an exec",
                    event,
                )]),
                EventKind::Fork => Err(DetectorError::new("every_exec", "forks are not for me")),
                EventKind::Exit => Ok(Vec::new()),
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_runs_events_from_a_channel_to_outputs() {
    let scene = ServiceScene::start();
    let (reg, processes, _containers) = registry_with_stores().await;
    let reader = ProcReader::new();
    feed_scan(&reg, &processes, reader.entity_id(scene.shell_pid).unwrap()).await;

    let mut detectors = detectors(&["nginx"]);
    detectors.push(Box::new(EveryExec));
    // One (detector, event) pair at a time and a small event queue: backpressure all the way.
    let options = EngineOptions {
        max_in_flight: 1,
        ..EngineOptions::default()
    };
    let engine = DetectorEngine::start(&reg, detectors, options)
        .await
        .unwrap();
    let (events_tx, events_rx) = tokio::sync::mpsc::channel(2);
    let (outputs_tx, mut outputs_rx) = tokio::sync::mpsc::channel(1);
    let running = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.run(events_rx, outputs_tx).await })
    };
    let collector = tokio::spawn(async move {
        let mut found = Vec::new();
        while let Some(output) = outputs_rx.recv().await {
            found.push(output);
        }
        found // the channel closes when `run` returns
    });

    let shell_exec = exec_event(&reader, scene.shell_pid);
    let plain_exec = exec_event(&reader, scene.plain_pid);
    let mut fork = shell_exec.clone();
    fork.kind = EventKind::Fork;
    let mut exit = plain_exec.clone();
    exit.kind = EventKind::Exit;
    for event in [shell_exec, fork, plain_exec, exit] {
        events_tx.send(event).await.unwrap();
    }
    drop(events_tx);
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run returns once the events channel closes and all are judged")
        .unwrap();
    let found = collector.await.unwrap();

    let mut seen: Vec<(String, u32)> = found.iter().map(|o| (o.detector.clone(), o.pid)).collect();
    seen.sort();
    let mut expected = vec![
        ("every_exec".to_owned(), scene.plain_pid),
        ("every_exec".to_owned(), scene.shell_pid),
        ("shell_from_service".to_owned(), scene.shell_pid),
    ];
    expected.sort();
    assert_eq!(seen, expected, "{found:#?}");
    let service_finding = found
        .iter()
        .find(|o| o.detector == "shell_from_service")
        .unwrap();
    assert_eq!(
        service_finding.data["service_pid"],
        OutputValue::Number(u64::from(scene.service_pid))
    );
    let stats = engine.stats();
    assert_eq!(
        (
            stats.events,
            stats.outputs,
            stats.detector_errors,
            stats.detector_timeouts
        ),
        (4, 3, 1, 0),
        "{stats:?}"
    );
    reg.shutdown().await;
}
