//! `[broker]`: which Redis topology to use and how to reach it.

use super::{BrokerSection, parse_duration};
use herald_redis::{RedisSettings, Topology};

impl BrokerSection {
    /// Reports every problem of a `kind = "redis"` section.
    pub(super) fn check(&self, errors: &mut Vec<String>) {
        if let Err(error) = self.redis_settings() {
            errors.push(error);
        }
        for (key, urls) in [
            ("broker.sentinel_urls", &self.sentinel_urls),
            ("broker.cluster_urls", &self.cluster_urls),
        ] {
            for url in urls {
                check_url(key, url, errors);
            }
        }
        if self.sentinel_urls.is_empty() && self.cluster_urls.is_empty() {
            check_url("broker.redis_url", &self.redis_url, errors);
        }
        if !self.sentinel_urls.is_empty() && !self.cluster_urls.is_empty() {
            errors.push(
                "broker.sentinel_urls / broker.cluster_urls: set one of them, not both".into(),
            );
        }
        if !self.sentinel_urls.is_empty() && self.sentinel_master.is_empty() {
            errors.push("broker.sentinel_master: name the master the sentinels watch".into());
        }
        if self.prefix.is_empty() || self.prefix.contains(['{', '}', ' ']) {
            errors.push(format!(
                "broker.prefix: `{}` must be non-empty, without braces or spaces",
                self.prefix
            ));
        }
    }

    /// The broker's settings; `Err` names the first bad key.
    pub fn redis_settings(&self) -> Result<RedisSettings, String> {
        let topology = if !self.cluster_urls.is_empty() {
            Topology::Cluster(self.cluster_urls.clone())
        } else if !self.sentinel_urls.is_empty() {
            Topology::Sentinel {
                sentinels: self.sentinel_urls.clone(),
                master: self.sentinel_master.clone(),
            }
        } else {
            Topology::Standalone(self.redis_url.clone())
        };
        let mut settings = RedisSettings::new(topology);
        settings.prefix = self.prefix.clone();
        settings.timeout = parse_duration("broker.timeout", &self.timeout)?;
        settings.heartbeat = parse_duration("broker.heartbeat", &self.heartbeat)?;
        settings.presence_ttl = parse_duration("broker.presence_ttl", &self.presence_ttl)?;
        if settings.heartbeat.is_zero() || settings.timeout.is_zero() {
            return Err("broker.heartbeat / broker.timeout: must be above zero".into());
        }
        if settings.presence_ttl < settings.heartbeat * 3 {
            return Err(
                "broker.presence_ttl: must be at least three heartbeats, or live entries expire"
                    .into(),
            );
        }
        Ok(settings)
    }
}

fn check_url(key: &str, url: &str, errors: &mut Vec<String>) {
    if !url.starts_with("redis://") {
        errors.push(format!(
            "{key}: `{}` must start with redis:// (TLS is not built in; terminate it in front of Redis)",
            herald_redis::redact(url)
        ));
    }
}
