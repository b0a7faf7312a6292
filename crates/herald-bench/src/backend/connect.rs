//! The connect half of `backend`: the minimal backend herald's connect proxy
//! asks, and the connect storm that measures connects per second through it
//! and through JWTs.
//!
//! The backend is an axum server on a runtime of its own, with threads named
//! [`BACKEND_THREADS`] so its CPU is read apart from the load generator's. It
//! answers at once, from the `session` cookie herald forwards:
//! `{"result":{"user":"<session>"}}`, or error 1401 without one.

use super::{Cpu, Herald, Scale, Ticks};
use crate::{Result, load, loadgen};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::COOKIE};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The name of the backend runtime's threads, by which their CPU is told apart.
const BACKEND_THREADS: &str = "bench-backend";
/// Distinct users the storm connects as, by cookie or by token, round-robin.
const USERS: usize = 1_000;

/// How a storm's clients say who they are.
#[derive(Clone, Copy, PartialEq)]
pub enum Connect {
    /// A `session` cookie on the upgrade and no token: herald asks the backend.
    Proxy,
    /// An HS256 JWT in the connect command: herald checks it alone.
    Jwt,
}

impl Connect {
    /// In the order each round runs them.
    pub const ALL: [Connect; 2] = [Connect::Proxy, Connect::Jwt];

    pub fn label(self) -> &'static str {
        match self {
            Connect::Proxy => "connect proxy (Cookie, no token)",
            Connect::Jwt => "JWT (HS256 token)",
        }
    }
}

pub struct Backend {
    /// Taken when dropped: a runtime must not be dropped where async code runs.
    runtime: Option<Runtime>,
    pub port: u16,
    /// Requests answered since the start.
    requests: Arc<AtomicU64>,
}

impl Backend {
    pub fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(crate::transports::cpus())
            .thread_name(BACKEND_THREADS)
            // Threads that exit take their CPU time out of the per-thread count.
            .thread_keep_alive(Duration::from_secs(24 * 3600))
            .enable_all()
            .build()?;
        // Bound here, so the port is known before herald's config is written.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route("/connect", post(answer))
            .with_state(requests.clone());
        runtime.spawn(async move {
            let served = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => {
                    // Nagle off, as any HTTP server does for small answers.
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    axum::serve(listener, app).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = served {
                eprintln!("herald-bench backend: stopped serving: {e}");
            }
        });
        Ok(Self {
            runtime: Some(runtime),
            port,
            requests,
        })
    }

    /// CPU ticks of the backend's threads.
    pub fn ticks() -> u64 {
        let tasks = std::fs::read_dir("/proc/self/task").into_iter().flatten();
        tasks
            .flatten()
            .filter(|task| {
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                comm.trim_end() == BACKEND_THREADS
            })
            .map(|task| crate::procs::cpu_ticks(&task.path().join("stat").to_string_lossy()))
            .sum()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The backend's whole work: who the session cookie says the client is.
async fn answer(
    State(requests): State<Arc<AtomicU64>>,
    headers: HeaderMap,
    _body: Bytes,
) -> Json<Value> {
    requests.fetch_add(1, Relaxed);
    let cookies = headers.get("cookie").and_then(|v| v.to_str().ok());
    let session = cookies.and_then(|c| {
        c.split(';')
            .find_map(|pair| pair.trim().strip_prefix("session="))
    });
    Json(match session {
        Some(user) => json!({"result": {"user": user}}),
        None => json!({"error": {"code": 1401, "message": "login required"}}),
    })
}

/// HS256 connection tokens for users `u0..`, signed with herald's secret.
pub fn tokens() -> Result<Arc<Vec<String>>> {
    let tokens = (0..USERS).map(|i| load::token(&format!("u{i}")));
    Ok(Arc::new(tokens.collect::<Result<_>>()?))
}

/// One path's connects, summed over the rounds.
pub struct Storm {
    pub connects: u64,
    /// From the first connect to the last reply, per storm, summed.
    pub elapsed: Duration,
    /// TCP connect to connect reply, µs.
    pub latency: Histogram<u64>,
    pub cpu: Cpu,
    /// Requests the backend answered during the storms.
    pub backend_requests: u64,
}

impl Storm {
    pub fn add(&mut self, other: Storm) {
        self.connects += other.connects;
        self.elapsed += other.elapsed;
        let _ = self.latency.add(&other.latency);
        self.cpu.add(&other.cpu);
        self.backend_requests += other.backend_requests;
    }

    pub fn rate(&self) -> f64 {
        self.connects as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    /// herald's CPU per connect, µs.
    pub fn herald_us(&self) -> f64 {
        self.cpu.herald * 1e6 / self.connects.max(1) as f64
    }

    pub fn summary(&self) -> String {
        format!(
            "{} connects, {:.0}/s, p99 {:.2} ms, herald {:.0} µs CPU per connect, \
             backend asked {} times",
            self.connects,
            self.rate(),
            self.latency.value_at_quantile(0.99) as f64 / 1000.0,
            self.herald_us(),
            self.backend_requests
        )
    }
}

/// A warm-up storm, then the measured one, on `path`.
pub async fn measure(
    herald: &Herald,
    backend: &Backend,
    path: Connect,
    s: &Scale,
    tokens: &Arc<Vec<String>>,
) -> Result<Storm> {
    storm(herald.addr, path, s.connectors, s.warmup, tokens).await?;
    let (asked, ticks) = (backend.requests.load(Relaxed), Ticks::now(&herald.process));
    let (latency, elapsed) = storm(herald.addr, path, s.connectors, s.span, tokens).await?;
    let cpu = ticks.since(&herald.process);
    let asked = backend.requests.load(Relaxed) - asked;
    let connects = latency.len();
    // Every proxied connect asks once; a token never does.
    let expected = if path == Connect::Proxy { connects } else { 0 };
    if asked != expected {
        return Err(format!(
            "the backend answered {asked} requests during {connects} connects with {}",
            path.label()
        )
        .into());
    }
    Ok(Storm {
        connects,
        elapsed,
        latency,
        cpu,
        backend_requests: asked,
    })
}

/// `connectors` tasks connecting one after another until `span` has passed;
/// the latencies, and the time until the last reply. Any failed connect fails it.
async fn storm(
    addr: SocketAddr,
    path: Connect,
    connectors: usize,
    span: Duration,
    tokens: &Arc<Vec<String>>,
) -> Result<(Histogram<u64>, Duration)> {
    let started = Instant::now();
    let deadline = started + span;
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..connectors)
        .map(|_| {
            let (next, tokens) = (next.clone(), tokens.clone());
            tokio::spawn(async move {
                let mut latency = load::new_histogram();
                let (mut failed, mut first) = (0, None);
                while Instant::now() < deadline {
                    let k = next.fetch_add(1, Relaxed);
                    let wait = loadgen::CONNECT_WAIT;
                    match tokio::time::timeout(wait, connect(addr, path, k, &tokens)).await {
                        Ok(Ok(took)) => {
                            latency.saturating_record(took.as_micros().max(1) as u64);
                        }
                        Ok(Err(e)) => {
                            failed += 1;
                            first.get_or_insert_with(|| e.to_string());
                        }
                        Err(_) => {
                            failed += 1;
                            first
                                .get_or_insert_with(|| format!("no connect reply within {wait:?}"));
                        }
                    }
                }
                (latency, failed, first)
            })
        })
        .collect();
    let mut latency = load::new_histogram();
    let (mut failed, mut first) = (0, None);
    for worker in workers {
        let (got, failures, why) = worker.await?;
        latency.add(got).map_err(|e| e.to_string())?;
        failed += failures;
        first = first.or(why);
    }
    let elapsed = started.elapsed();
    if failed > 0 {
        let tried = failed + latency.len();
        let why = first.unwrap_or_default();
        return Err(format!("{failed} of {tried} connects failed; first: {why}").into());
    }
    Ok((latency, elapsed))
}

/// Connect number `k`: TCP connect from one of the load generator's source
/// addresses, WebSocket upgrade, `connect` command, its reply. Returns the
/// time that took; the connection is then closed in the background, so a
/// connector goes on to its next connect at once.
async fn connect(addr: SocketAddr, path: Connect, k: usize, tokens: &[String]) -> Result<Duration> {
    let started = Instant::now();
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddrV4::new(loadgen::source(k), 0).into())?;
    let tcp = socket.connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut request = format!("ws://{addr}/connection/websocket").into_client_request()?;
    let user = k % USERS;
    let command = match path {
        Connect::Proxy => {
            let cookie = HeaderValue::from_str(&format!("theme=dark; session=u{user}"))?;
            request.headers_mut().insert(COOKIE, cookie);
            json!({"id": 1, "connect": {}})
        }
        Connect::Jwt => json!({"id": 1, "connect": {"token": tokens[user]}}),
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
        .await
        .map_err(|e| format!("WebSocket upgrade: {e}"))?;
    ws.send(Message::text(command.to_string())).await?;
    let reply = loop {
        let text = match ws.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}").into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("read: {e}").into()),
            None => return Err("connection ended before the connect reply".into()),
        };
        let replies = text.split('\n').filter(|line| !line.is_empty());
        let parsed = replies.map(serde_json::from_str::<Value>);
        if let Some(reply) = parsed.flatten().find(|reply| reply["id"] == 1) {
            break reply;
        }
    };
    if !reply["connect"]["client"].is_string() {
        return Err(format!("connect answered {reply}").into());
    }
    let took = started.elapsed();
    tokio::spawn(async move {
        // The close handshake, so herald ends the connection as it would a browser's.
        if ws.close(None).await.is_ok() {
            while let Ok(Some(Ok(_))) =
                tokio::time::timeout(Duration::from_secs(5), ws.next()).await
            {}
        }
    });
    Ok(took)
}
