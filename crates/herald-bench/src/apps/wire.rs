//! The client side of `apps`: server API calls, WebSocket connections split
//! for reading and writing, receivers that time and keep every delivery, and
//! the checks that say precisely what went missing.

use crate::Result;
use crate::load::{self, Server, Ws};
use futures_util::StreamExt;
use futures_util::stream::{SplitSink, SplitStream};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long deliveries may trail the last answer before the missing ones count as lost.
pub const GRACE: Duration = Duration::from_secs(30);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type Sink = SplitSink<Socket, Message>;
pub type Stream = SplitStream<Socket>;

/// Microseconds since the first call; every timestamp of the run shares it.
pub fn stamp() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// One server API call; anything but `{"result": ...}` is an error.
pub async fn api(http: &reqwest::Client, base: &str, method: &str, body: &Value) -> Result<Value> {
    let response = http
        .post(format!("{base}{method}"))
        .header("X-API-Key", load::API_KEY)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("{method}: request failed: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let mut answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status != 200 || answer.get("error").is_some() || answer.get("result").is_none() {
        return Err(format!("{method}: HTTP {status}, answer {text}").into());
    }
    Ok(answer["result"].take())
}

/// A connection as `user`, subscribed to `channels`, split for reading and
/// writing. With `personal`, the connect reply must list `inbox:#<user>`.
pub async fn connect(
    server: &Server,
    user: &str,
    personal: bool,
    channels: &[&str],
) -> Result<(Sink, Stream)> {
    let mut ws = Ws::open(server).await?;
    let token = load::token(user)?;
    let reply = ws.call(json!({"connect": {"token": token}})).await?;
    let subs = &reply["connect"]["subs"];
    if reply.get("connect").is_none() || (personal && subs.get(format!("inbox:#{user}")).is_none())
    {
        return Err(format!("{user}: connect answered {reply}").into());
    }
    for channel in channels {
        let reply = ws.call(json!({"subscribe": {"channel": channel}})).await?;
        if reply.get("subscribe").is_none() {
            return Err(format!("{user}: subscribe to {channel} answered {reply}").into());
        }
    }
    Ok(ws.into_inner().split())
}

/// The next text frame, or why there is none.
pub async fn next_text(stream: &mut Stream) -> Result<String> {
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("read failed: {e}").into()),
            None => return Err("the server ended the connection".into()),
        }
    }
}

/// The JSON messages of one frame (the server joins several with newlines).
pub fn lines(text: &str) -> impl Iterator<Item = std::result::Result<Value, String>> + '_ {
    text.split('\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_str(line).map_err(|e| format!("invalid JSON ({e}): {line}")))
}

/// A delivery: the sequence number its sender gave it, the id the server did.
pub struct Item {
    pub seq: u64,
    pub id: Option<i64>,
}

/// The send time and identity of a notification, chat message or plain
/// publication; `None` for other pushes (unread counts, joins).
fn item(data: &Value) -> Option<(u64, Item)> {
    let inner = match data["type"].as_str()? {
        "notification" => &data["notification"],
        "message" => &data["message"],
        "plain" => data,
        _ => return None,
    };
    let t = inner["data"]["t"].as_u64()?;
    let seq = inner["data"]["seq"].as_u64()?;
    let id = inner["id"].as_i64();
    Some((t, Item { seq, id }))
}

/// What one connection received on its channel, in arrival order.
pub struct Received {
    pub items: Vec<Item>,
    pub latency: Histogram<u64>,
    pub last: Option<Instant>,
    pub error: Option<String>,
}

/// Reads pushes on `channel` until `stop`, timing each from the `t` in its data.
async fn receive(
    mut stream: Stream,
    channel: String,
    mut stop: watch::Receiver<bool>,
    delivered: Arc<AtomicUsize>,
) -> Received {
    let (latency, items) = (load::new_histogram(), Vec::new());
    let mut got = Received {
        items,
        latency,
        last: None,
        error: None,
    };
    loop {
        let text = tokio::select! {
            text = next_text(&mut stream) => text,
            _ = stop.changed() => break,
        };
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                got.error = Some(e.to_string());
                break;
            }
        };
        let now = stamp();
        for message in lines(&text) {
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    got.error = Some(e);
                    continue;
                }
            };
            let push = &message["push"];
            if push["channel"] != json!(channel) {
                continue;
            }
            if let Some((t, item)) = item(&push["pub"]["data"]) {
                got.latency.saturating_record(now.saturating_sub(t).max(1));
                got.items.push(item);
                got.last = Some(Instant::now());
                delivered.fetch_add(1, Relaxed);
            }
        }
    }
    got
}

/// The receiving side of a workload: a task per connection until `finish`.
pub struct Listeners {
    stop: watch::Sender<bool>,
    pub delivered: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<Received>>,
    /// Kept so the connections stay open.
    sinks: Vec<Sink>,
}

impl Listeners {
    pub fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            delivered: Arc::new(AtomicUsize::new(0)),
            tasks: Vec::new(),
            sinks: Vec::new(),
        }
    }

    pub fn listen(&mut self, (sink, stream): (Sink, Stream), channel: String) {
        let (stop, delivered) = (self.stop.subscribe(), self.delivered.clone());
        self.tasks
            .push(tokio::spawn(receive(stream, channel, stop, delivered)));
        self.sinks.push(sink);
    }

    /// Waits (when `wait`) until `total` deliveries arrived or `GRACE` passed,
    /// then stops every receiver; what each got, in `listen` order.
    pub async fn finish(self, total: usize, wait: bool) -> Result<Vec<Received>> {
        let until = Instant::now() + GRACE;
        while wait && self.delivered.load(Relaxed) < total && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = self.stop.send(true);
        let mut all = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            all.push(task.await?);
        }
        Ok(all)
    }
}

/// Prints sent and delivered counts every second until aborted.
pub fn progress(
    label: String,
    sent: Arc<AtomicUsize>,
    delivered: Arc<AtomicUsize>,
    total: usize,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let (s, d) = (sent.load(Relaxed), delivered.load(Relaxed));
            eprintln!("  {label}: sent {s}/{total}, delivered {d}/{total}");
        }
    })
}

/// Missing and repeated or unexpected numbers of `got` against `expected`.
pub fn difference(got: &[u64], expected: &[u64]) -> Option<String> {
    let mut count: BTreeMap<u64, i64> = expected.iter().map(|&n| (n, -1)).collect();
    for n in got {
        *count.entry(*n).or_insert(-1) += 1;
    }
    let pick = |more: bool| -> Vec<u64> {
        let wanted = |c: i64| if more { c > 0 } else { c < 0 };
        count
            .iter()
            .filter(|(_, c)| wanted(**c))
            .map(|(n, _)| *n)
            .collect()
    };
    let (missing, extra) = (pick(false), pick(true));
    if missing.is_empty() && extra.is_empty() {
        return None;
    }
    Some(format!(
        "got {} of {}: {} missing (first {:?}), {} repeated or unexpected (first {:?})",
        got.len(),
        expected.len(),
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)],
    ))
}

/// `problems` as one error whose first line names the first problem.
pub fn verdict(problems: Vec<String>, of: usize, what: &str) -> Result<()> {
    let Some(first) = problems.first() else {
        return Ok(());
    };
    let mut why = format!("{} of {of} {what}; first: {first}", problems.len());
    for more in problems.iter().skip(1).take(4) {
        why.push_str(&format!("\n    then: {more}"));
    }
    Err(why.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_named() {
        assert_eq!(difference(&[1, 2, 3], &[1, 2, 3]), None);
        let why = difference(&[1, 3, 3], &[1, 2, 3]).unwrap_or_default();
        assert!(why.contains("1 missing (first [2])"), "{why}");
        assert!(
            why.contains("1 repeated or unexpected (first [3])"),
            "{why}"
        );
    }

    #[test]
    fn pushes_are_read_as_items() {
        let notification = json!({"type": "notification",
            "notification": {"id": 7, "data": {"t": 5, "seq": 2}}});
        let (t, got) = item(&notification).expect("a notification");
        assert_eq!((t, got.seq, got.id), (5, 2, Some(7)));
        let plain = json!({"type": "plain", "data": {"t": 1, "seq": 0}});
        assert_eq!(item(&plain).map(|(_, i)| i.id), Some(None));
        assert!(item(&json!({"type": "unread_count", "count": 1})).is_none());
    }
}
