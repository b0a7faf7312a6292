//! The subscriber side of `transports`: one connection over WebSocket, HTTP
//! streaming or SSE, connected and subscribed the way the JavaScript SDK does
//! it, then reading every push of the channel, timing it from the stamp in its
//! `data` and checking it against the publisher's numbering.

use crate::Result;
use crate::load;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The channel every subscriber joins and every publication goes to.
pub const CHANNEL: &str = "fanout";

#[derive(Clone, Copy, PartialEq)]
pub enum Transport {
    WebSocket,
    HttpStream,
    Sse,
}

/// In the order they run and are listed; WebSocket, the baseline, first.
pub const TRANSPORTS: [Transport; 3] =
    [Transport::WebSocket, Transport::HttpStream, Transport::Sse];

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::WebSocket => "WebSocket",
            Transport::HttpStream => "HTTP streaming",
            Transport::Sse => "SSE",
        }
    }
}

/// Microseconds since the first call; every stamp of the run shares it.
pub fn stamp() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Where subscribers connect, and the HTTP clients the fallbacks use: one for
/// the streams (each in-flight stream holds its own TCP connection) and a
/// pooled one for `/emulation`.
pub struct Dial {
    pub base: String,
    pub streams: reqwest::Client,
    pub emulation: reqwest::Client,
}

impl Dial {
    pub fn new(addr: std::net::SocketAddr, subscribers: usize, in_flight: usize) -> Result<Self> {
        let client = |idle: usize| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(idle)
                .tcp_nodelay(true)
                .connect_timeout(super::WAIT)
                .build()
        };
        Ok(Self {
            base: format!("http://{addr}"),
            streams: client(subscribers)?,
            emulation: client(in_flight)?,
        })
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

enum Wire {
    Ws(Box<Socket>),
    Http {
        response: reqwest::Response,
        pending: Vec<u8>,
        sse: bool,
    },
}

/// One subscriber's connection, read value by value; each value keeps the
/// stamp of the frame or chunk that carried it.
pub struct Source {
    wire: Wire,
    values: VecDeque<(Value, u64)>,
}

impl Source {
    /// The next value from the server, or why there is none.
    async fn next(&mut self) -> Result<(Value, u64)> {
        loop {
            if let Some(value) = self.values.pop_front() {
                return Ok(value);
            }
            self.read().await?;
        }
    }

    /// Reads one frame or chunk and queues the values it completes.
    async fn read(&mut self) -> Result<()> {
        match &mut self.wire {
            Wire::Ws(ws) => {
                let text = match ws.next().await {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        return Err(format!("the server closed the WebSocket: {frame:?}").into());
                    }
                    Some(Ok(_)) => return Ok(()),
                    Some(Err(e)) => return Err(format!("WebSocket read failed: {e}").into()),
                    None => return Err("the server ended the WebSocket".into()),
                };
                let now = stamp();
                for line in text.split('\n').filter(|line| !line.is_empty()) {
                    self.values.push_back((parse(line.as_bytes())?, now));
                }
            }
            Wire::Http {
                response,
                pending,
                sse,
            } => {
                let chunk = response
                    .chunk()
                    .await
                    .map_err(|e| format!("stream read failed: {e}"))?
                    .ok_or("the server ended the stream")?;
                let now = stamp();
                pending.extend_from_slice(&chunk);
                for value in complete_lines(pending, *sse)? {
                    self.values.push_back((value, now));
                }
            }
        }
        Ok(())
    }

    /// Values until the reply with `id`, which must not be an error.
    async fn reply(&mut self, id: u32, what: &str) -> Result<Value> {
        loop {
            let (value, _) = self.next().await?;
            if value["id"] == json!(id) {
                if value.get("error").is_some() || value.get(what).is_none() {
                    return Err(format!("{what} answered {value}").into());
                }
                return Ok(value);
            }
        }
    }
}

/// The values of the complete lines in `pending`, which keeps the rest. SSE:
/// a blank line ends an event, and each value is a `data: ` line.
fn complete_lines(pending: &mut Vec<u8>, sse: bool) -> Result<Vec<Value>> {
    let (mut values, mut start) = (Vec::new(), 0);
    while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
        let line = &pending[start..start + end];
        start += end + 1;
        let json = match (sse, line.strip_prefix(b"data: ")) {
            _ if line.is_empty() => continue,
            (true, None) => {
                let line = String::from_utf8_lossy(line);
                return Err(format!("SSE line without `data: `: {line}").into());
            }
            (true, Some(json)) => json,
            (false, _) => line,
        };
        values.push(parse(json)?);
    }
    pending.drain(..start);
    Ok(values)
}

fn parse(line: &[u8]) -> Result<Value> {
    serde_json::from_slice(line).map_err(|e| {
        let line = String::from_utf8_lossy(line);
        format!("the server sent invalid JSON ({e}): {line}").into()
    })
}

/// Connects as `user` over `transport` and subscribes to `CHANNEL`; returns
/// once the subscribe reply has arrived.
pub async fn open(transport: Transport, dial: &Dial, user: &str) -> Result<Source> {
    let connect = json!({"id": 1, "connect": {"token": load::token(user)?}});
    let subscribe = json!({"id": 2, "subscribe": {"channel": CHANNEL}});
    let wire = match transport {
        Transport::WebSocket => {
            let url = format!(
                "{}/connection/websocket",
                dial.base.replacen("http", "ws", 1)
            );
            // Nagle off, as browsers open WebSockets. A small read buffer, as
            // the suite's load generator has: tungstenite zeroes the free part
            // of it before every read, and its default 128 KiB made that the
            // client's largest cost.
            let config = WebSocketConfig::default()
                .read_buffer_size(4096)
                .write_buffer_size(0);
            let (mut ws, _) =
                tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
                    .await
                    .map_err(|e| format!("WebSocket upgrade failed: {e}"))?;
            ws.send(Message::text(connect.to_string())).await?;
            Wire::Ws(Box::new(ws))
        }
        Transport::HttpStream | Transport::Sse => {
            let request = if transport == Transport::Sse {
                let url = format!("{}/connection/sse", dial.base);
                dial.streams
                    .get(url)
                    .query(&[("cf_connect", connect.to_string())])
            } else {
                let url = format!("{}/connection/http_stream", dial.base);
                dial.streams.post(url).body(connect.to_string())
            };
            let response = request
                .send()
                .await
                .map_err(|e| format!("stream request failed: {e}"))?;
            if response.status() != 200 {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                return Err(format!("stream answered HTTP {status}: {text}").into());
            }
            let sse = transport == Transport::Sse;
            let pending = Vec::new();
            Wire::Http {
                response,
                pending,
                sse,
            }
        }
    };
    let mut source = Source {
        wire,
        values: VecDeque::new(),
    };
    let reply = source.reply(1, "connect").await?;
    match &mut source.wire {
        Wire::Ws(ws) => ws.send(Message::text(subscribe.to_string())).await?,
        Wire::Http { .. } => {
            let field = |name: &str| reply["connect"][name].as_str().map(str::to_string);
            let (Some(session), Some(node)) = (field("session"), field("node")) else {
                return Err(format!("connect reply without session and node: {reply}").into());
            };
            let body = json!({"session": session, "node": node, "data": subscribe.to_string()});
            let response = dial
                .emulation
                .post(format!("{}/emulation", dial.base))
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| format!("/emulation request failed: {e}"))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status != 200 {
                return Err(format!("/emulation answered HTTP {status}: {text}").into());
            }
        }
    }
    source.reply(2, "subscribe").await?;
    Ok(source)
}

/// What one subscriber received, checked as it arrived.
pub struct Received {
    /// Publish → receive, in µs, of every publication on `CHANNEL`.
    pub latencies: Vec<u32>,
    /// The sequence number due next: all before it arrived once, in order.
    pub next: u64,
    /// Publications that arrived out of turn (early, late or repeated).
    pub wrong: u64,
    pub first_wrong: Option<String>,
    pub last: Option<Instant>,
    pub error: Option<String>,
}

impl Received {
    pub fn failed(error: String) -> Self {
        Self {
            latencies: Vec::new(),
            next: 0,
            wrong: 0,
            first_wrong: None,
            last: None,
            error: Some(error),
        }
    }

    /// One publication arrived: keeps its latency and checks its turn.
    fn record(&mut self, seq: u64, latency_us: u64) {
        self.latencies
            .push(latency_us.clamp(1, u32::MAX as u64) as u32);
        self.last = Some(Instant::now());
        if seq == self.next {
            self.next += 1;
            return;
        }
        self.wrong += 1;
        let due = self.next;
        self.first_wrong
            .get_or_insert_with(|| format!("publication {seq} arrived when {due} was due"));
        // After a gap, check the rest against what follows it.
        self.next = self.next.max(seq + 1);
    }

    /// Why this subscriber did not get publications 0..`expected` once each, in order.
    pub fn problem(&self, expected: u64) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.clone());
        }
        if let Some(first) = &self.first_wrong {
            let wrong = self.wrong;
            return Some(format!("{wrong} publications out of turn; first: {first}"));
        }
        (self.next != expected).then(|| {
            let got = self.next;
            format!("got publications 0..{got} of {expected}; the rest never arrived")
        })
    }
}

/// Reads `source` until `stop`, keeping the latency of every publication
/// and checking that sequence numbers arrive as 0, 1, 2, …
pub async fn receive(
    mut source: Source,
    expected: u64,
    mut stop: watch::Receiver<bool>,
    delivered: Arc<AtomicUsize>,
) -> Received {
    let mut got = Received::failed(String::new());
    got.error = None;
    got.latencies.reserve(expected as usize);
    loop {
        let next = tokio::select! {
            next = source.next() => next,
            _ = stop.changed() => break,
        };
        let (value, arrived) = match next {
            Ok(next) => next,
            Err(e) => {
                got.error = Some(e.to_string());
                break;
            }
        };
        let push = &value["push"];
        if push.get("disconnect").is_some() {
            got.error = Some(format!("the server disconnected it: {value}"));
            break;
        }
        if push["channel"] != CHANNEL {
            continue;
        }
        let data = &push["pub"]["data"];
        let (Some(t), Some(seq)) = (data["t"].as_u64(), data["seq"].as_u64()) else {
            got.error = Some(format!("a publication without t and seq: {value}"));
            break;
        };
        got.record(seq, arrived.saturating_sub(t));
        delivered.fetch_add(1, Relaxed);
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_split_across_chunks_are_joined() {
        let mut pending = b"{\"a\":1}\n{\"b\"".to_vec();
        let values = complete_lines(&mut pending, false).expect("valid");
        assert_eq!(values, vec![json!({"a": 1})]);
        pending.extend_from_slice(b":2}\n");
        let values = complete_lines(&mut pending, false).expect("valid");
        assert_eq!(values, vec![json!({"b": 2})]);
        assert!(pending.is_empty());
    }

    #[test]
    fn sse_events_hold_a_data_line_per_value() {
        let mut pending = b"data: 1\ndata: 2\n\ndata: 3\n".to_vec();
        let values = complete_lines(&mut pending, true).expect("valid");
        assert_eq!(values, vec![json!(1), json!(2), json!(3)]);
        let mut odd = b"event: x\n".to_vec();
        assert!(complete_lines(&mut odd, true).is_err());
    }

    #[test]
    fn only_every_publication_once_in_order_passes() {
        let run = |seqs: &[u64]| {
            let mut got = Received::failed(String::new());
            got.error = None;
            for &seq in seqs {
                got.record(seq, 10);
            }
            got.problem(3)
        };
        assert_eq!(run(&[0, 1, 2]), None);
        let missing = run(&[0, 1]).unwrap_or_default();
        assert!(missing.contains("0..2 of 3"), "{missing}");
        for wrong in [&[0, 2, 1][..], &[0, 1, 1, 2], &[0, 2], &[0, 1, 2, 2]] {
            let why = run(wrong).unwrap_or_default();
            assert!(why.contains("out of turn"), "{wrong:?}: {why}");
        }
    }
}
