//! A load client for credsyncd, for `scripts/bench.sh` (section 5). Plain
//! blocking sockets and threads, one connection per client, so that what is
//! measured is the service.
//!
//!   api_load verify SOCKET USER PASSWORD_FILE CLIENTS CALLS_PER_CLIENT
//!       prints calls, seconds, throughput (calls/s), p50_ms, p99_ms; every
//!       reply must be {"result": "ok"}
//!   api_load set SOCKET USER PASSWORD_FILE ROUNDS
//!       SetPassword ROUNDS times (root); prints p50_ms and min_ms of one call
//!   api_load floor PASSWORD_FILE ROUNDS
//!       the Argon2id floor of one Verify, in process and on one thread: the
//!       default cost's hash of the password, checked ROUNDS times as Verify
//!       checks it; prints verify_ms (the median)
//!   api_load events SOCKET USER PASSWORD_FILE ROUNDS [COMMAND...]
//!       with a Monitor stream open, makes ROUNDS changes — through the
//!       service (SetPassword), or by running COMMAND (another process, e.g.
//!       `credsync --root DIR recover USER --stdin --force` with the password
//!       on its stdin) — and prints p50_ms and max_ms from each change's reply
//!       (or the command's exit) to its event's arrival
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Client {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    fn connect(socket: &str) -> Client {
        let stream =
            UnixStream::connect(socket).unwrap_or_else(|e| panic!("connect {socket}: {e}"));
        Client {
            writer: stream.try_clone().expect("clone the socket"),
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, method: &str, parameters: Value, more: bool) {
        let mut message = serde_json::to_vec(&json!({
            "method": format!("io.credsync.Credentials.{method}"),
            "parameters": parameters,
            "more": more,
        }))
        .expect("encode");
        message.push(0);
        self.writer.write_all(&message).expect("send");
    }

    fn receive(&mut self) -> Value {
        let mut bytes = Vec::new();
        self.reader.read_until(0, &mut bytes).expect("receive");
        assert_eq!(bytes.pop(), Some(0), "the service closed the connection");
        serde_json::from_slice(&bytes).expect("a JSON reply")
    }

    fn call(&mut self, method: &str, parameters: Value) -> Value {
        self.send(method, parameters, false);
        self.receive()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn verify(socket: &str, user: &str, password: &str, clients: usize, calls: usize) {
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (socket, user, password) =
                (socket.to_owned(), user.to_owned(), password.to_owned());
            std::thread::spawn(move || {
                let mut client = Client::connect(&socket);
                (0..calls)
                    .map(|_| {
                        let began = Instant::now();
                        let reply =
                            client.call("Verify", json!({ "user": user, "password": password }));
                        assert_eq!(reply["parameters"]["result"], "ok", "{reply}");
                        began.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client failed"))
        .collect();
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort();
    println!("calls={}", latencies.len());
    println!("seconds={seconds}");
    println!("throughput={}", latencies.len() as f64 / seconds);
    println!("p50_ms={}", percentile(&latencies, 0.5));
    println!("p99_ms={}", percentile(&latencies, 0.99));
}

/// Passwords that differ from each other (so no history rule is broken).
fn password_for(base: &str, round: usize) -> String {
    format!("{base}-{round}x")
}

fn set(socket: &str, user: &str, base: &str, rounds: usize) {
    let mut client = Client::connect(socket);
    let mut times: Vec<Duration> = (0..rounds)
        .map(|round| {
            let began = Instant::now();
            let reply = client.call(
                "SetPassword",
                json!({ "user": user, "password": password_for(base, round), "expire": false, "force": true }),
            );
            assert!(reply["parameters"]["session_epoch"].is_i64(), "{reply}");
            began.elapsed()
        })
        .collect();
    times.sort();
    println!("p50_ms={}", percentile(&times, 0.5));
    println!("min_ms={}", times[0].as_secs_f64() * 1000.0);
}

fn events(socket: &str, user: &str, base: &str, rounds: usize, command: &[String]) {
    let (arrived, arrivals) = mpsc::channel();
    let mut monitor = Client::connect(socket);
    monitor.send("Monitor", json!({ "initial": false }), true);
    let watched = user.to_owned();
    std::thread::spawn(move || {
        loop {
            let reply = monitor.receive();
            if reply["parameters"]["event"]["user"] == watched.as_str() {
                let epoch = reply["parameters"]["event"]["session_epoch"].as_i64();
                if arrived.send((Instant::now(), epoch)).is_err() {
                    return;
                }
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut client = Client::connect(socket);
    let mut delays = Vec::new();
    for round in 0..rounds {
        let password = password_for(base, 1000 + round);
        let done = if command.is_empty() {
            let reply = client.call(
                "SetPassword",
                json!({ "user": user, "password": password, "expire": false, "force": true }),
            );
            assert!(reply["parameters"]["session_epoch"].is_i64(), "{reply}");
            Instant::now()
        } else {
            let mut child = Command::new(&command[0])
                .args(&command[1..])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("run the command");
            writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write the password");
            assert!(child.wait().expect("wait").success(), "the command failed");
            Instant::now()
        };
        let (at, _) = arrivals
            .recv_timeout(Duration::from_secs(5))
            .expect("no event within 5 s of the change");
        delays.push(at.saturating_duration_since(done));
        // Nothing else is in flight: drain stray events before the next round.
        while arrivals.try_recv().is_ok() {}
    }
    delays.sort();
    println!("p50_ms={}", percentile(&delays, 0.5));
    println!("max_ms={}", percentile(&delays, 1.0));
}

fn floor(password: &str, rounds: usize) {
    use credsync_core::secret::Password;
    use credsync_core::store::app_hash::{Argon2Cost, verify};
    let password = Password::new(password.as_bytes().to_vec()).expect("a usable password");
    let phc = Argon2Cost::default().hash(&password).expect("hash");
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let began = Instant::now();
            assert!(verify(&password, &phc));
            began.elapsed()
        })
        .collect();
    times.sort();
    println!("verify_ms={}", percentile(&times, 0.5));
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| -> usize { args[i].parse().expect("a number") };
    let password = |i: usize| -> String {
        std::fs::read_to_string(&args[i])
            .expect("the password file")
            .trim_end()
            .to_owned()
    };
    match args.first().map(String::as_str) {
        Some("verify") if args.len() == 6 => {
            verify(&args[1], &args[2], &password(3), number(4), number(5))
        }
        Some("set") if args.len() == 5 => set(&args[1], &args[2], &password(3), number(4)),
        Some("floor") if args.len() == 3 => floor(&password(1), number(2)),
        Some("events") if args.len() >= 5 => {
            events(&args[1], &args[2], &password(3), number(4), &args[5..])
        }
        _ => {
            eprintln!("usage: api_load verify|set|floor|events ... (see the source's header)");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
