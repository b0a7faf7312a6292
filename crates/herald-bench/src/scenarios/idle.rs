//! Idle memory and the connect storm, on one fresh process per system:
//! connections are opened in steps (each connection completes its handshake
//! and joins one shared room, herald's connect carrying a JWT), and after each
//! step settles, the server's RSS growth over its idle RSS is divided by the
//! open connections. The connect rate over all steps is the storm.

use super::{Ctx, loadgen_cpu, missing_row, rate, ratio};
use crate::Result;
use crate::loadgen::{self, Pool, Stats};
use crate::peers::{Kind, Peer};
use crate::procs::{CpuUse, CpuWindow};
use crate::report::grouped;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub struct Step {
    pub target: usize,
    pub open: usize,
    pub per_conn_kib: f64,
}

pub struct Idle {
    pub base_kib: u64,
    pub steps: Vec<Step>,
    pub attempted: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub connect_time: Duration,
    pub cpu: CpuUse,
}

impl Idle {
    pub fn connects_per_s(&self) -> f64 {
        (self.attempted - self.failed) as f64 / self.connect_time.as_secs_f64().max(1e-6)
    }

    /// KiB per connection at the largest step.
    pub fn last_per_conn(&self) -> Option<f64> {
        self.steps.last().map(|s| s.per_conn_kib)
    }
}

pub async fn run(kind: Kind, ctx: &Ctx<'_>) -> Result<Idle> {
    let peer = Peer::start(kind, ctx.paths).await?;
    let outcome = measure(&peer, ctx).await;
    peer.finish(outcome).await
}

async fn measure(peer: &Peer, ctx: &Ctx<'_>) -> Result<Idle> {
    let scale = ctx.scale;
    let kind = peer.endpoint.kind;
    let max = scale.idle_steps.iter().copied().max().unwrap_or(0);
    let tokens = super::tokens(kind, max)?;
    tokio::time::sleep(scale.settle).await;
    let base_kib = peer.rss_kib();
    let stats = Stats::new();
    let mut pool = Pool::default();
    let rooms: Arc<dyn Fn(usize) -> Vec<String> + Send + Sync> =
        Arc::new(|_| vec!["lobby".to_string()]);
    let (mut steps, mut attempted, mut time, mut cpu_secs) = (Vec::new(), 0, Duration::ZERO, 0.0);
    for &target in &scale.idle_steps {
        let count = target.saturating_sub(attempted);
        let label = format!("{} connect storm to {target}", kind.id());
        let cpu = CpuWindow::start(peer.cpu_ticks());
        let took = loadgen::connect(
            &mut pool,
            std::slice::from_ref(&peer.endpoint),
            attempted,
            count,
            scale.concurrency,
            rooms.clone(),
            tokens.clone(),
            &stats,
            &label,
        )
        .await;
        cpu_secs += cpu.finish(peer.cpu_ticks()).loadgen * took.as_secs_f64();
        attempted = target;
        time += took;
        tokio::time::sleep(scale.settle).await;
        let open = pool.len() - stats.closed.load(Ordering::Relaxed) as usize;
        let rss_kib = peer.rss_kib();
        let per_conn_kib = rss_kib.saturating_sub(base_kib) as f64 / open.max(1) as f64;
        eprintln!(
            "  {} idle: {open} open, RSS {} KiB (idle {base_kib} KiB): {per_conn_kib:.1} KiB/connection",
            kind.id(),
            grouped(rss_kib)
        );
        steps.push(Step {
            target,
            open,
            per_conn_kib,
        });
    }
    if pool.len() == 0 {
        return Err(format!("no connection opened: {:?}", pool.first_error).into());
    }
    Ok(Idle {
        base_kib,
        steps,
        attempted,
        failed: pool.failed,
        first_error: pool.first_error.clone(),
        connect_time: time,
        cpu: CpuUse {
            loadgen: cpu_secs / time.as_secs_f64().max(1e-6),
            ..CpuUse::default()
        },
    })
}

/// Memory targets for herald: at most 8 KiB per connection, and at most half
/// of the leanest other system's.
pub fn memory_table(
    steps: &[usize],
    results: &[(Kind, std::result::Result<Idle, String>)],
) -> String {
    let mut out = String::from("| System | Idle RSS |");
    for s in steps {
        out.push_str(&format!(" KiB/conn at {} |", grouped(*s as u64)));
    }
    out.push_str(" Herald ÷ system (last step, lower is better) |\n|---|---:|");
    for _ in steps {
        out.push_str("---:|");
    }
    out.push_str("---:|\n");
    let herald = results
        .iter()
        .find_map(|(k, r)| {
            (*k == Kind::Herald).then(|| r.as_ref().ok().and_then(Idle::last_per_conn))
        })
        .flatten();
    for (kind, result) in results {
        let idle = match result {
            Ok(idle) => idle,
            Err(e) => {
                out.push_str(&missing_row(*kind, e, steps.len() + 3));
                continue;
            }
        };
        out.push_str(&format!(
            "| {} | {:.1} MiB |",
            kind.label(),
            idle.base_kib as f64 / 1024.0
        ));
        for step in &idle.steps {
            let mut cell = format!(" {:.1}", step.per_conn_kib);
            if step.open < step.target {
                cell.push_str(&format!(" ({} open)", grouped(step.open as u64)));
            }
            out.push_str(&cell);
            out.push_str(" |");
        }
        let last = idle.last_per_conn().unwrap_or(0.0);
        let share = match herald {
            Some(h) if last > 0.0 => format!("{:.2}×", h / last),
            _ => "n/a".into(),
        };
        out.push_str(&format!(" {share} |\n"));
    }
    out
}

pub fn storm_table(results: &[(Kind, std::result::Result<Idle, String>)]) -> String {
    let herald = results
        .iter()
        .find_map(|(k, r)| (*k == Kind::Herald).then(|| r.as_ref().ok().map(Idle::connects_per_s)))
        .flatten();
    let mut out = String::from(
        "| System | Connections | Failed | Connects/s | Herald ÷ system | Loadgen CPU |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for (kind, result) in results {
        let idle = match result {
            Ok(idle) => idle,
            Err(e) => {
                out.push_str(&missing_row(*kind, e, 6));
                continue;
            }
        };
        let mut failed = grouped(idle.failed as u64);
        if let Some(e) = &idle.first_error {
            let e: String = e.chars().take(80).collect();
            failed.push_str(&format!(" (first: {})", e.replace('|', "/")));
        }
        out.push_str(&format!(
            "| {} | {} | {failed} | {} | {} | {} |\n",
            kind.label(),
            grouped(idle.attempted as u64),
            rate(idle.connects_per_s()),
            ratio(herald, idle.connects_per_s()),
            loadgen_cpu(&idle.cpu),
        ));
    }
    out
}
