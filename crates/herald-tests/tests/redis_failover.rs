//! Redis going away under a publish stream: the node reports itself down,
//! publishes fail with a temporary error instead of vanishing, and once Redis is
//! back every acknowledged publication reaches the subscriber, or the subscriber
//! is told to recover.

//!
//! Each scenario runs in its own test binary: `herald_broker_up` is one gauge
//! per process, and nodes of another test flipping it would race the check.

use herald_tests::broker::{received_until, restart_mid_stream};
use herald_tests::redis::{RedisOptions, RedisServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_no_acknowledged_publication() {
    let Some(mut redis) = RedisServer::start_with(RedisOptions { appendonly: true }) else {
        return;
    };
    let (outcomes, mut client, _nodes) = restart_mid_stream(&mut redis).await;
    let top = *outcomes.acknowledged.last().unwrap();
    let (received, told_to_recover) = received_until(&mut client, top).await;
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
