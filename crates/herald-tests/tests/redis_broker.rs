//! Several herald nodes on one Redis behave like one node: delivery, history
//! and recovery, presence, and server-API actions reach every node.

use herald_tests::TestServer;
use herald_tests::broker::{
    a_client_recovers_on_another_node, publications_reach_another_node_in_order, standalone_config,
};
use herald_tests::redis::RedisServer;
use serde_json::json;

async fn two_nodes(redis: &RedisServer) -> (TestServer, TestServer) {
    herald_tests::broker::two_nodes(&standalone_config(&redis.url())).await
}

#[tokio::test]
async fn a_publication_on_one_node_reaches_subscribers_of_another_in_order() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_nodes(&redis).await;
    publications_reach_another_node_in_order(&a, &b, &["history:orders"]).await;
}

#[tokio::test]
async fn a_client_recovers_on_another_node_what_it_missed() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_nodes(&redis).await;
    a_client_recovers_on_another_node(&a, &b, "history:r").await;
}

#[tokio::test]
async fn presence_and_join_leave_span_nodes() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_nodes(&redis).await;
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
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_nodes(&redis).await;
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
