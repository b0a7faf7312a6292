//! sockudo 5.2, the Rust Pusher-protocol server (`bench/peers/sockudo`; its
//! `install.sh` builds the release binary into `.root/`). The suite writes a
//! config per run: one app, the local (in-memory) adapter, no rate limits, no
//! metrics listener, no queue. Clients speak Pusher Channels protocol 7:
//! `pusher:connection_established`, then `pusher:subscribe` per channel, each
//! answered by `pusher_internal:subscription_succeeded`; the server pings with
//! `pusher:ping` and the client answers `pusher:pong`. Deliveries arrive as
//! `{"event":"m","channel":..,"data":"<payload>"}`: the payload is a JSON
//! string, and as it needs no escaping its `@@time@@` marker is found in the
//! frame as it is. Publishing goes through the signed HTTP API
//! (`POST /apps/ID/events`, `POST /apps/ID/batch_events`).

use super::{Endpoint, Kind, Paths};
use crate::Result;
use crate::loadgen::Ws;
use crate::procs::{self, Process};
use futures_util::{SinkExt, StreamExt};
use md5::Digest;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

const APP_ID: &str = "herald-bench";
const APP_KEY: &str = "herald-bench-key";
const APP_SECRET: &str = "herald-bench-suite-secret-0123456789abcdef";
/// The event name every publication uses.
const EVENT: &str = "m";
/// Publications per `batch_events` request the config allows (Pusher's limit is 10):
/// the publish scenario's batch size.
const MAX_BATCH: usize = crate::scenarios::publish::BATCH;

pub fn dir(paths: &Paths) -> PathBuf {
    paths.root.join("bench/peers/sockudo")
}

pub fn binary(paths: &Paths) -> PathBuf {
    dir(paths).join(".root/bin/sockudo")
}

/// Why sockudo cannot run here. Building it takes long (tens of minutes on
/// 2 CPUs), so only the `full` scale runs `install.sh`; smaller scales skip
/// it unless it is installed already.
pub fn unavailable(paths: &Paths, scale: &str) -> Option<String> {
    if binary(paths).exists() {
        return None;
    }
    let install = dir(paths).join("install.sh");
    if scale != "full" {
        return Some(
            "not installed, and building it is slow: run `bash bench/peers/sockudo/install.sh` \
             once (or use --scale full, which builds it)"
                .into(),
        );
    }
    eprintln!(
        "sockudo: building the pinned release with {} (slow: tens of minutes)",
        install.display()
    );
    match Command::new("bash").arg(&install).status() {
        Ok(status) if status.success() && binary(paths).exists() => None,
        Ok(status) => Some(format!("{} failed: {status}", install.display())),
        Err(e) => Some(format!("cannot run {}: {e}", install.display())),
    }
}

/// The config file: sockudo's `ServerOptions` as JSON (unset keys keep their defaults).
fn config(port: u16) -> String {
    let config = json!({
        "host": "127.0.0.1",
        "port": port,
        "mode": "production",
        "shutdown_grace_period": 1,
        "adapter": {"driver": "local"},
        "app_manager": {
            "driver": "memory",
            "array": {"apps": [{
                "id": APP_ID,
                "key": APP_KEY,
                "secret": APP_SECRET,
                "enabled": true,
                "policy": {
                    "limits": {
                        "max_connections": 0,
                        "max_event_batch_size": MAX_BATCH,
                    },
                    "features": {"enable_client_messages": false},
                },
            }]},
        },
        "cache": {"driver": "memory"},
        "queue": {"driver": "none"},
        "rate_limiter": {"enabled": false, "driver": "memory"},
        "metrics": {"enabled": false, "host": "127.0.0.1"},
        "event_limits": {"max_batch_size": MAX_BATCH},
        "cluster_health": {"enabled": false},
    });
    serde_json::to_string_pretty(&config).expect("a JSON value serializes")
}

pub async fn start(paths: &Paths, tmp: &Path) -> Result<(Process, Vec<Process>, Endpoint)> {
    let port = super::free_port()?;
    let file = tmp.join("sockudo.json");
    std::fs::write(&file, config(port))?;
    let mut cmd = Command::new(binary(paths));
    // A clean environment: sockudo reads many variables that override the file.
    // The working directory is the temp dir, so no stray config/config.toml applies.
    cmd.arg("--config")
        .arg(&file)
        .current_dir(tmp)
        .env_clear()
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn");
    let process = procs::spawn_quiet("sockudo", cmd, &tmp.join("sockudo.log"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if let Err(e) = ready(addr).await {
        let tail = process.log_tail();
        process.stop().await;
        return Err(
            format!("sockudo did not come up on {addr}: {e}; its log ends:\n{tail}").into(),
        );
    }
    let endpoint = Endpoint {
        kind: Kind::Sockudo,
        addr,
        api_key: String::new(),
    };
    Ok((process, Vec::new(), endpoint))
}

/// Waits until `GET /up/APP_ID` answers 200: listening, with the app configured.
async fn ready(addr: SocketAddr) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::from("nothing yet");
    while Instant::now() < deadline {
        match http.get(format!("http://{addr}/up/{APP_ID}")).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("GET /up/{APP_ID}: HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.into())
}

/// `sockudo 5.2.0 ...` as installed.
pub fn version(paths: &Paths) -> String {
    let reported = Command::new(binary(paths))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "sockudo (not installed)".into());
    format!("{reported} (Pusher Channels protocol 7, local adapter)")
}

pub fn path() -> String {
    format!("/app/{APP_KEY}?protocol=7&client=herald-bench&version=1")
}

pub async fn handshake(ws: &mut Ws, rooms: &[String]) -> Result<()> {
    loop {
        let (event, _) = next_event(ws).await?;
        if event == "pusher:connection_established" {
            break;
        }
    }
    for room in rooms {
        let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": room}});
        ws.send(Message::text(subscribe.to_string())).await?;
    }
    let mut pending: Vec<&String> = rooms.iter().collect();
    while !pending.is_empty() {
        let (event, frame) = next_event(ws).await?;
        if event == "pusher_internal:subscription_succeeded" {
            let channel = frame["channel"].as_str().unwrap_or_default();
            pending.retain(|room| room.as_str() != channel);
        }
    }
    Ok(())
}

/// The next Pusher event's name and frame; answers pings, fails on errors.
async fn next_event(ws: &mut Ws) -> Result<(String, Value)> {
    loop {
        let text = match ws.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}").into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err("connection ended during the handshake".into()),
        };
        if let Some(pong) = pong(&text) {
            ws.send(Message::text(pong)).await?;
            continue;
        }
        let frame: Value = serde_json::from_str(&text)?;
        let event = frame["event"].as_str().unwrap_or_default().to_string();
        if event == "pusher:error" || event.ends_with("subscription_error") {
            return Err(format!("sockudo answered {text}").into());
        }
        return Ok((event, frame));
    }
}

pub fn pong(text: &str) -> Option<&'static str> {
    text.contains("\"pusher:ping\"")
        .then_some(r#"{"event":"pusher:pong","data":{}}"#)
}

pub fn publish(
    http: &reqwest::Client,
    base: &str,
    room: &str,
    payload: &str,
) -> reqwest::RequestBuilder {
    let body = json!({"name": EVENT, "channels": [room], "data": payload}).to_string();
    signed(http, base, "events", body)
}

pub fn batch(
    http: &reqwest::Client,
    base: &str,
    items: &[(String, String)],
) -> reqwest::RequestBuilder {
    let batch: Vec<Value> = items
        .iter()
        .map(|(room, payload)| json!({"name": EVENT, "channel": room, "data": payload}))
        .collect();
    let body = json!({ "batch": batch }).to_string();
    signed(http, base, "batch_events", body)
}

/// A `POST /apps/APP_ID/{endpoint}` signed the Pusher way: the sorted query
/// (`auth_key`, `auth_timestamp`, `auth_version`, `body_md5`) and
/// `auth_signature` = hex HMAC-SHA256 of `POST\n<path>\n<query>` with the secret.
fn signed(
    http: &reqwest::Client,
    base: &str,
    endpoint: &str,
    body: String,
) -> reqwest::RequestBuilder {
    let path = format!("/apps/{APP_ID}/{endpoint}");
    let query = auth_query(&body, unix_secs());
    let signature = sign(&format!("POST\n{path}\n{query}"));
    http.post(format!("{base}{path}?{query}&auth_signature={signature}"))
        .header("Content-Type", "application/json")
        .body(body)
}

fn auth_query(body: &str, timestamp: u64) -> String {
    let body_md5 = hex(&md5::Md5::digest(body.as_bytes()));
    format!("auth_key={APP_KEY}&auth_timestamp={timestamp}&auth_version=1.0&body_md5={body_md5}")
}

fn sign(text: &str) -> String {
    static KEY: OnceLock<aws_lc_rs::hmac::Key> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, APP_SECRET.as_bytes())
    });
    hex(aws_lc_rs::hmac::sign(key, text.as_bytes()).as_ref())
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_pusher_libraries() {
        // The example from Pusher's HTTP API reference ("Worked authentication example").
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"7ad3773142a6692b25b8");
        let text = "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179\
                    &auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f";
        assert_eq!(
            hex(aws_lc_rs::hmac::sign(&key, text.as_bytes()).as_ref()),
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
        let body = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(
            hex(&md5::Md5::digest(body.as_bytes())),
            "ec365a775a4cd0599faeb73354201b6f"
        );
        assert!(auth_query("{}", 7).starts_with("auth_key=herald-bench-key&auth_timestamp=7&"));
    }

    #[test]
    fn answers_pings_only() {
        assert!(pong(r#"{"event":"pusher:ping","data":{}}"#).is_some());
        assert!(pong(r#"{"event":"m","channel":"fan","data":"@@1@@x"}"#).is_none());
    }
}
