//! Herald: the release binary with a generated config (no durable storage, a
//! `bench` namespace clients may subscribe to), driven over the Centrifugo
//! client protocol v2: `connect` with a JWT signed here, then `subscribe`.

use super::{Endpoint, Kind, Paths, spawn_endpoint};
use crate::Result;
use crate::loadgen::Ws;
use crate::procs::Process;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub const SECRET: &str = "herald-bench-suite-secret-0123456789abcdef";
const API_KEY: &str = "herald-bench-suite-api-key";

pub fn binary(paths: &Paths) -> std::path::PathBuf {
    paths.target.join("release/herald")
}

fn config(node: Option<&Node>) -> String {
    let name = node.map_or_else(String::new, |n| format!("name = \"{}\"\n", n.name));
    let broker = match node.and_then(|n| n.redis_url.as_ref()) {
        Some(url) => format!("\n[broker]\nkind = \"redis\"\nredis_url = \"{url}\"\n"),
        None => String::new(),
    };
    format!(
        r#"[server]
listen = "127.0.0.1:0"
allowed_origins = []
shutdown_grace = "1s"
{name}
[auth]
hmac_secret = "{SECRET}"

[api]
key = "{API_KEY}"

[client]
allow_anonymous_connect_without_token = true

# The load generator opens thousands of connections from a few loopback
# addresses: the per-IP connect limit would throttle the measurement.
[client.rate_limit.connect]
enabled = false

[storage]
durable = false

[[channel.namespaces]]
name = "bench"
allow_subscribe_for_client = true
{broker}"#
    )
}

/// A named node; with a Redis URL, one of several sharing that broker.
pub struct Node {
    pub name: String,
    pub redis_url: Option<String>,
}

pub async fn start(paths: &Paths, dir: &Path) -> Result<(Process, Vec<Process>, Endpoint)> {
    let (process, endpoint) = start_node(paths, dir, None).await?;
    Ok((process, Vec::new(), endpoint))
}

/// Starts one herald process from a config written into `dir`.
pub async fn start_node(
    paths: &Paths,
    dir: &Path,
    node: Option<&Node>,
) -> Result<(Process, Endpoint)> {
    let file = dir.join("herald.toml");
    std::fs::write(&file, config(node))?;
    let mut cmd = Command::new(binary(paths));
    cmd.arg("serve").arg("--config").arg(&file).current_dir(dir);
    spawn_endpoint(
        Kind::Herald,
        cmd,
        dir,
        Duration::from_secs(20),
        API_KEY.into(),
    )
    .await
}

/// Waits until every node answers `/health` with 200 and its `info` lists
/// all of `names` (nodes announce themselves on each broker heartbeat).
pub async fn await_nodes(endpoints: &[std::sync::Arc<Endpoint>], names: &[String]) -> Result<()> {
    let http = crate::publishers::http_client();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for endpoint in endpoints {
        let base = format!("http://{}", endpoint.addr);
        loop {
            let last = match node_view(&http, &base).await {
                Ok(seen) if names.iter().all(|n| seen.contains(n)) => break,
                Ok(seen) => format!("info lists {seen:?}"),
                Err(e) => e.to_string(),
            };
            if std::time::Instant::now() > deadline {
                return Err(format!("{base} not ready with nodes {names:?}: {last}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// The node names `info` lists, once `/health` is 200.
async fn node_view(http: &reqwest::Client, base: &str) -> Result<Vec<String>> {
    let health = http.get(format!("{base}/health")).send().await?;
    if !health.status().is_success() {
        return Err(format!("/health: {}", health.status()).into());
    }
    let info: Value = http
        .post(format!("{base}/api/info"))
        .header("X-API-Key", API_KEY)
        .body("{}")
        .send()
        .await?
        .json()
        .await?;
    let nodes = info["result"]["nodes"]
        .as_array()
        .ok_or_else(|| format!("info answered {info}"))?;
    Ok(nodes
        .iter()
        .filter_map(|n| n["name"].as_str().map(String::from))
        .collect())
}

/// `herald version` of the binary the suite runs.
pub fn version(paths: &Paths) -> String {
    Command::new(binary(paths))
        .arg("version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// HS256 connection tokens for users `u0..u{count}`, signed with the config's secret.
pub fn tokens(count: usize) -> Result<Vec<String>> {
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let exp = herald_core::unix_now() + 3600;
    (0..count)
        .map(|i| {
            let claims = json!({"sub": format!("u{i}"), "exp": exp});
            Ok(jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &claims,
                &key,
            )?)
        })
        .collect()
}

/// A room's channel: `bench:<room>`, unless the room names its namespace.
fn channel(room: &str) -> String {
    if room.contains(':') {
        room.to_string()
    } else {
        format!("bench:{room}")
    }
}

pub async fn handshake(ws: &mut Ws, rooms: &[String], token: Option<&str>) -> Result<()> {
    let connect = match token {
        Some(token) => json!({"id": 1, "connect": {"token": token}}),
        None => json!({"id": 1, "connect": {}}),
    };
    ws.send(Message::text(connect.to_string())).await?;
    await_replies(ws, &mut vec![1], "connect").await?;
    let mut ids = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        let id = i as u64 + 2;
        let subscribe = json!({"id": id, "subscribe": {"channel": channel(room)}});
        ws.send(Message::text(subscribe.to_string())).await?;
        ids.push(id);
    }
    await_replies(ws, &mut ids, "subscribe").await
}

/// Reads until every command in `ids` got its reply carrying `field`; a reply
/// frame may hold several replies, one per line.
async fn await_replies(ws: &mut Ws, ids: &mut Vec<u64>, field: &str) -> Result<()> {
    while !ids.is_empty() {
        let text = match ws.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                return Err(format!("closed during {field}: {frame:?}").into());
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("{field}: {e}").into()),
            None => return Err(format!("connection ended during {field}").into()),
        };
        for line in text.split('\n').filter(|l| !l.is_empty()) {
            let reply: Value = serde_json::from_str(line)?;
            let Some(id) = reply["id"].as_u64() else {
                continue;
            };
            if !ids.contains(&id) {
                continue;
            }
            if reply.get(field).is_none() {
                return Err(format!("{field} failed: {line}").into());
            }
            ids.retain(|&i| i != id);
        }
    }
    Ok(())
}

/// Herald pings with an empty reply `{}`, alone or in a batch of lines.
pub fn pong(text: &str) -> Option<&'static str> {
    let ping = text == "{}" || text.starts_with("{}\n") || text.contains("\n{}");
    ping.then_some("{}")
}

pub fn publish(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    room: &str,
    payload: &str,
) -> reqwest::RequestBuilder {
    let body = json!({"channel": channel(room), "data": payload}).to_string();
    http.post(format!("{base}/api/publish"))
        .header("X-API-Key", key)
        .body(body)
}

pub fn batch(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    items: &[(String, String)],
) -> reqwest::RequestBuilder {
    let commands: Vec<Value> = items
        .iter()
        .map(|(room, payload)| json!({"publish": {"channel": channel(room), "data": payload}}))
        .collect();
    http.post(format!("{base}/api/batch"))
        .header("X-API-Key", key)
        .body(json!({"commands": commands}).to_string())
}
