//! The TOML config file, its `HERALD_<SECTION>_<KEY>` environment overrides, and
//! validation that reports every problem at once, each naming its key path.

mod apps;
mod broker;
mod consumers;
mod proxy;
mod ratelimit;
mod web;
mod webhooks;

pub use apps::{ChatSection, InboxSection};
pub use consumers::{ConsumerSection, PostgresqlConsumer, RedisStreamConsumer};
pub use proxy::{ChannelProxies, ClientProxies, ProxySection, RpcSection};
pub use ratelimit::{BucketSection, ClientRateLimits, CommandBuckets, Limit};
pub use web::{AdminSection, DemoSection, TransportsSection};
pub use webhooks::WebhooksSection;

use herald_core::ChannelOptions;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub server: ServerSection,
    pub auth: AuthSection,
    pub api: ApiSection,
    pub client: ClientSection,
    pub storage: StorageSection,
    pub broker: BrokerSection,
    pub inbox: InboxSection,
    pub chat: ChatSection,
    pub webhooks: WebhooksSection,
    pub transports: TransportsSection,
    pub admin: AdminSection,
    pub demo: DemoSection,
    pub channel: ChannelSection,
    /// `[rpc]`: which rpc methods the backend answers, and where.
    pub rpc: RpcSection,
    /// `[[consumers]]`: outbox tables and streams whose rows run as API calls.
    pub consumers: Vec<ConsumerSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: String,
    /// Origins allowed on WebSocket upgrade; empty allows any.
    pub allowed_origins: Vec<String>,
    pub shutdown_grace: String,
    pub name: String,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8000".into(),
            allowed_origins: Vec::new(),
            shutdown_grace: "10s".into(),
            name: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    pub hmac_secret: String,
    pub rsa_public_key: Option<PathBuf>,
    pub ecdsa_public_key: Option<PathBuf>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    pub key: String,
    pub max_body_bytes: usize,
    /// `[api.rate_limit]`: calls per second over all callers; off by default.
    pub rate_limit: Limit,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            key: String::new(),
            max_body_bytes: 1024 * 1024,
            rate_limit: Limit::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSection {
    pub allow_anonymous_connect_without_token: bool,
    pub ping_interval: String,
    pub pong_timeout: String,
    pub stale_timeout: String,
    pub expired_close_delay: String,
    pub channel_limit: usize,
    pub user_connection_limit: usize,
    pub max_message_bytes: usize,
    pub queue_max_messages: usize,
    pub queue_max_bytes: usize,
    /// `[client.proxy.connect]` and `[client.proxy.refresh]`.
    pub proxy: ClientProxies,
    /// `[client.rate_limit]`: commands per connection and user, connects per IP.
    pub rate_limit: ClientRateLimits,
}

impl Default for ClientSection {
    fn default() -> Self {
        Self {
            allow_anonymous_connect_without_token: false,
            ping_interval: "25s".into(),
            pong_timeout: "10s".into(),
            stale_timeout: "10s".into(),
            expired_close_delay: "25s".into(),
            channel_limit: 128,
            user_connection_limit: 0,
            max_message_bytes: 64 * 1024,
            queue_max_messages: 4096,
            queue_max_bytes: 4 * 1024 * 1024,
            proxy: ClientProxies::default(),
            rate_limit: ClientRateLimits::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// Keep history in SQLite so it survives restarts; off keeps it in memory.
    pub durable: bool,
    /// The SQLite directory.
    pub path: PathBuf,
    /// "normal" survives a killed process; "full" also a power cut.
    pub sync: String,
    /// A PostgreSQL URL: history goes there instead of SQLite. Implies
    /// durable, so `durable = false` beside it is a contradiction.
    pub url: Option<String>,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            durable: true,
            path: PathBuf::from("herald-data"),
            sync: "normal".into(),
            url: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSection {
    pub kind: String,
    /// A standalone Redis (used unless Sentinel or Cluster addresses are set).
    pub redis_url: String,
    /// Sentinels that know the master named `sentinel_master`.
    pub sentinel_urls: Vec<String>,
    pub sentinel_master: String,
    /// Seed nodes of a Redis Cluster.
    pub cluster_urls: Vec<String>,
    /// Starts every Redis key and channel, so apps can share one Redis.
    pub prefix: String,
    /// Connect and command timeout; a broken connection is noticed within
    /// about three heartbeats.
    pub timeout: String,
    pub heartbeat: String,
    /// How long a presence entry outlives its node when the node dies.
    pub presence_ttl: String,
}

impl Default for BrokerSection {
    fn default() -> Self {
        Self {
            kind: "memory".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            sentinel_urls: Vec::new(),
            sentinel_master: String::new(),
            cluster_urls: Vec::new(),
            prefix: "herald".into(),
            timeout: "3s".into(),
            heartbeat: "1s".into(),
            presence_ttl: "60s".into(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ChannelSection {
    pub without_namespace: ChannelOptions,
    pub namespaces: Vec<(String, ChannelOptions)>,
    /// `[channel.proxy.subscribe]`, `publish` and `sub_refresh`.
    pub proxy: ChannelProxies,
}

/// Reads `[channel]`, checking each namespace on its own so one bad namespace
/// does not hide the problems of the others.
fn channel_section(table: &toml::Table, errors: &mut Vec<String>) -> ChannelSection {
    let mut section = ChannelSection::default();
    let Some(value) = table.get("channel") else {
        return section;
    };
    let Some(channel) = value.as_table() else {
        errors.push("channel: must be a table".into());
        return section;
    };
    for (key, value) in channel {
        match key.as_str() {
            "without_namespace" => match ChannelOptions::deserialize(value.clone()) {
                Ok(options) => section.without_namespace = options,
                Err(e) => errors.push(format!(
                    "channel.without_namespace: {}",
                    e.to_string().trim()
                )),
            },
            "namespaces" => {
                let Some(list) = value.as_array() else {
                    errors.push(
                        "channel.namespaces: must be an array of tables ([[channel.namespaces]])"
                            .into(),
                    );
                    continue;
                };
                for (index, item) in list.iter().enumerate() {
                    let key = format!("channel.namespaces[{index}]");
                    let Some(mut table) = item.as_table().cloned() else {
                        errors.push(format!("{key}: must be a table"));
                        continue;
                    };
                    let name = match table.remove("name") {
                        Some(toml::Value::String(name)) => name,
                        _ => {
                            errors
                                .push(format!("{key}.name: every namespace needs a string `name`"));
                            continue;
                        }
                    };
                    match ChannelOptions::deserialize(toml::Value::Table(table)) {
                        Ok(options) => section.namespaces.push((name, options)),
                        Err(e) => errors.push(format!("{key} ({name}): {}", e.to_string().trim())),
                    }
                }
            }
            "proxy" => match ChannelProxies::deserialize(value.clone()) {
                Ok(proxy) => section.proxy = proxy,
                Err(e) => errors.push(format!("channel.proxy: {}", e.to_string().trim())),
            },
            other => errors.push(format!(
                "channel.{other}: unknown key; expected without_namespace, namespaces or proxy"
            )),
        }
    }
    section
}

/// Sections that `HERALD_<SECTION>_<KEY>` may override.
const SECTIONS: [&str; 12] = [
    "server",
    "auth",
    "api",
    "client",
    "storage",
    "broker",
    "inbox",
    "chat",
    "webhooks",
    "transports",
    "admin",
    "demo",
];
/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: [&str; 2] = ["allowed_origins", "events"];

/// Loads the file (if any), applies environment overrides, then validates.
/// Every problem found is returned, each naming its key path.
pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Config, Vec<String>> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
            parse(&text, &path.display().to_string(), env)
        }
        None => from_table(toml::Table::new(), env),
    }
}

/// [`load`] for a file's text; `origin` names the file in a TOML error.
pub fn parse(
    text: &str,
    origin: &str,
    env: &HashMap<String, String>,
) -> Result<Config, Vec<String>> {
    let table = text
        .parse::<toml::Table>()
        .map_err(|e| vec![format!("{origin}: invalid TOML: {e}")])?;
    from_table(table, env)
}

fn from_table(
    mut table: toml::Table,
    env: &HashMap<String, String>,
) -> Result<Config, Vec<String>> {
    apply_env(&mut table, env);
    consumers::apply_env(&mut table, env);
    let mut errors = Vec::new();
    let config = Config {
        server: section(&table, "server", &mut errors),
        auth: section(&table, "auth", &mut errors),
        api: section(&table, "api", &mut errors),
        client: section(&table, "client", &mut errors),
        storage: section(&table, "storage", &mut errors),
        broker: section(&table, "broker", &mut errors),
        inbox: section(&table, "inbox", &mut errors),
        chat: section(&table, "chat", &mut errors),
        webhooks: section(&table, "webhooks", &mut errors),
        transports: section(&table, "transports", &mut errors),
        admin: section(&table, "admin", &mut errors),
        demo: section(&table, "demo", &mut errors),
        channel: channel_section(&table, &mut errors),
        rpc: section(&table, "rpc", &mut errors),
        consumers: consumers::consumers_section(&table, &mut errors),
    };
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str())
            && key != "channel"
            && key != "consumers"
            && key != "rpc"
        {
            errors.push(format!("{key}: unknown section"));
        }
    }
    errors.extend(config.validate());
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

fn section<T: DeserializeOwned + Default>(
    table: &toml::Table,
    name: &str,
    errors: &mut Vec<String>,
) -> T {
    match table.get(name) {
        None => T::default(),
        Some(value) => T::deserialize(value.clone()).unwrap_or_else(|e| {
            errors.push(format!("{name}: {}", e.to_string().trim()));
            T::default()
        }),
    }
}

fn apply_env(table: &mut toml::Table, env: &HashMap<String, String>) {
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("HERALD_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some((section, key)) = rest.split_once('_') else {
            continue;
        };
        if !SECTIONS.contains(&section) {
            continue;
        }
        let value = if LIST_KEYS.contains(&key) {
            toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.into()))
                    .collect(),
            )
        } else {
            // Numbers and booleans keep their type; anything else is a string.
            format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .filter(|v| !v.is_str() && !v.is_table() && !v.is_array())
                .unwrap_or_else(|| toml::Value::String(value.clone()))
        };
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        if let toml::Value::Table(section_table) = entry {
            section_table.insert(key.to_string(), value);
        }
    }
}

pub fn parse_duration(key: &str, value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value)
        .map_err(|e| format!("{key}: `{value}` is not a duration like \"25s\" or \"10m\": {e}"))
}

/// Namespace names the built-in features own.
const RESERVED_NAMESPACES: [&str; 2] = [herald_apps::INBOX_NAMESPACE, herald_apps::CHAT_NAMESPACE];

impl Config {
    /// Server API calls per second over all callers, when limited.
    pub fn api_bucket(&self) -> Result<Option<herald_core::ratelimit::Bucket>, String> {
        self.api
            .rate_limit
            .bucket("api.rate_limit", &ratelimit::API_DEFAULTS)
    }

    /// Settings that work but are risky; `checkconfig` prints them and
    /// `serve` logs them, and neither refuses.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let remote = self
            .server
            .listen
            .parse::<SocketAddr>()
            .is_ok_and(|addr| !addr.ip().is_loopback());
        if self.demo.enabled && remote {
            warnings.push(format!(
                "demo.enabled: the demo mints tokens for any user and calls the server API without \
its key, and server.listen `{}` is reachable from the network; turn the demo off or listen on \
127.0.0.1",
                self.server.listen
            ));
        }
        warnings
    }

    fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        self.chat.check(&mut errors);
        self.webhooks.check(&mut errors);
        self.check_proxies(&mut errors);
        self.client.rate_limit.check(&mut errors);
        if let Err(e) = self.api_bucket() {
            errors.push(e);
        }
        self.admin.check(&mut errors);
        if self.server.listen.parse::<SocketAddr>().is_err() {
            errors.push(format!(
                "server.listen: `{}` is not an address like \"127.0.0.1:8000\"",
                self.server.listen
            ));
        }
        for origin in &self.server.allowed_origins {
            if !(origin == "*" || origin.starts_with("http://") || origin.starts_with("https://")) {
                errors.push(format!("server.allowed_origins: `{origin}` must start with http:// or https://, or be \"*\""));
            }
        }
        let durations = [
            ("server.shutdown_grace", &self.server.shutdown_grace),
            ("client.ping_interval", &self.client.ping_interval),
            ("client.pong_timeout", &self.client.pong_timeout),
            ("client.stale_timeout", &self.client.stale_timeout),
            (
                "client.expired_close_delay",
                &self.client.expired_close_delay,
            ),
        ];
        for (key, value) in durations {
            if let Err(e) = parse_duration(key, value) {
                errors.push(e);
            }
        }
        if parse_duration("", &self.client.ping_interval).is_ok_and(|d| d.as_secs() == 0) {
            errors.push("client.ping_interval: must be at least 1s".into());
        }
        for (key, path) in [
            ("auth.rsa_public_key", &self.auth.rsa_public_key),
            ("auth.ecdsa_public_key", &self.auth.ecdsa_public_key),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                errors.push(format!(
                    "{key}: `{}` is not a readable file",
                    path.display()
                ));
            }
        }
        if self.client.channel_limit == 0 {
            errors.push("client.channel_limit: must be at least 1".into());
        }
        if self.client.max_message_bytes < 1024 {
            errors.push("client.max_message_bytes: must be at least 1024".into());
        }
        if self.client.queue_max_messages == 0 || self.client.queue_max_bytes < 1024 {
            errors.push("client.queue_max_messages / client.queue_max_bytes: must be at least 1 message and 1024 bytes".into());
        }
        if !matches!(self.storage.sync.as_str(), "normal" | "full") {
            errors.push(format!(
                "storage.sync: `{}` must be \"normal\" or \"full\"",
                self.storage.sync
            ));
        }
        if let Some(url) = &self.storage.url {
            if let Err(e) = herald_postgres::check_url(url) {
                errors.push(e.to_string());
            }
            if !self.storage.durable {
                errors.push("storage.durable: false contradicts storage.url, which keeps history durable in PostgreSQL; remove one of them".into());
            }
        }
        match self.broker.kind.as_str() {
            "memory" => {}
            "redis" => self.broker.check(&mut errors),
            other => errors.push(format!(
                "broker.kind: `{other}` is unknown; expected \"memory\" or \"redis\""
            )),
        }
        let mut seen = std::collections::HashSet::new();
        for (index, (name, options)) in self.channel.namespaces.iter().enumerate() {
            let key = format!("channel.namespaces[{index}]");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                errors.push(format!("{key}.name: `{name}` must be non-empty and use only letters, digits, '_', '-' and '.'"));
            }
            if RESERVED_NAMESPACES.contains(&name.as_str()) {
                errors.push(format!(
                    "{key}.name: `{name}` is reserved for Herald's built-in features"
                ));
            }
            if !seen.insert(name) {
                errors.push(format!("{key}.name: `{name}` is defined twice"));
            }
            errors.extend(validate_options(&format!("{key} ({name})"), options));
        }
        errors.extend(validate_options(
            "channel.without_namespace",
            &self.channel.without_namespace,
        ));
        errors
    }
}

fn validate_options(key: &str, options: &ChannelOptions) -> Vec<String> {
    let mut errors = Vec::new();
    for (name, ttl) in [
        ("history_ttl", &options.history_ttl),
        ("history_meta_ttl", &options.history_meta_ttl),
    ] {
        if let Some(ttl) = ttl
            && let Err(e) = parse_duration(&format!("{key}.{name}"), ttl)
        {
            errors.push(e);
        }
    }
    if let Some(mode) = &options.force_recovery_mode
        && mode != "stream"
        && mode != "cache"
    {
        errors.push(format!(
            "{key}.force_recovery_mode: `{mode}` must be \"stream\" or \"cache\""
        ));
    }
    errors
}

#[cfg(test)]
mod tests;
