//! Command rate limits: token buckets (`governor`) per connection and per
//! user, in the names of Centrifugo's `client_command` and `user_command`.
//!
//! A command over its connection's or its user's rate is answered with 111
//! ("too many requests", temporary, so the SDKs retry it with backoff). A
//! connection that keeps sending refused commands (more refusals than its
//! `disconnect_after` bucket allows) is closed with 3013: past that point
//! answering it costs more than it is worth.

use governor::clock::MonotonicClock;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use herald_protocol::command::Method;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

pub const RATE_LIMITED: &str = "herald_rate_limited_total";

/// Commands the limits apply to; connect, ping, pong and send are not.
pub const LIMITED: [Method; 9] = [
    Method::Subscribe,
    Method::Unsubscribe,
    Method::Publish,
    Method::History,
    Method::Presence,
    Method::PresenceStats,
    Method::Refresh,
    Method::SubRefresh,
    Method::Rpc,
];

/// `rate` per `interval`, in bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub rate: NonZeroU32,
    pub interval: Duration,
    pub burst: NonZeroU32,
}

impl Bucket {
    pub fn quota(&self) -> Quota {
        let period = (self.interval / self.rate.get()).max(Duration::from_nanos(1));
        Quota::with_period(period)
            .expect("the period is at least 1 ns")
            .allow_burst(self.burst)
    }
}

/// The configured limits; empty limits nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandLimits {
    /// Per connection, for commands without a bucket of their own.
    pub client_default: Option<Bucket>,
    /// Per connection, by command (`Method::as_str`).
    pub client: HashMap<&'static str, Bucket>,
    /// Refusals one connection may collect before it is closed with 3013.
    pub disconnect_after: Option<Bucket>,
    /// Per user across the user's connections on this node, by command.
    pub user: HashMap<&'static str, Bucket>,
}

impl CommandLimits {
    fn client_bucket(&self, method: Method) -> Option<Bucket> {
        self.client
            .get(method.as_str())
            .copied()
            .or(self.client_default)
    }
}

type Direct = RateLimiter<NotKeyed, InMemoryState, MonotonicClock>;
type Keyed = RateLimiter<Arc<str>, HashMapStateStore<Arc<str>>, MonotonicClock>;

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Answer 111.
    Refused,
    /// Refused too often: close with 3013.
    Disconnect,
}

/// One connection's buckets, made when first used.
#[derive(Default)]
pub struct ConnectionLimiter {
    buckets: HashMap<&'static str, Direct>,
    refusals: Option<Direct>,
}

impl ConnectionLimiter {
    /// Takes a token for `method` from the connection's and the user's
    /// buckets; `None` when the command may run.
    pub fn check(
        &mut self,
        limits: &CommandLimits,
        users: &UserLimiters,
        method: Method,
        user: &str,
    ) -> Option<Refusal> {
        if !LIMITED.contains(&method) {
            return None;
        }
        let scope = if !self.allows(limits, method) {
            "client"
        } else if !users.allows(method, user) {
            "user"
        } else {
            return None;
        };
        ::metrics::counter!(RATE_LIMITED, "scope" => scope, "method" => method.as_str())
            .increment(1);
        let sustained = limits.disconnect_after.is_some_and(|bucket| {
            let refusals = self.refusals.get_or_insert_with(|| {
                RateLimiter::direct_with_clock(bucket.quota(), MonotonicClock)
            });
            refusals.check().is_err()
        });
        Some(if sustained {
            Refusal::Disconnect
        } else {
            Refusal::Refused
        })
    }

    fn allows(&mut self, limits: &CommandLimits, method: Method) -> bool {
        let Some(bucket) = limits.client_bucket(method) else {
            return true;
        };
        self.buckets
            .entry(method.as_str())
            .or_insert_with(|| RateLimiter::direct_with_clock(bucket.quota(), MonotonicClock))
            .check()
            .is_ok()
    }
}

/// The per-user buckets of one node, by command.
#[derive(Default)]
pub struct UserLimiters {
    by_command: HashMap<&'static str, Keyed>,
}

impl UserLimiters {
    pub fn new(limits: &CommandLimits) -> Self {
        let by_command = limits
            .user
            .iter()
            .map(|(command, bucket)| {
                let limiter = RateLimiter::hashmap_with_clock(bucket.quota(), MonotonicClock);
                (*command, limiter)
            })
            .collect();
        Self { by_command }
    }

    /// Anonymous connections have no user to count against.
    fn allows(&self, method: Method, user: &str) -> bool {
        match self.by_command.get(method.as_str()) {
            Some(limiter) if !user.is_empty() => limiter.check_key(&Arc::from(user)).is_ok(),
            _ => true,
        }
    }

    /// Forgets users whose buckets are full again, so the tables do not grow
    /// with every user ever seen.
    pub fn forget_idle(&self) {
        for limiter in self.by_command.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests;
