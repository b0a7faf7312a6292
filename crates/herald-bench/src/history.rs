//! `history`: durable history (SQLite) against in-memory history, measured side
//! by side in one process.
//!
//! Two servers (three with `--with-full`) run at once. Publish throughput is
//! measured in interleaved rounds whose order rotates, so a noisy neighbour
//! hurts every server alike. Every API answer is checked: each channel must get
//! offsets 1..=n exactly once, under one epoch. Recovery then publishes the
//! missed publications first, connects a raw WebSocket and times the
//! `subscribe` with `recover: true` from sending it to receiving the reply.

use crate::Result;
use crate::load::{self, Answer, Server, Ws};
use crate::report;
use hdrhistogram::Histogram;
use herald_core::ChannelOptions;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// API publishes per server, in total over all rounds.
    #[arg(long, default_value_t = 20_000)]
    publishes: usize,
    /// Concurrent publishers; each awaits its answer before the next publish.
    #[arg(long, default_value_t = 16)]
    publishers: usize,
    /// Channels the publishes are spread over, round-robin.
    #[arg(long, default_value_t = 16)]
    channels: usize,
    /// Throughput rounds; the servers take turns, in a rotating order.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Unmeasured publishes per server before the first round.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// Bytes of text in each publication's data.
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Publications a recovering subscriber has missed (the channel keeps exactly this many).
    #[arg(long, default_value_t = 1_000)]
    missed: usize,
    /// Recovery measurements per server.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Also run a durable server with sync = "full" (fsync on every commit).
    #[arg(long)]
    with_full: bool,
    /// Where to write the results section.
    #[arg(long, default_value_os_t = report::default_doc_path())]
    doc: PathBuf,
    /// Print the table only; leave the doc alone.
    #[arg(long)]
    no_doc: bool,
}

/// What one server measured.
struct Measured {
    label: String,
    elapsed: Duration,
    latency: Histogram<u64>,
    answers: Vec<Answer>,
    recoveries: Vec<Duration>,
}

pub async fn run(args: Args) -> Result<()> {
    if args.publishes == 0 || args.rounds == 0 || args.missed == 0 || args.repeats == 0 {
        return Err("--publishes, --rounds, --missed and --repeats must be at least 1".into());
    }
    let mut servers = vec![
        start("memory", None, &args).await?,
        start("durable, sync=normal", Some("normal"), &args).await?,
    ];
    if args.with_full {
        servers.push(start("durable, sync=full", Some("full"), &args).await?);
    }
    let http = reqwest::Client::new();
    let payload = "x".repeat(args.payload_bytes);
    let channels: Vec<String> = (0..args.channels.max(1))
        .map(|i| format!("bench:c{i}"))
        .collect();
    let mut measured: Vec<Measured> = servers
        .iter()
        .map(|server| Measured {
            label: server.label.clone(),
            elapsed: Duration::ZERO,
            latency: load::new_histogram(),
            answers: Vec::new(),
            recoveries: Vec::new(),
        })
        .collect();

    for server in &servers {
        let warmup = ["bench:warmup".to_string()];
        let label = format!("{} warm-up", server.label);
        load::publish_many(
            &http,
            server,
            &warmup,
            args.warmup,
            args.publishers,
            &payload,
            &label,
        )
        .await?;
    }
    for round in 0..args.rounds {
        let count =
            args.publishes / args.rounds + usize::from(round < args.publishes % args.rounds);
        for turn in 0..servers.len() {
            let i = (round + turn) % servers.len();
            let server = &servers[i];
            let label = format!("round {}/{} {}", round + 1, args.rounds, server.label);
            let run = load::publish_many(
                &http,
                server,
                &channels,
                count,
                args.publishers,
                &payload,
                &label,
            )
            .await?;
            eprintln!(
                "{label}: {count} publishes in {:.2?} ({:.0}/s)",
                run.elapsed,
                count as f64 / run.elapsed.as_secs_f64()
            );
            let m = &mut measured[i];
            m.elapsed += run.elapsed;
            m.latency.add(run.latency).map_err(|e| e.to_string())?;
            m.answers.extend(run.answers);
        }
    }
    for (m, server) in measured.iter().zip(&servers) {
        load::check_offsets(&server.label, &channels, &m.answers)?;
    }

    for repeat in 0..args.repeats {
        for (i, server) in servers.iter().enumerate() {
            let channel = format!("recover:r{repeat}");
            let took = recover(&http, server, &channel, &args, &payload).await?;
            eprintln!(
                "recover {}/{} {}: {} publications in {took:.2?}",
                repeat + 1,
                args.repeats,
                server.label,
                args.missed
            );
            measured[i].recoveries.push(took);
        }
    }
    for server in servers {
        server.running.shutdown().await;
    }

    let table = table(&measured, &args);
    println!("{table}");
    if !args.no_doc {
        report::write_section(&args.doc, &section(&measured, &args, &table))?;
        eprintln!("wrote {}", args.doc.display());
    }
    Ok(())
}

async fn start(label: &str, sync: Option<&str>, args: &Args) -> Result<Server> {
    let mut config = load::base_config();
    let history = |size: usize| ChannelOptions {
        history_size: size,
        history_ttl: Some("10m".into()),
        force_recovery: true,
        allow_subscribe_for_client: true,
        ..Default::default()
    };
    config.channel.namespaces = vec![
        ("bench".into(), history(1_000)),
        ("recover".into(), history(args.missed)),
    ];
    let dir = match sync {
        None => {
            config.storage.durable = false;
            None
        }
        Some(sync) => {
            let dir = tempfile::tempdir()?;
            config.storage.durable = true;
            config.storage.path = dir.path().to_path_buf();
            config.storage.sync = sync.into();
            Some(dir)
        }
    };
    Server::start(label, config, dir).await
}

/// Publishes `args.missed` to a fresh channel, then times a recovering subscribe
/// from offset 0 under the epoch of the first publish's answer.
async fn recover(
    http: &reqwest::Client,
    server: &Server,
    channel: &str,
    args: &Args,
    payload: &str,
) -> Result<Duration> {
    let label = &server.label;
    let url = server.url("/api/publish");
    let (offset, epoch) = load::publish(http, &url, channel, &json!({"seq": 0})).await?;
    if offset != 1 {
        return Err(format!("{label}: first publish to {channel} answered offset {offset}").into());
    }
    let rest = [channel.to_string()];
    let fill = format!("{label} fill {channel}");
    let run = load::publish_many(
        http,
        server,
        &rest,
        args.missed - 1,
        args.publishers,
        payload,
        &fill,
    )
    .await?;
    let mut all = run.answers;
    all.push(Answer {
        channel: 0,
        offset,
        epoch: epoch.clone(),
    });
    load::check_offsets(label, &rest, &all)?;

    let mut ws = Ws::open(server).await?;
    let connected = ws
        .call(json!({"connect": {"token": load::token("bench")?}}))
        .await?;
    if connected.get("connect").is_none() {
        return Err(format!("{label}: connect failed: {connected}").into());
    }
    let subscribe =
        json!({"subscribe": {"channel": channel, "recover": true, "offset": 0, "epoch": epoch}});
    let sent = std::time::Instant::now();
    let id = ws.send(subscribe).await?;
    let (reply, arrived) = ws.reply(id).await?;
    let took = arrived - sent;
    ws.close().await;

    let result = &reply["subscribe"];
    let publications = result["publications"].as_array().map_or(&[][..], |p| p);
    let offsets: Vec<u64> = publications
        .iter()
        .filter_map(|p| p["offset"].as_u64())
        .collect();
    let expected: Vec<u64> = (1..=args.missed as u64).collect();
    let ok = result["recovered"] == json!(true)
        && result["was_recovering"] == json!(true)
        && result["epoch"] == json!(epoch)
        && offsets == expected;
    if !ok {
        let head: String = reply.to_string().chars().take(400).collect();
        return Err(format!(
            "{label}: recovering {} publications of {channel} from offset 0 failed: \
             recovered={} was_recovering={} epoch={} (published under {epoch}), \
             {} publications with offsets {:?}..{:?}; reply starts {head}",
            args.missed,
            result["recovered"],
            result["was_recovering"],
            result["epoch"],
            publications.len(),
            offsets.first(),
            offsets.last(),
        )
        .into());
    }
    Ok(took)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn us_to_ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn rate(m: &Measured, args: &Args) -> f64 {
    args.publishes as f64 / m.elapsed.as_secs_f64()
}

fn median(d: &[Duration]) -> Duration {
    let mut d = d.to_vec();
    d.sort_unstable();
    d[d.len() / 2]
}

fn table(measured: &[Measured], args: &Args) -> String {
    let memory = rate(&measured[0], args);
    let mut out = format!(
        "| History | Publishes/s | vs memory | p50 publish | p99 publish | \
         Recover {missed}: median | Recover {missed}: best |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
        missed = report::grouped(args.missed as u64)
    );
    for m in measured {
        let best = m.recoveries.iter().min().copied().unwrap_or_default();
        out.push_str(&format!(
            "| {} | {} | {:.2}× | {} | {} | {} | {} |\n",
            m.label,
            report::grouped(rate(m, args) as u64),
            rate(m, args) / memory,
            us_to_ms(m.latency.value_at_quantile(0.50)),
            us_to_ms(m.latency.value_at_quantile(0.99)),
            ms(median(&m.recoveries)),
            ms(best),
        ));
    }
    out
}

fn section(measured: &[Measured], args: &Args, table: &str) -> String {
    let (memory, durable) = (&measured[0], &measured[1]);
    let ratio = rate(durable, args) / rate(memory, args);
    let (rec_mem, rec_dur) = (median(&memory.recoveries), median(&durable.recoveries));
    let recovery = if rec_dur.as_secs_f64() > 1.5 * rec_mem.as_secs_f64() {
        format!(
            "Recovery was slower with durable history ({} against {} median)",
            ms(rec_dur),
            ms(rec_mem)
        )
    } else if rec_mem.as_secs_f64() > 1.5 * rec_dur.as_secs_f64() {
        format!(
            "Recovery was faster with durable history ({} against {} median) (noise: both serve it from memory)",
            ms(rec_dur),
            ms(rec_mem)
        )
    } else {
        format!(
            "Recovery took about the same in both ({} durable, {} in memory, median)",
            ms(rec_dur),
            ms(rec_mem)
        )
    };
    format!(
        "## History: durable vs in-memory\n\n\
         Reproduce: `cargo run --release -p herald-bench -- history`\n\n\
         - Machine: {machine}\n- Date: {date}\n\
         - Load: {publishes} API publishes per server (`POST /api/publish`, each awaited) from \
         {publishers} concurrent publishers over {channels} channels with history, \
         {payload}-byte payloads, in {rounds} interleaved rounds after {warmup} warm-up publishes; \
         recovery: {repeats} times per server, a fresh channel with {missed} publications, \
         then a raw WebSocket `subscribe` with `recover: true` from offset 0, timed from \
         sending it to receiving the reply with all {missed} publications.\n\
         - Servers run in the same process as the load generator, side by side; durable \
         history is SQLite in a temp dir.\n\n\
         {table}\n\
         Durable history reached {ratio:.2}× the in-memory publish throughput \
         ({dur_rate} against {mem_rate} publishes/s), and p99 publish latency went from \
         {mem_p99} to {dur_p99}: with durability on, the API answers a publish only after \
         the group-commit writer has committed it to SQLite, so each publish waits for a \
         batch transaction instead of an in-memory append. With {publishers} publishes in flight, throughput is about concurrency divided by latency, so this measures the commit round trip more than what SQLite can write. {recovery}; recovery is served \
         from the in-memory stream in both modes (durable history is loaded from SQLite at \
         start-up), so it should not differ. The machine is shared and noisy, and the load \
         generator competes with the servers for the same {cpus} CPUs, so absolute numbers \
         move from run to run; the ratio measured side by side, in interleaved rounds, is \
         what matters, and even it shifts between runs, so read it to one significant \
         figure.\n",
        machine = report::machine_facts(),
        date = report::today(),
        publishes = report::grouped(args.publishes as u64),
        publishers = args.publishers,
        channels = args.channels,
        payload = args.payload_bytes,
        rounds = args.rounds,
        warmup = args.warmup,
        repeats = args.repeats,
        missed = report::grouped(args.missed as u64),
        dur_rate = report::grouped(rate(durable, args) as u64),
        mem_rate = report::grouped(rate(memory, args) as u64),
        mem_p99 = us_to_ms(memory.latency.value_at_quantile(0.99)),
        dur_p99 = us_to_ms(durable.latency.value_at_quantile(0.99)),
        cpus = std::thread::available_parallelism().map_or(0, |n| n.get()),
    )
}
