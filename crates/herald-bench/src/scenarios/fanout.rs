//! Fan-out: one channel, N subscribers, 100-byte publications from concurrent
//! HTTP publishers. First the maximum (publishers keep every subscriber's
//! backlog full), then a fixed rate at 50 % of that maximum for latency.

use super::{Ctx, drain, loadgen_cpu, missing_row, ms, rate, ratio, server_cpu, watch};
use crate::Result;
use crate::loadgen::{self, Pool, Stats};
use crate::order::Order;
use crate::peers::{Endpoint, Kind, Peer};
use crate::procs::{CpuUse, CpuWindow, Ticks};
use crate::publishers;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const ROOM: &str = "fan";

pub struct Fanout {
    pub subscribers: usize,
    pub failed: usize,
    /// Deliveries per second at the maximum.
    pub max_rate: f64,
    /// The undelivered backlog the publishers kept, as a share of the window
    /// (averaged): low means each publication was delivered before the next
    /// was accepted, so accepting publishes, not delivering them, set the pace.
    pub backlog: f64,
    pub max_cpu: CpuUse,
    pub publish_errors: u64,
    /// Publications per second of the 50 % run.
    pub half_publish_rate: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub half_expected: u64,
    pub half_delivered: u64,
    pub half_cpu: CpuUse,
    /// Connections the server closed during the runs.
    pub closed: u64,
}

pub async fn run(kind: Kind, ctx: &Ctx<'_>) -> Result<Fanout> {
    let mut peer = Peer::start(kind, ctx.paths).await?;
    let outcome = measure(&mut peer, ctx).await;
    peer.finish(outcome).await
}

/// What fan-out drives: one system's process, or several herald nodes.
pub trait Target {
    fn label(&self) -> String;
    /// Subscriber i connects to `endpoints[i % len]`, publisher i publishes to it.
    fn endpoints(&self) -> &[Arc<Endpoint>];
    fn ticks(&self) -> Ticks;
}

impl Target for Peer {
    fn label(&self) -> String {
        self.endpoint.kind.id().into()
    }

    fn endpoints(&self) -> &[Arc<Endpoint>] {
        std::slice::from_ref(&self.endpoint)
    }

    fn ticks(&self) -> Ticks {
        self.cpu_ticks().into()
    }
}

/// What the maximum run measured.
pub struct Max {
    pub rate: f64,
    pub backlog: f64,
    pub cpu: CpuUse,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Whether the backlog was delivered (or stopped arriving) in time.
    pub drained: bool,
}

/// What the run at a fixed share of the maximum measured.
pub struct Half {
    pub publish_rate: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub expected: u64,
    pub delivered: u64,
    pub cpu: CpuUse,
    pub errors: u64,
    pub first_error: Option<String>,
}

async fn measure(peer: &mut Peer, ctx: &Ctx<'_>) -> Result<Fanout> {
    let kind = peer.endpoint.kind;
    let (mut pool, mut stats) = subscribe(peer, ctx, None).await?;
    let (subscribers, failed) = (pool.len(), pool.failed);
    let max = maximum(peer, &stats, subscribers as u64, ctx).await?;
    let mut closed = stats.closed.load(Ordering::Relaxed);
    if !max.drained {
        eprintln!(
            "  {}: backlog not delivered: a fresh process for the 50% run",
            kind.id()
        );
        drop(pool);
        let fresh = Peer::start(kind, ctx.paths).await?;
        std::mem::replace(peer, fresh).stop().await;
        (pool, stats) = subscribe(peer, ctx, None).await?;
    }
    let rate = 0.5 * max.rate / subscribers as f64;
    let half = at_rate(peer, &stats, pool.len() as u64, rate, ctx).await;
    closed += stats.closed.load(Ordering::Relaxed);
    Ok(Fanout {
        subscribers,
        failed,
        max_rate: max.rate,
        backlog: max.backlog,
        max_cpu: max.cpu,
        publish_errors: max.errors,
        half_publish_rate: half.publish_rate,
        p50_us: half.p50_us,
        p99_us: half.p99_us,
        half_expected: half.expected,
        half_delivered: half.delivered,
        half_cpu: half.cpu,
        closed,
    })
}

/// `publish_rate` publications/s for the scale's measuring span, then the
/// wait for their deliveries: the latency run.
pub async fn at_rate(
    target: &dyn Target,
    stats: &Arc<Stats>,
    fanout: u64,
    publish_rate: f64,
    ctx: &Ctx<'_>,
) -> Half {
    stats.reset_latency();
    let d0 = stats.delivered();
    let cpu = CpuWindow::start(target.ticks());
    let rooms = Arc::new(vec![ROOM.to_string()]);
    let span = ctx.scale.measure;
    let driver = publishers::fixed_rate(
        target.endpoints(),
        rooms,
        publish_rate,
        span,
        ctx.scale.publishers,
        stats.order.clone(),
    );
    watch(&format!("{} fan-out at 50%", target.label()), stats, span).await;
    while !driver.finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let published = driver.published();
    let errors = driver.errors();
    let cpu = cpu.finish(target.ticks());
    let first_error = driver.stop().await;
    let expected = published * fanout;
    drain(
        stats,
        Some(d0 + expected),
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
    .await;
    let latency = stats.latency();
    Half {
        publish_rate,
        p50_us: latency.value_at_quantile(0.50),
        p99_us: latency.value_at_quantile(0.99),
        expected,
        delivered: stats.delivered() - d0,
        cpu,
        errors,
        first_error,
    }
}

/// The scale's subscribers, all in the one room, round-robin over the
/// target's endpoints; with `order`, each checks what it receives.
pub async fn subscribe(
    target: &dyn Target,
    ctx: &Ctx<'_>,
    order: Option<Arc<Order>>,
) -> Result<(Pool, Arc<Stats>)> {
    let endpoints = target.endpoints();
    let n = ctx.scale.fanout_subscribers;
    let stats = Stats::with_order(order);
    let mut pool = Pool::default();
    let rooms: Arc<dyn Fn(usize) -> Vec<String> + Send + Sync> =
        Arc::new(|_| vec![ROOM.to_string()]);
    let label = format!("{} fan-out connect", target.label());
    let tokens = super::tokens(endpoints[0].kind, n)?;
    let concurrency = ctx.scale.concurrency;
    loadgen::connect(
        &mut pool,
        endpoints,
        0,
        n,
        concurrency,
        rooms,
        tokens,
        &stats,
        &label,
    )
    .await;
    if pool.len() == 0 {
        return Err(format!("no subscriber connected: {:?}", pool.first_error).into());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok((pool, stats))
}

/// Publishers keep up to `window` publications per subscriber undelivered.
pub async fn maximum(
    target: &dyn Target,
    stats: &Arc<Stats>,
    fanout: u64,
    ctx: &Ctx<'_>,
) -> Result<Max> {
    let scale = ctx.scale;
    let label = target.label();
    let window = scale.window;
    let before = stats.delivered();
    let driver = publishers::saturating(
        target.endpoints(),
        ROOM,
        fanout,
        window,
        stats,
        scale.fanout_publishers,
    );
    watch(&format!("{label} warm-up"), stats, scale.warmup).await;
    let (d0, cpu, p0) = (
        stats.delivered(),
        CpuWindow::start(target.ticks()),
        driver.published(),
    );
    let started = Instant::now();
    let (mut backlog_sum, mut samples) = (0.0, 0u32);
    while started.elapsed() < scale.measure {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = (driver.published() - p0) * fanout;
        let delivered = stats.delivered() - d0;
        backlog_sum += sent.saturating_sub(delivered) as f64 / (window * fanout) as f64;
        samples += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (d1, cpu) = (stats.delivered(), cpu.finish(target.ticks()));
    let errors = driver.errors();
    let published = driver.published.clone();
    let first_error = driver.stop().await;
    let per_s = (d1 - d0) as f64 / elapsed;
    if per_s <= 0.0 {
        return Err(
            format!("nothing delivered at the maximum; publish errors: {first_error:?}").into(),
        );
    }
    // Every answered publication must reach every subscriber before the 50% run.
    let expected = before + published.load(Ordering::Relaxed) * fanout;
    drain(
        stats,
        Some(expected),
        Duration::from_secs(3),
        Duration::from_secs(15),
    )
    .await;
    let backlog = backlog_sum / f64::from(samples.max(1));
    eprintln!(
        "  {label} fan-out max: {} deliveries/s to {fanout} subscribers (backlog {:.0}% of the window)",
        rate(per_s),
        backlog * 100.0
    );
    Ok(Max {
        rate: per_s,
        backlog,
        cpu,
        errors,
        first_error,
        drained: stats.delivered() >= expected,
    })
}

/// Herald must deliver at least this many times each system's rate.
pub fn target(kind: Kind) -> Option<f64> {
    match kind {
        Kind::Herald => None,
        Kind::Baseline => Some(1.0),
        Kind::Sockudo => Some(4.0),
        Kind::SocketIo => Some(6.0),
        Kind::Django => Some(100.0),
    }
}

/// A publication rate: one decimal below 100/s.
fn per_second(r: f64) -> String {
    if r < 100.0 {
        format!("{r:.1}")
    } else {
        rate(r)
    }
}

pub fn table(results: &[(Kind, std::result::Result<Fanout, String>)]) -> String {
    let herald = results
        .iter()
        .find_map(|(k, r)| (*k == Kind::Herald).then(|| r.as_ref().ok().map(|f| f.max_rate)))
        .flatten();
    let mut out = String::from(
        "| System | Subscribers | Max deliveries/s | Herald ÷ system | Target | Backlog kept | \
         Loadgen CPU at max | Server CPU at max | Publications/s at 50% | p50 at 50% | p99 at 50% | \
         Delivered at 50% | Loadgen CPU at 50% |\n\
         |---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (kind, result) in results {
        let f = match result {
            Ok(f) => f,
            Err(e) => {
                out.push_str(&missing_row(*kind, e, 13));
                continue;
            }
        };
        let verdict = match (target(*kind), herald) {
            (Some(t), Some(h)) => {
                let met = if h / f.max_rate >= t {
                    "met"
                } else {
                    "**not met**"
                };
                format!("≥ {t}×: {met}")
            }
            _ => "".into(),
        };
        let mut subscribers = crate::report::grouped(f.subscribers as u64);
        if f.failed > 0 {
            subscribers.push_str(&format!(" ({} failed)", f.failed));
        }
        if f.closed > 0 {
            subscribers.push_str(&format!(" ({} closed by the server)", f.closed));
        }
        let mut max = rate(f.max_rate);
        if f.publish_errors > 0 {
            max.push_str(&format!(" ({} publish errors)", f.publish_errors));
        }
        let delivered = if f.half_expected == 0 {
            "n/a".to_string()
        } else {
            format!(
                "{:.1}%",
                100.0 * f.half_delivered as f64 / f.half_expected as f64
            )
        };
        out.push_str(&format!(
            "| {} | {subscribers} | {max} | {} | {verdict} | {:.0}% | {} | {} | {} | {} | {} | {delivered} | {} |\n",
            kind.label(),
            ratio(herald, f.max_rate),
            f.backlog * 100.0,
            loadgen_cpu(&f.max_cpu),
            server_cpu(&f.max_cpu),
            per_second(f.half_publish_rate),
            ms(f.p50_us),
            ms(f.p99_us),
            loadgen_cpu(&f.half_cpu),
        ));
    }
    out
}
