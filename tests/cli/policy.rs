//! The password policy (`[policy]`) against throw-away roots: each rule
//! refuses what it should, with its sentence and exit 8, accepts its boundary,
//! and leaves both stores as they were when it refuses (shadow byte for byte,
//! `status --json`, `verify` of the old password). Plus the site's own rules
//! (`etc/security/pwquality.conf` through libpwquality), pam_pwhistory's
//! `etc/security/opasswd`, the aging fields, the minimum age, `--force`,
//! `import` and the three tries on a terminal.
//!
//! Every test writes its own config: the fixture's turns the policy off.

use super::fixture::{Fixture, Root, linux_hash, today};
use super::on_terminal;
use std::fs;

/// Exit code of a refusal by the policy (README "Exit codes").
const POLICY: i32 = 8;

/// The fixture's fast settings, without a `[policy]` section: alone, it gives
/// the appliance's defaults.
const BASE: &str = "[hash]\nmethod = \"sha512\"\nrounds = 1000\n\
[argon2]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n\
[verify]\nfailure_delay_ms = 0\n\
[locks]\ntimeout_secs = 1\n";

/// A config with every rule of the policy off but `rules` (`key = value`
/// lines), and no lockout. Aging "off" is no minimum, never expires, and
/// shadow's usual warning (every change writes all three).
fn only(rules: &str) -> String {
    let mut keys: Vec<(String, String)> = [
        ("min_length", "0"),
        ("min_classes", "0"),
        ("min_changed_chars", "0"),
        ("reject_username", "false"),
        ("site_rules", "false"),
        ("history", "0"),
        ("min_age_days", "0"),
        ("max_age_days", "99999"),
        ("warn_days", "7"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for rule in rules.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = rule.split_once('=').expect("key = value");
        let slot = keys
            .iter_mut()
            .find(|(k, _)| k == key.trim())
            .unwrap_or_else(|| panic!("no policy key {key}"));
        slot.1 = value.trim().to_owned();
    }
    let policy: String = keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    format!("{BASE}[policy]\n{policy}[policy.lockout]\nfailures = 0\n")
}

fn set_config(root: &Root, text: &str) {
    fs::write(root.file("etc/credsync/credsync.toml"), text).unwrap();
}

/// What a refusal must leave exactly as it was.
struct Snapshot {
    shadow: String,
    status: serde_json::Value,
    opasswd: Option<Vec<u8>>,
}

fn snapshot(root: &Root) -> Snapshot {
    Snapshot {
        shadow: root.shadow(),
        status: root.status_json(),
        opasswd: fs::read(root.file("etc/security/opasswd")).ok(),
    }
}

/// Both stores are as in `before`, and the record still takes `old`.
#[track_caller]
fn assert_unchanged(root: &Root, before: &Snapshot, user: &str, old: &str) {
    assert_eq!(root.shadow(), before.shadow, "shadow changed");
    assert_eq!(root.status_json(), before.status, "the record changed");
    assert_eq!(
        fs::read(root.file("etc/security/opasswd")).ok(),
        before.opasswd,
        "the history file changed"
    );
    assert_eq!(
        root.verify(user, old),
        0,
        "verify no longer takes the old password"
    );
    assert!(
        linux_accepts(root, user, old),
        "shadow no longer takes the old password"
    );
}

fn linux_accepts(root: &Root, user: &str, password: &str) -> bool {
    let hash =
        credsync_core::system::crypt::LinuxHash::from_field(&root.shadow_field(user, 2)).unwrap();
    credsync_core::system::crypt::verify(
        &credsync_core::secret::Password::new(password.as_bytes().to_vec()).unwrap(),
        &hash,
    )
}

/// `passwd USER --stdin` as root with one new password: the assertion.
fn root_sets(root: &Root, user: &str, password: &str) -> assert_cmd::assert::Assert {
    root.run(&["passwd", user, "--stdin"], &format!("{password}\n"))
}

/// `set password --stdin` as `uid`, with the current password and the new one.
fn user_sets(root: &Root, uid: u32, current: &str, new: &str) -> assert_cmd::assert::Assert {
    root.run_as(
        uid,
        &["set", "password", "--stdin"],
        &format!("{current}\n{new}\n"),
    )
}

/// Hands the fixture back to root after `run_as` gave it to a user (under
/// `--root` the store must belong to the caller).
fn back_to_root(root: &Root) {
    fn walk(path: &std::path::Path) {
        std::os::unix::fs::lchown(path, Some(0), Some(0)).unwrap();
        if path.is_dir() && !path.is_symlink() {
            for entry in fs::read_dir(path).unwrap() {
                walk(&entry.unwrap().path());
            }
        }
    }
    walk(root.path());
    std::os::unix::fs::chown(root.file("etc/shadow"), Some(0), Some(42)).unwrap();
}

#[track_caller]
fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

/// The run was refused by the policy (exit 8); its stderr. `what` names
/// the case in a failure.
#[track_caller]
fn refused_by_policy(out: &assert_cmd::assert::Assert, what: impl std::fmt::Display) -> String {
    let err = stderr_of(out);
    assert_eq!(code_of(out), POLICY, "{what}: {err}");
    err
}

#[track_caller]
fn code_of(assert: &assert_cmd::assert::Assert) -> i32 {
    assert.get_output().status.code().unwrap()
}

/// `YYYY-MM-DD` of a day since the epoch, by coreutils `date`.
fn date_of(day: i64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{}", day * 86_400), "+%F"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A root with `etc/security/` and `pwquality.conf` holding `rules`.
fn with_pwquality(root: &Root, rules: &str) {
    fs::create_dir_all(root.file("etc/security")).unwrap();
    fs::write(root.file("etc/security/pwquality.conf"), rules).unwrap();
}

// ---- credsync's own quality rules ------------------------------------------------

#[test]
fn min_length_refuses_a_short_password_and_accepts_the_boundary() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("min_length = 8"))
        .build();
    root_sets(&root, "alice", "Start#Pass1").success();
    let before = snapshot(&root);
    // Seven characters in eight bytes: characters count, not bytes.
    for short in ["Kx9#mQ2", "Kx9#mQé"] {
        let out = root_sets(&root, "alice", short);
        let err = refused_by_policy(&out, short);
        assert!(
            err.contains(
                "credsync: the new password for 'alice' breaks the password policy: \
                 the new password must be at least 8 characters long; it has 7; nothing was changed"
            ),
            "{err}"
        );
        assert!(
            err.contains("(root may set it anyway with --force)"),
            "{err}"
        );
        assert_unchanged(&root, &before, "alice", "Start#Pass1");
    }
    root_sets(&root, "alice", "Kx9#mQ2v").success();
    assert_eq!(root.verify("alice", "Kx9#mQ2v"), 0);
    assert!(linux_accepts(&root, "alice", "Kx9#mQ2v"));
}

#[test]
fn min_length_off_takes_any_length() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only(""))
        .build();
    root_sets(&root, "alice", "k").success();
    assert_eq!(root.verify("alice", "k"), 0);
}

#[test]
fn min_classes_refuses_too_few_and_accepts_the_boundary() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("min_classes = 3"))
        .build();
    root_sets(&root, "alice", "Start#Pass1").success();
    let before = snapshot(&root);
    for (weak, got) in [("kx9mq2vzz", 2), ("kxzmqavzz", 1), ("KXZ#MQAV", 2)] {
        let out = root_sets(&root, "alice", weak);
        let err = refused_by_policy(&out, weak);
        assert!(
            err.contains(&format!(
                "the new password must mix at least 3 of lower case, upper case, digits and \
                 other characters; it has {got}"
            )),
            "{err}"
        );
        assert_unchanged(&root, &before, "alice", "Start#Pass1");
    }
    // The boundary: three classes exactly.
    root_sets(&root, "alice", "kx9mq2vz#").success();
    assert_eq!(root.verify("alice", "kx9mq2vz#"), 0);
}

#[test]
fn min_changed_chars_is_checked_in_a_self_service_change_only() {
    let root = Fixture::new()
        .user("alice", "Old#Pass")
        .config(&only("min_changed_chars = 8"))
        .build();
    // Root enrols alice with the password she has: root knows no old one.
    root_sets(&root, "alice", "Old#Pass").success();
    let before = snapshot(&root);

    // Seven of eight positions differ.
    let out = user_sets(&root, 1000, "Old#Pass", "Xyz!Qrts");
    let err = refused_by_policy(&out, "");
    assert!(
        err.contains(
            "the new password must differ from the old one in at least 8 positions; it differs in 7"
        ),
        "{err}"
    );
    assert!(
        !err.contains("--force"),
        "no --force offered to a user: {err}"
    );
    // Appending counts each added position: two here.
    let out = user_sets(&root, 1000, "Old#Pass", "Old#Pass1x");
    refused_by_policy(&out, "");
    assert!(
        stderr_of(&out).contains("it differs in 2"),
        "{}",
        stderr_of(&out)
    );
    back_to_root(&root);
    assert_unchanged(&root, &before, "alice", "Old#Pass");

    // The boundary: all eight differ.
    user_sets(&root, 1000, "Old#Pass", "Xyz!Qrt2").success();
    back_to_root(&root);
    assert_eq!(root.verify("alice", "Xyz!Qrt2"), 0);

    // Root recovering doesn't know the old password: one position changed is fine.
    root.run(&["recover", "alice", "--stdin"], "Xyz!Qrt3\n")
        .success();
    assert_eq!(root.verify("alice", "Xyz!Qrt3"), 0);
}

#[test]
fn reject_username_finds_the_name_forwards_backwards_and_in_any_case() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("reject_username = true"))
        .build();
    root_sets(&root, "alice", "Start#Pass1").success();
    let before = snapshot(&root);
    for holding in ["xALICE#123", "9#ecila-Kx", "alice"] {
        let out = root_sets(&root, "alice", holding);
        let err = refused_by_policy(&out, holding);
        assert!(
            err.contains("the new password must not contain the user name"),
            "{err}"
        );
        assert_unchanged(&root, &before, "alice", "Start#Pass1");
    }
    // Split by one character, the name is not there.
    root_sets(&root, "alice", "alic#e-123").success();
    assert_eq!(root.verify("alice", "alic#e-123"), 0);
}

#[test]
fn every_broken_rule_is_listed_at_once() {
    let root = Fixture::new().user("alice", "alice#Pass1").build();
    set_config(&root, &only(""));
    root_sets(&root, "alice", "alice#Pass1").success();
    set_config(
        &root,
        &only("min_length = 8\nmin_classes = 3\nmin_changed_chars = 8\nreject_username = true"),
    );
    let before = snapshot(&root);
    let out = user_sets(&root, 1000, "alice#Pass1", "alicex");
    refused_by_policy(&out, "");
    assert_eq!(
        stderr_of(&out),
        "credsync: the new password for 'alice' breaks the password policy: \
         the new password must be at least 8 characters long; it has 6; \
         the new password must mix at least 3 of lower case, upper case, digits and other characters; it has 1; \
         the new password must differ from the old one in at least 8 positions; it differs in 6; \
         the new password must not contain the user name; nothing was changed\n"
    );
    back_to_root(&root);
    assert_unchanged(&root, &before, "alice", "alice#Pass1");
}

#[test]
fn the_appliance_defaults_apply_without_a_policy_section() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(BASE)
        .build();
    root_sets(&root, "alice", "Start#Pass1").success();
    // Aging 1 / 60 / 7 written.
    assert_eq!(root.shadow_field("alice", 4), "1");
    assert_eq!(root.shadow_field("alice", 5), "60");
    assert_eq!(root.shadow_field("alice", 6), "7");
    let before = snapshot(&root);
    let out = root_sets(&root, "alice", "alice12");
    let err = refused_by_policy(&out, "");
    for rule in [
        "at least 8 characters long; it has 7",
        "at least 3 of lower case, upper case, digits and other characters; it has 2",
        "must not contain the user name",
    ] {
        assert!(err.contains(rule), "{rule}: {err}");
    }
    assert_unchanged(&root, &before, "alice", "Start#Pass1");
    // History 5: the current password is refused.
    let out = root_sets(&root, "alice", "Start#Pass1");
    refused_by_policy(&out, "");
    assert!(stderr_of(&out).contains("one of the last 5 used"));
    // Minimum age 1 day for the user herself, just changed by root.
    let out = user_sets(&root, 1000, "Start#Pass1", "Kq7!zWp3#Lm");
    refused_by_policy(&out, "");
    assert!(stderr_of(&out).contains("can be changed again from"));
}

// ---- the site's rules: pwquality.conf --------------------------------------------

#[test]
fn the_sites_pwquality_rules_apply_when_the_file_exists() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("site_rules = true"))
        .build();
    // Without the file, libpwquality is not consulted.
    root_sets(&root, "alice", "Kx9#mQ2v$Lp7w").success();
    with_pwquality(&root, "# strict\nminlen = 14\n");
    let before = snapshot(&root);
    let out = root_sets(&root, "alice", "Kx9#mQ2v$Lp7a");
    let err = refused_by_policy(&out, "");
    assert!(
        err.contains("the site's rules: The password is shorter than 14 characters"),
        "{err}"
    );
    assert_unchanged(&root, &before, "alice", "Kx9#mQ2v$Lp7w");
    // libpwquality's own user name check (usercheck, on by default).
    let out = root_sets(&root, "alice", "xAlice99#Kp2Zqq");
    refused_by_policy(&out, "");
    assert!(
        stderr_of(&out)
            .contains("the site's rules: The password contains the user name in some form"),
        "{}",
        stderr_of(&out)
    );
    assert_unchanged(&root, &before, "alice", "Kx9#mQ2v$Lp7w");
    // The boundary: fourteen characters.
    root_sets(&root, "alice", "Kx9#mQ2v$Lp7wZ").success();
    assert_eq!(root.verify("alice", "Kx9#mQ2v$Lp7wZ"), 0);
}

#[test]
fn site_rules_off_leaves_pwquality_conf_to_pam() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("site_rules = false"))
        .build();
    with_pwquality(&root, "minlen = 14\n");
    root_sets(&root, "alice", "Kx9#mQ2v").success();
    assert_eq!(root.verify("alice", "Kx9#mQ2v"), 0);
}

#[test]
fn the_sites_rules_and_credsyncs_are_listed_together() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("min_length = 8\nsite_rules = true"))
        .build();
    root_sets(&root, "alice", "Start#Pass1").success();
    with_pwquality(&root, "minlen = 14\n");
    let before = snapshot(&root);
    let out = root_sets(&root, "alice", "Kx9#mQ");
    let err = refused_by_policy(&out, "");
    assert!(
        err.contains(
            "the new password must be at least 8 characters long; it has 6; \
             the site's rules: The password is shorter than 14 characters"
        ),
        "{err}"
    );
    assert_unchanged(&root, &before, "alice", "Start#Pass1");
}

#[test]
fn the_sites_difok_sees_the_old_password_in_a_self_service_change() {
    let root = Fixture::new()
        .user("alice", "Kx9#mQ2v$Lp7wZ")
        .config(&only("site_rules = true"))
        .build();
    root_sets(&root, "alice", "Kx9#mQ2v$Lp7wZ").success();
    // difok counts edits: one character appended is too similar.
    with_pwquality(&root, "difok = 5\n");
    let before = snapshot(&root);
    let out = user_sets(&root, 1000, "Kx9#mQ2v$Lp7wZ", "Kx9#mQ2v$Lp7wZ1");
    refused_by_policy(&out, "");
    assert!(
        stderr_of(&out).contains("the site's rules: The password is too similar to the old one"),
        "{}",
        stderr_of(&out)
    );
    back_to_root(&root);
    assert_unchanged(&root, &before, "alice", "Kx9#mQ2v$Lp7wZ");
    // Root knows no old password: the same one is fine.
    root_sets(&root, "alice", "Kx9#mQ2v$Lp7wZ1").success();
}

// ---- history -------------------------------------------------------------------------

/// Sets `passwords` one after the other as root.
fn root_sets_each(root: &Root, user: &str, passwords: &[&str]) {
    for password in passwords {
        root_sets(root, user, password).success();
    }
}

const GENERATIONS: [&str; 6] = [
    "Gen#One-111",
    "Gen#Two-222",
    "Gen#Three-333",
    "Gen#Four-444",
    "Gen#Five-555",
    "Gen#Six-666",
];

#[test]
fn history_refuses_the_last_generations_and_accepts_the_one_before() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("history = 5"))
        .build();
    root_sets_each(&root, "alice", &GENERATIONS);
    let before = snapshot(&root);
    // The current one and the four before it: five generations.
    for used in &GENERATIONS[1..] {
        let out = root_sets(&root, "alice", used);
        refused_by_policy(&out, used);
        assert!(
            stderr_of(&out).contains(
                "the new password for 'alice' breaks the password policy: \
                 the new password must not be one of the last 5 used for this account; \
                 nothing was changed"
            ),
            "{}",
            stderr_of(&out)
        );
        assert_unchanged(&root, &before, "alice", GENERATIONS[5]);
    }
    // Five changes back is a sixth generation: accepted.
    root_sets(&root, "alice", GENERATIONS[0]).success();
    assert_eq!(root.verify("alice", GENERATIONS[0]), 0);
}

#[test]
fn history_of_two_is_the_current_password_and_the_one_before() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("history = 2"))
        .build();
    root_sets_each(&root, "alice", &GENERATIONS[..3]);
    let before = snapshot(&root);
    for used in &GENERATIONS[1..3] {
        let out = root_sets(&root, "alice", used);
        refused_by_policy(&out, used);
        assert!(stderr_of(&out).contains("one of the last 2 used"));
        assert_unchanged(&root, &before, "alice", GENERATIONS[2]);
    }
    // Two changes back.
    root_sets(&root, "alice", GENERATIONS[0]).success();
}

#[test]
fn history_five_refuses_a_password_used_two_changes_ago_in_self_service() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("history = 5"))
        .build();
    root_sets_each(&root, "alice", &GENERATIONS[..3]);
    let before = snapshot(&root);
    let out = user_sets(&root, 1000, GENERATIONS[2], GENERATIONS[0]);
    refused_by_policy(&out, "");
    assert!(stderr_of(&out).contains("one of the last 5 used"));
    back_to_root(&root);
    assert_unchanged(&root, &before, "alice", GENERATIONS[2]);
}

#[test]
fn history_includes_the_password_credsync_took_over_at_enrolment() {
    let root = Fixture::new()
        .user("alice", "Before#Pass1")
        .config(&only("history = 5"))
        .build();
    root_sets(&root, "alice", GENERATIONS[0]).success();
    let before = snapshot(&root);
    // One change back, set before credsync managed alice.
    let out = root_sets(&root, "alice", "Before#Pass1");
    refused_by_policy(&out, "");
    assert_unchanged(&root, &before, "alice", GENERATIONS[0]);
}

#[test]
fn history_includes_a_password_set_in_linux_and_adopted() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("history = 5"))
        .build();
    root_sets(&root, "alice", GENERATIONS[0]).success();
    // Changed with passwd behind credsync's back, adopted at the next start.
    root.set_shadow_entry("alice", &linux_hash("Linux#Set-1"), &today().to_string());
    root.run(&["sync"], "").success();
    root_sets(&root, "alice", GENERATIONS[1]).success();
    let before = snapshot(&root);
    // One change back.
    let out = root_sets(&root, "alice", "Linux#Set-1");
    refused_by_policy(&out, "");
    assert_unchanged(&root, &before, "alice", GENERATIONS[1]);
}

#[test]
fn history_off_allows_the_current_password() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only(""))
        .build();
    root_sets_each(&root, "alice", &[GENERATIONS[0], GENERATIONS[0]]);
}

/// alice's line of `etc/security/opasswd`.
fn opasswd_line(root: &Root, user: &str) -> Option<String> {
    fs::read_to_string(root.file("etc/security/opasswd"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .map(str::to_owned)
}

#[test]
fn history_is_shared_with_pam_pwhistorys_opasswd() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .user("bob", "Bob#Pass1")
        .config(&only("history = 5"))
        .build();
    fs::create_dir_all(root.file("etc/security")).unwrap();
    let used = linux_hash("Used#Before1");
    fs::write(
        root.file("etc/security/opasswd"),
        format!("# kept by pam_pwhistory\nalice:1000:1:{used}\n"),
    )
    .unwrap();
    let alice_old = root.shadow_field("alice", 2);
    root_sets(&root, "alice", "Start#Pass1").success();
    // The replaced hash is appended, last, with the count.
    assert_eq!(
        opasswd_line(&root, "alice").unwrap(),
        format!("alice:1000:2:{used},{alice_old}")
    );
    let before = snapshot(&root);
    // A password known only to pam_pwhistory's file is refused.
    let out = root_sets(&root, "alice", "Used#Before1");
    refused_by_policy(&out, "");
    assert!(
        stderr_of(&out).contains("one of the last 5 used"),
        "{}",
        stderr_of(&out)
    );
    assert_unchanged(&root, &before, "alice", "Start#Pass1");
    // The fixture's password, now only in opasswd (never in the record), too.
    let out = root_sets(&root, "alice", "Old#Pass1");
    refused_by_policy(&out, "");
    assert_unchanged(&root, &before, "alice", "Start#Pass1");

    let start = root.shadow_field("alice", 2);
    root_sets(&root, "alice", "Next#Pass2").success();
    assert_eq!(
        opasswd_line(&root, "alice").unwrap(),
        format!("alice:1000:3:{used},{alice_old},{start}")
    );
    // A user without a line gets one at the end, as pam_pwhistory writes it.
    let bob_old = root.shadow_field("bob", 2);
    root_sets(&root, "bob", "Bob#Next2").success();
    let text = fs::read_to_string(root.file("etc/security/opasswd")).unwrap();
    assert!(text.starts_with("# kept by pam_pwhistory\n"), "{text}");
    assert!(text.ends_with(&format!("bob:1001:1:{bob_old}\n")), "{text}");
}

#[test]
fn a_self_service_change_keeps_the_history_in_opasswd() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("history = 5"))
        .build();
    fs::create_dir_all(root.file("etc/security")).unwrap();
    let old = root.shadow_field("alice", 2);
    user_sets(&root, 1000, "Old#Pass1", "Kq7!zWp3#Lm").success();
    assert_eq!(
        opasswd_line(&root, "alice").unwrap(),
        format!("alice:1000:1:{old}")
    );
    let out = user_sets(&root, 1000, "Kq7!zWp3#Lm", "Old#Pass1");
    refused_by_policy(&out, "");
}

#[test]
fn opasswd_keeps_as_many_hashes_as_the_history() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("history = 2"))
        .build();
    fs::create_dir_all(root.file("etc/security")).unwrap();
    let mut replaced = vec![root.shadow_field("alice", 2)];
    for password in &GENERATIONS[..3] {
        root_sets(&root, "alice", password).success();
        replaced.push(root.shadow_field("alice", 2));
    }
    // Three hashes replaced; the last two kept.
    assert_eq!(
        opasswd_line(&root, "alice").unwrap(),
        format!("alice:1000:2:{},{}", replaced[1], replaced[2])
    );
    // Made by credsync: pam_pwhistory's owner and mode for a new file.
    assert_eq!(root.mode("etc/security/opasswd"), (0, 0, 0o600));
}

#[test]
fn with_history_off_opasswd_is_neither_read_nor_written() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only(""))
        .build();
    fs::create_dir_all(root.file("etc/security")).unwrap();
    let text = format!("alice:1000:1:{}\n", linux_hash("Used#Before1"));
    fs::write(root.file("etc/security/opasswd"), &text).unwrap();
    root_sets(&root, "alice", "Used#Before1").success();
    assert_eq!(
        fs::read_to_string(root.file("etc/security/opasswd")).unwrap(),
        text
    );
}

// ---- aging ---------------------------------------------------------------------------

#[test]
fn a_change_writes_the_aging_fields_as_configured() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .user("bob", "Bob#Pass1")
        .config(&only("min_age_days = 2\nmax_age_days = 90\nwarn_days = 10"))
        .build();
    // bob's aging as an administrator set it with chage.
    let shadow = root
        .shadow()
        .replace(":19000:0:99999:7:::\n", ":19000:5:30:3:::\n");
    root.set_shadow(&shadow);
    assert_eq!(root.shadow_field("bob", 5), "30");
    root_sets(&root, "alice", "Start#Pass1").success();
    let fields: Vec<String> = (3..=9).map(|n| root.shadow_field("alice", n)).collect();
    let today = today().to_string();
    assert_eq!(
        fields,
        [today.as_str(), "2", "90", "10", "", "", ""],
        "fields 3 to 9"
    );

    // The "off" values are written too: no minimum, never expires.
    set_config(&root, &only(""));
    root_sets(&root, "bob", "Start#Pass2").success();
    let fields: Vec<String> = (4..=6).map(|n| root.shadow_field("bob", n)).collect();
    assert_eq!(fields, ["0", "99999", "7"]);
}

#[test]
fn recover_and_import_write_the_aging_fields_too() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .user("bob", "Bob#Pass1")
        .config(&only("min_age_days = 1\nmax_age_days = 60\nwarn_days = 7"))
        .build();
    root.run(&["recover", "alice", "--stdin"], "Start#Pass1\n")
        .success();
    root.run(&["import"], "bob:Start#Pass2\n").success();
    for user in ["alice", "bob"] {
        let fields: Vec<String> = (4..=6).map(|n| root.shadow_field(user, n)).collect();
        assert_eq!(fields, ["1", "60", "7"], "{user}");
    }
}

// ---- minimum age -----------------------------------------------------------------------

#[test]
fn the_minimum_age_refuses_a_self_service_change_with_the_date() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("min_age_days = 2\nmax_age_days = 60"))
        .build();
    root_sets(&root, "alice", "Start#Pass1").success();
    assert_eq!(root.shadow_field("alice", 3), today().to_string());
    let before = snapshot(&root);
    let out = user_sets(&root, 1000, "Start#Pass1", "Next#Pass2");
    let err = refused_by_policy(&out, "");
    assert_eq!(
        err,
        format!(
            "credsync: the password was changed less than 2 day(s) ago; \
             it can be changed again from {} (UTC)\n",
            date_of(today() + 2)
        )
    );
    back_to_root(&root);
    assert_unchanged(&root, &before, "alice", "Start#Pass1");

    // Root is not held back.
    root_sets(&root, "alice", "Root#Set22").success();
    let hash = root.shadow_field("alice", 2);

    // The boundary: changed `min` days ago.
    root.set_shadow_entry("alice", &hash, &(today() - 2).to_string());
    user_sets(&root, 1000, "Root#Set22", "Next#Pass2").success();
    back_to_root(&root);
    assert_eq!(root.verify("alice", "Next#Pass2"), 0);
    assert_eq!(root.shadow_field("alice", 3), today().to_string());
}

#[test]
fn the_minimum_age_never_blocks_an_expired_or_forced_change() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("min_age_days = 1\nmax_age_days = 60"))
        .build();
    // Expired: changed 61 days ago with a maximum of 60, minimum 1 in field 4.
    root_sets(&root, "alice", "Start#Pass1").success();
    let hash = root.shadow_field("alice", 2);
    root.set_shadow_entry("alice", &hash, &(today() - 61).to_string());
    user_sets(&root, 1000, "Start#Pass1", "Next#Pass2").success();
    back_to_root(&root);

    // Forced: field 3 = 0.
    root.run(
        &["passwd", "alice", "--stdin", "--expire"],
        "Forced#Pass3\n",
    )
    .success();
    assert_eq!(root.shadow_field("alice", 3), "0");
    assert_eq!(root.shadow_field("alice", 4), "1");
    user_sets(&root, 1000, "Forced#Pass3", "Mine#Pass44").success();
    back_to_root(&root);
    assert_eq!(root.verify("alice", "Mine#Pass44"), 0);
}

#[test]
fn the_minimum_age_off_lets_a_user_change_again_at_once() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only(""))
        .build();
    // No minimum: field 4 is 0.
    root_sets(&root, "alice", "Start#Pass1").success();
    assert_eq!(root.shadow_field("alice", 4), "0");
    user_sets(&root, 1000, "Start#Pass1", "Next#Pass2").success();
}

// ---- --force ---------------------------------------------------------------------------

#[test]
fn root_may_force_a_password_the_policy_refuses() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .user("bob", "Bob#Pass1")
        .config(&only("min_length = 8\nreject_username = true"))
        .build();
    let out = root
        .run(&["passwd", "alice", "--stdin", "--force"], "alice\n")
        .success();
    let err = stderr_of(&out);
    assert!(
        err.contains(
            "credsync: warning: the new password must be at least 8 characters long; it has 5; \
             set anyway (--force)"
        ),
        "{err}"
    );
    assert!(
        err.contains("credsync: warning: the new password must not contain the user name; set anyway (--force)"),
        "{err}"
    );
    assert_eq!(root.verify("alice", "alice"), 0);
    assert!(linux_accepts(&root, "alice", "alice"));

    let out = root
        .run(&["recover", "bob", "--stdin", "--force"], "b0b\n")
        .success();
    assert!(stderr_of(&out).contains("set anyway (--force)"));
    assert_eq!(root.verify("bob", "b0b"), 0);

    // A password that passes needs no --force and gets no warning.
    let out = root
        .run(&["passwd", "bob", "--stdin", "--force"], "Fine#Pass1\n")
        .success();
    assert_eq!(stderr_of(&out), "");
}

#[test]
fn a_user_may_not_force() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("min_length = 8"))
        .build();
    root_sets(&root, "alice", "Start#Pass1").success();
    let before = snapshot(&root);
    let out = root.run_as(
        1000,
        &["passwd", "--stdin", "--force"],
        "Start#Pass1\nshort\n",
    );
    assert_eq!(code_of(&out), 1);
    assert!(
        stderr_of(&out)
            .contains("only root may force a password change or override the password policy"),
        "{}",
        stderr_of(&out)
    );
    back_to_root(&root);
    assert_unchanged(&root, &before, "alice", "Start#Pass1");
}

// ---- import ----------------------------------------------------------------------------

#[test]
fn import_refuses_a_batch_naming_each_bad_line_and_force_sets_it() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .user("bob", "Bob#Pass1")
        .user("carol", "Carol#Pass1")
        .config(&only("min_length = 8\nmin_classes = 3"))
        .build();
    root.run(
        &["import"],
        "alice:Start#Pass1\nbob:Start#Pass2\ncarol:Start#Pass3\n",
    )
    .success();
    let before = snapshot(&root);
    let batch = "alice:Good#Pass1\n\nbob:short\ncarol:lowercaseonly\n";
    let out = root.run(&["import"], batch);
    let err = refused_by_policy(&out, "");
    assert_eq!(
        err,
        "credsync: the batch breaks the password policy: \
         line 3 ('bob'): the new password must be at least 8 characters long; it has 5, \
         the new password must mix at least 3 of lower case, upper case, digits and other characters; it has 1; \
         line 4 ('carol'): the new password must mix at least 3 of lower case, upper case, digits and other characters; it has 1; \
         nothing was changed (root may set it anyway with --force)\n"
    );
    for (user, old) in [
        ("alice", "Start#Pass1"),
        ("bob", "Start#Pass2"),
        ("carol", "Start#Pass3"),
    ] {
        assert_unchanged(&root, &before, user, old);
    }

    let out = root.run(&["import", "--force"], batch).success();
    let err = stderr_of(&out);
    assert!(
        err.contains(
            "credsync: warning: line 3 ('bob'): the new password must be at least 8 characters long; \
             it has 5; set anyway (--force)"
        ),
        "{err}"
    );
    assert_eq!(root.verify("bob", "short"), 0);
    assert_eq!(root.verify("carol", "lowercaseonly"), 0);
    assert_eq!(root.verify("alice", "Good#Pass1"), 0);
}

#[test]
fn import_checks_quality_but_not_history() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("history = 5\nmin_length = 8"))
        .build();
    root_sets(&root, "alice", "Start#Pass1").success();
    // The current password again: a batch provisions, history is not checked.
    root.run(&["import"], "alice:Start#Pass1\n").success();
    assert_eq!(root.status_json()[0]["session_epoch"], 2);
}

// ---- three tries on a terminal (`on_terminal`: tests/cli.rs) -------------------------

#[test]
fn on_a_terminal_a_refused_password_is_asked_again() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("min_length = 8"))
        .build();
    let out = on_terminal(
        &root,
        "passwd alice",
        "short\nshort\nGood#Pass1\nGood#Pass1\n",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches(
            "credsync: BAD PASSWORD: the new password must be at least 8 characters long; it has 5"
        )
        .count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("Enter a new password:").count(), 2, "{text}");
    assert!(text.contains("Password updated successfully"), "{text}");
    assert_eq!(root.verify("alice", "Good#Pass1"), 0);
}

#[test]
fn on_a_terminal_three_refused_passwords_change_nothing() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("min_length = 8"))
        .build();
    root_sets(&root, "alice", "Start#Pass1").success();
    let before = snapshot(&root);
    let out = on_terminal(
        &root,
        "passwd alice",
        "one\none\ntwo2\ntwo2\nthree\nthree\nGood#Pass1\nGood#Pass1\n",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(POLICY), "{text}");
    assert!(text.contains("exit=8"), "{text}");
    assert_eq!(text.matches("BAD PASSWORD:").count(), 2, "{text}");
    assert!(
        text.contains(
            "BAD PASSWORD: the new password must be at least 8 characters long; it has 3"
        )
    );
    assert!(
        text.contains(
            "BAD PASSWORD: the new password must be at least 8 characters long; it has 4"
        )
    );
    assert_eq!(text.matches("Enter a new password:").count(), 3, "{text}");
    assert!(
        text.contains(
            "credsync: the new password for 'alice' breaks the password policy: \
             the new password must be at least 8 characters long; it has 5; nothing was changed"
        ),
        "{text}"
    );
    assert_unchanged(&root, &before, "alice", "Start#Pass1");
}

#[test]
fn with_stdin_a_refused_password_is_not_asked_again() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&only("min_length = 8"))
        .build();
    root_sets(&root, "alice", "Start#Pass1").success();
    let before = snapshot(&root);
    let out = root.run(&["passwd", "alice", "--stdin"], "short\nGood#Pass1\n");
    refused_by_policy(&out, "");
    assert!(!stderr_of(&out).contains("BAD PASSWORD"));
    assert_unchanged(&root, &before, "alice", "Start#Pass1");
}
