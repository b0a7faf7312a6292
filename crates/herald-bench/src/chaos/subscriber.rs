//! A subscriber that behaves as the `centrifuge` SDKs do after a failure:
//! when its connection ends it reconnects with backoff, and when the server
//! unsubscribes it with a resubscribe code (2500 and up) it subscribes again;
//! either way with `recover: true` from the last offset and epoch it saw.
//! It keeps every publication it received, in order, and every recovery's
//! outcome, so a scenario can count what it missed, got twice, or was told
//! it could not recover.

use super::node::{NAMESPACE, token};
use crate::Result;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Longest a connect or subscribe reply may take before the attempt is retried.
const REPLY_WAIT: Duration = Duration::from_secs(5);
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// `chaos:<room>`.
pub fn channel(room: &str) -> String {
    format!("{NAMESPACE}:{room}")
}

/// One resubscription after the first subscribe.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// When the subscribe reply arrived.
    pub at: Instant,
    pub recovered: bool,
    /// What ended the previous subscription.
    pub cause: String,
    /// With `recovered: false`: the offsets (after, up to] it was told it missed.
    pub skipped: Option<(u64, u64)>,
}

/// What the subscriber shares while it runs.
#[derive(Default)]
pub struct Live {
    /// The highest offset received.
    pub offset: AtomicU64,
    pub subscribed: AtomicBool,
    pub recoveries: Mutex<Vec<Recovery>>,
    /// Close codes of connections the server ended.
    pub close_codes: Mutex<Vec<u16>>,
    /// Set by [`Subscriber::drop_connection`]; keeps its permit until read.
    drop_now: tokio::sync::Notify,
}

/// What the subscriber received, once stopped.
pub struct Received {
    /// (offset, seq) of every publication, in arrival order.
    pub publications: Vec<(u64, u64)>,
    /// The stream position of the first subscribe: publications after it are owed.
    pub start_offset: u64,
    pub recoveries: Vec<Recovery>,
    pub close_codes: Vec<u16>,
    pub error: Option<String>,
}

pub struct Subscriber {
    pub live: Arc<Live>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Received>,
}

impl Subscriber {
    /// Connects as `user` to `url` and subscribes to `channel`; returns once
    /// subscribed, or the error of the first attempt.
    pub async fn start(url: &str, user: &str, channel: &str) -> Result<Subscriber> {
        let live = Arc::new(Live::default());
        let (stop, stopped) = watch::channel(false);
        let mut state = State {
            url: url.to_string(),
            token: token(user)?,
            channel: channel.to_string(),
            live: live.clone(),
            position: None,
            after_reply: Vec::new(),
            got: Received {
                publications: Vec::new(),
                start_offset: 0,
                recoveries: Vec::new(),
                close_codes: Vec::new(),
                error: None,
            },
        };
        let ws = state.session().await?;
        let task = tokio::spawn(async move {
            state.run(ws, stopped).await;
            let live = &state.live;
            state.got.recoveries = live.recoveries.lock().expect("not poisoned").clone();
            state.got.close_codes = live.close_codes.lock().expect("not poisoned").clone();
            state.got
        });
        Ok(Subscriber { live, stop, task })
    }

    /// Resets the connection (TCP RST, no WebSocket close) as a phone losing
    /// its network does; the subscriber then reconnects and recovers.
    pub fn drop_connection(&self) {
        self.live.drop_now.notify_one();
    }

    pub fn offset(&self) -> u64 {
        self.live.offset.load(Relaxed)
    }

    pub fn recoveries(&self) -> Vec<Recovery> {
        self.live.recoveries.lock().expect("not poisoned").clone()
    }

    /// Waits until this subscriber has received up to `offset`, or `deadline`.
    pub async fn await_offset(&self, offset: u64, deadline: Instant) -> bool {
        while self.offset() < offset {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// When the first resubscription after `since` answered, and whether it
    /// recovered; `None` if none came by `deadline`.
    pub async fn recovery_after(
        &self,
        since: Instant,
        deadline: Instant,
    ) -> Option<(Instant, bool)> {
        loop {
            let first = self
                .recoveries()
                .into_iter()
                .find(|r| r.at > since)
                .map(|r| (r.at, r.recovered));
            if first.is_some() || Instant::now() > deadline {
                return first;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn stop(self) -> Result<Received> {
        let _ = self.stop.send(true);
        Ok(self.task.await?)
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct State {
    url: String,
    token: String,
    channel: String,
    live: Arc<Live>,
    /// The last (offset, epoch) seen; `None` before the first subscribe.
    position: Option<(u64, String)>,
    /// Publications that arrived in the frame of a reply, after it.
    after_reply: Vec<Value>,
    got: Received,
}

/// Why a session ended.
enum End {
    Stopped,
    Resubscribe(String),
    Reconnect(String),
}

impl State {
    async fn run(&mut self, mut ws: Socket, mut stopped: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_FIRST;
        loop {
            let end = self.read(&mut ws, &mut stopped).await;
            self.live.subscribed.store(false, Relaxed);
            let cause = match end {
                End::Stopped => return,
                End::Resubscribe(cause) => match self.subscribe(&mut ws, &cause).await {
                    Ok(()) => continue,
                    Err(e) => format!("{cause}; resubscribe failed: {e}"),
                },
                End::Reconnect(cause) => cause,
            };
            // The old connection goes now, not when a new one is up.
            drop(ws);
            // Reconnect until a session is up again or the scenario stops us.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped.changed() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                match self.connect().await {
                    Ok(mut fresh) => match self.subscribe(&mut fresh, &cause).await {
                        Ok(()) => {
                            ws = fresh;
                            backoff = BACKOFF_FIRST;
                            break;
                        }
                        Err(e) => self.got.error = Some(e.to_string()),
                    },
                    Err(e) => self.got.error = Some(e.to_string()),
                }
            }
        }
    }

    /// The first session: connect and subscribe, no recovery.
    async fn session(&mut self) -> Result<Socket> {
        let mut ws = self.connect().await?;
        self.subscribe(&mut ws, "").await?;
        Ok(ws)
    }

    async fn connect(&mut self) -> Result<Socket> {
        let (mut ws, _) = tokio::time::timeout(
            REPLY_WAIT,
            tokio_tungstenite::connect_async(self.url.as_str()),
        )
        .await
        .map_err(|_| "WebSocket upgrade timed out")??;
        let connect = json!({"id": 1, "connect": {"token": self.token}});
        ws.send(Message::text(connect.to_string())).await?;
        let reply = self.reply(&mut ws, 1).await?;
        if reply.get("connect").is_none() {
            return Err(format!("connect answered {reply}").into());
        }
        Ok(ws)
    }

    /// Subscribes (recovering from the last position once there is one).
    async fn subscribe(&mut self, ws: &mut Socket, cause: &str) -> Result<()> {
        let mut subscribe = json!({"channel": self.channel});
        if let Some((offset, epoch)) = &self.position {
            subscribe["recover"] = json!(true);
            subscribe["offset"] = json!(offset);
            subscribe["epoch"] = json!(epoch);
        }
        let command = json!({"id": 2, "subscribe": subscribe});
        ws.send(Message::text(command.to_string())).await?;
        let reply = self.reply(ws, 2).await?;
        let result = reply
            .get("subscribe")
            .ok_or_else(|| format!("subscribe answered {reply}"))?;
        let epoch = result["epoch"].as_str().unwrap_or_default().to_string();
        let offset = result["offset"].as_u64().unwrap_or(0);
        match self.position.take() {
            None => {
                self.got.start_offset = offset;
                self.live.offset.store(offset, Relaxed);
                self.position = Some((offset, epoch));
            }
            Some(previous) => {
                let recovered = result["recovered"] == json!(true);
                let skipped = (!recovered).then_some((previous.0, offset));
                self.position = Some(previous);
                for publication in result["publications"].as_array().into_iter().flatten() {
                    self.receive(publication);
                }
                if !recovered {
                    // Told it missed something it cannot get: it starts over
                    // from the stream's position, as an SDK user would resync.
                    self.position = Some((offset, epoch));
                }
                self.live
                    .recoveries
                    .lock()
                    .expect("not poisoned")
                    .push(Recovery {
                        at: Instant::now(),
                        recovered,
                        cause: cause.to_string(),
                        skipped,
                    });
            }
        }
        for publication in std::mem::take(&mut self.after_reply) {
            self.receive(&publication);
        }
        self.live.subscribed.store(true, Relaxed);
        Ok(())
    }

    fn receive(&mut self, publication: &Value) {
        let offset = publication["offset"].as_u64().unwrap_or(0);
        let seq = publication["data"]["seq"].as_u64().unwrap_or(u64::MAX);
        self.got.publications.push((offset, seq));
        if let Some((last, _)) = &mut self.position {
            *last = (*last).max(offset);
        }
        self.live.offset.fetch_max(offset, Relaxed);
    }

    /// Reads until the reply with `id`, handling pushes that arrive first.
    async fn reply(&mut self, ws: &mut Socket, id: u64) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + REPLY_WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, ws.next())
                .await
                .map_err(|_| format!("no reply to command {id} within {REPLY_WAIT:?}"))?;
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!("closed while waiting for a reply: {frame:?}").into());
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Err("connection ended while waiting for a reply".into()),
            };
            let mut answer = None;
            for line in text.split('\n').filter(|l| !l.is_empty()) {
                let message: Value = serde_json::from_str(line)?;
                if answer.is_none() && message["id"] == json!(id) {
                    answer = Some(message);
                    continue;
                }
                // A publication in the same frame belongs to the subscription
                // being made; ignoring it would lose it. One after the reply
                // follows the reply's recovered publications, so it waits.
                if let Some(publication) = message["push"].get("pub") {
                    match answer {
                        None => self.receive(&publication.clone()),
                        Some(_) => self.after_reply.push(publication.clone()),
                    }
                }
            }
            if let Some(answer) = answer {
                return Ok(answer);
            }
        }
    }

    /// Reads pushes until the subscription or the connection ends.
    async fn read(&mut self, ws: &mut Socket, stopped: &mut watch::Receiver<bool>) -> End {
        loop {
            let frame = tokio::select! {
                frame = ws.next() => frame,
                _ = stopped.changed() => return End::Stopped,
                _ = self.live.drop_now.notified() => {
                    if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
                        let _ = tcp.set_zero_linger();
                    }
                    return End::Reconnect("dropped abruptly (TCP reset)".into());
                }
            };
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.as_ref().map_or(0, |f| u16::from(f.code));
                    self.live
                        .close_codes
                        .lock()
                        .expect("not poisoned")
                        .push(code);
                    return End::Reconnect(format!("closed with {code}"));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return End::Reconnect(format!("read failed: {e}")),
                None => return End::Reconnect("connection ended".into()),
            };
            for line in text.split('\n').filter(|l| !l.is_empty()) {
                if line == "{}" {
                    // A ping: answer it, or the server drops us as stale.
                    if ws.send(Message::text("{}")).await.is_err() {
                        return End::Reconnect("pong failed".into());
                    }
                    continue;
                }
                let Ok(message) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let push = &message["push"];
                if let Some(publication) = push.get("pub") {
                    self.receive(&publication.clone());
                } else if let Some(unsubscribe) = push.get("unsubscribe") {
                    let code = unsubscribe["code"].as_u64().unwrap_or(0);
                    if code >= 2500 {
                        return End::Resubscribe(format!("unsubscribed with {code}"));
                    }
                    return End::Reconnect(format!("unsubscribed for good with {code}"));
                } else if let Some(disconnect) = push.get("disconnect") {
                    let code = disconnect["code"].as_u64().unwrap_or(0) as u16;
                    self.live
                        .close_codes
                        .lock()
                        .expect("not poisoned")
                        .push(code);
                    return End::Reconnect(format!("disconnected with {code}"));
                }
            }
        }
    }
}
