//! Socket.IO 4 on Node (`bench/peers/socketio/server.js`), spoken here as
//! Engine.IO v4 over a WebSocket: the server opens with `0{...}`, the client
//! joins the default namespace with `40` and gets `40{...}`; events arrive as
//! `42["m",payload]`; the server pings with `2` and the client answers `3`.

use super::{Endpoint, Kind, Paths, spawn_endpoint};
use crate::Result;
use crate::loadgen::Ws;
use crate::procs::Process;
use futures_util::{SinkExt, StreamExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub fn dir(paths: &Paths) -> PathBuf {
    paths.root.join("bench/peers/socketio")
}

/// Installs the pinned dependencies with `npm ci` when `node_modules` is missing.
pub fn prepare(paths: &Paths) -> Result<()> {
    let dir = dir(paths);
    if dir.join("node_modules/socket.io/package.json").exists() {
        return Ok(());
    }
    eprintln!(
        "socketio: installing the pinned packages (npm ci) in {}",
        dir.display()
    );
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .map_err(|e| format!("socketio: cannot run npm (is Node.js installed?): {e}"))?;
    if !status.success() {
        return Err(format!("socketio: npm ci failed in {}: {status}", dir.display()).into());
    }
    Ok(())
}

pub async fn start(paths: &Paths, tmp: &Path) -> Result<(Process, Vec<Process>, Endpoint)> {
    let dir = dir(paths);
    let mut cmd = Command::new("node");
    cmd.arg("server.js").arg("0").current_dir(&dir);
    let (process, endpoint) = spawn_endpoint(
        Kind::SocketIo,
        cmd,
        tmp,
        Duration::from_secs(30),
        String::new(),
    )
    .await?;
    Ok((process, Vec::new(), endpoint))
}

/// `node vX, socket.io Y` as installed.
pub fn version(paths: &Paths) -> String {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let package = dir(paths).join("node_modules/socket.io/package.json");
    let socketio = std::fs::read_to_string(package)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    format!("Node {node}, socket.io {socketio}")
}

pub fn path(rooms: &[String]) -> String {
    format!(
        "/socket.io/?EIO=4&transport=websocket&room={}",
        rooms.join(",")
    )
}

pub async fn handshake(ws: &mut Ws) -> Result<()> {
    let open = next_text(ws).await?;
    if !open.starts_with('0') {
        return Err(format!("expected an Engine.IO open packet, got {open}").into());
    }
    ws.send(Message::text("40")).await?;
    loop {
        let text = next_text(ws).await?;
        if text.starts_with("40") {
            return Ok(());
        }
        if text == "2" {
            ws.send(Message::text("3")).await?;
            continue;
        }
        return Err(format!("namespace connect answered {text}").into());
    }
}

async fn next_text(ws: &mut Ws) -> Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
            Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}").into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err("connection ended during the handshake".into()),
        }
    }
}

pub fn pong(text: &str) -> Option<&'static str> {
    (text == "2").then_some("3")
}
