//! Chat: a few conversations of two members, both connected and subscribed
//! to `chat:<conversation>`, each sending `chat.send` every few seconds and
//! moving its read mark with `chat.read`; a backend task adds system messages
//! with `chat_post`. Message ids count up from 1 in each conversation and one
//! node pushes them in id order, so every member checks it got each id once,
//! in order, and at the end the conversation's last one.

use super::Ctx;
use super::conn::{Conn, Jitter, Pending, Tally, sent_at};
use crate::Result;
use crate::apps::wire::api;
use crate::loadgen;
use serde_json::json;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const CONVERSATIONS: usize = 5;
pub const MEMBERS: [&str; 2] = ["a", "b"];
/// How often each member sends.
pub const SEND_EVERY: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(4));
/// How often the backend posts a system message, to one conversation in turn.
pub const POST_EVERY: Duration = Duration::from_secs(1);
/// A member moves its read mark after this many messages.
const READ_EVERY: u64 = 5;
const DRAIN_WAIT: Duration = Duration::from_secs(30);
const SOURCE_BASE: usize = 4_000;

fn conversation(c: usize) -> String {
    format!("soak-{c}")
}

pub struct Chat {
    poster: Option<JoinHandle<()>>,
    members: Vec<JoinHandle<()>>,
}

/// Creates the conversations, connects their members and starts everyone.
pub async fn start(
    ctx: &Ctx,
    publishing: &watch::Receiver<bool>,
    receiving: &watch::Receiver<bool>,
) -> Result<Chat> {
    let mut members = Vec::new();
    for c in 0..CONVERSATIONS {
        let users: Vec<String> = MEMBERS.iter().map(|m| format!("c{c}-{m}")).collect();
        let create = json!({"conversation": conversation(c), "title": "Soak", "members": users});
        api(&ctx.http, &ctx.api_base(), "chat_create", &create).await?;
        for (m, user) in users.into_iter().enumerate() {
            let source = SOURCE_BASE + c * MEMBERS.len() + m;
            let (mut conn, _) = Conn::open(ctx.addr, source, &user).await?;
            let channel = format!("chat:{}", conversation(c));
            let reply = conn
                .call(json!({"subscribe": {"channel": channel}}))
                .await?;
            if reply.get("subscribe").is_none() {
                return Err(format!("{user}: subscribe to {channel} answered {reply}").into());
            }
            let member = Member {
                ctx: ctx.clone(),
                user,
                c,
                last: 0,
                pending: Pending::default(),
                sent: 0,
            };
            let signals = (publishing.clone(), receiving.clone());
            members.push(tokio::spawn(member.run(conn, signals, source as u64)));
        }
    }
    let poster = tokio::spawn(poster(ctx.clone(), publishing.clone()));
    Ok(Chat {
        poster: Some(poster),
        members,
    })
}

impl Chat {
    pub async fn publishers_done(&mut self, tally: &Tally) {
        tally.join("chat_post", self.poster.take()).await;
    }

    pub async fn finish(self, tally: &Tally) {
        tally.join("chat member", self.members).await;
    }
}

async fn poster(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(POST_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let base = ctx.api_base();
    for seq in 0_usize.. {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let body = json!({"conversation": conversation(seq % CONVERSATIONS), "kind": "system",
                          "text": format!("status {seq}"), "data": {"t": loadgen::now_us()}});
        match api(&ctx.http, &base, "chat_post", &body).await {
            Ok(result) if result["message"]["id"].is_i64() => {}
            Ok(result) => ctx.tally.error(format!("chat_post answered {result}")),
            Err(e) => ctx.tally.error(format!("chat_post: {e}")),
        }
    }
}

struct Member {
    ctx: Ctx,
    user: String,
    c: usize,
    /// The id of the last message received.
    last: u64,
    pending: Pending,
    sent: u64,
}

impl Member {
    /// Sends until `publishing` stops; reads until `receiving` stops and it
    /// holds the conversation's last message.
    async fn run(
        mut self,
        mut conn: Conn,
        (mut publishing, mut receiving): (watch::Receiver<bool>, watch::Receiver<bool>),
        seed: u64,
    ) {
        let mut jitter = Jitter::new(seed);
        let mut check = tokio::time::interval(Duration::from_secs(1));
        let mut sending = true;
        let mut deadline = None;
        let next_send = tokio::time::sleep(jitter.between(SEND_EVERY.0, SEND_EVERY.1));
        tokio::pin!(next_send);
        loop {
            if let Some(deadline) = deadline {
                match self.drained(deadline).await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => {
                        self.ctx
                            .tally
                            .error(format!("{}: at the end: {e}", self.user));
                        break;
                    }
                }
            }
            let text = tokio::select! {
                _ = publishing.changed(), if sending => {
                    sending = false;
                    continue;
                }
                _ = receiving.changed(), if deadline.is_none() => {
                    deadline = Some(tokio::time::Instant::now() + DRAIN_WAIT);
                    continue;
                }
                _ = &mut next_send, if sending => {
                    next_send.as_mut().reset(tokio::time::Instant::now()
                        + jitter.between(SEND_EVERY.0, SEND_EVERY.1));
                    if let Err(e) = self.send(&mut conn).await {
                        self.ctx.tally.error(format!("{}: chat.send: {e}", self.user));
                        return;
                    }
                    continue;
                }
                _ = check.tick() => {
                    for late in self.pending.overdue() {
                        self.ctx.tally.error(format!("{}: {late}", self.user));
                    }
                    continue;
                }
                text = conn.read() => text,
            };
            if let Err(e) = self.handle(&mut conn, text).await {
                self.ctx.tally.error(format!("{}: {e}", self.user));
                return;
            }
        }
        conn.close().await;
    }

    async fn send(&mut self, conn: &mut Conn) -> Result<()> {
        self.sent += 1;
        let data = json!({"conversation": conversation(self.c), "text": format!("hello {}", self.sent),
                          "data": {"t": loadgen::now_us()},
                          "client_msg_id": format!("{}-{}", self.user, self.sent)});
        let id = conn
            .send(json!({"rpc": {"method": "chat.send", "data": data}}))
            .await?;
        self.pending.expect(id, format!("chat.send #{}", self.sent));
        Ok(())
    }

    /// Checks one frame: messages in id order, answers to our rpc calls.
    async fn handle(&mut self, conn: &mut Conn, text: Result<String>) -> Result<()> {
        let text = text.map_err(|e| format!("unexpected disconnect: {e}"))?;
        let channel = json!(format!("chat:{}", conversation(self.c)));
        for message in conn.messages(&text).await? {
            if let Some(what) = self.pending.answer(&message) {
                let data = &message["rpc"]["data"];
                let ok = match what.starts_with("chat.send") {
                    true => data["message"]["id"].is_i64(),
                    false => data["unread"].is_u64(),
                };
                if !ok {
                    self.ctx
                        .tally
                        .error(format!("{}: {what} answered {message}", self.user));
                }
                continue;
            }
            let push = &message["push"];
            let data = &push["pub"]["data"];
            if push["channel"] != channel || data["type"] != "message" {
                continue; // typing, read receipts, members; the inbox's chat counts
            }
            if let Some(sent) = sent_at(&data["message"]["data"]) {
                self.ctx.tally.delivered_at(sent);
            }
            let id = data["message"]["id"].as_u64().unwrap_or(0);
            if id != self.last + 1 {
                self.ctx.tally.error(format!(
                    "{}: message {id} arrived after {}",
                    self.user, self.last
                ));
            }
            self.last = self.last.max(id);
            if id.is_multiple_of(READ_EVERY) {
                let read = json!({"conversation": conversation(self.c), "message_id": id});
                let sent = conn
                    .send(json!({"rpc": {"method": "chat.read", "data": read}}))
                    .await?;
                self.pending.expect(sent, format!("chat.read of {id}"));
            }
        }
        Ok(())
    }

    /// After the stop: whether this member holds the conversation's last
    /// message and every answer; an error once `deadline` passed.
    async fn drained(&self, deadline: tokio::time::Instant) -> Result<bool> {
        let body = json!({"conversation": conversation(self.c)});
        let result = api(&self.ctx.http, &self.ctx.api_base(), "chat_get", &body).await?;
        let newest = result["conversation"]["last_message_id"]
            .as_u64()
            .unwrap_or(0);
        if self.last >= newest && self.pending.is_empty() {
            return Ok(true);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "got messages up to {} of {newest}; {} answers missing",
                self.last,
                if self.pending.is_empty() {
                    "no"
                } else {
                    "some"
                }
            )
            .into());
        }
        Ok(false)
    }
}
