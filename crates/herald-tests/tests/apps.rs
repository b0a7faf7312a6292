//! The inbox and chat end to end: the server API, WebSocket clients with their
//! `rpc` calls and live pushes, one node and two nodes on Redis with PostgreSQL.

use herald_postgres::testing::TestDatabase;
use herald_tests::broker::{standalone_config, two_nodes};
use herald_tests::redis::RedisServer;
use herald_tests::{Client, TestServer, test_config};
use serde_json::{Value, json};

async fn rpc(client: &mut Client, method: &str, data: Value) -> Value {
    client
        .call(json!({"rpc": {"method": method, "data": data}}))
        .await
}

async fn ok(server: &TestServer, method: &str, body: Value) -> Value {
    let (status, reply) = server.api(method, body).await;
    assert_eq!(status, 200, "{method}: {reply}");
    assert!(reply.get("error").is_none(), "{method}: {reply}");
    reply["result"].clone()
}

/// The next publication on `channel` whose data has this `type`.
async fn push(client: &mut Client, channel: &str, kind: &str) -> Value {
    let message = client
        .wait_for(|m| {
            m["push"]["channel"] == json!(channel)
                && m["push"]["pub"]["data"]["type"] == json!(kind)
        })
        .await;
    message["push"]["pub"]["data"].clone()
}

#[tokio::test]
async fn a_notification_and_unread_counts_reach_every_tab_of_the_user() {
    let server = TestServer::default().await;
    let (mut tab_a, connect_a) = server.connect("42").await;
    let (mut tab_b, _) = server.connect("42").await;
    assert!(
        connect_a["connect"]["subs"].get("inbox:#42").is_some(),
        "{connect_a}"
    );
    let result = ok(
        &server,
        "notify",
        json!({"users": ["42"], "title": "Order shipped", "level": "success"}),
    )
    .await;
    let id = result["ids"][0].clone();
    for tab in [&mut tab_a, &mut tab_b] {
        let notification = push(tab, "inbox:#42", "notification").await;
        assert_eq!(notification["notification"]["id"], id);
        assert_eq!(notification["notification"]["level"], "success");
        assert_eq!(
            push(tab, "inbox:#42", "unread_count").await["count"],
            json!(1)
        );
    }
    let listed = rpc(&mut tab_a, "inbox.list", json!({"limit": 10})).await;
    assert_eq!(
        listed["rpc"]["data"]["notifications"][0]["title"],
        "Order shipped"
    );
    let marked = rpc(&mut tab_a, "inbox.mark_read", json!({"ids": [id]})).await;
    assert_eq!(marked["rpc"]["data"]["updated"], json!(1));
    assert_eq!(
        push(&mut tab_b, "inbox:#42", "unread_count").await["count"],
        json!(0)
    );
    let counted = ok(&server, "notifications_unread_count", json!({"user": "42"})).await;
    assert_eq!(counted["count"], json!(0));
    let bad = rpc(&mut tab_a, "inbox.list", json!({"cursor": "not-a-cursor"})).await;
    assert_eq!(bad["error"]["code"], json!(107), "{bad}");
    assert!(
        bad["error"]["message"].as_str().unwrap().contains("cursor"),
        "{bad}"
    );
    let unknown = rpc(&mut tab_a, "inbox.nope", json!({})).await;
    assert_eq!(unknown["error"]["code"], json!(104), "{unknown}");
}

#[tokio::test]
async fn an_anonymous_connection_has_no_inbox_and_a_bad_notify_is_named() {
    let mut config = test_config();
    config.client.allow_anonymous_connect_without_token = true;
    let server = TestServer::start(config).await;
    let mut anonymous = Client::open(&server.ws_url()).await;
    anonymous.call(json!({"connect": {}})).await;
    let denied = rpc(&mut anonymous, "inbox.unread_count", json!({})).await;
    assert_eq!(denied["error"]["code"], json!(103), "{denied}");
    let (status, reply) = server
        .api(
            "notify",
            json!({"users": ["1"], "title": "t", "level": "urgent"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(reply["error"]["code"], json!(107), "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("urgent"),
        "{reply}"
    );
}

#[tokio::test]
async fn chat_members_talk_and_others_are_kept_out() {
    let server = TestServer::default().await;
    ok(
        &server,
        "chat_create",
        json!({"conversation": "order-1", "title": "Order 1", "members": ["42", "7"]}),
    )
    .await;
    let (mut customer, _) = server.connect("42").await;
    let (mut booster, _) = server.connect("7").await;
    let (mut outsider, _) = server.connect("99").await;
    for member in [&mut customer, &mut booster] {
        let reply = member.subscribe("chat:order-1").await;
        assert!(reply.get("subscribe").is_some(), "{reply}");
    }
    let refused = outsider.subscribe("chat:order-1").await;
    assert_eq!(refused["error"]["code"], json!(103), "{refused}");
    let unknown = outsider.subscribe("chat:no-such-order").await;
    assert_eq!(unknown["error"]["code"], json!(103), "{unknown}");

    let sent = rpc(
        &mut customer,
        "chat.send",
        json!({"conversation": "order-1", "text": "hi", "client_msg_id": "m1"}),
    )
    .await;
    let message = sent["rpc"]["data"]["message"].clone();
    assert_eq!(message["id"], json!(1), "{sent}");
    let received = push(&mut booster, "chat:order-1", "message").await;
    assert_eq!(received["message"], message);
    assert_eq!(
        push(&mut booster, "inbox:#7", "chat_unread").await["unread"],
        json!(1)
    );
    let again = rpc(
        &mut customer,
        "chat.send",
        json!({"conversation": "order-1", "text": "hi", "client_msg_id": "m1"}),
    )
    .await;
    assert_eq!(
        again["rpc"]["data"]["message"], message,
        "idempotent on client_msg_id"
    );

    rpc(
        &mut booster,
        "chat.typing",
        json!({"conversation": "order-1"}),
    )
    .await;
    assert_eq!(
        push(&mut customer, "chat:order-1", "typing").await["user"],
        "7"
    );
    let read = rpc(
        &mut booster,
        "chat.read",
        json!({"conversation": "order-1", "message_id": 1}),
    )
    .await;
    assert_eq!(read["rpc"]["data"]["unread"], json!(0), "{read}");
    let receipt = push(&mut customer, "chat:order-1", "read").await;
    assert_eq!(
        receipt,
        json!({"type": "read", "user": "7", "message_id": 1})
    );

    let intruder = rpc(
        &mut outsider,
        "chat.send",
        json!({"conversation": "order-1", "text": "let me in"}),
    )
    .await;
    assert_eq!(intruder["error"]["code"], json!(103), "{intruder}");
    let nowhere = rpc(
        &mut customer,
        "chat.history",
        json!({"conversation": "no-such-order"}),
    )
    .await;
    assert_eq!(nowhere["error"]["code"], json!(102));
    assert_eq!(
        nowhere["error"]["message"],
        "unknown conversation: no-such-order"
    );
    let long = rpc(
        &mut customer,
        "chat.send",
        json!({"conversation": "order-1", "text": "x".repeat(4001)}),
    )
    .await;
    assert_eq!(long["error"]["code"], json!(107), "{long}");

    ok(
        &server,
        "chat_post",
        json!({"conversation": "order-1", "text": "Order shipped"}),
    )
    .await;
    let system = push(&mut booster, "chat:order-1", "message").await;
    assert_eq!(system["message"]["kind"], "system");
    ok(
        &server,
        "chat_remove_members",
        json!({"conversation": "order-1", "members": ["7"]}),
    )
    .await;
    let gone = booster
        .wait_for(|m| {
            m["push"]["channel"] == json!("chat:order-1") && m["push"].get("unsubscribe").is_some()
        })
        .await;
    assert_eq!(gone["push"]["unsubscribe"]["code"], json!(2000), "{gone}");
    let history = rpc(
        &mut booster,
        "chat.history",
        json!({"conversation": "order-1"}),
    )
    .await;
    assert_eq!(history["error"]["code"], json!(103), "{history}");
}

#[tokio::test]
async fn switched_off_features_answer_not_available_and_join_no_channel() {
    let mut config = test_config();
    config.inbox.enabled = false;
    config.chat.enabled = false;
    let server = TestServer::start(config).await;
    let (mut client, connect) = server.connect("42").await;
    assert!(
        connect["connect"]["subs"].get("inbox:#42").is_none(),
        "{connect}"
    );
    let off = rpc(&mut client, "inbox.list", json!({})).await;
    assert_eq!(off["error"]["code"], json!(104), "{off}");
    let (status, _) = server
        .api("notify", json!({"users": ["42"], "title": "t"}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn two_nodes_on_redis_share_the_inbox_and_chat_in_postgres() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let mut config = standalone_config(&redis.url());
    config.storage.url = Some(database.url().to_string());
    config.storage.durable = true;
    let (a, b) = two_nodes(&config).await;
    let (mut on_b, _) = b.connect("42").await;
    ok(
        &a,
        "notify",
        json!({"users": ["42"], "title": "from node A"}),
    )
    .await;
    let notification = push(&mut on_b, "inbox:#42", "notification").await;
    assert_eq!(notification["notification"]["title"], "from node A");

    ok(
        &a,
        "chat_create",
        json!({"conversation": "order-9", "members": ["42", "7"]}),
    )
    .await;
    let (mut on_a, _) = a.connect("7").await;
    assert!(
        on_b.subscribe("chat:order-9")
            .await
            .get("subscribe")
            .is_some()
    );
    rpc(
        &mut on_a,
        "chat.send",
        json!({"conversation": "order-9", "text": "across nodes"}),
    )
    .await;
    let message = push(&mut on_b, "chat:order-9", "message").await;
    assert_eq!(message["message"]["text"], "across nodes");
    let read = rpc(
        &mut on_b,
        "chat.read",
        json!({"conversation": "order-9", "message_id": 1}),
    )
    .await;
    assert_eq!(read["rpc"]["data"]["unread"], json!(0));
    let listed = rpc(&mut on_a, "chat.list", json!({})).await;
    assert_eq!(
        listed["rpc"]["data"]["conversations"][0]["unread"],
        json!(0),
        "{listed}"
    );
}
