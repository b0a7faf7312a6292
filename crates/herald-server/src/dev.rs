//! Dev defaults: what `herald serve` runs with when no config file is given.

use crate::config::Config;
use crate::tokens;
use herald_core::ChannelOptions;
use std::time::Duration;

/// Permissive options for trying things out: anyone connected may subscribe,
/// publish, see presence and join/leave, and recover missed publications.
fn open_namespace() -> ChannelOptions {
    ChannelOptions {
        presence: true,
        join_leave: true,
        force_push_join_leave: true,
        allow_subscribe_for_client: true,
        allow_subscribe_for_anonymous: true,
        allow_publish_for_client: true,
        allow_presence_for_subscriber: true,
        allow_history_for_subscriber: true,
        history_size: 100,
        history_ttl: Some("10m".into()),
        force_recovery: true,
        ..Default::default()
    }
}

/// A config with fresh secrets, the demo and its namespaces, and an admin
/// password.
pub fn config() -> Config {
    let mut config = Config::default();
    config.auth.hmac_secret = tokens::random_secret(32);
    config.api.key = tokens::random_secret(32);
    config.client.allow_anonymous_connect_without_token = true;
    config.channel.without_namespace = open_namespace();
    for name in ["dashboard", "news", "status"] {
        config
            .channel
            .namespaces
            .push((name.into(), open_namespace()));
    }
    // An order channel is a live document: a subscribe gets its latest state.
    let orders = ChannelOptions {
        force_recovery_mode: Some("cache".into()),
        ..open_namespace()
    };
    config.channel.namespaces.push(("orders".into(), orders));
    config.demo.enabled = true;
    config.admin.password = tokens::random_secret(16);
    config.channel.namespaces.push((
        "dm".into(),
        ChannelOptions {
            allow_user_limited_channels: true,
            presence: true,
            allow_presence_for_subscriber: true,
            allow_publish_for_subscriber: true,
            ..Default::default()
        },
    ));
    config
}

/// What to paste next, printed once at start-up in dev mode.
pub fn banner(config: &Config, url: &str) -> String {
    let token = tokens::mint(
        &config.auth.hmac_secret,
        "demo",
        Some(Duration::from_secs(24 * 3600)),
        None,
        None,
    )
    .unwrap_or_else(|e| format!("(could not mint: {e})"));
    let lines = [
        "",
        "Herald is running with dev defaults (no config file). Secrets below are new on every start.",
        "",
        "  Demo:        {url}/    (open it in two windows, as two roles)",
        "  WebSocket:   {ws}/connection/websocket",
        "  Health:      {url}/health      Metrics: {url}/metrics",
        "  Admin:       {url}/admin       password: {admin}",
        "",
        "  HMAC secret: {secret}",
        "  API key:     {key}",
        "  Token (user \"demo\", 24h):",
        "    {token}",
        "",
        "Publish to channel \"news\":",
        "  curl -s -X POST {url}/api/publish -H 'X-API-Key: {key}' -d '{\"channel\":\"news\",\"data\":{\"text\":\"hello\"}}'",
        "",
        "For a fixed setup, run `herald genconfig` and then `herald serve --config herald.toml`.",
    ];
    lines
        .join("\n")
        .replace("{url}", url)
        .replace("{ws}", &url.replacen("http", "ws", 1))
        .replace("{secret}", &config.auth.hmac_secret)
        .replace("{key}", &config.api.key)
        .replace("{admin}", &config.admin.password)
        .replace("{token}", &token)
}
