//! `backend`: herald working with the application behind it, in one run on
//! one release herald process.
//!
//! Connect proxy: herald asks a minimal backend (an axum server in this
//! process, on a runtime of its own) who each client is, from the client's
//! `Cookie`, against the same connects carrying an HS256 JWT, which herald
//! checks alone. Outbox: writers commit `publish` rows to a PostgreSQL outbox
//! table that herald consumes, against the same publications sent with
//! `POST /api/publish`; every delivery is checked, once and in order per
//! channel, and a run that loses, repeats or reorders one fails.
//!
//! `backend/connect.rs` is the backend and the connect storm,
//! `backend/outbox.rs` the database, the writers and the subscribers,
//! `backend/doc.rs` the tables and the section of `docs/benchmarks.md`.

mod connect;
mod doc;
mod outbox;

use crate::apps::wire;
use crate::load::{API_KEY, SECRET};
use crate::peers::herald as release;
use crate::procs::{self, Process};
use crate::{Result, report, suite};
use connect::{Backend, Connect, Storm};
use outbox::{Delivered, Phase};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HEADING: &str = "## Backend integration: connect proxy and outbox";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    output: report::Output,
    /// Skip `cargo build --release -p herald-server` before running.
    #[arg(long)]
    no_build: bool,
}

pub struct Scale {
    name: String,
    /// Connects in flight at any moment during a storm.
    connectors: usize,
    /// Unmeasured connects before each storm.
    warmup: Duration,
    /// How long each storm is measured.
    span: Duration,
    /// Proxy and JWT storms alternate this many times; rows sum the rounds.
    rounds: usize,
    /// Concurrent outbox writers (and API publishers), each the only writer of its channels.
    writers: usize,
    channels_per_writer: usize,
    /// The outbox consumer's `num_partitions`; channel c goes to partition c mod this.
    partitions: usize,
    /// The fixed offered rate, rows (or publishes) per second over all writers.
    rate: f64,
    /// How long each outbox or API phase writes.
    write_span: Duration,
    /// Rows of the backlog phase, committed at once and then drained.
    backlog: usize,
}

fn scale(name: &str) -> Option<Scale> {
    // (connectors, warmup ms, span s, rounds), (writers, channels per writer,
    // partitions, rate, write span s, backlog)
    let ((connectors, warmup, span, rounds), outbox) = match name {
        "smoke" => ((8, 500, 2, 1), (4, 2, 2, 200.0, 2, 5_000)),
        "small" => ((32, 1_000, 5, 1), (8, 4, 4, 500.0, 5, 30_000)),
        "full" => ((32, 2_000, 10, 2), (8, 4, 4, 1_000.0, 10, 100_000)),
        _ => return None,
    };
    let (writers, per_writer, partitions, rate, write_span, backlog) = outbox;
    Some(Scale {
        name: name.into(),
        connectors,
        warmup: Duration::from_millis(warmup),
        span: Duration::from_secs(span),
        rounds,
        writers,
        channels_per_writer: per_writer,
        partitions,
        rate,
        write_span: Duration::from_secs(write_span),
        backlog,
    })
}

impl Scale {
    fn channels(&self) -> usize {
        self.writers * self.channels_per_writer
    }
}

/// The release herald under test.
pub struct Herald {
    process: Process,
    addr: SocketAddr,
}

/// herald's config: the connect proxy on `backend_port`, the outbox consumer
/// on `dsn`, a `bench` namespace without history, nothing stored.
fn config(backend_port: u16, dsn: &str, partitions: usize) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
allowed_origins = []
shutdown_grace = "1s"

[auth]
hmac_secret = "{SECRET}"

[api]
key = "{API_KEY}"

[client]
# Nothing here measures pings, and the subscribers do not answer them.
ping_interval = "10m"

# The storm connects thousands of times a second from 8 loopback addresses;
# a per-address limit would measure the limit, not the connect.
[client.rate_limit.connect]
enabled = false

[client.proxy.connect]
endpoint = "http://127.0.0.1:{backend_port}/connect"
http_headers = ["Cookie"]

[storage]
durable = false

[inbox]
enabled = false

[chat]
enabled = false

[[channel.namespaces]]
name = "bench"
allow_subscribe_for_client = true

[[consumers]]
name = "bench-outbox"
kind = "postgresql"
[consumers.postgresql]
dsn = "{dsn}"
outbox_table_name = "{table}"
num_partitions = {partitions}
partition_select_limit = 100
partition_notification_channel = "{channel}"
"#,
        table = outbox::TABLE,
        channel = outbox::NOTIFICATION_CHANNEL,
    )
}

impl Herald {
    async fn start(binary: &Path, dir: &Path, config: &str) -> Result<Self> {
        let file = dir.join("herald.toml");
        std::fs::write(&file, config)?;
        let mut cmd = Command::new(binary);
        cmd.arg("serve").arg("--config").arg(&file).current_dir(dir);
        let log = dir.join("herald.log");
        let (process, addr) =
            procs::spawn_listening("herald", cmd, &log, Duration::from_secs(30)).await?;
        let addr = crate::peers::parse_addr("herald", &addr)?;
        Ok(Self { process, addr })
    }
}

/// CPU time (utime + stime) at one moment: herald's process, the backend's
/// threads, this whole process (load generator and backend), and PostgreSQL.
struct Ticks {
    at: Instant,
    herald: u64,
    backend: u64,
    bench: u64,
    postgres: u64,
}

/// CPU seconds used over `wall`.
#[derive(Clone, Copy, Default)]
pub struct Cpu {
    wall: Duration,
    herald: f64,
    backend: f64,
    /// This process without the backend's threads.
    loadgen: f64,
    /// Every `postgres` process on the machine: the server the outbox and
    /// its consumer use (and whatever else asks it meanwhile).
    postgres: f64,
}

/// `/proc` counts USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SEC: f64 = 100.0;

impl Ticks {
    fn now(herald: &Process) -> Self {
        Self {
            at: Instant::now(),
            herald: herald.cpu_ticks(),
            backend: Backend::ticks(),
            bench: procs::cpu_ticks("/proc/self/stat"),
            postgres: postgres_ticks(),
        }
    }

    fn since(&self, herald: &Process) -> Cpu {
        let now = Ticks::now(herald);
        let secs = |now: u64, then: u64| now.saturating_sub(then) as f64 / TICKS_PER_SEC;
        let backend = secs(now.backend, self.backend);
        Cpu {
            wall: now.at - self.at,
            herald: secs(now.herald, self.herald),
            backend,
            loadgen: (secs(now.bench, self.bench) - backend).max(0.0),
            postgres: secs(now.postgres, self.postgres),
        }
    }
}

/// CPU ticks of the PostgreSQL server's processes (the postmaster, its
/// backends and helpers all name themselves `postgres`).
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|entry| {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            comm.trim_end() == "postgres"
        })
        .map(|entry| procs::cpu_ticks(&entry.path().join("stat").to_string_lossy()))
        .sum()
}

impl Cpu {
    fn add(&mut self, other: &Cpu) {
        self.wall += other.wall;
        self.herald += other.herald;
        self.backend += other.backend;
        self.loadgen += other.loadgen;
        self.postgres += other.postgres;
    }

    /// `cpu_seconds` as a share of one core over the window.
    fn cores(&self, cpu_seconds: f64) -> f64 {
        cpu_seconds / self.wall.as_secs_f64().max(1e-3)
    }
}

/// What one run measured: the storms by path, the outbox and API phases.
pub struct Measured {
    storms: Vec<(Connect, std::result::Result<Storm, String>)>,
    phases: Vec<(Phase, std::result::Result<Delivered, String>)>,
}

pub async fn run(args: Args) -> Result<()> {
    let s = args.output.scale(scale)?;
    let command = format!("backend --scale {}", s.name);
    wire::stamp();
    let paths = suite::workspace_paths();
    let nofile = procs::raise_nofile();
    eprintln!(
        "herald-bench {command}: connect storms of {} connectors, {:?} each × {} rounds; \
         {} writers on {} channels, {}/s and flat out for {:?}",
        s.connectors,
        s.span,
        s.rounds,
        s.writers,
        s.channels(),
        s.rate,
        s.write_span
    );
    if !args.no_build {
        suite::build(&paths.root, &["herald-server"])?;
    }
    let binary = release::binary(&paths);
    if !binary.exists() {
        return Err(format!("{} missing (build herald-server)", binary.display()).into());
    }
    let version = release::version(&paths);
    let tokens = connect::tokens()?;
    let (database, pool) = outbox::database(s.writers).await?;
    let backend = Backend::start()?;
    let dir = tempfile::tempdir()?;
    let herald_config = config(backend.port, database.url(), s.partitions);
    let herald = Herald::start(&binary, dir.path(), &herald_config).await?;
    eprintln!("{version} on {}", herald.addr);
    let measured = measure(&herald, &backend, &pool, &s, &tokens).await;
    let failed = measured.storms.iter().any(|(_, r)| r.is_err())
        || measured.phases.iter().any(|(_, r)| r.is_err());
    if failed {
        eprintln!("  herald's log ends:\n{}", herald.process.log_tail());
    }
    herald.process.stop().await;
    drop(backend);
    pool.close().await;
    drop(database);

    let tables = doc::tables(&measured);
    println!("{tables}");
    let failures = doc::failures(&measured);
    if !failures.is_empty() {
        return Err(format!("not writing numbers that failed:\n{}", failures.join("\n")).into());
    }
    args.output
        .write(|| doc::section(&s, &command, &version, nofile, &tables))
}

/// The connect storms (proxy and JWT alternating, summed over the rounds),
/// then the outbox and API phases.
async fn measure(
    herald: &Herald,
    backend: &Backend,
    pool: &sqlx::PgPool,
    s: &Scale,
    tokens: &Arc<Vec<String>>,
) -> Measured {
    let mut sums: [Option<std::result::Result<Storm, String>>; 2] = [None, None];
    for round in 1..=s.rounds {
        for (sum, path) in sums.iter_mut().zip(Connect::ALL) {
            if matches!(sum, Some(Err(_))) {
                continue; // a path that failed once has no numbers to add to
            }
            eprintln!("== connect with {}, round {round} ==", path.label());
            let storm = connect::measure(herald, backend, path, s, tokens).await;
            match &storm {
                Ok(storm) => eprintln!("  {}", storm.summary()),
                Err(e) => eprintln!("  FAILED: {e}"),
            }
            *sum = Some(match (sum.take(), storm) {
                (Some(Ok(mut sum)), Ok(storm)) => {
                    sum.add(storm);
                    Ok(sum)
                }
                (_, storm) => storm.map_err(|e| e.to_string()),
            });
        }
    }
    let storms = Connect::ALL
        .into_iter()
        .zip(sums)
        .map(|(path, sum)| (path, sum.unwrap_or_else(|| Err("not measured".into()))))
        .collect();
    let http = reqwest::Client::new();
    let mut phases = Vec::new();
    for (index, phase) in outbox::phases(s.rate, s.backlog).into_iter().enumerate() {
        eprintln!("== {} ==", phase.label());
        let delivered = outbox::measure(phase, index, herald, pool, &http, s).await;
        match &delivered {
            Ok(d) => eprintln!("  {}", d.summary()),
            Err(e) => eprintln!("  FAILED: {e}"),
        }
        phases.push((phase, delivered.map_err(|e| e.to_string())));
    }
    Measured { storms, phases }
}
