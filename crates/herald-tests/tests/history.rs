//! History, recovery, cache mode and idempotency, in memory.

use herald_tests::{Client, TestServer, now, offsets, publish_at, sign};
use serde_json::json;

#[tokio::test]
async fn history_reads_both_ways_with_limits_and_positions() {
    let server = TestServer::default().await;
    let mut published = Vec::new();
    for i in 1..=4 {
        published.push(publish_at(&server, "history:a", json!({"n": i})).await);
    }
    let epoch = published[0].1.clone();
    assert!(published.iter().all(|(_, e)| *e == epoch), "one epoch");
    assert_eq!(
        published.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );

    let (_, oldest) = server
        .api("history", json!({"channel": "history:a", "limit": 2}))
        .await;
    assert_eq!(offsets(&oldest["result"]["publications"]), [1, 2]);
    assert_eq!(
        (
            oldest["result"]["offset"].clone(),
            oldest["result"]["epoch"].clone()
        ),
        (json!(4), json!(epoch))
    );
    let (_, newest) = server
        .api(
            "history",
            json!({"channel": "history:a", "limit": -1, "reverse": true}),
        )
        .await;
    assert_eq!(offsets(&newest["result"]["publications"]), [4, 3, 2, 1]);
    let (_, position_only) = server.api("history", json!({"channel": "history:a"})).await;
    assert_eq!(
        position_only["result"]["publications"],
        json!([]),
        "no limit: position only"
    );
    let (_, since) = server
        .api(
            "history",
            json!({"channel": "history:a", "limit": -1, "since": {"offset": 2, "epoch": epoch}}),
        )
        .await;
    assert_eq!(offsets(&since["result"]["publications"]), [3, 4]);
    let (_, wrong_epoch) = server
        .api(
            "history",
            json!({"channel": "history:a", "limit": -1, "since": {"offset": 2, "epoch": "nope"}}),
        )
        .await;
    assert_eq!(wrong_epoch["error"]["code"], json!(112));

    let (mut client, _) = server.connect("reader").await;
    let reply = client
        .call(json!({"history": {"channel": "history:a", "limit": 1, "reverse": true}}))
        .await;
    assert_eq!(offsets(&reply["history"]["publications"]), [4]);
    let no_history = client.call(json!({"history": {"channel": "plain"}})).await;
    assert_eq!(no_history["error"]["code"], json!(108));
}

#[tokio::test]
async fn live_publications_carry_strictly_increasing_offsets_equal_to_the_api_answers() {
    let server = std::sync::Arc::new(TestServer::default().await);
    let (mut client, _) = server.connect("watcher").await;
    client.subscribe("history:burst").await;
    let publishes = (0..60).map(|i| {
        let server = server.clone();
        tokio::spawn(async move { publish_at(&server, "history:burst", json!(i)).await.0 })
    });
    let mut answered = Vec::new();
    for handle in publishes {
        answered.push(handle.await.unwrap());
    }
    let mut received = Vec::new();
    while received.len() < 60 {
        let push = client.wait_for(|m| m["push"]["pub"].is_object()).await;
        received.push(push["push"]["pub"]["offset"].as_u64().unwrap());
    }
    assert!(
        received.windows(2).all(|w| w[1] == w[0] + 1),
        "strictly increasing: {received:?}"
    );
    answered.sort_unstable();
    assert_eq!(answered, received);
}

#[tokio::test]
async fn recovery_replays_exactly_what_was_missed() {
    let server = TestServer::default().await;
    let (first, epoch) = publish_at(&server, "history:r", json!("seen")).await;
    for i in 0..3 {
        publish_at(&server, "history:r", json!(i)).await;
    }
    let (mut client, _) = server.connect("r").await;
    let reply = client
        .call(json!({"subscribe": {"channel": "history:r", "recover": true, "offset": first, "epoch": epoch}}))
        .await;
    let result = &reply["subscribe"];
    assert_eq!(
        (
            result["recovered"].clone(),
            result["was_recovering"].clone()
        ),
        (json!(true), json!(true))
    );
    assert_eq!(offsets(&result["publications"]), [2, 3, 4]);
    assert_eq!(result["recoverable"], json!(true));
    assert_eq!(result["epoch"], json!(epoch));
    // Live publications continue right after the replayed ones.
    publish_at(&server, "history:r", json!("live")).await;
    let live = client.wait_for(|m| m["push"]["pub"].is_object()).await;
    assert_eq!(live["push"]["pub"]["offset"], json!(5));
}

#[tokio::test]
async fn recovery_past_what_history_retains_is_refused_whole() {
    let server = TestServer::default().await;
    let (_, epoch) = publish_at(&server, "history:t", json!(0)).await;
    for i in 0..12 {
        publish_at(&server, "history:t", json!(i)).await;
    }
    let (mut client, _) = server.connect("t").await;
    let request = |flag: u64| json!({"subscribe": {"channel": "history:t", "recover": true, "offset": 1, "epoch": epoch, "flag": flag}});
    let reply = client.call(request(1)).await;
    let result = &reply["subscribe"];
    assert_eq!(result["was_recovering"], json!(true));
    assert!(result["recovered"].is_null(), "recovered: false");
    assert!(
        result["publications"].is_null(),
        "no partial replay: {result}"
    );
    assert_eq!(result["offset"], json!(13));
    client
        .call(json!({"unsubscribe": {"channel": "history:t"}}))
        .await;
    let rejected = client.call(request(3)).await;
    assert_eq!(rejected["error"]["code"], json!(112), "flag 2 asks for 112");
    let other_epoch = client
        .call(json!({"subscribe": {"channel": "history:t", "recover": true, "offset": 13, "epoch": "older"}}))
        .await;
    assert!(
        other_epoch["subscribe"]["recovered"].is_null(),
        "another epoch is not recovered"
    );
}

#[tokio::test]
async fn cache_mode_hands_a_new_subscriber_the_latest_state() {
    let server = TestServer::default().await;
    publish_at(&server, "cache:order-1", json!({"status": "paid"})).await;
    publish_at(&server, "cache:order-1", json!({"status": "shipped"})).await;
    let (mut client, _) = server.connect("viewer").await;
    let reply = client.subscribe("cache:order-1").await;
    let publications = &reply["subscribe"]["publications"];
    assert_eq!(publications.as_array().unwrap().len(), 1);
    assert_eq!(publications[0]["data"], json!({"status": "shipped"}));
    publish_at(&server, "cache:order-1", json!({"status": "delivered"})).await;
    let live = client.wait_for(|m| m["push"]["pub"].is_object()).await;
    assert_eq!(live["push"]["pub"]["data"], json!({"status": "delivered"}));
}

#[tokio::test]
async fn a_repeated_idempotency_key_publishes_once_and_returns_the_original_position() {
    let server = TestServer::default().await;
    let (mut client, _) = server.connect("i").await;
    client.subscribe("history:idem").await;
    let body =
        json!({"channel": "history:idem", "data": "once", "idempotency_key": "order-7-paid"});
    let (_, first) = server.api("publish", body.clone()).await;
    let (_, again) = server.api("publish", body).await;
    assert_eq!(first["result"], again["result"]);
    assert_eq!(first["result"]["offset"], json!(1));
    publish_at(&server, "history:idem", json!("next")).await;
    let received: Vec<_> = [
        client.wait_for(|m| m["push"]["pub"].is_object()).await,
        client.wait_for(|m| m["push"]["pub"].is_object()).await,
    ]
    .iter()
    .map(|m| m["push"]["pub"]["data"].clone())
    .collect();
    assert_eq!(
        received,
        [json!("once"), json!("next")],
        "exactly one delivery for the repeated key"
    );
}

#[tokio::test]
async fn skip_history_and_history_remove() {
    let server = TestServer::default().await;
    let (_, epoch) = publish_at(&server, "history:s", json!(1)).await;
    let (_, skipped) = server
        .api(
            "publish",
            json!({"channel": "history:s", "data": 2, "skip_history": true}),
        )
        .await;
    assert_eq!(skipped["result"], json!({}));
    let (_, history) = server
        .api("history", json!({"channel": "history:s", "limit": -1}))
        .await;
    assert_eq!(offsets(&history["result"]["publications"]), [1]);
    let (status, _) = server
        .api("history_remove", json!({"channel": "history:s"}))
        .await;
    assert_eq!(status, 200);
    let (_, after) = server
        .api("history", json!({"channel": "history:s", "limit": -1}))
        .await;
    assert_eq!(after["result"]["publications"], json!([]));
    assert_ne!(
        after["result"]["epoch"],
        json!(epoch),
        "a removed stream gets a new epoch"
    );
}

#[tokio::test]
async fn positioned_subscriptions_report_their_position() {
    let server = TestServer::default().await;
    publish_at(&server, "history:p", json!(1)).await;
    let (mut client, _) = server.connect("p").await;
    let reply = client
        .call(json!({"subscribe": {"channel": "history:p", "positioned": true}}))
        .await;
    assert_eq!(reply["subscribe"]["positioned"], json!(true));
    assert_eq!(reply["subscribe"]["offset"], json!(1));
}

#[tokio::test]
async fn server_side_subscriptions_recover_through_the_connect_reply() {
    let server = TestServer::default().await;
    let token = sign(json!({"sub": "s", "channels": ["history:personal"], "exp": now() + 60}));
    let mut first = Client::open(&server.ws_url()).await;
    let reply = first.call(json!({"connect": {"token": token}})).await;
    let sub = &reply["connect"]["subs"]["history:personal"];
    assert_eq!(sub["recoverable"], json!(true));
    let (offset, epoch) = publish_at(&server, "history:personal", json!("seen")).await;
    first.wait_for(|m| m["push"]["pub"].is_object()).await;
    drop(first);
    publish_at(&server, "history:personal", json!("missed-1")).await;
    publish_at(&server, "history:personal", json!("missed-2")).await;

    let mut again = Client::open(&server.ws_url()).await;
    let position = json!({"recover": true, "offset": offset, "epoch": epoch});
    let reply = again
        .call(json!({"connect": {"token": token, "subs": {"history:personal": position}}}))
        .await;
    let sub = &reply["connect"]["subs"]["history:personal"];
    assert_eq!(
        (sub["recovered"].clone(), sub["was_recovering"].clone()),
        (json!(true), json!(true))
    );
    let data: Vec<_> = sub["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"].clone())
        .collect();
    assert_eq!(data, [json!("missed-1"), json!("missed-2")]);
    publish_at(&server, "history:personal", json!("live")).await;
    let live = again.wait_for(|m| m["push"]["pub"].is_object()).await;
    assert_eq!(live["push"]["pub"]["offset"], json!(offset + 3));
}
