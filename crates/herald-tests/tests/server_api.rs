//! Server API methods acting on live connections.

use herald_tests::{Client, TestServer};
use serde_json::json;

#[tokio::test]
async fn subscribe_and_unsubscribe_live_connections() {
    let server = TestServer::default().await;
    let (mut client, _) = server.connect("42").await;
    let (status, _) = server
        .api("subscribe", json!({"user": "42", "channel": "alerts"}))
        .await;
    assert_eq!(status, 200);
    let push = client
        .wait_for(|m| m["push"]["subscribe"].is_object())
        .await;
    assert_eq!(push["push"]["channel"], json!("alerts"));
    server
        .api("publish", json!({"channel": "alerts", "data": 1}))
        .await;
    client
        .wait_for(|m| m["push"]["pub"]["data"] == json!(1))
        .await;
    server
        .api("unsubscribe", json!({"user": "42", "channel": "alerts"}))
        .await;
    let push = client
        .wait_for(|m| m["push"]["unsubscribe"].is_object())
        .await;
    assert_eq!(
        push["push"]["unsubscribe"],
        json!({"code": 2000, "reason": "server unsubscribe"})
    );
}

#[tokio::test]
async fn disconnect_defaults_to_3503_and_accepts_a_custom_code() {
    let server = TestServer::default().await;
    let (mut first, _) = server.connect("u").await;
    server.api("disconnect", json!({"user": "u"})).await;
    assert_eq!(
        first.expect_close().await,
        (3503, "force disconnect".into())
    );
    let (mut second, _) = server.connect("u").await;
    server
        .api(
            "disconnect",
            json!({"user": "u", "disconnect": {"code": 3011, "reason": "force reconnect"}}),
        )
        .await;
    assert_eq!(second.expect_close().await.0, 3011);
    let (status, body) = server
        .api(
            "disconnect",
            json!({"user": "u", "disconnect": {"code": 1000}}),
        )
        .await;
    assert_eq!((status, &body["error"]["code"]), (200, &json!(107)));
}

#[tokio::test]
async fn send_pushes_a_message_to_the_user() {
    let server = TestServer::default().await;
    let (mut client, _) = server.connect("9").await;
    server
        .api("send", json!({"user": "9", "data": {"ding": 1}}))
        .await;
    let push = client.wait_for(|m| m["push"]["message"].is_object()).await;
    assert_eq!(push["push"]["message"]["data"], json!({"ding": 1}));
}

#[tokio::test]
async fn info_channels_presence_broadcast_and_batch() {
    let server = TestServer::default().await;
    let (mut a, _) = server.connect("a").await;
    let (mut b, _) = server.connect("b").await;
    a.subscribe("one").await;
    b.subscribe("one").await;
    b.subscribe("two").await;

    let (_, info) = server.api("info", json!({})).await;
    let node = &info["result"]["nodes"][0];
    assert_eq!(
        (node["num_clients"].clone(), node["num_users"].clone()),
        (json!(2), json!(2))
    );
    // Three, and each connection's personal inbox channel.
    assert_eq!(node["num_subs"], json!(5));

    let (_, channels) = server.api("channels", json!({})).await;
    assert_eq!(
        channels["result"]["channels"],
        json!({
            "one": {"num_clients": 2},
            "two": {"num_clients": 1},
            "inbox:#a": {"num_clients": 1},
            "inbox:#b": {"num_clients": 1},
        })
    );
    let (_, filtered) = server.api("channels", json!({"pattern": "t*"})).await;
    assert_eq!(
        filtered["result"]["channels"],
        json!({"two": {"num_clients": 1}})
    );

    let (_, presence) = server
        .api("presence_stats", json!({"channel": "one"}))
        .await;
    assert_eq!(
        presence["result"],
        json!({"num_clients": 2, "num_users": 2})
    );

    let (_, broadcast) = server
        .api(
            "broadcast",
            json!({"channels": ["one", "two", "bad:ns"], "data": "x"}),
        )
        .await;
    let responses = broadcast["result"]["responses"].as_array().unwrap();
    assert_eq!(responses[0], json!({"result": {}}));
    assert_eq!(responses[2]["error"]["code"], json!(102));
    b.wait_for(|m| m["push"]["channel"] == "two" && m["push"]["pub"].is_object())
        .await;

    let (_, batch) = server
        .api(
            "batch",
            json!({"commands": [
                {"publish": {"channel": "one", "data": "b1"}},
                {"presence_stats": {"channel": "one"}},
                {"publish": {"channel": "nope:x", "data": 1}}
            ]}),
        )
        .await;
    let replies = batch["replies"].as_array().unwrap();
    assert_eq!(replies[0], json!({"publish": {}}));
    assert_eq!(
        replies[1],
        json!({"presence_stats": {"num_clients": 2, "num_users": 2}})
    );
    assert_eq!(replies[2]["error"]["code"], json!(102));
    a.wait_for(|m| m["push"]["pub"]["data"] == "b1").await;
}

#[tokio::test]
async fn history_answers_not_available_until_history_lands() {
    let server = TestServer::default().await;
    let (_, body) = server.api("history", json!({"channel": "one"})).await;
    assert_eq!(body["error"]["code"], json!(108));
    let _ = Client::open(&server.ws_url()).await;
}
