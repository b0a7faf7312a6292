//! The WebSocket load generator: opens many connections from several
//! 127.0.0.x source addresses, drives each through its system's handshake,
//! then reads every frame, answers pings, and counts deliveries.
//!
//! Every published payload starts with `@@<send time in µs>@@`, so a frame is
//! scanned for markers whatever protocol wraps it: each marker is one delivery,
//! and its publish-to-deliver latency goes into an HDR histogram. With an
//! [`Order`], a tag after the marker is also checked per connection.

use crate::Result;
use crate::order::Order;
use crate::peers::Endpoint;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws = WebSocketStream<TcpStream>;

/// Bytes in each published payload.
pub const PAYLOAD_BYTES: usize = 100;
/// Source addresses 127.0.0.2 ..= 127.0.0.(1 + SOURCES).
const SOURCES: usize = 8;
/// Histogram shards; connection i records into shard i % SHARDS.
const SHARDS: usize = 32;
/// Longest a single connect, upgrade or handshake reply may take.
pub const CONNECT_WAIT: Duration = Duration::from_secs(15);

static START: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the process's first call; publishers and readers share it.
pub fn now_us() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// `instant` on the [`now_us`] clock.
pub fn us_at(instant: Instant) -> u64 {
    let start = *START.get_or_init(Instant::now);
    instant.saturating_duration_since(start).as_micros() as u64
}

/// A payload of [`PAYLOAD_BYTES`] bytes that carries its send time.
pub fn payload(sent_us: u64) -> String {
    tagged_payload(sent_us, "")
}

/// A payload with `tag` right after its send-time marker.
pub fn tagged_payload(sent_us: u64, tag: &str) -> String {
    let mut text = format!("@@{sent_us}@@{tag}");
    while text.len() < PAYLOAD_BYTES {
        text.push('x');
    }
    text
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 2).expect("static bounds are valid")
}

/// What the connections saw, shared by all of them.
pub struct Stats {
    pub delivered: AtomicU64,
    /// Connections that ended (closed by the server or failed) after their handshake.
    pub closed: AtomicU64,
    shards: Vec<Mutex<Histogram<u64>>>,
    /// Publishers tag their payloads for it; connection i checks into its slot i.
    pub order: Option<Arc<Order>>,
}

impl Stats {
    pub fn new() -> Arc<Self> {
        Self::with_order(None)
    }

    pub fn with_order(order: Option<Arc<Order>>) -> Arc<Self> {
        Arc::new(Self {
            delivered: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            shards: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
            order,
        })
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Counts and times every payload marker in `text`, received by connection `conn`.
    fn record(&self, text: &str, conn: usize) {
        let bytes = text.as_bytes();
        let now = now_us();
        let mut count = 0;
        let mut i = 0;
        let mut hist = None;
        let mut seen = None;
        while let Some(pos) = find_marker(&bytes[i..]) {
            let start = i + pos + 2;
            let digits = bytes[start..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            i = start + digits;
            if digits == 0 {
                continue;
            }
            let sent: u64 = text[start..i].parse().unwrap_or(now);
            let hist = hist
                .get_or_insert_with(|| self.shards[conn % SHARDS].lock().expect("not poisoned"));
            hist.saturating_record(now.saturating_sub(sent).max(1));
            count += 1;
            // Skip the closing "@@".
            i += 2.min(bytes.len() - i);
            if let Some(order) = &self.order {
                if seen.is_none() {
                    seen = order.seen(conn);
                }
                if let Some(seen) = seen.as_mut() {
                    seen.check(&bytes[i..]);
                }
            }
        }
        if count > 0 {
            self.delivered.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// All latencies recorded since the last reset, in µs.
    pub fn latency(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in &self.shards {
            let _ = all.add(&*shard.lock().expect("not poisoned"));
        }
        all
    }

    pub fn reset_latency(&self) {
        for shard in &self.shards {
            shard.lock().expect("not poisoned").reset();
        }
    }
}

fn find_marker(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"@@")
}

/// Connection i's source address.
pub fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES) as u8)
}

/// Opens a WebSocket to `addr` + `path` from `from`, with small buffers so
/// thousands of connections fit in the load generator.
pub async fn open(addr: SocketAddr, path: &str, from: Ipv4Addr) -> Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::V4(SocketAddrV4::new(from, 0)))?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let opened = async {
        let tcp = socket.connect(addr).await?;
        tcp.set_nodelay(true)?;
        let url = format!("ws://{addr}{path}");
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config)).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(ws)
    };
    tokio::time::timeout(CONNECT_WAIT, opened)
        .await
        .map_err(|_| format!("no WebSocket upgrade within {CONNECT_WAIT:?}"))?
}

/// Reads `ws` until it ends: records deliveries, answers pings.
async fn drive(mut ws: Ws, endpoint: Arc<Endpoint>, stats: Arc<Stats>, conn: usize) {
    use futures_util::SinkExt;
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Text(text)) => {
                stats.record(&text, conn);
                if let Some(pong) = endpoint.pong(&text)
                    && ws.send(Message::text(pong)).await.is_err()
                {
                    break;
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    stats.closed.fetch_add(1, Ordering::Relaxed);
}

/// Open connections, each driven by its own task; dropping them closes them.
#[derive(Default)]
pub struct Pool {
    tasks: Vec<JoinHandle<()>>,
    pub failed: usize,
    pub first_error: Option<String>,
}

impl Pool {
    pub fn len(&self) -> usize {
        self.tasks.len()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Connections `first..first+count`, connection i to `endpoints[i % len]`
/// (round-robin over nodes), `concurrency` handshakes at a time; connection i
/// joins `rooms(i)`. Failures are counted, not fatal. Returns how long opening
/// them took.
#[allow(clippy::too_many_arguments)]
pub async fn connect(
    pool: &mut Pool,
    endpoints: &[Arc<Endpoint>],
    first: usize,
    count: usize,
    concurrency: usize,
    rooms: Arc<dyn Fn(usize) -> Vec<String> + Send + Sync>,
    tokens: Option<Arc<Vec<String>>>,
    stats: &Arc<Stats>,
    label: &str,
) -> Duration {
    let next = Arc::new(AtomicUsize::new(first));
    let done = Arc::new(AtomicUsize::new(0));
    let end = first + count;
    let progress = progress(label.to_string(), done.clone(), count);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let (next, done, rooms) = (next.clone(), done.clone(), rooms.clone());
        let (endpoints, tokens, stats) = (endpoints.to_vec(), tokens.clone(), stats.clone());
        workers.push(tokio::spawn(async move {
            let mut opened = Vec::new();
            let mut failed = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return (opened, failed);
                }
                let rooms = rooms(i);
                let token = tokens.as_ref().map(|t| t[i % t.len()].as_str());
                let endpoint = &endpoints[i % endpoints.len()];
                match endpoint.open(i, &rooms, token).await {
                    Ok(ws) => {
                        let task = drive(ws, endpoint.clone(), stats.clone(), i);
                        opened.push(tokio::spawn(task));
                    }
                    Err(e) => failed.push(e.to_string()),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        if let Ok((opened, failed)) = worker.await {
            pool.tasks.extend(opened);
            pool.failed += failed.len();
            if pool.first_error.is_none() {
                pool.first_error = failed.into_iter().next();
            }
        }
    }
    progress.abort();
    started.elapsed()
}

/// Prints `label: done/total` to stderr every 2 s until aborted.
pub fn progress(label: String, done: Arc<AtomicUsize>, total: usize) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.tick().await;
        loop {
            tick.tick().await;
            eprintln!("    {label}: {}/{total}", done.load(Ordering::Relaxed));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_counted_and_timed_in_any_wrapping() {
        let stats = Stats::new();
        let sent = now_us();
        let p = payload(sent);
        assert_eq!(p.len(), PAYLOAD_BYTES);
        stats.record(&format!("42[\"m\",\"{p}\"]"), 0);
        let push = format!("{{\"push\":{{\"pub\":{{\"data\":\"{p}\"}}}}}}");
        stats.record(&format!("{push}\n{push}\n{{}}"), 1);
        stats.record("{\"id\":1,\"connect\":{}}", 2);
        assert_eq!(stats.delivered(), 3);
        assert_eq!(stats.latency().len(), 3);
    }

    #[test]
    fn tags_after_the_marker_are_checked_per_connection() {
        let order = Arc::new(Order::new(1, 2));
        let stats = Stats::with_order(Some(order.clone()));
        let a = tagged_payload(now_us(), &order.tag(0));
        let b = tagged_payload(now_us(), &order.tag(0));
        assert_eq!(b.len(), PAYLOAD_BYTES);
        stats.record(&format!("{{\"data\":\"{a}\"}}\n{{\"data\":\"{b}\"}}"), 0);
        stats.record(&format!("{{\"data\":\"{b}\"}}"), 1);
        let verdict = order.verify(|i| i);
        assert_eq!((verdict.lost, verdict.late, verdict.duplicates), (1, 0, 0));
        assert!(
            verdict.details().contains("subscriber 1"),
            "{}",
            verdict.details()
        );
    }
}
