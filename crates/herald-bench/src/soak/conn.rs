//! The soak's client side: one WebSocket as one user, read and written by the
//! task that owns it; the tally every task reports to (errors, live-delivery
//! latency); replies awaited with a deadline; and the jitter that spreads
//! clients' timers so they do not all fire together.

use crate::Result;
use crate::loadgen::{self, Ws};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Longest any reply may take; one that takes longer is counted as an error.
pub const REPLY_WAIT: Duration = Duration::from_secs(10);
/// Problems spelled out in the report; the rest are only counted.
const EXAMPLES: usize = 20;

/// What every traffic task reports to, read once a minute.
pub struct Tally {
    errors: AtomicU64,
    examples: Mutex<Vec<String>>,
    /// Errors by kind: the message with its numbers taken out.
    kinds: Mutex<BTreeMap<String, u64>>,
    latency: Mutex<Histogram<u64>>,
    /// Live deliveries timed here (the fan-out counts its own in `loadgen::Stats`).
    pub delivered: AtomicU64,
}

impl Tally {
    pub fn new() -> Self {
        Self {
            errors: AtomicU64::new(0),
            examples: Mutex::new(Vec::new()),
            kinds: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(loadgen::new_histogram()),
            delivered: AtomicU64::new(0),
        }
    }

    /// Counts one error; the first few are kept, with the minute they happened in.
    pub fn error(&self, what: impl Into<String>) {
        let what = what.into();
        self.errors.fetch_add(1, Relaxed);
        let mut kinds = self.kinds.lock().expect("not poisoned");
        *kinds.entry(kind(&what)).or_default() += 1;
        drop(kinds);
        let mut examples = self.examples.lock().expect("not poisoned");
        if examples.len() < EXAMPLES {
            eprintln!("  soak error: {what}");
            examples.push(what);
        }
    }

    /// How many errors of each kind, most frequent first.
    pub fn kinds(&self) -> Vec<(String, u64)> {
        let kinds = self.kinds.lock().expect("not poisoned");
        let mut kinds: Vec<(String, u64)> = kinds.iter().map(|(k, n)| (k.clone(), *n)).collect();
        kinds.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        kinds
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Relaxed)
    }

    pub fn examples(&self) -> Vec<String> {
        self.examples.lock().expect("not poisoned").clone()
    }

    /// Waits for `tasks`; one that panicked is an error (a check that died
    /// must not pass for one that found nothing).
    pub async fn join(&self, what: &str, tasks: impl IntoIterator<Item = JoinHandle<()>>) {
        for task in tasks {
            if let Err(e) = task.await {
                self.error(format!("{what}: task failed: {e}"));
            }
        }
    }

    /// Records a live delivery whose payload says it was sent at `sent_us`
    /// (on the [`loadgen::now_us`] clock).
    pub fn delivered_at(&self, sent_us: u64) {
        let took = loadgen::now_us().saturating_sub(sent_us).max(1);
        self.latency
            .lock()
            .expect("not poisoned")
            .saturating_record(took);
        self.delivered.fetch_add(1, Relaxed);
    }

    /// The latencies recorded since the last call, which starts a new window.
    pub fn take_latency(&self) -> Histogram<u64> {
        let mut latency = self.latency.lock().expect("not poisoned");
        let taken = latency.clone();
        latency.reset();
        taken
    }
}

/// An error's kind: its text with every run of digits as `#`, cut short, so
/// "h12: … 105 …" and "h40: … 230 …" count together.
fn kind(what: &str) -> String {
    let mut out = String::new();
    for c in what.chars() {
        match c.is_ascii_digit() {
            true if out.ends_with('#') => {}
            true => out.push('#'),
            false => out.push(c),
        }
    }
    out.chars().take(100).collect()
}

/// One connection as one user, speaking the Centrifugo protocol v2 in JSON.
pub struct Conn {
    ws: Ws,
    next_id: u32,
    /// Lines that arrived while [`Conn::call`] waited for its reply.
    kept: Option<String>,
}

fn parse(line: &str) -> Result<Value> {
    serde_json::from_str(line)
        .map_err(|e| format!("the server sent invalid JSON ({e}): {line}").into())
}

/// Herald pings with an empty message, `{}`; the client answers the same.
fn is_ping(message: &Value) -> bool {
    message.as_object().is_some_and(|o| o.is_empty())
}

impl Conn {
    /// Opens a WebSocket from source address number `source` and connects as
    /// `user`; answers the connection and the connect reply.
    pub async fn open(addr: SocketAddr, source: usize, user: &str) -> Result<(Conn, Value)> {
        let ws = loadgen::open(addr, "/connection/websocket", loadgen::source(source)).await?;
        let mut conn = Conn {
            ws,
            next_id: 0,
            kept: None,
        };
        let token = crate::load::token(user)?;
        let reply = conn.call(json!({"connect": {"token": token}})).await?;
        if reply.get("connect").is_none() {
            return Err(format!("{user}: connect answered {reply}").into());
        }
        Ok((conn, reply))
    }

    /// Sends `command` with a fresh id; returns the id.
    pub async fn send(&mut self, mut command: Value) -> Result<u32> {
        self.next_id += 1;
        command["id"] = json!(self.next_id);
        self.ws.send(Message::text(command.to_string())).await?;
        Ok(self.next_id)
    }

    /// Sends `command` and reads until its reply, within [`REPLY_WAIT`].
    /// Whatever else arrives meanwhile, even in the reply's own frame (the
    /// server packs several messages into one), is kept for [`Conn::read`].
    pub async fn call(&mut self, command: Value) -> Result<Value> {
        let id = self.send(command).await?;
        let deadline = tokio::time::Instant::now() + REPLY_WAIT;
        let mut kept = Vec::new();
        let mut reply = None;
        while reply.is_none() {
            let text = tokio::time::timeout_at(deadline, self.read())
                .await
                .map_err(|_| format!("no reply to command {id} within {REPLY_WAIT:?}"))??;
            for line in text.split('\n').filter(|line| !line.is_empty()) {
                let message = parse(line)?;
                if reply.is_none() && message["id"] == json!(id) {
                    reply = Some(message);
                } else if is_ping(&message) {
                    self.ws.send(Message::text("{}")).await?;
                } else {
                    kept.push(line.to_string());
                }
            }
        }
        if !kept.is_empty() {
            self.kept = Some(kept.join("\n"));
        }
        Ok(reply.unwrap_or_default())
    }

    /// The next text frame (first what [`Conn::call`] kept). Cancel-safe, so
    /// it can sit in a `select!`; hand what it returns to [`Conn::messages`]
    /// outside the `select!`.
    pub async fn read(&mut self) -> Result<String> {
        if let Some(text) = self.kept.take() {
            return Ok(text);
        }
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!("the server closed the connection: {frame:?}").into());
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("read failed: {e}").into()),
                None => return Err("the connection ended".into()),
            }
        }
    }

    /// The messages of one frame (one per line), with pings (`{}`) answered
    /// and left out.
    pub async fn messages(&mut self, text: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for line in text.split('\n').filter(|line| !line.is_empty()) {
            let message = parse(line)?;
            if is_ping(&message) {
                self.ws.send(Message::text("{}")).await?;
            } else {
                out.push(message);
            }
        }
        Ok(out)
    }

    /// Ends the connection politely, with a close frame.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(REPLY_WAIT, self.ws.close(None)).await;
    }
}

/// Commands sent and not yet answered, each with what to call it in an error.
#[derive(Default)]
pub struct Pending {
    waiting: HashMap<u32, (Instant, String)>,
}

impl Pending {
    pub fn expect(&mut self, id: u32, what: String) {
        self.waiting.insert(id, (Instant::now(), what));
    }

    /// The command a reply answers, if it is one of ours.
    pub fn answer(&mut self, reply: &Value) -> Option<String> {
        let id = u32::try_from(reply["id"].as_u64()?).ok()?;
        self.waiting.remove(&id).map(|(_, what)| what)
    }

    /// Removes and names the commands waiting longer than [`REPLY_WAIT`].
    pub fn overdue(&mut self) -> Vec<String> {
        let late: Vec<u32> = self
            .waiting
            .iter()
            .filter(|(_, (sent, _))| sent.elapsed() > REPLY_WAIT)
            .map(|(id, _)| *id)
            .collect();
        late.iter()
            .filter_map(|id| self.waiting.remove(id))
            .map(|(_, what)| format!("{what}: no reply within {REPLY_WAIT:?}"))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// A small deterministic generator (splitmix64), so each client's timings
/// differ and a run can be repeated; nothing here needs more than that.
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A duration in `low..high`.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_millis().max(1) as u64;
        low + Duration::from_millis(self.next() % span)
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n.max(1))
    }
}

/// The `t` (send time in µs) in a payload's data, if it has one.
pub fn sent_at(data: &Value) -> Option<u64> {
    data["t"].as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_beyond_the_examples_kept() {
        let tally = Tally::new();
        for i in 0..EXAMPLES + 5 {
            tally.error(format!("e{i}"));
        }
        assert_eq!(tally.errors(), (EXAMPLES + 5) as u64);
        assert_eq!(tally.examples().len(), EXAMPLES);
        assert_eq!(tally.kinds(), [("e#".to_string(), (EXAMPLES + 5) as u64)]);
    }

    #[test]
    fn latency_windows_restart_when_taken() {
        let tally = Tally::new();
        tally.delivered_at(loadgen::now_us());
        assert_eq!(tally.take_latency().len(), 1);
        assert_eq!(tally.take_latency().len(), 0);
        assert_eq!(tally.delivered.load(Relaxed), 1);
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut jitter = Jitter::new(7);
        for _ in 0..1000 {
            let d = jitter.between(Duration::from_secs(2), Duration::from_secs(5));
            assert!(d >= Duration::from_secs(2) && d < Duration::from_secs(5));
        }
    }

    #[test]
    fn overdue_replies_are_named_once() {
        let mut pending = Pending::default();
        pending.waiting.insert(
            3,
            (Instant::now() - REPLY_WAIT * 2, "inbox.mark_read".into()),
        );
        pending.expect(4, "chat.send".into());
        assert_eq!(pending.overdue().len(), 1);
        assert!(pending.overdue().is_empty());
        assert_eq!(pending.answer(&json!({"id": 4})), Some("chat.send".into()));
        assert!(pending.is_empty());
    }

    /// The server packs messages into frames: what follows a reply in its
    /// frame must reach `read`, and a ping in it is answered.
    #[tokio::test]
    async fn call_keeps_what_shares_the_replys_frame() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let connect = ws.next().await.unwrap().unwrap();
            assert!(connect.to_text().unwrap().contains("\"connect\""));
            let frame = "{\"id\":1,\"connect\":{}}\n{}\n{\"push\":{\"pub\":{\"offset\":7}}}";
            ws.send(Message::text(frame)).await.unwrap();
            ws.next()
                .await
                .unwrap()
                .unwrap()
                .to_text()
                .unwrap()
                .to_string()
        });
        let (mut conn, reply) = Conn::open(addr, 0, "u1").await.unwrap();
        assert_eq!(reply["id"], 1);
        let kept = conn.read().await.unwrap();
        let messages = conn.messages(&kept).await.unwrap();
        assert_eq!(messages, [json!({"push": {"pub": {"offset": 7}}})]);
        assert_eq!(server.await.unwrap(), "{}");
    }
}
