//! Hostile and broken input: each case gets its precise code, and the server
//! keeps serving everyone else.

use herald_tests::{API_KEY, Client, TestServer, metric_value, now, sign, test_config};
use serde_json::json;

/// A well-behaved client still connects, subscribes and receives a publication.
async fn others_unaffected(server: &TestServer) {
    let (mut client, _) = server.connect("bystander").await;
    client.subscribe("calm").await;
    server
        .api("publish", json!({"channel": "calm", "data": "still here"}))
        .await;
    let push = client.wait_for(|m| m["push"]["pub"].is_object()).await;
    assert_eq!(push["push"]["pub"]["data"], json!("still here"));
}

#[tokio::test]
async fn invalid_json_closes_with_3501_and_is_counted() {
    let server = TestServer::default().await;
    let before = metric_value(
        &server.metrics().await,
        "herald_disconnects_total{code=\"3501\"}",
    );
    let (mut client, _) = server.connect("1").await;
    client.send_text("{not json").await;
    assert_eq!(client.expect_close().await, (3501, "bad request".into()));
    let after = metric_value(
        &server.metrics().await,
        "herald_disconnects_total{code=\"3501\"}",
    );
    assert!(
        after > before,
        "disconnect metric counted ({before} -> {after})"
    );
    others_unaffected(&server).await;
}

#[tokio::test]
async fn a_command_before_connect_closes_with_3501() {
    let server = TestServer::default().await;
    let mut client = Client::open(&server.ws_url()).await;
    client.send(json!({"subscribe": {"channel": "x"}})).await;
    assert_eq!(client.expect_close().await.0, 3501);
}

#[tokio::test]
async fn an_unknown_command_answers_104_and_keeps_the_connection() {
    let server = TestServer::default().await;
    let (mut client, _) = server.connect("1").await;
    let reply = client.call(json!({"teleport": {"to": "mars"}})).await;
    assert_eq!(reply["error"]["code"], json!(104));
    assert_eq!(
        client.subscribe("still-works").await["subscribe"],
        json!({})
    );
}

#[tokio::test]
async fn an_oversize_frame_closes_with_1009() {
    let mut config = test_config();
    config.client.max_message_bytes = 4096;
    let server = TestServer::start(config).await;
    let (mut client, _) = server.connect("1").await;
    let big = json!({"id": 9, "publish": {"channel": "x", "data": "a".repeat(10_000)}});
    client.send_text(big.to_string()).await;
    assert_eq!(client.expect_close().await.0, 1009);
    others_unaffected(&server).await;
}

#[tokio::test]
async fn bad_tokens_get_their_codes() {
    let server = TestServer::default().await;
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "1"}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret"),
    )
    .unwrap();
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(r#"{"sub":"1"}"#)
    );
    for (token, expected) in [
        (wrong_key, 3500),
        (alg_none, 3500),
        ("garbage".to_string(), 3500),
    ] {
        let mut client = Client::open(&server.ws_url()).await;
        client.send(json!({"connect": {"token": token}})).await;
        assert_eq!(client.expect_close().await.0, expected, "token {token}");
    }
    let mut client = Client::open(&server.ws_url()).await;
    let expired = sign(json!({"sub": "1", "exp": now() - 10}));
    let reply = client.call(json!({"connect": {"token": expired}})).await;
    assert_eq!(reply["error"]["code"], json!(109));
    let reply = client.call(json!({"connect": {}})).await;
    assert_eq!(
        reply["error"]["code"],
        json!(101),
        "anonymous is off by default"
    );
    others_unaffected(&server).await;
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn two_thousand_subscribes_in_one_frame_hit_the_channel_limit() {
    let mut config = test_config();
    // 2,000 subscribes take about 100 KiB, over the 64 KiB default frame limit.
    config.client.max_message_bytes = 256 * 1024;
    let server = TestServer::start(config).await;
    let (mut client, _) = server.connect("flood").await;
    let frame: Vec<String> = (0..2000)
        .map(|i| json!({"id": 100 + i, "subscribe": {"channel": format!("flood-{i}")}}).to_string())
        .collect();
    client.send_text(frame.join("\n")).await;
    let mut ok = 0;
    let mut limited = 0;
    for i in 0..2000 {
        let reply = client.wait_for(|m| m["id"] == json!(100 + i)).await;
        match reply["error"]["code"].as_u64() {
            None => ok += 1,
            Some(106) => limited += 1,
            Some(other) => panic!("unexpected code {other}"),
        }
    }
    assert_eq!((ok, limited), (128, 1872));
    others_unaffected(&server).await;
}

#[tokio::test]
async fn api_rejects_wrong_keys_malformed_json_and_oversize_bodies() {
    let mut config = test_config();
    config.api.max_body_bytes = 1024;
    let server = TestServer::start(config).await;
    let (status, _) = server
        .api_raw(
            "publish",
            json!({"channel": "x", "data": 1}).to_string(),
            "wrong",
        )
        .await;
    assert_eq!(status, 401);
    let (status, body) = server
        .api_raw("publish", "{\"channel\":".into(), API_KEY)
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"),
        "{body}"
    );
    let big = json!({"channel": "x", "data": "a".repeat(4096)}).to_string();
    let (status, _) = server.api_raw("publish", big, API_KEY).await;
    assert_eq!(status, 413);
    let (status, body) = server
        .api("publish", json!({"channel": "nope:1", "data": 1}))
        .await;
    assert_eq!((status, &body["error"]["code"]), (200, &json!(102)));
    let (status, _) = server.api("no_such_method", json!({})).await;
    assert_eq!(status, 404);
    others_unaffected(&server).await;
}
