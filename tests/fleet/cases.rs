//! Fleet mode end to end: a conductor, nodes with their own agents, and a
//! real 3-member etcd cluster with TLS and roles.

use super::appliances::{FIRST, Fleet};
use credsync_core::account::UserName;
use credsync_core::system::crypt::LinuxHash;
use credsync_core::system::shadow::Aging;
use credsync_fleet::conductor::read_signing_key;
use credsync_fleet::entry::Entry;
use std::time::{Duration, Instant};

const SECOND: &str = "Fleet#Bravo-2026";
const LOCAL: &str = "Local#Change-77";
const CONVERGE: Duration = Duration::from_secs(20);

fn names(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("n{i}")).collect()
}

fn refs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

/// One `fleet set` reaches both stores of five nodes; with one etcd member
/// of three killed mid-stream, the next one does too.
#[test]
fn one_set_reaches_both_stores_of_every_node_even_with_a_member_down() {
    let mut fleet = Fleet::new("reach", 5, &[]);
    fleet.start_all();
    let all = names(5);
    let said = fleet.set("admin", FIRST);
    assert!(said.contains("admin is now version 1"), "{said}");
    fleet.wait_in_step("admin", 1, &refs(&all), CONVERGE);
    for node in &fleet.nodes {
        assert!(
            node.accepts("admin", FIRST),
            "{}: the fleet's password",
            node.name
        );
        assert!(
            !node.accepts("admin", "Old#Admin-1"),
            "{}: the old password",
            node.name
        );
        let (_, _, source, version) = node.record("admin");
        assert_eq!(
            (source.as_str(), version),
            ("fleet", Some(1)),
            "{}",
            node.name
        );
        assert!(
            node.linux_accepts("alice", "Old#Alice-1"),
            "{}: alice is untouched",
            node.name
        );
    }
    let text = fleet.conduct(&["status"], "");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("admin: version 1") && text.matches("in step").count() == 5,
        "{text}"
    );

    fleet.cluster.kill(0);
    let deadline = Instant::now() + CONVERGE;
    loop {
        let out = fleet.conduct(&["set", "admin", "--stdin"], &format!("{SECOND}\n"));
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no set with a member down: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    fleet.wait_in_step("admin", 2, &refs(&all), CONVERGE);
    for node in &fleet.nodes {
        assert!(
            node.accepts("admin", SECOND),
            "{}: after the member died",
            node.name
        );
    }
    fleet.cluster.restart(0);

    // `fleet import`: a batch is published whole, or not at all.
    let out = fleet.conduct(&["import"], "admin:Import#Admin-3\nalice-no-colon\n");
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: expected user:password"));
    let out = fleet.conduct(&["import"], "admin:Import#Admin-3\nalice:Import#Alice-1\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fleet.wait_in_step("admin", 3, &refs(&all), CONVERGE);
    fleet.wait_in_step("alice", 1, &refs(&all), CONVERGE);
    for node in &fleet.nodes {
        assert!(
            node.accepts("admin", "Import#Admin-3"),
            "{}: import",
            node.name
        );
        assert!(
            node.accepts("alice", "Import#Alice-1"),
            "{}: import",
            node.name
        );
    }
}

/// Two agents stopped through three changes catch up to the last one only:
/// one change to their stores (one session epoch), not three. A stopped
/// node's report lapses with its lease and `status` calls it silent.
#[test]
fn stopped_agents_catch_up_to_the_last_version_only() {
    let mut fleet = Fleet::new("catchup", 3, &[]);
    fleet.start_all();
    fleet.set("admin", FIRST);
    fleet.wait_in_step("admin", 1, &["n1", "n2", "n3"], CONVERGE);
    fleet.node("n2").stop();
    fleet.node("n3").stop();
    let epoch_before = fleet.node("n2").record("admin").1;
    let passwords = ["Third#Pass-301", "Fourth#Pass-401", "Fifth#Pass-501"];
    for password in passwords {
        fleet.set("admin", password);
    }
    fleet.wait_in_step("admin", 4, &["n1"], CONVERGE);
    let deadline = Instant::now() + CONVERGE;
    while fleet.standing("admin", "n2").map(|s| s.0) != Some("silent".into()) {
        assert!(
            Instant::now() < deadline,
            "n2 never went silent: {:?}",
            fleet.standing("admin", "n2")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, applied, detail) = fleet.standing("admin", "n2").unwrap();
    assert!(applied == 0 && detail.starts_with("since "), "{detail}");

    fleet.node("n2").start();
    fleet.node("n3").start();
    fleet.wait_in_step("admin", 4, &["n1", "n2", "n3"], CONVERGE);
    for name in ["n2", "n3"] {
        let node = fleet.node(name);
        assert!(node.accepts("admin", "Fifth#Pass-501"), "{name}");
        let (_, epoch, _, version) = node.record("admin");
        assert_eq!(version, Some(4), "{name}");
        assert_eq!(
            epoch,
            epoch_before + 1,
            "{name} applied one change, not three"
        );
        assert!(
            node.log().matches("applied version").count() == 2,
            "{name}: {}",
            node.log()
        );
    }
}

/// Entries written with etcd's administrator credential, past every role
/// check, are refused by the nodes and reported: unsigned, forged (another
/// key), replayed (an older version) and hashed with a method this libcrypt
/// lacks. The stores keep what they hold; the next real `set` wins.
#[test]
fn forged_unsigned_replayed_and_wrong_method_entries_are_refused_and_reported() {
    let mut fleet = Fleet::new("attack", 2, &[]);
    fleet.start_all();
    fleet.set("admin", FIRST);
    fleet.wait_in_step("admin", 1, &["n1", "n2"], CONVERGE);
    let first = fleet.cluster.etcdctl(
        "root",
        &["get", "/credsync/attack/users/admin", "--print-value-only"],
    );
    let version_one = String::from_utf8(first.stdout)
        .unwrap()
        .trim_end()
        .to_owned();
    fleet.set("admin", SECOND);
    fleet.wait_in_step("admin", 2, &["n1", "n2"], CONVERGE);
    let shadow_before = fleet.nodes[0].root.shadow();

    let key = read_signing_key(
        &fleet
            .conductor
            .path()
            .join("etc/credsync/fleet/signing.key"),
    )
    .unwrap();
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let entry = |version: u64, crypt: &str| Entry {
        fleet: "attack".into(),
        user: UserName::parse("admin").unwrap(),
        version,
        crypt: LinuxHash::from_field(crypt).unwrap(),
        argon2id: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        must_change: false,
        aging: Aging::default(),
        set_at: 0,
        set_by: "mallory".into(),
    };
    let attacker_hash = super::fixture::linux_hash("Mallory#Owns-1");
    for (value, why) in [
        (
            format!("admin:{attacker_hash}"),
            "unsigned or malformed entry",
        ),
        (entry(9, &attacker_hash).sign(&stranger), "bad signature"),
        (
            version_one.clone(),
            "replayed: version 1 is not newer than version 2",
        ),
        (entry(9, "$9z$salt$hash").sign(&key), "libcrypt can verify"),
    ] {
        let put = fleet
            .cluster
            .etcdctl("root", &["put", "/credsync/attack/users/admin", &value]);
        assert!(
            put.status.success(),
            "{}",
            String::from_utf8_lossy(&put.stderr)
        );
        let deadline = Instant::now() + CONVERGE;
        loop {
            let standing = fleet.standing("admin", "n1");
            if standing.as_ref().is_some_and(|(state, applied, detail)| {
                state == "failed" && *applied == 2 && detail.contains(why)
            }) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{why}: {standing:?}\n{}",
                fleet.nodes[0].log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(fleet.nodes[0].root.shadow(), shadow_before, "{why}");
        assert!(fleet.nodes[1].accepts("admin", SECOND), "{why}");
        assert!(
            fleet.nodes[1].log().contains(why),
            "{why}: {}",
            fleet.nodes[1].log()
        );
    }
    // The conductor replaces what no fleet key signed, above every version
    // a node holds.
    let said = fleet.set("admin", FIRST);
    assert!(said.contains("admin is now version 3"), "{said}");
    fleet.wait_in_step("admin", 3, &["n1", "n2"], CONVERGE);
    assert!(fleet.nodes[0].accepts("admin", FIRST));

    // A node's own credential may not write desired state: etcd refuses it.
    let put = fleet.cluster.etcdctl(
        "node-n1",
        &["put", "/credsync/attack/users/admin", &version_one],
    );
    assert!(
        !put.status.success() && String::from_utf8_lossy(&put.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
}

/// Two conductors racing on one user: each compares the key's
/// `mod_revision` in its transaction, so when both read the same revision
/// one wins and the other is told who changed it, and retries.
#[test]
fn racing_conductors_get_one_winner_and_the_documented_error() {
    let fleet = Fleet::new("race", 1, &[]);
    let mut conflicts = 0;
    for round in 0..30 {
        let spawn = |password: &str| {
            fleet.start_conducting(&["set", "admin", "--stdin"], &format!("{password}\n"))
        };
        let (a, b) = (spawn(FIRST), spawn(SECOND));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        match (a.status.code(), b.status.code()) {
            (Some(0), Some(0)) => {}
            (Some(0), Some(5)) | (Some(5), Some(0)) => {
                conflicts += 1;
                let loser = if a.status.success() { &b } else { &a };
                let said = String::from_utf8_lossy(&loser.stderr);
                assert!(
                    said.contains("changed by root at ")
                        && said.contains("nothing was published: retry"),
                    "round {round}: {said}"
                );
            }
            other => panic!(
                "round {round}: {other:?}\n{}\n{}",
                String::from_utf8_lossy(&a.stderr),
                String::from_utf8_lossy(&b.stderr)
            ),
        }
        if conflicts >= 3 {
            break;
        }
    }
    assert!(
        conflicts >= 1,
        "30 rounds of two conductors at once and never a conflict"
    );
    let status = fleet.status();
    assert!(status[0]["version"].as_u64().unwrap() >= 2);
}

/// kill -9 of the agent at random moments of its work, 100 times: after
/// each, shadow and the record agree (or an intent the next lock finishes
/// says how far the change got), and once the agent runs again its report
/// is the version both stores hold.
#[test]
fn kill_9_during_apply_leaves_no_split_and_a_true_report() {
    let mut fleet = Fleet::new("kill", 1, &[]);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut last = String::new();
    for round in 1..=100u64 {
        last = format!("Round#{round}-Pass");
        fleet.set("admin", &last);
        let node = fleet.node("n1");
        node.start();
        std::thread::sleep(Duration::from_millis(next() % 250));
        node.kill9();
        let db = rusqlite::Connection::open(node.path().join("var/lib/credsync/credsync.db")).ok();
        let pending: i64 = db
            .as_ref()
            .and_then(|db| {
                db.query_row("SELECT count(*) FROM intent", [], |r| r.get(0))
                    .ok()
            })
            .unwrap_or(0);
        let shadow = node.shadow_hash("admin");
        let recorded: Option<String> = db.as_ref().and_then(|db| {
            db.query_row(
                "SELECT linux_hash FROM record WHERE user = 'admin'",
                [],
                |r| r.get(0),
            )
            .ok()
        });
        if pending == 0
            && let Some(recorded) = recorded
        {
            assert_eq!(shadow.as_str(), recorded, "round {round}: a split");
        }
        if round % 20 == 0 {
            node.start();
            fleet.wait_in_step("admin", round, &["n1"], CONVERGE);
            let node = fleet.node("n1");
            assert!(node.accepts("admin", &last), "round {round}");
            let (hash, _, _, version) = node.record("admin");
            assert_eq!(hash, node.shadow_hash("admin").as_str());
            assert_eq!(version, Some(round as i64));
            node.stop();
        }
    }
    assert!(fleet.node("n1").accepts("admin", &last));
}

/// A local change to a fleet-managed user is drift: reported under both
/// policies. A reconcile from the conductor re-applies it where the fleet
/// wins; where the node's policy is `report_only` the local password stays
/// until a reconcile on the node itself.
#[test]
fn a_local_change_is_drift_and_each_policy_answers_it() {
    let mut fleet = Fleet::new("drift", 2, &["n2"]);
    fleet.start_all();
    fleet.set("admin", FIRST);
    fleet.wait_in_step("admin", 1, &["n1", "n2"], CONVERGE);
    for node in &fleet.nodes {
        node.root
            .run(&["passwd", "admin", "--stdin"], &format!("{LOCAL}\n"))
            .success();
    }
    let deadline = Instant::now() + CONVERGE;
    for node in ["n1", "n2"] {
        loop {
            let standing = fleet.standing("admin", node);
            if standing
                .as_ref()
                .is_some_and(|(s, _, d)| s == "drift" && d.contains("passwd by root"))
            {
                break;
            }
            assert!(Instant::now() < deadline, "{node}: {standing:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let out = fleet.conduct(&["reconcile", "admin"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fleet.wait_in_step("admin", 2, &["n1"], CONVERGE);
    assert!(
        fleet.nodes[0].accepts("admin", FIRST),
        "fleet_wins: the fleet's password again"
    );
    std::thread::sleep(Duration::from_secs(2));
    let (state, applied, _) = fleet.standing("admin", "n2").unwrap();
    assert_eq!(
        (state.as_str(), applied),
        ("drift", 1),
        "report_only keeps the local change"
    );
    assert!(fleet.nodes[1].accepts("admin", LOCAL));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_credsync"))
        .arg("--root")
        .arg(fleet.nodes[1].path())
        .args(["fleet", "reconcile"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied the fleet's password to admin"));
    fleet.wait_in_step("admin", 2, &["n2"], CONVERGE);
    assert!(fleet.nodes[1].accepts("admin", FIRST));
}
