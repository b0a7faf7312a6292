//! Redis going away under a publish stream: the node reports itself down,
//! publishes fail with a temporary error instead of vanishing, and once Redis is
//! back every acknowledged publication reaches the subscriber, or the subscriber
//! is told to recover.

use herald_tests::TestServer;
use herald_tests::broker::{
    DEADLINE, Outcomes, Publisher, received_until, standalone_config, two_nodes, wait_until,
};
use herald_tests::redis::{RedisOptions, RedisServer};
use serde_json::{Value, json};

fn node_config(redis: &str) -> herald_server::Config {
    let mut config = standalone_config(redis);
    config.broker.timeout = "1s".into();
    config
}

async fn health(server: &TestServer) -> (u16, Value) {
    let answer = reqwest::get(server.http_url("/health")).await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or_default())
}

/// Restarts Redis in the middle of a publish stream; returns the publisher's
/// outcomes and what the subscriber (on the other node) received.
async fn restart_mid_stream(redis: &mut RedisServer) -> (Outcomes, Vec<u64>, bool) {
    let (a, b) = two_nodes(&node_config(&redis.url())).await;
    let (mut client, _) = a.connect("alice").await;
    let reply = client
        .call(json!({"subscribe": {"channel": "history:stream", "positioned": true, "recoverable": true}}))
        .await;
    assert!(reply["subscribe"].is_object(), "{reply}");
    let publisher = Publisher::start(b.http_url(""), "history:stream");
    publisher
        .wait_for_more_acks("publishes before the restart", 20)
        .await;

    redis.kill();
    let down = wait_until("/health to report the broker down", DEADLINE, async || {
        let (status, body) = health(&a).await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(
        down["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{down}"
    );
    let metrics = a.metrics().await;
    assert!(
        metrics.contains("herald_broker_up 0"),
        "the metric shows it"
    );
    let failing = "a publish to fail with a temporary error";
    wait_until(failing, DEADLINE, async || publisher.last_error()).await;

    redis.restart();
    for node in [&a, &b] {
        wait_until("/health to recover", DEADLINE, async || {
            (health(node).await.0 == 200).then_some(())
        })
        .await;
    }
    publisher
        .wait_for_more_acks("publishes after the restart", 20)
        .await;
    let outcomes = publisher.stop().await;
    let top = *outcomes.acknowledged.last().unwrap();
    let (received, told_to_recover) = received_until(&mut client, top).await;
    (outcomes, received, told_to_recover)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_no_acknowledged_publication() {
    let Some(mut redis) = RedisServer::start_with(RedisOptions { appendonly: true }) else {
        return;
    };
    let (outcomes, received, told_to_recover) = restart_mid_stream(&mut redis).await;
    for error in &outcomes.errors {
        assert_eq!(error["code"], json!(100), "{error}");
        assert_eq!(error["temporary"], json!(true), "{error}");
    }
    assert!(
        !told_to_recover,
        "Redis kept the stream, so the mirror caught up"
    );
    let expected: Vec<u64> = (1..=*received.last().unwrap()).collect();
    assert_eq!(received, expected, "every offset once, in order");
    for offset in &outcomes.acknowledged {
        assert!(
            received.contains(offset),
            "acknowledged {offset} was delivered"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_its_data_makes_subscribers_recover() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let (outcomes, _, told_to_recover) = restart_mid_stream(&mut redis).await;
    assert!(!outcomes.errors.is_empty());
    assert!(
        told_to_recover,
        "the stream restarted in a new epoch: the subscriber must be told"
    );
}
