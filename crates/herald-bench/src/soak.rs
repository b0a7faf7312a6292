//! `soak`: herald under mixed, paced traffic for many minutes, sampled every
//! minute, to catch what short benchmarks cannot: memory, fds or threads that
//! creep up, latency that drifts, rare errors.
//!
//! Herald runs as its own release process (`soak/server.rs`) with durable
//! SQLite storage. Every kind of traffic runs at once, each at a fixed rate,
//! and checks every delivery it gets:
//! - `soak/fanout.rs`: API publishes fanned out to a few hundred subscribers;
//! - `soak/recovery.rs`: subscribers that drop and recover from history, and
//!   the reconnect storms;
//! - `soak/presence.rs`: presence churn and `presence` calls;
//! - `soak/inbox.rs`: `notify`, live notifications, `inbox.mark_read`;
//! - `soak/chat.rs`: `chat.send`, `chat.read` and `chat_post`.
//!
//! `soak/conn.rs` is their client side and the error tally; `soak/trend.rs`
//! the rule that fails a run; `soak/doc.rs` the `## Soak` section of
//! `docs/reliability.md` and its plot. Stopping is ordered: publishers first,
//! then receivers once they got everything published, then the checks that
//! herald let go of every connection, subscription and presence entry.

mod chat;
mod conn;
mod doc;
mod fanout;
mod inbox;
mod presence;
mod recovery;
mod server;
mod trend;

use crate::{Result, loadgen, procs, report};
use conn::Tally;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use trend::Minute;

const MINUTE: Duration = Duration::from_secs(60);
/// How long herald may take to drop its gauges to 0 once every client left.
const SETTLE_WAIT: Duration = Duration::from_secs(15);

#[derive(clap::Args)]
pub struct Args {
    /// Minutes of traffic (a trend needs at least 4; the doc's run is 30).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=1440))]
    minutes: u64,
    /// Minutes between reconnect storms (0: none).
    #[arg(long, default_value_t = 3)]
    storm_every: u64,
    /// Print the table only; leave docs/reliability.md alone.
    #[arg(long)]
    no_doc: bool,
    /// The document whose `## Soak` section is written; the plot goes to
    /// `img/soak.svg` beside it.
    #[arg(long, default_value_os_t = report::default_doc_path().with_file_name("reliability.md"))]
    doc_path: PathBuf,
}

/// What every traffic task shares.
#[derive(Clone)]
pub struct Ctx {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub tally: Arc<Tally>,
}

impl Ctx {
    /// The server API's base; a method name completes it.
    pub fn api_base(&self) -> String {
        format!("http://{}/api/", self.addr)
    }
}

pub async fn run(args: Args) -> Result<()> {
    loadgen::now_us(); // starts the clock every payload's send time is on
    procs::raise_nofile();
    let paths = crate::suite::workspace_paths();
    let binary = crate::peers::herald::binary(&paths);
    let dir = tempfile::tempdir()?;
    let (process, addr) = server::start(&binary, dir.path()).await?;
    eprintln!(
        "herald-bench soak: {} minutes against {} (pid {}) on {addr}",
        args.minutes,
        binary.display(),
        process.pid
    );
    let version = crate::peers::herald::version(&paths);
    let outcome = soak(&args, &process, addr, &version).await;
    if outcome.is_err() {
        eprintln!("herald log ends:\n{}", process.log_tail());
    }
    process.stop().await;
    outcome
}

/// The traffic of every kind, started together.
struct Traffic {
    fanout: fanout::Fanout,
    recovery: recovery::Recovery,
    presence: presence::Presence,
    inbox: inbox::Inbox,
    chat: chat::Chat,
}

async fn soak(
    args: &Args,
    process: &procs::Process,
    addr: SocketAddr,
    version: &str,
) -> Result<()> {
    let ctx = Ctx {
        addr,
        http: crate::publishers::http_client(),
        tally: Arc::new(Tally::new()),
    };
    let idle_before = server::sample(process, &ctx.http, addr).await;
    let (publishing, publishing_rx) = watch::channel(false);
    let (receiving, receiving_rx) = watch::channel(false);
    let (storms, storms_rx) = watch::channel(0_u64);
    eprintln!("connecting clients");
    let mut traffic = Traffic {
        fanout: fanout::start(&ctx, &publishing_rx).await?,
        recovery: recovery::start(&ctx, &publishing_rx, &receiving_rx, &storms_rx),
        presence: presence::start(&ctx, &receiving_rx),
        inbox: inbox::start(&ctx, &publishing_rx, &receiving_rx).await?,
        chat: chat::start(&ctx, &publishing_rx, &receiving_rx).await?,
    };
    eprintln!("traffic running; one line per minute");
    let started = Instant::now();
    let storm_task = tokio::spawn(storm(started, args.storm_every, storms));
    let minutes = sample_minutes(args.minutes, started, &ctx, process, &traffic).await;
    storm_task.abort();
    let counted = ctx.tally.errors() + traffic.fanout.problems();

    eprintln!("stopping the publishers, then the receivers");
    let _ = publishing.send(true);
    traffic.fanout.publishers_done(&ctx.tally).await;
    traffic.recovery.publishers_done(&ctx.tally).await;
    traffic.inbox.publishers_done(&ctx.tally).await;
    traffic.chat.publishers_done(&ctx.tally).await;
    let _ = receiving.send(true);
    let (fanout_problems, mut end) = traffic.fanout.finish().await;
    traffic.recovery.finish(&ctx.tally).await;
    end.extend(traffic.presence.finish(&ctx).await);
    traffic.inbox.finish(&ctx.tally).await;
    traffic.chat.finish(&ctx.tally).await;
    let drained = (ctx.tally.errors() + fanout_problems).saturating_sub(counted);
    if drained > 0 {
        end.insert(
            0,
            format!("{drained} errors while the last deliveries drained"),
        );
    }
    let (idle_after, settled) = settle(process, &ctx.http, addr).await;
    end.extend(settled);

    let verdict = trend::judge(&minutes, &end);
    let run = doc::Run {
        command: &format!(
            "herald-bench soak --minutes {} --storm-every {}",
            args.minutes, args.storm_every
        ),
        storm_every: args.storm_every,
        version,
        idle_fds: (idle_before.fds, idle_after.fds),
    };
    println!("{}", doc::table(&minutes));
    println!("{}", doc::verdict_text(&verdict));
    let mut examples = ctx.tally.examples();
    let kinds = ctx.tally.kinds();
    if !kinds.is_empty() {
        eprintln!("errors by kind:");
        for (kind, count) in &kinds {
            eprintln!("  {count:>7} × {kind}");
        }
        examples.push("by kind:".into());
        examples.extend(
            kinds
                .iter()
                .map(|(kind, count)| format!("{count} × {kind}")),
        );
    }
    if !args.no_doc {
        let plot = args.doc_path.with_file_name(doc::PLOT);
        if let Some(dir) = plot.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&plot, doc::plot(&minutes))?;
        report::write_section(
            &args.doc_path,
            &doc::section(&run, &minutes, &verdict, &examples),
        )?;
        eprintln!("wrote {} and {}", args.doc_path.display(), plot.display());
    }
    if verdict.passed() {
        return Ok(());
    }
    let mut why = verdict.failures.join("; ");
    if let Some(first) = examples.first() {
        why.push_str(&format!("; first error: {first}"));
    }
    Err(why.into())
}

/// One row per minute, printed to stderr as it is taken.
async fn sample_minutes(
    count: u64,
    started: Instant,
    ctx: &Ctx,
    process: &procs::Process,
    traffic: &Traffic,
) -> Vec<Minute> {
    let mut minutes = Vec::new();
    let (mut errors_before, mut delivered_before) = (0, 0);
    let mut window = procs::CpuWindow::start(process.cpu_ticks());
    for minute in 1..=count {
        tokio::time::sleep_until(started + MINUTE * minute as u32).await;
        let sample = server::sample(process, &ctx.http, ctx.addr).await;
        let cpu = window.finish(sample.cpu_ticks);
        window = procs::CpuWindow::start(sample.cpu_ticks);
        let mut latency = traffic.fanout.take_latency();
        let _ = latency.add(ctx.tally.take_latency());
        let errors = ctx.tally.errors() + traffic.fanout.problems();
        let delivered = ctx
            .tally
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed)
            + traffic.fanout.delivered();
        let row = Minute {
            minute,
            sample,
            cpu: cpu.server,
            bench_cpu: cpu.loadgen,
            p99_ms: (!latency.is_empty()).then(|| latency.value_at_quantile(0.99) as f64 / 1000.0),
            deliveries: delivered - delivered_before,
            errors: errors - errors_before,
        };
        eprintln!(
            "minute {minute}/{count}: RSS {:.1} MiB, {} fds, {} threads, {} connections, \
             CPU {:.0} % (herald-bench {:.0} %), {} deliveries, p99 {} ms, {} errors",
            row.rss_mib(),
            sample.fds,
            sample.threads,
            sample
                .connections
                .map_or_else(|| "?".into(), |c| c.to_string()),
            row.cpu * 100.0,
            row.bench_cpu * 100.0,
            report::grouped(row.deliveries),
            row.p99_ms
                .map_or_else(|| "n/a".into(), |p| format!("{p:.1}")),
            row.errors
        );
        (errors_before, delivered_before) = (errors, delivered);
        minutes.push(row);
    }
    minutes
}

/// Every `every` minutes, half a minute before a sample so the samples do
/// not catch the reconnect in flight, tells the recovering subscribers to drop.
async fn storm(started: Instant, every: u64, storms: watch::Sender<u64>) {
    if every == 0 {
        return;
    }
    for n in 1_u32.. {
        tokio::time::sleep_until(started + MINUTE * (n * every as u32) - MINUTE / 2).await;
        eprintln!("reconnect storm {n}: every connected recovering subscriber drops now");
        storms.send_modify(|count| *count += 1);
    }
}

/// Once every client left: waits until herald's connection and subscription
/// gauges are back to 0; the idle sample, and what did not settle.
async fn settle(
    process: &procs::Process,
    http: &reqwest::Client,
    addr: SocketAddr,
) -> (server::Sample, Vec<String>) {
    let until = Instant::now() + SETTLE_WAIT;
    loop {
        let sample = server::sample(process, http, addr).await;
        let (connections, subscriptions) = (sample.connections, sample.subscriptions);
        if connections == Some(0) && subscriptions == Some(0) {
            return (sample, Vec::new());
        }
        if Instant::now() > until {
            let why = format!(
                "{SETTLE_WAIT:?} after every client left, herald still counts \
                 {connections:?} connections and {subscriptions:?} subscriptions"
            );
            return (sample, vec![why]);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
