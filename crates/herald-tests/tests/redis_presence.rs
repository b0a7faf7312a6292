//! A node that dies without a word (`kill -9`): the presence entries of its
//! clients expire on the other nodes, and `info` stops listing it, while the
//! live node's own entries stay.

use herald_tests::broker::{DEADLINE, standalone_config, wait_until};
use herald_tests::durability::Process;
use herald_tests::redis::RedisServer;
use herald_tests::{API_KEY, Client, SECRET, TestServer, token};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The presence TTL of the node that dies; its entries expire this long
/// after its last refresh.
const DEAD_PRESENCE_TTL: &str = "1s";

/// A `herald serve` config named "doomed" on `redis`, with a short presence
/// TTL and presence on channels without a namespace.
fn doomed_config(dir: &Path, redis: &str) -> PathBuf {
    let path = dir.join("herald.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nname = \"doomed\"\n\
         [auth]\nhmac_secret = \"{SECRET}\"\n[api]\nkey = \"{API_KEY}\"\n\
         [broker]\nkind = \"redis\"\nredis_url = \"{redis}\"\n\
         heartbeat = \"200ms\"\npresence_ttl = \"{DEAD_PRESENCE_TTL}\"\n\
         [channel.without_namespace]\npresence = true\nallow_subscribe_for_client = true\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The users in `channel`'s presence as `server` answers it, sorted.
async fn present_users(server: &TestServer, channel: &str) -> Vec<String> {
    let (status, body) = server.api("presence", json!({"channel": channel})).await;
    assert_eq!(status, 200, "{body}");
    let entries = body["result"]["presence"]
        .as_object()
        .expect("a presence map");
    let mut users: Vec<String> = entries
        .values()
        .map(|info| info["user"].as_str().unwrap().to_string())
        .collect();
    users.sort();
    users
}

/// The names of the nodes `server`'s `info` lists.
async fn node_names(server: &TestServer) -> Vec<String> {
    let (status, body) = server.api("info", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let nodes = body["result"]["nodes"].as_array().expect("a node list");
    nodes
        .iter()
        .map(|node| node["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_presence_expires_and_info_forgets_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut config = standalone_config(&redis.url());
    config.server.name = "observer".into();
    // `info` forgets a node silent for five of the answering node's
    // heartbeats: 5 s here, well beyond the dead node's presence TTL.
    config.broker.heartbeat = "1s".into();
    config.broker.presence_ttl = "3s".into();
    let observer = TestServer::start(config).await;
    let (mut local, _) = observer.connect("local").await;
    local.subscribe("room").await;

    let dir = tempfile::tempdir().unwrap();
    let doomed = Process::start(&doomed_config(dir.path(), &redis.url()));
    let address = doomed.url.strip_prefix("http://").unwrap();
    let mut remote = Client::open(&format!("ws://{address}/connection/websocket")).await;
    let reply = remote
        .call(json!({"connect": {"token": token("remote", 3600)}}))
        .await;
    assert!(reply["connect"].is_object(), "{reply}");
    let reply = remote.subscribe("room").await;
    assert!(reply["subscribe"].is_object(), "{reply}");
    let both = ["local".to_string(), "remote".to_string()];
    wait_until("the remote user in presence", DEADLINE, async || {
        (present_users(&observer, "room").await == both).then_some(())
    })
    .await;
    wait_until("info to list the doomed node", DEADLINE, async || {
        let names = node_names(&observer).await;
        names.contains(&"doomed".to_string()).then_some(())
    })
    .await;

    doomed.kill_9();
    let killed = Instant::now();
    let names = node_names(&observer).await;
    assert!(
        names.contains(&"doomed".to_string()),
        "info lists a node that died {:?} ago for a while: {names:?}",
        killed.elapsed()
    );
    // The entry expires one TTL after its last refresh; allow for slow polls.
    let within = Duration::from_secs(5);
    wait_until(
        "the dead node's presence entry to expire",
        within,
        async || (present_users(&observer, "room").await == ["local"]).then_some(()),
    )
    .await;
    wait_until("info to stop listing the dead node", DEADLINE, async || {
        let names = node_names(&observer).await;
        (!names.contains(&"doomed".to_string())).then_some(names)
    })
    .await;
    assert_eq!(node_names(&observer).await, ["observer"]);
    // Forgotten five observer heartbeats after the dead node's last one.
    assert!(
        killed.elapsed() > Duration::from_secs(4),
        "forgotten too early"
    );
    // Longer than the observer's own 3 s TTL: its live entry was refreshed.
    assert_eq!(present_users(&observer, "room").await, ["local"]);
}
