//! What a change leaves for the rest of the system as root: the cache
//! daemons are told only once the password files are unlocked and the
//! record written, a hung one can't hold a change, the helpers credsync runs
//! never get its caller's descriptors or groups, and every change sends a
//! Linux audit record, which a kernel without audit (or one that refuses it)
//! never turns into a failure.
//!
//! Stand-ins for `nscd` and `sss_cache` are laid over `/usr/sbin` inside the
//! sandbox only: a copy of the host's `/usr/sbin` with the stand-ins added,
//! bind-mounted over `/usr/sbin` in the sandbox's private mount namespace.
//! The host's `/usr/sbin` is only ever read.

use super::harness::{Account, Outcome, Sandbox};
use super::hostile::wait_for;
use super::{NEW, OLD, alice_and_bob};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Written into every stand-in, so the host's `/usr/sbin` can be checked for
/// never holding one.
const STAND_IN: &str = "credsync-rootside-stand-in";

/// A stand-in that does nothing.
fn quiet_stand_in() -> String {
    format!("#!/bin/sh\n# {STAND_IN}\nexit 0\n")
}

/// Inside the sandbox only: `/usr/sbin` becomes a copy of the host's with
/// `tools` (name, script) laid in. The bind mount lives in the namespace the
/// sandbox holds, so every later step sees it.
///
/// shadow-utils' own tools (useradd, chpasswd, passwd -l) run these too, and
/// wait for them without a bound: set the accounts up before.
fn lay_over_usr_sbin(sandbox: &Sandbox, tools: &[(&str, String)]) {
    let copy = sandbox.scratch("usr-sbin");
    let cp = Command::new("cp")
        .arg("-a")
        .arg("/usr/sbin/.")
        .arg(&copy)
        .output()
        .expect("run cp");
    assert!(
        cp.status.success(),
        "cp -a /usr/sbin failed: {}",
        String::from_utf8_lossy(&cp.stderr)
    );
    for (name, script) in tools {
        let path = copy.join(name);
        let _ = fs::remove_file(&path);
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let names: Vec<&str> = tools.iter().map(|(n, _)| *n).collect();
    sandbox
        .root_sh(
            &format!(
                "set -e; mount --bind {} /usr/sbin; for t in {}; do grep -q {STAND_IN} /usr/sbin/$t; done",
                copy.display(),
                names.join(" ")
            ),
            "",
        )
        .expect_ok("bind-mount the copy of /usr/sbin inside the sandbox");
    for name in names {
        let host = fs::read(Path::new("/usr/sbin").join(name)).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&host).contains(STAND_IN),
            "the host's /usr/sbin/{name} is a stand-in: the bind mount escaped the sandbox"
        );
    }
}

/// A marker directory every process in the sandbox can write (the stand-ins
/// run as root, but a check may run as a user).
fn marks(sandbox: &Sandbox) -> PathBuf {
    let dir = sandbox.scratch("marks");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// Exits 0 only if nothing holds an fcntl lock on `/etc/.pwd.lock` (what
/// glibc's `lckpwdf`, pam_unix and shadow-utils take).
const PWD_LOCK_IS_FREE: &str = "import fcntl, os\n\
    f = os.open('/etc/.pwd.lock', os.O_WRONLY | os.O_CREAT, 0o600)\n\
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n";

/// A line of `key=value` pairs, as the stand-ins write them.
fn field<'a>(marker: &'a str, key: &str) -> Option<&'a str> {
    marker
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// After a change, nscd is told only once `/etc/.pwd.lock` and
/// `/etc/shadow.lock` are released and the record holds the new password;
/// and an nscd that never returns is killed, so the change finishes anyway.
#[test]
fn nscd_is_told_after_the_locks_are_released_and_a_hung_one_cannot_hold_a_change() {
    let (sandbox, _alice, _bob) = alice_and_bob();
    let marks = marks(&sandbox);
    let marker = marks.join("nscd");
    let credsync = sandbox
        .root_sh("printf %s \"$CREDSYNC\"", "")
        .expect_ok("the binary's path")
        .stdout;

    // The lock probe can see a held lock (so "free" below means something).
    {
        let _held = sandbox.hold_pwd_lock();
        let probe = sandbox.root_tool("python3", &["-c", PWD_LOCK_IS_FREE], "");
        assert_ne!(
            probe.code, 0,
            "the probe took /etc/.pwd.lock while it was held:\n{probe}"
        );
    }

    // Records the state of the locks and of the record, then hangs.
    let nscd = format!(
        r#"#!/bin/sh
# {STAND_IN}
PATH=/usr/bin:/bin
m={marks}
{{
  echo "args=$*"
  if [ -e /etc/shadow.lock ]; then echo shadow.lock=held; else echo shadow.lock=free; fi
  if python3 -c "{PWD_LOCK_IS_FREE}" 2>/dev/null; then echo pwd.lock=free; else echo pwd.lock=held; fi
  printf '%s\n' '{NEW}' | timeout 3 {credsync} verify alice --stdin >/dev/null 2>&1
  echo "verify=$?"
  echo "pid=$$"
}} > $m/nscd.tmp
mv $m/nscd.tmp $m/nscd
exec sleep 60
"#,
        marks = marks.display()
    );
    lay_over_usr_sbin(&sandbox, &[("nscd", nscd), ("sss_cache", quiet_stand_in())]);

    let started = Instant::now();
    let out = sandbox.credsync(&["recover", "alice", "--stdin"], &format!("{NEW}\n"));
    let took = started.elapsed();
    out.expect_ok("recover with an nscd that hangs");
    assert!(
        took < Duration::from_secs(20),
        "a hung nscd held the change for {took:?}"
    );

    let seen = fs::read_to_string(&marker).unwrap_or_else(|e| {
        panic!("the stand-in nscd never ran (or never finished its checks: {e})")
    });
    assert_eq!(field(&seen, "args"), Some("-i passwd"), "{seen}");
    assert_eq!(
        field(&seen, "shadow.lock"),
        Some("free"),
        "nscd ran while /etc/shadow.lock was held:\n{seen}"
    );
    assert_eq!(
        field(&seen, "pwd.lock"),
        Some("free"),
        "nscd ran while /etc/.pwd.lock was held:\n{seen}"
    );
    assert_eq!(
        field(&seen, "verify"),
        Some("0"),
        "nscd ran before the record held the new password (verify's exit code):\n{seen}"
    );

    // The hung nscd was killed (and reaped), not left behind.
    let pid: u32 = field(&seen, "pid").unwrap().parse().unwrap();
    let gone = |pid: u32| {
        fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| !String::from_utf8_lossy(&c).contains("sleep"))
            .unwrap_or(true)
    };
    wait_for(5, "the hung nscd to be gone", || gone(pid).then_some(()));

    // The change is whole: both stores, and no lock left behind.
    sandbox.assert_only_accepts("alice", NEW, OLD);
    assert_eq!(sandbox.state("alice").as_deref(), Some("in-sync"));
    assert!(
        !sandbox.etc("shadow.lock").exists(),
        "shadow.lock left behind"
    );
    sandbox
        .root_tool("python3", &["-c", PWD_LOCK_IS_FREE], "")
        .expect_ok("/etc/.pwd.lock is free after the change");
}

/// A setuid run by a user with a supplementary group and an inherited,
/// open descriptor 7: neither reaches nscd or sss_cache, which credsync runs
/// as root.
#[test]
fn helpers_get_neither_the_callers_descriptors_nor_groups() {
    let (sandbox, alice, _bob) = alice_and_bob();
    sandbox
        .root_sh(
            "set -e; groupadd credsync-extra; usermod -a -G credsync-extra alice",
            "",
        )
        .expect_ok("give alice a supplementary group");
    let extra = sandbox.group_id("credsync-extra");
    let marks = marks(&sandbox);
    let probe = |tool: &str| {
        format!(
            "#!/bin/sh\n# {STAND_IN}\nPATH=/usr/bin:/bin\n\
             {{ ls -l /proc/self/fd; grep '^Groups:' /proc/self/status; }} > {m}/{tool}.tmp\n\
             mv {m}/{tool}.tmp {m}/{tool}\n",
            m = marks.display()
        )
    };
    lay_over_usr_sbin(
        &sandbox,
        &[("nscd", probe("nscd")), ("sss_cache", probe("sss_cache"))],
    );

    let out = as_user_with_groups(
        &sandbox,
        &alice,
        "exec 7</etc/hostname; echo \"groups=$(id -G)\"; ls -l /proc/self/fd; \
         exec \"$CREDSYNC\" passwd --stdin",
        &format!("{OLD}\n{NEW}\n"),
    )
    .expect_ok("alice changes her password with fd 7 open and an extra group");
    // What the caller had, so the checks below can see it if it leaks.
    let groups = field(&out.stdout, "groups").unwrap_or_default();
    assert!(
        groups.split_whitespace().any(|g| g == extra.to_string()),
        "alice's shell does not have the supplementary group:\n{out}"
    );
    assert!(
        out.stdout.contains(" 7 -> /etc/hostname"),
        "alice's fd 7 is not inherited by her shell's children:\n{out}"
    );
    sandbox.assert_only_accepts("alice", NEW, OLD);

    for tool in ["nscd", "sss_cache"] {
        let seen = fs::read_to_string(marks.join(tool))
            .unwrap_or_else(|e| panic!("the stand-in {tool} never ran: {e}"));
        let fds: Vec<(&str, &str)> = seen
            .lines()
            .filter_map(|l| l.split_once(" -> "))
            .map(|(left, target)| (left.rsplit(' ').next().unwrap(), target))
            .collect();
        assert!(
            !fds.iter().any(|(fd, _)| *fd == "7"),
            "{tool} got a descriptor 7:\n{seen}"
        );
        assert!(
            !fds.iter().any(|(_, target)| target.contains("hostname")),
            "{tool} got alice's /etc/hostname:\n{seen}"
        );
        // Beyond 0-2 (which credsync sets to /dev/null), only ls's own
        // handle on the directory it lists: none of credsync's files either.
        let others: Vec<_> = fds
            .iter()
            .filter(|(fd, _)| !["0", "1", "2"].contains(fd))
            .filter(|(_, target)| !target.starts_with("/proc/"))
            .collect();
        assert!(
            others.is_empty(),
            "{tool} inherited descriptors: {others:?}\n{seen}"
        );
        let helper_groups = seen
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .unwrap_or_else(|| panic!("no Groups line from {tool}:\n{seen}"));
        assert_eq!(
            helper_groups.trim(),
            "",
            "{tool} runs with supplementary groups:\n{seen}"
        );
    }
}

/// Runs `script` in bash as `account`, with the supplementary groups
/// `/etc/group` gives it (`Sandbox::as_user` clears them); `$CREDSYNC` names
/// the setuid binary and `stdin` is the script's input.
fn as_user_with_groups(sandbox: &Sandbox, account: &Account, script: &str, stdin: &str) -> Outcome {
    let quoted = script.replace('\'', "'\\''");
    sandbox.root_sh(
        &format!(
            "exec setpriv --reuid={} --regid={} --init-groups --inh-caps=-all -- \
             env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CREDSYNC=\"$CREDSYNC\" bash -c '{quoted}'",
            account.uid, account.gid
        ),
        stdin,
    )
}

/// Runs `command` (a shell command line, `$CREDSYNC` the binary) as root in
/// the sandbox under `strace -f`, tracing the sockets it opens and what it
/// sends; returns its outcome and the trace.
fn traced(sandbox: &Sandbox, name: &str, command: &str, stdin: &str) -> (Outcome, String) {
    let traces = sandbox.scratch("traces");
    let file = traces.join(name);
    let out = sandbox.root_sh(
        &format!(
            "exec strace -f -e trace=socket,sendto -s 2048 -o {} {command}",
            file.display()
        ),
        stdin,
    );
    let trace = fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("strace wrote no trace for {command} ({e}):\n{out}"));
    (out, unescape(&trace))
}

/// The trace with strace's escapes undone: a record padded with NULs is
/// printed as `\xHH` throughout, and quotes as `\"` otherwise.
fn unescape(trace: &str) -> String {
    let bytes = trace.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 2..i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], bytes.get(i + 1), hex) {
            (b'\\', Some(b'x'), Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (b'\\', Some(b'"'), _) => {
                out.push(b'"');
                i += 2;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The trace's lines sending an audit record with `op`.
fn audit_sends<'a>(trace: &'a str, op: &str) -> Vec<&'a str> {
    let needle = format!("op={op} ");
    trace
        .lines()
        .filter(|l| l.contains("sendto(") && l.contains(&needle))
        .collect()
}

/// What the kernel answered a `sendto` line (`= 160`, `= -1 EPERM (...)`).
fn answer(line: &str) -> &str {
    line.rsplit_once(") = ")
        .map(|(_, a)| a)
        .unwrap_or("(unfinished)")
}

#[track_caller]
fn assert_one_record(trace: &str, op: &str, user: &str) -> String {
    let sends = audit_sends(trace, op);
    assert_eq!(
        sends.len(),
        1,
        "expected one audit record op={op}, got {}:\n{trace}",
        sends.len()
    );
    let line = sends[0];
    assert!(
        line.contains(&format!("acct=\"{user}\"")),
        "the record doesn't name {user}: {line}"
    );
    assert!(
        line.contains("res=success"),
        "the record doesn't say res=success: {line}"
    );
    assert!(
        trace.contains("NETLINK_AUDIT"),
        "no audit socket was opened:\n{trace}"
    );
    let answered = answer(line).to_owned();
    eprintln!("kernel's answer to op={op}: {answered}");
    answered
}

/// Every change sends a Linux audit record, as shadow-utils does: `recover`
/// (`recovered-password`), a `passwd -l` / `passwd -u` that `sync` follows
/// (`locked-password`, `unlocked-password`). Whatever the kernel answers the
/// send, the change succeeds (where the sandbox lacks `CAP_AUDIT_WRITE` in the
/// initial user namespace the kernel answers EPERM). Under `--root` nothing
/// is sent: the accounts are an image's.
#[test]
fn changes_send_audit_records_and_root_images_send_none() {
    let (sandbox, _alice, _bob) = alice_and_bob();

    let (out, trace) = traced(
        &sandbox,
        "recover",
        "\"$CREDSYNC\" recover alice --stdin",
        &format!("{NEW}\n"),
    );
    // Exit 0 whatever the kernel answered the record.
    out.expect_ok("recover under strace");
    assert_one_record(&trace, "recovered-password", "alice");
    assert!(
        audit_sends(&trace, "changed-password").is_empty(),
        "a recovery is reported as an ordinary change:\n{trace}"
    );
    sandbox.assert_only_accepts("alice", NEW, OLD);

    sandbox
        .root_tool("passwd", &["-l", "alice"], "")
        .expect_ok("passwd -l alice");
    let (out, trace) = traced(&sandbox, "lock", "\"$CREDSYNC\" sync", "");
    out.expect_ok("sync after passwd -l");
    assert_one_record(&trace, "locked-password", "alice");
    assert!(
        trace.contains("nlmsg_type=AUDIT_ACCT_LOCK") || trace.contains("nlmsg_type=0x46f"),
        "the lock is not sent as AUDIT_ACCT_LOCK (1135):\n{trace}"
    );

    sandbox
        .root_tool("passwd", &["-u", "alice"], "")
        .expect_ok("passwd -u alice");
    let (out, trace) = traced(&sandbox, "unlock", "\"$CREDSYNC\" sync", "");
    out.expect_ok("sync after passwd -u");
    assert_one_record(&trace, "unlocked-password", "alice");
    assert!(
        trace.contains("nlmsg_type=AUDIT_ACCT_UNLOCK") || trace.contains("nlmsg_type=0x470"),
        "the unlock is not sent as AUDIT_ACCT_UNLOCK (1136):\n{trace}"
    );

    // An image: a copy of the sandbox's /etc under /run/image.
    sandbox
        .root_sh(
            "set -e; mkdir -p /run/image/var/lib; cp -a /etc /run/image/etc",
            "",
        )
        .expect_ok("an image to work on");
    let before = sandbox
        .root_sh("grep '^alice:' /run/image/etc/shadow", "")
        .expect_ok("alice in the image")
        .stdout;
    let (out, trace) = traced(
        &sandbox,
        "root",
        "\"$CREDSYNC\" --root /run/image recover alice --stdin",
        &format!("{OLD}\n"),
    );
    out.expect_ok("recover --root");
    let after = sandbox
        .root_sh("grep '^alice:' /run/image/etc/shadow", "")
        .expect_ok("alice in the image")
        .stdout;
    assert_ne!(before, after, "--root did not change the image");
    assert!(
        !trace.contains("NETLINK_AUDIT") && !trace.contains("op="),
        "--root opened the audit socket or sent a record:\n{trace}"
    );
    // The system's own alice is untouched.
    assert!(sandbox.pamtester("alice", NEW));
}

// ---- a kernel without audit --------------------------------------------------------------

/// The `noaudit` shim (`tests/shim/noaudit.c`), compiled once per test run.
fn noaudit_shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| crate::shim::build("noaudit", &[]))
}

/// `recover` as root with the shim in `mode`; returns the shim's log.
fn recover_without_audit(mode: &str) -> String {
    let (sandbox, _alice, _bob) = alice_and_bob();
    let marks = marks(&sandbox);
    let log = marks.join("noaudit.log");
    let shim = noaudit_shim().to_str().unwrap();
    let log_path = log.to_str().unwrap();
    let out = sandbox.credsync_with_env(
        &[
            ("LD_PRELOAD", shim),
            ("NOAUDIT_MODE", mode),
            ("NOAUDIT_LOG", log_path),
        ],
        &["recover", "alice", "--stdin"],
        &format!("{NEW}\n"),
    );
    let out = out.expect_ok(&format!("recover with the audit shim in mode {mode}"));
    // Quietly, as shadow-utils carries on.
    assert!(
        !out.stderr.to_lowercase().contains("audit"),
        "the missing audit trail is reported as a problem:\n{out}"
    );
    sandbox.assert_only_accepts("alice", NEW, OLD);
    assert_eq!(sandbox.state("alice").as_deref(), Some("in-sync"));
    fs::read_to_string(&log).unwrap_or_default()
}

/// A kernel without audit: `socket(AF_NETLINK, …, NETLINK_AUDIT)` fails with
/// EPROTONOSUPPORT, as `audit_open` sees it there. The recovery still
/// succeeds and both stores hold the new password.
#[test]
fn a_kernel_without_audit_does_not_stop_a_change() {
    let log = recover_without_audit("socket");
    assert!(
        log.contains("socket EPROTONOSUPPORT"),
        "the shim never refused the audit socket (so the test proved nothing): {log:?}"
    );
}

/// A kernel that refuses the record (EPERM, no `CAP_AUDIT_WRITE`): the
/// recovery still succeeds and both stores hold the new password.
#[test]
fn a_refused_audit_record_does_not_stop_a_change() {
    let log = recover_without_audit("send");
    assert!(
        log.contains(" EPERM"),
        "the shim never refused an audit record (so the test proved nothing): {log:?}"
    );
}

/// The login uid behind a change (the human who logged in, whatever `sudo`
/// made of the other ids) is kept with the record: `status --json` gives it
/// as `changed_by_auid`, and null where the session has none.
#[test]
fn the_login_uid_behind_a_change_is_recorded() {
    let (sandbox, _alice, _bob) = alice_and_bob();
    let auid = |user: &str| {
        let out = sandbox
            .credsync(&["--json", "status", user], "")
            .expect_ok("status --json");
        let rows: serde_json::Value = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{out}"));
        let row = rows
            .as_array()
            .and_then(|rows| rows.iter().find(|row| row["user"] == user).cloned())
            .unwrap_or_else(|| panic!("status --json has no row for {user}:\n{out}"));
        assert!(
            row.get("changed_by_auid").is_some(),
            "status --json has no changed_by_auid:\n{out}"
        );
        row["changed_by_auid"].clone()
    };

    // The sandbox's commands run in a session without a login uid.
    sandbox
        .root_sh("test \"$(cat /proc/self/loginuid)\" = 4294967295", "")
        .expect_ok("the test runs without a login uid");
    sandbox.enrol("bob", NEW);
    assert_eq!(auid("bob"), serde_json::Value::Null);

    // Root's shell of a login as uid 1234 (the kernel keeps it across exec).
    sandbox
        .root_sh(
            "echo 1234 > /proc/self/loginuid && exec \"$CREDSYNC\" recover alice --stdin",
            &format!("{NEW}\n"),
        )
        .expect_ok("recover in a session with login uid 1234");
    assert_eq!(
        auid("alice"),
        serde_json::json!(1234),
        "the login uid of the session is not recorded"
    );
    sandbox.assert_only_accepts("alice", NEW, OLD);
}
