//! An independent varlink implementation against credsyncd: zlink's client
//! (z-galaxy) reads the service's description through
//! `org.varlink.service`, and zlink's IDL parser takes the interface credsyncd
//! serves — which is the file the packages ship — with every method the
//! contract names. (The namespace tests call every method with Python's
//! standard library; this checks the wire and the IDL against a second,
//! strict implementation.)

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use zlink::varlink_service::Proxy;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// credsyncd on an empty `--root` (no account is needed to describe it).
fn start(root: &Path) -> (Daemon, std::path::PathBuf) {
    std::fs::create_dir_all(root.join("etc/credsync")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(root.join("etc/shadow"), "root:*:20000:0:99999:7:::\n").unwrap();
    std::fs::write(
        root.join("etc/credsync/credsync.toml"),
        "[api]\nexit_idle_secs = 0\n",
    )
    .unwrap();
    let socket = root.join("api.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_credsyncd"))
        .arg("--root")
        .arg(root)
        .arg("--listen")
        .arg(&socket)
        .spawn()
        .expect("start credsyncd");
    let daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "credsyncd did not bind its socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (daemon, socket)
}

#[tokio::test]
async fn zlink_reads_the_service_and_parses_the_interface_it_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let (_daemon, socket) = start(tmp.path());
    let mut conn = zlink::tokio::unix::connect(&socket).await.expect("connect");

    let info = conn
        .owned_get_info()
        .await
        .expect("GetInfo on the wire")
        .expect("GetInfo answered");
    let interfaces: Vec<String> = info
        .inner()
        .interfaces
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(
        interfaces,
        ["org.varlink.service", "io.credsync.Credentials"]
    );
    assert_eq!(info.inner().product, "credsyncd");

    let described = conn
        .owned_get_interface_description("io.credsync.Credentials".try_into().unwrap())
        .await
        .expect("GetInterfaceDescription on the wire")
        .expect("GetInterfaceDescription answered");
    let shipped = include_str!("../io.credsync.Credentials.varlink");
    assert_eq!(
        described.as_raw(),
        Some(shipped),
        "the service serves the shipped IDL"
    );
    let interface = described.parse().expect("zlink's parser takes the IDL");
    assert_eq!(interface.name().to_string(), "io.credsync.Credentials");
    let mut methods: Vec<String> = interface.methods().map(|m| m.name().to_string()).collect();
    methods.sort();
    assert_eq!(
        methods,
        [
            "ChangePassword",
            "GetStatus",
            "Monitor",
            "SetPassword",
            "Verify"
        ]
    );

    // zlink hands varlink's own errors back as its `VarlinkService` error.
    match conn
        .owned_get_interface_description("org.example.Nothing".try_into().unwrap())
        .await
    {
        Err(zlink::Error::VarlinkService(e)) => {
            assert!(format!("{e:?}").contains("InterfaceNotFound"), "{e:?}")
        }
        other => panic!("an unknown interface: {other:?}"),
    }
}
