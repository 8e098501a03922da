//! The appliances around the cluster: a conductor and N nodes, each a
//! `--root` fixture with its own accounts, store, `fleet.toml` and client
//! certificate, each node with its own agent process (`credsync-fleet
//! agent`), started, stopped and killed by the tests.

use super::etcd::Cluster;
use super::fixture::{Fixture, Root};
use credsync_core::secret::Password;
use credsync_core::system::crypt::{self, LinuxHash};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const FIRST: &str = "Fleet#Alpha-2026";

pub fn fleet_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_credsync")).with_file_name("credsync-fleet")
}

pub struct Appliance {
    pub name: String,
    pub root: Root,
    agent: Option<Child>,
}

pub struct Fleet {
    pub cluster: Cluster,
    pub conductor: Root,
    pub nodes: Vec<Appliance>,
}

impl Fleet {
    /// A cluster, a conductor with a new signing key, and `count` nodes
    /// `n1`… each holding `admin` and `alice` (password `Old#…`); node
    /// `report_only` (if any) keeps local changes.
    pub fn new(name: &str, count: usize, report_only: &[&str]) -> Fleet {
        let node_names: Vec<String> = (1..=count).map(|i| format!("n{i}")).collect();
        let refs: Vec<&str> = node_names.iter().map(String::as_str).collect();
        let cluster = Cluster::start(name, &refs);
        let conductor = Fixture::new().user("admin", "Old#Conductor-1").build();
        cluster.configure_root(
            conductor.path(),
            name,
            "conductor",
            "role = \"conductor\"\nnode = \"conductor\"\nsigning_key = \"/etc/credsync/fleet/signing.key\"\ncrypt_method = \"sha512\"\n",
        );
        let out = Command::new(fleet_binary())
            .arg("--root")
            .arg(conductor.path())
            .args(["keygen", "--out"])
            .arg(conductor.path().join("etc/credsync/fleet/signing.key"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public_key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let nodes = node_names
            .iter()
            .map(|node| {
                let root = Fixture::new()
                    .user("admin", "Old#Admin-1")
                    .user("alice", "Old#Alice-1")
                    .build();
                let conflict = if report_only.contains(&node.as_str()) {
                    "report_only"
                } else {
                    "fleet_wins"
                };
                cluster.configure_root(
                    root.path(),
                    name,
                    &format!("node-{node}"),
                    &format!(
                        "role = \"node\"\nnode = \"{node}\"\npublic_keys = [\"{public_key}\"]\n\
                         conflict = \"{conflict}\"\nreport_ttl_secs = 6\ndrift_check_secs = 1\nsilent_after_secs = 20\n"
                    ),
                );
                Appliance {
                    name: node.clone(),
                    root,
                    agent: None,
                }
            })
            .collect();
        Fleet {
            cluster,
            conductor,
            nodes,
        }
    }

    pub fn start_all(&mut self) {
        for node in &mut self.nodes {
            node.start();
        }
    }

    /// `credsync fleet ARGS` on the conductor (through the CLI's hand-over).
    pub fn conduct(&self, args: &[&str], stdin: &str) -> Output {
        self.start_conducting(args, stdin)
            .wait_with_output()
            .unwrap()
    }

    /// The same, started with `stdin` written and closed, not waited for.
    pub fn start_conducting(&self, args: &[&str], stdin: &str) -> Child {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_credsync"))
            .arg("--root")
            .arg(self.conductor.path())
            .arg("fleet")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command that refuses before reading may have closed its input.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child
    }

    /// `fleet set USER --stdin` with `password`, which must succeed; returns its output.
    #[track_caller]
    pub fn set(&self, user: &str, password: &str) -> String {
        let out = self.conduct(&["set", user, "--stdin"], &format!("{password}\n"));
        assert!(
            out.status.success(),
            "fleet set {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `fleet status --json`: one value per user.
    pub fn status(&self) -> Vec<serde_json::Value> {
        let out = self.conduct(&["status", "--json"], "");
        assert!(
            out.status.success(),
            "fleet status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Where `node` stands for `user` in `fleet status`: (state, applied).
    pub fn standing(&self, user: &str, node: &str) -> Option<(String, u64, String)> {
        self.status().iter().find(|u| u["user"] == user)?["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["node"] == node)
            .map(|n| {
                (
                    n["state"].as_str().unwrap_or_default().to_owned(),
                    n["applied"].as_u64().unwrap_or(0),
                    n["detail"].as_str().unwrap_or_default().to_owned(),
                )
            })
    }

    /// Waits until every node named reports `user` in step at `version`.
    #[track_caller]
    pub fn wait_in_step(&self, user: &str, version: u64, nodes: &[&str], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let status = self.status();
            let entry = status.iter().find(|u| u["user"] == user);
            let lagging: Vec<String> = nodes
                .iter()
                .filter(|node| {
                    !entry.is_some_and(|u| {
                        u["version"] == version
                            && u["nodes"].as_array().is_some_and(|ns| {
                                ns.iter().any(|n| {
                                    n["node"] == **node
                                        && n["state"] == "in step"
                                        && n["applied"] == version
                                })
                            })
                    })
                })
                .map(|n| (*n).to_owned())
                .collect();
            if lagging.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{user} not in step at version {version} on {lagging:?} within {within:?}: {}",
                serde_json::to_string_pretty(&entry).unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn node(&mut self, name: &str) -> &mut Appliance {
        self.nodes.iter_mut().find(|n| n.name == name).unwrap()
    }
}

impl Appliance {
    pub fn start(&mut self) {
        assert!(self.agent.is_none(), "{}'s agent runs already", self.name);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("agent.log"))
            .unwrap();
        let child = Command::new(fleet_binary())
            .arg("--root")
            .arg(self.root.path())
            .arg("agent")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    /// SIGTERM, and wait: the agent finishes what it applies and exits 0.
    pub fn stop(&mut self) {
        let mut child = self.agent.take().expect("the agent runs");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "{}'s agent on SIGTERM: {status}\n{}",
            self.name,
            self.log()
        );
    }

    pub fn kill9(&mut self) {
        let mut child = self.agent.take().expect("the agent runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.root.path().join("agent.log")).unwrap_or_default()
    }

    pub fn shadow_hash(&self, user: &str) -> LinuxHash {
        LinuxHash::from_field(&self.root.shadow_field(user, 2)).unwrap()
    }

    /// Both stores take `password` for `user`: libcrypt against this node's
    /// shadow, and `credsync verify` against its record.
    pub fn accepts(&self, user: &str, password: &str) -> bool {
        self.linux_accepts(user, password) && self.root.verify(user, password) == 0
    }

    /// libcrypt takes `password` for `user`'s hash in this node's shadow.
    pub fn linux_accepts(&self, user: &str, password: &str) -> bool {
        crypt::verify(
            &Password::new(password.as_bytes().to_vec()).unwrap(),
            &self.shadow_hash(user),
        )
    }

    /// The store's record row, as (linux_hash, session_epoch, source) and
    /// the fleet version applied.
    pub fn record(&self, user: &str) -> (String, i64, String, Option<i64>) {
        let db = rusqlite::Connection::open(self.root.path().join("var/lib/credsync/credsync.db"))
            .unwrap();
        let (hash, epoch, source) = db
            .query_row(
                "SELECT linux_hash, session_epoch, source FROM record WHERE user = ?1",
                [user],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        let version = db
            .query_row(
                "SELECT version FROM fleet_applied WHERE user = ?1",
                [user],
                |r| r.get(0),
            )
            .ok();
        (hash, epoch, source, version)
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
