//! `herald genconfig`: a commented config file with fresh random secrets.

use crate::tokens::random_secret;

pub fn render() -> String {
    TEMPLATE
        .replace("{HMAC_SECRET}", &random_secret(40))
        .replace("{API_KEY}", &random_secret(40))
        .replace("{ADMIN_PASSWORD}", &random_secret(24))
}

const TEMPLATE: &str = r#"# Herald config. Every key can be overridden by an environment variable
# HERALD_<SECTION>_<KEY>, e.g. HERALD_API_KEY or HERALD_SERVER_LISTEN.
# Check it with: herald checkconfig herald.toml

[server]
listen = "127.0.0.1:8000"
# Origins allowed to open a WebSocket (browsers send Origin). Empty allows any.
allowed_origins = ["http://localhost:3000"]
# How long shutdown waits for clients to leave after telling them to reconnect.
shutdown_grace = "10s"

[auth]
# Signs and verifies HS256/384/512 connection and subscription tokens.
hmac_secret = "{HMAC_SECRET}"
# rsa_public_key = "rsa.pem"        # RS256 tokens
# ecdsa_public_key = "ec.pem"       # ES256 tokens
# audience = "herald"               # require this `aud`
# issuer = "my-backend"             # require this `iss`

[api]
# Backends call POST /api/<method> with  X-API-Key: <key>
key = "{API_KEY}"
max_body_bytes = 1048576

[client]
allow_anonymous_connect_without_token = false
ping_interval = "25s"
pong_timeout = "10s"
channel_limit = 128
user_connection_limit = 0           # 0 = unlimited
max_message_bytes = 65536
queue_max_messages = 4096           # a client that falls further behind is
queue_max_bytes = 4194304           # disconnected with 3008 "slow"

[storage]
# History, epochs and idempotency keys survive restarts and kill -9 in SQLite
# under this directory (the embedded default).
path = "herald-data"
sync = "normal"                     # "full" also survives a power cut
# Or keep them in PostgreSQL instead; a url implies durable, path and sync are
# then unused. The schema is created and migrated at start.
# url = "postgres://herald:password@127.0.0.1:5432/herald"

[broker]
# "memory": one node. "redis": several nodes that behave as one (docs/scale-out.md).
kind = "memory"
# redis_url = "redis://127.0.0.1:6379"
# For Sentinel instead: sentinel_urls = ["redis://10.0.0.1:26379"] and sentinel_master = "mymaster"
# For a Cluster instead: cluster_urls = ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]
# prefix = "herald"          # starts every Redis key, so apps can share one Redis

[inbox]
enabled = true                      # notifications: docs/inbox.md

[chat]
enabled = true                      # conversations: docs/chat.md
max_text_length = 4000

[webhooks]
# POST signed events to your backend (docs/webhooks.md); empty url: off.
url = ""
# secret = "a long random string"
# events = ["user.online", "user.offline", "chat.message"]   # empty: all

[transports]
# Fallbacks for browsers behind proxies that block WebSocket; the SDK tries
# them in the order the app lists them (docs/transports.md).
http_stream = true
sse = true

[admin]
# The HTTP Basic password of the admin page at /admin (any user name).
# Remove it to switch the page off.
password = "{ADMIN_PASSWORD}"

[demo]
# The demo at / mints tokens for anyone and calls the API without its key:
# for trying Herald out, never in production.
enabled = false

[channel.without_namespace]
presence = true
allow_subscribe_for_client = true
allow_presence_for_subscriber = true

[[channel.namespaces]]
name = "orders"
presence = true
join_leave = true
allow_subscribe_for_client = false  # subscribe with a subscription token from your backend
allow_publish_for_subscriber = false
allow_presence_for_subscriber = true

[[channel.namespaces]]
name = "dashboard"
allow_subscribe_for_client = false

[[channel.namespaces]]
name = "dm"
allow_subscribe_for_client = true
allow_user_limited_channels = true  # dm:#42,43 only for users 42 and 43
allow_publish_for_subscriber = true
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn generated_config_passes_its_own_check_with_fresh_secrets() {
        let first = super::render();
        assert_ne!(first, super::render(), "secrets must differ between runs");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        std::fs::write(&path, &first).unwrap();
        let config = crate::config::load(Some(&path), &Default::default()).unwrap();
        assert_eq!(config.auth.hmac_secret.len(), 40);
        assert_eq!(config.admin.password.len(), 24);
        assert!(!config.demo.enabled, "the demo is for dev defaults only");
        assert_eq!(config.channel.namespaces.len(), 3);
        assert_eq!(config.storage.url, None, "SQLite stays the default");
        assert!(
            first.contains("\n# url = \"postgres://"),
            "the PostgreSQL option is shown"
        );
    }
}
