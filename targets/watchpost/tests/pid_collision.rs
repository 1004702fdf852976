//! `query process --pid` through the query socket answers each of two processes whose 32-bit
//! entity IDs collide: the handler asks the store for the exact (pid, start time), never for the
//! entity ID. The two processes are fabricated (a `/proc` tree whose start times were searched
//! for a collision, fed to the process store through its intake); the socket, server, handler,
//! store and client are the daemon's own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use watchpost::client::QueryClient;
use watchpost::client::trust::ServerTrust;
use watchpost::procfs::ProcReader;
use watchpost::server::access::AccessPolicy;
use watchpost::server::handler::QueryContext;
use watchpost::server::{QueryServer, ServerLimits, listener};
use watchpost::stats::DaemonCounters;
use watchpost::wire::response::Answer;
use watchpost::wire::{Request, Response};
use watchpost_actors::adapters::process::process_table_factory;
use watchpost_actors::stores::process::{ProcessStart, ProcessUpdate};
use watchpost_actors::{Registry, RegistryConfig, StoreOptions};
use watchpost_core::entity_id::entity_id;
use watchpost_core::process::ProcessTableConfig;

/// Boot time of the fabricated `/proc`, seconds.
const BTIME: u64 = 1_700_000_000;
const TICKS_PER_SEC: u64 = 100;

fn start_time(ticks: u64) -> u64 {
    BTIME * 1_000_000_000 + ticks * (1_000_000_000 / TICKS_PER_SEC)
}

/// Start ticks (100 ms apart) of pids `a` and `b` whose entity IDs collide.
fn colliding_ticks(a: u32, b: u32) -> (u64, u64) {
    let mut by_id = std::collections::HashMap::new();
    for k in 0..(1u64 << 18) {
        by_id.insert(entity_id(a, start_time(k * 10)), k * 10);
    }
    for k in 0..(1u64 << 18) {
        if let Some(&ta) = by_id.get(&entity_id(b, start_time(k * 10))) {
            return (ta, k * 10);
        }
    }
    panic!("no collision among 2^36 pairs");
}

fn fake_proc(root: &Path, processes: &[(u32, u64)]) {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("stat"), format!("cpu  1 2 3\nbtime {BTIME}\n")).unwrap();
    for &(pid, ticks) in processes {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let mut fields = vec![format!("{pid} (p{pid}) S 1")];
        fields.extend((5..=21).map(|_| "0".to_owned()));
        fields.push(ticks.to_string());
        fields.push("0 0".to_owned());
        std::fs::write(dir.join("stat"), fields.join(" ") + "\n").unwrap();
    }
}

async fn ask(socket: &Path, request: Request) -> Response {
    let mut client = QueryClient::connect(
        socket,
        Duration::from_secs(10),
        &ServerTrust::for_caller(None),
    )
    .await
    .unwrap();
    client.ask(&request).await.unwrap()
}

fn process_of(response: Response) -> (u32, u64) {
    match response {
        Response::Ok {
            answer: Answer::Process(p),
        } => (p.process.pid, p.process.start_time),
        other => panic!("not a process: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_process_by_pid_answers_both_sides_of_an_entity_id_collision() {
    let (pa, pb) = (4242u32, 4343u32);
    let (ta, tb) = colliding_ticks(pa, pb);
    let (sa, sb) = (start_time(ta), start_time(tb));
    assert_eq!(entity_id(pa, sa), entity_id(pb, sb));
    let dir: PathBuf =
        std::env::temp_dir().join(format!("watchpost-pid-collision-{}", std::process::id()));
    let root = dir.join("proc");
    fake_proc(&root, &[(pa, ta), (pb, tb)]);

    // The process store, fed through its intake (synthetic scan records).
    let registry = Registry::start(RegistryConfig::default()).await.unwrap();
    let intake = registry
        .register_process_store(
            process_table_factory(ProcessTableConfig {
                capacity: 64,
                ..Default::default()
            }),
            StoreOptions::default(),
        )
        .await
        .unwrap();
    let scan = |pid, start_time| {
        ProcessUpdate::Scan(ProcessStart {
            pid,
            start_time,
            ppid: 1,
            parent_start_time: 0,
            uid: pid,
            gid: pid,
            comm: format!("p{pid}"),
            exe_path: None,
            exe_flags: Default::default(),
        })
    };
    intake
        .submit(vec![scan(pa, sa), scan(pb, sb)])
        .await
        .unwrap();
    let processes = registry.processes();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let progress = processes.intake_progress();
        if processes.supervision().intake_applied_updates >= 2
            || tokio::time::Instant::now() >= deadline
        {
            break;
        }
        let _ = tokio::time::timeout_at(deadline, progress).await;
    }
    assert_eq!(processes.supervision().intake_applied_updates, 2);

    // The daemon's query server over the fabricated /proc.
    let socket_path = dir.join("watchpost.sock");
    let socket = listener::bind(&socket_path, None).unwrap();
    let stats = Arc::new(DaemonCounters::new(0));
    let ctx = Arc::new(QueryContext {
        registry: registry.clone(),
        reader: ProcReader::new(&root, TICKS_PER_SEC).unwrap(),
        host_arch: None,
        stats: stats.clone(),
        engine: None,
        fleet: None,
        follow: None,
        follow_counters: Default::default(),
        persistence: None,
        reputation: None,
    });
    let server = QueryServer::new(
        socket,
        AccessPolicy {
            owner_uid: rustix::process::geteuid().as_raw(),
            group: None,
        },
        ServerLimits {
            max_clients: 4,
            max_request_bytes: 64 * 1024,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_reply_bytes: 1024 * 1024,
            max_answers_in_flight: 4,
        },
        ctx,
        stats,
    );
    let (stop, stopped) = watch::channel(false);
    let serving = tokio::spawn(Arc::new(server).run(stopped));

    // Each pid is answered with its own process.
    let a = process_of(ask(&socket_path, Request::ProcessByPid { pid: pa }).await);
    let b = process_of(ask(&socket_path, Request::ProcessByPid { pid: pb }).await);
    assert_eq!(a, (pa, sa));
    assert_eq!(b, (pb, sb));
    // By entity ID, the store's collision rule answers one of them (the newest start).
    let newest = if sa > sb { (pa, sa) } else { (pb, sb) };
    let by_id = process_of(
        ask(
            &socket_path,
            Request::Process {
                entity_id: entity_id(pa, sa),
            },
        )
        .await,
    );
    assert_eq!(by_id, newest);

    stop.send(true).unwrap();
    serving.await.unwrap();
    registry.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
