//! `/etc/shadow` at 1,000 / 10,000 / 100,000 lines: parsing, looking a user
//! up, changing one entry and serialising the file, and the whole locked
//! read-and-replace a change does (with its fsyncs), on a temporary root.
//! `cargo bench --bench shadow`.

use credsync_core::account::UserName;
use credsync_core::system::Paths;
use credsync_core::system::crypt::LinuxHash;
use credsync_core::system::shadow::{LastChange, ShadowFile, ShadowLock};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

const HASH: &str = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7";

fn content(n: usize) -> Vec<u8> {
    let mut text = String::from("root:*:19000:0:99999:7:::\n");
    for i in 1..=n {
        text += &format!("op{i:06}:{HASH}:20000:0:99999:7:::\n");
    }
    text.into_bytes()
}

fn shadow(c: &mut Criterion) {
    let mut group = c.benchmark_group("shadow");
    group.sample_size(20);
    let new_hash = LinuxHash::from_field(&HASH.replace("X3D", "Y4E")).unwrap();
    for n in [1_000, 10_000, 100_000] {
        let raw = content(n);
        let last = UserName::parse(&format!("op{n:06}")).unwrap();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("parse", n), &raw, |b, raw| {
            b.iter(|| ShadowFile::parse(black_box(raw.clone())))
        });
        let file = ShadowFile::parse(raw.clone());
        group.bench_with_input(
            BenchmarkId::new("look up the last user", n),
            &file,
            |b, f| b.iter(|| f.entry(black_box(&last)).unwrap()),
        );
        group.bench_with_input(
            BenchmarkId::new("change one and serialise", n),
            &file,
            |b, f| {
                b.iter(|| {
                    let mut changed = f.clone();
                    changed.set_password(&last, &new_hash, LastChange::Day(20001));
                    changed.to_bytes()
                })
            },
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let paths = Paths::under(dir.path());
        std::fs::write(paths.shadow(), &raw).unwrap();
        group.bench_function(
            BenchmarkId::new("lock, read, change one, replace", n),
            |b| {
                let mut day = 20_000;
                b.iter(|| {
                    day += 1;
                    let lock = ShadowLock::acquire(&paths, Duration::from_secs(5)).unwrap();
                    let mut file = lock.read().unwrap();
                    file.set_password(&last, &new_hash, LastChange::Day(day));
                    lock.write(&mut file).unwrap();
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, shadow);
criterion_main!(benches);
