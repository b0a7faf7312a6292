//! Several herald nodes on one Redis behave like one node: delivery, history
//! and recovery, presence, and server-API actions reach every node.

use herald_tests::TestServer;
use herald_tests::broker::{
    a_client_recovers_on_another_node, publications_reach_another_node_in_order, standalone_config,
};
use herald_tests::redis::RedisServer;
use serde_json::json;

/// A fresh Redis and two nodes on it; `None` when Redis is not installed
/// (outside CI).
async fn two_nodes_on_redis() -> Option<(RedisServer, TestServer, TestServer)> {
    let redis = RedisServer::start()?;
    let (a, b) = herald_tests::broker::two_nodes(&standalone_config(&redis.url())).await;
    Some((redis, a, b))
}

#[tokio::test]
async fn a_publication_on_one_node_reaches_subscribers_of_another_in_order() {
    let Some((_redis, a, b)) = two_nodes_on_redis().await else {
        return;
    };
    publications_reach_another_node_in_order(&a, &b, &["history:orders"]).await;
}

#[tokio::test]
async fn a_client_recovers_on_another_node_what_it_missed() {
    let Some((_redis, a, b)) = two_nodes_on_redis().await else {
        return;
    };
    a_client_recovers_on_another_node(&a, &b, "history:r").await;
}

#[tokio::test]
async fn presence_and_join_leave_span_nodes() {
    let Some((_redis, a, b)) = two_nodes_on_redis().await else {
        return;
    };
    let (mut alice, _) = a.connect("alice").await;
    alice.subscribe("room").await;
    let (mut bob, _) = b.connect("bob").await;
    bob.subscribe("room").await;
    let join = alice
        .wait_for(|m| m["push"]["join"]["info"]["user"] == json!("bob"))
        .await;
    assert_eq!(join["push"]["channel"], json!("room"));
    let (_, stats) = a.api("presence_stats", json!({"channel": "room"})).await;
    assert_eq!(stats["result"], json!({"num_clients": 2, "num_users": 2}));
    drop(bob);
    alice
        .wait_for(|m| m["push"]["leave"]["info"]["user"] == json!("bob"))
        .await;
    let (_, presence) = a.api("presence", json!({"channel": "room"})).await;
    let users: Vec<&str> = presence["result"]["presence"]
        .as_object()
        .unwrap()
        .values()
        .map(|info| info["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["alice"]);
}

#[tokio::test]
async fn server_api_actions_reach_users_on_other_nodes() {
    let Some((_redis, a, b)) = two_nodes_on_redis().await else {
        return;
    };
    let (mut alice, _) = a.connect("alice").await;
    let (status, _) = b
        .api("subscribe", json!({"user": "alice", "channel": "news"}))
        .await;
    assert_eq!(status, 200);
    alice
        .wait_for(|m| m["push"]["subscribe"].is_object() && m["push"]["channel"] == json!("news"))
        .await;
    publish_at_plain(&b, "news").await;
    alice
        .wait_for(|m| m["push"]["pub"]["data"] == json!("hello"))
        .await;
    let (_, info) = a.api("info", json!({})).await;
    assert_eq!(
        info["result"]["nodes"].as_array().unwrap().len(),
        2,
        "{info}"
    );
    let disconnect = json!({"user": "alice", "disconnect": {"code": 4001, "reason": "bye"}});
    b.api("disconnect", disconnect).await;
    assert_eq!(alice.expect_close().await, (4001, "bye".to_string()));
}

async fn publish_at_plain(server: &TestServer, channel: &str) {
    let (status, body) = server
        .api("publish", json!({"channel": channel, "data": "hello"}))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_idempotency_key_dedupes_across_nodes() {
    let Some((_redis, a, b)) = two_nodes_on_redis().await else {
        return;
    };
    let keyed = json!({"channel": "history:idem", "data": 1, "idempotency_key": "order-7"});
    let (_, first) = a.api("publish", keyed.clone()).await;
    let (_, again) = b.api("publish", keyed).await;
    assert_eq!(first["result"]["offset"], json!(1), "{first}");
    assert_eq!(
        again["result"], first["result"],
        "the repeat names the original"
    );
    let (_, history) = b
        .api("history", json!({"channel": "history:idem", "limit": -1}))
        .await;
    assert_eq!(
        herald_tests::offsets(&history["result"]["publications"]),
        [1]
    );
}

#[tokio::test]
async fn apps_with_different_prefixes_share_a_redis_without_meeting() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut other_app = standalone_config(&redis.url());
    other_app.broker.prefix = "other".into();
    let ours = TestServer::start(standalone_config(&redis.url())).await;
    let theirs = TestServer::start(other_app).await;
    let (mut client, _) = ours.connect("alice").await;
    client.subscribe("history:shared").await;
    herald_tests::publish_at(&theirs, "history:shared", json!("theirs")).await;
    let (offset, _) = herald_tests::publish_at(&ours, "history:shared", json!("ours")).await;
    assert_eq!(offset, 1, "the other app's stream is its own");
    let publication = client.wait_for(|m| m["push"]["pub"].is_object()).await;
    assert_eq!(publication["push"]["pub"]["data"], json!("ours"));
    let (_, info) = ours.api("info", json!({})).await;
    assert_eq!(
        info["result"]["nodes"].as_array().unwrap().len(),
        1,
        "{info}"
    );
}

#[tokio::test]
async fn a_refresh_through_one_node_reaches_a_client_on_another() {
    let Some((_redis, a, b)) = two_nodes_on_redis().await else {
        return;
    };
    let (mut alice, _) = a.connect("alice").await;
    let expire_at = herald_tests::now() + 600;
    b.api("refresh", json!({"user": "alice", "expire_at": expire_at}))
        .await;
    let refresh = alice.wait_for(|m| m["push"]["refresh"].is_object()).await;
    assert_eq!(
        refresh["push"]["refresh"]["expires"],
        json!(true),
        "{refresh}"
    );
    b.api("refresh", json!({"user": "alice", "expired": true}))
        .await;
    assert_eq!(alice.expect_close().await.0, 3005);
}

#[tokio::test]
async fn history_keeps_the_namespace_size_in_redis() {
    let Some((redis, a, b)) = two_nodes_on_redis().await else {
        return;
    };
    for n in 1..=12 {
        herald_tests::publish_at(&a, "history:sized", json!(n)).await;
    }
    let (offsets, _) = herald_tests::broker::history(&b, "history:sized").await;
    assert_eq!(
        offsets,
        (3..=12).collect::<Vec<u64>>(),
        "history_size is 10"
    );
    let length = redis.command(&["XLEN", "herald{history:sized}:s"]);
    assert_eq!(
        length, "10",
        "Redis keeps no more than the namespace's size"
    );
    let ttl: i64 = redis
        .command(&["PTTL", "herald{history:sized}:s"])
        .parse()
        .unwrap();
    assert!(
        (1..=300_000).contains(&ttl),
        "the stream expires with history_ttl (5m): {ttl}"
    );
}
