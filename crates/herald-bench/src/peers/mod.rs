//! The systems under test. Each runs as its own process, started fresh for
//! each scenario, and is driven through its own protocol:
//! - `herald.rs`: the release `herald` binary, Centrifugo protocol v2, JWT connect;
//! - `baseline.rs`: `rust-baseline`, a bare axum broadcast (one channel, no protocol);
//! - `sockudo.rs`: sockudo 5.2 (bench/peers/sockudo), Pusher Channels protocol 7,
//!   publishing through its signed HTTP API;
//! - `socketio.rs`: Socket.IO 4 on Node (bench/peers/socketio), Engine.IO v4 framing;
//! - `django.rs`: Django Channels with Redis (bench/peers/django), when present.

pub mod baseline;
pub mod django;
pub mod herald;
pub mod socketio;
pub mod sockudo;

use crate::Result;
use crate::loadgen::{self, Ws};
use crate::procs::Process;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Herald,
    Baseline,
    Sockudo,
    SocketIo,
    Django,
}

/// How many rooms (channels, groups) one connection can join.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Rooms {
    /// Every connection gets every publication.
    None,
    /// One room, chosen when connecting.
    One,
    Many,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Herald,
        Kind::Baseline,
        Kind::Sockudo,
        Kind::SocketIo,
        Kind::Django,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Kind::Herald => "herald",
            Kind::Baseline => "baseline",
            Kind::Sockudo => "sockudo",
            Kind::SocketIo => "socketio",
            Kind::Django => "django",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Herald => "Herald",
            Kind::Baseline => "Rust baseline (axum)",
            Kind::Sockudo => "sockudo 5 (Rust, Pusher)",
            Kind::SocketIo => "Socket.IO 4 (Node)",
            Kind::Django => "Django Channels",
        }
    }

    pub fn parse(id: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.id() == id.trim())
    }

    pub fn rooms(self) -> Rooms {
        match self {
            Kind::Herald | Kind::Sockudo | Kind::SocketIo => Rooms::Many,
            Kind::Django => Rooms::One,
            Kind::Baseline => Rooms::None,
        }
    }

    /// Whether the server API takes many publications in one request.
    pub fn has_batch(self) -> bool {
        matches!(self, Kind::Herald | Kind::Sockudo)
    }
}

/// Where the suite's files are.
pub struct Paths {
    pub root: PathBuf,
    pub target: PathBuf,
}

/// How to reach a running system.
pub struct Endpoint {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// Herald only: the server API key (sockudo's app credentials are fixed in `sockudo.rs`).
    pub api_key: String,
}

impl Endpoint {
    /// Opens connection `i` from its source address and completes the
    /// system's handshake, joining `rooms`.
    pub async fn open(&self, i: usize, rooms: &[String], token: Option<&str>) -> Result<Ws> {
        let path = match self.kind {
            Kind::Herald => "/connection/websocket".to_string(),
            Kind::Baseline => "/ws".to_string(),
            Kind::Sockudo => sockudo::path(),
            Kind::SocketIo => socketio::path(rooms),
            Kind::Django => django::path(rooms)?,
        };
        let mut ws = loadgen::open(self.addr, &path, loadgen::source(i)).await?;
        let handshake = async {
            match self.kind {
                Kind::Herald => herald::handshake(&mut ws, rooms, token).await,
                Kind::Sockudo => sockudo::handshake(&mut ws, rooms).await,
                Kind::SocketIo => socketio::handshake(&mut ws).await,
                Kind::Baseline | Kind::Django => Ok(()),
            }
        };
        tokio::time::timeout(loadgen::CONNECT_WAIT, handshake)
            .await
            .map_err(|_| format!("no handshake reply within {:?}", loadgen::CONNECT_WAIT))??;
        Ok(ws)
    }

    /// The answer to a frame that is (or holds) a ping.
    pub fn pong(&self, text: &str) -> Option<&'static str> {
        match self.kind {
            Kind::Herald => herald::pong(text),
            Kind::Sockudo => sockudo::pong(text),
            Kind::SocketIo => socketio::pong(text),
            Kind::Baseline | Kind::Django => None,
        }
    }

    /// One publication of `payload` to `room`.
    pub fn publish(
        &self,
        http: &reqwest::Client,
        room: &str,
        payload: &str,
    ) -> reqwest::RequestBuilder {
        let base = format!("http://{}", self.addr);
        match self.kind {
            Kind::Herald => herald::publish(http, &base, &self.api_key, room, payload),
            Kind::Baseline => http
                .post(format!("{base}/publish"))
                .body(payload.to_string()),
            Kind::Sockudo => sockudo::publish(http, &base, room, payload),
            Kind::SocketIo => http
                .post(format!("{base}/publish/{room}"))
                .body(payload.to_string()),
            Kind::Django => http
                .post(format!("{base}/publish/{room}/"))
                .body(payload.to_string()),
        }
    }

    /// Many publications in one request, where the system has a batch API.
    pub fn batch(
        &self,
        http: &reqwest::Client,
        items: &[(String, String)],
    ) -> Option<reqwest::RequestBuilder> {
        let base = format!("http://{}", self.addr);
        match self.kind {
            Kind::Herald => Some(herald::batch(http, &base, &self.api_key, items)),
            Kind::Sockudo => Some(sockudo::batch(http, &base, items)),
            _ => None,
        }
    }
}

/// A running system: its process (group), helper processes, and temp files.
pub struct Peer {
    pub endpoint: Arc<Endpoint>,
    main: Process,
    helpers: Vec<Process>,
    _dir: tempfile::TempDir,
}

impl Peer {
    pub async fn start(kind: Kind, paths: &Paths) -> Result<Peer> {
        let dir = tempfile::tempdir()?;
        let (main, helpers, endpoint) = match kind {
            Kind::Herald => herald::start(paths, dir.path()).await?,
            Kind::Baseline => baseline::start(paths, dir.path()).await?,
            Kind::Sockudo => sockudo::start(paths, dir.path()).await?,
            Kind::SocketIo => socketio::start(paths, dir.path()).await?,
            Kind::Django => django::start(paths, dir.path()).await?,
        };
        Ok(Peer {
            endpoint: Arc::new(endpoint),
            main,
            helpers,
            _dir: dir,
        })
    }

    /// Resident memory of the server's process group (helpers such as Redis excluded), KiB.
    pub fn rss_kib(&self) -> u64 {
        self.main.rss_kib()
    }

    /// CPU ticks of the server and its helpers.
    pub fn cpu_ticks(&self) -> u64 {
        self.main.cpu_ticks() + self.helpers.iter().map(Process::cpu_ticks).sum::<u64>()
    }

    pub fn log_tail(&self) -> String {
        self.main.log_tail()
    }

    pub async fn stop(self) {
        self.main.stop().await;
        for helper in self.helpers {
            helper.stop().await;
        }
    }

    /// Stops the system after a measurement, showing its log when it failed.
    pub async fn finish<T>(self, outcome: Result<T>) -> Result<T> {
        if outcome.is_err() {
            eprintln!("  {} log:\n{}", self.endpoint.kind.id(), self.log_tail());
        }
        self.stop().await;
        outcome
    }
}

/// A free TCP port on 127.0.0.1 (for systems that cannot pick their own).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Starts a system that prints `listening on http://ADDR` (its log goes to
/// `dir/<id>.log`) and names the endpoint it serves.
async fn spawn_endpoint(
    kind: Kind,
    cmd: std::process::Command,
    dir: &std::path::Path,
    wait: std::time::Duration,
    api_key: String,
) -> Result<(Process, Endpoint)> {
    let name = kind.id();
    let log = dir.join(format!("{name}.log"));
    let (process, addr) = crate::procs::spawn_listening(name, cmd, &log, wait).await?;
    let addr = parse_addr(name, &addr)?;
    Ok((
        process,
        Endpoint {
            kind,
            addr,
            api_key,
        },
    ))
}

pub fn parse_addr(name: &str, addr: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("{name} printed an address that does not parse ({e}): {addr}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{name} listens on {addr}, not on loopback").into());
    }
    Ok(addr)
}
