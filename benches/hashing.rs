//! The two hashes of a change, one password at a time: the Argon2id hash
//! with a fresh work area per password (`Argon2Cost::hash`, what a single
//! change does) and with one reused (`AppHasher`, what each thread of a batch
//! does), at the minimum and the default cost; and libcrypt's yescrypt, to
//! hash and to check. `cargo bench --bench hashing`.

use credsync_core::secret::Password;
use credsync_core::store::app_hash::{AppHasher, Argon2Cost};
use credsync_core::system::crypt::{self, Algorithm, HashMethod};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn password() -> Password {
    Password::new(b"Bench#pass-000123".to_vec()).unwrap()
}

/// credsync's `main` fixes glibc's mmap threshold at 1 MiB
/// (`system::privilege`), so each fresh work area is a new mapping that the
/// kernel zero-fills and faults in; without it glibc would recycle the first
/// area from its heap and hide that cost.
fn as_credsync_allocates() {
    // SAFETY: mallopt only sets an allocator parameter, before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn argon2(c: &mut Criterion) {
    as_credsync_allocates();
    let minimum = Argon2Cost {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(20);
    for (name, cost) in [("minimum", minimum), ("default", Argon2Cost::default())] {
        let pw = password();
        group.bench_function(format!("{name}/fresh work area"), |b| {
            b.iter(|| cost.hash(black_box(&pw)).unwrap())
        });
        let mut hasher = AppHasher::new(&cost).unwrap();
        group.bench_function(format!("{name}/reused work area"), |b| {
            b.iter(|| hasher.hash(black_box(&pw)).unwrap())
        });
    }
    group.finish();
}

fn yescrypt(c: &mut Criterion) {
    let method = HashMethod {
        algorithm: Algorithm::Yescrypt,
        rounds: None,
    };
    let pw = password();
    let hash = crypt::hash_password(&pw, &method).unwrap();
    let mut group = c.benchmark_group("yescrypt");
    group.sample_size(20);
    group.bench_function("hash", |b| {
        b.iter(|| crypt::hash_password(black_box(&pw), &method).unwrap())
    });
    group.bench_function("check", |b| b.iter(|| crypt::verify(black_box(&pw), &hash)));
    group.finish();
}

criterion_group!(benches, argon2, yescrypt);
criterion_main!(benches);
