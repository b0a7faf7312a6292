//! `nodes`: fan-out deliveries/s with 1, 2 and 3 herald nodes on one Redis,
//! side by side with the in-memory engine on 1 node, all in one run on the
//! suite's fan-out workload. Subscriber i connects to node i mod n and
//! publisher i posts to node i mod n, so most deliveries cross Redis. Every
//! subscriber checks that it got every publication once and in each
//! publisher's order (`order.rs`): a run that loses or reorders anything fails
//! instead of reporting a rate.

use crate::order::{Order, Verdict};
use crate::peers::Endpoint;
use crate::peers::herald::{self, Node};
use crate::procs::{self, Process, Ticks};
use crate::scenarios::fanout::{self, Half, Max, Target};
use crate::scenarios::{Ctx, Scale, loadgen_cpu, ms, rate, server_cpu};
use crate::{Result, report, suite};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const HEADING: &str = "## Scale-out on Redis: 1, 2 and 3 nodes";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    output: report::Output,
    /// Skip `cargo build --release -p herald-server` before running.
    #[arg(long)]
    no_build: bool,
}

struct Setup {
    label: &'static str,
    id: &'static str,
    nodes: usize,
    redis: bool,
}

const SETUPS: [Setup; 4] = [
    Setup {
        label: "Memory engine, 1 node",
        id: "memory1",
        nodes: 1,
        redis: false,
    },
    Setup {
        label: "Redis broker, 1 node",
        id: "redis1",
        nodes: 1,
        redis: true,
    },
    Setup {
        label: "Redis broker, 2 nodes",
        id: "redis2",
        nodes: 2,
        redis: true,
    },
    Setup {
        label: "Redis broker, 3 nodes",
        id: "redis3",
        nodes: 3,
        redis: true,
    },
];

/// The suite's scales, with fan-out sized so four runs fit the time each promises.
fn scale(name: &str) -> Option<Scale> {
    let mut scale = Scale::named(name)?;
    match name {
        "smoke" => {
            scale.fanout_subscribers = 120;
            scale.measure = Duration::from_secs(1);
        }
        "full" => scale.fanout_subscribers = 6_000,
        _ => {}
    }
    Some(scale)
}

/// The processes of one setup; what fan-out drives.
struct Cluster<'a> {
    setup: &'a Setup,
    nodes: Vec<Process>,
    endpoints: Vec<Arc<Endpoint>>,
    redis: Option<&'a Process>,
}

impl Target for Cluster<'_> {
    fn label(&self) -> String {
        self.setup.id.into()
    }

    fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    fn ticks(&self) -> Ticks {
        Ticks {
            server: self.nodes.iter().map(Process::cpu_ticks).sum(),
            helper: self.redis.map_or(0, Process::cpu_ticks),
        }
    }
}

/// What one setup measured.
struct Row {
    subscribers: Vec<usize>,
    max: Max,
    half: Half,
    verdict: Verdict,
    /// Connections the servers closed during the run.
    closed: u64,
}

impl Row {
    /// What makes this row's numbers untrustworthy, if anything.
    fn failure(&self) -> Option<String> {
        let mut why = Vec::new();
        if !self.verdict.complete() {
            why.push(format!(
                "deliveries lost or out of order:\n{}",
                self.verdict.details()
            ));
        }
        for (phase, errors, first) in [
            ("maximum", self.max.errors, &self.max.first_error),
            ("50%", self.half.errors, &self.half.first_error),
        ] {
            if errors > 0 {
                why.push(format!("{errors} publish errors at {phase}: {first:?}"));
            }
        }
        if self.closed > 0 {
            why.push(format!(
                "{} subscribers were disconnected by a server",
                self.closed
            ));
        }
        (!why.is_empty()).then(|| why.join("\n"))
    }
}

pub async fn run(args: Args) -> Result<()> {
    let scale = args.output.scale(scale)?;
    if let Some(why) = procs::redis_missing() {
        return Err(format!("the Redis runs need redis-server: {why}").into());
    }
    let paths = suite::workspace_paths();
    let nofile = procs::raise_nofile();
    eprintln!(
        "herald-bench nodes --scale {}: {} subscribers, open files limit {nofile}",
        scale.name, scale.fanout_subscribers
    );
    if !args.no_build {
        suite::build(&paths.root, &["herald-server"])?;
    }
    let binary = herald::binary(&paths);
    if !binary.exists() {
        return Err(format!("{} missing (build herald-server)", binary.display()).into());
    }
    let tmp = tempfile::tempdir()?;
    let redis_dir = tmp.path().join("redis");
    std::fs::create_dir_all(&redis_dir)?;
    let (redis, port) = procs::start_redis(&redis_dir).await?;
    let url = format!("redis://127.0.0.1:{port}");
    eprintln!("redis-server on {url}");
    let ctx = Ctx {
        paths: &paths,
        scale: &scale,
    };
    let mut rows = Vec::new();
    for setup in &SETUPS {
        eprintln!("== {} ==", setup.label);
        let dir = tmp.path().join(setup.id);
        let outcome = measure(setup, &ctx, &dir, &redis, &url).await;
        if let Err(e) = &outcome {
            eprintln!("  {}: FAILED: {e}", setup.id);
        }
        rows.push(outcome.map_err(|e| e.to_string()));
    }
    if rows.iter().any(|r| r.is_err()) {
        eprintln!("  redis log:\n{}", redis.log_tail());
    }
    redis.stop().await;

    let table = table(&rows);
    println!("{table}");
    let failures: Vec<String> = SETUPS
        .iter()
        .zip(&rows)
        .filter_map(|(setup, row)| {
            let why = match row {
                Ok(row) => row.failure()?,
                Err(e) => e.clone(),
            };
            Some(format!("{}: {why}", setup.label))
        })
        .collect();
    if !failures.is_empty() {
        return Err(format!("not writing numbers that failed:\n{}", failures.join("\n")).into());
    }
    args.output
        .write(|| section(&scale, &paths, nofile, &table))
}

/// One setup: start its nodes, wait until they see each other, load them,
/// check every delivery, stop them.
async fn measure(
    setup: &Setup,
    ctx: &Ctx<'_>,
    dir: &Path,
    redis: &Process,
    url: &str,
) -> Result<Row> {
    let mut cluster = Cluster {
        setup,
        nodes: Vec::new(),
        endpoints: Vec::new(),
        redis: setup.redis.then_some(redis),
    };
    let mut names = Vec::new();
    let mut outcome = Ok(());
    for k in 1..=setup.nodes {
        // Names unique per setup, so a node of an earlier setup still listed
        // by `info` cannot pass for one of this setup.
        let node = Node {
            name: format!("{}-node-{k}", setup.id),
            redis_url: setup.redis.then(|| url.to_string()),
        };
        let node_dir = dir.join(format!("node-{k}"));
        std::fs::create_dir_all(&node_dir)?;
        match herald::start_node(ctx.paths, &node_dir, Some(&node)).await {
            Ok((process, endpoint)) => {
                cluster.nodes.push(process);
                cluster.endpoints.push(Arc::new(endpoint));
                names.push(node.name);
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    let outcome = match outcome {
        Ok(()) => load(&cluster, &names, ctx).await,
        Err(e) => Err(e),
    };
    let failed = match &outcome {
        Ok(row) => row.failure().is_some(),
        Err(_) => true,
    };
    for (name, node) in names.iter().zip(cluster.nodes) {
        if failed {
            eprintln!("  {name} log:\n{}", node.log_tail());
        }
        node.stop().await;
    }
    outcome
}

async fn load(cluster: &Cluster<'_>, names: &[String], ctx: &Ctx<'_>) -> Result<Row> {
    herald::await_nodes(&cluster.endpoints, names).await?;
    let scale = ctx.scale;
    let n = scale.fanout_subscribers;
    let publishers = scale.fanout_publishers.max(scale.publishers);
    let order = Arc::new(Order::new(publishers, n));
    let (pool, stats) = fanout::subscribe(cluster, ctx, Some(order.clone())).await?;
    if pool.failed > 0 {
        return Err(format!(
            "{} of {n} subscribers could not connect: {:?}",
            pool.failed, pool.first_error
        )
        .into());
    }
    let fanout = n as u64;
    let max = fanout::maximum(cluster, &stats, fanout, ctx).await?;
    let half = fanout::at_rate(cluster, &stats, fanout, 0.5 * max.rate / n as f64, ctx).await;
    let nodes = cluster.endpoints.len();
    let verdict = order.verify(|i| i % nodes);
    eprintln!(
        "  {}: {} publications checked: {}",
        cluster.setup.id,
        order.published(),
        verdict.summary()
    );
    let closed = stats.closed.load(Ordering::Relaxed);
    drop(pool);
    Ok(Row {
        subscribers: (0..nodes).map(|k| (k..n).step_by(nodes).count()).collect(),
        max,
        half,
        verdict,
        closed,
    })
}

fn table(rows: &[std::result::Result<Row, String>]) -> String {
    let baseline = rows
        .first()
        .and_then(|r| r.as_ref().ok())
        .map(|r| r.max.rate);
    let mut out = String::from(
        "| Setup | Subscribers (per node) | Max deliveries/s | ÷ memory, 1 node | \
         Server CPU at max (all nodes) | Redis CPU at max | Loadgen CPU at max | \
         CPU-seconds per million deliveries | Publications/s at 50% | p50 at 50% | p99 at 50% | \
         Every delivery, once, in order |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (setup, row) in SETUPS.iter().zip(rows) {
        let r = match row {
            Ok(r) => r,
            Err(e) => {
                let why = e.lines().next().unwrap_or_default().replace('|', "/");
                out.push_str(&format!(
                    "| {} | **failed**: {why} |{}\n",
                    setup.label,
                    " |".repeat(10)
                ));
                continue;
            }
        };
        let total: usize = r.subscribers.iter().sum();
        let split: Vec<String> = r.subscribers.iter().map(|s| s.to_string()).collect();
        let subscribers = if split.len() > 1 {
            format!("{} ({})", report::grouped(total as u64), split.join(" / "))
        } else {
            report::grouped(total as u64)
        };
        let ratio = baseline.map_or("n/a".into(), |b| format!("{:.2}×", r.max.rate / b));
        let cpu = &r.max.cpu;
        let redis_cpu = if setup.redis {
            format!("{:.0}%", cpu.helper * 100.0)
        } else {
            "–".into()
        };
        let per_million = (cpu.server + cpu.helper) / r.max.rate * 1e6;
        let mut check = r.verdict.summary();
        if let Some(why) = r.failure()
            && r.verdict.complete()
        {
            check.push_str(&format!("; **{}**", why.lines().next().unwrap_or_default()));
        }
        out.push_str(&format!(
            "| {} | {subscribers} | {} | {ratio} | {} | {redis_cpu} | {} | {per_million:.2} | {:.0} | {} | {} | {check} |\n",
            setup.label,
            rate(r.max.rate),
            server_cpu(cpu),
            loadgen_cpu(cpu),
            r.half.publish_rate,
            ms(r.half.p50_us),
            ms(r.half.p99_us),
        ));
    }
    out
}

fn redis_version() -> String {
    std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let v = text.split_whitespace().find_map(|w| w.strip_prefix("v="))?;
            Some(format!("redis-server {v}"))
        })
        .unwrap_or_else(|| "redis-server (version unknown)".into())
}

fn section(scale: &Scale, paths: &crate::peers::Paths, nofile: u64, table: &str) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{HEADING}\n\n\
         Reproduce: `cargo run --release -p herald-bench -- nodes --scale {name}`\n\n\
         - Machine: {machine}\n- Date: {date}\n- Versions: {herald}; {redis}\n\
         - **This machine has {cpus} CPUs, and every node, Redis and the load generator share \
         them, so more nodes cannot add capacity here: a second or third node only splits the \
         same cores.** The table shows what going through Redis costs against the in-memory \
         engine, and that fan-out stays complete and in order when subscribers and publishers \
         are spread over nodes. It is not a scaling curve; that needs a machine per node. \
         The latencies at 50 % are the noisiest numbers: with everything contending for the \
         same cores they move several-fold between runs, so compare deliveries/s first.\n\
         - The four setups run one after another in the same run, on the same workload. Each \
         node is its own `herald serve` process (release build) with a generated config: the \
         same secret, API key and `bench` namespace (no history) for all, a unique \
         `[server] name`, and for the Redis setups `[broker] kind = \"redis\"` pointing at one \
         `redis-server` started for this run (`--save \"\" --appendonly no`, a temporary \
         directory, stopped at the end). The memory setup is the same config without \
         `[broker]`. Before loading, every node answers `/health` with 200 and its `info` \
         lists every node of the setup.\n\
         {workload}\n\
         - Checked, not sampled: each publisher numbers its publications and awaits each \
         answer before the next, so its numbers fix an order. Every subscriber checks each \
         delivery against that order, and at the end against what each publisher sent, over \
         both phases; a lost, repeated or late delivery fails the run and no numbers are \
         written. \"One interleaving\" means every subscriber, on every node, also saw \
         the publishers' publications interleaved the same way: through Redis, every node \
         receives the channel as one stream. The memory engine broadcasts a publication from \
         the request that published it (on a channel without history), so publications of \
         concurrent publishers may interleave differently per subscriber; each publisher's \
         own order holds, and that is what the check requires.\n\
         - Server CPU is the user+system time of all node processes over wall time, from \
         `/proc` (100 % = one core); Redis CPU likewise for `redis-server`; Loadgen CPU for \
         this process (⚠ saturated at ≥ 95 % of a core). CPU-seconds per million deliveries \
         counts nodes and Redis. Open files limit {nofile}.\n\n\
         {table}",
        name = scale.name,
        machine = report::machine_facts(),
        date = report::today(),
        herald = herald::version(paths),
        redis = redis_version(),
        workload = workload(scale),
    )
}

/// The workload bullet of the section.
fn workload(s: &Scale) -> String {
    let Scale {
        fanout_publishers,
        publishers,
        window,
        warmup,
        measure,
        ..
    } = s;
    let subs = report::grouped(s.fanout_subscribers as u64);
    let payload = crate::loadgen::PAYLOAD_BYTES;
    format!(
        "- Workload: the suite's fan-out. {subs} subscribers on one channel, subscriber i \
         connecting to node i mod n (round-robin over the nodes' WebSocket endpoints). \
         Publishers post {payload}-byte payloads to the HTTP API, publisher i to node i mod n \
         (round-robin over nodes, so publications enter on every node and most deliveries \
         cross Redis). Maximum: {fanout_publishers} publishers as fast as the nodes take them \
         while at most {window} publications per subscriber are undelivered, {warmup:?} \
         warm-up then {measure:?} measured. Latency: {publishers} publishers at a fixed 50 % of \
         that setup's maximum for {measure:?}; each payload carries its send time, so p50 and \
         p99 are publish-to-deliver.",
    )
}
