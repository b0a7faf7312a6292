use super::*;

fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.toml");
    std::fs::write(&path, text).unwrap();
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load(Some(&path), &env)
}

#[test]
fn reads_the_design_example() {
    let config = load_str(
        r#"
[server]
listen = "127.0.0.1:8000"
allowed_origins = ["http://localhost:3000"]
[auth]
hmac_secret = "change-me"
[api]
key = "change-me-too"
[storage]
path = "herald-data"
[broker]
kind = "memory"
redis_url = "redis://127.0.0.1:6379"
[channel.without_namespace]
presence = true
[[channel.namespaces]]
name = "orders"
history_size = 100
history_ttl = "10m"
force_recovery = true
presence = true
join_leave = true
allow_subscribe_for_client = false
allow_publish_for_subscriber = false
allow_presence_for_subscriber = true
allow_history_for_subscriber = true
[[channel.namespaces]]
name = "dm"
allow_subscribe_for_client = true
allow_user_limited_channels = true
"#,
        &[],
    )
    .unwrap();
    assert_eq!(config.api.key, "change-me-too");
    assert_eq!(config.channel.namespaces[0].0, "orders");
    assert_eq!(config.channel.namespaces[0].1.history_size, 100);
    assert!(config.channel.namespaces[1].1.allow_user_limited_channels);
}

#[test]
fn environment_overrides_the_file_with_types_kept() {
    let config = load_str(
        "[api]\nkey = \"from-file\"\n",
        &[
            ("HERALD_API_KEY", "from-env"),
            ("HERALD_CLIENT_CHANNEL_LIMIT", "7"),
            (
                "HERALD_CLIENT_ALLOW_ANONYMOUS_CONNECT_WITHOUT_TOKEN",
                "true",
            ),
            (
                "HERALD_SERVER_ALLOWED_ORIGINS",
                "http://a.test, http://b.test",
            ),
            ("HERALD_BIN", "/not/a/config/key"),
        ],
    )
    .unwrap();
    assert_eq!(config.api.key, "from-env");
    assert_eq!(config.client.channel_limit, 7);
    assert!(config.client.allow_anonymous_connect_without_token);
    assert_eq!(
        config.server.allowed_origins,
        ["http://a.test", "http://b.test"]
    );
}

#[test]
fn every_problem_is_reported_with_its_key_path() {
    let errors = load_str(
        r#"
[server]
listen = "nowhere"
[client]
ping_interval = "soon"
[broker]
kind = "kafka"
[[channel.namespaces]]
name = "inbox"
[[channel.namespaces]]
name = "orders"
presense = true
[surprise]
"#,
        &[],
    )
    .unwrap_err();
    let all = errors.join("\n");
    for expected in [
        "server.listen",
        "client.ping_interval",
        "broker.kind",
        "channel.namespaces[0].name: `inbox` is reserved",
        "presense",
        "surprise: unknown section",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
}

#[test]
fn invalid_toml_names_the_file() {
    let errors = load_str("[server\n", &[]).unwrap_err();
    assert!(errors[0].contains("invalid TOML"), "{errors:?}");
}

#[test]
fn storage_url_must_be_postgres_and_never_echoes_the_password() {
    let config = load_str(
        "[storage]\nurl = \"postgresql://herald:pw@db.internal:5432/herald\"\n",
        &[],
    )
    .unwrap();
    assert!(config.storage.url.is_some());
    let errors = load_str(
        "[storage]\nurl = \"mysql://herald:pw@db/herald\"\ndurable = false\n",
        &[],
    )
    .unwrap_err();
    let all = errors.join("\n");
    assert!(
        all.contains("storage.url: `mysql://herald:***@db/herald` must start with postgres://"),
        "{all}"
    );
    assert!(
        all.contains("storage.durable: false contradicts storage.url"),
        "{all}"
    );
    assert!(!all.contains("pw@"), "{all}");
    let from_env = load_str("", &[("HERALD_STORAGE_URL", "postgres://h:notaport/db")]).unwrap_err();
    assert!(from_env[0].starts_with("storage.url: "), "{from_env:?}");
}

#[test]
fn inbox_chat_and_webhooks_sections_are_checked() {
    let config = load_str(
        "[chat]\nmax_text_length = 100\n[inbox]\nenabled = false\n",
        &[],
    )
    .unwrap();
    assert!(!config.app_settings().inbox);
    assert_eq!(config.app_settings().max_text_length, 100);
    let errors = load_str(
        "[chat]\nmax_text_length = 0\n[webhooks]\nurl = \"ftp://x\"\nevents = [\"user.online\", \"nope\"]\n",
        &[],
    )
    .unwrap_err();
    let all = errors.join("\n");
    assert!(all.contains("chat.max_text_length"), "{all}");
    assert!(all.contains("webhooks.url"), "{all}");
    assert!(all.contains("webhooks.secret"), "{all}");
    assert!(all.contains("nope"), "{all}");
    let env = load_str(
        "[webhooks]\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"s\"\n",
        &[("HERALD_WEBHOOKS_EVENTS", "user.online, chat.message")],
    )
    .unwrap();
    assert_eq!(env.webhooks.events, ["user.online", "chat.message"]);
}

#[test]
fn a_webhook_problem_is_one_error_even_when_its_text_holds_a_semicolon() {
    let errors = load_str(
        "[webhooks]\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"s\"\nevents = [\"nope\"]\n",
        &[],
    )
    .unwrap_err();
    let events: Vec<&String> = errors.iter().filter(|e| e.contains("nope")).collect();
    assert_eq!(events.len(), 1, "{errors:?}");
    assert!(
        events[0].starts_with("webhooks.events: unknown event `nope`; known events are "),
        "{errors:?}"
    );
    assert!(
        errors.iter().all(|e| e.starts_with("webhooks.")),
        "every line names its key: {errors:?}"
    );
}

#[test]
fn a_short_admin_password_is_refused() {
    let errors = load_str("[admin]\npassword = \"secret\"\n", &[]).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("admin.password: use at least 12")),
        "{errors:?}"
    );
    let config = load_str(
        "[admin]\npassword = \"a long enough one\"\n[demo]\nenabled = true\n",
        &[],
    )
    .unwrap();
    assert!(config.demo.enabled);
}

#[test]
fn proxies_and_rate_limits_read_in_centrifugos_vocabulary() {
    let config = load_str(
        r#"
[client.proxy.connect]
endpoint = "http://127.0.0.1:9000/connect"
http_headers = ["Cookie"]
[client.proxy.connect.http]
static_headers = { "X-Secret" = "s" }
[channel.proxy.subscribe]
endpoint = "http://127.0.0.1:9000/subscribe"
timeout = "300ms"
[rpc.proxy]
endpoint = "http://127.0.0.1:9000/rpc"
[rpc.without_namespace]
proxy_enabled = true
[[rpc.namespaces]]
name = "billing"
proxy_enabled = true
[[channel.namespaces]]
name = "orders"
subscribe_proxy_enabled = true
[client.rate_limit.client_command]
enabled = true
default = { rate = 50 }
publish = { rate = 5, interval = "10s", burst = 10 }
[client.rate_limit.connect]
rate = 20
"#,
        &[],
    )
    .unwrap();
    let proxies = config.proxies().unwrap().expect("proxies are configured");
    use herald_core::proxy::{ProxyKind, ProxyTransport};
    assert!(proxies.enabled(ProxyKind::Connect) && proxies.enabled(ProxyKind::Subscribe));
    assert!(!proxies.enabled(ProxyKind::Publish));
    assert!(proxies.proxies_rpc("getPrice") && proxies.proxies_rpc("billing:charge"));
    assert!(!proxies.proxies_rpc("other:x"));
    let limits = config.client.rate_limit.command_limits().unwrap();
    assert_eq!(limits.client_default.unwrap().rate.get(), 50);
    let publish = limits.client["publish"];
    assert_eq!((publish.rate.get(), publish.burst.get()), (5, 10));
    assert_eq!(publish.interval, Duration::from_secs(10));
    let connect = config.client.rate_limit.connect_bucket().unwrap().unwrap();
    assert_eq!(
        (connect.rate.get(), connect.burst.get()),
        (20, 20),
        "on by default; burst follows rate"
    );
}

#[test]
fn proxy_and_rate_limit_mistakes_name_their_keys() {
    let errors = load_str(
        r#"
[client.proxy.connect]
endpoint = "localhost:9000/connect"
[channel.proxy.publish]
endpoint = "http://127.0.0.1:9000/publish"
timeout = "soon"
[rpc.without_namespace]
proxy_enabled = true
[[channel.namespaces]]
name = "orders"
subscribe_proxy_enabled = true
[client.rate_limit.client_command]
enabled = true
publish = { rate = 0 }
[client.rate_limit.user_command]
enabled = true
disconnect_after_refused = { rate = 1 }
[api.rate_limit]
enabled = true
interval = "0s"
"#,
        &[],
    )
    .unwrap_err();
    let expected = [
        "client.proxy.connect.endpoint",
        "channel.proxy.publish.timeout",
        "rpc: proxy_enabled is set but no [rpc.proxy]",
        "channel.namespaces[0] (orders).subscribe_proxy_enabled: no [channel.proxy.subscribe]",
        "client.rate_limit.client_command.publish.rate: must be at least 1",
        "api.rate_limit.interval: must be longer than 0",
    ];
    for key in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(key)),
            "no error for {key}: {errors:#?}"
        );
    }
}
