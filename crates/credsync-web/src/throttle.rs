//! The per-address limit on login attempts, on top of credsyncd's lockout
//! (which counts per account): a bucket of `per_minute` attempts per client
//! address, refilled at `per_minute` a minute. It bounds how fast one address
//! can guess across many accounts, which the per-account tally cannot.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses remembered at most; full buckets are forgotten first, then
/// the least recently heard.
const MAX_ADDRESSES: usize = 65536;

pub struct Throttle {
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Throttle {
    pub fn new(per_minute: u32) -> Throttle {
        Throttle {
            per_minute: f64::from(per_minute),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt for `address`; `Err(wait)` when it has none left.
    pub fn attempt(&self, address: IpAddr) -> Result<(), Duration> {
        self.attempt_at(address, Instant::now())
    }

    fn attempt_at(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let address = network_of(address);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&address) {
            // Full buckets are as good as none; failing that, the address
            // heard from longest ago is forgotten, never a new one refused.
            let per_minute = self.per_minute;
            buckets.retain(|_, b| refilled(*b, per_minute, now) < per_minute);
            if buckets.len() >= MAX_ADDRESSES
                && let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.at).map(|(a, _)| *a)
            {
                buckets.remove(&oldest);
            }
        }
        let bucket = buckets.entry(address).or_insert(Bucket {
            tokens: self.per_minute,
            at: now,
        });
        let tokens = refilled(*bucket, self.per_minute, now);
        if tokens < 1.0 {
            let wait = (1.0 - tokens) * 60.0 / self.per_minute;
            return Err(Duration::from_secs_f64(wait).max(Duration::from_secs(1)));
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            at: now,
        };
        Ok(())
    }
}

/// The unit one bucket counts: an IPv4 address, or an IPv6 /64, which one
/// host is usually given whole (counting its addresses one by one would let
/// it take 2^64 buckets).
fn network_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

fn refilled(bucket: Bucket, per_minute: f64, now: Instant) -> f64 {
    let minutes = now.duration_since(bucket.at).as_secs_f64() / 60.0;
    (bucket.tokens + minutes * per_minute).min(per_minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_at_the_refill_rate() {
        let throttle = Throttle::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            throttle.attempt_at(a, t0).unwrap();
        }
        let wait = throttle.attempt_at(a, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20));
        throttle
            .attempt_at(b, t0)
            .expect("another address has its own bucket");
        assert!(
            throttle
                .attempt_at(a, t0 + Duration::from_secs(19))
                .is_err()
        );
        throttle
            .attempt_at(a, t0 + Duration::from_secs(21))
            .unwrap();
        assert!(
            throttle
                .attempt_at(a, t0 + Duration::from_secs(22))
                .is_err()
        );
    }

    #[test]
    fn an_ipv6_host_counts_as_its_slash_64() {
        let throttle = Throttle::new(1);
        let t0 = Instant::now();
        throttle
            .attempt_at("2001:db8:1:2::1".parse().unwrap(), t0)
            .unwrap();
        assert!(
            throttle
                .attempt_at("2001:db8:1:2:ffff::9".parse().unwrap(), t0)
                .is_err()
        );
        throttle
            .attempt_at("2001:db8:1:3::1".parse().unwrap(), t0)
            .unwrap();
        throttle
            .attempt_at("::ffff:192.0.2.7".parse().unwrap(), t0)
            .unwrap();
        assert!(
            throttle
                .attempt_at("192.0.2.7".parse().unwrap(), t0)
                .is_err()
        );
    }
}
