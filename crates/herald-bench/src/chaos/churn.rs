//! `churn`: a burst of traffic over many channels with history, then
//! silence. Every channel has one subscriber and keeps a little history;
//! once the burst ends and its subscribers leave, the channels' history
//! expires and their positions are forgotten, and the node's resident memory
//! must come back to within 10 % of what it was before the burst.

use super::node::{self, Broker, HealthWatch, Node, Spec, Storage};
use super::{Ctx, Row, secs};
use crate::Result;
use crate::loadgen::{self, Pool, Stats};
use crate::peers::{Endpoint, Kind};
use crate::report::grouped;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const ABOUT: &str = "**`churn`**: one node on the in-memory engine (no broker, nothing on \
disk); subscribers hold one subscription to each of the scale's channels (100,000 at full scale: \
100 connections × 1,000), in a namespace that keeps 2 publications per channel for 5 s and \
forgets an idle channel's position 10 s after its last publication (`history_size = 2`, \
`history_ttl = \"5s\"`, `history_meta_ttl = \"10s\"`). The API's `broadcast` sends 4 KiB \
payloads to 100 channels per call from 8 concurrent callers, round-robin over every channel, \
until 10 GiB of payload has been delivered at full scale (2,621,500 publications; 1 % of that at \
smoke scale). Then the subscribers disconnect and the channels go idle. The same burst runs twice, on different channels: first as a warm-up, then measured. \
*Baseline* is the node's resident memory (VmRSS) once the warm-up has gone idle and RSS stayed \
within 1 % for 12 s (longer than the allocator's 10 s decay): an idle node that has served \
this traffic once, with its allocator's bookkeeping for that peak (which jemalloc never \
frees, about 1 % of the peak) included. A per-channel or per-connection leak grows with the \
second burst's new channels and fails the row; so does an allocator that keeps the peak \
resident (glibc's malloc did: 200 MiB after a smoke-scale burst), through the second \
criterion, at most 5 % of the peak above the fresh process's RSS. *Lost* = acknowledged publications \
the subscribers did not receive. Pass: lost 0, no delivery beyond what was acknowledged, /health \
200 throughout, connections and the node's `herald_history_streams` gauge at 0 within 30 s of \
the burst, RSS within 10 % of the baseline within 60 s after that, and at most 5 % of the \
peak kept. *Recovery time* = from \
the last stream being forgotten until RSS is back within 10 %.";

/// Bytes of each publication's payload.
const PAYLOAD: usize = 4096;
/// Channels each `broadcast` call publishes to.
const PER_CALL: usize = 100;
const CALLERS: usize = 8;
const CHANNELS_PER_CONNECTION: usize = 1000;
/// How far above its baseline the node's memory may stay.
const TOLERANCE: f64 = 0.10;
/// How much of a burst's peak (above the fresh process) may stay resident:
/// the allocator keeps its bookkeeping for the peak's pages (about 1 %),
/// while an allocator that kept the peak itself keeps nearly 100 %.
const KEPT_OF_PEAK: f64 = 0.05;
/// How long RSS may take to come back once the node is idle.
const RETURN_WAIT: Duration = Duration::from_secs(60);
/// Longest from a burst's end until its subscribers left and its streams
/// were forgotten (history 5 s, positions 10 s, sweeps every 2 s).
const IDLE_WAIT: Duration = Duration::from_secs(30);
/// RSS is settled when it stayed within 1 % for this long.
const SETTLE_SPAN: Duration = Duration::from_secs(12);
const SETTLE_SAMPLES: usize = (SETTLE_SPAN.as_millis() / SAMPLE_EVERY.as_millis()) as usize;
const DELIVERY_WAIT: Duration = Duration::from_secs(60);
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// The churn's size at a scale: connections, and broadcast calls.
fn size(scale: &str) -> (usize, u64) {
    match scale {
        "full" => (100, 26_215),
        _ => (10, 263),
    }
}

pub async fn run(ctx: &Ctx<'_>) -> Result<Row> {
    let spec = Spec {
        name: "churn".into(),
        storage: Storage::None,
        broker: Broker::Memory,
        // A subscriber on 1,000 channels gets bursts of 4 KiB publications;
        // the default 4 MiB queue would count it slow during a burst.
        client: "channel_limit = 1000\nqueue_max_bytes = 67108864",
        fd_limit: None,
    };
    let node = Node::start(ctx.binary, &ctx.dir, spec).await?;
    let outcome = drive(ctx, &node).await;
    node.finish(outcome).await
}

/// What one burst did.
struct Burst {
    channels: usize,
    /// The node's highest RSS while it ran, in KiB.
    peak: u64,
    acknowledged: u64,
    delivered: u64,
    took: Duration,
}

/// Subscribes `connections` × [`CHANNELS_PER_CONNECTION`] channels named
/// `churn:<round>-<i>-<k>`, makes `calls` broadcasts over them, waits for
/// every delivery, and disconnects.
async fn burst(node: &Node, round: &str, connections: usize, calls: u64) -> Result<Burst> {
    let channels: Arc<Vec<String>> = Arc::new(
        (0..connections)
            .flat_map(|i| {
                (0..CHANNELS_PER_CONNECTION).map(move |k| format!("churn:{round}-{i}-{k}"))
            })
            .collect(),
    );
    let stats = Stats::new();
    let mut pool = Pool::default();
    let endpoint = Arc::new(Endpoint {
        kind: Kind::Herald,
        addr: format!("127.0.0.1:{}", node.port).parse()?,
        api_key: node::API_KEY.into(),
    });
    let rooms = {
        let channels = channels.clone();
        Arc::new(move |i: usize| {
            channels[i * CHANNELS_PER_CONNECTION..(i + 1) * CHANNELS_PER_CONNECTION].to_vec()
        })
    };
    let tokens = Some(Arc::new(crate::peers::herald::tokens(connections)?));
    let label = format!("churn {round} subscribers");
    let endpoints = [endpoint];
    let concurrency = connections.min(16);
    loadgen::connect(
        &mut pool,
        &endpoints,
        0,
        connections,
        concurrency,
        rooms,
        tokens,
        &stats,
        &label,
    )
    .await;
    if pool.failed > 0 {
        return Err(format!("{} subscribers failed: {:?}", pool.failed, pool.first_error).into());
    }
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = sample_peak(node.pid(), peak.clone());
    let began = Instant::now();
    let acknowledged = broadcast(node, &channels, calls, stats.clone()).await?;
    wait_until_async(DELIVERY_WAIT, || {
        std::future::ready(stats.delivered() >= acknowledged)
    })
    .await;
    sampler.abort();
    let burst = Burst {
        channels: channels.len(),
        peak: peak.load(Ordering::Relaxed),
        acknowledged,
        delivered: stats.delivered(),
        took: began.elapsed(),
    };
    eprintln!(
        "  {round}: {} acknowledged, {} delivered in {:.1?}; RSS {} MiB",
        grouped(burst.acknowledged),
        grouped(burst.delivered),
        burst.took,
        mib(node.rss_kib())
    );
    Ok(burst)
}

/// Once every subscriber left and every stream was forgotten: when that was.
/// The streams gauge is set by the node's sweep every 2 s, so it is first
/// seen counting the burst's streams, lest a reading from before it pass.
async fn gone_idle(http: &reqwest::Client, node: &Node) -> Option<Instant> {
    wait_until_async(IDLE_WAIT, || async {
        metric(http, node, "herald_history_streams").await > Some(0)
    })
    .await?;
    wait_until_async(IDLE_WAIT, || async {
        metric(http, node, "herald_connections").await == Some(0)
            && metric(http, node, "herald_history_streams").await == Some(0)
    })
    .await
}

/// RSS once it stopped changing: within 1 % over [`SETTLE_SPAN`], longer
/// than the allocator's decay time (10 s), after which freed pages are back
/// with the OS.
async fn settled_rss(node: &Node) -> u64 {
    let deadline = Instant::now() + RETURN_WAIT;
    let mut samples = std::collections::VecDeque::new();
    loop {
        samples.push_back(node.rss_kib());
        if samples.len() > SETTLE_SAMPLES {
            samples.pop_front();
        }
        let (low, high) = samples
            .iter()
            .fold((u64::MAX, 0), |(l, h), &s| (l.min(s), h.max(s)));
        let steady = samples.len() == SETTLE_SAMPLES && high as f64 <= low as f64 * 1.01;
        if steady || Instant::now() > deadline {
            return *samples.back().expect("sampled above");
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

async fn drive(ctx: &Ctx<'_>, node: &Node) -> Result<Row> {
    let mut row = Row {
        scenario: "churn",
        in_history: "at most 2 per channel while live; 0 streams once idle".into(),
        ..Row::default()
    };
    let health = HealthWatch::start(node.base());
    let http = reqwest::Client::new();
    let fresh = node.rss_kib();
    let (connections, calls) = size(ctx.scale.name);
    let warm_up = burst(node, "warm-up", connections, calls).await?;
    gone_idle(&http, node)
        .await
        .ok_or("the warm-up's channels did not go idle")?;
    let baseline = settled_rss(node).await;

    let began = Instant::now();
    let measured = burst(node, "burst", connections, calls).await?;
    let idle = gone_idle(&http, node).await;
    let limit = (baseline as f64 * (1.0 + TOLERANCE)) as u64;
    let returned = match idle {
        Some(_) => {
            wait_until_async(RETURN_WAIT, || std::future::ready(node.rss_kib() <= limit)).await
        }
        None => None,
    };
    let settled = node.rss_kib();
    let peak = measured.peak;
    // What the process kept of its peak, beyond the fresh process.
    let kept = settled.saturating_sub(fresh) as f64 / peak.saturating_sub(fresh).max(1) as f64;
    let streams = metric(&http, node, "herald_history_streams").await;

    row.acknowledged = measured.acknowledged;
    row.lost = measured.acknowledged.saturating_sub(measured.delivered);
    row.duplicates = measured.delivered.saturating_sub(measured.acknowledged);
    row.delivered = format!(
        "{} of {} to {} subscriptions ({:.2} GiB of payload) in {:.1?}",
        grouped(measured.delivered),
        grouped(measured.acknowledged),
        grouped(measured.channels as u64),
        (measured.delivered * PAYLOAD as u64) as f64 / (1u64 << 30) as f64,
        measured.took
    );
    let growth = 100.0 * (settled as f64 / baseline.max(1) as f64 - 1.0);
    row.recovery = format!(
        "RSS {} MiB fresh, {} MiB after the warm-up ({} MiB peak), {} MiB at this burst's peak, \
         {} MiB ({growth:+.1} %, {:.1} % of the peak kept) {}",
        mib(fresh),
        mib(baseline),
        mib(warm_up.peak),
        mib(peak),
        mib(settled),
        100.0 * kept,
        match (idle, returned) {
            (Some(idle), Some(at)) => format!(
                "{} after the last stream was forgotten ({} after the burst)",
                secs(at - idle),
                secs(at - began - measured.took)
            ),
            _ => format!(
                "**still above +10 % {} after the burst**",
                secs(began.elapsed() - measured.took)
            ),
        }
    );
    let unhealthy = health.failures_between(began, Instant::now());
    row.health = format!("{unhealthy} polls not 200 during the run");
    let (lost, beyond) = (row.lost, row.duplicates);
    row.require(lost == 0, || format!("{lost} publications lost"));
    row.require(beyond == 0, || {
        format!("{beyond} deliveries beyond the acknowledged")
    });
    row.require(idle.is_some(), || {
        format!("connections or streams not at 0 within {IDLE_WAIT:?}: {streams:?} streams")
    });
    row.require(returned.is_some(), || {
        format!(
            "memory did not return within {RETURN_WAIT:?}: {} MiB against {} MiB",
            mib(settled),
            mib(baseline)
        )
    });
    row.require(kept <= KEPT_OF_PEAK, || {
        format!(
            "the process kept {:.1} % of its peak above the fresh process's RSS",
            100.0 * kept
        )
    });
    row.require(unhealthy == 0, || {
        format!("{unhealthy} /health polls not 200")
    });
    Ok(row)
}

/// Makes `calls` broadcast calls from [`CALLERS`] tasks, each to the next
/// [`PER_CALL`] channels round-robin; returns how many publications were
/// acknowledged (a call's per-channel answers that carry a result).
async fn broadcast(
    node: &Node,
    channels: &Arc<Vec<String>>,
    calls: u64,
    stats: Arc<Stats>,
) -> Result<u64> {
    let acked = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("{}/api/broadcast", node.base());
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..CALLERS {
        let (acked, next, http, url, channels) = (
            acked.clone(),
            next.clone(),
            http.clone(),
            url.clone(),
            channels.clone(),
        );
        callers.spawn(async move {
            loop {
                let call = next.fetch_add(1, Ordering::Relaxed);
                if call >= calls {
                    return Ok::<(), String>(());
                }
                let first = (call as usize * PER_CALL) % channels.len();
                let targets = &channels[first..(first + PER_CALL).min(channels.len())];
                let mut data = format!("@@{}@@", loadgen::now_us());
                data.extend(std::iter::repeat_n('x', PAYLOAD - data.len()));
                let body = json!({"channels": targets, "data": data}).to_string();
                let answer: Value = http
                    .post(&url)
                    .header("X-API-Key", node::API_KEY)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                let responses = answer["result"]["responses"].as_array();
                let ok =
                    responses.map_or(0, |r| r.iter().filter(|r| r["result"].is_object()).count());
                if ok != targets.len() {
                    return Err(format!("broadcast {call}: {answer}"));
                }
                acked.fetch_add(ok as u64, Ordering::Relaxed);
            }
        });
    }
    let progress = tokio::spawn({
        let acked = acked.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "    churn: {} acknowledged, {} delivered",
                    grouped(acked.load(Ordering::Relaxed)),
                    grouped(stats.delivered())
                );
            }
        }
    });
    let mut failure = None;
    while let Some(done) = callers.join_next().await {
        if let Ok(Err(e)) | Err(e) = done.map_err(|e| e.to_string()) {
            failure.get_or_insert(e);
        }
    }
    progress.abort();
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(acked.load(Ordering::Relaxed)),
    }
}

/// Records the highest RSS of `pid` until aborted.
fn sample_peak(pid: Option<u32>, peak: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Some(pid) = pid {
                peak.fetch_max(crate::procs::rss_kib(pid), Ordering::Relaxed);
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    })
}

/// A node's unlabelled series `name` from `/metrics`.
async fn metric(http: &reqwest::Client, node: &Node, name: &str) -> Option<u64> {
    let text = http
        .get(format!("{}/metrics", node.base()))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    crate::report::gauge(&text, name)
}

/// When `done` first held, polling until `limit` has passed.
async fn wait_until_async<F: std::future::Future<Output = bool>>(
    limit: Duration,
    done: impl Fn() -> F,
) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if done().await {
            return Some(Instant::now());
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}
