//! A throw-away Linux system for the container tests: a private mount namespace
//! in which `/etc` is a copy of the host's, and `/var/lib`, `/var/log` and `/run`
//! are empty tmpfs, so the real pam_unix, shadow-utils (`useradd`, `chpasswd`,
//! `passwd`, `pwck`) and `pamtester` work on a fixture while the host's accounts,
//! store and logs stay untouched.
//!
//! One long-lived holder process (`unshare --mount ...`, blocked reading its
//! stdin) keeps the namespace alive; every step enters it with `nsenter --mount`.
//! The holder exits when the `Sandbox` is dropped, or when the test process dies
//! (its stdin reaches end of file), and the namespace's mounts go with it.
//!
//! The copied `/etc` is bind-mounted from a directory of the host, so the test
//! reads and writes `/etc/shadow` of the sandbox directly (`Sandbox::shadow`).
//!
//! Nothing here skips: a machine that can't run these tests (not root, no
//! `unshare`, a tool missing, a nosuid temp dir with no alternative) makes every
//! test fail with a message saying what to install or change.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The tools these tests drive. `.ci/run` installs the packages that hold them.
const TOOLS: &[(&str, &str)] = &[
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("setpriv", "util-linux"),
    ("findmnt", "util-linux"),
    ("mount", "mount"),
    ("env", "coreutils"),
    ("cp", "coreutils"),
    ("pamtester", "pamtester"),
    ("chpasswd", "passwd"),
    ("passwd", "passwd"),
    ("pwck", "passwd"),
    ("useradd", "passwd"),
    ("usermod", "passwd"),
    ("python3", "python3"),
    ("sqlite3", "sqlite3"),
    ("sshd", "openssh-server"),
    ("ssh", "openssh-client"),
];

const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// The config every sandbox starts with: no delay after a failed `verify`, so
/// the tests run fast (the test of the delay writes its own).
///
/// The password policy is off, so tests of other behaviour don't depend on
/// it; the policy's own tests write theirs.
pub const FAST_CONFIG: &str = concat!(
    "[verify]\nfailure_delay_ms = 0\n",
    include_str!("../common/policy-off.toml")
);

/// The password policy turned off, for configs a test writes itself.
pub const POLICY_OFF: &str = include_str!("../common/policy-off.toml");

/// Exit codes of the contract (README "Exit codes").
pub mod exit {
    pub const OK: i32 = 0;
    pub const DENIED: i32 = 1;
    pub const BUSY: i32 = 5;
    pub const MUST_CHANGE: i32 = 11;
}

/// What a command showed its user.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panics with everything the command printed unless it exited with `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32, what: &str) -> Outcome {
        assert_eq!(
            self.code, code,
            "{what}: expected exit {code}, got {}\n{self}",
            self.code
        );
        self
    }

    #[track_caller]
    pub fn expect_ok(self, what: &str) -> Outcome {
        self.expect_code(exit::OK, what)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// An ordinary account created in the sandbox.
#[derive(Debug, Clone)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
}

pub struct Sandbox {
    /// Host directory holding `etc/` (bind-mounted over `/etc`) and `bin/`.
    dir: tempfile::TempDir,
    holder: Child,
    /// Closing it lets the holder exit.
    holder_stdin: Option<ChildStdin>,
    /// The setuid-root copy of the binary, as seen inside the sandbox.
    credsync: PathBuf,
    tools: Tools,
}

#[derive(Clone)]
struct Tools(Vec<(&'static str, PathBuf)>);

impl Tools {
    fn get(&self, name: &str) -> &Path {
        &self
            .0
            .iter()
            .find(|(n, _)| *n == name)
            .expect("tool listed in TOOLS")
            .1
    }
}

/// Fails the test with a message that says what is wrong with the machine.
#[track_caller]
fn cannot_run(why: &str) -> ! {
    let ci = if std::env::var_os("CI").is_some() {
        " (CI is set: these tests must run in CI)"
    } else {
        ""
    };
    panic!(
        "\n*** credsync system tests CANNOT RUN{ci}: {why}\n\
         *** They need root, mount namespaces (unshare --mount) and the tools \
         pamtester, chpasswd, passwd, pwck, useradd (packages pamtester, passwd). \
         They never pass by skipping.\n"
    );
}

fn find_tool(name: &str) -> Option<PathBuf> {
    SYSTEM_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

fn preflight() -> Tools {
    if !nix::unistd::geteuid().is_root() {
        cannot_run("not running as root (run `cargo test --test system` as root; CI does)");
    }
    let mut tools = Vec::new();
    let mut missing = Vec::new();
    for &(name, package) in TOOLS {
        match find_tool(name) {
            Some(path) => tools.push((name, path)),
            None => missing.push(format!("{name} (apt-get install {package})")),
        }
    }
    if !missing.is_empty() {
        cannot_run(&format!("missing tools: {}", missing.join(", ")));
    }
    Tools(tools)
}

/// A host directory for the sandbox: the ordinary users of the sandbox must
/// reach the setuid binary in it, and setuid must work there (no `nosuid`).
/// It must not lie under a path the sandbox mounts over.
fn sandbox_parent(tools: &Tools) -> PathBuf {
    let candidates = [
        std::env::temp_dir(),
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    ];
    let mut rejected = Vec::new();
    for dir in candidates {
        let Ok(dir) = dir.canonicalize() else {
            continue;
        };
        let hidden = ["/etc", "/var/lib", "/var/log", "/run"]
            .iter()
            .any(|m| dir.starts_with(m));
        let options = Command::new(tools.get("findmnt"))
            .args(["-n", "-o", "OPTIONS", "-T"])
            .arg(&dir)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let nosuid = options.split(',').any(|o| o.trim() == "nosuid");
        let closed = dir.ancestors().find(|a| {
            std::fs::metadata(a)
                .map(|m| m.permissions().mode() & 0o001 == 0)
                .unwrap_or(true)
        });
        match (hidden, nosuid, closed) {
            (false, false, None) => return dir,
            _ => rejected.push(format!(
                "{} (under a sandbox mount: {hidden}; nosuid: {nosuid}; not searchable by others: {:?})",
                dir.display(),
                closed
            )),
        }
    }
    cannot_run(&format!(
        "no directory for a setuid binary reachable by ordinary users: {}",
        rejected.join("; ")
    ))
}

/// The namespace's setup; `$1` is the host copy of /etc. Prints `ready` and
/// then blocks on stdin, which keeps the namespace alive.
const HOLDER_SCRIPT: &str = r#"
set -e
mount --bind "$1" /etc
mount -t tmpfs -o mode=0755 credsync-test /var/lib
mount -t tmpfs -o mode=0755 credsync-test /var/log
mount -t tmpfs -o mode=0755 credsync-test /run
echo ready
read -r _ || true
"#;

impl Sandbox {
    /// A fresh system: a copy of the host's `/etc` with `pam.d/credsync`
    /// installed and a `credsync.toml` without the verify delay, an empty
    /// `/var/lib` (no store yet), `/run` and `/var/log`, and a setuid-root
    /// copy of the binary.
    pub fn new() -> Sandbox {
        let tools = preflight();
        let dir = tempfile::Builder::new()
            .prefix("credsync-system-")
            .tempdir_in(sandbox_parent(&tools))
            .expect("create the sandbox directory");
        // Ordinary users must traverse it to reach bin/credsync; etc/ keeps the
        // modes `cp -a` gives it, so shadow stays root:shadow 0640.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();

        let etc = dir.path().join("etc");
        let copy = Command::new(tools.get("cp"))
            .arg("-a")
            .arg("/etc")
            .arg(&etc)
            .output()
            .expect("run cp");
        assert!(
            copy.status.success(),
            "cp -a /etc failed: {}",
            String::from_utf8_lossy(&copy.stderr)
        );
        let pam = Path::new(env!("CARGO_MANIFEST_DIR")).join("pam.d/credsync");
        std::fs::copy(&pam, etc.join("pam.d/credsync")).expect("install pam.d/credsync");
        std::fs::create_dir_all(etc.join("credsync")).unwrap();
        std::fs::write(etc.join("credsync/credsync.toml"), FAST_CONFIG).unwrap();

        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let credsync = bin.join("credsync");
        std::fs::copy(env!("CARGO_BIN_EXE_credsync"), &credsync).expect("copy the credsync binary");
        std::os::unix::fs::chown(&credsync, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&credsync, std::fs::Permissions::from_mode(0o4755)).unwrap();

        let mut holder = Command::new(tools.get("unshare"))
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-c",
                HOLDER_SCRIPT,
                "holder",
            ])
            .arg(&etc)
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| cannot_run(&format!("cannot start unshare: {e}")));
        let mut line = String::new();
        let read = BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line);
        if read.is_err() || line.trim() != "ready" {
            let _ = holder.kill();
            let out = holder.wait_with_output().unwrap();
            cannot_run(&format!(
                "unshare --mount could not build the sandbox: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let holder_stdin = holder.stdin.take();
        let sandbox = Sandbox {
            dir,
            holder,
            holder_stdin,
            credsync,
            tools,
        };
        sandbox.check_isolation();
        sandbox
    }

    /// Proves the sandbox is what the tests think it is before any test writes
    /// to it: `/etc` inside is the copy, not the host's.
    fn check_isolation(&self) {
        let marker = self.etc("credsync-sandbox-marker");
        std::fs::write(&marker, "x").unwrap();
        let seen = self.root_sh(
            "test -f /etc/credsync-sandbox-marker && test ! -e /var/lib/credsync",
            "",
        );
        std::fs::remove_file(&marker).unwrap();
        assert!(
            Path::new("/etc/credsync-sandbox-marker")
                .symlink_metadata()
                .is_err()
        );
        if seen.code != 0 {
            cannot_run(&format!("the sandbox's /etc is not the copy:\n{seen}"));
        }
    }

    /// The host path of `/etc/<rel>` inside the sandbox.
    pub fn etc(&self, rel: &str) -> PathBuf {
        self.dir.path().join("etc").join(rel)
    }

    /// A host directory under the sandbox that every user can read; it is
    /// visible under the same path inside the sandbox.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    pub fn write_config(&self, toml: &str) {
        std::fs::write(self.etc("credsync/credsync.toml"), toml).unwrap();
    }

    /// pam_faillock's tallies (which credsync's lockout keeps too) in a
    /// directory of the sandbox's `/run`, through the site's faillock.conf.
    pub fn keep_tallies_in_run(&self) {
        std::fs::write(
            self.etc("security/faillock.conf"),
            "dir = /run/credsync-faillock\n",
        )
        .unwrap();
    }

    /// The bytes of the sandbox's `/etc/shadow`.
    pub fn shadow(&self) -> Vec<u8> {
        std::fs::read(self.etc("shadow")).expect("read the sandbox's /etc/shadow")
    }

    /// The bytes of `/etc/shadow-`, the backup of the previous content.
    pub fn shadow_backup(&self) -> Vec<u8> {
        std::fs::read(self.etc("shadow-")).expect("read the sandbox's /etc/shadow-")
    }

    /// Replaces `/etc/shadow` in place (owner and mode stay), as an image
    /// restore would.
    pub fn put_shadow(&self, bytes: &[u8]) {
        std::fs::write(self.etc("shadow"), bytes).unwrap();
    }

    /// `user`'s line of `/etc/shadow`, split into its nine fields.
    #[track_caller]
    pub fn shadow_fields(&self, user: &str) -> Vec<String> {
        let shadow = String::from_utf8(self.shadow()).expect("shadow is UTF-8");
        let line = shadow
            .lines()
            .find(|l| l.split(':').next() == Some(user))
            .unwrap_or_else(|| panic!("no line for {user} in /etc/shadow:\n{shadow}"));
        line.split(':').map(str::to_owned).collect()
    }

    /// The id of `group` in the sandbox's `/etc/group`.
    #[track_caller]
    pub fn group_id(&self, group: &str) -> u32 {
        let groups = std::fs::read_to_string(self.etc("group")).unwrap();
        groups
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f[0] == group)
            .unwrap_or_else(|| panic!("no group {group} in /etc/group"))[2]
            .parse()
            .unwrap()
    }

    /// Owner uid, group id and permission bits of `/etc/<rel>`.
    pub fn owner_and_mode(&self, rel: &str) -> (u32, u32, u32) {
        let meta = std::fs::metadata(self.etc(rel)).unwrap();
        (meta.uid(), meta.gid(), meta.mode() & 0o7777)
    }

    fn in_namespace(&self) -> Command {
        let mut cmd = Command::new(self.tools.get("nsenter"));
        // `--root`, `--wd`: the holder's root and working directories too, not
        // the namespace's; they differ when the tests run in a chroot
        // (scripts/compat-test.sh).
        cmd.arg("--target")
            .arg(self.holder.id().to_string())
            .arg("--mount")
            .arg("--root")
            .arg("--wd")
            .arg("--");
        cmd.env_clear().env("PATH", SYSTEM_PATH).env("LANG", "C");
        cmd
    }

    fn run(mut cmd: Command, stdin: &str) -> Outcome {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let mut input = child.stdin.take().unwrap();
        // A command that exits without reading its input is not an error here.
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        let out = child.wait_with_output().unwrap();
        Outcome {
            code: out
                .status
                .code()
                .unwrap_or_else(|| panic!("{cmd:?} was killed: {:?}", out.status)),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs a system tool as root inside the sandbox.
    pub fn root_tool(&self, tool: &str, args: &[&str], stdin: &str) -> Outcome {
        let mut cmd = self.in_namespace();
        cmd.arg(self.tools.get(tool)).args(args);
        Sandbox::run(cmd, stdin)
    }

    /// Runs a shell snippet as root inside the sandbox; `$CREDSYNC` names the
    /// binary.
    pub fn root_sh(&self, script: &str, stdin: &str) -> Outcome {
        let mut cmd = self.in_namespace();
        cmd.env("CREDSYNC", &self.credsync)
            .args(["/bin/sh", "-c", script]);
        Sandbox::run(cmd, stdin)
    }

    /// Runs credsync as root inside the sandbox.
    pub fn credsync(&self, args: &[&str], stdin: &str) -> Outcome {
        self.credsync_with_env(&[], args, stdin)
    }

    /// The same, with `env` added to its environment (as root credsync keeps
    /// it; the setuid path clears it).
    pub fn credsync_with_env(&self, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Outcome {
        let mut cmd = self.in_namespace();
        cmd.envs(env.iter().copied()).arg(&self.credsync).args(args);
        Sandbox::run(cmd, stdin)
    }

    /// Runs credsync as root with `env`, expecting it to die of a signal
    /// (a fault point's abort): the signal's number.
    #[track_caller]
    pub fn credsync_killed(&self, env: &[(&str, &str)], args: &[&str], stdin: &str) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        let mut cmd = self.in_namespace();
        cmd.envs(env.iter().copied())
            .arg(&self.credsync)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start credsync");
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        let out = child.wait_with_output().unwrap();
        out.status.signal().unwrap_or_else(|| {
            panic!(
                "credsync {args:?} was expected to die of a signal but exited {:?}:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Real `useradd`: an ordinary account with no home directory (nothing is
    /// created outside the sandbox) and no lastlog/faillog entries.
    pub fn useradd(&self, name: &str) -> Account {
        self.root_tool(
            "useradd",
            &["-M", "-l", "-d", "/nonexistent", "-s", "/bin/sh", name],
            "",
        )
        .expect_ok(&format!("useradd {name}"));
        let passwd = std::fs::read_to_string(self.etc("passwd")).unwrap();
        let fields: Vec<&str> = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f[0] == name)
            .expect("useradd wrote the account");
        Account {
            uid: fields[2].parse().unwrap(),
            gid: fields[3].parse().unwrap(),
        }
    }

    /// `credsync recover USER --stdin` as root: the user's first change through
    /// credsync, which makes it managed.
    pub fn enrol(&self, user: &str, password: &str) {
        self.credsync(&["recover", user, "--stdin"], &format!("{password}\n"))
            .expect_ok(&format!("enrol {user}"));
    }

    /// Real `chpasswd` (shadow-utils, through PAM's password stack on Debian).
    pub fn chpasswd(&self, user: &str, password: &str) {
        self.root_tool("chpasswd", &[], &format!("{user}:{password}\n"))
            .expect_ok(&format!("chpasswd {user}"));
    }

    /// Real `passwd USER` run by root: new password and confirmation on stdin.
    pub fn passwd_as_root(&self, user: &str, password: &str) -> Outcome {
        self.root_tool("passwd", &[user], &format!("{password}\n{password}\n"))
    }

    /// `pamtester credsync USER OPS...` with the password on stdin: the real
    /// PAM stack of the `credsync` service, pam_unix reading `/etc/shadow`.
    pub fn pamtester_ops(&self, user: &str, password: &str, ops: &[&str]) -> Outcome {
        let mut args = vec!["credsync", user];
        args.extend_from_slice(ops);
        self.root_tool("pamtester", &args, &format!("{password}\n"))
    }

    /// Does pam_unix accept `password` for `user`?
    pub fn pamtester(&self, user: &str, password: &str) -> bool {
        let out = self.pamtester_ops(user, password, &["authenticate"]);
        match out.code {
            0 => true,
            1 if out.stderr.contains("Authentication failure") => false,
            _ => panic!(
                "pamtester failed for an unexpected reason (exit {}):\n{out}",
                out.code
            ),
        }
    }

    /// `credsync verify USER --stdin` as root: the exit code.
    pub fn verify(&self, user: &str, password: &str) -> i32 {
        self.credsync(&["verify", user, "--stdin"], &format!("{password}\n"))
            .code
    }

    /// Both stores take `current` and refuse `previous`: pam_unix, reading the
    /// shadow file as it is now (through `pamtester`), and the record (`verify`).
    #[track_caller]
    pub fn assert_only_accepts(&self, user: &str, current: &str, previous: &str) {
        assert!(
            self.pamtester(user, current),
            "pam_unix rejects {user}'s current password"
        );
        assert!(
            !self.pamtester(user, previous),
            "pam_unix still accepts {user}'s previous password"
        );
        assert_eq!(
            self.verify(user, current),
            0,
            "verify rejects {user}'s current password"
        );
        assert_eq!(
            self.verify(user, previous),
            1,
            "verify still accepts {user}'s previous password"
        );
    }

    /// `credsync --json status USER` as root: the state of `user`, or `None`
    /// when credsync does not manage it.
    #[track_caller]
    pub fn state(&self, user: &str) -> Option<String> {
        let out = self
            .credsync(&["--json", "status", user], "")
            .expect_ok("status --json");
        let value: serde_json::Value = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{out}"));
        let rows = value
            .as_array()
            .unwrap_or_else(|| panic!("status --json is not an array:\n{out}"));
        rows.iter()
            .find(|row| row["user"] == user)
            .map(|row| row["state"].as_str().expect("state is a string").to_owned())
    }

    /// `credsync --json status USER` as root: `user`'s row.
    #[track_caller]
    pub fn status_row(&self, user: &str) -> serde_json::Value {
        let out = self
            .credsync(&["--json", "status", user], "")
            .expect_ok("status --json");
        let value: serde_json::Value = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{out}"));
        value
            .as_array()
            .and_then(|rows| rows.iter().find(|row| row["user"] == user).cloned())
            .unwrap_or_else(|| panic!("status --json has no row for {user}:\n{out}"))
    }

    /// One value from the store, read with `sqlite3 -readonly` as root.
    #[track_caller]
    pub fn sql(&self, query: &str) -> String {
        let quoted = query.replace('\'', "'\\''");
        self.root_sh(
            &format!("sqlite3 -readonly /var/lib/credsync/credsync.db '{quoted}'"),
            "",
        )
        .expect_ok("sqlite3 reads the store")
        .stdout
        .trim()
        .to_owned()
    }

    /// Real `pwck -r` (read-only): exit code and report.
    pub fn pwck(&self) -> Outcome {
        self.root_tool("pwck", &["-r"], "")
    }

    /// Commands run by an ordinary account of the sandbox through the setuid
    /// binary (`setpriv` drops root and every capability first).
    pub fn as_user(&self, account: &Account) -> AsUser<'_> {
        AsUser {
            sandbox: self,
            account: account.clone(),
            env: vec![("PATH".into(), SYSTEM_PATH.into())],
        }
    }

    /// Starts `python3` as root in the sandbox holding an fcntl write lock on
    /// `/etc/.pwd.lock` (what glibc's `lckpwdf`, pam_unix and shadow-utils
    /// take) until the guard is dropped.
    pub fn hold_pwd_lock(&self) -> LockHolder {
        let script = "import fcntl, os, sys\n\
            f = os.open('/etc/.pwd.lock', os.O_WRONLY | os.O_CREAT, 0o600)\n\
            fcntl.lockf(f, fcntl.LOCK_EX)\n\
            print('locked', flush=True)\n\
            sys.stdin.read()\n";
        let mut cmd = self.in_namespace();
        let mut child = cmd
            .arg(self.tools.get("python3"))
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked", "python3 did not take the lock");
        LockHolder { child }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        drop(self.holder_stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.holder.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

pub struct LockHolder {
    child: Child,
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct AsUser<'a> {
    sandbox: &'a Sandbox,
    account: Account,
    env: Vec<(String, String)>,
}

impl AsUser<'_> {
    /// Replaces the environment credsync starts with (the caller controls it).
    pub fn with_env(mut self, env: &[(&str, &str)]) -> Self {
        self.env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self
    }

    /// `setpriv` to this user (no groups, no capabilities), then `env -i`: the
    /// arguments that follow are the whole environment and the command.
    fn command(&self) -> Command {
        let sandbox = self.sandbox;
        let mut cmd = sandbox.in_namespace();
        cmd.arg(sandbox.tools.get("setpriv"))
            .arg(format!("--reuid={}", self.account.uid))
            .arg(format!("--regid={}", self.account.gid))
            .args(["--clear-groups", "--inh-caps=-all", "--"])
            .arg(sandbox.tools.get("env"))
            .arg("-i");
        cmd
    }

    /// Runs a bash script as this user; `$CREDSYNC` names the setuid binary.
    pub fn bash(&self, script: &str) -> Outcome {
        Sandbox::run(self.bash_command(script), "")
    }

    /// The same script as a command to spawn, for one that must keep running
    /// while the test goes on.
    pub fn bash_command(&self, script: &str) -> Command {
        let mut cmd = self.command();
        cmd.arg(format!("PATH={SYSTEM_PATH}"))
            .arg(format!("CREDSYNC={}", self.sandbox.credsync.display()))
            .args(["bash", "-c", script]);
        cmd
    }

    /// Runs the setuid credsync as this user, `stdin` fed in.
    pub fn run(&self, args: &[&str], stdin: &str) -> Outcome {
        self.run_timed(args, stdin).0
    }

    pub fn run_timed(&self, args: &[&str], stdin: &str) -> (Outcome, Duration) {
        // The environment is set only for credsync itself, by env -i.
        let mut cmd = self.command();
        cmd.args(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.arg(&self.sandbox.credsync).args(args);
        let started = Instant::now();
        let outcome = Sandbox::run(cmd, stdin);
        (outcome, started.elapsed())
    }
}

/// A real sshd inside the sandbox, on a free port of 127.0.0.1, with PAM
/// (`/etc/pam.d/sshd` of the sandbox's copy of `/etc`) and keyboard-
/// interactive passwords; stopped when dropped.
pub struct Sshd {
    child: Child,
    pub port: u16,
}

impl Sandbox {
    pub fn start_sshd(&self) -> Sshd {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        self.root_sh("mkdir -p /run/sshd && chmod 0755 /run/sshd", "")
            .expect_ok("sshd's privilege separation directory");
        let mut cmd = self.in_namespace();
        let child = cmd
            .arg(self.tools.get("sshd"))
            .args(["-D", "-e", "-p", &port.to_string()])
            .args(["-o", "ListenAddress=127.0.0.1", "-o", "UsePAM=yes"])
            .args(["-o", "KbdInteractiveAuthentication=yes"])
            .args([
                "-o",
                "PasswordAuthentication=no",
                "-o",
                "PubkeyAuthentication=no",
            ])
            .args(["-o", "PermitRootLogin=no", "-o", "MaxAuthTries=10"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd never listened on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Sshd { child, port }
    }

    /// `ssh USER@127.0.0.1 true` on a pseudo-terminal inside the sandbox,
    /// answering each password prompt with `old` (a login) or `new` (a
    /// forced change's new password and its confirmation).
    pub fn ssh(&self, sshd: &Sshd, user: &str, old: &str, new: &str) -> Outcome {
        let port = sshd.port.to_string();
        let mut cmd = self.in_namespace();
        cmd.arg(self.tools.get("python3"))
            .args(["-c", ON_A_PTY, old, new])
            .arg(self.tools.get("ssh"))
            .args(["-tt", "-p", &port, "-o", "StrictHostKeyChecking=no"])
            .args([
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "PreferredAuthentications=keyboard-interactive",
            ])
            .args(["-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10"])
            .arg(format!("{user}@127.0.0.1"))
            .arg("true");
        Sandbox::run(cmd, "")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Answers the prompts of a command on a pseudo-terminal: `argv[1]` (the
/// current password) at any password prompt, `argv[2]` (the new one) at a
/// "new" or "retype" prompt; then exits with the command's status and
/// prints what the terminal showed.
pub const ON_A_PTY: &str = r#"
import os, pty, sys, time
old, new, argv = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
seen, answered, deadline = b"", 0, time.time() + 60
while time.time() < deadline:
    try:
        data = os.read(fd, 1024)
    except OSError:
        break
    if not data:
        break
    seen += data
    prompts = seen.split(b"\n")[-1]
    if prompts.rstrip().endswith(b":") and seen.count(b":") > answered:
        answered = seen.count(b":")
        last = prompts.lower()
        answer = new if (b"new" in last or b"retype" in last) else old
        time.sleep(0.1)
        os.write(fd, answer + b"\n")
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

impl Sandbox {
    /// Starts `program` as root inside the sandbox and leaves it running: a
    /// service the test talks to and stops itself (the returned child is the
    /// program: `nsenter` execs it). `env` is added to the sandbox's
    /// environment; stdout and stderr go to `log`, a host file.
    pub fn spawn_root(
        &self,
        program: &std::ffi::OsStr,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Child {
        let out = std::fs::File::create(log).expect("create the program's log");
        let err = out.try_clone().unwrap();
        let mut cmd = self.in_namespace();
        cmd.envs(env.iter().copied())
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start {program:?} in the sandbox: {e}"))
    }
}
