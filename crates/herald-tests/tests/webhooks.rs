//! Webhooks end to end: a real server POSTs signed events to a local backend
//! that fails at first, and retries until every event is through.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use herald_tests::{TestServer, test_config};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const SECRET: &str = "hook-secret";

/// Answers 500 to the first `fail_first` requests, 200 after; records them all.
struct Backend {
    requests: Mutex<Vec<(HeaderMap, Bytes)>>,
    fail_first: usize,
    count: watch::Sender<usize>,
}

async fn receive(
    State(backend): State<Arc<Backend>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let seen = {
        let mut requests = backend.requests.lock().unwrap();
        requests.push((headers, body));
        requests.len()
    };
    backend.count.send_replace(seen);
    if seen <= backend.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn backend(fail_first: usize) -> (Arc<Backend>, String) {
    let backend = Arc::new(Backend {
        requests: Mutex::new(Vec::new()),
        fail_first,
        count: watch::channel(0).0,
    });
    let router = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(backend.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (backend, url)
}

impl Backend {
    /// The delivered (2xx-answered) events, once `wanted` of them are in.
    async fn delivered(&self, wanted: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let mut count = self.count.subscribe();
        let outcome = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let delivered = self.delivered_now();
                if wanted(&delivered) {
                    return delivered;
                }
                count.changed().await.unwrap();
            }
        })
        .await;
        outcome.unwrap_or_else(|_| panic!("events so far: {:?}", self.delivered_now()))
    }

    fn delivered_now(&self) -> Vec<Value> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .skip(self.fail_first)
            .map(|(headers, body)| {
                let timestamp: u64 = headers["x-herald-timestamp"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let signature = headers["x-herald-signature"].to_str().unwrap();
                assert_eq!(
                    signature,
                    herald_webhooks::signature(SECRET, timestamp, body),
                    "signed"
                );
                serde_json::from_slice(body).unwrap()
            })
            .collect()
    }
}

fn events(delivered: &[Value]) -> Vec<&str> {
    delivered
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn events_reach_the_backend_signed_and_retried_until_accepted() {
    let (backend, url) = backend(2).await;
    let mut config = test_config();
    config.webhooks.url = url;
    config.webhooks.secret = SECRET.into();
    config.webhooks.retry_initial = "50ms".into();
    config.webhooks.retry_max = "200ms".into();
    let server = TestServer::start(config).await;
    let (mut client, _) = server.connect("42").await;
    client.subscribe("room").await;
    server
        .api(
            "chat_create",
            json!({"conversation": "o1", "members": ["42"]}),
        )
        .await;
    client
        .call(json!({"rpc": {"method": "chat.send", "data": {"conversation": "o1", "text": "hi"}}}))
        .await;
    let (_, notified) = server
        .api("notify", json!({"users": ["42"], "title": "t"}))
        .await;
    let id = notified["result"]["ids"][0].clone();
    client
        .call(json!({"rpc": {"method": "inbox.mark_read", "data": {"ids": [id]}}}))
        .await;
    client
        .call(json!({"unsubscribe": {"channel": "room"}}))
        .await;
    drop(client);

    // The refused first attempts come back later: wait for every event.
    const EXPECTED: [&str; 10] = [
        "connect",
        "user.online",
        "subscribe",
        "channel.occupied",
        "chat.message",
        "notification.read",
        "unsubscribe",
        "channel.vacated",
        "disconnect",
        "user.offline",
    ];
    let delivered = backend
        .delivered(|d| EXPECTED.iter().all(|e| events(d).contains(e)))
        .await;
    let names = events(&delivered);
    for event in EXPECTED {
        assert_eq!(
            names.iter().filter(|n| **n == event).count(),
            1,
            "{event} once in {names:?}"
        );
    }
    let by_name = |name: &str| {
        delivered
            .iter()
            .find(|e| e["event"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("subscribe")["data"]["channel"], "room");
    assert_eq!(by_name("chat.message")["data"]["message"]["text"], "hi");
    assert_eq!(
        by_name("notification.read")["data"],
        json!({"user": "42", "ids": [id]})
    );
    assert_eq!(by_name("user.online")["data"]["user"], "42");
    let mut ids: Vec<&str> = delivered
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        delivered.len(),
        "each event delivered once after the retries"
    );
}
