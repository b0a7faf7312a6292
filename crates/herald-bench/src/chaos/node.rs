//! One herald process a chaos scenario starts, kills and restarts: the release
//! binary with a generated config on a fixed loopback port, so a restarted
//! node answers where the old one did and clients reconnect to the same URL.
//! Also the `/health` watcher that records every change of a node's answer.

use crate::Result;
use crate::procs::{self, Process};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The suite's secret, so the load generator's tokens (`peers::herald::tokens`) work here too.
pub const SECRET: &str = crate::peers::herald::SECRET;
pub const API_KEY: &str = "herald-bench-chaos-api-key";
/// The namespace every scenario publishes in: history large enough that
/// nothing a run publishes is trimmed, so history can be checked in full.
pub const NAMESPACE: &str = "chaos";
/// Longest a node may take to print `listening on` after it is started.
const START_WAIT: Duration = Duration::from_secs(30);
/// How often the watcher asks `/health`.
const HEALTH_POLL: Duration = Duration::from_millis(50);

/// Where a node keeps history and app data.
#[derive(Clone)]
pub enum Storage {
    /// The embedded default: SQLite in this directory.
    Sqlite(PathBuf),
    Postgres(String),
    /// Nothing on disk (history lives in the broker, e.g. Redis).
    None,
}

#[derive(Clone)]
pub enum Broker {
    Memory,
    Redis(String),
    Cluster(Vec<String>),
}

#[derive(Clone)]
pub struct Spec {
    pub name: String,
    pub storage: Storage,
    pub broker: Broker,
    /// Lines for the `[client]` section (queue limits), usually empty.
    pub client: &'static str,
    /// RLIMIT_NOFILE to start the process with (through `prlimit`), if not inherited.
    pub fd_limit: Option<u64>,
}

impl Spec {
    fn config(&self, port: u16) -> String {
        let storage = match &self.storage {
            Storage::Sqlite(path) => format!("path = {}", json!(path.display().to_string())),
            Storage::Postgres(url) => format!("url = {}", json!(url)),
            Storage::None => "durable = false".into(),
        };
        let broker = match &self.broker {
            Broker::Memory => String::new(),
            // A short timeout and heartbeat: a lost Redis must show in /health
            // within the scenarios' 5 s.
            Broker::Redis(url) => format!(
                "[broker]\nkind = \"redis\"\nredis_url = {}\ntimeout = \"1s\"\nheartbeat = \"500ms\"\n",
                json!(url)
            ),
            Broker::Cluster(urls) => format!(
                "[broker]\nkind = \"redis\"\ncluster_urls = {}\ntimeout = \"1s\"\nheartbeat = \"500ms\"\n",
                json!(urls)
            ),
        };
        format!(
            r#"[server]
listen = "127.0.0.1:{port}"
allowed_origins = []
shutdown_grace = "1s"
name = "{name}"

[auth]
hmac_secret = "{SECRET}"

[api]
key = "{API_KEY}"

[client]
{client}

# The load generator opens thousands of connections from a few loopback
# addresses: the per-IP connect limit would throttle the measurement.
[client.rate_limit.connect]
enabled = false

[storage]
{storage}

{broker}
[[channel.namespaces]]
name = "{NAMESPACE}"
history_size = 1000000
history_ttl = "1h"
force_recovery = true
allow_subscribe_for_client = true

# The churn scenario's: a little history that expires, and positions
# forgotten soon after, so idle channels leave nothing behind.
[[channel.namespaces]]
name = "churn"
history_size = 2
history_ttl = "5s"
history_meta_ttl = "10s"
allow_subscribe_for_client = true

# The load generator's namespace (`peers::herald`): no history.
[[channel.namespaces]]
name = "bench"
allow_subscribe_for_client = true
"#,
            name = self.name,
            client = self.client,
        )
    }
}

/// A herald node that can be killed and started again with the same config.
pub struct Node {
    pub spec: Spec,
    pub port: u16,
    dir: PathBuf,
    binary: PathBuf,
    process: Option<Process>,
    starts: usize,
}

impl Node {
    /// Writes the config into `dir` and starts the node; returns once it listens.
    pub async fn start(binary: &Path, dir: &Path, spec: Spec) -> Result<Node> {
        std::fs::create_dir_all(dir)?;
        let port = crate::peers::free_port()?;
        std::fs::write(dir.join("herald.toml"), spec.config(port))?;
        let mut node = Node {
            spec,
            port,
            dir: dir.to_path_buf(),
            binary: binary.to_path_buf(),
            process: None,
            starts: 0,
        };
        node.launch().await?;
        Ok(node)
    }

    async fn launch(&mut self) -> Result<()> {
        self.starts += 1;
        let mut cmd = match self.spec.fd_limit {
            Some(limit) => {
                let mut cmd = std::process::Command::new("prlimit");
                cmd.arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(&self.binary);
                cmd
            }
            None => std::process::Command::new(&self.binary),
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(self.dir.join("herald.toml"))
            .current_dir(&self.dir);
        // One log per start, so the log of the killed process stays readable.
        let log = self.dir.join(format!("herald-{}.log", self.starts));
        let (process, addr) =
            procs::spawn_listening(&self.spec.name, cmd, &log, START_WAIT).await?;
        let expected = format!("127.0.0.1:{}", self.port);
        if addr != expected {
            process.stop().await;
            return Err(format!("{} listens on {addr}, not {expected}", self.spec.name).into());
        }
        self.process = Some(process);
        Ok(())
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/connection/websocket", self.port)
    }

    /// Resident memory of the node's process group, in KiB (0 when stopped).
    pub fn rss_kib(&self) -> u64 {
        self.process.as_ref().map_or(0, Process::rss_kib)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// SIGKILL to the node's process group: no shutdown, no flush.
    pub async fn kill9(&mut self) {
        if let Some(process) = self.process.take() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", process.pid)])
                .status();
            // Reaps the killed process (its TERM finds nobody left).
            process.stop().await;
        }
    }

    /// Starts the node again on the same port, config and data.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill9().await;
        self.launch().await
    }

    pub fn log_tail(&self) -> String {
        self.process
            .as_ref()
            .map(Process::log_tail)
            .unwrap_or_else(|| "(not running)".into())
    }

    /// Stops the node and hands `outcome` back, showing the node's log first
    /// when the scenario failed.
    pub async fn finish(self, outcome: Result<crate::chaos::Row>) -> Result<crate::chaos::Row> {
        if crate::chaos::failed(&outcome) {
            eprintln!("  node log:\n{}", self.log_tail());
        }
        self.stop().await;
        outcome
    }

    pub async fn stop(mut self) {
        if let Some(process) = self.process.take() {
            process.stop().await;
        }
    }
}

/// When a `/health` request was sent, and its status (`None`: no answer).
type Sample = (Instant, Option<u16>);

/// `/health` of one node over time: every answer, stamped with the time its
/// request was sent, so an answer counts only for the moment after which it
/// was asked. `None` is "no answer" (refused, reset or timed out).
pub struct HealthWatch {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: JoinHandle<()>,
}

impl HealthWatch {
    pub fn start(base: String) -> HealthWatch {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let samples = samples.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(1))
                    .build()
                    .expect("a plain HTTP client builds");
                let url = format!("{base}/health");
                loop {
                    let asked = Instant::now();
                    let status = match http.get(&url).send().await {
                        Ok(response) => Some(response.status().as_u16()),
                        Err(_) => None,
                    };
                    samples.lock().expect("not poisoned").push((asked, status));
                    tokio::time::sleep_until((asked + HEALTH_POLL).into()).await;
                }
            })
        };
        HealthWatch { samples, task }
    }

    /// When the first request sent after `since` was answered so that
    /// `wanted` holds, waiting for one until `deadline`.
    pub async fn wait(
        &self,
        since: Instant,
        deadline: Instant,
        wanted: impl Fn(Option<u16>) -> bool,
    ) -> Option<Instant> {
        loop {
            let first = self
                .samples
                .lock()
                .expect("not poisoned")
                .iter()
                .find(|(at, status)| *at > since && wanted(*status))
                .map(|(at, _)| *at);
            if first.is_some() || Instant::now() > deadline {
                return first;
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    /// Answers other than 200 to requests sent between `from` and `to`.
    pub fn failures_between(&self, from: Instant, to: Instant) -> usize {
        let samples = self.samples.lock().expect("not poisoned");
        samples
            .iter()
            .filter(|(at, status)| *at > from && *at < to && *status != Some(200))
            .count()
    }
}

impl Drop for HealthWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn is_ok(status: Option<u16>) -> bool {
    status == Some(200)
}

pub fn is_unavailable(status: Option<u16>) -> bool {
    status == Some(503)
}

/// An HS256 connection token for `user`, signed with the config's secret.
pub fn token(user: &str) -> Result<String> {
    crate::load::token_signed(SECRET, user)
}
