//! What the benchmarks share: in-process servers, concurrent API publishers
//! that time every publish, the check that answered offsets have no gap or
//! duplicate, a minimal WebSocket client, and HS256 tokens.

use crate::Result;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use herald_server::{Config, RunningServer};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "bench-secret";
pub const API_KEY: &str = "bench-api-key";
/// Longest wait for any single answer; a server that takes longer has a problem.
const WAIT: Duration = Duration::from_secs(30);

/// The base config: listens on a free port, keys set, no history storage chosen.
pub fn base_config() -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.shutdown_grace = "2s".into();
    config.auth.hmac_secret = SECRET.into();
    config.api.key = API_KEY.into();
    // The load generator opens thousands of connections from a few addresses.
    config.client.rate_limit.connect.enabled = Some(false);
    config
}

/// A running in-process server, with the temp directory its SQLite files live in.
pub struct Server {
    pub label: String,
    pub running: RunningServer,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    pub async fn start(
        label: &str,
        config: Config,
        dir: Option<tempfile::TempDir>,
    ) -> Result<Self> {
        let running = herald_server::start(&config)
            .await
            .map_err(|e| format!("{label}: server did not start: {e}"))?;
        Ok(Self {
            label: label.into(),
            running,
            _dir: dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }
}

/// What the API answered to one publish on a channel with history.
#[derive(Debug, Clone)]
pub struct Answer {
    pub channel: usize,
    pub offset: u64,
    pub epoch: String,
}

/// One API publish, awaited; fails on anything but `{"result":{"offset","epoch"}}`.
pub async fn publish(
    http: &reqwest::Client,
    url: &str,
    channel: &str,
    data: &Value,
) -> Result<(u64, String)> {
    let body = json!({"channel": channel, "data": data}).to_string();
    let response = http
        .post(url)
        .header("X-API-Key", API_KEY)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("publish to {channel}: request failed: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match (
        status.as_u16(),
        answer["result"]["offset"].as_u64(),
        answer["result"]["epoch"].as_str(),
    ) {
        (200, Some(offset), Some(epoch)) if offset > 0 && !epoch.is_empty() => {
            Ok((offset, epoch.to_string()))
        }
        _ => Err(format!("publish to {channel}: HTTP {status}, answer {text}").into()),
    }
}

/// The outcome of a batch of concurrent publishes.
pub struct PublishRun {
    pub elapsed: Duration,
    /// Latency of each publish, in microseconds.
    pub latency: Histogram<u64>,
    pub answers: Vec<Answer>,
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("static bounds are valid")
}

/// `total` publishes spread round-robin over `channels`, sent by `publishers`
/// concurrent tasks that each await one answer before sending the next.
/// Prints `label: done/total` to stderr every second.
pub async fn publish_many(
    http: &reqwest::Client,
    server: &Server,
    channels: &[String],
    total: usize,
    publishers: usize,
    payload: &str,
    label: &str,
) -> Result<PublishRun> {
    let url = server.url("/api/publish");
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let channels: Arc<[String]> = channels.into();
    let progress = {
        let (done, label) = (done.clone(), label.to_string());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!("  {label}: {}/{total}", done.load(Ordering::Relaxed));
            }
        })
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..publishers.max(1) {
        let (http, url, payload) = (http.clone(), url.clone(), payload.to_string());
        let (next, done, channels) = (next.clone(), done.clone(), channels.clone());
        tasks.push(tokio::spawn(async move {
            let mut latency = new_histogram();
            let mut answers = Vec::new();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    return Ok::<_, Box<dyn std::error::Error + Send + Sync>>((latency, answers));
                }
                let channel = seq % channels.len();
                let data = json!({"seq": seq, "text": payload});
                let sent = Instant::now();
                let (offset, epoch) = publish(&http, &url, &channels[channel], &data).await?;
                latency.saturating_record(sent.elapsed().as_micros().max(1) as u64);
                answers.push(Answer {
                    channel,
                    offset,
                    epoch,
                });
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut run = PublishRun {
        elapsed: Duration::ZERO,
        latency: new_histogram(),
        answers: Vec::with_capacity(total),
    };
    let mut failure = None;
    for task in tasks {
        match task.await {
            Ok(Ok((latency, answers))) => {
                run.latency.add(latency).map_err(|e| e.to_string())?;
                run.answers.extend(answers);
            }
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(e.to_string().into())),
        }
    }
    run.elapsed = started.elapsed();
    progress.abort();
    match failure {
        Some(e) => Err(format!("{}: {e}", server.label).into()),
        None => Ok(run),
    }
}

/// Each channel must have got offsets 1..=n, each once, all under one epoch.
pub fn check_offsets(label: &str, channels: &[String], answers: &[Answer]) -> Result<()> {
    let mut by_channel: BTreeMap<usize, (Vec<u64>, Vec<&str>)> = BTreeMap::new();
    for answer in answers {
        let entry = by_channel.entry(answer.channel).or_default();
        entry.0.push(answer.offset);
        if !entry.1.contains(&answer.epoch.as_str()) {
            entry.1.push(&answer.epoch);
        }
    }
    for (channel, (mut offsets, epochs)) in by_channel {
        let name = &channels[channel];
        if epochs.len() != 1 {
            return Err(format!("{label}: {name} answered with several epochs: {epochs:?}").into());
        }
        offsets.sort_unstable();
        let expected: Vec<u64> = (1..=offsets.len() as u64).collect();
        if offsets != expected {
            let first_bad = offsets.iter().zip(&expected).position(|(a, b)| a != b);
            return Err(format!(
                "{label}: {name}: {} publishes answered offsets that are not 1..={}: \
                 first mismatch at index {first_bad:?}, highest offset {:?}",
                offsets.len(),
                offsets.len(),
                offsets.last()
            )
            .into());
        }
    }
    Ok(())
}

/// An HS256 connection token for `user`, valid for an hour.
pub fn token(user: &str) -> Result<String> {
    token_signed(SECRET, user)
}

/// [`token`] signed with `secret`.
pub fn token_signed(secret: &str, user: &str) -> Result<String> {
    let claims = json!({"sub": user, "exp": herald_core::unix_now() + 3600});
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// A raw protocol client: JSON commands out, newline-separated JSON replies in.
pub struct Ws {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u32,
}

impl Ws {
    pub async fn open(server: &Server) -> Result<Self> {
        let url = format!("ws://{}/connection/websocket", server.running.addr);
        // Nagle off (`true`), as browsers open WebSockets: a command sent
        // right after another must not wait for the server's delayed ACK.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
            .await
            .map_err(|e| format!("{}: WebSocket upgrade failed: {e}", server.label))?;
        Ok(Self { ws, next_id: 0 })
    }

    /// Sends one command with a fresh id; returns the id.
    pub async fn send(&mut self, mut command: Value) -> Result<u32> {
        self.next_id += 1;
        command["id"] = json!(self.next_id);
        self.ws.send(Message::text(command.to_string())).await?;
        Ok(self.next_id)
    }

    /// Reads until the reply with `id`; returns it and when its frame arrived
    /// (before it was parsed). Pushes and other replies are skipped.
    pub async fn reply(&mut self, id: u32) -> Result<(Value, Instant)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| format!("no reply to command {id} within {WAIT:?}"))?;
            let text = match next {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!("server closed the connection: {frame:?}").into());
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("WebSocket read failed: {e}").into()),
                None => return Err("connection ended".into()),
            };
            let arrived = Instant::now();
            for line in text.split('\n').filter(|line| !line.is_empty()) {
                let message: Value = serde_json::from_str(line)
                    .map_err(|e| format!("server sent invalid JSON ({e}): {line}"))?;
                if message["id"] == json!(id) {
                    return Ok((message, arrived));
                }
            }
        }
    }

    pub async fn call(&mut self, command: Value) -> Result<Value> {
        let id = self.send(command).await?;
        Ok(self.reply(id).await?.0)
    }

    /// The connection itself, for a benchmark that reads and writes it
    /// concurrently; ids it sends must not reuse the ones `send` gave.
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
