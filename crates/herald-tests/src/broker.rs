//! What the Redis broker suites share: a node config for each topology, waits
//! with deadlines, a publisher that keeps publishing, and the scenarios every
//! topology runs (delivery and history across nodes, recovery on another node).

use crate::redis::{RedisCluster, RedisSentinel, RedisServer};
use crate::{API_KEY, Client, Event, TestServer, offsets, publish_at, test_config};
use herald_server::Config;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a broker suite waits for anything that involves a reconnect.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// The shared test config on the Redis broker, with heartbeats fast enough
/// that a lost connection shows within a second; the topology is left to the caller.
fn redis_config() -> Config {
    let mut config = test_config();
    config.broker.kind = "redis".into();
    config.broker.heartbeat = "200ms".into();
    config.broker.presence_ttl = "2s".into();
    config.broker.timeout = "2s".into();
    config
}

/// A node on the standalone Redis at `url`.
pub fn standalone_config(url: &str) -> Config {
    let mut config = redis_config();
    config.broker.redis_url = url.into();
    config
}

/// A node that asks the fixture's Sentinel (as `redis://host:port`) for its master.
pub fn sentinel_config(sentinel: &RedisSentinel) -> Config {
    let mut config = redis_config();
    config.broker.sentinel_urls = vec![sentinel.sentinel().url()];
    config.broker.sentinel_master = sentinel.master_name().into();
    config
}

/// A node seeded with every node of the Cluster.
pub fn cluster_config(cluster: &RedisCluster) -> Config {
    let mut config = redis_config();
    config.broker.cluster_urls = cluster.urls();
    config
}

/// Two nodes on the same broker.
pub async fn two_nodes(config: &Config) -> (TestServer, TestServer) {
    let a = TestServer::start(config.clone()).await;
    let b = TestServer::start(config.clone()).await;
    (a, b)
}

/// Polls `probe` every 20 ms until it returns Some; fails after `within`.
pub async fn wait_until<T>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a publisher saw: acknowledged offsets and errors, in order.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub acknowledged: Vec<u64>,
    pub errors: Vec<Value>,
}

/// Publishes `1, 2, 3...` to one channel through the server API, one after
/// another, until stopped.
pub struct Publisher {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Outcomes>>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Starts publishing to `channel` through the server at `url` (`http://host:port`).
    pub fn start(url: String, channel: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Outcomes::default()));
        let (stopped, seen) = (stop.clone(), outcomes.clone());
        let channel = channel.to_string();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0;
            while !stopped.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({"channel": channel, "data": n}).to_string();
                let answer = http
                    .post(format!("{url}/api/publish"))
                    .header("X-API-Key", API_KEY)
                    .body(body)
                    .send()
                    .await;
                let Ok(answer) = answer else { continue };
                let value: Value = answer.json().await.unwrap_or_default();
                let mut seen = seen.lock().unwrap();
                match value["result"]["offset"].as_u64() {
                    Some(offset) => seen.acknowledged.push(offset),
                    None => seen.errors.push(value["error"].clone()),
                }
            }
        });
        Self {
            stop,
            outcomes,
            task,
        }
    }

    /// The latest failed publish's error, if any failed.
    pub fn last_error(&self) -> Option<Value> {
        self.outcomes.lock().unwrap().errors.last().cloned()
    }

    fn acknowledged(&self) -> usize {
        self.outcomes.lock().unwrap().acknowledged.len()
    }

    /// Waits until `more` publishes beyond those acknowledged so far are.
    pub async fn wait_for_more_acks(&self, what: &str, more: usize) {
        let wanted = self.acknowledged() + more;
        wait_until(what, DEADLINE, async || {
            (self.acknowledged() >= wanted).then_some(())
        })
        .await;
    }

    /// Stops after the publish in flight, and returns everything it saw.
    pub async fn stop(self) -> Outcomes {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the publisher does not panic");
        std::mem::take(&mut *self.outcomes.lock().unwrap())
    }
}

/// Reads the subscriber's publications until it has `top`, or until it is
/// told to recover (unsubscribed with 2500, or disconnected with 3010 as a
/// positioned subscriber that saw a gap); returns the offsets and whether it
/// was told.
pub async fn received_until(client: &mut Client, top: u64) -> (Vec<u64>, bool) {
    let mut offsets = Vec::new();
    loop {
        let messages = match client.read(DEADLINE).await {
            Event::Json(messages) => messages,
            Event::Close(code, reason) => {
                assert_eq!(code, 3010, "closed to recover: {reason}");
                return (offsets, true);
            }
            Event::Ended => panic!("the connection ended without a close frame"),
        };
        for message in messages {
            if let Some(code) = message["push"]["unsubscribe"]["code"].as_u64() {
                assert_eq!(code, 2500, "told to resubscribe and recover: {message}");
                return (offsets, true);
            }
            let Some(offset) = message["push"]["pub"]["offset"].as_u64() else {
                continue;
            };
            offsets.push(offset);
            if offset >= top {
                return (offsets, false);
            }
        }
    }
}

/// The history of `channel` as `server` answers it: its offsets and epoch.
pub async fn history(server: &TestServer, channel: &str) -> (Vec<u64>, String) {
    let (status, body) = server
        .api("history", json!({"channel": channel, "limit": -1}))
        .await;
    assert_eq!(status, 200, "{body}");
    let epoch = body["result"]["epoch"].as_str().unwrap_or_default();
    (offsets(&body["result"]["publications"]), epoch.into())
}

/// Scenario: a client on `a` subscribes to each channel (all with history),
/// `b` publishes three publications to each, interleaved; the client gets
/// each channel's publications in order under the epoch it subscribed in,
/// and both nodes answer the same history.
pub async fn publications_reach_another_node_in_order(
    a: &TestServer,
    b: &TestServer,
    channels: &[&str],
) {
    let (mut client, _) = a.connect("alice").await;
    let mut epochs = Vec::new();
    for channel in channels {
        let reply = client.subscribe(channel).await;
        let epoch = reply["subscribe"]["epoch"].as_str();
        epochs.push(
            epoch
                .unwrap_or_else(|| panic!("no epoch in {reply}"))
                .to_string(),
        );
    }
    for n in 1..=3u64 {
        for (channel, epoch) in channels.iter().zip(&epochs) {
            let (offset, published_in) = publish_at(b, channel, json!({"n": n})).await;
            assert_eq!((offset, &published_in), (n, epoch), "{channel}");
        }
    }
    for (channel, epoch) in channels.iter().zip(&epochs) {
        for n in 1..=3u64 {
            let push = client
                .wait_for(|m| {
                    m["push"]["channel"] == json!(channel) && m["push"]["pub"].is_object()
                })
                .await;
            assert_eq!(push["push"]["pub"]["offset"], json!(n), "{push}");
            assert_eq!(push["push"]["pub"]["data"], json!({"n": n}), "{push}");
        }
        for server in [a, b] {
            let expected = (vec![1, 2, 3], epoch.clone());
            assert_eq!(history(server, channel).await, expected, "{channel}");
        }
    }
}

/// Scenario: a client on `a` sees offset 1 of `channel` (with history) and
/// leaves; 2 is published on `a` and 3 on `b`; the client comes back on `b`
/// and recovers exactly 2 and 3.
pub async fn a_client_recovers_on_another_node(a: &TestServer, b: &TestServer, channel: &str) {
    let (mut client, _) = a.connect("alice").await;
    client.subscribe(channel).await;
    let (_, epoch) = publish_at(a, channel, json!(1)).await;
    client
        .wait_for(|m| m["push"]["pub"]["offset"] == json!(1))
        .await;
    drop(client);
    publish_at(a, channel, json!(2)).await;
    publish_at(b, channel, json!(3)).await;
    let (mut client, _) = b.connect("alice").await;
    let recover = json!({"channel": channel, "recover": true, "epoch": epoch, "offset": 1});
    let reply = client.call(json!({ "subscribe": recover })).await;
    let result = &reply["subscribe"];
    assert_eq!(result["recovered"], json!(true), "{reply}");
    assert_eq!(offsets(&result["publications"]), [2, 3], "{reply}");
    let data: Vec<&Value> = result["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["data"])
        .collect();
    assert_eq!(data, [&json!(2), &json!(3)]);
}

fn failover_config(redis: &str) -> herald_server::Config {
    let mut config = standalone_config(redis);
    config.broker.timeout = "1s".into();
    config
}

pub async fn health(server: &TestServer) -> (u16, Value) {
    let answer = reqwest::get(server.http_url("/health")).await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or_default())
}

/// A positioned, recoverable subscriber to `channel` on `a`, and a publisher
/// through `b` that has had 20 publications acknowledged already.
pub async fn subscribed_under_a_stream(
    a: &TestServer,
    b: &TestServer,
    channel: &str,
) -> (Client, Publisher) {
    let (mut client, _) = a.connect("alice").await;
    let subscribe =
        json!({"subscribe": {"channel": channel, "positioned": true, "recoverable": true}});
    let reply = client.call(subscribe).await;
    assert!(reply["subscribe"].is_object(), "{reply}");
    let publisher = Publisher::start(b.http_url(""), channel);
    publisher.wait_for_more_acks("publishes before", 20).await;
    (client, publisher)
}

/// Restarts Redis in the middle of a publish stream; returns the publisher's
/// outcomes, the subscriber (on the other node) with what it was sent still
/// unread, and the two nodes.
pub async fn restart_mid_stream(redis: &mut RedisServer) -> (Outcomes, Client, [TestServer; 2]) {
    let (a, b) = two_nodes(&failover_config(&redis.url())).await;
    let (client, publisher) = subscribed_under_a_stream(&a, &b, "history:stream").await;

    redis.kill();
    let down = wait_until("/health to report the broker down", DEADLINE, async || {
        let (status, body) = health(&a).await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(
        down["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{down}"
    );
    let metrics = a.metrics().await;
    assert!(
        metrics.contains("herald_broker_up 0"),
        "the metric shows it"
    );
    let failing = "a publish to fail with a temporary error";
    wait_until(failing, DEADLINE, async || publisher.last_error()).await;

    redis.restart();
    for node in [&a, &b] {
        wait_until("/health to recover", DEADLINE, async || {
            (health(node).await.0 == 200).then_some(())
        })
        .await;
    }
    publisher
        .wait_for_more_acks("publishes after the restart", 20)
        .await;
    let outcomes = publisher.stop().await;
    (outcomes, client, [a, b])
}
