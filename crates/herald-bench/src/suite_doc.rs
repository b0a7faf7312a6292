//! The suite's report: the tables, the targets from the issue checked against
//! the numbers, and the `docs/benchmarks.md` section with its SVG charts.

use crate::Result;
use crate::peers::Kind;
use crate::report::{self, grouped};
use crate::scenarios::{self, channels, fanout, idle, publish};
use crate::suite::{Outcomes, Results};
use crate::svg::{Bar, bar_chart};
use std::path::Path;

const HEADING: &str = "## Side by side: herald and the stacks people use";

pub fn tables(r: &Results) -> String {
    let s = &r.scale;
    format!(
        "### Fan-out: 1 channel, {subs} subscribers, {payload}-byte messages\n\n{fanout}\n\
         ### Idle memory per connection (server RSS growth ÷ open connections)\n\n{memory}\n\
         ### Connect storm ({storm} connections, {conc} handshakes in flight)\n\n{storm_table}\n\
         ### Publish API ({publishers} concurrent HTTP publishers, no subscribers)\n\n{publish}\n\
         ### Many channels ({conns} connections, a personal channel each, {rate} publications/s)\n\n{channels}",
        subs = grouped(s.fanout_subscribers as u64),
        payload = crate::loadgen::PAYLOAD_BYTES,
        fanout = fanout::table(&r.fanout),
        memory = idle::memory_table(&s.idle_steps, &r.idle),
        storm = grouped(s.idle_steps.iter().copied().max().unwrap_or(0) as u64),
        conc = s.concurrency,
        storm_table = idle::storm_table(&r.idle),
        publishers = s.publishers,
        publish = publish::table(&r.publish),
        conns = grouped(s.channels.0 as u64),
        rate = scenarios::rate(s.channels.1),
        channels = channels::table(&r.channels),
    )
}

fn ok<T>(outcomes: &Outcomes<T>, kind: Kind) -> Option<&T> {
    outcomes
        .iter()
        .find(|(k, _)| *k == kind)
        .and_then(|(_, r)| r.as_ref().ok())
}

/// The targets, each with what this run measured.
pub fn targets(r: &Results) -> String {
    let mut out = String::from("### Targets\n\n");
    let herald_fanout = ok(&r.fanout, Kind::Herald).map(|f| f.max_rate);
    for kind in [Kind::Baseline, Kind::Sockudo, Kind::SocketIo, Kind::Django] {
        let goal = fanout::target(kind).unwrap_or(1.0);
        let line = match (herald_fanout, ok(&r.fanout, kind)) {
            (Some(h), Some(p)) => {
                let verdict = if h / p.max_rate >= goal {
                    "met"
                } else {
                    "**not met**"
                };
                format!(
                    "{:.2}× ({} against {} deliveries/s): {verdict}",
                    h / p.max_rate,
                    scenarios::rate(h),
                    scenarios::rate(p.max_rate)
                )
            }
            _ => "not measured in this run".into(),
        };
        out.push_str(&format!("- Fan-out ≥ {goal}× {}: {line}\n", kind.label()));
    }
    let herald_mem = ok(&r.idle, Kind::Herald).and_then(idle::Idle::last_per_conn);
    let leanest = r
        .idle
        .iter()
        .filter(|(k, _)| *k != Kind::Herald)
        .filter_map(|(k, res)| {
            res.as_ref()
                .ok()
                .and_then(idle::Idle::last_per_conn)
                .map(|m| (*k, m))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let at = r.scale.idle_steps.last().copied().unwrap_or(0);
    match herald_mem {
        Some(m) => {
            let verdict = if m <= 8.0 { "met" } else { "**not met**" };
            out.push_str(&format!(
                "- Idle memory ≤ 8 KiB/connection: {m:.1} KiB at {} connections: {verdict}\n",
                grouped(at as u64)
            ));
            match leanest {
                Some((kind, p)) => {
                    let verdict = if m <= p / 2.0 { "met" } else { "**not met**" };
                    out.push_str(&format!(
                        "- Idle memory ≤ half the leanest other system's ({}, {p:.1} KiB): {m:.1} KiB: {verdict}\n",
                        kind.label()
                    ));
                }
                None => out.push_str(
                    "- Idle memory ≤ half the leanest other system's: not measured in this run\n",
                ),
            }
        }
        None => out.push_str("- Idle memory targets: herald not measured in this run\n"),
    }
    if r.scale.fanout_subscribers < 10_000 || r.scale.idle_steps.last() != Some(&18_000) {
        out.push_str(&format!(
            "- This is the `{}` scale: the targets are stated for `full` (10,000 subscribers, up to 18,000 connections).\n",
            r.scale.name
        ));
    }
    out
}

pub fn write(r: &Results, doc: &Path) -> Result<()> {
    let img = doc.parent().unwrap_or(Path::new(".")).join("img");
    std::fs::create_dir_all(&img)?;
    let charts = charts(r);
    for (name, svg) in &charts {
        std::fs::write(img.join(name), svg)?;
    }
    let versions: String = r
        .versions
        .iter()
        .map(|(k, v)| format!("  - {}: {v}\n", k.label()))
        .collect();
    let images: String = charts
        .iter()
        .map(|(name, _)| format!("![{name}](img/{name})\n"))
        .collect();
    let s = &r.scale;
    let section = format!(
        "{HEADING}\n\n\
         Reproduce: `{command}`\n\n\
         - Machine: {machine}\n- Date: {date}\n- Versions:\n{versions}\
         - Every system runs as its own process, started fresh for each scenario; the load \
         generator is the `herald-bench` process on the same machine (open files limit {nofile}), \
         spreading its WebSockets over source addresses 127.0.0.2–127.0.0.9. Each payload is a \
         {payload}-byte string that starts with its send time in µs, so each delivery's \
         publish-to-deliver latency goes into an HDR histogram. Herald connects with a JWT \
         signed with its HMAC secret (verified on every connect) and subscribes with the \
         Centrifugo protocol; sockudo is spoken as Pusher Channels protocol 7 \
         (`pusher:subscribe` per channel, `pusher:ping` answered `pusher:pong`) and published \
         to through its HTTP API, each request signed with HMAC-SHA256 (and an MD5 of the \
         body) as Pusher's libraries do; Socket.IO is spoken as Engine.IO v4 (`40` namespace \
         connect, ping `2` answered `3`); the baseline and Django need no handshake.\n\
         - sockudo runs from a config generated per run: one app, the local (in-memory) \
         adapter, its rate limiter, metrics listener and queue off, and `batch_events` allowed \
         {batch} events per request (Pusher's limit is 10); its other settings are its defaults.\n\
         - Fan-out maximum: {fanout_publishers} HTTP publishers publish as fast as the system takes \
         them while at most {window} publications per subscriber are undelivered, {warmup:?} \
         warm-up then {measure:?} measured. \"Backlog kept\" is the average undelivered \
         backlog as a share of that window: near 0 % means each publication was delivered \
         before the next one was accepted, so accepting publishes (on the same CPUs) set the \
         pace. Latency: a fixed rate of 50 % of that maximum from {publishers} publishers for \
         {measure:?}, each publication stamped with its due time.\n\
         - Idle memory: connections opened in steps; after each step settles ({settle:?}) the \
         server's RSS growth over its idle RSS is divided by the open connections (Django: the \
         daphne process group; its Redis is not counted). The connect storm is the same \
         connections, timed while opening.\n\
         - Many channels and the 50 % runs publish on a schedule; each publication carries its \
         due time, so when a system answers publishes slower than asked (Django Channels in \
         many channels), its publishers fall behind and that wait counts as latency. Delivered \
         below 100 % means publications were answered but never reached their subscribers \
         before the run ended.\n\
         - Loadgen CPU is this process's user+system time over wall time (100 % = one core); \
         ⚠ saturated marks ≥ 95 % of a core, where the load generator may be what limits the \
         number. Server CPU likewise for the system under test (Django: daphne and Redis). The \
         machine has {cpus} CPUs shared by the load generator and the server.\n\n\
         {targets}\n{tables}\n{images}",
        command = r.command,
        batch = crate::scenarios::publish::BATCH,
        machine = report::machine_facts(),
        date = report::today(),
        nofile = r.nofile,
        payload = crate::loadgen::PAYLOAD_BYTES,
        publishers = s.publishers,
        fanout_publishers = s.fanout_publishers,
        window = s.window,
        warmup = s.warmup,
        measure = s.measure,
        settle = s.settle,
        cpus = std::thread::available_parallelism().map_or(0, |n| n.get()),
        targets = targets(r),
        tables = tables(r),
    );
    report::write_section(doc, &section)
}

fn charts(r: &Results) -> Vec<(String, String)> {
    let mut charts = Vec::new();
    let fanout: Vec<Bar> = r
        .fanout
        .iter()
        .filter_map(|(k, res)| {
            res.as_ref()
                .ok()
                .map(|f| bar(*k, f.max_rate, scenarios::rate(f.max_rate)))
        })
        .collect();
    let title = format!(
        "Fan-out: deliveries/s, 1 channel × {} subscribers",
        grouped(r.scale.fanout_subscribers as u64)
    );
    charts.push((
        "bench-fanout.svg".into(),
        bar_chart(&title, "higher is better", &fanout),
    ));
    let memory: Vec<Bar> = r
        .idle
        .iter()
        .filter_map(|(k, res)| {
            let m = res.as_ref().ok()?.last_per_conn()?;
            Some(bar(*k, m, format!("{m:.1} KiB")))
        })
        .collect();
    let at = grouped(r.scale.idle_steps.last().copied().unwrap_or(0) as u64);
    let title = format!("Idle memory per connection at {at} connections");
    charts.push((
        "bench-memory.svg".into(),
        bar_chart(&title, "KiB of server RSS, lower is better", &memory),
    ));
    let storm: Vec<Bar> = r
        .idle
        .iter()
        .filter_map(|(k, res)| {
            let i = res.as_ref().ok()?;
            Some(bar(
                *k,
                i.connects_per_s(),
                scenarios::rate(i.connects_per_s()),
            ))
        })
        .collect();
    charts.push((
        "bench-connect.svg".into(),
        bar_chart("Connect storm: connections/s", "higher is better", &storm),
    ));
    let publish: Vec<Bar> = r
        .publish
        .iter()
        .filter_map(|(k, res)| {
            res.as_ref()
                .ok()
                .map(|p| bar(*k, p.single, scenarios::rate(p.single)))
        })
        .collect();
    let title = "Publish API: publications/s, one per HTTP request";
    charts.push((
        "bench-publish.svg".into(),
        bar_chart(title, "higher is better", &publish),
    ));
    charts
}

fn bar(kind: Kind, value: f64, text: String) -> Bar {
    Bar {
        label: kind.label().into(),
        value,
        text,
    }
}
