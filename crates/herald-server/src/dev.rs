//! Dev defaults: what `herald serve` runs with when no config file is given.

use crate::config::Config;
use crate::tokens;
use herald_core::ChannelOptions;
use std::net::ToSocketAddrs;
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

/// Dev defaults hand out tokens for any user and the server API without its
/// key, so they stay on loopback unless the user insists. `Ok` carries the
/// warning to print when they do; an address that does not resolve is left
/// for the bind to report.
pub fn check_listen(listen: &str, allow_remote: bool) -> Result<Option<String>, String> {
    let remote = listen
        .to_socket_addrs()
        .is_ok_and(|mut addrs| addrs.any(|addr| !addr.ip().is_loopback()));
    if !remote {
        return Ok(None);
    }
    if !allow_remote {
        return Err(format!(
            "refusing to serve dev defaults on {listen}: without a config file anyone who can reach it \
may mint a token for any user and publish through the demo's backend. For a server others can \
reach, run `herald genconfig` and then `herald serve --config herald.toml`; to expose dev \
defaults anyway, add --dev-allow-remote."
        ));
    }
    let rule = "!".repeat(78);
    Ok(Some(format!(
        "{rule}\n!! WARNING: dev defaults on {listen}, reachable from the network \
(--dev-allow-remote).\n!! Anyone who can reach this address may mint a token for any user, \
publish and call\n!! the inbox and chat API through /demo. Never do this on a shared network.\n{rule}"
    )))
}

#[cfg(test)]
mod tests {
    use super::check_listen;

    #[test]
    fn loopback_is_served_and_other_addresses_need_the_flag() {
        for listen in ["127.0.0.1:8000", "[::1]:0", "localhost:0"] {
            assert_eq!(check_listen(listen, false), Ok(None), "{listen}");
        }
        let refused = check_listen("0.0.0.0:8000", false).unwrap_err();
        assert!(refused.contains("herald genconfig"), "{refused}");
        assert!(refused.contains("--dev-allow-remote"), "{refused}");
        let warning = check_listen("0.0.0.0:8000", true).unwrap().unwrap();
        assert!(warning.contains("WARNING"), "{warning}");
    }
}
