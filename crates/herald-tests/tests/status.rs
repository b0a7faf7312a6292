//! Online status: a user is online from their first connection to their last,
//! however many tabs, on one node or several, and status changes are published
//! to `status:<user>` when the app configures that namespace.

use herald_core::ChannelOptions;
use herald_tests::broker::{DEADLINE, standalone_config, two_nodes, wait_until};
use herald_tests::redis::RedisServer;
use herald_tests::{Client, TestServer, test_config};
use serde_json::{Value, json};

fn with_status_namespace(mut config: herald_server::Config) -> herald_server::Config {
    let open = ChannelOptions {
        allow_subscribe_for_client: true,
        ..Default::default()
    };
    config.channel.namespaces.push(("status".into(), open));
    config
}

async fn status(server: &TestServer, user: &str) -> Value {
    let (code, body) = server.api("user_status", json!({"users": [user]})).await;
    assert_eq!(code, 200, "{body}");
    body["result"]["statuses"][0].clone()
}

async fn wait_for_clients(server: &TestServer, count: u64) {
    wait_until("the node to count its clients", DEADLINE, async || {
        let (_, info) = server.api("info", json!({})).await;
        let nodes = info["result"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let own = nodes
            .iter()
            .find(|n| n["uid"] == json!(server.running.app.node.id));
        (own.and_then(|n| n["num_clients"].as_u64()) == Some(count)).then_some(())
    })
    .await;
}

async fn next_status(watcher: &mut Client) -> Value {
    let push = watcher
        .wait_for(|m| m["push"]["pub"]["data"]["type"] == json!("status"))
        .await;
    push["push"]["pub"]["data"].clone()
}

#[tokio::test]
async fn a_user_is_online_from_the_first_tab_to_the_last() {
    let server = TestServer::start(with_status_namespace(test_config())).await;
    let never = status(&server, "nobody").await;
    assert_eq!(
        never,
        json!({"user": "nobody", "online": false, "last_seen": null})
    );

    let (mut watcher, _) = server.connect("watcher").await;
    watcher.subscribe("status:alice").await;
    let (first_tab, _) = server.connect("alice").await;
    let (second_tab, _) = server.connect("alice").await;
    let online = next_status(&mut watcher).await;
    assert_eq!(
        (online["user"].clone(), online["online"].clone()),
        (json!("alice"), json!(true))
    );
    assert_eq!(status(&server, "alice").await["online"], json!(true));

    drop(first_tab);
    wait_for_clients(&server, 2).await;
    assert_eq!(
        status(&server, "alice").await["online"],
        json!(true),
        "one tab is left"
    );
    let before_last = herald_tests::now() * 1000;
    drop(second_tab);
    let offline = next_status(&mut watcher).await;
    assert_eq!(
        offline["online"],
        json!(false),
        "one push per change, not per tab"
    );
    let after = status(&server, "alice").await;
    assert_eq!(after["online"], json!(false));
    assert!(
        after["last_seen"].as_u64().unwrap() >= before_last,
        "{after}"
    );
}

#[tokio::test]
async fn status_counts_tabs_on_every_node() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_nodes(&with_status_namespace(standalone_config(&redis.url()))).await;
    let (mut watcher, _) = a.connect("watcher").await;
    watcher.subscribe("status:bob").await;
    let (on_a, _) = a.connect("bob").await;
    let (on_b, _) = b.connect("bob").await;
    // Status is written to Redis just after the connect is answered.
    wait_until("bob to be online", DEADLINE, async || {
        (status(&b, "bob").await["online"] == json!(true)).then_some(())
    })
    .await;

    drop(on_a);
    wait_for_clients(&a, 1).await;
    assert_eq!(
        status(&b, "bob").await["online"],
        json!(true),
        "bob is still on B"
    );
    drop(on_b);
    wait_until("bob to go offline", DEADLINE, async || {
        (status(&a, "bob").await["online"] == json!(false)).then_some(())
    })
    .await;
    assert!(status(&a, "bob").await["last_seen"].is_u64());
    // A marker published after everything: once it arrives, every status push
    // of bob's has too (one channel keeps its order), so the changes can be
    // counted exactly.
    let (code, _) = b
        .api(
            "publish",
            json!({"channel": "status:bob", "data": {"type": "marker"}}),
        )
        .await;
    assert_eq!(code, 200);
    let mut changes = Vec::new();
    loop {
        let push = watcher.wait_for(|m| m["push"]["pub"].is_object()).await;
        let data = &push["push"]["pub"]["data"];
        if data["type"] == json!("marker") {
            break;
        }
        changes.push(data["online"].clone());
    }
    assert_eq!(
        changes,
        [json!(true), json!(false)],
        "one change each way, whatever the tabs"
    );
}
