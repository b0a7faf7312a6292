//! `chaos`: failures injected into running herald nodes under steady load.
//! Each scenario starts its own processes (herald release binaries, Redis,
//! PostgreSQL), loads them, injects one failure, lets them recover, and ends
//! in one row that counts what was acknowledged, delivered, kept in history
//! and lost. A row that lost an acknowledged message or broke its own pass
//! criterion fails the run, after the table is printed and written.
//!
//! - `chaos/node.rs`: a herald process that can be killed and restarted on
//!   the same port and data, and the `/health` watcher;
//! - `chaos/traffic.rs`: paced API callers that keep every acknowledged
//!   answer, the history read and check, and the check of what a subscriber
//!   received;
//! - `chaos/subscriber.rs`: a subscriber that reconnects and recovers as the
//!   SDKs do;
//! - `chaos/fleet.rs`: nodes, subscribers and callers of a publication
//!   scenario, started, loaded and counted the same way each time;
//! - one file per scenario: `kill9.rs` (SQLite and PostgreSQL),
//!   `redis_restart.rs`, `cluster_failover.rs`, `pg_restart_apps.rs` (with
//!   `postgres.rs`, a PostgreSQL server of its own to crash), `redis_proxy.rs`
//!   (with `proxy.rs`, a TCP proxy that blackholes or delays), `reconnect.rs`,
//!   `stalled.rs`, `fd_storm.rs`, `churn.rs`.

mod churn;
mod cluster_failover;
mod fd_storm;
mod fleet;
mod kill9;
mod node;
mod pg_restart_apps;
mod postgres;
mod proxy;
mod reconnect;
mod redis_proxy;
mod redis_restart;
mod stalled;
mod subscriber;
mod traffic;

use crate::{Result, report, suite};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use subscriber::Received;
use traffic::{Ack, History};

const HEADING: &str = "## Chaos";

#[derive(clap::Args)]
pub struct Args {
    /// Scenarios to run (repeat or comma-separate); default all.
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<String>,
    /// smoke (seconds each, a quick check) or full (the figures for the doc).
    #[arg(long, default_value = "smoke")]
    scale: String,
    /// Print the table only; leave the document alone.
    #[arg(long)]
    no_doc: bool,
    /// The document whose `## Chaos` section is replaced.
    #[arg(long, default_value_os_t = default_doc_path())]
    doc_path: PathBuf,
    /// Skip `cargo build --release -p herald-server` before running.
    #[arg(long)]
    no_build: bool,
}

fn default_doc_path() -> PathBuf {
    report::default_doc_path().with_file_name("reliability.md")
}

/// How long and how hard each scenario loads its nodes.
pub struct Scale {
    pub name: &'static str,
    /// API calls per second, over all callers.
    pub rate: f64,
    pub callers: usize,
    /// Load before the failure is injected.
    pub before: Duration,
    /// How long an injected outage lasts (a dependency down, a proxy stalled).
    pub outage: Duration,
    /// Load after recovery, before the final checks.
    pub after: Duration,
}

impl Scale {
    fn named(name: &str) -> Option<Scale> {
        match name {
            "smoke" => Some(Scale {
                name: "smoke",
                rate: 200.0,
                callers: 4,
                before: Duration::from_secs(2),
                outage: Duration::from_secs(1),
                after: Duration::from_secs(2),
            }),
            "full" => Some(Scale {
                name: "full",
                rate: 1_000.0,
                callers: 16,
                before: Duration::from_secs(10),
                outage: Duration::from_secs(3),
                after: Duration::from_secs(10),
            }),
            _ => None,
        }
    }

    /// Calls expected in `span` at this rate.
    pub fn calls_in(&self, span: Duration) -> u64 {
        (self.rate * span.as_secs_f64()) as u64
    }
}

/// What every scenario gets.
pub struct Ctx<'a> {
    pub binary: &'a Path,
    pub scale: &'a Scale,
    /// A fresh directory for this scenario's processes.
    pub dir: PathBuf,
}

/// One row of the table.
#[derive(Default)]
pub struct Row {
    pub scenario: &'static str,
    pub acknowledged: u64,
    pub delivered: String,
    pub in_history: String,
    pub lost: u64,
    pub duplicates: u64,
    pub recovery: String,
    pub health: String,
    /// Broken pass criteria; empty means the row passed.
    pub failures: Vec<String>,
}

impl Row {
    fn verdict(&self) -> String {
        match self.failures.first() {
            None => "pass".into(),
            Some(first) => {
                let first = first.lines().next().unwrap_or_default().replace('|', "/");
                format!("**FAIL**: {first}")
            }
        }
    }

    /// Fails the row unless `ok`.
    pub fn require(&mut self, ok: bool, why: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(why());
        }
    }
}

type Run = for<'a> fn(&'a Ctx<'a>) -> futures_util::future::BoxFuture<'a, Result<Row>>;

/// Every scenario, in the order they run: name, what the section says about
/// it, and the function that runs it.
const SCENARIOS: &[(&str, &str, Run)] = &[
    ("kill9-sqlite", kill9::ABOUT_SQLITE, |c| {
        Box::pin(kill9::sqlite(c))
    }),
    ("kill9-postgres", kill9::ABOUT_POSTGRES, |c| {
        Box::pin(kill9::postgres(c))
    }),
    ("redis-restart", redis_restart::ABOUT, |c| {
        Box::pin(redis_restart::run(c))
    }),
    ("redis-cluster-failover", cluster_failover::ABOUT, |c| {
        Box::pin(cluster_failover::run(c))
    }),
    ("postgres-restart-apps", pg_restart_apps::ABOUT, |c| {
        Box::pin(pg_restart_apps::run(c))
    }),
    ("redis-blackhole", redis_proxy::ABOUT_BLACKHOLE, |c| {
        Box::pin(redis_proxy::blackhole(c))
    }),
    ("redis-latency", redis_proxy::ABOUT_LATENCY, |c| {
        Box::pin(redis_proxy::latency(c))
    }),
    ("reconnect-100", reconnect::ABOUT, |c| {
        Box::pin(reconnect::run(c))
    }),
    ("stalled-reader", stalled::ABOUT, |c| {
        Box::pin(stalled::run(c))
    }),
    ("fd-storm", fd_storm::ABOUT, |c| Box::pin(fd_storm::run(c))),
    ("churn", churn::ABOUT, |c| Box::pin(churn::run(c))),
];

pub async fn run(args: Args) -> Result<()> {
    let scale = Scale::named(&args.scale)
        .ok_or_else(|| format!("--scale must be smoke or full, not {}", args.scale))?;
    for name in &args.scenario {
        if !SCENARIOS.iter().any(|(n, _, _)| n == name) {
            let known: Vec<&str> = SCENARIOS.iter().map(|(n, _, _)| *n).collect();
            return Err(format!("--scenario {name}: unknown; known: {}", known.join(", ")).into());
        }
    }
    let chosen: Vec<_> = SCENARIOS
        .iter()
        .filter(|(n, _, _)| args.scenario.is_empty() || args.scenario.iter().any(|s| s == n))
        .collect();
    let paths = suite::workspace_paths();
    crate::procs::raise_nofile();
    if !args.no_build {
        suite::build(&paths.root, &["herald-server"])?;
    }
    let binary = crate::peers::herald::binary(&paths);
    let tmp = tempfile::Builder::new().prefix("herald-chaos-").tempdir()?;
    let started = Instant::now();
    let mut rows = Vec::new();
    for (name, _, run) in &chosen {
        eprintln!("== {name} (--scale {}) ==", scale.name);
        let ctx = Ctx {
            binary: &binary,
            scale: &scale,
            dir: tmp.path().join(name),
        };
        std::fs::create_dir_all(&ctx.dir)?;
        let began = Instant::now();
        let row = run(&ctx).await.unwrap_or_else(|e| Row {
            scenario: name,
            failures: vec![format!("did not complete: {e}")],
            ..Row::default()
        });
        eprintln!("  {name}: {} in {:.1?}", row.verdict(), began.elapsed());
        for failure in &row.failures {
            eprintln!("    {failure}");
        }
        rows.push(row);
    }
    let table = table(&rows);
    println!("{table}");
    eprintln!(
        "chaos --scale {}: {:.1?} in all",
        scale.name,
        started.elapsed()
    );
    if !args.no_doc {
        let about: Vec<&str> = chosen.iter().map(|(_, about, _)| *about).collect();
        report::write_section(&args.doc_path, &section(&scale, &about, &table))?;
        eprintln!("wrote {}", args.doc_path.display());
    }
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.failures.is_empty())
        .map(|r| format!("{}: {}", r.scenario, r.failures.join("; ")))
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "{} scenario(s) failed:\n{}",
            failed.len(),
            failed.join("\n")
        )
        .into());
    }
    Ok(())
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| Scenario | Acknowledged | Delivered | In history | Lost (goal 0) | Duplicates | \
         Recovery time | /health | Verdict |\n|---|---:|---|---|---:|---:|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            report::grouped(r.acknowledged),
            r.delivered,
            r.in_history,
            r.lost,
            r.duplicates,
            r.recovery,
            r.health,
            r.verdict()
        ));
    }
    out
}

fn section(scale: &Scale, about: &[&str], table: &str) -> String {
    format!(
        "{HEADING}\n\n\
         Reproduce: `cargo run --release -p herald-bench -- chaos --scale {name}` \
         (`--scenario NAME` runs one; `--scale smoke` is a quick check).\n\n\
         - Machine: {machine}\n- Date: {date}\n\
         - Load: {rate} API calls/s from {callers} concurrent callers, each awaiting its answer; \
         {before:?} before the failure, {after:?} after recovery. Every node is the release \
         `herald` binary as its own process, on a fixed loopback port, with a `{ns}` namespace \
         that keeps 1,000,000 publications for an hour, so nothing a run publishes is trimmed.\n\
         - **Acknowledged** is a call the API answered with HTTP 200 and a `result`; a refused, \
         reset, timed-out or error answer promises nothing and is not counted. **Lost** counts \
         acknowledged calls the scenario's own definition (below) says must survive and did not; \
         the run fails when it is not 0, or when any other pass criterion of a row fails, so the \
         table never hides a failure. **Duplicates** counts publications held twice in history or \
         received twice by one subscriber. Subscribers behave as the `centrifuge` SDKs do: on a \
         lost connection they reconnect with backoff (50 ms doubling to 500 ms), on an \
         unsubscribe code ≥ 2500 they subscribe again, both with `recover: true` from the last \
         offset and epoch they saw. /health is polled every 50 ms throughout.\n\n\
         {about}\n\n{table}",
        name = scale.name,
        machine = report::machine_facts(),
        date = report::today(),
        rate = scale.rate,
        callers = scale.callers,
        before = scale.before,
        after = scale.after,
        ns = node::NAMESPACE,
        about = about.join("\n\n"),
    )
}

/// What the publication scenarios count, from the acknowledged publishes,
/// the history read after recovery, and every subscriber's deliveries.
/// Lost: acknowledged publications missing from history, or missing from a
/// subscriber that should have received them (one it was not told it missed).
/// Returns how many times subscribers were told `recovered: false`.
pub fn tally_publications(
    row: &mut Row,
    acks: &[(Instant, Ack)],
    history: &History,
    subscribers: &[Received],
) -> usize {
    let checked = traffic::check_history(acks, history);
    let acked: Vec<(u64, u64)> = acks.iter().map(|(_, a)| (a.offset(), a.seq)).collect();
    let mut lost: std::collections::BTreeSet<u64> = checked.missing.iter().copied().collect();
    let (mut complete, mut duplicates, mut unrecovered) = (0, checked.duplicates, 0);
    for (i, received) in subscribers.iter().enumerate() {
        let delivery = traffic::check_delivery(received, &acked);
        if delivery.missing.is_empty() && delivery.duplicates == 0 && delivery.out_of_order == 0 {
            complete += 1;
        }
        if delivery.out_of_order > 0 {
            row.failures.push(format!(
                "subscriber {i}: {} publications out of offset order",
                delivery.out_of_order
            ));
        }
        if !delivery.missing.is_empty() {
            row.failures.push(format!(
                "subscriber {i}: {} acknowledged publications never arrived (first seqs {:?}); last error {:?}",
                delivery.missing.len(),
                &delivery.missing[..delivery.missing.len().min(5)],
                received.error
            ));
        }
        lost.extend(delivery.missing);
        duplicates += delivery.duplicates;
        unrecovered += delivery.unrecovered;
    }
    row.acknowledged = acks.len() as u64;
    row.lost = lost.len() as u64;
    row.duplicates = duplicates;
    row.failures.extend(checked.problems);
    row.in_history = if checked.found == acks.len() as u64 {
        format!("all {}", report::grouped(checked.found))
    } else {
        format!(
            "{} of {}",
            report::grouped(checked.found),
            report::grouped(acks.len() as u64)
        )
    };
    let told = match unrecovered {
        0 => String::new(),
        n => format!("; told `recovered: false` {n}×"),
    };
    row.delivered = format!(
        "{complete} of {} subscribers got every one, in order{told}",
        subscribers.len()
    );
    row.require(duplicates == 0, || format!("{duplicates} duplicates"));
    unrecovered
}

/// Whether a scenario's outcome is a failure (to show the nodes' logs).
pub fn failed(outcome: &Result<Row>) -> bool {
    outcome
        .as_ref()
        .map_or(true, |row| !row.failures.is_empty())
}

/// `1.23 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
