//! Fleet mode at scale (`scripts/bench.sh`, section 6): the time from `fleet
//! set` on the conductor to the last node's report of the new version, with
//! N simulated nodes, and what etcd spends per node.
//!
//! The nodes are real agents, `credsync-fleet agent --simulate DIR`: one
//! agent per `--root` fixture (its own accounts, store and etcd connection,
//! watch and lease), many per process. They apply every entry through the
//! same change path as a real node (locks, intent, shadow, record) and
//! report under a lease. What differs from a fleet: every node shares one
//! machine's two cores and one disk, and one etcd identity (role
//! `credsync-bench-nodes`: read `users/`, write `nodes/`) instead of one
//! each, which would need N certificates and 5N role commands.
//!
//! Prints `key=value` lines; every round is checked (every node must report
//! the version, and libcrypt must accept the password in every node's
//! shadow at the end), so a wrong result fails the run.
//!
//!   cargo bench --bench fleet_scale -- --nodes 1000 --processes 4 --rounds 3

#[allow(dead_code)]
#[path = "../tests/fleet/etcd.rs"]
mod etcd;

use credsync_core::secret::Password;
use credsync_core::system::Paths;
use credsync_core::system::crypt::{self, LinuxHash};
use credsync_fleet::config::FleetConfig;
use credsync_fleet::report::Report;
use credsync_fleet::transport::{Change, Etcd, Transport, Watch, Watched};
use etcd::Cluster;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLEET: &str = "scale";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn binary() -> PathBuf {
    let here = std::env::current_exe().expect("the bench's own path");
    here.parent()
        .and_then(Path::parent)
        .expect("target/release/deps")
        .join("credsync-fleet")
}

/// A root with `admin`, credsync's cheapest settings and `fleet.toml`.
fn root(dir: &Path, cluster: &Cluster, identity: &str, fleet_lines: &str) {
    let etc = dir.join("etc");
    fs::create_dir_all(etc.join("credsync")).unwrap();
    fs::write(
        etc.join("passwd"),
        "root:x:0:0::/root:/bin/sh\nadmin:x:1000:1000::/home/admin:/bin/sh\n",
    )
    .unwrap();
    fs::write(etc.join("group"), "root:x:0:\nadmin:x:1000:\n").unwrap();
    fs::write(
        etc.join("shadow"),
        "root:*:19000:0:99999:7:::\nadmin:!:19000:0:99999:7:::\n",
    )
    .unwrap();
    fs::write(
        etc.join("credsync/credsync.toml"),
        // The conductor's hashes at a low cost: a node checks each hash it is
        // sent with one crypt(3) at the hash's own cost (`crypt::check_hash`),
        // the one per-node hashing there is, which the figure excludes.
        "[hash]\nmethod = \"sha512\"\nrounds = 1000\n\
         [argon2]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n[policy]\nmin_length = 1\nmin_classes = 1\nhistory = 0\n",
    )
    .unwrap();
    cluster.configure_root(dir, FLEET, identity, fleet_lines);
}

/// CPU seconds (user and system) a process has used.
fn cpu_s(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Established TCP connections to the members' client ports.
fn connections(ports: &[u16]) -> usize {
    let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default()
        + &fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3
                && fields[3] == "01"
                && fields[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    .is_some_and(|p| ports.contains(&p))
        })
        .count()
}

/// The agent processes, killed if the benchmark stops early.
struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for agent in &mut self.0 {
            let _ = agent.kill();
            let _ = agent.wait();
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let nodes = arg("--nodes", 1000);
    let processes = arg("--processes", 4).clamp(1, nodes);
    let rounds = arg("--rounds", 3);
    let cluster = Cluster::start(FLEET, &[]);
    cluster.new_identity("bench-nodes");
    for command in [
        "role add credsync-bench-nodes",
        "role grant-permission --prefix=true credsync-bench-nodes read /credsync/scale/users/",
        "role grant-permission --prefix=true credsync-bench-nodes readwrite /credsync/scale/nodes/",
        "user add bench-nodes --no-password",
        "user grant-role bench-nodes credsync-bench-nodes",
    ] {
        let args: Vec<&str> = command.split(' ').collect();
        let out = cluster.etcdctl("root", &args);
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Roots on tmpfs when there is one: one disk's fsyncs for N nodes would
    // measure the disk, where each appliance has its own.
    let base = if Path::new("/dev/shm").is_dir() {
        Path::new("/dev/shm")
    } else {
        Path::new("/tmp")
    };
    let work = tempfile::Builder::new()
        .prefix("credsync-fleet-scale-")
        .tempdir_in(base)
        .unwrap();
    let conductor = work.path().join("conductor");
    root(
        &conductor,
        &cluster,
        "conductor",
        "role = \"conductor\"\nnode = \"conductor\"\nsigning_key = \"/etc/credsync/fleet/signing.key\"\n",
    );
    let keygen = Command::new(binary())
        .arg("--root")
        .arg(&conductor)
        .args(["keygen", "--out"])
        .arg(conductor.join("etc/credsync/fleet/signing.key"))
        .output()
        .unwrap();
    assert!(
        keygen.status.success(),
        "{}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let public = String::from_utf8(keygen.stdout).unwrap().trim().to_owned();
    let mut node_roots = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let dir = work
            .path()
            .join(format!("p{}", i % processes))
            .join(format!("node{i:04}"));
        root(
            &dir,
            &cluster,
            "bench-nodes",
            &format!(
                "role = \"node\"\nnode = \"node{i:04}\"\npublic_keys = [\"{public}\"]\nreport_ttl_secs = 30\ndrift_check_secs = 3600\n"
            ),
        );
        node_roots.push(dir);
    }

    let pids = cluster.member_pids();
    let ports = cluster.client_ports();
    let rss_before: u64 = pids.iter().map(|&p| rss_kib(p)).sum();
    let conns_before = connections(&ports);
    let started = Instant::now();
    let mut agents = Agents(Vec::new());
    agents.0 = (0..processes)
        .map(|p| {
            Command::new(binary())
                .args(["agent", "--simulate"])
                .arg(work.path().join(format!("p{p}")))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    fs::File::create(work.path().join(format!("agents-{p}.log"))).unwrap(),
                ))
                .spawn()
                .unwrap()
        })
        .collect();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fleet = FleetConfig::load(&Paths::under(&conductor)).unwrap();
    let mut etcd = runtime.block_on(Etcd::connect(&fleet)).unwrap();
    let reports = |etcd: &mut Etcd| -> Vec<Report> {
        let snapshot = runtime
            .block_on(etcd.read_prefix(&fleet.nodes_prefix()))
            .unwrap();
        snapshot
            .kvs
            .iter()
            .filter(|kv| kv.key.ends_with("/report"))
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while reports(&mut etcd).len() < nodes {
        assert!(
            Instant::now() < deadline,
            "not every node reported within 300 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let connect_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let rss_after: u64 = pids.iter().map(|&p| rss_kib(p)).sum();
    let conns_after = connections(&ports);
    let agents_rss: u64 = agents.0.iter().map(|c| rss_kib(c.id())).sum();

    let agent_pids: Vec<u32> = agents.0.iter().map(Child::id).collect();
    let cpu = |pids: &[u32]| pids.iter().map(|&p| cpu_s(p)).sum::<f64>();
    let (etcd_cpu_before, agents_cpu_before) = (cpu(&pids), cpu(&agent_pids));
    let mut set_s = Vec::new();
    let mut converge_s = Vec::new();
    let mut password = String::new();
    for round in 1..=rounds as u64 {
        password = format!("Scale#Round-{round}");
        let start = runtime
            .block_on(etcd.read_prefix(&fleet.users_prefix()))
            .unwrap()
            .revision
            + 1;
        let t0 = Instant::now();
        let mut set = Command::new(binary())
            .arg("--root")
            .arg(&conductor)
            .args(["set", "admin", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        set.stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        let out = set.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "fleet set: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        set_s.push(t0.elapsed().as_secs_f64());
        // Every node's report of this round, as etcd delivers them: one
        // watch, not reads of the whole prefix, which would load etcd.
        let mut stream = runtime
            .block_on(etcd.watch_prefix(&fleet.nodes_prefix(), start))
            .unwrap();
        let mut done = std::collections::HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while done.len() < nodes {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = runtime.block_on(async { tokio::time::timeout(left, stream.next()).await });
            let Ok(Ok(Some(Watched::Changes { changes, .. }))) = next else {
                panic!(
                    "round {round}: {} of {nodes} nodes in 120 s ({next:?})",
                    done.len()
                );
            };
            for change in changes {
                if let Change::Put(kv) = change
                    && let Ok(report) = serde_json::from_slice::<Report>(&kv.value)
                    && report
                        .users
                        .get("admin")
                        .is_some_and(|u| u.applied >= round)
                {
                    done.insert(report.node);
                }
            }
        }
        converge_s.push(t0.elapsed().as_secs_f64());
    }
    let etcd_cpu = cpu(&pids) - etcd_cpu_before;
    let agents_cpu = cpu(&agent_pids) - agents_cpu_before;
    // Every node's shadow holds the last password.
    let password = Password::new(password.into_bytes()).unwrap();
    for dir in &node_roots {
        let shadow = fs::read_to_string(dir.join("etc/shadow")).unwrap();
        let hash = shadow
            .lines()
            .find_map(|l| l.strip_prefix("admin:"))
            .and_then(|rest| rest.split(':').next())
            .and_then(LinuxHash::from_field)
            .unwrap();
        assert!(
            crypt::verify(&password, &hash),
            "{}: shadow lacks the fleet's password",
            dir.display()
        );
    }
    for agent in &mut agents.0 {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(agent.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
    }
    for agent in std::mem::take(&mut agents.0) {
        assert!(
            agent.wait_with_output().unwrap().status.success(),
            "an agent process failed"
        );
    }
    let per_node = |total: u64| total as f64 / nodes as f64;
    println!("nodes={nodes}");
    println!("processes={processes}");
    println!("rounds={rounds}");
    println!("connect_all_s={connect_s:.3}");
    println!("set_s={:.3}", median(set_s));
    println!("set_to_last_report_s={:.3}", median(converge_s));
    println!(
        "etcd_rss_per_node_kib={:.1}",
        per_node(rss_after.saturating_sub(rss_before))
    );
    println!(
        "etcd_connections_per_node={:.2}",
        conns_after.saturating_sub(conns_before) as f64 / nodes as f64
    );
    println!("agent_rss_per_node_kib={:.1}", per_node(agents_rss));
    let per_change = |total: f64| total / (nodes * rounds) as f64 * 1000.0;
    println!("etcd_cpu_per_node_change_ms={:.3}", per_change(etcd_cpu));
    println!("agent_cpu_per_node_change_ms={:.3}", per_change(agents_cpu));
}
