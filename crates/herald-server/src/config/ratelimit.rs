//! Rate limits: `[client.rate_limit.client_command]` (per connection),
//! `[client.rate_limit.user_command]` (per user on this node),
//! `[client.rate_limit.connect]` (connects per client IP, on by default) and
//! `[api.rate_limit]` (server API calls). Each bucket is `rate` per
//! `interval`, in bursts of up to `burst` (default: `rate`).

use super::parse_duration;
use herald_core::ratelimit::{Bucket, CommandLimits};
use serde::Deserialize;
use std::collections::HashMap;
use std::num::NonZeroU32;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSection {
    pub rate: u32,
    #[serde(default = "one_second")]
    pub interval: String,
    pub burst: Option<u32>,
}

fn one_second() -> String {
    "1s".into()
}

impl BucketSection {
    pub fn bucket(&self, key: &str) -> Result<Bucket, String> {
        let positive = |value: u32, what: &str| {
            NonZeroU32::new(value).ok_or_else(|| format!("{key}.{what}: must be at least 1"))
        };
        let interval = parse_duration(&format!("{key}.interval"), &self.interval)?;
        if interval.is_zero() {
            return Err(format!("{key}.interval: must be longer than 0"));
        }
        Ok(Bucket {
            rate: positive(self.rate, "rate")?,
            interval,
            burst: positive(self.burst.unwrap_or(self.rate), "burst")?,
        })
    }
}

/// A bucket that can be switched off; what is left out takes the
/// [`LimitDefaults`] of where it is used.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limit {
    pub enabled: Option<bool>,
    pub rate: Option<u32>,
    pub interval: Option<String>,
    pub burst: Option<u32>,
}

pub struct LimitDefaults {
    pub enabled: bool,
    pub rate: u32,
    pub interval: &'static str,
    pub burst: u32,
}

/// `[client.rate_limit.connect]`: on by default, loose enough for a whole
/// office behind one NAT address reconnecting at once after a restart, tight
/// enough that one address cannot open connections as fast as it can send.
pub const CONNECT_DEFAULTS: LimitDefaults = LimitDefaults {
    enabled: true,
    rate: 100,
    interval: "1s",
    burst: 2000,
};

/// `[api.rate_limit]`: off by default.
pub const API_DEFAULTS: LimitDefaults = LimitDefaults {
    enabled: false,
    rate: 1000,
    interval: "1s",
    burst: 1000,
};

impl Limit {
    /// The bucket when enabled.
    pub fn bucket(&self, key: &str, defaults: &LimitDefaults) -> Result<Option<Bucket>, String> {
        if !self.enabled.unwrap_or(defaults.enabled) {
            return Ok(None);
        }
        let section = BucketSection {
            rate: self.rate.unwrap_or(defaults.rate),
            interval: self
                .interval
                .clone()
                .unwrap_or_else(|| defaults.interval.into()),
            burst: Some(self.burst.unwrap_or(match self.rate {
                Some(rate) => rate,
                None => defaults.burst,
            })),
        };
        section.bucket(key).map(Some)
    }
}

/// Buckets by command, with a default for the commands not listed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandBuckets {
    pub enabled: bool,
    pub default: Option<BucketSection>,
    pub subscribe: Option<BucketSection>,
    pub unsubscribe: Option<BucketSection>,
    pub publish: Option<BucketSection>,
    pub history: Option<BucketSection>,
    pub presence: Option<BucketSection>,
    pub presence_stats: Option<BucketSection>,
    pub refresh: Option<BucketSection>,
    pub sub_refresh: Option<BucketSection>,
    pub rpc: Option<BucketSection>,
    /// Refusals one connection may collect before it is closed with 3013
    /// (`client_command` only).
    pub disconnect_after_refused: Option<BucketSection>,
}

impl CommandBuckets {
    /// The enabled buckets by command, and the default.
    fn buckets(
        &self,
        key: &str,
    ) -> Result<(HashMap<&'static str, Bucket>, Option<Bucket>), String> {
        if !self.enabled {
            return Ok((HashMap::new(), None));
        }
        let named = [
            ("subscribe", &self.subscribe),
            ("unsubscribe", &self.unsubscribe),
            ("publish", &self.publish),
            ("history", &self.history),
            ("presence", &self.presence),
            ("presence_stats", &self.presence_stats),
            ("refresh", &self.refresh),
            ("sub_refresh", &self.sub_refresh),
            ("rpc", &self.rpc),
        ];
        let mut buckets = HashMap::new();
        for (command, section) in named {
            if let Some(section) = section {
                buckets.insert(command, section.bucket(&format!("{key}.{command}"))?);
            }
        }
        let default = self
            .default
            .as_ref()
            .map(|section| section.bucket(&format!("{key}.default")))
            .transpose()?;
        Ok((buckets, default))
    }
}

/// `[client.rate_limit]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientRateLimits {
    pub client_command: CommandBuckets,
    pub user_command: CommandBuckets,
    pub connect: Limit,
}

impl ClientRateLimits {
    /// The command limits the node applies.
    pub fn command_limits(&self) -> Result<CommandLimits, String> {
        const CLIENT: &str = "client.rate_limit.client_command";
        const USER: &str = "client.rate_limit.user_command";
        let (client, client_default) = self.client_command.buckets(CLIENT)?;
        let (mut user, user_default) = self.user_command.buckets(USER)?;
        if let Some(default) = user_default {
            for command in herald_core::ratelimit::LIMITED {
                user.entry(command.as_str()).or_insert(default);
            }
        }
        if self.user_command.disconnect_after_refused.is_some() {
            return Err(format!(
                "{USER}.disconnect_after_refused: only client_command closes connections"
            ));
        }
        let disconnect_after = match &self.client_command.disconnect_after_refused {
            Some(section) if self.client_command.enabled => {
                Some(section.bucket(&format!("{CLIENT}.disconnect_after_refused"))?)
            }
            _ => None,
        };
        Ok(CommandLimits {
            client_default,
            client,
            disconnect_after,
            user,
        })
    }

    pub(super) fn check(&self, errors: &mut Vec<String>) {
        if let Err(e) = self.command_limits() {
            errors.push(e);
        }
        if let Err(e) = self.connect_bucket() {
            errors.push(e);
        }
    }

    /// Connects per client IP, when limited.
    pub fn connect_bucket(&self) -> Result<Option<Bucket>, String> {
        self.connect
            .bucket("client.rate_limit.connect", &CONNECT_DEFAULTS)
    }
}
