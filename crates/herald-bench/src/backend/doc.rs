//! The tables and the `docs/benchmarks.md` section of `backend`.

use super::outbox::Delivered;
use super::outbox::{self, Offer, Via};
use super::{Connect, HEADING, Measured, Scale, Storm};
use crate::report;

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn percent(cores: f64) -> String {
    format!("{:.0}%", cores * 100.0)
}

/// The load generator's CPU, marked where it may be what limits the number
/// (the suite's rule: 95 % of a core).
fn loadgen(cores: f64) -> String {
    let mark = if cores >= 0.95 { " ⚠ saturated" } else { "" };
    format!("{}{mark}", percent(cores))
}

/// A failed row: its label, then why, in the first cell after it.
fn failed_row(label: &str, why: &str, columns: usize) -> String {
    let why = why.lines().next().unwrap_or_default().replace('|', "/");
    format!(
        "| {label} | **failed**: {why} |{}\n",
        " |".repeat(columns - 2)
    )
}

fn connect_table(m: &Measured) -> String {
    let mut out = String::from(
        "| Connect with | Connects | Connects/s | ÷ JWT | p50 connect | p99 connect | \
         max connect | herald CPU per connect | herald CPU | Backend requests | \
         Backend CPU per request | Loadgen CPU |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let jwt = m.storms.iter().find_map(|(path, storm)| match storm {
        Ok(storm) if *path == Connect::Jwt => Some(storm.rate()),
        _ => None,
    });
    for (path, storm) in &m.storms {
        let storm = match storm {
            Ok(storm) => storm,
            Err(why) => {
                out.push_str(&failed_row(path.label(), why, 12));
                continue;
            }
        };
        let ratio = jwt.map_or("n/a".into(), |jwt| format!("{:.2}×", storm.rate() / jwt));
        let per_request = match storm.backend_requests {
            0 => "–".into(),
            n => format!("{:.0} µs", storm.cpu.backend * 1e6 / n as f64),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {ratio} | {} | {} | {} | {:.0} µs | {} | {} | {per_request} | {} |\n",
            path.label(),
            report::grouped(storm.connects),
            report::grouped(storm.rate() as u64),
            ms(storm.latency.value_at_quantile(0.50)),
            ms(storm.latency.value_at_quantile(0.99)),
            ms(storm.latency.max()),
            storm.herald_us(),
            percent(storm.cpu.cores(storm.cpu.herald)),
            report::grouped(storm.backend_requests),
            loadgen(storm.cpu.cores(storm.cpu.loadgen)),
        ));
    }
    out
}

fn outbox_table(m: &Measured) -> String {
    let mut out = String::from(
        "| Publication | Offered | Written/s | Delivered/s | ÷ API publish | \
         p50 write → delivery | p99 write → delivery | max write → delivery | \
         herald CPU per message | herald CPU | PostgreSQL CPU per message | PostgreSQL CPU | \
         Every message once, in order |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (phase, delivered) in &m.phases {
        let via = match phase.via {
            Via::Outbox => "Outbox row",
            Via::Api => "`POST /api/publish`",
        };
        let offered = match phase.offer {
            Offer::Rate(rate) => format!("{}/s", report::grouped(rate as u64)),
            Offer::FlatOut => "flat out".into(),
            Offer::Backlog(rows) => format!("{} in one transaction", report::grouped(rows as u64)),
        };
        let d = match delivered {
            Ok(d) => d,
            Err(why) => {
                out.push_str(&failed_row(&format!("{via}, {offered}"), why, 13));
                continue;
            }
        };
        let written = match phase.offer {
            Offer::Backlog(_) => "–".into(),
            _ => report::grouped(d.written_rate() as u64),
        };
        // The API phase at the same offer in the same run; a backlog is
        // drained as fast as herald takes it, so against API flat out.
        let compared = match phase.offer {
            Offer::Backlog(_) => Offer::FlatOut,
            offer => offer,
        };
        let api = m.phases.iter().find_map(|(other, result)| match result {
            Ok(api) if other.via == Via::Api && other.offer == compared => Some(api),
            _ => None,
        });
        let ratio = api.map_or("n/a".into(), |api| {
            format!("{:.2}×", d.delivered_rate() / api.delivered_rate())
        });
        let per_message = |cpu_seconds: f64| cpu_seconds * 1e6 / d.latency.len().max(1) as f64;
        out.push_str(&format!(
            "| {via} | {offered} | {written} | {} | {ratio} | {} | {} | {} | {:.0} µs | {} | \
             {:.0} µs | {} | yes, {} |\n",
            report::grouped(d.delivered_rate() as u64),
            ms(d.latency.value_at_quantile(0.50)),
            ms(d.latency.value_at_quantile(0.99)),
            ms(d.latency.max()),
            per_message(d.cpu.herald),
            percent(d.cpu.cores(d.cpu.herald)),
            per_message(d.cpu.postgres),
            percent(d.cpu.cores(d.cpu.postgres)),
            report::grouped(d.latency.len()),
        ));
    }
    out
}

/// Both tables, and what they say in a few sentences.
pub fn tables(m: &Measured) -> String {
    format!(
        "### Connect proxy against JWT: connects per second\n\n{}\n\
         ### Outbox against API publish: write to delivery\n\n{}\n{}",
        connect_table(m),
        outbox_table(m),
        reading(m)
    )
}

/// The measured row of `path`, if it has numbers.
fn storm(m: &Measured, path: Connect) -> Option<&Storm> {
    m.storms.iter().find_map(|(p, storm)| match storm {
        Ok(storm) if *p == path => Some(storm),
        _ => None,
    })
}

/// The measured phase of `via` with `offer`, if it has numbers.
fn phase(m: &Measured, via: Via, offer: fn(Offer) -> bool) -> Option<&Delivered> {
    m.phases.iter().find_map(|(p, delivered)| match delivered {
        Ok(delivered) if p.via == via && offer(p.offer) => Some(delivered),
        _ => None,
    })
}

/// The comparisons the issue asks about, in words, from this run's numbers.
fn reading(m: &Measured) -> String {
    let mut out = String::new();
    if let (Some(proxy), Some(jwt)) = (storm(m, Connect::Proxy), storm(m, Connect::Jwt)) {
        let backend = proxy.cpu.backend * 1e6 / proxy.backend_requests.max(1) as f64;
        out.push_str(&format!(
            "A connect through the proxy cost herald {:.0} µs of CPU against {:.0} µs with a JWT \
             ({:.1}×), and the backend {backend:.0} µs more per request; the proxy made {:.2}× \
             the JWT connects per second, with p50 {} against {}. herald, the load generator \
             and the backend share the same {} CPUs, so the CPU per connect carries over to \
             another machine better than the rate does.\n\n",
            proxy.herald_us(),
            jwt.herald_us(),
            proxy.herald_us() / jwt.herald_us().max(1e-3),
            proxy.rate() / jwt.rate().max(1e-3),
            ms(proxy.latency.value_at_quantile(0.50)),
            ms(jwt.latency.value_at_quantile(0.50)),
            crate::transports::cpus(),
        ));
    }
    let rated = |offer| matches!(offer, Offer::Rate(_));
    if let (Some(outbox), Some(api)) = (phase(m, Via::Outbox, rated), phase(m, Via::Api, rated)) {
        out.push_str(&format!(
            "At the fixed rate an outbox row was delivered at {}/s and reached its subscriber {} \
             (p50) after its INSERT was sent, {} at p99, against {}/s, {} and {} for an API \
             publish: the commit, the NOTIFY and the consumer's own transaction (lock, select, \
             delete, commit) come in between. ",
            report::grouped(outbox.delivered_rate().round() as u64),
            ms(outbox.latency.value_at_quantile(0.50)),
            ms(outbox.latency.value_at_quantile(0.99)),
            report::grouped(api.delivered_rate().round() as u64),
            ms(api.latency.value_at_quantile(0.50)),
            ms(api.latency.value_at_quantile(0.99)),
        ));
    }
    let flat = |offer| offer == Offer::FlatOut;
    let backlog = |offer| matches!(offer, Offer::Backlog(_));
    if let (Some(outbox), Some(api), Some(drained)) = (
        phase(m, Via::Outbox, flat),
        phase(m, Via::Api, flat),
        phase(m, Via::Outbox, backlog),
    ) {
        let per_row = outbox.cpu.postgres * 1e6 / outbox.latency.len().max(1) as f64;
        let verdict = if drained.delivered_rate() > 2.0 * outbox.delivered_rate() {
            "given its rows in bulk, herald's consumer goes far faster, so it is the \
             one-row transactions that cost"
        } else {
            "close to the flat-out rate, so the consumer itself is near its limit"
        };
        out.push_str(&format!(
            "Flat out, writers committing one row per transaction delivered {}/s against {}/s \
             API publishes, with PostgreSQL at {} of a core, {per_row:.0} µs per row (the \
             writer's commit and NOTIFY, and the consumer's lock, select, delete and commit for \
             the few rows each wake-up finds). A backlog committed at once drained at {}/s: \
             {verdict}.\n",
            report::grouped(outbox.delivered_rate() as u64),
            report::grouped(api.delivered_rate() as u64),
            percent(outbox.cpu.cores(outbox.cpu.postgres)),
            report::grouped(drained.delivered_rate() as u64),
        ));
    }
    out
}

/// Every row that failed, as `label: why`.
pub fn failures(m: &Measured) -> Vec<String> {
    let storms = m.storms.iter().filter_map(|(path, storm)| {
        let why = storm.as_ref().err()?;
        Some(format!("connect with {}: {why}", path.label()))
    });
    let phases = m.phases.iter().filter_map(|(phase, delivered)| {
        let why = delivered.as_ref().err()?;
        Some(format!("{}: {why}", phase.label()))
    });
    storms.chain(phases).collect()
}

pub fn section(s: &Scale, command: &str, version: &str, nofile: u64, tables: &str) -> String {
    let cpus = crate::transports::cpus();
    let secs = |d: std::time::Duration| format!("{} s", d.as_secs_f64());
    format!(
        "{HEADING}\n\n\
         Reproduce: `cargo run --release -p herald-bench -- {command}`\n\n\
         - Machine: {machine}\n- Date: {date}\n- Version: {version}\n\
         - One `herald serve` process (the release binary) with a generated config, for the \
         whole run: `[client.proxy.connect]` pointing at the backend below with \
         `http_headers = [\"Cookie\"]`, `[client.rate_limit.connect] enabled = false` (the \
         storm connects thousands of times a second from 8 loopback addresses, far above \
         the per-address default), nothing stored, the inbox and chat off, a `bench` \
         namespace without history, pings every 10 minutes (the subscribers do not answer \
         them), and one `[[consumers]]` of kind `postgresql` described below.\n\
         - The backend is the minimal one: an axum server inside the `herald-bench` process, \
         on a runtime of its own, that reads the `session` cookie herald forwards and answers \
         `{{\"result\":{{\"user\":\"<session>\"}}}}` at once, over the keep-alive connections \
         herald's proxy client holds. It and the load generator share the machine's {cpus} \
         CPUs with herald, so every proxied connect also costs backend CPU on the same cores; \
         its CPU is read from its own threads in `/proc/self/task`.\n\
         - Connects: {connectors} connectors, each connecting one after another: TCP connect \
         from one of 127.0.0.2–127.0.0.9, WebSocket upgrade, the `connect` command, its reply \
         (which must carry a client id). The latency runs from the TCP connect to the reply. \
         The connection is then closed (close handshake in the background), so connections do \
         not pile up and the number measures the connect, not a growing connection table. \
         The proxy path sends `Cookie: theme=dark; session=u<n>` and no token, so herald \
         asks the backend; the JWT path sends an HS256 token (`sub`, `exp`) \
         that herald verifies alone. Users cycle over 1,000. Each storm is {warmup} of \
         unmeasured warm-up and {span} measured; the proxy and JWT storms alternate {rounds} \
         and each row sums its storms. Checked: every connect must succeed, the \
         backend must be asked exactly once per proxied connect and never for a token.\n\
         - Outbox: a fresh database on the local PostgreSQL (`herald_postgres::testing::\
         TestDatabase`, dropped afterwards) with the `chat_outbox` table and the NOTIFY \
         trigger exactly as [outbox.md](outbox.md) gives them; the consumer reads it with \
         `num_partitions = {partitions}`, `partition_select_limit = 100` and \
         `partition_notification_channel = \"{notify}\"`. {writers} writers, each the only \
         writer of {per_writer} channels (channel c in partition c mod {partitions}); each \
         row is a `publish` whose `data` carries its write time and its sequence number on \
         its channel, inserted in a transaction of its own (the INSERT's autocommit), each \
         awaited before the writer's next. Write → delivery runs from just before the \
         INSERT is sent, that is before the commit, to the push arriving at the channel's \
         subscriber (one WebSocket per channel, JWT connect).\n\
         - API publish: the same writers, channels and `data`, each publication a \
         `POST /api/publish` to the same herald, awaited; write → delivery from just before \
         the request. Each phase writes for {write_span}, first at a fixed {rate}/s offered \
         over all writers (writer w sends publication n = k·{writers} + w at n ÷ {rate} s), \
         then flat out (each writer as fast as its commits or answers come back); outbox and \
         API alternate. Delivered/s runs from the first write to the last delivery, so a \
         consumer that falls behind shows as delivered/s below written/s.\n\
         - Backlog: {backlog} rows (the same `publish` rows, in sequence order per channel) \
         committed in one INSERT, which the consumer can only see once it commits; \
         delivered/s runs from that commit to the last delivery: the consumer's own rate, \
         with no writer in the way. It is compared with API publish flat out, and its write \
         → delivery includes the INSERT itself and the wait behind the rows before it.\n\
         - Checked, not sampled: every subscriber must get sequence numbers 0, 1, 2, ... of \
         its channel, each once and in order, and after an outbox phase the table must be \
         empty (every row deleted by the transaction that ran it). A missing, repeated or \
         reordered delivery, a failed connect, write or call fails the run and writes \
         nothing.\n\
         - CPU is user+system time over the measured window, from `/proc`: herald's process \
         (`/proc/<pid>/stat`), the backend's threads, this process without them (Loadgen, \
         ⚠ saturated at ≥ 95 % of a core), and every `postgres` process on the machine \
         (the server the outbox, its writers and its consumer use; it would also count \
         anything else asking it meanwhile), per connect or per delivered message and as a \
         share of one core. `/proc` counts in 10 ms ticks, so a per-message figure from a \
         short phase is coarse. All of them share the {cpus} CPUs of a shared machine, so \
         absolute numbers move between runs; compare rows of one run. Open files limit \
         {nofile}.\n\n\
         {tables}",
        machine = report::machine_facts(),
        date = report::today(),
        connectors = s.connectors,
        warmup = secs(s.warmup),
        span = secs(s.span),
        rounds = match s.rounds {
            1 => "in one round".to_string(),
            n => format!("over {n} rounds"),
        },
        partitions = s.partitions,
        notify = outbox::NOTIFICATION_CHANNEL,
        writers = s.writers,
        per_writer = s.channels_per_writer,
        write_span = secs(s.write_span),
        rate = report::grouped(s.rate as u64),
        backlog = report::grouped(s.backlog as u64),
    )
}
