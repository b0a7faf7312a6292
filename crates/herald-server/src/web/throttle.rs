//! Per-IP throttling of failed password attempts, for the admin page.
//!
//! Only failures draw on an address's allowance, so an operator whose page
//! polls every second is never slowed. Once an address has used up its
//! allowance it is refused outright, right password or not, until the
//! allowance refills: otherwise a throttled guesser would still learn which
//! guess was right.

use governor::clock::MonotonicClock;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures an address may make in a burst before it is throttled.
const BURST: u32 = 10;
/// After the burst, one more attempt per this long.
const REFILL: Duration = Duration::from_secs(6);
/// Addresses remembered before the table drops the ones that went quiet.
const PRUNE_ABOVE: usize = 10_000;

type Limiter = RateLimiter<IpAddr, HashMapStateStore<IpAddr>, MonotonicClock>;

pub struct FailureThrottle {
    failures: Limiter,
    blocked_until: Mutex<HashMap<IpAddr, Instant>>,
}

impl Default for FailureThrottle {
    fn default() -> Self {
        let quota = Quota::with_period(REFILL)
            .expect("the refill period is not zero")
            .allow_burst(NonZeroU32::new(BURST).expect("the burst is not zero"));
        Self {
            failures: RateLimiter::hashmap_with_clock(quota, MonotonicClock),
            blocked_until: Mutex::new(HashMap::new()),
        }
    }
}

impl FailureThrottle {
    /// How long `ip` must still wait before it may try again, if it must.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let blocked = self.blocked_until.lock().expect("the lock is not poisoned");
        blocked
            .get(&ip)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|wait| !wait.is_zero())
    }

    /// Counts a failed attempt from `ip`; returns the wait when this one
    /// used up its allowance.
    pub fn fail(&self, ip: IpAddr) -> Option<Duration> {
        if self.failures.len() > PRUNE_ABOVE {
            self.failures.retain_recent();
        }
        let refused = self.failures.check_key(&ip).err()?;
        let until = refused.earliest_possible();
        let mut blocked = self.blocked_until.lock().expect("the lock is not poisoned");
        if blocked.len() > PRUNE_ABOVE {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
        }
        blocked.insert(ip, until);
        Some(until.saturating_duration_since(Instant::now()))
    }
}

/// `Retry-After` in whole seconds, never 0: a client told 0 would retry at once.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_throttled_after_its_burst_and_others_are_not() {
        let throttle = FailureThrottle::default();
        let guesser: IpAddr = "192.0.2.1".parse().unwrap();
        let neighbour: IpAddr = "192.0.2.2".parse().unwrap();
        for attempt in 1..=BURST {
            assert_eq!(throttle.fail(guesser), None, "failure {attempt} is allowed");
            assert_eq!(throttle.blocked(guesser), None);
        }
        let wait = throttle
            .fail(guesser)
            .expect("the failure past the burst is throttled");
        assert!(wait > Duration::ZERO && wait <= REFILL, "{wait:?}");
        assert!(throttle.blocked(guesser).is_some());
        assert_eq!(throttle.blocked(neighbour), None);
        assert_eq!(throttle.fail(neighbour), None);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(5_001)), 6);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
