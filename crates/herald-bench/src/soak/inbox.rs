//! The inbox: a backend task `notify`s users round-robin at a steady rate;
//! half of the users stay connected, get each `notification` push on their
//! `inbox:#<user>` channel, and mark it read with the `inbox.mark_read` rpc.
//! Each notification carries its number for that user, so a connected user
//! checks it got every one once, in order; marking one read must update
//! exactly one.

use super::Ctx;
use super::conn::{Conn, Pending, Tally, sent_at};
use crate::Result;
use crate::apps::wire::api;
use crate::loadgen;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const USERS: usize = 40;
/// Notifications per second, over all users.
pub const RATE: u64 = 20;
const DRAIN_WAIT: Duration = Duration::from_secs(30);
const SOURCE_BASE: usize = 3_000;

fn user(i: usize) -> String {
    format!("n{i}")
}

/// Users with an even number stay connected.
fn connected(i: usize) -> bool {
    i.is_multiple_of(2)
}

pub struct Inbox {
    notifier: Option<JoinHandle<()>>,
    users: Vec<JoinHandle<()>>,
}

pub async fn start(
    ctx: &Ctx,
    publishing: &watch::Receiver<bool>,
    receiving: &watch::Receiver<bool>,
) -> Result<Inbox> {
    // Per user: notifications the API accepted, which a connected user must reach.
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..USERS).map(|_| AtomicU64::new(0)).collect());
    let mut users = Vec::new();
    for i in (0..USERS).filter(|&i| connected(i)) {
        let conn = open(ctx, i).await?;
        users.push(tokio::spawn(reader(
            ctx.clone(),
            i,
            conn,
            sent.clone(),
            receiving.clone(),
        )));
    }
    let notifier = tokio::spawn(notifier(ctx.clone(), sent, publishing.clone()));
    Ok(Inbox {
        notifier: Some(notifier),
        users,
    })
}

impl Inbox {
    pub async fn publishers_done(&mut self, tally: &Tally) {
        tally.join("notify", self.notifier.take()).await;
    }

    pub async fn finish(self, tally: &Tally) {
        tally.join("inbox user", self.users).await;
    }
}

/// Connects user `i`; the connect reply must list its personal channel.
async fn open(ctx: &Ctx, i: usize) -> Result<Conn> {
    let name = user(i);
    let (conn, reply) = Conn::open(ctx.addr, SOURCE_BASE + i, &name).await?;
    if reply["connect"]["subs"]
        .get(format!("inbox:#{name}"))
        .is_none()
    {
        return Err(format!("{name}: connect did not subscribe inbox:#{name}: {reply}").into());
    }
    Ok(conn)
}

async fn notifier(ctx: Ctx, sent: Arc<Vec<AtomicU64>>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let base = ctx.api_base();
    for seq in 0_u64.. {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let i = seq as usize % USERS;
        let number = sent[i].load(Relaxed);
        let data = json!({"t": loadgen::now_us(), "n": number});
        let body = json!({"users": [user(i)], "title": "Soak", "message": "soak notification",
                          "level": "info", "category": "soak", "data": data});
        match api(&ctx.http, &base, "notify", &body).await {
            Ok(result) if result["ids"].as_array().is_some_and(|ids| ids.len() == 1) => {
                sent[i].store(number + 1, Relaxed);
            }
            Ok(result) => ctx.tally.error(format!("notify answered {result}")),
            Err(e) => ctx.tally.error(format!("notify: {e}")),
        }
    }
}

/// What one connected user got.
struct Got {
    /// The number the next notification must carry.
    next: u64,
    pending: Pending,
}

async fn reader(
    ctx: Ctx,
    i: usize,
    mut conn: Conn,
    sent: Arc<Vec<AtomicU64>>,
    mut stop: watch::Receiver<bool>,
) {
    let name = user(i);
    let mut got = Got {
        next: 0,
        pending: Pending::default(),
    };
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let mut deadline = None;
    loop {
        // After the stop: until every accepted notification arrived and was marked read.
        if deadline.is_some() && got.next >= sent[i].load(Relaxed) && got.pending.is_empty() {
            break;
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() > d) {
            ctx.tally.error(format!(
                "{name}: at the end got {} of {} notifications{}",
                got.next,
                sent[i].load(Relaxed),
                if got.pending.is_empty() {
                    ""
                } else {
                    ", an rpc unanswered"
                }
            ));
            break;
        }
        let text = tokio::select! {
            _ = stop.changed(), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + DRAIN_WAIT);
                continue;
            }
            _ = check.tick() => {
                for late in got.pending.overdue() {
                    ctx.tally.error(format!("{name}: {late}"));
                }
                continue;
            }
            text = conn.read() => text,
        };
        if let Err(e) = handle(&ctx, &name, &mut conn, text, &mut got).await {
            ctx.tally.error(format!("{name}: {e}"));
            return;
        }
    }
    conn.close().await;
}

/// Checks one frame: notifications in order, each marked read; rpc answers.
async fn handle(
    ctx: &Ctx,
    name: &str,
    conn: &mut Conn,
    text: Result<String>,
    got: &mut Got,
) -> Result<()> {
    let text = text.map_err(|e| format!("unexpected disconnect: {e}"))?;
    let personal = json!(format!("inbox:#{name}"));
    for message in conn.messages(&text).await? {
        if let Some(what) = got.pending.answer(&message) {
            if message["rpc"]["data"]["updated"] != json!(1) {
                ctx.tally
                    .error(format!("{name}: {what} answered {message}"));
            }
            continue;
        }
        let push = &message["push"];
        let data = &push["pub"]["data"];
        if push["channel"] != personal || data["type"] != "notification" {
            continue; // unread counts, chat counts
        }
        let notification = &data["notification"];
        if let Some(sent) = sent_at(&notification["data"]) {
            ctx.tally.delivered_at(sent);
        }
        let number = notification["data"]["n"].as_u64();
        if number != Some(got.next) {
            ctx.tally.error(format!(
                "{name}: notification number {number:?} where {} was expected",
                got.next
            ));
        }
        if let Some(n) = number {
            got.next = got.next.max(n + 1);
        }
        let id = notification["id"].clone();
        let mark: Value = json!({"rpc": {"method": "inbox.mark_read", "data": {"ids": [id]}}});
        let sent = conn.send(mark).await?;
        got.pending
            .expect(sent, format!("inbox.mark_read of notification {id}"));
    }
    Ok(())
}
