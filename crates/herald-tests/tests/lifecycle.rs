//! Timers, limits and endings: ping/pong, expiry, slow readers, connection
//! limits, origins, and graceful shutdown.

use herald_tests::{Client, Event, TestServer, metric_value, test_config, token};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn server_pings_and_a_missing_pong_closes_with_3012() {
    let mut config = test_config();
    config.client.ping_interval = "1s".into();
    config.client.pong_timeout = "1s".into();
    let server = TestServer::start(config).await;
    let (mut answering, reply) = server.connect("a").await;
    assert_eq!(reply["connect"]["ping"], json!(1));
    let (mut silent, _) = server.connect("b").await;
    for _ in 0..3 {
        answering.wait_for(|m| m == &json!({})).await;
        answering.send_text("{}").await;
    }
    assert_eq!(silent.expect_close().await, (3012, "no pong".into()));
    // The answering client is still connected after three ping rounds.
    assert_eq!(answering.subscribe("alive").await["subscribe"], json!({}));
}

#[tokio::test]
async fn an_unrefreshed_connection_expires_with_3005() {
    let mut config = test_config();
    config.client.expired_close_delay = "1s".into();
    let server = TestServer::start(config).await;
    let mut client = Client::open(&server.ws_url()).await;
    let reply = client
        .call(json!({"connect": {"token": token("1", 1)}}))
        .await;
    assert_eq!(reply["connect"]["expires"], json!(true));
    assert_eq!(client.expect_close().await.0, 3005);
}

#[tokio::test]
async fn a_silent_socket_is_closed_as_stale() {
    let mut config = test_config();
    config.client.stale_timeout = "1s".into();
    let server = TestServer::start(config).await;
    let mut client = Client::open(&server.ws_url()).await;
    assert_eq!(client.expect_close().await.0, 3502);
}

#[tokio::test]
async fn user_connection_limit_closes_with_3504() {
    let mut config = test_config();
    config.client.user_connection_limit = 2;
    let server = TestServer::start(config).await;
    let _one = server.connect("u").await;
    let _two = server.connect("u").await;
    let mut third = Client::open(&server.ws_url()).await;
    third
        .send(json!({"connect": {"token": token("u", 60)}}))
        .await;
    assert_eq!(third.expect_close().await.0, 3504);
    let _other_user = server.connect("v").await;
}

#[tokio::test]
async fn origins_are_checked_on_upgrade() {
    let mut config = test_config();
    config.server.allowed_origins = vec!["http://good.test".into()];
    let server = TestServer::start(config).await;
    assert!(
        Client::open_with_origin(&server.ws_url(), Some("http://good.test"))
            .await
            .is_ok()
    );
    let refused = Client::open_with_origin(&server.ws_url(), Some("http://evil.test")).await;
    assert!(refused.err().unwrap().contains("403"));
}

#[tokio::test]
async fn a_slow_reader_is_dropped_with_3008_and_nobody_else_notices() {
    let mut config = test_config();
    config.client.queue_max_messages = 16;
    config.client.queue_max_bytes = 256 * 1024;
    config.api.max_body_bytes = 1024 * 1024;
    let server = TestServer::start(config).await;
    let (mut slow, _) = server.connect("slow").await;
    slow.subscribe("firehose").await;
    let (mut fast, _) = server.connect("fast").await;
    fast.subscribe("firehose").await;
    let before = metric_value(
        &server.metrics().await,
        "herald_disconnects_total{code=\"3008\"}",
    );

    let payload = "p".repeat(60_000);
    let total = 400;
    let reader = tokio::spawn(async move {
        let mut received = 0;
        while received < total {
            if let Event::Json(messages) = fast.read(Duration::from_secs(10)).await {
                received += messages
                    .iter()
                    .filter(|m| m["push"]["pub"].is_object())
                    .count();
            } else {
                panic!("fast reader lost its connection after {received}");
            }
        }
        received
    });
    for i in 0..total {
        let (status, _) = server
            .api(
                "publish",
                json!({"channel": "firehose", "data": {"i": i, "p": payload}}),
            )
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(
        reader.await.unwrap(),
        total,
        "the fast reader got every publication"
    );
    let after = metric_value(
        &server.metrics().await,
        "herald_disconnects_total{code=\"3008\"}",
    );
    assert!(
        after > before,
        "the slow reader was disconnected as slow ({before} -> {after})"
    );
    // The slow reader's socket ends: with a close frame if it got through, or not.
    loop {
        match slow.read(Duration::from_secs(10)).await {
            Event::Json(_) => continue,
            Event::Close(code, _) => {
                assert_eq!(code, 3008);
                break;
            }
            Event::Ended => break,
        }
    }
}

#[tokio::test]
async fn shutdown_closes_clients_with_3001() {
    let server = TestServer::default().await;
    let (mut client, _) = server.connect("1").await;
    let running = server.running;
    let stopping = tokio::spawn(running.shutdown());
    assert_eq!(client.expect_close().await, (3001, "shutdown".into()));
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .unwrap()
        .unwrap();
}
