//! DNS answers an attacker cannot forge, against a real daemon on the real kernel (root):
//! - an unprivileged user (uid 65534) in a user+network namespace of its own sends a forged
//!   answer from port 53 with no query: refused by the kernel and counted as unmatched, never
//!   answered;
//! - the same user sends a query and answers it itself: stored for that namespace only — the
//!   default lookup does not return it, `--netns <its inode>` does;
//! - 6,000 forged answers and 6,000 self-answered queries from such namespaces: every real name
//!   of the host is still answerable;
//! - a real `dig` against dnsmasq in the host's namespace, and in a container's namespace
//!   (modelled honestly: a network namespace made by root, whose first process lives in a
//!   cgroup named the way Docker names its containers' — which is how the daemon discovers
//!   containers): both answerable by default.
//!
//! Names carry this run's pid, so other engineers' DNS traffic on the same kernel cannot collide.

mod support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Daemon, eventually};

/// Environment variable that turns `dns_helper_child` into the DNS helper.
const HELPER: &str = "WATCHPOST_TEST_DNS_HELPER";
const DEADLINE: Duration = Duration::from_secs(30);

fn name_wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

fn query(txid: u16, name: &str) -> Vec<u8> {
    let mut out = txid.to_be_bytes().to_vec();
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend(name_wire(name));
    out.extend_from_slice(&[0, 1, 0, 1]);
    out
}

fn answer(txid: u16, name: &str, ip: Ipv4Addr) -> Vec<u8> {
    let mut out = txid.to_be_bytes().to_vec();
    out.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    out.extend(name_wire(name));
    out.extend_from_slice(&[0, 1, 0, 1]);
    out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4]);
    out.extend_from_slice(&ip.octets());
    out
}

/// Not a test of its own: re-executed inside a namespace with `HELPER=mode:count:prefix`, it
/// plays both ends on 127.0.0.1 — `forge`: answers nobody asked for; `self`: a query each, then
/// its answer — and prints its network namespace's inode.
#[test]
fn dns_helper_child() {
    let Some(spec) = std::env::var_os(HELPER) else {
        return;
    };
    let spec = spec.into_string().unwrap();
    let mut parts = spec.splitn(3, ':');
    let (mode, count, prefix) = (
        parts.next().unwrap(),
        parts.next().unwrap().parse::<u32>().unwrap(),
        parts.next().unwrap(),
    );
    let server = UdpSocket::bind("127.0.0.1:53").expect("port 53 in our own namespace");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let to_client = client.local_addr().unwrap();
    let to_server = server.local_addr().unwrap();
    let mut buf = [0u8; 512];
    for i in 0..count {
        let name = format!("{prefix}{i}.watchpost.test");
        let txid = i as u16;
        let ip = Ipv4Addr::new(203, 0, 113, (i % 250) as u8 + 1);
        if mode == "self" {
            client.send_to(&query(txid, &name), to_server).unwrap();
            server.recv(&mut buf).unwrap();
        }
        server.send_to(&answer(txid, &name, ip), to_client).unwrap();
        client.recv(&mut buf).unwrap();
    }
    let netns = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    println!("\nhelper-netns {netns}");
}

/// Runs the helper as uid 65534 in a new user+network namespace (`unshare -rn`); returns the
/// namespace's inode.
fn unprivileged_helper(mode: &str, count: u32, prefix: &str) -> u32 {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "unshare",
            "-rn",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" --exact dns_helper_child --nocapture --test-threads=1",
        ])
        .arg(&exe)
        .env(HELPER, format!("{mode}:{count}:{prefix}"))
        .stdin(Stdio::null())
        .output()
        .expect("setpriv and unshare run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helper failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split("helper-netns ").nth(1))
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no namespace printed: {stdout}"))
}

fn may_run() -> bool {
    let available = rustix::process::geteuid().is_root()
        && ["/usr/bin/setpriv", "/usr/bin/unshare", "/usr/bin/dig"]
            .iter()
            .all(|p| Path::new(p).exists());
    support::ebpf_test_may_run(
        available,
        "DNS integrity (eBPF, root, setpriv, unshare, dig, dnsmasq, ip)",
    )
}

fn kernel_dns(daemon: &Daemon) -> serde_json::Value {
    daemon.query_json(&["metrics"])["daemon"]["kernel_dns"].clone()
}

fn counter(daemon: &Daemon, name: &str) -> u64 {
    kernel_dns(daemon)[name].as_u64().unwrap_or(0)
}

fn ips_of(daemon: &Daemon, args: &[&str]) -> Option<Vec<String>> {
    let mut all = vec!["dns"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = daemon.query(&all);
    if out.code != Some(0) {
        assert_eq!(out.code, Some(1), "{out:?}");
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    Some(
        v["ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect(),
    )
}

#[test]
fn unprivileged_namespaces_cannot_plant_answers_for_the_host() {
    if !may_run() {
        return;
    }
    let daemon = Daemon::start("dns-plant", "");
    let tag = std::process::id();

    // A forged answer with no query: refused in the kernel, counted as unmatched.
    let before = counter(&daemon, "answers_unmatched");
    let forged = format!("forged{tag}-");
    let forged_ns = unprivileged_helper("forge", 1, &forged);
    assert!(
        eventually(DEADLINE, || counter(&daemon, "answers_unmatched") > before),
        "unmatched answers not counted: {}",
        kernel_dns(&daemon)
    );
    let name = format!("{forged}0.watchpost.test");
    assert_eq!(ips_of(&daemon, &[&name]), None);
    assert_eq!(
        ips_of(&daemon, &[&name, "--netns", &forged_ns.to_string()]),
        None
    );

    // A query it answers itself: a fact about its own namespace only.
    let own = format!("own{tag}-");
    let own_ns = unprivileged_helper("self", 1, &own);
    let name = format!("{own}0.watchpost.test");
    let ns = own_ns.to_string();
    assert!(
        eventually(DEADLINE, || ips_of(&daemon, &[&name, "--netns", &ns])
            .is_some()),
        "the self-answered name never reached its namespace's view"
    );
    assert_eq!(
        ips_of(&daemon, &[&name, "--netns", &ns]),
        Some(vec!["203.0.113.1".to_owned()])
    );
    assert_eq!(ips_of(&daemon, &[&name]), None, "never in the host's view");
    assert_eq!(ips_of(&daemon, &["203.0.113.1"]), None, "nor its reverse");
    let human = daemon.query(&["dns", &name]);
    assert_eq!(human.code, Some(1), "{human:?}");
    assert!(
        human.stderr.contains("host's or a known container's"),
        "{human:?}"
    );
}

/// 127.0.53.x, the first whose port 53 is free.
fn free_dns_address() -> Ipv4Addr {
    (10..250u8)
        .map(|last| Ipv4Addr::new(127, 0, 53, last))
        .find(|a| UdpSocket::bind(SocketAddr::from((*a, 53))).is_ok())
        .expect("a free 127.0.53.x:53")
}

/// dnsmasq serving `records` (name, address) on `address`:53, optionally inside the network
/// namespace of `netns_pid`; killed on drop.
struct Dnsmasq(Child);

impl Dnsmasq {
    fn start(address: Ipv4Addr, records: &[(String, Ipv4Addr)], netns_pid: Option<u32>) -> Self {
        let mut args: Vec<String> = vec![
            "--keep-in-foreground".into(),
            "--conf-file=/dev/null".into(),
            "--pid-file=".into(),
            "--bind-interfaces".into(),
            format!("--listen-address={address}"),
            "--port=53".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--user=root".into(),
            "--local-ttl=300".into(),
        ];
        args.extend(
            records
                .iter()
                .map(|(name, ip)| format!("--host-record={name},{ip}")),
        );
        let mut command = match netns_pid {
            Some(pid) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/proc/{pid}/ns/net")).arg("dnsmasq");
                c
            }
            None => Command::new("dnsmasq"),
        };
        let child = command
            .args(&args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq runs (apt-get install dnsmasq)");
        Dnsmasq(child)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `dig @server name A`, optionally inside `netns_pid`'s network namespace; retried until
/// dnsmasq answers (it may still be starting).
fn dig(server: Ipv4Addr, name: &str, netns_pid: Option<u32>) {
    let answered = eventually(DEADLINE, || {
        let mut command = match netns_pid {
            Some(pid) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/proc/{pid}/ns/net")).arg("dig");
                c
            }
            None => Command::new("dig"),
        };
        command
            .args([&format!("@{server}"), "+tries=1", "+time=2", name, "A"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("status: NOERROR"))
    });
    assert!(answered, "dig {name} @{server} got no answer");
}

#[test]
fn real_names_survive_floods_from_unprivileged_namespaces() {
    if !may_run() {
        return;
    }
    let daemon = Daemon::start("dns-flood", "");
    let tag = std::process::id();
    let server = free_dns_address();
    let real: Vec<(String, Ipv4Addr)> = (0..8)
        .map(|i| {
            (
                format!("real{i}-{tag}.watchpost.test"),
                Ipv4Addr::new(192, 0, 2, 10 + i),
            )
        })
        .collect();
    let _dnsmasq = Dnsmasq::start(server, &real, None);
    for (name, _) in &real {
        dig(server, name, None);
    }
    for (name, ip) in &real {
        assert!(
            eventually(DEADLINE, || ips_of(&daemon, &[name]).is_some()),
            "{name} never answerable"
        );
        assert_eq!(ips_of(&daemon, &[name]), Some(vec![ip.to_string()]));
    }

    let unmatched = counter(&daemon, "answers_unmatched");
    unprivileged_helper("forge", 6_000, &format!("flood{tag}-"));
    unprivileged_helper("self", 6_000, &format!("selfflood{tag}-"));
    assert!(
        eventually(DEADLINE, || counter(&daemon, "answers_unmatched")
            >= unmatched + 6_000),
        "{}",
        kernel_dns(&daemon)
    );
    for (name, ip) in &real {
        assert_eq!(
            ips_of(&daemon, &[name]),
            Some(vec![ip.to_string()]),
            "{name} lost to the flood"
        );
    }
    // The self-answered flood was slowed in the kernel or by the store, and never trusted.
    let metrics = daemon.query_json(&["metrics"]);
    let d = &metrics["daemon"];
    let slowed = d["kernel_dns"]["answers_rate_limited"].as_u64().unwrap()
        + d["dns_messages_rate_limited"].as_u64().unwrap();
    assert!(slowed > 0, "{d}");
    assert_eq!(
        ips_of(&daemon, &[&format!("selfflood{tag}-5999.watchpost.test")]),
        None
    );
}

/// The cgroup v2 mount point.
fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, path, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == "cgroup2").then(|| PathBuf::from(path))
    })
}

/// Kills the container's processes and removes its cgroup.
struct ContainerModel {
    init: Child,
    cgroup: PathBuf,
}

impl Drop for ContainerModel {
    fn drop(&mut self) {
        let _ = self.init.kill();
        let _ = self.init.wait();
        let _ = eventually(Duration::from_secs(10), || {
            std::fs::remove_dir(&self.cgroup).is_ok()
        });
    }
}

#[test]
fn a_containers_namespace_is_trusted_and_answers_by_default() {
    if !may_run() {
        return;
    }
    let Some(root) = cgroup2_root() else {
        assert!(
            support::privileged_test_may_run(false, "container model (cgroup2)"),
            "unreachable"
        );
        return;
    };
    let daemon = Daemon::start(
        "dns-container",
        "[collector]\nreconcile_interval_ms = 200\n",
    );
    let tag = std::process::id();
    let stamp = format!("{:016x}", watchpost_actors::clock::now());
    let container_id = stamp.repeat(4);
    let cgroup = root.join(format!("docker-{container_id}.scope"));
    std::fs::create_dir(&cgroup).expect("creating a cgroup (root needed)");
    // The container's first process joins the cgroup, then gets a network namespace of its own
    // (as a runtime would make it) and waits.
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec unshare -n sh -c 'ip link set lo up && exec sleep 120'",
        cgroup.display()
    );
    let init = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = init.id();
    let model = ContainerModel { init, cgroup };
    let host_ns = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    let separate = eventually(DEADLINE, || {
        std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() != host_ns)
    });
    assert!(separate, "the container never got its own namespace");
    let netns = std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .ino();
    assert!(
        eventually(DEADLINE, || daemon
            .query(&["container", &container_id[..12]])
            .code
            == Some(0)),
        "container never discovered:\n{}",
        daemon.stderr()
    );
    // One more scan for the namespace to be read from its (now separate) first process.
    let scans = daemon.query_json(&["metrics"])["daemon"]["proc_scans"]
        .as_u64()
        .unwrap();
    assert!(eventually(
        DEADLINE,
        || daemon.query_json(&["metrics"])["daemon"]["proc_scans"]
            .as_u64()
            .unwrap()
            > scans + 1
    ));

    let name = format!("inside{tag}.watchpost.test");
    let ip = Ipv4Addr::new(192, 0, 2, 99);
    let _dnsmasq = Dnsmasq::start(Ipv4Addr::LOCALHOST, &[(name.clone(), ip)], Some(pid));
    dig(Ipv4Addr::LOCALHOST, &name, Some(pid));
    assert!(
        eventually(DEADLINE, || ips_of(&daemon, &[&name]).is_some()),
        "the container's answer is not in the default view: {}",
        kernel_dns(&daemon)
    );
    assert_eq!(ips_of(&daemon, &[&name]), Some(vec![ip.to_string()]));
    assert_eq!(
        ips_of(&daemon, &[&name, "--netns", &netns.to_string()]),
        Some(vec![ip.to_string()])
    );
    assert_eq!(
        ips_of(&daemon, &[&name, "--netns", &host_ns.to_string()]),
        None,
        "the host did not ask"
    );
    drop(model);
}
