//! Test harness: an in-process herald on `127.0.0.1:0`, a raw WebSocket client
//! that speaks the protocol's JSON by hand, and helpers for the server API.
//!
//! Every wait has a timeout, so a missing event fails the test instead of hanging.
//! [`durability`] holds the restart and `kill -9` scenarios every durable store runs.

pub mod backend;
pub mod broker;
pub mod redis;

use futures_util::{SinkExt, StreamExt};
use herald_core::ChannelOptions;
use herald_server::{Config, RunningServer};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod durability;

pub const SECRET: &str = "test-secret";
pub const API_KEY: &str = "test-api-key";
pub const WAIT: Duration = Duration::from_secs(5);

/// The config the suites share: an open default namespace, a user-limited `dm`
/// namespace, and a `private` one that needs subscription tokens.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.shutdown_grace = "3s".into();
    config.auth.hmac_secret = SECRET.into();
    config.api.key = API_KEY.into();
    // Each test that needs durability sets its own directory.
    config.storage.durable = false;
    config.channel.without_namespace = ChannelOptions {
        presence: true,
        join_leave: true,
        force_push_join_leave: true,
        allow_subscribe_for_client: true,
        allow_publish_for_subscriber: true,
        allow_presence_for_subscriber: true,
        ..Default::default()
    };
    config.channel.namespaces = vec![
        (
            "history".into(),
            ChannelOptions {
                history_size: 10,
                history_ttl: Some("5m".into()),
                force_recovery: true,
                allow_positioning: true,
                allow_subscribe_for_client: true,
                allow_history_for_subscriber: true,
                allow_history_for_client: true,
                ..Default::default()
            },
        ),
        (
            "cache".into(),
            ChannelOptions {
                history_size: 1,
                history_ttl: Some("5m".into()),
                force_recovery_mode: Some("cache".into()),
                allow_subscribe_for_client: true,
                ..Default::default()
            },
        ),
        (
            "dm".into(),
            ChannelOptions {
                allow_user_limited_channels: true,
                ..Default::default()
            },
        ),
        ("private".into(), ChannelOptions::default()),
    ];
    config
}

pub struct TestServer {
    pub running: RunningServer,
    http: reqwest::Client,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        let running = herald_server::start(&config).await.expect("server starts");
        Self {
            running,
            http: reqwest::Client::new(),
        }
    }

    pub async fn default() -> Self {
        Self::start(test_config()).await
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/connection/websocket", self.running.addr)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }

    /// Calls the server API; returns the HTTP status and the body as JSON (or as a
    /// JSON string when it is not JSON).
    pub async fn api(&self, method: &str, body: Value) -> (u16, Value) {
        self.api_raw(method, body.to_string(), API_KEY).await
    }

    pub async fn api_raw(&self, method: &str, body: String, key: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.http_url(&format!("/api/{method}")))
            .header("X-API-Key", key)
            .body(body)
            .send()
            .await
            .expect("API request completes");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(self.http_url("/metrics"))
            .send()
            .await
            .expect("metrics request completes")
            .text()
            .await
            .unwrap_or_default()
    }

    /// A client connected as `user`, with its connect reply.
    pub async fn connect(&self, user: &str) -> (Client, Value) {
        let mut client = Client::open(&self.ws_url()).await;
        let reply = client
            .call(json!({"connect": {"token": token(user, 3600)}}))
            .await;
        assert!(reply.get("connect").is_some(), "connect failed: {reply}");
        (client, reply)
    }
}

/// An HS256 connection token for `user`, valid for `ttl` seconds (negative: expired).
pub fn token(user: &str, ttl: i64) -> String {
    sign(json!({"sub": user, "exp": now() as i64 + ttl}))
}

pub fn sign(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signing works")
}

pub fn now() -> u64 {
    herald_core::unix_now()
}

/// What a read returned.
#[derive(Debug)]
pub enum Event {
    Json(Vec<Value>),
    Close(u16, String),
    Ended,
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u32,
    /// Replies and pushes read but not yet consumed.
    pending: std::collections::VecDeque<Value>,
}

impl Client {
    pub async fn open(url: &str) -> Self {
        Self::open_with_origin(url, None)
            .await
            .expect("WebSocket upgrade succeeds")
    }

    pub async fn open_with_origin(url: &str, origin: Option<&str>) -> Result<Self, String> {
        let origin: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        Self::open_with_headers(url, &origin).await
    }

    /// Opens with extra request headers, such as a browser's `Cookie`.
    pub async fn open_with_headers(url: &str, headers: &[(&str, &str)]) -> Result<Self, String> {
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        for (name, value) in headers {
            let value = value
                .parse()
                .map_err(|_| format!("bad header value {value}"))?;
            let name: tokio_tungstenite::tungstenite::http::HeaderName = name
                .parse()
                .map_err(|_| format!("bad header name {name}"))?;
            request.headers_mut().insert(name, value);
        }
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            ws,
            next_id: 0,
            pending: Default::default(),
        })
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("send works");
    }

    /// Sends one command with a fresh id; returns the id.
    pub async fn send(&mut self, mut command: Value) -> u32 {
        self.next_id += 1;
        command["id"] = json!(self.next_id);
        self.send_text(command.to_string()).await;
        self.next_id
    }

    /// Sends a command and waits for the reply with its id.
    pub async fn call(&mut self, command: Value) -> Value {
        let id = self.send(command).await;
        self.wait_for(|m| m["id"] == json!(id)).await
    }

    /// The next message (reply or push) matching `predicate`, skipping pings.
    pub async fn wait_for(&mut self, predicate: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(at) = self.pending.iter().position(&predicate) {
                return self.pending.remove(at).expect("index is valid");
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(remaining).await {
                Event::Json(messages) => self.pending.extend(messages),
                other => panic!(
                    "wanted a matching message, got {other:?}; pending: {:?}",
                    self.pending
                ),
            }
        }
    }

    /// Reads one WebSocket message, or how the connection ended.
    pub async fn read(&mut self, timeout: Duration) -> Event {
        loop {
            let next = tokio::time::timeout(timeout, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("nothing arrived within {timeout:?}"));
            return match next {
                Some(Ok(Message::Text(text))) => Event::Json(
                    text.split('\n')
                        .map(|line| serde_json::from_str(line).expect("server sends JSON"))
                        .collect(),
                ),
                Some(Ok(Message::Close(Some(frame)))) => {
                    Event::Close(frame.code.into(), frame.reason.to_string())
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => Event::Ended,
                Some(Ok(_)) => continue,
            };
        }
    }

    /// Reads until the server closes; returns the close code. Fails on timeout.
    pub async fn expect_close(&mut self) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(remaining).await {
                Event::Json(_) => continue,
                Event::Close(code, reason) => return (code, reason),
                Event::Ended => panic!("connection ended without a close frame"),
            }
        }
    }

    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.call(json!({"subscribe": {"channel": channel}})).await
    }
}

/// Publishes through the API and returns `(offset, epoch)` from its answer.
pub async fn publish_at(server: &TestServer, channel: &str, data: Value) -> (u64, String) {
    let (status, body) = server
        .api("publish", json!({"channel": channel, "data": data}))
        .await;
    assert_eq!(status, 200, "{body}");
    let result = &body["result"];
    let offset = result["offset"]
        .as_u64()
        .unwrap_or_else(|| panic!("no offset in {body}"));
    (
        offset,
        result["epoch"].as_str().unwrap_or_default().to_string(),
    )
}

/// The offsets of the publications in a reply or push list.
pub fn offsets(publications: &Value) -> Vec<u64> {
    publications
        .as_array()
        .map(|list| list.iter().filter_map(|p| p["offset"].as_u64()).collect())
        .unwrap_or_default()
}

/// The value of a Prometheus series with exactly these labels, 0 when absent.
pub fn metric_value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The `herald` binary that `cargo test` built beside this test, or `HERALD_BIN`.
pub fn herald_binary() -> std::path::PathBuf {
    if let Ok(path) = std::env::var("HERALD_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let binary = profile_dir.join("herald");
    assert!(
        binary.is_file(),
        "{} is missing: build it first (cargo build -p herald-server)",
        binary.display()
    );
    binary
}
