//! Channel names and namespace options.
//!
//! `orders:1234` lives in namespace `orders`; a name with no `:` uses the
//! `without_namespace` options. A `#` makes a channel user-limited:
//! `dm:#42,43` may only be subscribed by users 42 and 43.

use crate::history::Retention;
use herald_protocol::ErrorCode;
use serde::Deserialize;
use std::collections::HashMap;

pub const NAMESPACE_BOUNDARY: char = ':';
pub const USER_BOUNDARY: char = '#';
pub const USER_SEPARATOR: char = ',';
pub const MAX_CHANNEL_BYTES: usize = 255;

/// Per-namespace options, under Centrifugo's names so users moving over recognise them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelOptions {
    pub presence: bool,
    pub join_leave: bool,
    pub force_push_join_leave: bool,
    pub allow_subscribe_for_client: bool,
    pub allow_subscribe_for_anonymous: bool,
    pub allow_publish_for_subscriber: bool,
    pub allow_publish_for_client: bool,
    pub allow_publish_for_anonymous: bool,
    pub allow_presence_for_subscriber: bool,
    pub allow_presence_for_client: bool,
    pub allow_presence_for_anonymous: bool,
    pub allow_history_for_subscriber: bool,
    pub allow_history_for_client: bool,
    pub allow_history_for_anonymous: bool,
    pub allow_user_limited_channels: bool,
    /// History options are validated now and take effect once history lands.
    pub history_size: usize,
    pub history_ttl: Option<String>,
    /// How long an idle stream's position (epoch and top offset) outlives its
    /// last publication on the in-memory engine; unset keeps it while the
    /// process lives. Once forgotten, a client recovering from that position
    /// is told `recovered: false`, as after a restart of the in-memory engine.
    pub history_meta_ttl: Option<String>,
    pub force_recovery: bool,
    pub allow_recovery: bool,
    pub force_positioning: bool,
    pub allow_positioning: bool,
    pub force_recovery_mode: Option<String>,
    /// Most publications one recovery may replay; 0 means history_size.
    pub recovery_max_publication_limit: usize,
    /// Subscribes without a token ask the backend (`[channel.proxy.subscribe]`).
    pub subscribe_proxy_enabled: bool,
    /// Client publishes ask the backend, which may rewrite the data
    /// (`[channel.proxy.publish]`); the `allow_publish_*` options then do not apply.
    pub publish_proxy_enabled: bool,
    /// Subscriptions the subscribe proxy gave an `expire_at` ask the backend
    /// whether they live on (`[channel.proxy.sub_refresh]`).
    pub sub_refresh_proxy_enabled: bool,
}

impl ChannelOptions {
    /// How much history the namespace keeps; none unless both size and TTL are set.
    pub fn retention(&self) -> Retention {
        let ttl = self
            .history_ttl
            .as_deref()
            .and_then(|ttl| humantime::parse_duration(ttl).ok())
            .unwrap_or_default();
        Retention {
            size: self.history_size,
            ttl,
        }
    }

    /// How long an idle stream's position is kept (`history_meta_ttl`).
    pub fn history_meta_ttl(&self) -> Option<std::time::Duration> {
        self.history_meta_ttl
            .as_deref()
            .and_then(|ttl| humantime::parse_duration(ttl).ok())
    }

    /// Cache mode: a subscribe gets the latest publication, as a live document.
    pub fn cache_mode(&self) -> bool {
        self.force_recovery_mode.as_deref() == Some("cache")
    }
}

/// The namespaces a server knows, looked up by channel name.
#[derive(Debug, Clone, Default)]
pub struct Namespaces {
    pub without_namespace: ChannelOptions,
    pub named: HashMap<String, ChannelOptions>,
}

impl Namespaces {
    /// The options of the channel's namespace, or 102 when it has none.
    pub fn options(&self, channel: &str) -> Result<&ChannelOptions, ErrorCode> {
        match namespace_of(channel) {
            None => Ok(&self.without_namespace),
            Some(name) => self.named.get(name).ok_or(ErrorCode::UNKNOWN_CHANNEL),
        }
    }
}

/// The namespace part of a channel name, if it has one.
pub fn namespace_of(channel: &str) -> Option<&str> {
    channel.split_once(NAMESPACE_BOUNDARY).map(|(ns, _)| ns)
}

/// Checks what every channel name must satisfy.
pub fn validate_name(channel: &str) -> Result<(), ErrorCode> {
    if channel.is_empty() {
        return Err(ErrorCode::BAD_REQUEST);
    }
    if channel.len() > MAX_CHANNEL_BYTES {
        return Err(ErrorCode::LIMIT_EXCEEDED);
    }
    Ok(())
}

/// The users allowed on a user-limited channel, or `None` when it is not one.
pub fn allowed_users(channel: &str) -> Option<impl Iterator<Item = &str>> {
    let (_, users) = channel.rsplit_once(USER_BOUNDARY)?;
    Some(users.split(USER_SEPARATOR).filter(|u| !u.is_empty()))
}

#[cfg(test)]
mod tests;
