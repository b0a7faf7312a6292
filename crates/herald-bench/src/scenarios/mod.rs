//! The side-by-side scenarios. Each runs one system in a fresh process and
//! returns raw numbers; `table` functions turn a scenario's numbers for every
//! system into a markdown table with ratios against herald.
//! - `fanout.rs`: one channel, many subscribers: max deliveries/s, then latency at 50 %;
//! - `idle.rs`: idle memory per connection, and the connect storm that opened them;
//! - `publish.rs`: server API publications/s, single and batched;
//! - `channels.rs`: a personal channel per connection, publishes at a fixed rate.

pub mod channels;
pub mod fanout;
pub mod idle;
pub mod publish;

use crate::loadgen::Stats;
use crate::peers::{Kind, Paths};
use crate::procs::CpuUse;
use crate::report::grouped;
use std::time::{Duration, Instant};

/// The counts and durations a `--scale` sets.
pub struct Scale {
    pub name: &'static str,
    pub fanout_subscribers: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub idle_steps: Vec<usize>,
    pub settle: Duration,
    pub publish_time: Duration,
    /// Connections and publications/s for the many-channels scenario.
    pub channels: (usize, f64),
    /// HTTP publishers running at once (publish API, fixed rates).
    pub publishers: usize,
    /// HTTP publishers trying to saturate fan-out.
    pub fanout_publishers: usize,
    /// Undelivered publications per subscriber the saturating publishers allow.
    pub window: u64,
    /// Handshakes in flight while connecting.
    pub concurrency: usize,
}

impl Scale {
    pub fn named(name: &str) -> Option<Scale> {
        let secs = Duration::from_secs_f64;
        let base = Scale {
            name: "smoke",
            fanout_subscribers: 200,
            warmup: secs(0.5),
            measure: secs(2.0),
            idle_steps: vec![250, 1_000],
            settle: secs(0.5),
            publish_time: secs(1.5),
            channels: (200, 200.0),
            publishers: 8,
            fanout_publishers: 32,
            window: 64,
            concurrency: 64,
        };
        match name {
            "smoke" => Some(base),
            "small" => Some(Scale {
                name: "small",
                fanout_subscribers: 1_000,
                warmup: secs(1.0),
                measure: secs(4.0),
                idle_steps: vec![1_000, 2_500, 5_000],
                settle: secs(1.0),
                publish_time: secs(3.0),
                channels: (1_000, 500.0),
                ..base
            }),
            "full" => Some(Scale {
                name: "full",
                fanout_subscribers: 10_000,
                warmup: secs(2.0),
                measure: secs(10.0),
                idle_steps: vec![1_000, 5_000, 10_000, 18_000],
                settle: secs(2.0),
                publish_time: secs(5.0),
                channels: (10_000, 2_000.0),
                concurrency: 128,
                ..base
            }),
            _ => None,
        }
    }
}

pub struct Ctx<'a> {
    pub paths: &'a Paths,
    pub scale: &'a Scale,
}

/// Herald connects with a signed JWT per user (so a connect storm includes
/// verifying it); the others have no tokens.
pub fn tokens(kind: Kind, count: usize) -> crate::Result<Option<std::sync::Arc<Vec<String>>>> {
    Ok(match kind {
        Kind::Herald => Some(std::sync::Arc::new(crate::peers::herald::tokens(count)?)),
        _ => None,
    })
}

/// Waits until `expected` deliveries arrived, or none arrived for `quiet`, or
/// `max` passed; returns when the last delivery was seen.
pub async fn drain(
    stats: &Stats,
    expected: Option<u64>,
    quiet: Duration,
    max: Duration,
) -> Instant {
    let started = Instant::now();
    let mut last = stats.delivered();
    let mut last_change = Instant::now();
    loop {
        if expected.is_some_and(|e| last >= e)
            || started.elapsed() > max
            || last_change.elapsed() > quiet
        {
            return last_change;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = stats.delivered();
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
}

/// Sleeps `span`, printing the delivery rate to stderr every 2 s.
pub async fn watch(label: &str, stats: &Stats, span: Duration) {
    let end = Instant::now() + span;
    let mut before = (Instant::now(), stats.delivered());
    while Instant::now() < end {
        let step = end
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(2));
        tokio::time::sleep(step).await;
        let now = (Instant::now(), stats.delivered());
        if span > Duration::from_secs(2) {
            let rate = (now.1 - before.1) as f64 / (now.0 - before.0).as_secs_f64().max(1e-3);
            eprintln!("    {label}: {} deliveries/s", grouped(rate as u64));
        }
        before = now;
    }
}

/// `12,345` for a rate.
pub fn rate(r: f64) -> String {
    grouped(r.round().max(0.0) as u64)
}

/// µs as milliseconds.
pub fn ms(us: u64) -> String {
    if us >= 100_000 {
        format!("{:.0} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} ms", us as f64 / 1000.0)
    }
}

/// The load generator's CPU, flagged when it saturates a core.
pub fn loadgen_cpu(cpu: &CpuUse) -> String {
    let pct = format!("{:.0}%", cpu.loadgen * 100.0);
    if cpu.loadgen_saturated() {
        format!("{pct} ⚠ saturated")
    } else {
        pct
    }
}

pub fn server_cpu(cpu: &CpuUse) -> String {
    format!("{:.0}%", cpu.server * 100.0)
}

/// herald ÷ peer, for a higher-is-better number.
pub fn ratio(herald: Option<f64>, peer: f64) -> String {
    match herald {
        Some(h) if peer > 0.0 => format!("{:.2}×", h / peer),
        _ => "n/a".into(),
    }
}

/// A table row for a system whose run failed or does not apply.
pub fn missing_row(kind: Kind, why: &str, columns: usize) -> String {
    let why = why.lines().next().unwrap_or_default().replace('|', "/");
    let mut row = format!("| {} | {why} |", kind.label());
    for _ in 2..columns {
        row.push_str(" |");
    }
    row.push('\n');
    row
}
