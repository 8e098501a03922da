//! The pure hashing time scripts/bench.sh divides credsync's times by: a
//! batch's two hashes per user (crypt for Linux, Argon2id for the record)
//! split evenly over `--threads` threads, with nothing else — no files, no
//! database, no process start; and the time of one hash of each kind on one
//! thread. Prints `key=seconds` lines, each the median of `--reps` runs.
//!
//! `cargo bench --bench hash_floor -- --users 1000 --memory-kib 19456
//!  --iterations 2 --parallelism 1 --method yescrypt --threads 2 --reps 3`

use credsync_core::secret::Password;
use credsync_core::store::app_hash::{AppHasher, Argon2Cost};
use credsync_core::system::crypt::{self, Algorithm, HashMethod};
use std::time::Instant;

struct Args {
    users: usize,
    cost: Argon2Cost,
    method: HashMethod,
    threads: usize,
    reps: usize,
}

fn parse() -> Args {
    let mut args = Args {
        users: 1000,
        cost: Argon2Cost::default(),
        method: HashMethod {
            algorithm: Algorithm::Yescrypt,
            rounds: None,
        },
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        reps: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            continue; // what `cargo bench` adds
        }
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let number = || {
            value
                .parse::<u32>()
                .unwrap_or_else(|_| panic!("{flag} {value}"))
        };
        match flag.as_str() {
            "--users" => args.users = number() as usize,
            "--memory-kib" => args.cost.memory_kib = number(),
            "--iterations" => args.cost.iterations = number(),
            "--parallelism" => args.cost.parallelism = number(),
            "--method" => {
                args.method.algorithm =
                    Algorithm::from_name(&value).unwrap_or_else(|| panic!("method {value}"))
            }
            "--rounds" => args.method.rounds = Some(number()),
            "--threads" => args.threads = number() as usize,
            "--reps" => args.reps = number() as usize,
            _ => panic!("unknown argument {flag}"),
        }
    }
    args
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn password(i: usize) -> Password {
    Password::new(format!("Bench#{i:05}-floor").into_bytes()).unwrap()
}

/// Seconds to hash `users` passwords both ways on `threads` threads.
fn floor(args: &Args) -> f64 {
    let passwords: Vec<Password> = (0..args.users).map(password).collect();
    let per_thread = args.users.div_ceil(args.threads.max(1)).max(1);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for chunk in passwords.chunks(per_thread) {
            scope.spawn(move || {
                let mut hasher = AppHasher::new(&args.cost).unwrap();
                for pw in chunk {
                    crypt::hash_password(pw, &args.method).unwrap();
                    hasher.hash(pw).unwrap();
                }
            });
        }
    });
    start.elapsed().as_secs_f64()
}

fn single(args: &Args) -> (f64, f64, f64) {
    let pw = password(0);
    let t = Instant::now();
    let hash = crypt::hash_password(&pw, &args.method).unwrap();
    let crypt_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    assert!(crypt::verify(&pw, &hash));
    let check_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    args.cost.hash(&pw).unwrap();
    (crypt_s, check_s, t.elapsed().as_secs_f64())
}

fn main() {
    let args = parse();
    let reps = args.reps.max(1);
    let floors: Vec<f64> = (0..reps).map(|_| floor(&args)).collect();
    let singles: Vec<(f64, f64, f64)> = (0..reps.max(5)).map(|_| single(&args)).collect();
    println!("users={}", args.users);
    println!("threads={}", args.threads);
    println!("floor_s={:.6}", median(floors));
    println!(
        "crypt_hash_s={:.6}",
        median(singles.iter().map(|s| s.0).collect())
    );
    println!(
        "crypt_check_s={:.6}",
        median(singles.iter().map(|s| s.1).collect())
    );
    println!(
        "argon2_hash_s={:.6}",
        median(singles.iter().map(|s| s.2).collect())
    );
}
