//! Durability scenarios shared by every durable store: each store's suite
//! calls them with its own `[storage]` settings, so SQLite and PostgreSQL are
//! held to the same promises by the same code.

use crate::{API_KEY, SECRET, TestServer, offsets, publish_at};
use herald_server::Config;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Publishes (one with an idempotency key), restarts on the same storage, and
/// checks history, epoch, the remembered key, and that offsets continue.
/// `config` must return a config on the same storage each time.
pub async fn history_epoch_offsets_and_idempotency_survive_a_restart(config: impl Fn() -> Config) {
    let server = TestServer::start(config()).await;
    let (_, epoch) = publish_at(&server, "history:d", json!(1)).await;
    publish_at(&server, "history:d", json!(2)).await;
    let keyed = json!({"channel": "history:d", "data": 3, "idempotency_key": "k"});
    let (_, first) = server.api("publish", keyed.clone()).await;
    server.running.shutdown().await;

    let server = TestServer::start(config()).await;
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
    server.running.shutdown().await;
}

/// A real `herald serve` process, for what only a real process can show.
pub struct Process {
    child: Child,
    pub url: String,
}

impl Process {
    pub fn start(config_path: &Path) -> Self {
        let mut child = Command::new(crate::herald_binary())
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

    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    /// A failing assertion must not leave a server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn api(
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

/// Kills a real server with SIGKILL while eight publishers are mid-flight,
/// restarts it, and checks that every acknowledged publication is there,
/// without holes, under the same epoch, and that offsets continue.
/// `storage` is the body of the `[storage]` table; the config file is
/// written into `dir`.
pub async fn kill_9_loses_no_acknowledged_publication(dir: &Path, storage: &str) {
    let config = dir.join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nhmac_secret = \"{SECRET}\"\n[api]\nkey = \"{API_KEY}\"\n\
             [storage]\n{storage}\n[[channel.namespaces]]\nname = \"orders\"\nhistory_size = 10000\nhistory_ttl = \"1h\"\n",
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
