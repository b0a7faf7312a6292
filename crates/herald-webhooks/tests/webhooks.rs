//! End to end: real `Webhooks` on SQLite or PostgreSQL, POSTing to a real
//! HTTP receiver on 127.0.0.1.

mod support;

use herald_webhooks::{EVENTS, WebhookError, Webhooks, signature};
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{
    Receiver, SECRET, closed_url, outbox_rows, pool, settings, sqlite_url, wait_outbox_empty,
};

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_posted_once_each_with_signed_headers() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&sqlite_url(&dir)).await;
    let receiver = Receiver::start().await;
    let webhooks = Webhooks::start(settings(receiver.url("/hooks")), pool.clone())
        .await
        .unwrap();
    let before_ms = unix_ms();
    let sent = [
        ("connect", json!({"client": "c1", "user": "42"})),
        ("user.online", json!({"user": "42"})),
        (
            "chat.message",
            json!({"conversation": "order:7", "text": "hi"}),
        ),
    ];
    for (event, data) in &sent {
        webhooks.emit(event, data.clone());
    }

    let requests = receiver.wait_for(3).await;
    wait_outbox_empty(&pool).await;
    webhooks.shutdown().await;
    let after_ms = unix_ms();
    assert_eq!(receiver.requests().len(), 3, "each event exactly once");

    let mut ids = HashSet::new();
    for (event, data) in &sent {
        let request = requests
            .iter()
            .find(|request| request.header("X-Herald-Event") == *event)
            .unwrap_or_else(|| panic!("{event} was not delivered"));
        assert_eq!(request.path, "/hooks");
        assert_eq!(request.header("Content-Type"), "application/json");
        assert_eq!(request.header("X-Herald-Attempt"), "1");

        let body = request.json();
        let fields: HashSet<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, HashSet::from(["id", "event", "time", "data"]));
        assert_eq!(body["event"], *event);
        assert_eq!(body["data"], *data);
        let time = body["time"].as_i64().unwrap();
        assert!((before_ms..=after_ms).contains(&time), "time {time} in ms");
        let id = body["id"].as_str().unwrap();
        assert_eq!(request.header("X-Herald-Delivery"), id);
        assert_eq!(id.len(), 36, "a UUID: {id}");
        ids.insert(id.to_string());

        let timestamp: u64 = request.header("X-Herald-Timestamp").parse().unwrap();
        assert!(
            (before_ms / 1000..=after_ms / 1000).contains(&(timestamp as i64)),
            "timestamp {timestamp} in seconds"
        );
        let signed = request.header("X-Herald-Signature");
        assert_eq!(signed, signature(SECRET, timestamp, &request.body));
        assert_ne!(
            signed,
            signature("another secret", timestamp, &request.body)
        );
    }
    assert_eq!(ids.len(), 3, "distinct ids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_are_retried_with_the_same_id_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&sqlite_url(&dir)).await;
    let receiver = Receiver::start_with(3, None).await;
    let webhooks = Webhooks::start(settings(receiver.url("/hooks")), pool.clone())
        .await
        .unwrap();
    webhooks.emit("user.offline", json!({"user": "42"}));

    let requests = receiver.wait_for(4).await;
    wait_outbox_empty(&pool).await;
    webhooks.shutdown().await;
    assert_eq!(receiver.requests().len(), 4, "three 500s, then one 200");

    let attempts: Vec<&str> = requests
        .iter()
        .map(|request| request.header("X-Herald-Attempt"))
        .collect();
    assert_eq!(attempts, ["1", "2", "3", "4"]);
    let id = requests[0].id();
    for request in &requests {
        assert_eq!(request.body, requests[0].body, "the same bytes every time");
        assert_eq!(request.id(), id);
        assert_eq!(request.header("X-Herald-Delivery"), id);
        let timestamp: u64 = request.header("X-Herald-Timestamp").parse().unwrap();
        assert_eq!(
            request.header("X-Herald-Signature"),
            signature(SECRET, timestamp, &request.body)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_events_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&sqlite_url(&dir)).await;
    let receiver = Receiver::start().await;

    let all = Webhooks::start(settings(receiver.url("/all")), pool.clone())
        .await
        .unwrap();
    for event in EVENTS {
        assert!(all.wants(event), "empty events means all, {event} included");
    }
    assert!(!all.wants("publish"));
    all.shutdown().await;

    let mut only_online = settings(receiver.url("/hooks"));
    only_online.events = vec!["user.online".into()];
    let webhooks = Webhooks::start(only_online, pool.clone()).await.unwrap();
    assert!(webhooks.wants("user.online"));
    for event in EVENTS.iter().filter(|event| **event != "user.online") {
        assert!(!webhooks.wants(event), "{event} is filtered out");
    }
    webhooks.emit("connect", json!({"client": "c1"}));
    webhooks.emit("user.offline", json!({"user": "7"}));
    webhooks.emit("user.online", json!({"user": "42"}));
    webhooks.emit("chat.message", json!({"text": "hi"}));

    receiver.wait_for(1).await;
    // Shutdown writes everything emit queued, so a filtered event that had
    // slipped through would now be in the outbox or at the receiver.
    webhooks.shutdown().await;
    assert_eq!(outbox_rows(&pool).await, 0);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].header("X-Herald-Event"), "user.online");
    assert_eq!(requests[0].json()["data"], json!({"user": "42"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_events_survive_a_restart_and_are_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);

    let first_pool = pool(&url).await;
    let mut backend_down = settings(closed_url());
    backend_down.max_attempts = 1_000;
    let down = Webhooks::start(backend_down, first_pool.clone())
        .await
        .unwrap();
    for n in 0..5 {
        down.emit("subscribe", json!({"n": n}));
    }
    down.shutdown().await;
    assert_eq!(outbox_rows(&first_pool).await, 5, "kept while undelivered");
    first_pool.close().await;

    let receiver = Receiver::start().await;
    let second_pool = pool(&url).await;
    let webhooks = Webhooks::start(settings(receiver.url("/hooks")), second_pool.clone())
        .await
        .unwrap();
    receiver.wait_for(5).await;
    wait_outbox_empty(&second_pool).await;
    webhooks.shutdown().await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 5, "exactly once each");
    let ids: HashSet<String> = requests.iter().map(|request| request.id()).collect();
    assert_eq!(ids.len(), 5);
    let mut numbers: Vec<i64> = requests
        .iter()
        .map(|request| request.json()["data"]["n"].as_i64().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [0, 1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_dropped_after_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&sqlite_url(&dir)).await;
    let receiver = Receiver::start_with(usize::MAX, None).await;
    let mut two_attempts = settings(receiver.url("/hooks"));
    two_attempts.max_attempts = 2;
    let webhooks = Webhooks::start(two_attempts, pool.clone()).await.unwrap();
    webhooks.emit("channel.vacated", json!({"channel": "room:1"}));

    receiver.wait_for(2).await;
    wait_outbox_empty(&pool).await;
    webhooks.shutdown().await;
    let attempts: Vec<String> = receiver
        .requests()
        .iter()
        .map(|request| request.header("X-Herald-Attempt").to_string())
        .collect();
    assert_eq!(attempts, ["1", "2"], "no attempt after the last one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_outbox_deliver_each_event_once() {
    let Some(db) = herald_postgres::testing::TestDatabase::create().await else {
        return;
    };
    // Node a's requests hang until released, so node b must deliver what a
    // cannot take, while a's leases keep b off the rows a holds.
    let receiver = Receiver::start_with(0, Some("/a")).await;
    let pool_a = pool(db.url()).await;
    let pool_b = pool(db.url()).await;
    let mut settings_a = settings(receiver.url("/a"));
    settings_a.timeout = Duration::from_secs(30);
    let mut settings_b = settings(receiver.url("/b"));
    settings_b.node_id = "node-b".into();
    let a = Webhooks::start(settings_a, pool_a.clone()).await.unwrap();
    let b = Webhooks::start(settings_b, pool_b.clone()).await.unwrap();

    for n in 0..50 {
        a.emit("notification.read", json!({"n": n}));
    }
    receiver.wait_for(50).await;
    receiver.release();
    wait_outbox_empty(&pool_a).await;
    a.shutdown().await;
    b.shutdown().await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 50, "each event delivered once overall");
    let ids: HashSet<String> = requests.iter().map(|request| request.id()).collect();
    assert_eq!(ids.len(), 50);
    let by_b = requests
        .iter()
        .filter(|request| request.path == "/b")
        .count();
    assert!(by_b > 0, "node b delivered too");
    pool_a.close().await;
    pool_b.close().await;
}

#[tokio::test]
async fn start_refuses_invalid_settings_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&sqlite_url(&dir)).await;
    let mut bad = settings("ws://backend/hooks".into());
    bad.events = vec!["user.joined".into()];
    let error = match Webhooks::start(bad, pool.clone()).await {
        Err(error) => error,
        Ok(_) => panic!("bad settings were accepted"),
    };
    assert!(matches!(error, WebhookError::Settings(_)));
    assert_eq!(
        error.to_string(),
        format!(
            "webhooks.url: `ws://backend/hooks` must start with http://; \
             webhooks.events: unknown event `user.joined`; known events are {}",
            EVENTS.join(", ")
        )
    );
    // Nothing was created.
    assert!(
        sqlx::query("SELECT 1 FROM herald_webhook_outbox")
            .fetch_all(&pool)
            .await
            .is_err()
    );
}
