//! Rate limits through real sockets: a connection's command rate (111, then
//! 3013 once refusals go on), a user's rate across its connections, connects
//! per client IP and server API calls (429 with Retry-After).

use herald_server::config::{BucketSection, Limit};
use herald_tests::{Client, TestServer, metric_value, test_config, token};
use serde_json::json;

fn bucket(rate: u32) -> Option<BucketSection> {
    Some(BucketSection {
        rate,
        interval: "1m".into(),
        burst: None,
    })
}

#[tokio::test]
async fn a_connection_over_its_command_rate_gets_111_then_3013() {
    let mut config = test_config();
    let commands = &mut config.client.rate_limit.client_command;
    commands.enabled = true;
    commands.publish = bucket(3);
    commands.disconnect_after_refused = bucket(2);
    let server = TestServer::start(config).await;
    let (mut client, _) = server.connect("42").await;
    assert!(client.subscribe("room").await.get("subscribe").is_some());
    let publish = json!({"publish": {"channel": "room", "data": {}}});
    for n in 1..=3 {
        let reply = client.call(publish.clone()).await;
        assert!(reply.get("publish").is_some(), "publish {n}: {reply}");
    }
    for _ in 0..2 {
        let refused = client.call(publish.clone()).await;
        assert_eq!(refused["error"]["code"], 111, "{refused}");
        assert_eq!(refused["error"]["temporary"], true);
    }
    let presence = client
        .call(json!({"presence_stats": {"channel": "room"}}))
        .await;
    assert!(
        presence.get("presence_stats").is_some(),
        "other commands go on: {presence}"
    );
    client.send(publish).await;
    assert_eq!(client.expect_close().await.0, 3013);
    let metrics = server.metrics().await;
    let series = r#"herald_rate_limited_total{scope="client",method="publish"}"#;
    assert_eq!(metric_value(&metrics, series), 3.0);
}

#[tokio::test]
async fn a_users_rate_is_shared_by_its_connections() {
    let mut config = test_config();
    let commands = &mut config.client.rate_limit.user_command;
    commands.enabled = true;
    commands.rpc = bucket(2);
    let server = TestServer::start(config).await;
    let (mut tab, _) = server.connect("42").await;
    let (mut phone, _) = server.connect("42").await;
    let (mut other, _) = server.connect("43").await;
    let rpc = json!({"rpc": {"method": "anything"}});
    // Past the limiter, an unknown method answers 104.
    assert_eq!(tab.call(rpc.clone()).await["error"]["code"], 104);
    assert_eq!(phone.call(rpc.clone()).await["error"]["code"], 104);
    assert_eq!(tab.call(rpc.clone()).await["error"]["code"], 111);
    assert_eq!(
        other.call(rpc).await["error"]["code"],
        104,
        "another user's own rate"
    );
}

#[tokio::test]
async fn connects_over_the_per_ip_rate_are_refused_with_429() {
    let mut config = test_config();
    config.client.rate_limit.connect = Limit {
        enabled: Some(true),
        rate: Some(1),
        interval: Some("1m".into()),
        burst: Some(3),
    };
    let server = TestServer::start(config).await;
    let mut open = Vec::new();
    for n in 1..=3 {
        let client = Client::open_with_headers(&server.ws_url(), &[]).await;
        open.push(client.unwrap_or_else(|e| panic!("connect {n}: {e}")));
    }
    let refused = Client::open_with_headers(&server.ws_url(), &[]).await;
    let error = refused.err().expect("the fourth connect is refused");
    assert!(error.contains("429"), "{error}");
    let stream = reqwest::Client::new()
        .post(server.http_url("/connection/http_stream"))
        .body(json!({"id": 1, "connect": {"token": token("42", 60)}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 429, "every transport counts");
    assert!(stream.headers().get("retry-after").is_some());
    let metrics = server.metrics().await;
    let series = r#"herald_rate_limited_total{scope="connect",method="any"}"#;
    assert_eq!(metric_value(&metrics, series), 2.0);
}

#[tokio::test]
async fn server_api_calls_over_the_rate_are_refused_with_429() {
    let mut config = test_config();
    config.api.rate_limit = Limit {
        enabled: Some(true),
        rate: Some(2),
        interval: Some("1m".into()),
        burst: None,
    };
    let server = TestServer::start(config).await;
    for _ in 0..2 {
        assert_eq!(server.api("info", json!({})).await.0, 200);
    }
    let (status, body) = server.api("info", json!({})).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], 111, "{body}");
}
