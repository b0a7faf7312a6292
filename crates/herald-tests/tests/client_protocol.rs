//! The client protocol over a real socket: connect, subscribe, publish, presence.

use herald_tests::{Client, TestServer, now, sign};
use serde_json::json;

#[tokio::test]
async fn connect_reply_carries_client_ping_and_expiry() {
    let server = TestServer::default().await;
    let (_client, reply) = server.connect("42").await;
    let connect = &reply["connect"];
    assert!(!connect["client"].as_str().unwrap().is_empty());
    assert_eq!(connect["ping"], json!(25));
    assert_eq!(connect["pong"], json!(true));
    assert_eq!(connect["expires"], json!(true));
    let ttl = connect["ttl"].as_u64().unwrap();
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn api_publication_reaches_subscribers_with_shared_shape() {
    let server = TestServer::default().await;
    let (mut alice, _) = server.connect("alice").await;
    let (mut bob, _) = server.connect("bob").await;
    assert_eq!(alice.subscribe("news").await["subscribe"], json!({}));
    bob.subscribe("news").await;
    let (status, body) = server
        .api("publish", json!({"channel": "news", "data": {"n": 1}}))
        .await;
    assert_eq!((status, body), (200, json!({"result": {}})));
    for client in [&mut alice, &mut bob] {
        let push = client.wait_for(|m| m["push"]["pub"].is_object()).await;
        assert_eq!(
            push,
            json!({"push": {"channel": "news", "pub": {"data": {"n": 1}}}})
        );
    }
}

#[tokio::test]
async fn several_commands_in_one_frame_get_replies_in_order() {
    let server = TestServer::default().await;
    let mut client = Client::open(&server.ws_url()).await;
    let frame = format!(
        "{}\n{}\n{}",
        json!({"id": 1, "connect": {"token": herald_tests::token("7", 60)}}),
        json!({"id": 2, "subscribe": {"channel": "a"}}),
        json!({"id": 3, "subscribe": {"channel": "b"}}),
    );
    client.send_text(frame).await;
    let herald_tests::Event::Json(replies) = client.read(herald_tests::WAIT).await else {
        panic!("expected replies");
    };
    // Join pushes for this client's own subscriptions follow each subscribe reply.
    let ids: Vec<_> = replies
        .iter()
        .filter_map(|r| r.get("id").cloned())
        .collect();
    assert_eq!(
        ids,
        [json!(1), json!(2), json!(3)],
        "one frame, in order: {replies:?}"
    );
    assert_eq!(
        replies
            .iter()
            .filter(|r| r["push"]["join"].is_object())
            .count(),
        2
    );
}

#[tokio::test]
async fn client_publish_is_allowed_for_subscribers_only_and_carries_info() {
    let server = TestServer::default().await;
    let (mut client, _) = server.connect("42").await;
    let denied = client
        .call(json!({"publish": {"channel": "room", "data": 1}}))
        .await;
    assert_eq!(denied["error"]["code"], json!(103));
    client.subscribe("room").await;
    let ok = client
        .call(json!({"publish": {"channel": "room", "data": {"hi": true}}}))
        .await;
    assert_eq!(ok["publish"], json!({}));
    let publication = client.wait_for(|m| m["push"]["pub"].is_object()).await;
    assert_eq!(publication["push"]["pub"]["info"]["user"], json!("42"));
    assert_eq!(publication["push"]["pub"]["data"], json!({"hi": true}));
}

#[tokio::test]
async fn unknown_namespace_and_permissions() {
    let server = TestServer::default().await;
    let (mut client, _) = server.connect("7").await;
    assert_eq!(
        client.subscribe("nope:1").await["error"]["code"],
        json!(102)
    );
    assert_eq!(
        client.subscribe("private:1").await["error"]["code"],
        json!(103)
    );
    assert_eq!(client.subscribe("dm:#7,8").await["subscribe"], json!({}));
    assert_eq!(
        client.subscribe("dm:#8,9").await["error"]["code"],
        json!(103)
    );
    assert_eq!(
        client.subscribe("dm:#7,8").await["error"]["code"],
        json!(105)
    );
    let long = "x".repeat(256);
    assert_eq!(client.subscribe(&long).await["error"]["code"], json!(106));
    assert_eq!(
        client.call(json!({"rpc": {"method": "anything"}})).await["error"]["code"],
        json!(104)
    );
    assert_eq!(
        client.call(json!({"history": {"channel": "room"}})).await["error"]["code"],
        json!(108)
    );
}

#[tokio::test]
async fn subscription_token_opens_a_private_channel_for_its_user_only() {
    let server = TestServer::default().await;
    let (mut client, _) = server.connect("42").await;
    let good = sign(
        json!({"sub": "42", "channel": "private:x", "exp": now() + 60, "info": {"role": "staff"}}),
    );
    let reply = client
        .call(json!({"subscribe": {"channel": "private:x", "token": good}}))
        .await;
    assert_eq!(reply["subscribe"]["expires"], json!(true));
    let other_user = sign(json!({"sub": "43", "channel": "private:y"}));
    let reply = client
        .call(json!({"subscribe": {"channel": "private:y", "token": other_user}}))
        .await;
    assert_eq!(reply["error"]["code"], json!(103));
    let expired = sign(json!({"sub": "42", "channel": "private:z", "exp": now() - 1}));
    let reply = client
        .call(json!({"subscribe": {"channel": "private:z", "token": expired}}))
        .await;
    assert_eq!(reply["error"]["code"], json!(109));
}

#[tokio::test]
async fn presence_and_join_leave_across_two_users() {
    let server = TestServer::default().await;
    let (mut alice, _) = server.connect("alice").await;
    alice.subscribe("room").await;
    let (mut bob, _) = server.connect("bob").await;
    bob.subscribe("room").await;
    let join = alice
        .wait_for(|m| m["push"]["join"].is_object() && m["push"]["join"]["info"]["user"] == "bob")
        .await;
    assert_eq!(join["push"]["channel"], json!("room"));
    let presence = alice.call(json!({"presence": {"channel": "room"}})).await;
    let users: std::collections::BTreeSet<_> = presence["presence"]["presence"]
        .as_object()
        .unwrap()
        .values()
        .map(|info| info["user"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(users, ["alice".to_string(), "bob".to_string()].into());
    let stats = alice
        .call(json!({"presence_stats": {"channel": "room"}}))
        .await;
    assert_eq!(
        stats["presence_stats"],
        json!({"num_clients": 2, "num_users": 2})
    );
    bob.call(json!({"unsubscribe": {"channel": "room"}})).await;
    alice
        .wait_for(|m| m["push"]["leave"]["info"]["user"] == "bob")
        .await;
    let stats = alice
        .call(json!({"presence_stats": {"channel": "room"}}))
        .await;
    assert_eq!(
        stats["presence_stats"],
        json!({"num_clients": 1, "num_users": 1})
    );
}

#[tokio::test]
async fn token_channels_claim_makes_server_side_subscriptions() {
    let server = TestServer::default().await;
    let mut client = Client::open(&server.ws_url()).await;
    let token = sign(json!({"sub": "5", "channels": ["feed"], "exp": now() + 60}));
    let reply = client.call(json!({"connect": {"token": token}})).await;
    assert_eq!(
        reply["connect"]["subs"],
        json!({"feed": {}, "inbox:#5": {}})
    );
    server
        .api("publish", json!({"channel": "feed", "data": "x"}))
        .await;
    let push = client.wait_for(|m| m["push"]["pub"].is_object()).await;
    assert_eq!(push["push"]["channel"], json!("feed"));
}

#[tokio::test]
async fn refresh_extends_the_connection_and_checks_the_user() {
    let server = TestServer::default().await;
    let (mut client, _) = server.connect("42").await;
    let reply = client
        .call(json!({"refresh": {"token": herald_tests::token("42", 120)}}))
        .await;
    assert_eq!(reply["refresh"]["expires"], json!(true));
    assert!(reply["refresh"]["ttl"].as_u64().unwrap() > 100);
    let expired = client
        .call(json!({"refresh": {"token": herald_tests::token("42", -5)}}))
        .await;
    assert_eq!(expired["error"]["code"], json!(109));
    client
        .send(json!({"refresh": {"token": herald_tests::token("43", 120)}}))
        .await;
    assert_eq!(client.expect_close().await.0, 3500);
}
