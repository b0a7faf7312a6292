//! The table and the `docs/benchmarks.md` section of `transports`.

use super::client::TRANSPORTS;
use super::{CONNECTING, HEADING, Row, SERVER_THREADS, Scale, cpus};
use crate::report::{self, grouped};
use crate::scenarios::{loadgen_cpu, ms, rate, server_cpu};

/// Below this share of the paced rate, the publisher is said to have fallen behind.
const KEPT_PACE: f64 = 0.95;

fn deliveries_per_second(r: &Row) -> f64 {
    r.latency.len() as f64 / r.elapsed.as_secs_f64().max(1e-6)
}

pub fn table(s: &Scale, rows: &[std::result::Result<Row, String>]) -> String {
    let baseline = rows
        .first()
        .and_then(|r| r.as_ref().ok())
        .map(deliveries_per_second);
    let mut out = String::from(
        "| Transport | Subscribers | Publications | Deliveries/s | ÷ WebSocket | p50 | p99 | max | \
         Every delivery once, in order | Connect+subscribe per second | Server CPU | Loadgen CPU |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n",
    );
    let paced = format!("{} at {}/s", grouped(s.publications as u64), s.rate);
    for (transport, row) in TRANSPORTS.iter().zip(rows) {
        let r = match row {
            Ok(r) => r,
            Err(e) => {
                let why = e.lines().next().unwrap_or_default().replace('|', "/");
                let empty = " |".repeat(10);
                out.push_str(&format!(
                    "| {} | **failed**: {why} |{empty}\n",
                    transport.label()
                ));
                continue;
            }
        };
        let delivered = deliveries_per_second(r);
        let ratio = baseline.map_or("n/a".into(), |b| format!("{:.2}×", delivered / b));
        let mut publications = paced.clone();
        if r.publish_rate < KEPT_PACE * s.rate {
            publications.push_str(&format!(" ⚠ sent at {:.0}/s", r.publish_rate));
        }
        out.push_str(&format!(
            "| {} | {} | {publications} | {} | {ratio} | {} | {} | {} | yes, {} | {} | {} | {} |\n",
            transport.label(),
            grouped(s.subscribers as u64),
            rate(delivered),
            ms(r.latency.value_at_quantile(0.50)),
            ms(r.latency.value_at_quantile(0.99)),
            ms(r.latency.max()),
            grouped(r.latency.len()),
            rate(r.connect_rate),
            server_cpu(&r.cpu),
            loadgen_cpu(&r.cpu),
        ));
    }
    out
}

pub fn section(s: &Scale, nofile: u64, table: &str) -> String {
    let offered = s.rate * s.subscribers as f64;
    format!(
        "{HEADING}\n\n\
         Reproduce: `cargo run --release -p herald-bench -- {command}`\n\n\
         - Machine: {machine}\n- Date: {date}\n\
         - One herald server, started in-process (`herald_server::start`) on `127.0.0.1:0` \
         with the in-memory engine and nothing durable (`storage.durable = false`, the inbox \
         and chat off), serves all three transports one after another. Channel `{channel}` \
         has no namespace and no history; clients may subscribe. Pings are off \
         (`client.ping_interval = \"10m\"`). The server runs on its own tokio runtime \
         ({cpus} worker threads named `{threads}`) and the load generator on the process's \
         main runtime, so their CPU is read apart from `/proc/self/task`.\n\
         - Per transport: {subs} subscribers, each its own connection as its own user, \
         connect and then subscribe to `{channel}`. WebSocket: both commands as frames on \
         `/connection/websocket`. HTTP streaming: `POST /connection/http_stream` with the \
         connect command as the body. SSE: `GET /connection/sse?cf_connect=<connect \
         command>`. On both fallbacks the subscribe is a `POST /emulation` with the `session` \
         and `node` of the connect reply, which must answer 200, and the subscribe reply is \
         awaited on the stream. Each stream holds its own HTTP/1.1 connection (reqwest, \
         `Response::chunk()`); the `/emulation` posts share a pooled client. The WebSocket \
         client is tokio-tungstenite with a 4 KiB read buffer, as in the suite's load \
         generator: it zeroes the free part of that buffer before every read, and with its \
         128 KiB default the zeroing alone took about 14 % of the load generator's CPU and, \
         at 200 publications/s, held the WebSocket row to about 150/s while the fallbacks \
         kept up. {connecting} \
         subscribers open at once; connect+subscribe per second is {subs} over the time \
         until the last subscribe reply.\n\
         - Then one API caller sends {pubs} publications with `POST /api/publish`, paced at \
         {pace}/s (publication k is due k/{pace} s after the first and each is awaited), \
         so {offered} deliveries/s are offered. `data` is `{{\"t\": <send stamp, µs>, \
         \"seq\": k}}`; latency runs from the stamp, taken before the API call, to reading \
         the frame or chunk that carries the push. Every publication goes to all \
         {subs} subscribers at once, so a delivery's latency includes the server writing, \
         and the load generator reading, the others of the same publication before it. \
         Deliveries/s counts from the first \
         publish to the last delivery: at a paced rate it is the offered rate for a \
         transport that keeps up, so ÷ WebSocket (the first row, measured in the same run) \
         near 1.00× means it kept up, and the latency columns are where transports differ. \
         A publisher that fell below {kept:.0} % of the pace is marked ⚠ in Publications.\n\
         - Checked, not sampled: every subscriber must receive sequence numbers 0 to {last} \
         each once and in order. A missing, repeated or reordered delivery, a stream the \
         server ends, a failed connect, subscribe or publish fails the run and writes \
         nothing. After each transport its connections close, and the server must count \
         none left before the next starts.\n\
         - Server CPU is the user+system time of the server's threads over the publishing \
         window, Loadgen CPU the rest of this process (subscribers and publisher), 100 % = \
         one core (⚠ saturated at ≥ 95 % of a core). Both share the {cpus} CPUs of a shared \
         machine, so absolute numbers move between runs; compare rows of one run. Open \
         files limit {nofile}.\n\n\
         {table}",
        command = s.command,
        machine = report::machine_facts(),
        date = report::today(),
        channel = super::CHANNEL,
        threads = SERVER_THREADS,
        cpus = cpus(),
        subs = grouped(s.subscribers as u64),
        connecting = CONNECTING,
        pubs = grouped(s.publications as u64),
        last = grouped(s.publications as u64 - 1),
        pace = s.rate,
        offered = grouped(offered as u64),
        kept = KEPT_PACE * 100.0,
    )
}
