//! The machine's limits: a disk that fills up and a low `ulimit -f`.
//!
//! The full disk is real: inside the sandbox, a `--root` system on small
//! tmpfs mounts — `etc/` and `var/lib/` apart, or both on one — filled with a
//! ballast file until the kernel says ENOSPC, then given back a few pages at
//! a time. With any amount of space left, a change either succeeds in both
//! stores or fails with one line and exit 3, `/etc/shadow` never truncated;
//! once space is freed the next change works. `ulimit -f` below the size of
//! `/etc/shadow` must neither truncate the file nor kill credsync half-way
//! through a change (SIGXFSZ): root lifts the limit, as shadow-utils does.

use super::harness::{Outcome, POLICY_OFF, Sandbox, exit};
use super::{NEW, OLD, lines_except};

/// The `--root` system on small tmpfs mounts, inside the sandbox.
const ROOT: &str = "/run/full";
/// A copy of it, on the sandbox's own `/run`, to start each attempt from.
const SNAPSHOT: &str = "/run/full-snapshot";
/// tmpfs pages are the unit of space.
const PAGE: usize = 4096;
/// Exit code 3, "unexpected failure" (README "Exit codes").
const FAILURE: i32 = 3;

/// Fast hashing, and a short lock wait: nothing else holds the locks here.
const ROOT_CONFIG: &str = "[hash]\nmethod = \"sha512\"\nrounds = 1000\n\
[argon2]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n\
[verify]\nfailure_delay_ms = 0\n\
[locks]\ntimeout_secs = 1\n";

/// Where the small filesystems go.
#[derive(Clone, Copy, PartialEq)]
enum Disks {
    /// `etc/` on 64 KiB, `var/lib/` (the store) on 256 KiB of their own.
    Apart,
    /// Both on one 512 KiB filesystem, as on an appliance with one root.
    Shared,
}

/// Builds `ROOT` in the sandbox on `disks`: copies of the sandbox's passwd,
/// group and shadow (owner and mode kept), shadow padded with 300 locked
/// system accounts so that it spans three pages, and no `shadow-` yet, so
/// every file of the protocol needs new space. alice (password OLD) is
/// managed. A copy is kept at `SNAPSHOT`.
fn full_disk_system(disks: Disks) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.useradd("alice");
    sandbox.chpasswd("alice", OLD);
    let mounts = match disks {
        Disks::Apart => format!(
            "mkdir -p {ROOT}/etc {ROOT}/var/lib\n\
             mount -t tmpfs -o size=64k,mode=0755 credsync-full {ROOT}/etc\n\
             mount -t tmpfs -o size=256k,mode=0755 credsync-full {ROOT}/var/lib"
        ),
        Disks::Shared => format!(
            "mkdir -p {ROOT}\n\
             mount -t tmpfs -o size=512k,mode=0755 credsync-full {ROOT}\n\
             mkdir -p {ROOT}/etc {ROOT}/var/lib"
        ),
    };
    let setup = format!(
        r#"set -e
{mounts}
mkdir -m 0755 {ROOT}/etc/credsync
cp -p /etc/passwd /etc/group /etc/shadow {ROOT}/etc/
i=0
while [ $i -lt 300 ]; do echo "svc$i:!:19000:0:99999:7:::"; i=$((i+1)); done >> {ROOT}/etc/shadow
cat > {ROOT}/etc/credsync/credsync.toml
"#
    );
    sandbox
        .root_sh(&setup, &format!("{ROOT_CONFIG}{POLICY_OFF}"))
        .expect_ok("build the --root system on tmpfs");
    in_root(
        &sandbox,
        &["recover", "alice", "--stdin"],
        &format!("{OLD}\n"),
    )
    .expect_ok("enrol alice");
    sandbox
        .root_sh(
            &format!("rm -f {ROOT}/etc/shadow- && mkdir {SNAPSHOT} && cp -a {ROOT}/etc {ROOT}/var {SNAPSHOT}/"),
            "",
        )
        .expect_ok("keep a snapshot");
    sandbox
}

/// Puts `ROOT` back as the snapshot has it, ballast gone.
fn restore(sandbox: &Sandbox) {
    sandbox
        .root_sh(
            &format!(
                "set -e\n\
                 rm -f {ROOT}/ballast {ROOT}/etc/ballast {ROOT}/var/lib/ballast\n\
                 rm -rf {ROOT}/etc/* {ROOT}/etc/.[!.]* {ROOT}/var/lib/*\n\
                 cp -a {SNAPSHOT}/etc/. {ROOT}/etc/\n\
                 cp -a {SNAPSHOT}/var/lib/. {ROOT}/var/lib/"
            ),
            "",
        )
        .expect_ok("restore the snapshot");
}

/// `credsync --root ROOT ARGS...` as root in the sandbox.
fn in_root(sandbox: &Sandbox, args: &[&str], stdin: &str) -> Outcome {
    let mut all = vec!["--root", ROOT];
    all.extend_from_slice(args);
    sandbox.credsync(&all, stdin)
}

/// A file of `ROOT`, read inside the sandbox.
fn read(sandbox: &Sandbox, rel: &str) -> String {
    sandbox
        .root_sh(&format!("cat {ROOT}/{rel}"), "")
        .expect_ok(&format!("read {rel}"))
        .stdout
}

/// Fills the tmpfs holding `dir` (under `ROOT`) with a ballast file, then
/// frees `pages` pages of it again.
fn fill(sandbox: &Sandbox, dir: &str, pages: usize) {
    let script = format!(
        "rm -f {ROOT}/{dir}/ballast\n\
         dd if=/dev/zero of={ROOT}/{dir}/ballast bs={PAGE} 2>/dev/null || true\n\
         truncate -s -{} {ROOT}/{dir}/ballast\n\
         df -B1 --output=avail {ROOT}/{dir} | tail -1",
        pages * PAGE
    );
    let out = sandbox
        .root_sh(&script, "")
        .expect_ok(&format!("fill {dir}"));
    let free: usize = out.stdout.trim().parse().expect("df prints a number");
    assert_eq!(
        free,
        pages * PAGE,
        "{dir} has not exactly {pages} pages free"
    );
}

/// Frees the space again.
fn empty(sandbox: &Sandbox, dir: &str) {
    sandbox
        .root_sh(&format!("rm -f {ROOT}/{dir}/ballast"), "")
        .expect_ok("remove the ballast");
}

fn passwd(sandbox: &Sandbox, password: &str) -> Outcome {
    in_root(
        sandbox,
        &["passwd", "alice", "--stdin"],
        &format!("{password}\n"),
    )
}

fn verify(sandbox: &Sandbox, password: &str) -> i32 {
    in_root(
        sandbox,
        &["verify", "alice", "--stdin"],
        &format!("{password}\n"),
    )
    .code
}

/// What both stores of `ROOT` say: shadow's bytes, `status --json`, and
/// which of alice's passwords `verify` takes.
#[derive(Debug, PartialEq)]
struct Stores {
    shadow: String,
    status: String,
    takes_old: bool,
    takes_new: bool,
}

fn stores(sandbox: &Sandbox) -> Stores {
    Stores {
        shadow: read(sandbox, "etc/shadow"),
        status: in_root(sandbox, &["--json", "status"], "")
            .expect_ok("status")
            .stdout,
        takes_old: verify(sandbox, OLD) == exit::OK,
        takes_new: verify(sandbox, NEW) == exit::OK,
    }
}

/// The shadow protocol's lock and temporary files left in `ROOT/etc`.
fn leftovers(sandbox: &Sandbox) -> String {
    sandbox
        .root_sh(
            &format!(
                "cd {ROOT}/etc && ls -A | grep -E '^shadow([+]|-[+]|[.]lock|[.][0-9]+)$' || true"
            ),
            "",
        )
        .stdout
}

/// One line on stderr, exit 3, no claim of success, and not the message for
/// a corrupt store (exit 7, "restore it from a backup"): a full disk leaves
/// a healthy store.
#[track_caller]
fn assert_clean_failure(out: &Outcome, what: &str) {
    assert_eq!(out.code, FAILURE, "{what}: exit code\n{out}");
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "{what}: not one line on stderr\n{out}"
    );
    assert!(
        out.stderr.starts_with("credsync: "),
        "{what}: not credsync's message\n{out}"
    );
    assert!(
        !out.stderr.contains("corrupt") && !out.stderr.contains("backup"),
        "{what}: a full disk reported as a corrupt store\n{out}"
    );
    assert!(
        !out.stdout.contains("updated successfully"),
        "{what}: claims success\n{out}"
    );
}

/// `/etc` fills up: with 0, 1, 2, ... pages free, each change fails cleanly
/// until one fits; the stage that ran out of space is the lock, then the
/// backup, then the new file. Shadow is never truncated or changed by a
/// failed attempt, the record never moves, nothing is left behind. After
/// the ballast is removed, the change that failed works.
#[test]
fn a_full_etc_fails_cleanly_until_there_is_room() {
    let sandbox = full_disk_system(Disks::Apart);
    let before = stores(&sandbox);
    assert!(
        before.shadow.len() > 2 * PAGE,
        "the padded shadow is too small to span pages"
    );
    let mut stages = Vec::new();
    let mut fitted = None;
    for pages in 0..=12 {
        restore(&sandbox);
        fill(&sandbox, "etc", pages);
        let out = passwd(&sandbox, NEW);
        let what = format!("passwd with {pages} page(s) free in /etc");
        if out.code == exit::OK {
            fitted = Some(pages);
            break;
        }
        assert_clean_failure(&out, &what);
        assert!(
            out.stderr.contains("No space left on device"),
            "{what}: the message does not say the disk is full\n{out}"
        );
        stages.push((pages, out.stderr.trim().to_owned()));
        assert_eq!(leftovers(&sandbox), "", "{what}: files left behind");
        assert_eq!(
            stores(&sandbox),
            before,
            "{what}: the stores changed\n{out}"
        );
    }
    let fitted = fitted.expect("no change fitted into 12 free pages");
    assert!(fitted >= 3, "fitted with only {fitted} page(s) free");
    println!("/etc ran out at {stages:#?}; the change fitted with {fitted} page(s) free");
    let failed_at = |name: &str| stages.iter().any(|(_, m)| m.contains(name));
    assert!(
        failed_at("etc/shadow.") && failed_at("etc/shadow-+") && failed_at("etc/shadow+"),
        "not every stage ran out of space: {stages:#?}"
    );
    // The change that fitted is whole: alice's line changed, nothing else.
    assert_eq!(
        lines_except(read(&sandbox, "etc/shadow").as_bytes(), "alice"),
        lines_except(before.shadow.as_bytes(), "alice"),
        "other lines of shadow changed"
    );
    assert_eq!(verify(&sandbox, NEW), exit::OK);

    restore(&sandbox);
    fill(&sandbox, "etc", 0);
    assert_clean_failure(&passwd(&sandbox, NEW), "passwd on a full /etc");
    empty(&sandbox, "etc");
    passwd(&sandbox, NEW).expect_ok("the same change once space is freed");
    assert_eq!(verify(&sandbox, NEW), exit::OK);
    assert_eq!(leftovers(&sandbox), "");
}

/// The store's disk is full: the change fails before shadow is touched, with
/// one line that says what happened — not that a healthy store is corrupt
/// and must be restored from a backup (exit 7). After space is freed both
/// stores are as they were, and the change works.
#[test]
fn a_full_store_disk_fails_cleanly_and_is_not_called_corrupt() {
    let sandbox = full_disk_system(Disks::Apart);
    let before = stores(&sandbox);
    fill(&sandbox, "var/lib", 0);

    let out = passwd(&sandbox, NEW);
    assert_clean_failure(&out, "passwd with the store's disk full");
    assert_eq!(
        read(&sandbox, "etc/shadow"),
        before.shadow,
        "shadow changed"
    );
    assert_eq!(leftovers(&sandbox), "", "files left behind");

    empty(&sandbox, "var/lib");
    assert_eq!(stores(&sandbox), before, "the stores changed");
    passwd(&sandbox, NEW).expect_ok("the same change once space is freed");
    assert_eq!(verify(&sandbox, NEW), exit::OK);
}

/// What one attempt on the shared disk came to.
#[derive(Debug, PartialEq)]
enum Attempt {
    /// Failed, both stores as they were.
    Refused,
    /// Failed after `/etc/shadow` took the new password; the message says
    /// so and `sync` finished the record.
    ShadowAhead,
    Changed,
}

/// One filesystem holds `/etc` and the store, as on most appliances: with
/// 0, 1, 2, ... pages free, each change succeeds or fails with one line and
/// exit 3; shadow is never truncated and its other lines never move. After
/// space is freed, one `sync` brings both stores to one password — the old
/// one, with `status` exactly as before, unless the message said
/// `/etc/shadow` was changed, then the new one.
#[test]
fn a_full_disk_shared_by_both_stores_never_splits_them() {
    let sandbox = full_disk_system(Disks::Shared);
    let before = stores(&sandbox);
    let mut attempts = Vec::new();
    for pages in 0..=40 {
        restore(&sandbox);
        fill(&sandbox, ".", pages);
        let out = passwd(&sandbox, NEW);
        let what = format!("passwd with {pages} page(s) free on the shared disk");
        let shadow = read(&sandbox, "etc/shadow");
        assert_eq!(
            lines_except(shadow.as_bytes(), "alice"),
            lines_except(before.shadow.as_bytes(), "alice"),
            "{what}: shadow was truncated or other lines changed\n{out}"
        );
        let shadow_changed = shadow != before.shadow;
        let attempt = match (out.code, shadow_changed) {
            (exit::OK, true) => Attempt::Changed,
            (_, false) => {
                assert_clean_failure(&out, &what);
                Attempt::Refused
            }
            (_, true) => {
                assert_clean_failure(&out, &what);
                assert!(
                    out.stderr.contains("/etc/shadow was changed")
                        && out.stderr.contains("credsync sync"),
                    "{what}: shadow changed but the message does not say so\n{out}"
                );
                Attempt::ShadowAhead
            }
        };
        assert_eq!(leftovers(&sandbox), "", "{what}: files left behind");

        empty(&sandbox, ".");
        in_root(&sandbox, &["sync"], "").expect_ok(&format!("{what}, then sync"));
        let after = stores(&sandbox);
        if attempt == Attempt::Refused {
            assert_eq!(after, before, "{what}: the stores changed\n{out}");
        } else {
            assert!(
                after.takes_new && !after.takes_old && after.status.contains("\"in-sync\""),
                "{what}: the stores do not agree on the new password: {after:?}"
            );
        }
        let done = attempt == Attempt::Changed;
        attempts.push((pages, attempt));
        if done {
            break;
        }
    }
    println!("attempts on the shared disk: {attempts:?}");
    assert_eq!(
        attempts.last().map(|(_, a)| a),
        Some(&Attempt::Changed),
        "no change fitted into 40 free pages"
    );
    assert_eq!(attempts[0].1, Attempt::Refused);
}

/// Pads the sandbox's passwd and shadow with locked system accounts until
/// shadow is larger than `bytes`.
fn pad_shadow_beyond(sandbox: &Sandbox, bytes: usize) {
    let mut passwd = std::fs::read_to_string(sandbox.etc("passwd")).unwrap();
    let mut shadow = sandbox.shadow();
    let mut n = 0;
    while shadow.len() <= bytes {
        passwd += &format!(
            "svc{n}:x:{}:65534::/nonexistent:/usr/sbin/nologin\n",
            30_000 + n
        );
        shadow.extend_from_slice(format!("svc{n}:!:19000:0:99999:7:::\n").as_bytes());
        n += 1;
    }
    std::fs::write(sandbox.etc("passwd"), passwd).unwrap();
    sandbox.put_shadow(&shadow);
}

/// Whether this machine lets root raise a hard limit (CAP_SYS_RESOURCE in
/// the bounding set; containers often drop it). Root inside the sandbox, and
/// the setuid binary, have the capabilities of this test process at most.
fn root_can_raise_hard_limits() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .expect("CapBnd in /proc/self/status");
    let mask = u64::from_str_radix(bounding.trim(), 16).unwrap();
    mask & (1 << CAP_SYS_RESOURCE) != 0
}

/// A sandbox with alice (password OLD, managed) and a shadow file four times
/// the 1 KiB limit the tests set.
fn shadow_beyond_the_limit() -> (Sandbox, super::harness::Account) {
    let sandbox = Sandbox::new();
    let alice = sandbox.useradd("alice");
    sandbox.enrol("alice", OLD);
    pad_shadow_beyond(&sandbox, 4 * 1024);
    (sandbox, alice)
}

/// Runs `script` (dash, as root) with alice's new password on stdin.
fn root_passwd_under(sandbox: &Sandbox, limit: &str) -> Outcome {
    // dash counts `ulimit -f` in 512-byte blocks: 2 is 1 KiB.
    let script = format!(
        "{limit} && exec {} passwd alice --stdin",
        env!("CARGO_BIN_EXE_credsync")
    );
    sandbox.root_sh(&script, &format!("{NEW}\n"))
}

/// The change went through: both stores hold NEW, shadow is whole.
#[track_caller]
fn assert_changed(sandbox: &Sandbox, before: &[u8], out: Outcome, what: &str) {
    out.expect_ok(what);
    let after = sandbox.shadow();
    assert_eq!(
        lines_except(&after, "alice"),
        lines_except(before, "alice"),
        "{what}: other lines of shadow changed or were cut off"
    );
    sandbox.assert_only_accepts("alice", NEW, OLD);
    assert_eq!(sandbox.state("alice").as_deref(), Some("in-sync"));
    assert!(
        !sandbox.etc("shadow.lock").exists(),
        "{what}: a lock file was left behind"
    );
}

/// The change was refused cleanly: one line, exit 3, nothing moved.
#[track_caller]
fn assert_unchanged(sandbox: &Sandbox, before: &[u8], out: Outcome, what: &str) {
    assert_clean_failure(&out, what);
    assert_eq!(sandbox.shadow(), before, "{what}: shadow changed");
    sandbox.assert_only_accepts("alice", OLD, NEW);
    assert_eq!(sandbox.state("alice").as_deref(), Some("in-sync"));
    assert!(
        !sandbox.etc("shadow.lock").exists(),
        "{what}: a lock file was left behind"
    );
}

/// Root runs credsync under a soft `ulimit -f` of 1 KiB with a shadow file
/// four times that: the limit is lifted, the change completes in both stores
/// and shadow is whole — no truncated file, no SIGXFSZ while SQLite writes.
#[test]
fn a_soft_file_size_limit_is_lifted_for_the_whole_change() {
    let (sandbox, _) = shadow_beyond_the_limit();
    let before = sandbox.shadow();
    let out = root_passwd_under(&sandbox, "ulimit -S -f 2");
    assert_changed(&sandbox, &before, out, "passwd under ulimit -S -f 1 KiB");
}

/// The same with the hard limit at 1 KiB too: where root may raise it, the
/// change completes; where it may not (no CAP_SYS_RESOURCE), the change
/// fails cleanly — never killed half-way, never a truncated shadow.
#[test]
fn a_hard_file_size_limit_never_cuts_a_change_short() {
    let (sandbox, _) = shadow_beyond_the_limit();
    let before = sandbox.shadow();
    let out = root_passwd_under(&sandbox, "ulimit -f 2");
    let what = "passwd under ulimit -f 1 KiB (hard)";
    if root_can_raise_hard_limits() {
        assert_changed(&sandbox, &before, out, what);
    } else {
        assert_unchanged(&sandbox, &before, out, what);
    }
}

/// An ordinary user can't have the setuid binary killed half-way through
/// their change (holding the password file locks) with `ulimit -f`: the
/// change completes, or — where root can't raise a hard limit — fails
/// cleanly.
#[test]
fn a_user_cannot_cut_a_setuid_change_short_with_ulimit() {
    let (sandbox, alice) = shadow_beyond_the_limit();
    let before = sandbox.shadow();
    let out = sandbox.as_user(&alice).bash(&format!(
        "ulimit -f 1 && printf '%s\\n%s\\n' '{OLD}' '{NEW}' | \"$CREDSYNC\" passwd --stdin"
    ));
    assert_ne!(out.code, 128 + 25, "credsync was killed by SIGXFSZ\n{out}");
    let what = "alice's passwd under ulimit -f 1 KiB";
    if root_can_raise_hard_limits() {
        assert_changed(&sandbox, &before, out, what);
    } else {
        assert_unchanged(&sandbox, &before, out, what);
    }
}
