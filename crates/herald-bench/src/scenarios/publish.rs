//! The publish API: publications per second over HTTP to a channel with no
//! subscribers, from concurrent publishers each awaiting its answer; herald
//! and sockudo also in batches (herald `POST /api/batch`, sockudo the Pusher
//! `batch_events`; systems without a batch API: n/a).

use super::{Ctx, loadgen_cpu, missing_row, rate, ratio, server_cpu};
use crate::Result;
use crate::peers::{Kind, Peer};
use crate::procs::{CpuUse, CpuWindow};
use crate::publishers::{self, Driver};
use std::time::{Duration, Instant};

/// Publications per request in the batch run.
pub const BATCH: usize = 100;

pub struct Publish {
    pub single: f64,
    pub single_cpu: CpuUse,
    pub batch: Option<f64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

pub async fn run(kind: Kind, ctx: &Ctx<'_>) -> Result<Publish> {
    let peer = Peer::start(kind, ctx.paths).await?;
    let scale = ctx.scale;
    let single = publishers::flat_out(&peer.endpoint, "quiet", None, scale.publishers);
    let (single, single_cpu, mut errors, mut first_error) =
        measure(&peer, single, scale.publish_time).await;
    eprintln!(
        "  {} publish API: {} publications/s",
        kind.id(),
        rate(single)
    );
    let batch = if kind.has_batch() {
        let driver = publishers::flat_out(&peer.endpoint, "quiet", Some(BATCH), scale.publishers);
        let (batch, _, e, first) = measure(&peer, driver, scale.publish_time).await;
        eprintln!(
            "  {} publish API, batches of {BATCH}: {} publications/s",
            kind.id(),
            rate(batch)
        );
        errors += e;
        first_error = first_error.or(first);
        Some(batch)
    } else {
        None
    };
    peer.stop().await;
    if single <= 0.0 {
        return Err(format!("no publish succeeded: {first_error:?}").into());
    }
    Ok(Publish {
        single,
        single_cpu,
        batch,
        errors,
        first_error,
    })
}

async fn measure(
    peer: &Peer,
    driver: Driver,
    span: Duration,
) -> (f64, CpuUse, u64, Option<String>) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (p0, cpu, started) = (
        driver.published(),
        CpuWindow::start(peer.cpu_ticks()),
        Instant::now(),
    );
    tokio::time::sleep(span).await;
    let (p1, elapsed) = (driver.published(), started.elapsed());
    let cpu = cpu.finish(peer.cpu_ticks());
    let errors = driver.errors();
    let first = driver.stop().await;
    ((p1 - p0) as f64 / elapsed.as_secs_f64(), cpu, errors, first)
}

pub fn table(results: &[(Kind, std::result::Result<Publish, String>)]) -> String {
    let herald = results
        .iter()
        .find_map(|(k, r)| (*k == Kind::Herald).then(|| r.as_ref().ok().map(|p| p.single)))
        .flatten();
    let mut out = format!(
        "| System | Publications/s (one per request) | Herald ÷ system | Publications/s (batches of {BATCH}) | \
         Errors | Loadgen CPU | Server CPU |\n|---|---:|---:|---:|---:|---:|---:|\n"
    );
    for (kind, result) in results {
        let p = match result {
            Ok(p) => p,
            Err(e) => {
                out.push_str(&missing_row(*kind, e, 7));
                continue;
            }
        };
        let batch = p.batch.map_or_else(|| "n/a (no batch API)".into(), rate);
        let mut errors = p.errors.to_string();
        if let Some(e) = &p.first_error {
            let e: String = e.chars().take(80).collect();
            errors.push_str(&format!(" (first: {})", e.replace('|', "/")));
        }
        out.push_str(&format!(
            "| {} | {} | {} | {batch} | {errors} | {} | {} |\n",
            kind.label(),
            rate(p.single),
            ratio(herald, p.single),
            loadgen_cpu(&p.single_cpu),
            server_cpu(&p.single_cpu),
        ));
    }
    out
}
