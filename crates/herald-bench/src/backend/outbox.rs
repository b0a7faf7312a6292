//! The outbox half of `backend`: a fresh PostgreSQL database with the outbox
//! table and the NOTIFY trigger exactly as `docs/outbox.md` gives them,
//! writers that commit one `publish` row per transaction, the same
//! publications sent with `POST /api/publish` for comparison, and one
//! subscriber per channel that times and checks every delivery.
//!
//! Each channel has one writer, which awaits each commit (or API answer)
//! before its next row, so its rows' order is fixed: a subscriber must get
//! sequence numbers 0, 1, 2, ... of its channel, each once, in that order.

use super::{Cpu, Herald, Scale, Ticks};
use crate::Result;
use crate::apps::wire::{self, Listeners, Sink, Stream};
use crate::load;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use herald_postgres::testing::TestDatabase;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub const TABLE: &str = "chat_outbox";
pub const NOTIFICATION_CHANNEL: &str = herald_consumers::testing::NOTIFY_CHANNEL;

/// A fresh database with the outbox schema (dropped when the first value is),
/// and a pool with a connection per writer.
pub async fn database(writers: usize) -> Result<(TestDatabase, PgPool)> {
    // `create` panics under CI=true when the server is unreachable.
    let database = match tokio::spawn(TestDatabase::create()).await {
        Ok(Some(database)) => database,
        Ok(None) | Err(_) => {
            let why = "PostgreSQL not reachable (set HERALD_TEST_POSTGRES_URL); \
                       the outbox half needs it";
            return Err(why.into());
        }
    };
    // The table and trigger of docs/outbox.md, as the tests create them.
    herald_consumers::testing::create_table(database.url())
        .await
        .close()
        .await;
    let pool = PgPoolOptions::new()
        .max_connections(writers as u32 + 1)
        .connect(database.url())
        .await?;
    herald_consumers::testing::add_notify_trigger(&pool).await;
    Ok((database, pool))
}

#[derive(Clone, Copy, PartialEq)]
pub enum Via {
    /// A committed row in the outbox table, run by herald's consumer.
    Outbox,
    /// `POST /api/publish`, awaited.
    Api,
}

/// How a phase offers its publications.
#[derive(Clone, Copy, PartialEq)]
pub enum Offer {
    /// Publications per second over all writers.
    Rate(f64),
    /// Each writer as fast as its commits (or answers) come back.
    FlatOut,
    /// This many rows committed in one transaction, then drained by the
    /// consumer: its rate with the writers out of the way.
    Backlog(usize),
}

#[derive(Clone, Copy)]
pub struct Phase {
    pub via: Via,
    pub offer: Offer,
}

/// Outbox and API alternating, at `rate` and then flat out; then an outbox
/// backlog of `backlog` rows.
pub fn phases(rate: f64, backlog: usize) -> [Phase; 5] {
    [
        (Via::Outbox, Offer::Rate(rate)),
        (Via::Api, Offer::Rate(rate)),
        (Via::Outbox, Offer::FlatOut),
        (Via::Api, Offer::FlatOut),
        (Via::Outbox, Offer::Backlog(backlog)),
    ]
    .map(|(via, offer)| Phase { via, offer })
}

impl Phase {
    pub fn label(&self) -> String {
        let via = match self.via {
            Via::Outbox => "Outbox row, committed",
            Via::Api => "API publish",
        };
        match self.offer {
            Offer::Rate(rate) => format!("{via}, {rate:.0}/s offered"),
            Offer::FlatOut => format!("{via}, flat out"),
            Offer::Backlog(rows) => format!("{via}, a backlog of {rows} in one transaction"),
        }
    }
}

/// What one phase wrote and what its subscribers got.
pub struct Delivered {
    pub written: u64,
    /// From the first write to the writers stopping.
    pub write_elapsed: Duration,
    /// From the first write to the last delivery.
    pub elapsed: Duration,
    /// Write start (the stamp in `data`) to the push arriving, µs.
    pub latency: Histogram<u64>,
    pub cpu: Cpu,
}

impl Delivered {
    pub fn written_rate(&self) -> f64 {
        self.written as f64 / self.write_elapsed.as_secs_f64().max(1e-3)
    }

    pub fn delivered_rate(&self) -> f64 {
        self.latency.len() as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} written at {:.0}/s, delivered at {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, \
             herald {:.0} µs and PostgreSQL {:.0} µs CPU per message",
            self.written,
            self.written_rate(),
            self.delivered_rate(),
            self.latency.value_at_quantile(0.50) as f64 / 1000.0,
            self.latency.value_at_quantile(0.99) as f64 / 1000.0,
            self.cpu.herald * 1e6 / self.latency.len().max(1) as f64,
            self.cpu.postgres * 1e6 / self.latency.len().max(1) as f64,
        )
    }
}

/// Where a writer's publications go.
#[derive(Clone)]
enum Target {
    Outbox(PgPool),
    Api { http: reqwest::Client, base: String },
}

impl Target {
    /// One publication: an outbox row in a transaction of its own (the
    /// INSERT's autocommit), or one awaited API call.
    async fn write(&self, channel: &str, partition: usize, data: Value) -> Result<()> {
        let body = json!({"channel": channel, "data": data});
        match self {
            Target::Outbox(pool) => {
                sqlx::query(
                    "INSERT INTO chat_outbox (method, payload, partition) \
                     VALUES ('publish', $1::jsonb, $2)",
                )
                .bind(body.to_string())
                .bind(partition as i32)
                .execute(pool)
                .await
                .map_err(|e| format!("INSERT into {TABLE}: {e}"))?;
            }
            Target::Api { http, base } => {
                wire::api(http, base, "publish", &body).await?;
            }
        }
        Ok(())
    }
}

/// One phase: subscribers on fresh channels, the writers for `write_span`
/// (or the backlog's one INSERT), then every delivery awaited and checked.
pub async fn measure(
    phase: Phase,
    index: usize,
    herald: &Herald,
    pool: &PgPool,
    http: &reqwest::Client,
    s: &Scale,
) -> Result<Delivered> {
    let channels: Arc<Vec<String>> = Arc::new(
        (0..s.channels())
            .map(|c| format!("bench:phase{index}-c{c}"))
            .collect(),
    );
    let mut listeners = Listeners::new();
    for (c, channel) in channels.iter().enumerate() {
        let connection = subscribe(herald.addr, &format!("s{c}"), channel).await?;
        listeners.listen(connection, channel.clone());
    }
    let target = match phase.via {
        Via::Outbox => Target::Outbox(pool.clone()),
        Via::Api => Target::Api {
            http: http.clone(),
            base: format!("http://{}/api/", herald.addr),
        },
    };
    let sent = Arc::new(AtomicUsize::new(0));
    let ticker = progress(phase.label(), sent.clone(), listeners.delivered.clone());
    let ticks = Ticks::now(&herald.process);
    let started = Instant::now();
    let written = match phase.offer {
        Offer::Backlog(rows) => backlog(pool, &channels, rows, s.partitions, &sent).await,
        Offer::Rate(rate) => write_all(target, &channels, Some(rate), s, &sent).await,
        Offer::FlatOut => write_all(target, &channels, None, s, &sent).await,
    };
    let write_elapsed = started.elapsed();
    // A backlog is invisible to the consumer until its one commit.
    let delivering = match phase.offer {
        Offer::Backlog(_) => Instant::now(),
        _ => started,
    };
    let total = written
        .as_ref()
        .map_or(0, |counts| counts.iter().sum::<u64>());
    let received = listeners.finish(total as usize, written.is_ok()).await;
    let cpu = ticks.since(&herald.process);
    ticker.abort();
    let counts = written?;
    let (mut latency, mut last, mut problems) = (load::new_histogram(), delivering, Vec::new());
    for ((channel, got), &count) in channels.iter().zip(received?).zip(&counts) {
        latency.add(&got.latency).map_err(|e| e.to_string())?;
        last = last.max(got.last.unwrap_or(delivering));
        let arrived: Vec<u64> = got.items.iter().map(|item| item.seq).collect();
        let mut sorted = arrived.clone();
        sorted.sort_unstable();
        let expected: Vec<u64> = (0..count).collect();
        if let Some(e) = got.error {
            problems.push(format!("{channel}: {e}"));
        } else if let Some(why) = wire::difference(&sorted, &expected) {
            problems.push(format!("{channel}: {why}"));
        } else if let Some(k) = (1..arrived.len()).find(|&k| arrived[k] < arrived[k - 1]) {
            let (this, before) = (arrived[k], arrived[k - 1]);
            problems.push(format!("{channel}: {this} arrived after {before}"));
        }
    }
    let what = "channels did not deliver every publication once, in order";
    wire::verdict(problems, channels.len(), what)?;
    if phase.via == Via::Outbox {
        drained(pool).await?;
    }
    Ok(Delivered {
        written: total,
        write_elapsed,
        elapsed: last - delivering,
        latency,
        cpu,
    })
}

/// `s.writers` concurrent writers for `s.write_span`; how many publications
/// each channel got.
async fn write_all(
    target: Target,
    channels: &Arc<Vec<String>>,
    rate: Option<f64>,
    s: &Scale,
    sent: &Arc<AtomicUsize>,
) -> Result<Vec<u64>> {
    let writers: Vec<_> = (0..s.writers)
        .map(|w| {
            let (target, channels, sent) = (target.clone(), channels.clone(), sent.clone());
            let layout = (s.writers, s.channels_per_writer, s.partitions);
            tokio::spawn(write(target, w, layout, channels, rate, s.write_span, sent))
        })
        .collect();
    let (mut counts, mut problems) = (Vec::new(), Vec::new());
    for (w, writer) in writers.into_iter().enumerate() {
        match writer.await {
            Ok(Ok(written)) => counts.extend(written),
            Ok(Err(e)) => problems.push(format!("writer {w}: {e}")),
            Err(e) => problems.push(format!("writer {w}: {e}")),
        }
    }
    wire::verdict(problems, s.writers, "writers failed")?;
    Ok(counts)
}

/// `rows` publications spread evenly over `channels`, committed in one
/// transaction (one INSERT) in sequence order, so each channel's rows have
/// ascending ids; how many each channel got.
async fn backlog(
    pool: &PgPool,
    channels: &[String],
    rows: usize,
    partitions: usize,
    sent: &AtomicUsize,
) -> Result<Vec<u64>> {
    let per_channel = rows / channels.len();
    let t = wire::stamp();
    let (mut payloads, mut numbers) = (Vec::new(), Vec::new());
    for seq in 0..per_channel {
        for (c, channel) in channels.iter().enumerate() {
            let data = json!({"type": "plain", "data": {"t": t, "seq": seq}});
            payloads.push(json!({"channel": channel, "data": data}).to_string());
            numbers.push((c % partitions) as i32);
        }
    }
    sqlx::query(
        "INSERT INTO chat_outbox (method, payload, partition) \
         SELECT 'publish', payload::jsonb, partition \
         FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS row(payload, partition, n) \
         ORDER BY n",
    )
    .bind(&payloads)
    .bind(&numbers)
    .execute(pool)
    .await
    .map_err(|e| format!("INSERT of the backlog into {TABLE}: {e}"))?;
    sent.fetch_add(payloads.len(), Relaxed);
    Ok(vec![per_channel as u64; channels.len()])
}

/// Writer `w` of `writers`: its `per_writer` channels round-robin, one
/// publication awaited after another, at its share of `rate` (or flat out)
/// until `span` has passed; returns how many it wrote to each channel.
async fn write(
    target: Target,
    w: usize,
    (writers, per_writer, partitions): (usize, usize, usize),
    channels: Arc<Vec<String>>,
    rate: Option<f64>,
    span: Duration,
    sent: Arc<AtomicUsize>,
) -> Result<Vec<u64>> {
    let mut counts = vec![0u64; per_writer];
    let started = tokio::time::Instant::now();
    let end = started + span;
    for k in 0.. {
        if let Some(rate) = rate {
            // Publication n overall is due n / rate after the start;
            // writer w sends n = k·writers + w.
            let due = started + Duration::from_secs_f64((k * writers + w) as f64 / rate);
            if due >= end {
                break;
            }
            tokio::time::sleep_until(due).await;
        } else if tokio::time::Instant::now() >= end {
            break;
        }
        let slot = k % per_writer;
        let c = w * per_writer + slot;
        let data = json!({"type": "plain", "data": {"t": wire::stamp(), "seq": counts[slot]}});
        target.write(&channels[c], c % partitions, data).await?;
        counts[slot] += 1;
        sent.fetch_add(1, Relaxed);
    }
    Ok(counts)
}

/// A connection as `user`, with a JWT, subscribed to `channel`.
async fn subscribe(addr: SocketAddr, user: &str, channel: &str) -> Result<(Sink, Stream)> {
    let url = format!("ws://{addr}/connection/websocket");
    // Nagle off (`true`), as browsers open WebSockets.
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await?;
    let (mut sink, mut stream) = ws.split();
    let token = load::token(user)?;
    let commands = [
        (1, "connect", json!({"token": token})),
        (2, "subscribe", json!({"channel": channel})),
    ];
    for (id, name, body) in commands {
        let mut command = json!({"id": id});
        command[name] = body;
        sink.send(Message::text(command.to_string())).await?;
        loop {
            let text = tokio::time::timeout(wire::GRACE, wire::next_text(&mut stream))
                .await
                .map_err(|_| format!("{user}: no {name} reply within {:?}", wire::GRACE))??;
            let replies: Vec<Value> = wire::lines(&text).collect::<std::result::Result<_, _>>()?;
            if let Some(reply) = replies.iter().find(|reply| reply["id"] == id) {
                if reply.get(name).is_none() {
                    return Err(format!("{user}: {name} answered {reply}").into());
                }
                break;
            }
        }
    }
    Ok((sink, stream))
}

/// The consumer deletes each row in the transaction that ran it: once every
/// row was delivered, the table must soon be empty.
async fn drained(pool: &PgPool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM chat_outbox")
            .fetch_one(pool)
            .await?;
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{left} delivered rows still in {TABLE} after 10 s").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prints written and delivered counts every second until aborted.
fn progress(
    label: String,
    sent: Arc<AtomicUsize>,
    delivered: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let (s, d) = (sent.load(Relaxed), delivered.load(Relaxed));
            eprintln!("    {label}: written {s}, delivered {d}");
        }
    })
}
