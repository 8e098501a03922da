//! credsyncd, the varlink service the appliance's applications call
//! (`io.credsync.Credentials`, crates/credsyncd/io.credsync.Credentials.varlink),
//! run as root in the sandbox against its copy of `/etc` and the real PAM
//! stack: every method's answer and refusal, checked in both stores
//! (`pamtester` for Linux, `verify` and `status` for the record); who may call
//! what, from the caller's SO_PEERCRED (root, a member of `[api] groups`, the
//! user); Monitor's events for every change, whoever makes it; fifty
//! verifiers beside changes; abusive clients; socket activation as systemd
//! does it; `credsync api call`; and the README's Python client, run as
//! written.
//!
//! The test process itself is the root client (a small varlink client
//! below); ordinary users call through `python3` run by `setpriv`.

use crate::harness::{Account, FAST_CONFIG, Outcome, Sandbox, exit};
use crate::{NEW, OLD, OTHER};
use serde_json::{Value, json};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const IFACE: &str = "io.credsync.Credentials";
/// carol's password; carol is not managed by credsync.
const CAROL: &str = "Carol%Secret-55";
const WRONG: &str = "Wrong#Guess-2024";

/// Long enough for PAM and Argon2id on a loaded machine.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest an event may take to reach a monitor.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// An answer that comes "promptly".
const PROMPT: Duration = Duration::from_secs(2);

/// `credsync api call`'s exit codes (README, "Exit codes").
mod code {
    pub const VARLINK: i32 = 2;
    pub const CANNOT_CONNECT: i32 = 3;
    pub const INVALID: i32 = 6;
    pub const POLICY: i32 = 8;
    pub const LOCKED: i32 = 13;
}

// ---- The sandbox's credsync.toml ----

/// `/etc/credsync/credsync.toml` for a service test, edited key by key.
#[derive(Clone)]
pub(crate) struct Settings(String);

impl Settings {
    /// [`FAST_CONFIG`] (no delay after a failure, the policy and the lockout
    /// off) and an `[api]` section: `appsvc`'s members call for managed
    /// users, and the service does not leave by itself during a test.
    pub(crate) fn fast() -> Settings {
        Settings(FAST_CONFIG.to_owned())
            .set("api", "groups", r#"["appsvc"]"#)
            .set("api", "exit_idle_secs", "600")
    }

    /// Cheap Argon2id hashes (as tests/system/concurrency.rs has them), for
    /// the tests that verify hundreds of times: a debug build takes most of
    /// a second for one at the default cost. Write them before enrolling.
    fn cheap_hashes(self) -> Settings {
        self.set("argon2", "memory_kib", "1024")
            .set("argon2", "iterations", "1")
    }

    /// `key = value` in `[section]`, replacing the key's line if there is one.
    pub(crate) fn set(self, section: &str, key: &str, value: &str) -> Settings {
        let header = format!("[{section}]");
        let line = format!("{key} = {value}");
        let mut lines: Vec<String> = self.0.lines().map(str::to_owned).collect();
        match lines.iter().position(|l| l.trim() == header) {
            None => lines.extend([String::new(), header, line]),
            Some(start) => {
                let end = lines[start + 1..]
                    .iter()
                    .position(|l| l.trim_start().starts_with('['))
                    .map_or(lines.len(), |i| start + 1 + i);
                let existing = lines[start + 1..end]
                    .iter()
                    .position(|l| l.split('=').next().map(str::trim) == Some(key));
                match existing {
                    Some(i) => lines[start + 1 + i] = line,
                    None => lines.insert(end, line),
                }
            }
        }
        Settings(lines.join("\n") + "\n")
    }
}

// ---- The appliance: accounts, and credsyncd serving them ----

/// alice (password OLD) and bob (OTHER), managed by credsync; carol (CAROL),
/// not managed; `gui`, the application's service account, in group `appsvc`.
struct Appliance {
    sb: Sandbox,
    alice: Account,
    bob: Account,
    gui: Account,
}

fn appliance() -> Appliance {
    appliance_with(&Settings::fast())
}

/// The same, enrolled under `settings` (their Argon2id cost).
fn appliance_with(settings: &Settings) -> Appliance {
    let sb = Sandbox::new();
    sb.write_config(&settings.0);
    let alice = sb.useradd("alice");
    let bob = sb.useradd("bob");
    sb.useradd("carol");
    let gui = sb.useradd("gui");
    sb.chpasswd("carol", CAROL);
    sb.enrol("alice", OLD);
    sb.enrol("bob", OTHER);
    sb.root_sh("groupadd appsvc && usermod -a -G appsvc gui", "")
        .expect_ok("gui joins appsvc");
    Appliance {
        sb,
        alice,
        bob,
        gui,
    }
}

/// The service binary this build made, beside credsync (`cargo test` builds
/// only the root package: build the workspace first).
fn credsyncd() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_credsync")).with_file_name("credsyncd");
    assert!(
        path.is_file(),
        "{} is missing: build the workspace (cargo build --workspace --features fault-injection) before the tests",
        path.display()
    );
    path
}

/// credsyncd running as root inside the sandbox; killed when dropped.
pub(crate) struct Service {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Service {
    /// `credsyncd --listen SOCKET`, with `settings` as credsync.toml, on the
    /// sandbox's `/etc` (no `--root`); returns once it accepts connections.
    /// SOCKET's directory does not exist yet: the service makes it.
    pub(crate) fn start(sb: &Sandbox, settings: &Settings) -> Service {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        Service::start_in(sb, settings, sb.scratch(&format!("api-{n}")))
    }

    /// The same, in `dir` (a restart keeps its socket's path).
    pub(crate) fn start_in(sb: &Sandbox, settings: &Settings, dir: PathBuf) -> Service {
        sb.write_config(&settings.0);
        let socket = dir.join("run/io.credsync.Credentials");
        let log = dir.join("credsyncd.log");
        let child = sb.spawn_root(
            credsyncd().as_os_str(),
            &["--listen".as_ref(), socket.as_os_str()],
            &[],
            &log,
        );
        let mut service = Service { child, socket, log };
        service.wait_listening();
        service
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&self.socket).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "credsyncd exited before listening ({status}):\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "credsyncd never listened on {}:\n{}",
                self.socket.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn socket(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn connect(&self) -> Conn {
        Conn::open(&self.socket)
    }

    /// One call as root (the test process), on a connection of its own.
    #[track_caller]
    fn call(&self, method: &str, parameters: Value) -> Reply {
        self.connect().call(method, parameters)
    }

    #[track_caller]
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("credsyncd is gone ({status}):\n{}", self.log());
        }
    }

    /// Its exit status, if it exits within `limit`.
    pub(crate) fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, as systemd stops it.
    pub(crate) fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM credsyncd");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- A varlink client: the test process, as root ----

/// `Verify` becomes `io.credsync.Credentials.Verify`; full names stay.
fn full(method: &str) -> String {
    if method.contains('.') {
        method.to_owned()
    } else {
        format!("{IFACE}.{method}")
    }
}

/// One message from the service.
#[derive(Debug, Clone)]
struct Reply {
    error: Option<String>,
    parameters: Value,
    continues: bool,
}

impl Reply {
    fn from_json(value: Value) -> Reply {
        Reply {
            error: value["error"].as_str().map(str::to_owned),
            parameters: value.get("parameters").cloned().unwrap_or(json!({})),
            continues: value["continues"].as_bool().unwrap_or(false),
        }
    }

    /// The parameters of a successful reply.
    #[track_caller]
    fn ok(&self, what: &str) -> &Value {
        assert!(
            self.error.is_none(),
            "{what}: expected success, got {self:?}"
        );
        &self.parameters
    }

    /// The parameters of error `name` (a short name is the interface's).
    #[track_caller]
    fn error(&self, name: &str, what: &str) -> &Value {
        assert_eq!(
            self.error.as_deref(),
            Some(full(name).as_str()),
            "{what}: got {self:?}"
        );
        &self.parameters
    }

    fn is_error(&self, name: &str) -> bool {
        self.error.as_deref() == Some(full(name).as_str())
    }
}

/// `org.varlink.service.GetInfo`, framed.
const GET_INFO: &[u8] = b"{\"method\":\"org.varlink.service.GetInfo\",\"parameters\":{}}\0";

/// What a connection gave within a time limit.
#[derive(Debug)]
enum Next {
    Message(Reply),
    Closed,
    Silent,
}

struct Conn {
    stream: UnixStream,
    pending: Vec<u8>,
}

impl Conn {
    #[track_caller]
    fn open(socket: &Path) -> Conn {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", socket.display()));
        Conn {
            stream,
            pending: Vec::new(),
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    #[track_caller]
    fn send(&mut self, method: &str, parameters: Value, more: bool) {
        let mut call = json!({ "method": full(method), "parameters": parameters });
        if more {
            call["more"] = json!(true);
        }
        let mut bytes = serde_json::to_vec(&call).unwrap();
        bytes.push(0);
        self.send_raw(&bytes).expect("send a call to credsyncd");
    }

    /// The next message, unless the connection closes or stays silent for
    /// `limit`.
    fn next(&mut self, limit: Duration) -> Next {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == 0) {
                let message: Vec<u8> = self.pending.drain(..=end).collect();
                let text = &message[..end];
                let value = serde_json::from_slice(text).unwrap_or_else(|e| {
                    panic!(
                        "credsyncd sent a message that is not JSON ({e}): {:?}",
                        String::from_utf8_lossy(text)
                    )
                });
                return Next::Message(Reply::from_json(value));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Silent;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut buf = [0u8; 65536];
            match self.stream.read(&mut buf) {
                Ok(0) => return Next::Closed,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Next::Silent;
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Next::Closed,
                Err(e) => panic!("reading from credsyncd: {e}"),
            }
        }
    }

    #[track_caller]
    fn reply(&mut self, what: &str) -> Reply {
        match self.next(CALL_TIMEOUT) {
            Next::Message(reply) => reply,
            other => panic!("{what}: no reply from credsyncd ({other:?})"),
        }
    }

    #[track_caller]
    fn call(&mut self, method: &str, parameters: Value) -> Reply {
        self.send(method, parameters, false);
        self.reply(method)
    }
}

// ---- Calls made by ordinary users: python3 through setpriv ----

/// Each call of `argv[2]` (a JSON list of `[method, parameters]`) on a
/// connection of its own; each reply on one line, `{"closed": true}` for a
/// connection closed without one.
const CLIENT_PY: &str = r#"
import json, socket, sys
path, calls = sys.argv[1], json.loads(sys.argv[2])
for method, parameters in calls:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    s.sendall(json.dumps({"method": method, "parameters": parameters}).encode() + b"\0")
    buf = b""
    while b"\0" not in buf:
        data = s.recv(65536)
        if not data:
            break
        buf += data
    if b"\0" in buf:
        print(buf.split(b"\0")[0].decode(), flush=True)
    else:
        print(json.dumps({"closed": True}), flush=True)
    s.close()
"#;

/// `text` as one single-quoted shell word.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A script written where every user of the sandbox can read it.
fn script(sb: &Sandbox, name: &str, text: &str) -> PathBuf {
    let path = sb.scratch("scripts").join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

/// A directory every user of the sandbox may write to (marker files).
fn shared_dir(sb: &Sandbox) -> PathBuf {
    let dir = sb.scratch("shared");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// `calls` made by `account` (its uid is what SO_PEERCRED shows), one
/// connection each; the replies in order.
#[track_caller]
fn calls_as(
    sb: &Sandbox,
    account: &Account,
    service: &Service,
    calls: &[(&str, Value)],
) -> Vec<Reply> {
    let client = script(sb, "client.py", CLIENT_PY);
    let calls: Vec<Value> = calls.iter().map(|(m, p)| json!([full(m), p])).collect();
    let out = sb
        .as_user(account)
        .bash(&format!(
            "exec python3 {} {} {}",
            client.display(),
            quoted(service.socket()),
            quoted(&Value::Array(calls.clone()).to_string())
        ))
        .expect_ok("the python client");
    let replies: Vec<Reply> = out
        .stdout
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap();
            assert!(
                value.get("closed").is_none(),
                "credsyncd closed the connection without a reply:\n{out}"
            );
            Reply::from_json(value)
        })
        .collect();
    assert_eq!(replies.len(), calls.len(), "{out}");
    replies
}

#[track_caller]
fn call_as(
    sb: &Sandbox,
    account: &Account,
    service: &Service,
    method: &str,
    parameters: Value,
) -> Reply {
    calls_as(sb, account, service, &[(method, parameters)])
        .pop()
        .unwrap()
}

// ---- What the stores say ----

/// `/etc/shadow` byte for byte and `user`'s record: what a refused call must
/// leave as it was.
pub(crate) fn stores(sb: &Sandbox, user: &str) -> (Vec<u8>, String) {
    (
        sb.shadow(),
        sb.sql(&format!(
            "SELECT app_hash, linux_hash, changed_at, source, session_epoch, must_change \
             FROM record WHERE user = '{user}'"
        )),
    )
}

#[track_caller]
pub(crate) fn assert_unchanged(sb: &Sandbox, user: &str, before: &(Vec<u8>, String), what: &str) {
    let after = stores(sb, user);
    assert!(after.0 == before.0, "{what}: /etc/shadow changed");
    assert_eq!(after.1, before.1, "{what}: {user}'s record changed");
}

fn epoch(sb: &Sandbox, user: &str) -> i64 {
    sb.status_row(user)["session_epoch"].as_i64().unwrap()
}

/// The `user` fields of GetStatus's accounts, sorted.
fn users_of(status: &Value) -> Vec<String> {
    let mut users: Vec<String> = status["accounts"]
        .as_array()
        .unwrap_or_else(|| panic!("no accounts in {status}"))
        .iter()
        .map(|a| a["user"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    users
}

/// Shadow's field 3 of `user`: the day of the last change.
fn last_change_day(sb: &Sandbox, user: &str) -> i64 {
    sb.shadow_fields(user)[2].parse().unwrap()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// pam_credsync.so in the sandbox's `common-password`, after pam_permit, as
/// tests/system/pam_module.rs and pam-auth-update put it.
fn install_pam_credsync(sb: &Sandbox) {
    let module = PathBuf::from(env!("CARGO_BIN_EXE_credsync")).with_file_name("libpam_credsync.so");
    assert!(
        module.is_file(),
        "{} is missing: build the workspace first",
        module.display()
    );
    let file = sb.etc("pam.d/common-password");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!("password\toptional\t{}\n", module.display()));
    std::fs::write(&file, text).unwrap();
}

// ---- 1. Every method, as root ----

#[test]
fn every_method_answers_root_and_both_stores_follow() {
    let a = appliance();
    let sb = &a.sb;
    let service = Service::start(sb, &Settings::fast());

    // The socket, as the contract says: its directory 0755, itself 0666.
    let dir_mode = std::fs::metadata(service.socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    let socket_mode = std::fs::metadata(&service.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o7777, 0o755, "the socket's directory");
    assert_eq!(socket_mode & 0o777, 0o666, "the socket");

    // The varlink service interface, and the IDL in the repository.
    let info = service.call("org.varlink.service.GetInfo", json!({}));
    let interfaces = info.ok("GetInfo")["interfaces"].to_string();
    assert!(
        interfaces.contains(IFACE) && interfaces.contains("org.varlink.service"),
        "{info:?}"
    );
    let idl = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("crates/credsyncd/io.credsync.Credentials.varlink"),
    )
    .unwrap();
    let description = service.call(
        "org.varlink.service.GetInterfaceDescription",
        json!({ "interface": IFACE }),
    );
    assert_eq!(
        description.ok("GetInterfaceDescription")["description"]
            .as_str()
            .map(str::trim),
        Some(idl.trim()),
        "the service's interface is not the IDL in the repository"
    );

    // Verify.
    let ok = service.call("Verify", json!({ "user": "alice", "password": OLD }));
    assert_eq!(ok.ok("Verify")["result"], "ok");

    // ChangePassword: both stores, a new epoch, provenance "api".
    let before = epoch(sb, "alice");
    let changed = service.call(
        "ChangePassword",
        json!({ "user": "alice", "current_password": OLD, "new_password": NEW }),
    );
    let returned = changed.ok("ChangePassword")["session_epoch"].as_i64();
    assert_eq!(returned, Some(before + 1), "{changed:?}");
    sb.assert_only_accepts("alice", NEW, OLD);
    let row = sb.status_row("alice");
    assert_eq!(
        (&row["source"], &row["session_epoch"], &row["state"]),
        (&json!("api"), &json!(before + 1), &json!("in-sync")),
        "{row}"
    );

    // SetPassword: recover's provenance, must_change with expire.
    let set = service.call(
        "SetPassword",
        json!({ "user": "alice", "password": OTHER, "expire": false, "force": false }),
    );
    assert_eq!(set.ok("SetPassword")["session_epoch"], before + 2);
    sb.assert_only_accepts("alice", OTHER, NEW);
    assert_eq!(sb.status_row("alice")["source"], "recover");

    let temporary = "Temp#Pass-2024";
    let expired = service.call(
        "SetPassword",
        json!({ "user": "alice", "password": temporary, "expire": true, "force": false }),
    );
    assert_eq!(
        expired.ok("SetPassword --expire")["session_epoch"],
        before + 3
    );
    assert!(sb.pamtester("alice", temporary));
    assert_eq!(
        sb.shadow_fields("alice")[2],
        "0",
        "shadow's must-change mark"
    );
    assert_eq!(sb.status_row("alice")["must_change"], true);
    let must = service.call("Verify", json!({ "user": "alice", "password": temporary }));
    assert_eq!(
        must.ok("Verify of a temporary password")["result"],
        "must-change"
    );

    // GetStatus: `credsync status --json`'s rows.
    let one = service.call("GetStatus", json!({ "user": "alice" }));
    assert_eq!(
        one.ok("GetStatus alice")["accounts"],
        json!([sb.status_row("alice")]),
        "GetStatus and status --json differ"
    );
    let all = service.call("GetStatus", json!({}));
    assert_eq!(users_of(all.ok("GetStatus")), ["alice", "bob"]);

    // Monitor: the initial epochs, then a change.
    let mut monitor = Monitor::start(&service, sb, &["alice", "bob"]);
    let before = epoch(sb, "bob");
    service
        .call(
            "SetPassword",
            json!({ "user": "bob", "password": NEW, "expire": false, "force": false }),
        )
        .ok("SetPassword bob");
    monitor.expect_change(sb, "bob", "recover", before);
    monitor.assert_nothing_else();

    // A password past shadow's maximum age.
    sb.root_sh("chage -d 2020-01-01 -M 30 bob", "")
        .expect_ok("chage bob");
    let old = service.call("Verify", json!({ "user": "bob", "password": NEW }));
    assert_eq!(old.ok("Verify of an expired password")["result"], "expired");
}

/// Every refusal: the error and its parameters, and neither store moved.
#[test]
fn refusals_name_the_reason_and_change_nothing() {
    let a = appliance();
    let sb = &a.sb;
    let service = Service::start(sb, &Settings::fast());
    let before = stores(sb, "alice");

    let wrong = service.call("Verify", json!({ "user": "alice", "password": WRONG }));
    wrong.error("AuthenticationFailed", "a wrong password");
    let wrong = service.call(
        "ChangePassword",
        json!({ "user": "alice", "current_password": WRONG, "new_password": NEW }),
    );
    wrong.error("AuthenticationFailed", "a wrong current password");
    assert_unchanged(sb, "alice", &before, "a wrong current password");
    assert!(sb.pamtester("alice", OLD));

    for (method, parameters) in [
        (
            "ChangePassword",
            json!({ "user": "nosuch", "current_password": OLD, "new_password": NEW }),
        ),
        (
            "SetPassword",
            json!({ "user": "nosuch", "password": NEW, "expire": false, "force": false }),
        ),
        ("GetStatus", json!({ "user": "nosuch" })),
    ] {
        let reply = service.call(method, parameters);
        let user = &reply.error("NoSuchUser", method)["user"];
        assert_eq!(user, "nosuch", "{method}: {reply:?}");
    }

    // Shapes the IDL does not allow.
    let missing = service.call("Verify", json!({ "user": "alice" }));
    let missing = missing.error("org.varlink.service.InvalidParameter", "no password");
    assert_eq!(missing["parameter"], "password");
    let typed = service.call("Verify", json!({ "user": 5, "password": OLD }));
    let typed = typed.error("org.varlink.service.InvalidParameter", "a number as user");
    assert_eq!(typed["parameter"], "user");
    service
        .call("Nonsense", json!({}))
        .error("org.varlink.service.MethodNotFound", "an unknown method");
    assert_unchanged(sb, "alice", &before, "refused calls");

    // An account Linux has expired (shadow field 8), and one without a password.
    sb.root_sh("chage -E 1 bob", "").expect_ok("chage -E");
    service
        .call("Verify", json!({ "user": "bob", "password": OTHER }))
        .error("AccountExpired", "an expired account");
    sb.root_sh("chage -E -1 bob", "").expect_ok("chage -E -1");
    sb.root_tool("passwd", &["-d", "bob"], "")
        .expect_ok("passwd -d");
    for password in ["", OTHER] {
        service
            .call("Verify", json!({ "user": "bob", "password": password }))
            .error("NoPassword", "an account without a password");
    }

    // Verify doesn't tell an unknown user from a wrong password, as
    // `credsync verify` doesn't (README, "Applications").
    service
        .call("Verify", json!({ "user": "nosuch", "password": OLD }))
        .error("AuthenticationFailed", "Verify of an unknown user");
}

/// The policy: quality, history, changed characters and the minimum age;
/// `force` lets root past the first three.
#[test]
fn the_policy_refuses_with_every_rule_and_too_soon_with_the_day() {
    let a = appliance();
    let sb = &a.sb;
    let settings = Settings::fast()
        .set("policy", "min_length", "12")
        .set("policy", "min_classes", "3")
        .set("policy", "min_changed_chars", "5")
        .set("policy", "history", "3");
    let service = Service::start(sb, &settings);
    let before = stores(sb, "alice");

    let short = service.call(
        "ChangePassword",
        json!({ "user": "alice", "current_password": OLD, "new_password": "short" }),
    );
    let rules = short.error("PolicyRefused", "a short password")["rules"].clone();
    let rules: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        rules.len() >= 2 && rules.iter().any(|r| r.contains("12")),
        "every broken rule, the length among them: {rules:?}"
    );
    let same = service.call(
        "ChangePassword",
        json!({ "user": "alice", "current_password": OLD, "new_password": OLD }),
    );
    assert!(
        !same.error("PolicyRefused", "the same password")["rules"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let unforced = service.call(
        "SetPassword",
        json!({ "user": "alice", "password": "short", "expire": false, "force": false }),
    );
    unforced.error("PolicyRefused", "root without force");
    assert_unchanged(sb, "alice", &before, "policy refusals");

    let forced = service.call(
        "SetPassword",
        json!({ "user": "alice", "password": "short", "expire": false, "force": true }),
    );
    forced.ok("root with force");
    sb.assert_only_accepts("alice", "short", OLD);

    // A change, then a minimum age of 7 days in shadow: the next change
    // must wait until the day shadow says.
    service
        .call(
            "SetPassword",
            json!({ "user": "alice", "password": OLD, "expire": false, "force": true }),
        )
        .ok("back to OLD");
    service
        .call(
            "ChangePassword",
            json!({ "user": "alice", "current_password": OLD, "new_password": NEW }),
        )
        .ok("a change");
    sb.assert_only_accepts("alice", NEW, OLD);
    sb.root_sh("chage -m 7 alice", "").expect_ok("chage -m 7");
    let before = stores(sb, "alice");
    let soon = service.call(
        "ChangePassword",
        json!({ "user": "alice", "current_password": NEW, "new_password": "Another#Pass-2025" }),
    );
    let soon = soon
        .error("TooSoon", "a change inside the minimum age")
        .clone();
    let from = (last_change_day(sb, "alice") + 7) * 86_400;
    assert_eq!(soon["allowed_from_unix"], from, "{soon}");
    let day = sb
        .root_sh(&format!("date -u -d @{from} +%F"), "")
        .expect_ok("date")
        .stdout;
    assert!(
        soon["allowed_from"]
            .as_str()
            .is_some_and(|s| s.starts_with(day.trim())),
        "{soon} does not say {day}"
    );
    assert_unchanged(sb, "alice", &before, "too soon");
}

/// pam_faillock-style lockout, as `credsync verify` applies it.
#[test]
fn repeated_failures_lock_verify_and_change_until_root_sets_a_password() {
    let a = appliance();
    let sb = &a.sb;
    sb.keep_tallies_in_run();
    let settings = Settings::fast()
        .set("policy.lockout", "failures", "2")
        .set("policy.lockout", "window_secs", "900")
        .set("policy.lockout", "lock_secs", "600");
    let service = Service::start(sb, &settings);
    for _ in 0..2 {
        service
            .call("Verify", json!({ "user": "alice", "password": WRONG }))
            .error("AuthenticationFailed", "a wrong password");
    }
    let before = stores(sb, "alice");
    let locked = service.call("Verify", json!({ "user": "alice", "password": OLD }));
    let until = locked
        .error("Locked", "the right password once locked")
        .clone();
    let unix = until["locked_until_unix"].as_i64().unwrap_or_default();
    let expected = now_unix() + 600;
    assert!(
        (expected - 60..=expected + 5).contains(&unix),
        "locked until {until}, expected about {expected}"
    );
    assert!(
        until["locked_until"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{until}"
    );
    service
        .call(
            "ChangePassword",
            json!({ "user": "alice", "current_password": OLD, "new_password": NEW }),
        )
        .error("Locked", "a change while locked");
    assert_unchanged(sb, "alice", &before, "locked");
    assert_eq!(sb.status_row("alice")["locked"], true);

    // Root's SetPassword is `recover`: it clears the tally.
    service
        .call(
            "SetPassword",
            json!({ "user": "alice", "password": NEW, "expire": false, "force": false }),
        )
        .ok("SetPassword while locked");
    let ok = service.call("Verify", json!({ "user": "alice", "password": NEW }));
    assert_eq!(ok.ok("Verify after SetPassword")["result"], "ok");
    assert!(sb.pamtester("alice", NEW));
}

/// `[verify] failure_delay_ms` holds the failed caller's reply only: while
/// it is held, other callers are answered.
#[test]
fn the_failure_delay_holds_only_the_failed_callers_reply() {
    let settings = Settings::fast()
        .cheap_hashes()
        .set("verify", "failure_delay_ms", "5000");
    let a = appliance_with(&settings);
    let service = Service::start(&a.sb, &settings);
    let mut failing = service.connect();
    let started = Instant::now();
    failing.send(
        "Verify",
        json!({ "user": "alice", "password": WRONG }),
        false,
    );
    std::thread::sleep(Duration::from_millis(300));

    let others = Instant::now();
    let ok = service.call("Verify", json!({ "user": "bob", "password": OTHER }));
    assert_eq!(ok.ok("bob's Verify")["result"], "ok");
    service.call("GetStatus", json!({})).ok("GetStatus");
    let others = others.elapsed();
    assert!(
        others < Duration::from_millis(2500),
        "other callers waited {others:?} behind a failure's delay"
    );
    assert!(
        matches!(failing.next(Duration::from_millis(10)), Next::Silent),
        "the failure was answered before the others (after {:?})",
        started.elapsed()
    );

    failing
        .reply("the failed Verify")
        .error("AuthenticationFailed", "a wrong password");
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(4900),
        "the failure was answered after {held:?}, before the delay"
    );
}

// ---- 2. Who may call what: SO_PEERCRED ----

#[test]
fn a_user_may_call_only_for_their_own_account() {
    let a = appliance();
    let sb = &a.sb;
    let service = Service::start(sb, &Settings::fast());
    let bob_before = stores(sb, "bob");

    let replies = calls_as(
        sb,
        &a.alice,
        &service,
        &[
            ("Verify", json!({ "user": "alice", "password": OLD })),
            ("GetStatus", json!({})),
            ("GetStatus", json!({ "user": "alice" })),
            ("Verify", json!({ "user": "bob", "password": OTHER })),
            (
                "ChangePassword",
                json!({ "user": "bob", "current_password": OTHER, "new_password": NEW }),
            ),
            ("GetStatus", json!({ "user": "bob" })),
            (
                "SetPassword",
                json!({ "user": "alice", "password": NEW, "expire": false, "force": false }),
            ),
        ],
    );
    assert_eq!(replies[0].ok("alice's own Verify")["result"], "ok");
    assert_eq!(users_of(replies[1].ok("alice's GetStatus")), ["alice"]);
    assert_eq!(
        users_of(replies[2].ok("alice's GetStatus alice")),
        ["alice"]
    );
    for (reply, what) in replies[3..].iter().zip([
        "Verify of bob",
        "ChangePassword of bob",
        "GetStatus of bob",
        "SetPassword by a user",
    ]) {
        let reason = &reply.error("PermissionDenied", what)["reason"];
        assert!(
            reason.as_str().is_some_and(|r| !r.is_empty()),
            "{what}: {reply:?}"
        );
    }
    assert_unchanged(sb, "bob", &bob_before, "alice's calls for bob");

    // Her own change, with her current password.
    let before = epoch(sb, "alice");
    let changed = call_as(
        sb,
        &a.alice,
        &service,
        "ChangePassword",
        json!({ "user": "alice", "current_password": OLD, "new_password": NEW }),
    );
    assert_eq!(
        changed.ok("alice's own change")["session_epoch"],
        before + 1
    );
    sb.assert_only_accepts("alice", NEW, OLD);
    assert_eq!(sb.status_row("alice")["source"], "api");
}

#[test]
fn the_applications_group_may_call_for_managed_users_only() {
    let a = appliance();
    let sb = &a.sb;
    let service = Service::start(sb, &Settings::fast());
    let replies = calls_as(
        sb,
        &a.gui,
        &service,
        &[
            ("Verify", json!({ "user": "alice", "password": OLD })),
            ("Verify", json!({ "user": "alice", "password": WRONG })),
            ("GetStatus", json!({})),
            ("GetStatus", json!({ "user": "bob" })),
            (
                "ChangePassword",
                json!({ "user": "alice", "current_password": OLD, "new_password": NEW }),
            ),
            (
                "SetPassword",
                json!({ "user": "bob", "password": NEW, "expire": false, "force": false }),
            ),
            ("GetStatus", json!({ "user": "carol" })),
            (
                "ChangePassword",
                json!({ "user": "carol", "current_password": CAROL, "new_password": NEW }),
            ),
        ],
    );
    assert_eq!(replies[0].ok("gui verifies alice")["result"], "ok");
    replies[1].error("AuthenticationFailed", "gui, a wrong password");
    assert_eq!(users_of(replies[2].ok("gui's GetStatus")), ["alice", "bob"]);
    assert_eq!(users_of(replies[3].ok("gui's GetStatus bob")), ["bob"]);
    replies[4].ok("gui changes alice's password");
    sb.assert_only_accepts("alice", NEW, OLD);
    assert_eq!(sb.status_row("alice")["source"], "api");
    for (reply, what) in replies[5..].iter().zip([
        "SetPassword by the group",
        "GetStatus of unmanaged carol",
        "ChangePassword of unmanaged carol",
    ]) {
        reply.error("PermissionDenied", what);
    }
    assert!(sb.pamtester("bob", OTHER), "bob's password changed");
    assert!(sb.pamtester("carol", CAROL), "carol's password changed");
    assert_eq!(sb.state("carol"), None, "carol was enrolled");

    // Verify of an unmanaged account, even with its right password, is
    // refused: PermissionDenied, or what `credsync verify` says of it.
    let carol = call_as(
        sb,
        &a.gui,
        &service,
        "Verify",
        json!({ "user": "carol", "password": CAROL }),
    );
    assert!(
        carol.is_error("PermissionDenied") || carol.is_error("AuthenticationFailed"),
        "Verify of unmanaged carol: {carol:?}"
    );
}

/// The group database is read at each call: out of the group, out.
#[test]
fn leaving_the_applications_group_takes_effect_at_the_next_call() {
    let a = appliance();
    let sb = &a.sb;
    let service = Service::start(sb, &Settings::fast());
    let verify = json!({ "user": "alice", "password": OLD });
    let reply = call_as(sb, &a.gui, &service, "Verify", verify.clone());
    assert_eq!(reply.ok("gui in appsvc")["result"], "ok");
    sb.root_sh("gpasswd -d gui appsvc", "")
        .expect_ok("gpasswd -d");
    call_as(sb, &a.gui, &service, "Verify", verify).error("PermissionDenied", "gui out of appsvc");
}

// ---- 3. Monitor ----

/// A Monitor call the test holds open (as root), with the events it did not
/// expect kept aside.
struct Monitor {
    conn: Conn,
    unexpected: Vec<Value>,
}

impl Monitor {
    /// `Monitor(initial: true)`: one event per account in `users`, at its
    /// current epoch, then nothing until something changes.
    #[track_caller]
    fn start(service: &Service, sb: &Sandbox, users: &[&str]) -> Monitor {
        let mut conn = service.connect();
        conn.send("Monitor", json!({ "initial": true }), true);
        let mut monitor = Monitor {
            conn,
            unexpected: Vec::new(),
        };
        let mut seen: Vec<Value> = (0..users.len()).map(|_| monitor.next_event()).collect();
        seen.sort_by_key(|e| e["user"].as_str().unwrap().to_owned());
        for (event, user) in seen.iter().zip(users) {
            assert_eq!(event["user"], *user, "initial events: {seen:?}");
            assert_eq!(event["session_epoch"], epoch(sb, user), "{event}");
        }
        monitor
    }

    #[track_caller]
    fn next_event(&mut self) -> Value {
        match self.conn.next(EVENT_TIMEOUT) {
            Next::Message(reply) => {
                assert!(
                    reply.continues,
                    "a Monitor reply without continues: {reply:?}"
                );
                reply.ok("Monitor")["event"].clone()
            }
            other => panic!(
                "no event within {EVENT_TIMEOUT:?} ({other:?}); unexpected ones so far: {:?}",
                self.unexpected
            ),
        }
    }

    /// Waits for `user`'s event from `source`, keeping any other aside.
    #[track_caller]
    fn expect(&mut self, user: &str, source: &str) -> Value {
        loop {
            let event = self.next_event();
            if event["user"] == user && event["source"] == source {
                return event;
            }
            self.unexpected
                .push(json!({ "waiting_for": format!("{user}/{source}"), "got": event }));
        }
    }

    /// A change of `user` from `source`: the event carries the record's new
    /// epoch and time; a change made in Linux alone ("linux") keeps the
    /// epoch until `sync` adopts it.
    #[track_caller]
    fn expect_change(&mut self, sb: &Sandbox, user: &str, source: &str, epoch_before: i64) {
        let event = self.expect(user, source);
        let row = sb.status_row(user);
        if source == "linux" {
            assert_eq!(event["session_epoch"], epoch_before, "{event}");
        } else {
            assert_eq!(event["session_epoch"], epoch_before + 1, "{event}");
            assert_eq!(
                event["session_epoch"], row["session_epoch"],
                "{event}\n{row}"
            );
            assert_eq!(
                event["changed_at"], row["changed_at_unix"],
                "{event}\n{row}"
            );
        }
        assert!(event["changed_at"].is_i64(), "{event}");
    }

    #[track_caller]
    fn assert_nothing_else(&mut self) {
        assert!(
            self.unexpected.is_empty(),
            "events for no change: {:?}",
            self.unexpected
        );
        if let Next::Message(extra) = self.conn.next(Duration::from_millis(500)) {
            panic!("an event for no change: {extra:?}");
        }
    }
}

/// Every way a managed password changes reaches a monitor: the service,
/// the CLI, `passwd` and `chpasswd` without pam_credsync (Linux alone),
/// `credsync sync` adopting them, and `passwd` through pam_credsync; a
/// change to an unmanaged account does not.
#[test]
fn monitor_hears_every_change_whoever_makes_it() {
    let a = appliance();
    let sb = &a.sb;
    let service = Service::start(sb, &Settings::fast());
    let mut monitor = Monitor::start(&service, sb, &["alice", "bob"]);
    let step = |n: u32| format!("Step{n}#Pass-2024");

    let e = epoch(sb, "alice");
    service
        .call(
            "SetPassword",
            json!({ "user": "alice", "password": step(1), "expire": false, "force": false }),
        )
        .ok("SetPassword");
    monitor.expect_change(sb, "alice", "recover", e);

    let e = epoch(sb, "alice");
    service
        .call(
            "ChangePassword",
            json!({ "user": "alice", "current_password": step(1), "new_password": step(2) }),
        )
        .ok("ChangePassword");
    monitor.expect_change(sb, "alice", "api", e);

    let e = epoch(sb, "alice");
    sb.credsync(&["passwd", "alice", "--stdin"], &format!("{}\n", step(3)))
        .expect_ok("credsync passwd");
    monitor.expect_change(sb, "alice", "passwd", e);

    let e = epoch(sb, "alice");
    sb.credsync(&["recover", "alice", "--stdin"], &format!("{}\n", step(4)))
        .expect_ok("credsync recover");
    monitor.expect_change(sb, "alice", "recover", e);

    let e = epoch(sb, "alice");
    sb.credsync(&["import"], &format!("alice:{}\n", step(5)))
        .expect_ok("credsync import");
    monitor.expect_change(sb, "alice", "import", e);
    sb.assert_only_accepts("alice", &step(5), &step(4));

    // carol is not managed: her change is nobody's event; bob's next is.
    sb.chpasswd("carol", NEW);
    let e = epoch(sb, "bob");
    sb.credsync(&["recover", "bob", "--stdin"], &format!("{NEW}\n"))
        .expect_ok("recover bob");
    monitor.expect_change(sb, "bob", "recover", e);

    // Linux alone, then `sync` adopting it.
    let e = epoch(sb, "alice");
    sb.passwd_as_root("alice", &step(6))
        .expect_ok("passwd without the module");
    monitor.expect_change(sb, "alice", "linux", e);
    sb.credsync(&["sync"], "").expect_ok("sync");
    monitor.expect_change(sb, "alice", "adopted", e);

    let e = epoch(sb, "alice");
    sb.chpasswd("alice", &step(7));
    monitor.expect_change(sb, "alice", "linux", e);
    sb.credsync(&["sync"], "").expect_ok("sync");
    monitor.expect_change(sb, "alice", "adopted", e);
    sb.assert_only_accepts("alice", &step(7), &step(6));

    // Through PAM, with pam_credsync in the stack: one change, the record's.
    install_pam_credsync(sb);
    let e = epoch(sb, "alice");
    sb.passwd_as_root("alice", &step(8))
        .expect_ok("passwd with the module");
    monitor.expect_change(sb, "alice", "pam", e);
    sb.assert_only_accepts("alice", &step(8), &step(7));

    monitor.assert_nothing_else();
}

/// `Monitor(initial: false)` sends no initial events: the first one it
/// sends is a change made after the call.
#[test]
fn monitor_without_initial_sends_only_changes() {
    let a = appliance();
    let sb = &a.sb;
    let service = Service::start(sb, &Settings::fast());
    let mut conn = service.connect();
    conn.send("Monitor", json!({ "initial": false }), true);
    let before = epoch(sb, "bob");
    // The call may not be registered yet when a change is made: change
    // again until an event comes.
    for attempt in 1..=5 {
        service
            .call(
                "SetPassword",
                json!({ "user": "bob", "password": format!("Bob#Attempt-{attempt}"), "expire": false, "force": false }),
            )
            .ok("SetPassword bob");
        if let Next::Message(reply) = conn.next(EVENT_TIMEOUT) {
            let event = &reply.ok("Monitor")["event"];
            assert_eq!(event["user"], "bob", "{reply:?}");
            assert!(
                event["session_epoch"].as_i64().unwrap() > before,
                "an initial event without initial: {reply:?}"
            );
            return;
        }
    }
    panic!("Monitor(initial: false) sent nothing for five changes");
}

/// Waits, as `account`, for its own Monitor's events until `until_user`
/// reaches an epoch above `until_epoch`; touches `ready` after the first
/// message; prints every message as a JSON list.
const MONITOR_PY: &str = r#"
import json, socket, sys
path, ready, until_user, until_epoch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(path)
call = {"method": "io.credsync.Credentials.Monitor", "parameters": {"initial": True}, "more": True}
s.sendall(json.dumps(call).encode() + b"\0")
buf, seen, status = b"", [], 0
try:
    while True:
        while b"\0" not in buf:
            data = s.recv(65536)
            if not data:
                raise EOFError("closed by credsyncd")
            buf += data
        message, _, buf = buf.partition(b"\0")
        message = json.loads(message)
        seen.append(message)
        if len(seen) == 1:
            open(ready, "w").close()
        if "error" in message:
            break
        event = message["parameters"]["event"]
        if event["user"] == until_user and event["session_epoch"] > until_epoch:
            break
except Exception as e:
    seen.append({"exception": repr(e)})
    status = 1
print(json.dumps(seen))
sys.exit(status)
"#;

/// A member of `[api] groups` hears every managed account; any other user
/// only their own.
#[test]
fn monitor_shows_a_user_only_their_own_account() {
    let a = appliance();
    let sb = &a.sb;
    let service = Service::start(sb, &Settings::fast());
    let monitor = script(sb, "monitor.py", MONITOR_PY);
    let shared = shared_dir(sb);
    let bob_epoch = epoch(sb, "bob");
    let alice_epoch = epoch(sb, "alice");

    let (bob_saw, gui_saw) = std::thread::scope(|s| {
        let watch = |account: &Account, name: &str| {
            let ready = shared.join(format!("{name}.ready"));
            let command = format!(
                "exec python3 {} {} {} bob {bob_epoch}",
                monitor.display(),
                quoted(service.socket()),
                ready.display()
            );
            let account = account.clone();
            let thread = s.spawn(move || sb.as_user(&account).bash(&command));
            (thread, ready)
        };
        let (bob_thread, bob_ready) = watch(&a.bob, "bob");
        let (gui_thread, gui_ready) = watch(&a.gui, "gui");
        wait_for_file(&bob_ready, Duration::from_secs(20));
        wait_for_file(&gui_ready, Duration::from_secs(20));
        // alice first, then bob: a monitor that sees bob's change has had
        // every chance to see alice's.
        for user in ["alice", "bob"] {
            service
                .call(
                    "SetPassword",
                    json!({ "user": user, "password": NEW, "expire": false, "force": false }),
                )
                .ok("SetPassword");
        }
        (bob_thread.join().unwrap(), gui_thread.join().unwrap())
    });
    let events = |out: Outcome, who: &str| -> Vec<(String, i64)> {
        let out = out.expect_ok(&format!("{who}'s monitor"));
        let seen: Vec<Value> = serde_json::from_str(out.stdout.trim()).unwrap();
        seen.iter()
            .map(|message| {
                let reply = Reply::from_json(message.clone());
                let event = &reply.ok(who)["event"];
                (
                    event["user"].as_str().unwrap().to_owned(),
                    event["session_epoch"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        events(bob_saw, "bob"),
        [
            ("bob".to_owned(), bob_epoch),
            ("bob".to_owned(), bob_epoch + 1)
        ],
        "bob's monitor: his initial epoch, then his change, nothing of alice's"
    );
    let mut gui = events(gui_saw, "gui");
    let initial = gui.len().min(2);
    gui[..initial].sort();
    assert_eq!(
        gui,
        [
            ("alice".to_owned(), alice_epoch),
            ("bob".to_owned(), bob_epoch),
            ("alice".to_owned(), alice_epoch + 1),
            ("bob".to_owned(), bob_epoch + 1),
        ],
        "gui's monitor: every managed account"
    );
}

#[track_caller]
fn wait_for_file(path: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- 4. Many callers at once ----

/// Verifiers, one thread and one connection each, started together; each
/// verifies its `[user, [passwords]]` in rounds until `done` exists (at
/// least two rounds). Touches `ready` once all are connected. Prints, per
/// verifier, `[password, reply]` for each call.
const VERIFIERS_PY: &str = r#"
import json, os, socket, sys, threading
path, plan, ready, done = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
results = [[] for _ in plan]
barrier = threading.Barrier(len(plan), action=lambda: open(ready, "w").close())

def reply(s, buf):
    while b"\0" not in buf:
        data = s.recv(65536)
        if not data:
            raise EOFError("closed by credsyncd")
        buf += data
    message, _, rest = buf.partition(b"\0")
    return json.loads(message), rest

def verifier(i, user, passwords):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(path)
        barrier.wait(timeout=60)
        buf, rounds = b"", 0
        while (rounds < 2 or not os.path.exists(done)) and rounds < 100:
            for password in passwords:
                call = {"method": "io.credsync.Credentials.Verify",
                        "parameters": {"user": user, "password": password}}
                s.sendall(json.dumps(call).encode() + b"\0")
                answer, buf = reply(s, buf)
                results[i].append([password, answer])
            rounds += 1
    except Exception as e:
        results[i].append(["exception", repr(e)])

threads = [threading.Thread(target=verifier, args=(i, user, passwords))
           for i, (user, passwords) in enumerate(plan)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
"#;

/// How many times root changes bob's password under the verifiers.
const CHANGES: usize = 8;

/// Creates its file when dropped, so that the verifiers stop even when the
/// test fails half-way.
struct Done(PathBuf);

impl Drop for Done {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

/// Fifty verifiers (the application's account) while root changes bob's
/// password [`CHANGES`] times: every answer is right for the password it checked,
/// none is lost, and every change lands whole, with one epoch each.
#[test]
fn fifty_verifiers_beside_changes_all_get_the_right_answer() {
    let settings = Settings::fast().cheap_hashes();
    let a = appliance_with(&settings);
    let sb = &a.sb;
    let service = Service::start(sb, &settings);
    let verifiers = script(sb, "verifiers.py", VERIFIERS_PY);
    let shared = shared_dir(sb);
    let (ready, done) = (shared.join("ready"), shared.join("done"));
    // alice's password never changes; bob's is never this one.
    let never = "Never#Set-2024";
    let plan: Vec<Value> = (0..50)
        .map(|i| {
            if i < 40 {
                json!(["alice", [OLD, WRONG]])
            } else {
                json!(["bob", [never]])
            }
        })
        .collect();
    // bob's changes rewrite /etc/shadow: alice's line and record stay.
    let alice_before = (sb.shadow_fields("alice"), stores(sb, "alice").1);
    let bob_epoch = epoch(sb, "bob");
    let passwords: Vec<String> = (1..=CHANGES).map(|n| format!("Bob#Change-{n}")).collect();

    let out = std::thread::scope(|s| {
        let command = format!(
            "exec python3 {} {} {} {} {}",
            verifiers.display(),
            quoted(service.socket()),
            quoted(&Value::Array(plan.clone()).to_string()),
            ready.display(),
            done.display()
        );
        let gui = a.gui.clone();
        let thread = s.spawn(move || sb.as_user(&gui).bash(&command));
        let stop = Done(done.clone());
        wait_for_file(&ready, Duration::from_secs(60));

        let mut current = OTHER;
        for (i, password) in passwords.iter().map(String::as_str).enumerate() {
            let reply = if i % 2 == 0 {
                service.call(
                    "SetPassword",
                    json!({ "user": "bob", "password": password, "expire": false, "force": false }),
                )
            } else {
                service.call(
                    "ChangePassword",
                    json!({ "user": "bob", "current_password": current, "new_password": password }),
                )
            };
            assert_eq!(
                reply.ok("a change of bob's")["session_epoch"],
                bob_epoch + i as i64 + 1,
                "{reply:?}"
            );
            // Right after the change, the new password and not the old.
            let new = service.call("Verify", json!({ "user": "bob", "password": password }));
            assert_eq!(new.ok("bob's new password")["result"], "ok");
            service
                .call("Verify", json!({ "user": "bob", "password": current }))
                .error("AuthenticationFailed", "bob's previous password");
            current = password;
        }
        drop(stop);
        thread.join().unwrap()
    });
    let out = out.expect_ok("the verifiers");
    let results: Vec<Vec<(String, Value)>> = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("the verifiers' report ({e}):\n{out}"));
    assert_eq!(results.len(), 50);
    let mut wrong = Vec::new();
    let mut calls = 0;
    for (i, verifier) in results.iter().enumerate() {
        let per_round = if i < 40 { 2 } else { 1 };
        if verifier.len() < 2 * per_round || verifier.len() % per_round != 0 {
            wrong.push(format!("verifier {i} made {} calls", verifier.len()));
        }
        for (password, answer) in verifier {
            calls += 1;
            let reply = Reply::from_json(answer.clone());
            let right = if password == OLD {
                reply.error.is_none() && reply.parameters["result"] == "ok"
            } else {
                reply.is_error("AuthenticationFailed")
            };
            if !right || password == "exception" {
                wrong.push(format!("verifier {i}, {password:?}: {answer}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {calls} answers wrong or lost (credsyncd is pid {}), e.g. {:?}",
        wrong.len(),
        service.child.id(),
        &wrong[..wrong.len().min(10)]
    );
    assert!(calls >= 180, "only {calls} calls");

    assert_eq!(
        (sb.shadow_fields("alice"), stores(sb, "alice").1),
        alice_before,
        "verifiers of alice changed her account"
    );
    sb.assert_only_accepts("bob", &passwords[CHANGES - 1], &passwords[CHANGES - 2]);
    assert_eq!(epoch(sb, "bob"), bob_epoch + CHANGES as i64);
}

// ---- 5. Abusive clients ----

/// A call that never ends (10 MiB) and one that never finishes; the
/// service answers others at once, drops both, and stays up.
#[test]
fn a_huge_and_an_unfinished_message_are_dropped_while_others_are_served() {
    let settings = Settings::fast()
        .cheap_hashes()
        .set("api", "idle_timeout_secs", "2");
    let a = appliance_with(&settings);
    let sb = &a.sb;
    let mut service = Service::start(sb, &settings);

    let mut unfinished = service.connect();
    unfinished
        .send_raw(br#"{"method":"io.credsync.Credentials.Verify","parameters":{"user":"al"#)
        .unwrap();
    let mut silent = service.connect();
    let idle_since = Instant::now();

    let mut huge = service.connect();
    let mut writer = huge.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut call =
            br#"{"method":"io.credsync.Credentials.Verify","parameters":{"user":"alice","password":""#
                .to_vec();
        call.resize(call.len() + 10 * 1024 * 1024, b'A');
        call.extend_from_slice(b"\"}}\0");
        // The service may close the connection long before the end.
        let _ = writer.write_all(&call);
    });

    // Meanwhile, a normal caller.
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let ok = service.call("Verify", json!({ "user": "alice", "password": OLD }));
    assert_eq!(ok.ok("Verify beside the abuse")["result"], "ok");
    assert!(
        started.elapsed() < PROMPT,
        "Verify took {:?} beside the abuse",
        started.elapsed()
    );

    match huge.next(Duration::from_secs(10)) {
        Next::Message(reply) => {
            reply.error("InvalidArgument", "10 MiB request");
            assert!(
                matches!(huge.next(Duration::from_secs(5)), Next::Closed),
                "the connection stayed open after InvalidArgument"
            );
        }
        Next::Closed => {}
        Next::Silent => panic!("credsyncd neither refused nor closed a 10 MiB request"),
    }
    sender.join().unwrap();

    for (conn, what) in [
        (&mut unfinished, "an unfinished message"),
        (&mut silent, "a silent client"),
    ] {
        loop {
            match conn.next(Duration::from_secs(10)) {
                Next::Closed => break,
                Next::Message(reply) => assert!(reply.error.is_some(), "{what}: {reply:?}"),
                Next::Silent => panic!("{what}: not closed after 10 s (idle_timeout_secs = 2)"),
            }
        }
        let after = idle_since.elapsed();
        assert!(
            after >= Duration::from_millis(1500),
            "{what}: closed after {after:?}, before the idle timeout"
        );
    }

    service.assert_running();
    let ok = service.call("Verify", json!({ "user": "alice", "password": OLD }));
    assert_eq!(ok.ok("Verify after the abuse")["result"], "ok");
}

/// 1,000 connections against `max_connections = 64`: the extra ones are
/// told Busy and closed; a caller already connected is answered; once the
/// flood is gone, new callers are served.
/// alice holds connections open, as many as she can: past
/// `max_connections_per_user` hers are answered Busy and closed, while the
/// application's account and root are still served.
const HOLD_PY: &str = r#"
import json, socket, sys, time
path, count = sys.argv[1], int(sys.argv[2])
held, answers = [], []
for _ in range(count):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    held.append(s)
time.sleep(1)
for s in held:
    s.settimeout(10)
    try:
        s.sendall(b'{"method":"org.varlink.service.GetInfo"}\0')
    except OSError:
        pass
    data = b""
    try:
        while not data.endswith(b"\0"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    reply = json.loads(data[:-1]) if data.endswith(b"\0") else {"closed": True}
    answers.append(reply.get("error", "served"))
print(json.dumps(answers), flush=True)
sys.stdin.read()
"#;

#[test]
fn one_user_cannot_take_every_connection() {
    let settings = Settings::fast()
        .cheap_hashes()
        .set("api", "max_connections_per_user", "4");
    let a = appliance_with(&settings);
    let sb = &a.sb;
    let service = Service::start(sb, &settings);
    let hold = script(sb, "hold.py", HOLD_PY);
    // alice's script keeps her connections until its stdin closes.
    let mut holder = sb.as_user(&a.alice).bash_command(&format!(
        "exec python3 {} {} 10",
        hold.display(),
        quoted(service.socket())
    ));
    holder
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = holder.spawn().expect("start alice's connections");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let answers: Vec<String> = serde_json::from_str(line.trim()).expect(&line);
    let served = answers.iter().filter(|a| *a == "served").count();
    let busy = answers
        .iter()
        .filter(|a| a.as_str() == format!("{IFACE}.Busy"))
        .count();
    assert_eq!(
        (served, busy),
        (4, 6),
        "alice's 10 connections: {answers:?}"
    );

    // While alice still holds her four, the application and root get in.
    let app = call_as(
        sb,
        &a.gui,
        &service,
        "Verify",
        json!({ "user": "alice", "password": OLD }),
    );
    assert_eq!(app.ok("the application's Verify")["result"], "ok");
    let root = service.call("GetStatus", json!({ "user": "alice" }));
    root.ok("root's GetStatus");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_thousand_connections_get_busy_beyond_the_limit() {
    let settings = Settings::fast()
        .cheap_hashes()
        .set("api", "max_connections", "64");
    let a = appliance_with(&settings);
    let sb = &a.sb;
    let mut service = Service::start(sb, &settings);
    raise_open_files(2048);

    let mut normal = service.connect();
    normal
        .call("org.varlink.service.GetInfo", json!({}))
        .ok("the first caller");

    // Opened from a thread, so that a service that stops accepting fails
    // the test instead of blocking it.
    let socket = service.socket.clone();
    let (sent, flood) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut conns = Vec::new();
        for _ in 0..1000 {
            let mut conn = Conn::open(&socket);
            // Refused connections may be closed already.
            let _ = conn.send_raw(GET_INFO);
            conns.push(conn);
        }
        let _ = sent.send(conns);
    });
    let mut flood = flood
        .recv_timeout(Duration::from_secs(120))
        .expect("1,000 connections could not be opened within 120 s");

    let (mut served, mut busy, mut other) = (0, 0, Vec::new());
    for conn in &mut flood {
        match conn.next(Duration::from_secs(10)) {
            Next::Message(reply) if reply.error.is_none() => served += 1,
            Next::Message(reply) if reply.is_error("Busy") => {
                busy += 1;
                if !matches!(conn.next(Duration::from_secs(5)), Next::Closed) {
                    other.push("a Busy connection left open".to_owned());
                }
            }
            next => other.push(format!("{next:?}")),
        }
    }
    assert!(
        other.is_empty(),
        "{} odd answers: {:?}",
        other.len(),
        &other[..other.len().min(5)]
    );
    assert!(
        served <= 63 && busy >= 1000 - 63,
        "{served} served and {busy} Busy beyond max_connections = 64"
    );

    // The caller who got in first is still served, at once.
    let started = Instant::now();
    let ok = normal.call("Verify", json!({ "user": "alice", "password": OLD }));
    assert_eq!(ok.ok("Verify during the flood")["result"], "ok");
    assert!(
        started.elapsed() < PROMPT,
        "Verify took {:?}",
        started.elapsed()
    );

    drop(flood);
    service.assert_running();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = service.call("Verify", json!({ "user": "alice", "password": OLD }));
        if !reply.is_error("Busy") {
            assert_eq!(reply.ok("Verify after the flood")["result"], "ok");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still Busy 5 s after the flood closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// This process's soft limit of open files raised to `want` (the flood's
/// connections), within the hard limit.
fn raise_open_files(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= want,
        "RLIMIT_NOFILE's hard limit {hard} is below {want}"
    );
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).unwrap();
    }
}

// ---- Its lifetime ----

/// SIGTERM lets a call in flight finish (its reply held by the failure
/// delay), then the service exits 0.
#[test]
fn sigterm_finishes_the_call_in_flight_then_exits_0() {
    let a = appliance();
    let mut service = Service::start(
        &a.sb,
        &Settings::fast().set("verify", "failure_delay_ms", "1500"),
    );
    let mut in_flight = service.connect();
    in_flight.send(
        "Verify",
        json!({ "user": "alice", "password": WRONG }),
        false,
    );
    std::thread::sleep(Duration::from_millis(300));
    service.terminate();
    in_flight
        .reply("the call in flight")
        .error("AuthenticationFailed", "the call in flight");
    let status = service
        .exit_within(Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "credsyncd still runs 10 s after SIGTERM:\n{}",
                service.log()
            )
        });
    assert!(status.success(), "{status}:\n{}", service.log());
}

/// With no connection for `exit_idle_secs`, the service leaves by itself
/// (it looks once a second); an open connection keeps it.
#[test]
fn it_exits_by_itself_when_idle() {
    let a = appliance();
    let sb = &a.sb;
    let mut service = Service::start(sb, &Settings::fast().set("api", "exit_idle_secs", "3"));
    let monitor = Monitor::start(&service, sb, &["alice", "bob"]);
    assert!(
        service.exit_within(Duration::from_secs(6)).is_none(),
        "credsyncd left with a Monitor connected:\n{}",
        service.log()
    );
    drop(monitor);
    let since = Instant::now();
    let status = service
        .exit_within(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("credsyncd still runs after 15 s idle:\n{}", service.log()));
    assert!(status.success(), "{status}:\n{}", service.log());
    assert!(
        since.elapsed() >= Duration::from_millis(1900),
        "it left {:?} after the last connection, before exit_idle_secs (3, less a tick)",
        since.elapsed()
    );
}

// ---- 6. Socket activation ----

/// What systemd does for a `.socket` unit with `Accept=no`: bind and listen
/// on `argv[1]` (`SocketMode=` `argv[2]`, `DirectoryMode=` `argv[3]`), hand
/// it over as fd 3 with LISTEN_FDS=1 and LISTEN_PID, write the socket's
/// inode to `argv[4]`, and exec the service (`argv[5:]`).
const ACTIVATE_PY: &str = r#"
import os, socket, sys
path, mode, dir_mode = sys.argv[1], int(sys.argv[2], 8), int(sys.argv[3], 8)
inode, argv = sys.argv[4], sys.argv[5:]
os.makedirs(os.path.dirname(path), mode=dir_mode, exist_ok=True)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, mode)
s.listen(128)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
    s.close()
os.set_inheritable(3, True)
with open(inode, "w") as f:
    f.write(str(os.stat(path).st_ino))
env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execve(argv[0], argv, env)
"#;

/// A unit file's `key=` value.
fn unit_value(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

/// The service started as systemd starts it from the package's units,
/// serving the socket systemd made.
#[test]
fn socket_activation_serves_the_socket_systemd_passes() {
    let a = appliance();
    let sb = &a.sb;
    sb.write_config(&Settings::fast().0);
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd");
    let socket_unit = std::fs::read_to_string(units.join("credsync-api.socket"))
        .expect("packaging/systemd/credsync-api.socket");
    let service_unit = std::fs::read_to_string(units.join("credsync-api.service"))
        .expect("packaging/systemd/credsync-api.service");
    let path = unit_value(&socket_unit, "ListenStream").expect("ListenStream=");
    assert_eq!(
        path, "/run/credsync/io.credsync.Credentials",
        "the README's socket"
    );
    let mode = unit_value(&socket_unit, "SocketMode").unwrap_or_else(|| "0666".into());
    let dir_mode = unit_value(&socket_unit, "DirectoryMode").unwrap_or_else(|| "0755".into());
    let exec = unit_value(&service_unit, "ExecStart").expect("ExecStart=");
    let mut argv: Vec<String> = exec.split_whitespace().map(str::to_owned).collect();
    assert!(argv[0].ends_with("/credsyncd"), "ExecStart={exec}");
    argv[0] = credsyncd().display().to_string();

    let activate = script(sb, "activate.py", ACTIVATE_PY);
    let dir = sb.scratch("activation");
    let inode = dir.join("inode");
    let log = dir.join("credsyncd.log");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        activate.as_os_str(),
        path.as_ref(),
        mode.as_ref(),
        dir_mode.as_ref(),
        inode.as_os_str(),
    ];
    args.extend(argv.iter().map(std::ffi::OsStr::new));
    let child = sb.spawn_root("python3".as_ref(), &args, &[], &log);
    let mut service = Service {
        child,
        socket: PathBuf::from(&path),
        log,
    };
    wait_for_file(&inode, Duration::from_secs(20));

    // The socket is in the sandbox's /run: callers inside the sandbox.
    let root = sb
        .root_sh(
            &format!(
                "exec python3 {} {} {}",
                script(sb, "client.py", CLIENT_PY).display(),
                quoted(&path),
                quoted(
                    &json!([[full("Verify"), { "user": "alice", "password": OLD }]]).to_string()
                )
            ),
            "",
        )
        .expect_ok("root's call");
    let reply = Reply::from_json(serde_json::from_str(root.stdout.trim()).unwrap());
    assert_eq!(
        reply.ok("Verify through the activated socket")["result"],
        "ok"
    );
    let mine = call_as(sb, &a.alice, &service, "GetStatus", json!({}));
    assert_eq!(users_of(mine.ok("alice's GetStatus")), ["alice"]);
    let mode_now = sb
        .root_sh(&format!("stat -c '%a %i' {}", quoted(&path)), "")
        .expect_ok("stat the socket")
        .stdout;
    assert_eq!(
        mode_now.trim(),
        format!(
            "{:o} {}",
            u32::from_str_radix(&mode, 8).unwrap(),
            std::fs::read_to_string(&inode).unwrap()
        ),
        "credsyncd replaced the socket it was given"
    );
    // `credsync api call` finds it at its default path.
    let out = sb
        .credsync(&["api", "call", "GetStatus", r#"{"user":"bob"}"#], "")
        .expect_ok("api call at the default socket");
    assert_eq!(
        users_of(&serde_json::from_str(out.stdout.trim()).unwrap()),
        ["bob"]
    );
    service.assert_running();
    service.terminate();
    let status = service
        .exit_within(Duration::from_secs(10))
        .expect("credsyncd exits on SIGTERM");
    assert!(status.success(), "{status}:\n{}", service.log());
}

// ---- 7. credsync api call ----

/// `credsync api call` as root: one JSON line per reply, and the documented
/// exit code for every error.
#[test]
fn api_call_prints_replies_and_maps_errors_to_exit_codes() {
    let a = appliance();
    let sb = &a.sb;
    sb.keep_tallies_in_run();
    let settings = Settings::fast()
        .set("policy", "min_length", "12")
        .set("policy.lockout", "failures", "2")
        .set("policy.lockout", "lock_secs", "600")
        .set("api", "max_connections", "2");
    let service = Service::start(sb, &settings);
    let socket = service.socket();
    // Parameters with a password go on standard input, as `-`.
    let api = |args: &[&str], stdin: &str| {
        let mut all = vec!["api", "call", "--socket", socket];
        all.extend_from_slice(args);
        sb.credsync(&all, stdin)
    };
    let verify =
        |user: &str, password: &str| json!({ "user": user, "password": password }).to_string();

    let out = api(&["Verify", "-"], &verify("alice", OLD)).expect_ok("Verify");
    assert_eq!(json_lines(&out), [json!({ "result": "ok" })]);
    let out = api(
        &["io.credsync.Credentials.Verify", "-"],
        &verify("alice", OLD),
    )
    .expect_ok("full name");
    assert_eq!(json_lines(&out), [json!({ "result": "ok" })]);
    let out = api(&["GetStatus"], "").expect_ok("GetStatus without JSON");
    assert_eq!(users_of(&json_lines(&out)[0]), ["alice", "bob"]);
    let out = api(&["GetStatus", r#"{"user":"bob"}"#], "").expect_ok("GetStatus bob");
    assert_eq!(users_of(&json_lines(&out)[0]), ["bob"]);
    let out = api(&["org.varlink.service.GetInfo"], "").expect_ok("GetInfo");
    assert!(out.stdout.contains(IFACE), "{out}");

    // Never a password in the arguments (ps shows them).
    let out = api(&["Verify", &verify("alice", OLD)], "")
        .expect_code(code::VARLINK, "a password on the command line");
    assert!(out.stderr.contains("standard input"), "{out}");

    for (args, stdin, code, error) in [
        (
            ["Verify", "-"],
            verify("alice", WRONG),
            exit::DENIED,
            "AuthenticationFailed",
        ),
        (
            ["SetPassword", "-"],
            json!({ "user": "nosuch", "password": NEW, "expire": false, "force": false })
                .to_string(),
            code::INVALID,
            "NoSuchUser",
        ),
        (
            ["ChangePassword", "-"],
            json!({ "user": "alice", "current_password": OLD, "new_password": "short" })
                .to_string(),
            code::POLICY,
            "PolicyRefused",
        ),
        (
            ["Verify", "-"],
            verify("alice", &"x".repeat(70_000)),
            code::INVALID,
            "InvalidArgument",
        ),
        (
            ["Nonsense", "{}"],
            String::new(),
            code::VARLINK,
            "MethodNotFound",
        ),
        (
            ["Verify", r#"{"user":"alice"}"#],
            String::new(),
            code::VARLINK,
            "InvalidParameter",
        ),
    ] {
        let what = format!("{error} ({})", args[0]);
        let out = api(&args, &stdin).expect_code(code, &what);
        assert_one_error_line(&out, error, &what);
    }

    // Locked: two failures for bob, then his right password.
    for _ in 0..2 {
        api(&["Verify", "-"], &verify("bob", WRONG)).expect_code(exit::DENIED, "bob, wrong");
    }
    let out = api(&["Verify", "-"], &verify("bob", OTHER)).expect_code(code::LOCKED, "bob locked");
    assert_one_error_line(&out, "Locked", "bob locked");

    // Nobody listening.
    let out = sb
        .credsync(
            &[
                "api",
                "call",
                "--socket",
                "/run/nobody-listens",
                "GetStatus",
            ],
            "",
        )
        .expect_code(code::CANNOT_CONNECT, "no service");
    assert_eq!(out.stderr.lines().count(), 1, "{out}");

    // --more: the initial events, one line each, until interrupted.
    let out = sb.root_sh(
        &format!(
            "exec timeout 3 \"$CREDSYNC\" api call --socket {} --more Monitor '{{\"initial\":true}}'",
            quoted(socket)
        ),
        "",
    );
    assert_eq!(out.code, 124, "Monitor --more ended by itself:\n{out}");
    let mut users: Vec<String> = json_lines(&out)
        .iter()
        .map(|l| l["event"]["user"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    assert_eq!(users, ["alice", "bob"], "{out}");

    // Busy: both connections of max_connections = 2 held (once the
    // service has seen the earlier calls' connections close).
    std::thread::sleep(Duration::from_millis(300));
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut conn = service.connect();
        // A refused connection may be closed before the call is written.
        let _ = conn.send_raw(GET_INFO);
        match conn.next(CALL_TIMEOUT) {
            Next::Message(reply) if reply.error.is_none() => held.push(conn),
            Next::Message(reply) if reply.is_error("Busy") => break,
            other => panic!("a connection beside max_connections = 2: {other:?}"),
        }
    }
    assert!(held.len() <= 2, "max_connections = 2 let {} in", held.len());
    let out = api(&["GetStatus"], "").expect_code(exit::BUSY, "Busy");
    assert_one_error_line(&out, "Busy", "Busy");
    // Every time: the refusal may come before the call is written.
    let out = sb.root_sh(
        &format!(
            "for i in $(seq 100); do \"$CREDSYNC\" api call --socket {} GetStatus 2>&1 >/dev/null; \
             echo \"exit $?\"; done | sort | uniq -c",
            quoted(socket)
        ),
        "",
    );
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| l.contains("exit"))
            .collect::<Vec<_>>(),
        ["    100 exit 5"],
        "100 calls while every connection is taken:\n{out}"
    );
}

/// As a user, through the setuid binary: the call is the user's own (it
/// drops root before connecting).
#[test]
fn api_call_as_a_user_speaks_for_that_user() {
    let a = appliance();
    let sb = &a.sb;
    let service = Service::start(sb, &Settings::fast());
    let alice = sb.as_user(&a.alice);
    let api = |method: &str, parameters: Value| {
        let args = ["api", "call", "--socket", service.socket(), method, "-"];
        alice.run(&args, &parameters.to_string())
    };
    let out = api("GetStatus", json!({})).expect_ok("alice's GetStatus");
    assert_eq!(users_of(&json_lines(&out)[0]), ["alice"], "{out}");
    let out =
        api("Verify", json!({ "user": "alice", "password": OLD })).expect_ok("alice's Verify");
    assert_eq!(json_lines(&out), [json!({ "result": "ok" })]);
    let out = api("Verify", json!({ "user": "bob", "password": OTHER }))
        .expect_code(exit::DENIED, "alice verifies bob");
    assert_one_error_line(&out, "PermissionDenied", "alice verifies bob");
    let set = json!({ "user": "alice", "password": NEW, "expire": false, "force": false });
    let out = api("SetPassword", set).expect_code(exit::DENIED, "SetPassword");
    assert_one_error_line(&out, "PermissionDenied", "SetPassword by alice");
    let change = json!({ "user": "alice", "current_password": OLD, "new_password": NEW });
    let out = api("ChangePassword", change).expect_ok("alice's change");
    assert!(json_lines(&out)[0]["session_epoch"].is_i64(), "{out}");
    sb.assert_only_accepts("alice", NEW, OLD);
}

/// stdout's lines, each a JSON value.
#[track_caller]
fn json_lines(out: &Outcome) -> Vec<Value> {
    out.stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\n{out}"))
        })
        .collect()
}

#[track_caller]
fn assert_one_error_line(out: &Outcome, error: &str, what: &str) {
    assert!(out.stdout.is_empty(), "{what}: output on stdout\n{out}");
    assert_eq!(out.stderr.lines().count(), 1, "{what}: not one line\n{out}");
    // A wrong password reads as credsync's usual words for it.
    let words = (error == "AuthenticationFailed").then_some("authentication failure");
    assert!(
        out.stderr.contains(error) || words.is_some_and(|w| out.stderr.contains(w)),
        "{what}: the error is not named\n{out}"
    );
}

// ---- 8. The README's Python client ----

/// The first ```python block after `## Applications` in README.md.
fn readme_client() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split_once("\n## Applications")
        .expect("README.md has a section `## Applications`")
        .1;
    let block = section
        .split_once("```python\n")
        .expect("`## Applications` has a ```python block")
        .1;
    block
        .split_once("\n```")
        .expect("the python block ends")
        .0
        .to_owned()
}

/// Runs the README's client (`argv[1]`) without its examples, then each call
/// of `argv[2]` (`[method, parameters]`) through its `call`; prints one JSON
/// line per call: the reply, or the exception it raised.
const README_DRIVER_PY: &str = r#"
import json, sys
client = {"__name__": "readme_client"}
exec(compile(open(sys.argv[1]).read(), "README.md client", "exec"), client)
for method, parameters in json.loads(sys.argv[2]):
    try:
        print(json.dumps({"reply": client["call"](method, **parameters)}), flush=True)
    except Exception as e:
        print(json.dumps({"raised": type(e).__name__, "text": str(e)}), flush=True)
"#;

/// What the README's `call` gave: the reply's parameters, or the error's
/// name (returned in the reply, or named by the exception it raised).
#[derive(Debug)]
enum ClientResult {
    Ok(Value),
    Error(String),
}

fn client_result(line: &Value) -> ClientResult {
    if let Some(reply) = line.get("reply") {
        if let Some(error) = reply.get("error") {
            return ClientResult::Error(error.to_string());
        }
        let parameters = reply.get("parameters").unwrap_or(reply);
        return ClientResult::Ok(parameters.clone());
    }
    ClientResult::Error(line.to_string())
}

#[test]
fn the_readme_python_client_works_as_written() {
    let a = appliance();
    let sb = &a.sb;
    let service = Service::start(sb, &Settings::fast());
    let client = script(sb, "readme_client.py", &readme_client());
    let driver = script(sb, "readme_driver.py", README_DRIVER_PY);
    let run = |calls: Value, who: Option<&Account>| -> Vec<ClientResult> {
        let command = format!(
            "CREDSYNC_API={} exec python3 {} {} {}",
            quoted(service.socket()),
            driver.display(),
            client.display(),
            quoted(&calls.to_string())
        );
        let out = match who {
            Some(account) => sb.as_user(account).bash(&command),
            None => sb.root_sh(&command, ""),
        }
        .expect_ok("the README's client");
        json_lines(&out).iter().map(client_result).collect()
    };

    let results = run(
        json!([
            ["Verify", { "user": "alice", "password": OLD }],
            ["Verify", { "user": "alice", "password": WRONG }],
            ["GetStatus", {}],
            ["ChangePassword", { "user": "alice", "current_password": OLD, "new_password": NEW }],
        ]),
        Some(&a.alice),
    );
    assert!(
        matches!(&results[0], ClientResult::Ok(p) if p["result"] == "ok"),
        "{results:?}"
    );
    assert!(
        matches!(&results[1], ClientResult::Error(e) if e.contains("AuthenticationFailed")),
        "{results:?}"
    );
    assert!(
        matches!(&results[2], ClientResult::Ok(p) if users_of(p) == ["alice"]),
        "{results:?}"
    );
    assert!(
        matches!(&results[3], ClientResult::Ok(p) if p["session_epoch"].is_i64()),
        "{results:?}"
    );
    sb.assert_only_accepts("alice", NEW, OLD);

    let results = run(json!([["GetStatus", {}]]), None);
    assert!(
        matches!(&results[0], ClientResult::Ok(p) if users_of(p) == ["alice", "bob"]),
        "root: {results:?}"
    );
}
