//! Fleet mode against a real etcd cluster (`fleet/etcd.rs`): three members on
//! 127.0.0.1, TLS everywhere, every client the etcd user its certificate's CN
//! names, with the roles the README gives operators.
//!
//! These tests need etcd, etcdctl and openssl (packages etcd-server,
//! etcd-client, openssl); without them they fail, loudly.

#[path = "fleet/appliances.rs"]
mod appliances;
#[path = "fleet/cases.rs"]
mod cases;
#[path = "fleet/etcd.rs"]
mod etcd;
// The `--root` fixtures the CLI tests use; the fleet tests need only some of it.
#[allow(dead_code)]
#[path = "fixture/mod.rs"]
mod fixture;

use etcd::{Cluster, shown};
use std::process::Output;
use std::time::{Duration, Instant};

/// etcdctl did `what`; returns what it printed.
#[track_caller]
fn assert_done(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: etcdctl failed ({})\n{}",
        out.status,
        shown(out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The server refused `what`: etcdctl failed and says why.
#[track_caller]
fn assert_denied(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("Error: etcdserver: permission denied"),
        "{what}: expected the server's permission denied, got {}\n{}",
        out.status,
        shown(out)
    );
}

#[test]
fn the_cluster_enforces_each_role() {
    let mut cluster = Cluster::start("lab", &["n1", "n10"]);
    let alice = "/credsync/lab/users/alice";

    let put = cluster.etcdctl("conductor", &["put", alice, "desired-1"]);
    assert_done(&put, "the conductor writes alice's desired state");
    let get = cluster.etcdctl("node-n1", &["get", alice, "--print-value-only"]);
    assert_eq!(assert_done(&get, "node n1 reads it"), "desired-1\n");
    let put = cluster.etcdctl("node-n1", &["put", alice, "forged"]);
    assert_denied(&put, "node n1 writes alice's desired state");

    let put = cluster.etcdctl("node-n1", &["put", "/credsync/lab/nodes/n1/report", "ok"]);
    assert_done(&put, "node n1 writes its own report");
    let put = cluster.etcdctl(
        "node-n1",
        &["put", "/credsync/lab/nodes/n10/report", "forged"],
    );
    assert_denied(&put, "node n1 writes node n10's report");

    cluster.new_identity("stranger");
    let get = cluster.etcdctl("stranger", &["get", alice]);
    assert_denied(&get, "a certificate from the CA whose CN is no user reads");
    let put = cluster.etcdctl("stranger", &["put", alice, "forged"]);
    assert_denied(&put, "a certificate from the CA whose CN is no user writes");

    let get = cluster.etcdctl("conductor", &["get", alice, "--print-value-only"]);
    assert_eq!(
        assert_done(&get, "the conductor reads alice's state"),
        "desired-1\n",
        "a refused write changed the desired state"
    );

    // Two members of three still commit, once they have a leader: if member 1
    // led, a write fails until the other two elect one (etcd's election
    // timeout, 1 s).
    cluster.kill(1);
    assert_eq!(cluster.endpoints().len(), 2);
    let deadline = Instant::now() + Duration::from_secs(15);
    let put = loop {
        let put = cluster.etcdctl(
            "conductor",
            &["put", alice, "desired-2", "--command-timeout=2s"],
        );
        if put.status.success() || Instant::now() > deadline {
            break put;
        }
    };
    assert_done(&put, "the conductor writes with member 1 down");
    cluster.restart(1);
    let get = cluster.etcdctl("node-n10", &["get", alice, "--print-value-only"]);
    assert_eq!(
        assert_done(&get, "node n10 reads after member 1's restart"),
        "desired-2\n"
    );
}
