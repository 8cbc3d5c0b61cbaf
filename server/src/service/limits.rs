//! Per-key rate limits: a token bucket per principal (asks) or per client address (refusals
//! worth auditing). A key may spend `burst` requests at once and regains `per_minute` a minute;
//! a request with no token left is refused with the seconds until the next one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Buckets kept before full ones are dropped (a full bucket is the same as no bucket).
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key. Cheap to clone; clones share the buckets. `per_minute == 0` turns the
/// limit off.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_minute: u32,
    burst: u32,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_minute, burst: burst.max(1), buckets: Arc::default() }
    }

    /// Spends one request of `key`; `Err` holds how long until the key may try again.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let per_sec = f64::from(self.per_minute) / 60.0;
        let burst = f64::from(self.burst);
        let Ok(mut buckets) = self.buckets.lock() else {
            // A panic elsewhere poisoned the map; refusing everyone would be worse than no limit.
            return Ok(());
        };
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < burst);
        }
        let b = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: burst, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_refill_per_key() {
        let limiter = RateLimiter::new(60, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("alice", t0).is_ok());
        }
        let refused = limiter.check_at("alice", t0);
        assert!(
            refused.is_err_and(|wait| wait <= Duration::from_secs(1) && wait > Duration::from_millis(900)),
            "the fourth at once waits about a second: {refused:?}"
        );
        assert!(limiter.check_at("bob", t0).is_ok(), "keys are separate");
        assert!(limiter.check_at("alice", t0 + Duration::from_millis(1_001)).is_ok(), "one a second comes back");
        assert!(RateLimiter::new(0, 1).check_at("x", t0).is_ok(), "0 per minute is no limit");
    }
}
