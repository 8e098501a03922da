//! `sync` with nothing drifted, over 1,000 / 10,000 / 100,000 managed
//! accounts, in process: the store's page check (`PRAGMA quick_check`), reading
//! every record, and comparing them with shadow (`reconcile::survey`); then
//! the whole locked `sync` (`Stores::lock` + `reconcile::sync`), which must
//! write nothing. `cargo bench --bench records`.

use credsync_core::account::UserName;
use credsync_core::clock::Now;
use credsync_core::config::Config;
use credsync_core::reconcile::{self, Drift};
use credsync_core::store::{Intent, Provenance, Source, Store};
use credsync_core::stores::Stores;
use credsync_core::system::Paths;
use credsync_core::system::crypt::LinuxHash;
use credsync_core::system::shadow::ShadowFile;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rusqlite::OpenFlags;

const DAY: i64 = 20_000;

fn hash(i: usize, tag: &str) -> LinuxHash {
    LinuxHash::from_field(&format!(
        "$y$j9T${i:022}${tag}X6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7"
    ))
    .unwrap()
}

/// A root with `n` accounts, all managed and in sync.
fn root(n: usize) -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    let paths = Paths::under(dir.path());
    let mut shadow = String::from("root:*:19000:0:99999:7:::\n");
    let intents: Vec<Intent> = (1..=n)
        .map(|i| {
            let user = format!("op{i:06}");
            shadow += &format!("{user}:{}:{DAY}:0:99999:7:::\n", hash(i, "new").as_str());
            Intent {
                user: UserName::parse(&user).unwrap(),
                old_linux: hash(i, "old"),
                new_linux: hash(i, "new"),
                app_hash: Some(format!("$argon2id$v=19$m=19456,t=2,p=1$salt{i:018}$hash")),
                provenance: Provenance {
                    at: Now::at(DAY * 86_400),
                    by: "root".into(),
                    source: Source::Import,
                    auid: None,
                },
                must_change: false,
                fleet: None,
            }
        })
        .collect();
    std::fs::write(paths.shadow(), shadow).unwrap();
    let owner = nix::unistd::geteuid().as_raw();
    Store::open(&paths.store_dir(), owner)
        .unwrap()
        .complete_intents(&intents)
        .unwrap();
    (dir, paths)
}

fn no_drift(c: &mut Criterion) {
    let owner = nix::unistd::geteuid().as_raw();
    let config = Config::default();
    let mut group = c.benchmark_group("sync without drift");
    group.sample_size(10);
    for n in [1_000, 10_000, 100_000] {
        let (_dir, paths) = root(n);
        let shadow = ShadowFile::parse(std::fs::read(paths.shadow()).unwrap());
        // `Store` checks every page once per process and file, so a second
        // open here would skip it: measure the check itself.
        let db = paths.store_dir().join("credsync.db");
        group.bench_function(BenchmarkId::new("page check", n), |b| {
            b.iter(|| {
                let conn =
                    rusqlite::Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
                        .unwrap();
                let verdict: String = conn
                    .query_row("PRAGMA quick_check", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(verdict, "ok");
            })
        });
        let store = Store::open_existing(&paths.store_dir(), owner)
            .unwrap()
            .unwrap();
        group.bench_function(BenchmarkId::new("read every record", n), |b| {
            b.iter(|| store.records().unwrap())
        });
        group.bench_function(BenchmarkId::new("survey", n), |b| {
            b.iter(|| {
                let found = reconcile::survey(Some(&store), &shadow, None).unwrap();
                assert!(found.iter().all(|(_, d)| *d == Drift::InSync));
                found
            })
        });
        group.bench_function(BenchmarkId::new("lock and sync", n), |b| {
            b.iter(|| {
                let mut stores = Stores::lock(&paths, &config, owner).unwrap();
                reconcile::sync(&mut stores, Now::at((DAY + 1) * 86_400)).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, no_drift);
criterion_main!(benches);
