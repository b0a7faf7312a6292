//! Recovering subscribers: each holds one `hist:` channel, drops its
//! connection every so often (politely or abruptly) and comes back with
//! `recover: true` and the offset and epoch of the last publication it got.
//! Offsets on a channel with history are 1, 2, 3, … so a client checks each
//! publication, replayed or live, is exactly the one after the last: nothing
//! lost, nothing twice, nothing out of order. A reconnect storm drops every
//! connected one at once and they all recover together.

use super::Ctx;
use super::conn::{Conn, Jitter, Tally, sent_at};
use crate::load;
use crate::loadgen;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const CLIENTS: usize = 100;
pub const CHANNELS: usize = 4;
/// Publications per second on each channel.
pub const RATE: u64 = 10;
/// How long a client stays connected before it drops on its own.
const HOLD: (Duration, Duration) = (Duration::from_secs(20), Duration::from_secs(60));
/// How long it stays away before it comes back.
const AWAY: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(3));
/// How long the last publications may take to reach a client at the end.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

fn channel(index: usize) -> String {
    format!("hist:h{index}")
}

/// Where a client is in its channel's stream.
#[derive(Clone, Debug, PartialEq)]
struct Position {
    offset: u64,
    epoch: String,
}

pub struct Recovery {
    publishers: Vec<JoinHandle<()>>,
    clients: Vec<JoinHandle<()>>,
}

/// The publishers and clients, running until `publishing` and `receiving` stop.
pub fn start(
    ctx: &Ctx,
    publishing: &watch::Receiver<bool>,
    receiving: &watch::Receiver<bool>,
    storms: &watch::Receiver<u64>,
) -> Recovery {
    // The highest offset the API answered per channel: where every client must end.
    let tops: Arc<Vec<AtomicU64>> = Arc::new((0..CHANNELS).map(|_| AtomicU64::new(0)).collect());
    let publishers = (0..CHANNELS)
        .map(|c| tokio::spawn(publish(ctx.clone(), c, tops.clone(), publishing.clone())))
        .collect();
    let clients = (0..CLIENTS)
        .map(|i| {
            let signals = (receiving.clone(), storms.clone());
            tokio::spawn(client(ctx.clone(), i, tops.clone(), signals))
        })
        .collect();
    Recovery {
        publishers,
        clients,
    }
}

impl Recovery {
    pub async fn publishers_done(&mut self, tally: &Tally) {
        tally
            .join("hist publisher", self.publishers.drain(..))
            .await;
    }

    /// Waits for the clients, stopped by the caller after the publishers.
    pub async fn finish(self, tally: &Tally) {
        tally.join("recovering subscriber", self.clients).await;
    }
}

/// [`RATE`] publications a second to one channel; each answer's offset must
/// follow the previous one, under the same epoch.
async fn publish(
    ctx: Ctx,
    index: usize,
    tops: Arc<Vec<AtomicU64>>,
    mut stop: watch::Receiver<bool>,
) {
    let (url, name) = (format!("http://{}/api/publish", ctx.addr), channel(index));
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Position> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let data = json!({"t": loadgen::now_us()});
        match load::publish(&ctx.http, &url, &name, &data).await {
            Ok((offset, epoch)) => {
                let answered = Position { offset, epoch };
                if let Some(prev) = &last
                    && (offset != prev.offset + 1 || answered.epoch != prev.epoch)
                {
                    ctx.tally.error(format!(
                        "{name}: publish answered {answered:?} after {prev:?}"
                    ));
                }
                tops[index].store(offset, Relaxed);
                last = Some(answered);
            }
            Err(e) => ctx.tally.error(format!("hist publish: {e}")),
        }
    }
}

/// Why a client's session ended.
enum Ended {
    /// Its hold time passed.
    Held,
    Storm,
    Stop,
    /// The server ended it, or sent something that fails the check.
    Failed(String),
}

async fn client(
    ctx: Ctx,
    i: usize,
    tops: Arc<Vec<AtomicU64>>,
    (mut stop, mut storms): (watch::Receiver<bool>, watch::Receiver<u64>),
) {
    let (index, user) = (i % CHANNELS, format!("h{i}"));
    let mut jitter = Jitter::new(i as u64);
    let mut position: Option<Position> = None;
    // Spread the first connects over the first seconds.
    tokio::time::sleep(jitter.between(Duration::ZERO, AWAY.1)).await;
    loop {
        let stopping = *stop.borrow_and_update();
        let mut conn = match subscribe(&ctx, i, &user, index, &mut position).await {
            Ok(conn) => conn,
            Err(e) => {
                ctx.tally.error(format!("{user}: {e}"));
                if stopping {
                    return;
                }
                tokio::time::sleep(AWAY.1).await;
                continue;
            }
        };
        if stopping {
            return drain(&ctx, conn, &user, &mut position, tops[index].load(Relaxed)).await;
        }
        storms.borrow_and_update();
        let hold = tokio::time::sleep(jitter.between(HOLD.0, HOLD.1));
        tokio::pin!(hold);
        let ended = loop {
            let text = tokio::select! {
                _ = &mut hold => break Ended::Held,
                _ = storms.changed() => break Ended::Storm,
                _ = stop.changed() => break Ended::Stop,
                text = conn.read() => text,
            };
            if let Err(e) = receive(&ctx, &mut conn, text, &mut position).await {
                break Ended::Failed(e);
            }
        };
        let stormed = matches!(ended, Ended::Storm);
        match ended {
            Ended::Stop => {
                let top = tops[index].load(Relaxed);
                return drain(&ctx, conn, &user, &mut position, top).await;
            }
            // Everyone at once, straight back: the storm.
            Ended::Storm => drop(conn),
            Ended::Held if jitter.one_in(2) => conn.close().await,
            Ended::Held => drop(conn),
            Ended::Failed(why) => ctx.tally.error(format!("{user}: {why}")),
        }
        if !stormed {
            let away = tokio::time::sleep(jitter.between(AWAY.0, AWAY.1));
            tokio::select! {
                _ = away => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Connects and subscribes, recovering from `position` when there is one.
async fn subscribe(
    ctx: &Ctx,
    i: usize,
    user: &str,
    index: usize,
    position: &mut Option<Position>,
) -> crate::Result<Conn> {
    let (mut conn, _) = Conn::open(ctx.addr, i, user).await?;
    let mut subscribe = json!({"channel": channel(index)});
    if let Some(at) = position.as_ref() {
        subscribe["recover"] = json!(true);
        subscribe["offset"] = json!(at.offset);
        subscribe["epoch"] = json!(at.epoch);
    }
    // Live publications may follow the reply in its frame; `call` keeps them.
    let reply = conn.call(json!({"subscribe": subscribe})).await?;
    let result = &reply["subscribe"];
    // The offset is left out while it is 0.
    let top = result["offset"].as_u64().unwrap_or(0);
    let Some(epoch) = result["epoch"].as_str() else {
        return Err(format!("subscribe answered {reply}").into());
    };
    let Some(at) = position.as_mut() else {
        *position = Some(Position {
            offset: top,
            epoch: epoch.into(),
        });
        return Ok(conn);
    };
    if result["recovered"] != json!(true) || epoch != at.epoch {
        let why = format!(
            "recovery from {at:?} failed: recovered {}, epoch {epoch}, offset {top}",
            result["recovered"]
        );
        // Carry on from where the server is, so one failure is counted once.
        *position = Some(Position {
            offset: top,
            epoch: epoch.into(),
        });
        return Err(why.into());
    }
    // Herald answers the stream's top when nothing was missed, and the
    // position recovered from when it replays (each publication then moves
    // it); either way the reply must agree with the client, and the next live
    // publication must follow the last replayed one.
    let replayed = result["publications"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if top != at.offset {
        let why = format!(
            "recovery from {} answered offset {top} with {} publications",
            at.offset,
            replayed.len()
        );
        at.offset = top.max(at.offset);
        return Err(why.into());
    }
    for publication in replayed {
        step(at, publication, "replayed")?;
    }
    Ok(conn)
}

/// Moves `at` over `publication`, which must be the next one.
fn step(at: &mut Position, publication: &Value, how: &str) -> Result<(), String> {
    let offset = publication["offset"].as_u64().unwrap_or(0);
    let expected = at.offset + 1;
    at.offset = offset.max(at.offset);
    if offset == expected {
        Ok(())
    } else {
        Err(format!(
            "{how} publication {offset} where {expected} was expected"
        ))
    }
}

/// Checks the publications of one frame; latency is timed for live ones only
/// (replays are late by design).
async fn receive(
    ctx: &Ctx,
    conn: &mut Conn,
    text: crate::Result<String>,
    position: &mut Option<Position>,
) -> Result<(), String> {
    let text = text.map_err(|e| format!("unexpected disconnect: {e}"))?;
    for message in conn.messages(&text).await.map_err(|e| e.to_string())? {
        let publication = &message["push"]["pub"];
        if publication.is_null() {
            continue;
        }
        let at = position
            .as_mut()
            .ok_or("a publication before subscribing")?;
        if let Some(sent) = sent_at(&publication["data"]) {
            ctx.tally.delivered_at(sent);
        }
        step(at, publication, "live")?;
    }
    Ok(())
}

/// At the end: reads until the client holds the channel's last publication
/// `top` (or [`DRAIN_WAIT`] passed), then closes.
async fn drain(ctx: &Ctx, mut conn: Conn, user: &str, position: &mut Option<Position>, top: u64) {
    let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
    while position.as_ref().is_some_and(|at| at.offset < top) {
        let Ok(text) = tokio::time::timeout_at(deadline, conn.read()).await else {
            break;
        };
        if let Err(e) = receive(ctx, &mut conn, text, position).await {
            ctx.tally.error(format!("{user}: at the end: {e}"));
            return;
        }
    }
    let reached = position.as_ref().map_or(0, |at| at.offset);
    if reached < top {
        ctx.tally.error(format!(
            "{user}: ended at offset {reached}, but the channel's last publication is {top}"
        ));
    }
    conn.close().await;
}
