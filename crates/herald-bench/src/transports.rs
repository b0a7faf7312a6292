//! `transports`: the same fan-out over WebSocket, HTTP streaming and SSE, in
//! one run against one in-process server, so the fallbacks are measured
//! against WebSocket on the same machine at the same moment.
//!
//! For each transport, N subscribers connect and subscribe to one channel the
//! way the JavaScript SDK does (for the fallbacks: the connect command with
//! the stream request, the subscribe through `/emulation`), timed as
//! connects/s. One API publisher then sends P publications at a fixed rate,
//! each carrying its send stamp and a sequence number. Every subscriber
//! times every publication and checks it got 0, 1, 2, … each once, in order:
//! anything else fails the run instead of reporting a rate.
//!
//! The server runs on its own tokio runtime with named threads, so its CPU
//! is read apart from the load generator's, as the suite does for processes.
//! `transports/client.rs` is the subscriber side, `transports/doc.rs` the
//! table and the section.

mod client;
mod doc;

use crate::load::{self, Server};
use crate::procs::{self, CpuUse};
use crate::{Result, report};
use client::{CHANNEL, Dial, Received, TRANSPORTS, Transport, stamp};
use hdrhistogram::Histogram;
use herald_core::ChannelOptions;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::{Semaphore, mpsc, watch};

const HEADING: &str = "## Transports: WebSocket and the HTTP fallbacks";
/// Longest wait for a connection to open, or for deliveries to trail the last publish.
const WAIT: Duration = Duration::from_secs(30);
/// Connections being opened at once.
const CONNECTING: usize = 32;
/// The name of the server runtime's threads, by which their CPU is told apart.
const SERVER_THREADS: &str = "herald-server";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    output: report::Output,
    /// Publications per second, instead of the scale's (its count stays).
    #[arg(long)]
    rate: Option<f64>,
}

pub struct Scale {
    /// The arguments that reproduce the run, after `herald-bench`.
    command: String,
    subscribers: usize,
    publications: usize,
    /// Publications per second the publisher is paced at.
    rate: f64,
}

fn scale(name: &str) -> Option<Scale> {
    let (subscribers, publications, rate) = match name {
        "smoke" => (50, 200, 100.0),
        "small" => (1_000, 2_000, 100.0),
        "full" => (5_000, 1_200, 20.0),
        _ => return None,
    };
    Some(Scale {
        command: format!("transports --scale {name}"),
        subscribers,
        publications,
        rate,
    })
}

/// What one transport measured.
pub struct Row {
    connect_rate: f64,
    /// Publications per second the publisher managed.
    publish_rate: f64,
    /// From the first publish to the last delivery.
    elapsed: Duration,
    latency: Histogram<u64>,
    cpu: CpuUse,
}

pub async fn run(args: Args) -> Result<()> {
    let mut s = args.output.scale(scale)?;
    if let Some(rate) = args.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            return Err("--rate must be a positive number of publications per second".into());
        }
        s.rate = rate;
        s.command.push_str(&format!(" --rate {rate}"));
    }
    stamp();
    let nofile = procs::raise_nofile();
    eprintln!(
        "herald-bench {}: {} subscribers per transport, {} publications at {}/s; \
         open files limit {nofile}",
        s.command, s.subscribers, s.publications, s.rate
    );
    let (runtime, server) = start().await?;
    let http = reqwest::Client::new();
    // Unmeasured: opens the API connection.
    publish(&http, &server, "warmup", json!({})).await?;
    let mut rows = Vec::new();
    for transport in TRANSPORTS {
        eprintln!("== {} ==", transport.label());
        let outcome = measure(transport, &server, &s, &http).await;
        if let Err(e) = &outcome {
            eprintln!("  FAILED: {e}");
        }
        rows.push(outcome.map_err(|e| e.to_string()));
    }
    let _ = runtime
        .spawn(async move { server.running.shutdown().await })
        .await;
    runtime.shutdown_background();

    let table = doc::table(&s, &rows);
    println!("{table}");
    let failures: Vec<String> = TRANSPORTS
        .iter()
        .zip(&rows)
        .filter_map(|(t, row)| Some(format!("{}: {}", t.label(), row.as_ref().err()?)))
        .collect();
    if !failures.is_empty() {
        return Err(format!("not writing numbers that failed:\n{}", failures.join("\n")).into());
    }
    args.output.write(|| doc::section(&s, nofile, &table))
}

/// The server, on a runtime of its own whose threads are named `SERVER_THREADS`.
async fn start() -> Result<(Runtime, Server)> {
    let mut config = load::base_config();
    config.storage.durable = false;
    config.inbox.enabled = false;
    config.chat.enabled = false;
    // Nothing here measures pings, and the subscribers do not answer them.
    config.client.ping_interval = "10m".into();
    config.channel.without_namespace = ChannelOptions {
        allow_subscribe_for_client: true,
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus())
        .thread_name(SERVER_THREADS)
        // Threads that exit take their CPU time out of the per-thread count.
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .enable_all()
        .build()?;
    let server = runtime
        .spawn(Server::start("herald", config, None))
        .await??;
    Ok((runtime, server))
}

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One API publish on a channel without history: `{"result": {}}` or an error.
async fn publish(
    http: &reqwest::Client,
    server: &Server,
    channel: &str,
    data: Value,
) -> Result<()> {
    let response = http
        .post(server.url("/api/publish"))
        .header("X-API-Key", load::API_KEY)
        .body(json!({"channel": channel, "data": data}).to_string())
        .send()
        .await
        .map_err(|e| format!("publish: request failed: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status != 200 || answer.get("error").is_some() || answer.get("result").is_none() {
        return Err(format!("publish: HTTP {status}, answer {text}").into());
    }
    Ok(())
}

/// Publications 0..P, publication k sent at k / rate after the start (at
/// once when behind), each awaited before the next; returns the elapsed time.
async fn publish_all(
    http: &reqwest::Client,
    server: &Server,
    s: &Scale,
    sent: &AtomicUsize,
) -> Result<Duration> {
    let started = tokio::time::Instant::now();
    for seq in 0..s.publications {
        let due = started + Duration::from_secs_f64(seq as f64 / s.rate);
        tokio::time::sleep_until(due).await;
        publish(http, server, CHANNEL, json!({"t": stamp(), "seq": seq})).await?;
        sent.fetch_add(1, Relaxed);
    }
    Ok(started.elapsed())
}

/// CPU ticks of the whole process and of the server's threads, at a moment.
struct Ticks {
    at: Instant,
    process: u64,
    server: u64,
}

impl Ticks {
    fn now() -> Self {
        let mut server = 0;
        for task in std::fs::read_dir("/proc/self/task").into_iter().flatten() {
            let Ok(task) = task else { continue };
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() == SERVER_THREADS {
                server += cpu_ticks(&task.path().join("stat"));
            }
        }
        Self {
            at: Instant::now(),
            process: cpu_ticks("/proc/self/stat".as_ref()),
            server,
        }
    }

    /// Cores used since `self`: the server's threads, and the rest of the process.
    fn since(&self) -> CpuUse {
        let now = Ticks::now();
        // `/proc` counts USER_HZ ticks, 100 per second on Linux.
        let secs = (now.at - self.at).as_secs_f64().max(1e-3) * 100.0;
        let server = now.server.saturating_sub(self.server);
        let process = now.process.saturating_sub(self.process);
        CpuUse {
            loadgen: process.saturating_sub(server) as f64 / secs,
            server: server as f64 / secs,
            helper: 0.0,
        }
    }
}

/// utime + stime from a `/proc/.../stat` file.
fn cpu_ticks(path: &std::path::Path) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command: state(0) ppid(1) ... utime(11) stime(12).
    let get = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    get(11).unwrap_or(0) + get(12).unwrap_or(0)
}

/// Prints sent and delivered counts every second until aborted.
fn progress(sent: Arc<AtomicUsize>, delivered: Arc<AtomicUsize>, s: &Scale) -> Abort {
    let (total, all) = (s.publications, s.publications * s.subscribers);
    Abort(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let (p, d) = (sent.load(Relaxed), delivered.load(Relaxed));
            eprintln!("  sent {p}/{total}, delivered {d}/{all}");
        }
    }))
}

/// Aborts its task when dropped, on every path out.
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One transport: connect and subscribe every subscriber, publish, check
/// every delivery, close, and wait until the server has let them all go.
async fn measure(
    transport: Transport,
    server: &Server,
    s: &Scale,
    http: &reqwest::Client,
) -> Result<Row> {
    let (n, total) = (s.subscribers, s.publications as u64);
    let dial = Arc::new(Dial::new(server.running.addr, n, CONNECTING)?);
    let (stop, _) = watch::channel(false);
    let delivered = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let (ready, mut readies) = mpsc::unbounded_channel();
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (dial, gate, ready) = (dial.clone(), gate.clone(), ready.clone());
            let (stop, delivered) = (stop.subscribe(), delivered.clone());
            tokio::spawn(async move {
                let permit = gate.acquire_owned().await;
                let opened =
                    tokio::time::timeout(WAIT, client::open(transport, &dial, &format!("u{i}")))
                        .await;
                drop(permit);
                let source = match opened {
                    Ok(Ok(source)) => source,
                    failed => {
                        let why = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => format!("not subscribed within {WAIT:?}"),
                        };
                        let _ = ready.send(Err(format!("u{i}: {why}")));
                        return Received::failed(why);
                    }
                };
                let _ = ready.send(Ok(()));
                client::receive(source, total, stop, delivered).await
            })
        })
        .collect();
    drop(ready);
    let (mut failed, mut first_error) = (0, None);
    for _ in 0..n {
        match readies.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            None => {
                first_error.get_or_insert("a subscriber task ended early".to_string());
                break;
            }
        }
    }
    let connect_rate = n as f64 / started.elapsed().as_secs_f64();
    eprintln!("  {n} connected and subscribed: {connect_rate:.0}/s");

    let mut outcome = Ok(Duration::ZERO);
    let mut cpu = CpuUse::default();
    let publishing = Instant::now();
    if first_error.is_none() {
        let sent = Arc::new(AtomicUsize::new(0));
        let _ticker = progress(sent.clone(), delivered.clone(), s);
        let ticks = Ticks::now();
        outcome = publish_all(http, server, s, &sent).await;
        let until = Instant::now() + WAIT;
        while outcome.is_ok()
            && delivered.load(Relaxed) < n * s.publications
            && Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cpu = ticks.since();
        // A repeated last publication would arrive now.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    let mut received = Vec::with_capacity(n);
    for task in tasks {
        received.push(task.await?);
    }
    // Every connection is closed now (each task dropped its own); the server
    // must let them all go before the next transport starts.
    drop(dial);
    let drain = drained(server).await;
    if let Some(e) = first_error {
        return Err(format!(
            "{failed} of {n} subscribers did not connect and subscribe; first: {e}"
        )
        .into());
    }
    let publish_elapsed = outcome?;
    let mut problems = Vec::new();
    let (mut latency, mut last) = (load::new_histogram(), publishing);
    for (i, got) in received.iter().enumerate() {
        if let Some(why) = got.problem(total) {
            problems.push(format!("u{i}: {why}"));
        }
        for &us in &got.latencies {
            latency.saturating_record(us as u64);
        }
        last = last.max(got.last.unwrap_or(publishing));
    }
    if let Some(first) = problems.first() {
        let mut why = format!(
            "{} of {n} subscribers did not get every publication once, in order; first: {first}",
            problems.len()
        );
        for more in problems.iter().skip(1).take(4) {
            why.push_str(&format!("\n    then: {more}"));
        }
        return Err(why.into());
    }
    drain?;
    Ok(Row {
        connect_rate,
        publish_rate: s.publications as f64 / publish_elapsed.as_secs_f64(),
        elapsed: last - publishing,
        latency,
        cpu,
    })
}

/// Waits until the server holds no connection, so the next transport starts clean.
async fn drained(server: &Server) -> Result<()> {
    let app = &server.running.app;
    let until = Instant::now() + WAIT;
    loop {
        let (clients, open) = (app.node.hub.num_clients(), app.connections.active());
        if clients == 0 && open == 0 {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!(
                "{WAIT:?} after the subscribers closed their connections, the server still \
                 counts {clients} clients and {open} open connections"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
