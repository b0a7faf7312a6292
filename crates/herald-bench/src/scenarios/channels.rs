//! Many channels: N connections, each in its own personal channel plus one
//! shared channel (Django Channels: the personal group only, one group per
//! WebSocket; the Rust baseline has no channels: n/a). Publications go to the
//! personal channels, round-robin, at a fixed rate.

use super::{Ctx, drain, loadgen_cpu, missing_row, ms, rate, server_cpu, watch};
use crate::Result;
use crate::loadgen::{self, Pool, Stats};
use crate::peers::{Kind, Peer, Rooms};
use crate::procs::{CpuUse, CpuWindow};
use crate::publishers;
use crate::report::grouped;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Channels {
    pub connections: usize,
    pub rooms_per_connection: usize,
    pub target_rate: f64,
    pub published: u64,
    pub delivered: u64,
    pub deliveries_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub cpu: CpuUse,
}

pub async fn run(kind: Kind, ctx: &Ctx<'_>) -> Result<Channels> {
    if kind.rooms() == Rooms::None {
        return Err("n/a: no channels (every client gets every message)".into());
    }
    let peer = Peer::start(kind, ctx.paths).await?;
    let outcome = measure(&peer, ctx).await;
    peer.finish(outcome).await
}

async fn measure(peer: &Peer, ctx: &Ctx<'_>) -> Result<Channels> {
    let (n, target_rate) = ctx.scale.channels;
    let kind = peer.endpoint.kind;
    let many = kind.rooms() == Rooms::Many;
    let rooms: Arc<dyn Fn(usize) -> Vec<String> + Send + Sync> = Arc::new(move |i| {
        let mut rooms = vec![format!("u{i}")];
        if many {
            rooms.push("all".into());
        }
        rooms
    });
    let stats = Stats::new();
    let mut pool = Pool::default();
    let tokens = super::tokens(kind, n)?;
    let label = format!("{} many-channels connect", kind.id());
    let ctx_scale = ctx.scale;
    loadgen::connect(
        &mut pool,
        std::slice::from_ref(&peer.endpoint),
        0,
        n,
        ctx_scale.concurrency,
        rooms,
        tokens,
        &stats,
        &label,
    )
    .await;
    if pool.failed > 0 {
        return Err(format!(
            "{} of {n} connections failed: {:?}",
            pool.failed, pool.first_error
        )
        .into());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let personal = Arc::new((0..n).map(|i| format!("u{i}")).collect::<Vec<_>>());
    let cpu = CpuWindow::start(peer.cpu_ticks());
    let started = Instant::now();
    let span = ctx_scale.measure;
    let driver = publishers::fixed_rate(
        std::slice::from_ref(&peer.endpoint),
        personal,
        target_rate,
        span,
        ctx_scale.publishers,
        None,
    );
    watch(&format!("{} many channels", kind.id()), &stats, span).await;
    while !driver.finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let published = driver.published();
    let cpu = cpu.finish(peer.cpu_ticks());
    driver.stop().await;
    let last = drain(
        &stats,
        Some(published),
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
    .await;
    let delivered = stats.delivered();
    let latency = stats.latency();
    let elapsed = last.saturating_duration_since(started).max(span);
    Ok(Channels {
        connections: pool.len(),
        rooms_per_connection: if many { 2 } else { 1 },
        target_rate,
        published,
        delivered,
        deliveries_per_s: delivered as f64 / elapsed.as_secs_f64(),
        p50_us: latency.value_at_quantile(0.50),
        p99_us: latency.value_at_quantile(0.99),
        cpu,
    })
}

pub fn table(results: &[(Kind, std::result::Result<Channels, String>)]) -> String {
    let mut out = String::from(
        "| System | Connections | Channels per connection | Publications/s asked | Published | \
         Delivered | Deliveries/s | p50 | p99 | Loadgen CPU | Server CPU |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (kind, result) in results {
        let c = match result {
            Ok(c) => c,
            Err(e) => {
                out.push_str(&missing_row(*kind, e, 11));
                continue;
            }
        };
        let delivered = if c.published == 0 {
            "0".to_string()
        } else {
            format!(
                "{} ({:.1}%)",
                grouped(c.delivered),
                100.0 * c.delivered as f64 / c.published as f64
            )
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {delivered} | {} | {} | {} | {} | {} |\n",
            kind.label(),
            grouped(c.connections as u64),
            c.rooms_per_connection,
            rate(c.target_rate),
            grouped(c.published),
            rate(c.deliveries_per_s),
            ms(c.p50_us),
            ms(c.p99_us),
            loadgen_cpu(&c.cpu),
            server_cpu(&c.cpu),
        ));
    }
    out
}
