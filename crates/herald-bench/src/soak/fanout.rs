//! Fan-out: subscribers held by the WebSocket load generator (`loadgen.rs`),
//! every one on every `bench:` channel, and one API publisher per channel at a
//! steady rate. Each publisher awaits each answer before the next, so its
//! numbers fix the order every subscriber must see; `order.rs` checks each
//! delivery as it arrives.

use super::Ctx;
use super::conn::{REPLY_WAIT, Tally};
use crate::Result;
use crate::loadgen::{self, Pool, Stats};
use crate::order::Order;
use crate::peers::{Endpoint, Kind};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const SUBSCRIBERS: usize = 400;
pub const CHANNELS: usize = 4;
/// Publications per second on each channel.
pub const RATE: u64 = 40;
/// How long the last publications may take to reach every subscriber.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

pub struct Fanout {
    pool: Pool,
    stats: Arc<Stats>,
    order: Arc<Order>,
    publishers: Vec<JoinHandle<()>>,
}

fn room(channel: usize) -> String {
    format!("f{channel}")
}

/// Connects the subscribers, then starts the publishers, which run until `stop`.
pub async fn start(ctx: &Ctx, stop: &watch::Receiver<bool>) -> Result<Fanout> {
    let endpoint = Arc::new(Endpoint {
        kind: Kind::Herald,
        addr: ctx.addr,
        api_key: crate::load::API_KEY.into(),
    });
    let tokens: Vec<String> = (0..SUBSCRIBERS)
        .map(|i| crate::load::token(&format!("f{i}")))
        .collect::<Result<_>>()?;
    let order = Arc::new(Order::new(CHANNELS, SUBSCRIBERS));
    let stats = Stats::with_order(Some(order.clone()));
    let mut pool = Pool::default();
    let rooms: Arc<dyn Fn(usize) -> Vec<String> + Send + Sync> =
        Arc::new(|_| (0..CHANNELS).map(room).collect());
    let endpoints = [endpoint.clone()];
    let tokens = Some(Arc::new(tokens));
    let label = "fan-out subscribers";
    loadgen::connect(
        &mut pool,
        &endpoints,
        0,
        SUBSCRIBERS,
        16,
        rooms,
        tokens,
        &stats,
        label,
    )
    .await;
    if pool.failed > 0 {
        return Err(format!(
            "{} of {SUBSCRIBERS} fan-out subscribers did not connect; first: {}",
            pool.failed,
            pool.first_error.clone().unwrap_or_default()
        )
        .into());
    }
    let publishers = (0..CHANNELS)
        .map(|channel| {
            let sender = (ctx.clone(), endpoint.clone());
            tokio::spawn(publish(sender, order.clone(), channel, stop.clone()))
        })
        .collect();
    Ok(Fanout {
        pool,
        stats,
        order,
        publishers,
    })
}

/// Publisher `channel`: [`RATE`] tagged publications a second until `stop`.
async fn publish(
    (ctx, endpoint): (Ctx, Arc<Endpoint>),
    order: Arc<Order>,
    channel: usize,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let payload = loadgen::tagged_payload(loadgen::now_us(), &order.tag(channel));
        let request = endpoint.publish(&ctx.http, &room(channel), &payload);
        let why = match tokio::time::timeout(REPLY_WAIT, request.send()).await {
            // The API answers errors with HTTP 200 and an `error` body, as Centrifugo's.
            Ok(Ok(answer)) if answer.status().is_success() => {
                match answer.json::<serde_json::Value>().await {
                    Ok(body) if body.get("result").is_some() => continue,
                    Ok(body) => format!("answered {body}"),
                    Err(e) => format!("unreadable answer: {e}"),
                }
            }
            Ok(Ok(answer)) => format!("HTTP {}", answer.status()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {REPLY_WAIT:?}"),
        };
        ctx.tally
            .error(format!("fan-out publish to {}: {why}", room(channel)));
    }
}

impl Fanout {
    /// Problems so far: deliveries out of place (skipped, late, repeated) and
    /// subscribers the server disconnected. Never decreases.
    pub fn problems(&self) -> u64 {
        self.order.anomalies() + self.stats.closed.load(Relaxed)
    }

    pub fn delivered(&self) -> u64 {
        self.stats.delivered()
    }

    /// Latencies since the last call, which starts a new window.
    pub fn take_latency(&self) -> Histogram<u64> {
        let latency = self.stats.latency();
        self.stats.reset_latency();
        latency
    }

    /// Waits for the publishers (stopped by the caller).
    pub async fn publishers_done(&mut self, tally: &Tally) {
        tally
            .join("fan-out publisher", self.publishers.drain(..))
            .await;
    }

    /// After the publishers stopped: waits until every publication reached
    /// every subscriber (or [`DRAIN_WAIT`] passed) and closes the
    /// subscribers. Answers every problem since the start, as
    /// [`Fanout::problems`] counts them plus the deliveries that never came,
    /// and says what those were.
    pub async fn finish(self) -> (u64, Vec<String>) {
        let expected = self.order.published() * SUBSCRIBERS as u64;
        let until = Instant::now() + DRAIN_WAIT;
        while self.stats.delivered() < expected && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let closed = self.stats.closed.load(Relaxed);
        drop(self.pool);
        let verdict = self.order.verify(|_| 0);
        let mut problems = Vec::new();
        // `lost` counts skipped ones, as `anomalies` does, and the ones still missing.
        let never = verdict
            .lost
            .saturating_sub(self.order.anomalies() - verdict.late - verdict.duplicates);
        if never > 0 {
            problems.push(format!(
                "fan-out: {never} deliveries never arrived by the end: {}",
                verdict.details()
            ));
        }
        (
            closed + verdict.lost + verdict.late + verdict.duplicates,
            problems,
        )
    }
}
