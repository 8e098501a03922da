//! A real etcd cluster for the fleet tests: three members of the
//! distribution's etcd (3.4) on 127.0.0.1, TLS on every connection, clients'
//! and peers', with a CA the test makes itself (openssl CLI, EC P-256 keys),
//! and etcd's authentication on, with the roles an operator gives a fleet
//! ([`setup_commands`], the same commands as the README's). A client is the
//! user its certificate's CN names (`--client-cert-auth`): no user has a
//! password.
//!
//! Everything lives in one temporary directory: the CA, the certificates and
//! keys, each member's data dir and its log (`m0.log` …). A member that
//! doesn't come up fails the test with the tail of every member's log, and a
//! test that panics keeps the directory and prints where it is.
//!
//! Nothing here skips: without etcd, etcdctl or openssl the tests fail,
//! saying which package to install (`scripts/setup.sh` installs them).

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The programs the cluster needs, and the Debian packages that hold them.
const TOOLS: &[(&str, &str)] = &[
    ("etcd", "etcd-server"),
    ("etcdctl", "etcd-client"),
    ("openssl", "openssl"),
];

const MEMBERS: usize = 3;

/// How long the members get to answer `etcdctl endpoint health`, at start
/// and after a restart.
const HEALTHY_WITHIN: Duration = Duration::from_secs(20);

/// Lines of each member's log in a failure's message.
const LOG_TAIL: usize = 30;

/// How many openssl processes make certificates at once.
const OPENSSL_AT_ONCE: usize = 8;

/// The commands that set up the fleet as a whole, before any node's.
const FLEET_SETUP: &[&str] = &[
    "user add root --no-password",
    "user grant-role root root",
    "role add credsync-conductor",
    "role grant-permission --prefix=true credsync-conductor readwrite /credsync/{fleet}/users/",
    "role grant-permission --prefix=true credsync-conductor read /credsync/{fleet}/",
    "user add conductor --no-password",
    "user grant-role conductor credsync-conductor",
];

/// The commands that set up each node.
const NODE_SETUP: &[&str] = &[
    "role add credsync-node-{node}",
    "role grant-permission --prefix=true credsync-node-{node} read /credsync/{fleet}/users/",
    "role grant-permission --prefix=true credsync-node-{node} readwrite /credsync/{fleet}/nodes/{node}/",
    "user add node-{node} --no-password",
    "user grant-role node-{node} credsync-node-{node}",
];

/// The last command, once every user has its role.
const ENABLE_AUTH: &str = "auth enable";

/// The etcdctl commands (API v3, run in this order as `root`) that give a
/// fleet's conductor and nodes their roles and then turn authentication on,
/// each as its list of arguments. For the fleet `lab` with the node `n1`:
///
/// ```text
/// etcdctl user add root --no-password
/// etcdctl user grant-role root root
/// etcdctl role add credsync-conductor
/// etcdctl role grant-permission --prefix=true credsync-conductor readwrite /credsync/lab/users/
/// etcdctl role grant-permission --prefix=true credsync-conductor read /credsync/lab/
/// etcdctl user add conductor --no-password
/// etcdctl user grant-role conductor credsync-conductor
/// etcdctl role add credsync-node-n1
/// etcdctl role grant-permission --prefix=true credsync-node-n1 read /credsync/lab/users/
/// etcdctl role grant-permission --prefix=true credsync-node-n1 readwrite /credsync/lab/nodes/n1/
/// etcdctl user add node-n1 --no-password
/// etcdctl user grant-role node-n1 credsync-node-n1
/// etcdctl auth enable
/// ```
///
/// and the five lines of `n1` again for every other node. The conductor
/// writes the desired state under `users/` and reads the whole fleet (the
/// nodes' reports); a node reads `users/` and writes only under its own
/// `nodes/<name>/`: the trailing `/` keeps `n1` out of `n10`'s keys. The
/// users have no password: the server takes the CN of the client's
/// certificate as the user's name (`--client-cert-auth`).
pub fn setup_commands(fleet: &str, nodes: &[&str]) -> Vec<Vec<String>> {
    check_name("fleet", fleet);
    let fill = |template: &str, node: &str| -> Vec<String> {
        template
            .split_whitespace()
            .map(|word| word.replace("{node}", node).replace("{fleet}", fleet))
            .collect()
    };
    let mut commands: Vec<Vec<String>> = FLEET_SETUP.iter().map(|t| fill(t, "")).collect();
    for node in nodes {
        check_name("node", node);
        commands.extend(NODE_SETUP.iter().map(|t| fill(t, node)));
    }
    commands.push(fill(ENABLE_AUTH, ""));
    commands
}

/// A name that becomes part of keys, role and user names, a certificate's
/// subject and a file name: letters, digits, `.`, `_` and `-` only.
#[track_caller]
fn check_name(what: &str, name: &str) {
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    assert!(
        !name.is_empty() && !name.starts_with('.') && name.chars().all(fits),
        "{what} name {name:?}: use letters, digits, '.', '_' and '-' only"
    );
}

/// One member: its ports stay its own across a kill and a restart.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    process: Option<Child>,
}

impl Member {
    fn client_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.peer_port)
    }
}

/// A running cluster; dropping it kills every member.
pub struct Cluster {
    /// `tls/` (the CA, the members' certificate, `identities/`), each
    /// member's data dir and log.
    dir: tempfile::TempDir,
    members: Vec<Member>,
}

impl Cluster {
    /// A 3-member etcd cluster on 127.0.0.1 (free ports), TLS for clients and
    /// peers with a CA made by the test (openssl CLI), `--client-cert-auth`,
    /// and authentication on, with roles for `fleet` and each node name in
    /// `nodes` ([`setup_commands`]).
    ///
    /// Start-up takes about a second: the members elect a leader before they
    /// serve. The role setup then runs one etcdctl per command, about 30 ms
    /// each and five per node (1 s for 5 nodes; minutes for 1000).
    pub fn start(fleet: &str, nodes: &[&str]) -> Cluster {
        preflight();
        let began = Instant::now();
        let commands = setup_commands(fleet, nodes);
        let dir = tempfile::Builder::new()
            .prefix("credsync-etcd-")
            .tempdir()
            .expect("a temporary directory for the etcd cluster");
        make_ca(dir.path());
        let mut users = vec!["root".to_owned(), "conductor".to_owned()];
        users.extend(nodes.iter().map(|node| format!("node-{node}")));
        make_certificates(
            dir.path(),
            std::iter::once(("member", Role::Member))
                .chain(users.iter().map(|user| (user.as_str(), Role::Client))),
        );

        // All ports are taken at once, so that no two are the same.
        let listeners: Vec<TcpListener> = (0..2 * MEMBERS)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1"))
            .collect();
        let port = |i: usize| {
            listeners[i]
                .local_addr()
                .expect("the address of a bound port")
                .port()
        };
        let members = (0..MEMBERS)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: port(2 * i),
                peer_port: port(2 * i + 1),
                process: None,
            })
            .collect();
        drop(listeners);

        let mut cluster = Cluster { dir, members };
        for i in 0..MEMBERS {
            cluster.spawn(i);
        }
        cluster.wait_healthy("after the start");
        let healthy = began.elapsed();
        for command in &commands {
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            let out = cluster.etcdctl("root", &args);
            if !out.status.success() {
                cluster.fail(&format!(
                    "setting up the roles: `etcdctl {}` failed ({})\n{}",
                    command.join(" "),
                    out.status,
                    shown(&out)
                ));
            }
        }
        eprintln!(
            "etcd cluster in {}: {MEMBERS} members healthy in {healthy:.1?}, \
             {} setup commands in {:.1?}",
            cluster.dir.path().display(),
            commands.len(),
            began.elapsed() - healthy
        );
        cluster
    }

    /// `https://127.0.0.1:PORT` for each running member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.process.is_some())
            .map(Member::client_url)
            .collect()
    }

    /// The CA certificate (PEM) that signed every member's and client's.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }

    /// The client certificate and key (PEM paths) whose CN is `user`:
    /// `root`, `conductor`, `node-<name>` for each node, or one made by
    /// [`Cluster::new_identity`].
    #[track_caller]
    pub fn identity(&self, user: &str) -> (PathBuf, PathBuf) {
        check_name("user", user);
        let (cert, key) = identity_paths(self.dir.path(), user);
        assert!(
            cert.is_file() && key.is_file(),
            "no identity for {user:?}: the cluster's are root, conductor and node-<name> \
             for each node it started with; make others with new_identity"
        );
        (cert, key)
    }

    /// Makes a new client identity (certificate CN = `user`) signed by the
    /// CA, without any etcd user (for tests of unknown identities); returns
    /// (cert, key).
    #[track_caller]
    pub fn new_identity(&self, user: &str) -> (PathBuf, PathBuf) {
        check_name("user", user);
        let (cert, key) = identity_paths(self.dir.path(), user);
        assert!(
            !cert.exists(),
            "{user:?} already has an identity: ask identity() for it"
        );
        make_certificates(self.dir.path(), [(user, Role::Client)]);
        (cert, key)
    }

    /// Runs etcdctl (API v3) as `user` against every running member (every
    /// member when none runs); returns what it did. Its own flags can follow
    /// in `args` (`--dial-timeout=1s`, `-w json`, …).
    pub fn etcdctl(&self, user: &str, args: &[&str]) -> Output {
        let (cert, key) = self.identity(user);
        let mut endpoints = self.endpoints();
        if endpoints.is_empty() {
            endpoints = self.members.iter().map(Member::client_url).collect();
        }
        let mut command = Command::new("etcdctl");
        without_env(&mut command, "ETCDCTL_");
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg("--cacert")
            .arg(self.ca())
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl")
    }

    /// Kills one member (0..3) with SIGKILL and waits for it. If it led, the
    /// other two elect a new leader (one to two seconds: etcd's election
    /// timeout, randomized), and a write before then fails after etcdctl's
    /// timeout.
    #[track_caller]
    pub fn kill(&mut self, member: usize) {
        let m = &mut self.members[member];
        let mut process = m
            .process
            .take()
            .unwrap_or_else(|| panic!("member {} is not running", m.name));
        process.kill().expect("SIGKILL to an etcd member");
        process.wait().expect("wait for a killed etcd member");
    }

    /// Writes `root`'s `/etc/credsync/fleet.toml` for `identity`: the
    /// running members' endpoints, and the CA and the identity's
    /// certificate copied into `root/etc/credsync/fleet/`; `lines` are the
    /// rest of the file (role, node, keys).
    pub fn configure_root(&self, root: &Path, fleet: &str, identity: &str, lines: &str) {
        let dir = root.join("etc/credsync/fleet");
        fs::create_dir_all(&dir).expect("make etc/credsync/fleet in the root");
        let (cert, key) = self.identity(identity);
        for (from, to) in [
            (self.ca(), "ca.pem"),
            (cert, "client.pem"),
            (key, "client.key"),
        ] {
            fs::copy(&from, dir.join(to)).expect("copy a TLS file into the root");
        }
        let endpoints: Vec<String> = self.endpoints().iter().map(|e| format!("{e:?}")).collect();
        fs::write(
            root.join("etc/credsync/fleet.toml"),
            format!(
                "fleet = \"{fleet}\"\nendpoints = [{}]\nca = \"/etc/credsync/fleet/ca.pem\"\n\
                 cert = \"/etc/credsync/fleet/client.pem\"\nkey = \"/etc/credsync/fleet/client.key\"\n{lines}",
                endpoints.join(", ")
            ),
        )
        .expect("write the root's fleet.toml");
    }

    /// The running members' process ids (for the benchmark's memory figures).
    #[allow(dead_code)] // benches/fleet_scale.rs
    pub fn member_pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.process.as_ref().map(Child::id))
            .collect()
    }

    /// Every member's client port, running or not.
    #[allow(dead_code)] // benches/fleet_scale.rs
    pub fn client_ports(&self) -> Vec<u16> {
        self.members.iter().map(|m| m.client_port).collect()
    }

    /// Starts a killed member again, on the same ports with the same data
    /// dir, and waits until every running member answers
    /// `etcdctl endpoint health`.
    #[track_caller]
    pub fn restart(&mut self, member: usize) {
        let m = &self.members[member];
        assert!(m.process.is_none(), "member {} is running", m.name);
        self.spawn(member);
        let name = self.members[member].name.clone();
        self.wait_healthy(&format!("after restarting {name}"));
    }

    /// Starts member `i` (a new one, or again over its data dir: etcd then
    /// ignores `--initial-cluster-state`). Its output goes to its log,
    /// appended to across restarts.
    fn spawn(&mut self, i: usize) {
        let dir = self.dir.path();
        let tls = dir.join("tls");
        let m = &self.members[i];
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{}.log", m.name)))
            .expect("open an etcd member's log");
        let mut command = Command::new("etcd");
        without_env(&mut command, "ETCD_");
        command
            .arg(format!("--name={}", m.name))
            .arg(flag("--data-dir", dir.join(&m.name)))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg("--initial-cluster-state=new")
            // Unique per cluster: a member of another test's cluster that
            // found these ports can't join this one.
            .arg(flag(
                "--initial-cluster-token",
                dir.file_name().expect("a temp dir's name"),
            ))
            .arg(format!("--listen-client-urls={}", m.client_url()))
            .arg(format!("--advertise-client-urls={}", m.client_url()))
            .arg(format!("--listen-peer-urls={}", m.peer_url()))
            .arg(format!("--initial-advertise-peer-urls={}", m.peer_url()))
            .arg(flag("--cert-file", tls.join("member.pem")))
            .arg(flag("--key-file", tls.join("member.key")))
            .arg(flag("--trusted-ca-file", tls.join("ca.pem")))
            .arg("--client-cert-auth")
            .arg(flag("--peer-cert-file", tls.join("member.pem")))
            .arg(flag("--peer-key-file", tls.join("member.key")))
            .arg(flag("--peer-trusted-ca-file", tls.join("ca.pem")))
            .arg("--peer-client-cert-auth")
            .arg("--auth-token=simple")
            .args(["--logger=zap", "--log-outputs=stderr"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("share an etcd member's log"))
            .stderr(log);
        let process = command
            .spawn()
            .unwrap_or_else(|e| panic!("start etcd member {}: {e}", m.name));
        self.members[i].process = Some(process);
    }

    /// Waits until every running member answers `etcdctl endpoint health`,
    /// and fails the test if one exits or [`HEALTHY_WITHIN`] passes first.
    ///
    /// The health check is a write, and a write proposed before the members
    /// have elected a leader waits out etcdctl's whole timeout, as does a
    /// first dial to a member not yet listening: so it waits first for the
    /// members to listen and to name the same leader in `endpoint status`
    /// (which a member answers on its own).
    fn wait_healthy(&mut self, when: &str) {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        let mut last = String::from("(not every member is listening)");
        loop {
            self.check_running(when);
            if self.listening() {
                let status = self.etcdctl(
                    "root",
                    &[
                        "endpoint",
                        "status",
                        "-w",
                        "json",
                        "--dial-timeout=1s",
                        "--command-timeout=2s",
                    ],
                );
                last = shown(&status);
                if self.agree_on_leader(&status) {
                    let health = self.etcdctl("root", &["endpoint", "health", "--dial-timeout=1s"]);
                    if health.status.success() {
                        return;
                    }
                    last = shown(&health);
                }
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "the etcd members are not all healthy {HEALTHY_WITHIN:?} {when}; \
                     etcdctl said last:\n{last}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fails the test if a member that should run has exited.
    fn check_running(&mut self, when: &str) {
        for i in 0..self.members.len() {
            let m = &mut self.members[i];
            if let Some(process) = &mut m.process
                && let Ok(Some(status)) = process.try_wait()
            {
                m.process = None;
                let name = m.name.clone();
                self.fail(&format!("etcd member {name} exited {when} ({status})"));
            }
        }
    }

    /// Every running member takes connections on its client port (each
    /// probe shows in the member's log as a `rejected connection`: it closes
    /// without a TLS handshake).
    fn listening(&self) -> bool {
        self.members
            .iter()
            .filter(|m| m.process.is_some())
            .all(|m| TcpStream::connect(("127.0.0.1", m.client_port)).is_ok())
    }

    /// Every running member answered `endpoint status` naming the same leader.
    fn agree_on_leader(&self, status: &Output) -> bool {
        let Ok(serde_json::Value::Array(answers)) = serde_json::from_slice(&status.stdout) else {
            return false;
        };
        let leaders: Vec<u64> = answers
            .iter()
            .filter_map(|answer| answer["Status"]["leader"].as_u64())
            .collect();
        status.status.success()
            && leaders.len() == self.endpoints().len()
            && leaders
                .iter()
                .all(|&leader| leader != 0 && leader == leaders[0])
    }

    /// Fails the test with `what` and the tail of every member's log.
    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        let mut message = format!("{what}\n");
        for m in &self.members {
            let path = self.dir.path().join(format!("{}.log", m.name));
            let log = fs::read(&path).unwrap_or_default();
            let log = String::from_utf8_lossy(&log);
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL)..];
            message.push_str(&format!(
                "--- {} (last {} lines) ---\n{}\n",
                path.display(),
                tail.len(),
                tail.join("\n")
            ));
        }
        panic!("{message}");
    }
}

impl Drop for Cluster {
    /// Kills every member and waits for it; after a panic the directory stays,
    /// for its logs.
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut process) = m.process.take() {
                let _ = process.kill();
                let _ = process.wait();
            }
        }
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "the etcd cluster's certificates, data and logs are kept in {}",
                self.dir.path().display()
            );
        }
    }
}

/// What a command printed, for a failure's message.
pub fn shown(out: &Output) -> String {
    format!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `--name=value` for a path.
fn flag(name: &str, value: impl AsRef<OsStr>) -> std::ffi::OsString {
    let mut flag = std::ffi::OsString::from(format!("{name}="));
    flag.push(value);
    flag
}

/// Leaves out the caller's variables that etcd or etcdctl would read as
/// flags (`ETCD_DATA_DIR`, `ETCDCTL_ENDPOINTS`, …): the harness's flags alone
/// say what runs.
fn without_env(command: &mut Command, prefix: &str) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with(prefix) {
            command.env_remove(name);
        }
    }
}

/// Fails the test unless every program the cluster needs is installed.
fn preflight() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(tool, _)| !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .map(|(tool, package)| format!("{tool} (apt-get install {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "\n*** the fleet tests CANNOT RUN: missing {} (scripts/setup.sh installs them). \
         They never pass by skipping.\n",
        missing.join(", ")
    );
}

// ---- Certificates: the openssl CLI, EC P-256 keys ----

/// What a certificate is for.
#[derive(Clone, Copy)]
enum Role {
    /// A member, to clients and to its peers: serves and connects as
    /// 127.0.0.1.
    Member,
    /// A client whose CN is its etcd user.
    Client,
}

/// Extensions of this file alone, so that the host's openssl.cnf adds none.
const OPENSSL_CNF: &str = "\
[req]
distinguished_name = subject
[subject]
[test_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[member]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
";

/// `openssl req -x509` for a new P-256 key, valid two days.
fn openssl_req(tls: &Path, cn: &str, extensions: &str, cert: &Path, key: &Path) -> Command {
    let mut command = Command::new("openssl");
    command
        .arg("req")
        .arg("-x509")
        .arg("-config")
        .arg(tls.join("openssl.cnf"))
        .args(["-extensions", extensions])
        .args([
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-noenc",
        ])
        .args(["-days", "2", "-subj", &format!("/CN={cn}")])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stdin(Stdio::null());
    command
}

/// `tls/ca.pem` and `tls/ca.key`: the cluster's own CA.
fn make_ca(dir: &Path) {
    let tls = dir.join("tls");
    fs::create_dir_all(tls.join("identities")).expect("create the cluster's tls/ directory");
    fs::write(tls.join("openssl.cnf"), OPENSSL_CNF).expect("write tls/openssl.cnf");
    run_all(vec![openssl_req(
        &tls,
        "credsync test CA",
        "test_ca",
        &tls.join("ca.pem"),
        &tls.join("ca.key"),
    )]);
}

/// Where `user`'s certificate and key are.
fn identity_paths(dir: &Path, user: &str) -> (PathBuf, PathBuf) {
    let identities = dir.join("tls/identities");
    (
        identities.join(format!("{user}.pem")),
        identities.join(format!("{user}.key")),
    )
}

/// A certificate signed by the CA for each (CN, role): a member's is
/// `tls/member.pem`, a client's is its identity.
fn make_certificates<'a>(dir: &Path, certificates: impl IntoIterator<Item = (&'a str, Role)>) {
    let tls = dir.join("tls");
    let commands = certificates
        .into_iter()
        .map(|(cn, role)| {
            let (extensions, (cert, key)) = match role {
                Role::Member => ("member", (tls.join("member.pem"), tls.join("member.key"))),
                Role::Client => ("client", identity_paths(dir, cn)),
            };
            let mut command = openssl_req(&tls, cn, extensions, &cert, &key);
            command
                .arg("-CA")
                .arg(tls.join("ca.pem"))
                .arg("-CAkey")
                .arg(tls.join("ca.key"));
            command
        })
        .collect();
    run_all(commands);
}

/// Runs the commands, [`OPENSSL_AT_ONCE`] at a time, and fails the test with
/// the output of the first that fails.
fn run_all(mut commands: Vec<Command>) {
    for batch in commands.chunks_mut(OPENSSL_AT_ONCE) {
        let children: Vec<Child> = batch
            .iter_mut()
            .map(|command| {
                command
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("run openssl")
            })
            .collect();
        for (child, command) in children.into_iter().zip(batch.iter()) {
            let out = child.wait_with_output().expect("wait for openssl");
            assert!(
                out.status.success(),
                "making a certificate failed ({}): {command:?}\n{}",
                out.status,
                shown(&out)
            );
        }
    }
}
