//! The proxies against a real HTTP backend (`herald_tests::backend`):
//! every kind, its success and each error form, header forwarding, and
//! timeouts, through real WebSocket connections.

use herald_core::ChannelOptions;
use herald_server::config::ProxySection;
use herald_tests::backend::Backend;
use herald_tests::{Client, TestServer, metric_value, test_config};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn proxy(url: String, headers: &[&str]) -> Option<ProxySection> {
    Some(ProxySection {
        endpoint: url,
        timeout: "500ms".into(),
        http_headers: headers.iter().map(|h| h.to_string()).collect(),
        http: Default::default(),
    })
}

/// A server whose every proxy asks `backend`, with a `proxied` namespace
/// that asks it for subscribes, publishes and subscription refreshes.
async fn server_with(backend: &Backend, connect_endpoint: &str) -> TestServer {
    let mut config = test_config();
    config.client.proxy.connect = proxy(
        backend.url(connect_endpoint),
        &["Cookie", "X-Forwarded-For"],
    );
    config.client.proxy.refresh = proxy(backend.url("refresh"), &["Cookie"]);
    config.channel.proxy.subscribe = proxy(backend.url("subscribe"), &["Cookie"]);
    config.channel.proxy.publish = proxy(backend.url("publish"), &[]);
    config.channel.proxy.sub_refresh = proxy(backend.url("sub_refresh"), &[]);
    config.rpc.proxy = proxy(backend.url("rpc"), &[]);
    config.rpc.without_namespace.proxy_enabled = true;
    config.channel.namespaces.push((
        "proxied".into(),
        ChannelOptions {
            subscribe_proxy_enabled: true,
            publish_proxy_enabled: true,
            sub_refresh_proxy_enabled: true,
            ..Default::default()
        },
    ));
    TestServer::start(config).await
}

/// A client that connects with only its session cookie, as a browser on the
/// app's own domain does.
async fn with_cookie(server: &TestServer, cookie: Option<&str>) -> (Client, Value) {
    let mut headers = vec![
        ("x-forwarded-for", "203.0.113.9"),
        ("user-agent", "test-agent"),
    ];
    let cookie = cookie.map(|user| format!("sessionid={user}"));
    if let Some(cookie) = &cookie {
        headers.push(("cookie", cookie));
    }
    let mut client = Client::open_with_headers(&server.ws_url(), &headers)
        .await
        .unwrap();
    let reply = client
        .call(json!({"connect": {"name": "test", "data": {"tz": "UTC"}}}))
        .await;
    (client, reply)
}

#[tokio::test]
async fn connect_proxy_accepts_a_session_cookie_and_forwards_only_listed_headers() {
    let backend = Backend::start().await;
    let server = server_with(&backend, "connect").await;
    let (_client, reply) = with_cookie(&server, Some("alice")).await;
    assert_eq!(
        reply["connect"]["data"],
        json!({"welcome": "alice"}),
        "{reply}"
    );
    let asked = &backend.asked("connect")[0];
    assert_eq!(asked.headers["cookie"], "sessionid=alice");
    assert_eq!(asked.headers["x-forwarded-for"], "203.0.113.9");
    assert_eq!(asked.headers["x-herald-proxy-kind"], "connect");
    assert!(
        asked.headers.get("user-agent").is_none(),
        "not listed, not forwarded"
    );
    assert_eq!(asked.body["client"], reply["connect"]["client"]);
    assert_eq!(asked.body["transport"], "websocket");
    assert_eq!(asked.body["name"], "test");
    assert_eq!(asked.body["data"], json!({"tz": "UTC"}));
    let (_, users) = server.api("info", json!({})).await;
    assert_eq!(users["result"]["nodes"][0]["num_users"], 1, "{users}");
}

#[tokio::test]
async fn connect_proxy_errors_disconnects_and_failures_reach_the_client() {
    let backend = Backend::start().await;
    let server = server_with(&backend, "connect").await;
    let (_, refused) = with_cookie(&server, None).await;
    assert_eq!(
        refused["error"],
        json!({"code": 1401, "message": "login required"})
    );

    let mut banned = Client::open_with_headers(&server.ws_url(), &[("cookie", "sessionid=banned")])
        .await
        .unwrap();
    banned.send(json!({"connect": {}})).await;
    assert_eq!(banned.expect_close().await, (4403, "banned".to_string()));

    for endpoint in ["slow", "nowhere"] {
        let backend_for = if endpoint == "nowhere" {
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", closed.local_addr().unwrap());
            drop(closed);
            url
        } else {
            backend.base.clone()
        };
        let mut config = test_config();
        config.client.proxy.connect = proxy(format!("{backend_for}/{endpoint}"), &[]);
        let server = TestServer::start(config).await;
        let started = Instant::now();
        let (_, reply) = with_cookie(&server, Some("alice")).await;
        assert_eq!(reply["error"]["code"], 100, "{endpoint}: {reply}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the 500 ms timeout applies"
        );
        let metrics = server.metrics().await;
        let failed = r#"herald_proxy_requests_total{kind="connect",outcome="failed"}"#;
        assert!(metric_value(&metrics, failed) >= 1.0, "{endpoint}: counted");
    }
}

#[tokio::test]
async fn subscribe_proxy_grants_with_data_or_refuses_with_the_backends_code() {
    let backend = Backend::start().await;
    let server = server_with(&backend, "connect").await;
    let (mut client, _) = with_cookie(&server, Some("alice")).await;
    let granted = client.subscribe("proxied:alice-orders").await;
    assert_eq!(
        granted["subscribe"]["data"],
        json!({"granted": "proxied:alice-orders"}),
        "{granted}"
    );
    let denied = client.subscribe("proxied:bob-orders").await;
    assert_eq!(
        denied["error"],
        json!({"code": 403, "message": "permission denied"})
    );
    let asked = &backend.asked("subscribe")[0];
    assert_eq!(asked.body["user"], "alice");
    assert_eq!(asked.body["channel"], "proxied:alice-orders");
    assert_eq!(asked.headers["cookie"], "sessionid=alice");
}

#[tokio::test]
async fn publish_proxy_rewrites_what_subscribers_get_or_refuses_with_the_backends_code() {
    let backend = Backend::start().await;
    let server = server_with(&backend, "connect").await;
    let (mut alice, _) = with_cookie(&server, Some("alice")).await;
    let (mut reader, _) = with_cookie(&server, Some("alice-phone")).await;
    let channel = "proxied:alice-phone-chat";
    assert!(reader.subscribe(channel).await.get("subscribe").is_some());
    let published = alice
        .call(json!({"publish": {"channel": channel, "data": {"text": "hello"}}}))
        .await;
    assert!(published.get("publish").is_some(), "{published}");
    let publication = reader.wait_for(|m| m["push"]["pub"].is_object()).await;
    assert_eq!(
        publication["push"]["pub"]["data"],
        json!({"text": "HELLO", "by": "alice"})
    );
    let refused = alice
        .call(json!({"publish": {"channel": channel, "data": {"text": "buy spam"}}}))
        .await;
    assert_eq!(refused["error"]["code"], 1403, "{refused}");
}

#[tokio::test]
async fn rpc_proxy_answers_methods_without_namespace() {
    let backend = Backend::start().await;
    let server = server_with(&backend, "connect").await;
    let (mut client, _) = with_cookie(&server, Some("alice")).await;
    let echoed = client
        .call(json!({"rpc": {"method": "echo", "data": {"n": 1}}}))
        .await;
    assert_eq!(
        echoed["rpc"]["data"],
        json!({"user": "alice", "data": {"n": 1}})
    );
    let unknown = client.call(json!({"rpc": {"method": "missing"}})).await;
    assert_eq!(unknown["error"]["code"], 1404);
    let namespaced = client
        .call(json!({"rpc": {"method": "billing:charge"}}))
        .await;
    assert_eq!(
        namespaced["error"]["code"], 104,
        "no [[rpc.namespaces]] routes it"
    );
}

#[tokio::test]
async fn refresh_and_sub_refresh_proxies_end_what_the_backend_says_expired() {
    let backend = Backend::start().await;
    let server = server_with(&backend, "connect").await;
    let (mut client, reply) = with_cookie(&server, Some("alice")).await;
    assert!(reply.get("connect").is_some());
    let subscribed = client.subscribe("proxied:alice-short").await;
    assert!(subscribed.get("subscribe").is_some(), "{subscribed}");
    let unsubscribed = client
        .wait_for(|m| {
            m["push"]["channel"] == "proxied:alice-short" && m["push"]["unsubscribe"].is_object()
        })
        .await;
    assert_eq!(
        unsubscribed["push"]["unsubscribe"]["code"], 2501,
        "{unsubscribed}"
    );
    assert_eq!(
        backend.asked("sub_refresh")[0].body["channel"],
        "proxied:alice-short"
    );

    let (mut short, _) = with_cookie(&server, Some("short-lived")).await;
    assert_eq!(short.expect_close().await.0, 3005);
    assert_eq!(backend.asked("refresh")[0].body["user"], "short-lived");
}
