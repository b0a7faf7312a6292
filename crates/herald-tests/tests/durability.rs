//! Durable history on the embedded default: restarts and `kill -9`.

use herald_tests::{API_KEY, SECRET, TestServer, offsets, publish_at, test_config};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn durable_config(dir: &std::path::Path) -> herald_server::Config {
    let mut config = test_config();
    config.storage.durable = true;
    config.storage.path = dir.to_path_buf();
    config
}

#[tokio::test]
async fn history_epoch_offsets_and_idempotency_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(durable_config(dir.path())).await;
    let (_, epoch) = publish_at(&server, "history:d", json!(1)).await;
    publish_at(&server, "history:d", json!(2)).await;
    let keyed = json!({"channel": "history:d", "data": 3, "idempotency_key": "k"});
    let (_, first) = server.api("publish", keyed.clone()).await;
    server.running.shutdown().await;

    let server = TestServer::start(durable_config(dir.path())).await;
    let (_, history) = server
        .api("history", json!({"channel": "history:d", "limit": -1}))
        .await;
    assert_eq!(offsets(&history["result"]["publications"]), [1, 2, 3]);
    assert_eq!(history["result"]["epoch"], json!(epoch));
    let (_, repeated) = server.api("publish", keyed).await;
    assert_eq!(
        repeated["result"], first["result"],
        "the key is remembered across restarts"
    );
    assert_eq!(publish_at(&server, "history:d", json!(4)).await, (4, epoch));
}

/// A real `herald serve` process, for what only a real process can show.
struct Process {
    child: Child,
    url: String,
}

impl Process {
    fn start(config_path: &std::path::Path) -> Self {
        let mut child = Command::new(herald_tests::herald_binary())
            .args(["serve", "--config"])
            .arg(config_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("herald starts");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .strip_prefix("herald listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        Self { child, url }
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

async fn api(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    body: Value,
) -> Result<Value, reqwest::Error> {
    http.post(format!("{url}/api/{method}"))
        .header("X-API-Key", API_KEY)
        .json(&body)
        .send()
        .await?
        .json()
        .await
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_publication() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nhmac_secret = \"{SECRET}\"\n[api]\nkey = \"{API_KEY}\"\n\
             [storage]\npath = \"{}\"\n[[channel.namespaces]]\nname = \"orders\"\nhistory_size = 10000\nhistory_ttl = \"1h\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let herald = Process::start(&config);
    let http = reqwest::Client::new();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut publishers = Vec::new();
    for publisher in 0..8 {
        let (http, url, acked) = (http.clone(), herald.url.clone(), acked.clone());
        publishers.push(tokio::spawn(async move {
            for i in 0.. {
                let body = json!({"channel": "orders:1", "data": {"p": publisher, "i": i}});
                match api(&http, &url, "publish", body).await {
                    Ok(reply) => acked.lock().unwrap().push(reply["result"].clone()),
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill while publishes are in flight, once a good number were acknowledged.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 300 {
        assert!(tokio::time::Instant::now() < deadline, "publishing stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    herald.kill_9();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let epoch = acked[0]["epoch"].clone();

    let herald = Process::start(&config);
    let history = api(
        &http,
        &herald.url,
        "history",
        json!({"channel": "orders:1", "limit": -1}),
    )
    .await
    .unwrap();
    let stored = offsets(&history["result"]["publications"]);
    for result in &acked {
        let offset = result["offset"].as_u64().unwrap();
        assert!(
            stored.binary_search(&offset).is_ok(),
            "acknowledged offset {offset} survived"
        );
        assert_eq!(result["epoch"], epoch);
    }
    assert_eq!(history["result"]["epoch"], epoch, "the epoch is unchanged");
    let top = history["result"]["offset"].as_u64().unwrap();
    assert_eq!(stored, (1..=top).collect::<Vec<_>>(), "no holes");
    let next = api(
        &http,
        &herald.url,
        "publish",
        json!({"channel": "orders:1", "data": "after"}),
    )
    .await
    .unwrap();
    assert_eq!(next["result"]["offset"], json!(top + 1), "offsets continue");
    herald.kill_9();
}
