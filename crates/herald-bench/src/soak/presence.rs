//! Presence churn: clients join and leave a presence channel (`room:lobby`,
//! joins and leaves pushed to all), some politely with `unsubscribe`, some by
//! dropping the socket; an API caller asks `presence` every few seconds. The
//! answer may never list more clients than exist, and after everyone left it
//! must empty: an entry that outlives its connection is a leak.

use super::Ctx;
use super::conn::{Conn, Jitter, REPLY_WAIT};
use crate::Result;
use crate::apps::wire::api;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const CLIENTS: usize = 40;
pub const CHANNEL: &str = "room:lobby";
/// How often the API caller asks `presence`.
pub const API_EVERY: Duration = Duration::from_secs(2);
const STAY: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(20));
const AWAY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(5));
/// Source addresses are spread by number; keep these apart from the others'.
const SOURCE_BASE: usize = 2_000;

pub struct Presence {
    tasks: Vec<JoinHandle<()>>,
}

pub fn start(ctx: &Ctx, stop: &watch::Receiver<bool>) -> Presence {
    let mut tasks: Vec<JoinHandle<()>> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(ctx.clone(), i, stop.clone())))
        .collect();
    tasks.push(tokio::spawn(caller(ctx.clone(), stop.clone())));
    Presence { tasks }
}

impl Presence {
    /// Waits for the clients (stopped by the caller); then the channel's
    /// presence must empty within [`REPLY_WAIT`].
    pub async fn finish(self, ctx: &Ctx) -> Vec<String> {
        ctx.tally.join("presence", self.tasks).await;
        let until = Instant::now() + REPLY_WAIT;
        loop {
            let left = match listed(ctx).await {
                Ok(entries) if entries.is_empty() => return Vec::new(),
                Ok(entries) => format!("still lists {entries:?}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() > until {
                return vec![format!(
                    "presence of {CHANNEL}, {REPLY_WAIT:?} after every client left: {left}"
                )];
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The users `presence` lists on [`CHANNEL`], one per client.
async fn listed(ctx: &Ctx) -> Result<Vec<String>> {
    let result = api(
        &ctx.http,
        &ctx.api_base(),
        "presence",
        &json!({"channel": CHANNEL}),
    )
    .await?;
    let clients = result["presence"]
        .as_object()
        .ok_or_else(|| format!("presence answered {result}"))?;
    Ok(clients
        .values()
        .map(|client| client["user"].as_str().unwrap_or("?").to_string())
        .collect())
}

async fn caller(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(API_EVERY);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        match listed(&ctx).await {
            Ok(users) if users.len() <= CLIENTS && users.iter().all(|u| u.starts_with('p')) => {}
            Ok(users) => ctx.tally.error(format!(
                "presence lists {} clients of at most {CLIENTS}: {users:?}",
                users.len()
            )),
            Err(e) => ctx.tally.error(format!("presence: {e}")),
        }
    }
}

/// Joins, stays a while, leaves, stays away a while; until `stop`.
async fn client(ctx: Ctx, i: usize, mut stop: watch::Receiver<bool>) {
    let user = format!("p{i}");
    let mut jitter = Jitter::new(SOURCE_BASE as u64 + i as u64);
    loop {
        let away = tokio::time::sleep(jitter.between(AWAY.0, AWAY.1));
        tokio::select! {
            _ = stop.changed() => return,
            _ = away => {}
        }
        let mut conn = match join(&ctx, i, &user).await {
            Ok(conn) => conn,
            Err(e) => {
                ctx.tally.error(format!("{user}: {e}"));
                continue;
            }
        };
        let stay = tokio::time::sleep(jitter.between(STAY.0, STAY.1));
        tokio::pin!(stay);
        let stopped = loop {
            let text = tokio::select! {
                _ = stop.changed() => break true,
                _ = &mut stay => break false,
                text = conn.read() => text,
            };
            // Joins and leaves need no answer; pings do, which `messages` gives.
            let read = match text {
                Ok(text) => conn.messages(&text).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = read {
                ctx.tally
                    .error(format!("{user}: unexpected disconnect: {e}"));
                break false;
            }
        };
        if stopped || jitter.one_in(2) {
            leave(conn).await;
        } else {
            drop(conn);
        }
        if stopped {
            return;
        }
    }
}

async fn join(ctx: &Ctx, i: usize, user: &str) -> Result<Conn> {
    let (mut conn, _) = Conn::open(ctx.addr, SOURCE_BASE + i, user).await?;
    let reply = conn
        .call(json!({"subscribe": {"channel": CHANNEL}}))
        .await?;
    if reply.get("subscribe").is_none() {
        return Err(format!("subscribe to {CHANNEL} answered {reply}").into());
    }
    Ok(conn)
}

/// `unsubscribe`, then a close frame.
async fn leave(mut conn: Conn) {
    let unsubscribe: Value = json!({"unsubscribe": {"channel": CHANNEL}});
    let _ = conn.send(unsubscribe).await;
    conn.close().await;
}
