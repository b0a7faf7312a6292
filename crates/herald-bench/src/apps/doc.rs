//! The tables and the `docs/benchmarks.md` section of `apps`.

use super::{Chatted, HEADING, Notified, Row, SETUPS, Scale};
use crate::report;
use std::time::Duration;

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

pub fn per_second(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn notify_rate(n: &Notified) -> f64 {
    per_second(n.e2e.len(), n.all_elapsed)
}

fn chat_rate(c: &Chatted) -> f64 {
    per_second(c.latency.len(), c.elapsed)
}

/// One line per setup: `cells` for a measured row (given its rate over the
/// plain row's, the last), else why it has no numbers.
fn table<T>(
    head: &str,
    rows: &[Row<T>],
    rate: impl Fn(&T) -> f64,
    cells: impl Fn(&T, String) -> String,
) -> String {
    let columns = head.lines().next().unwrap_or_default().matches('|').count() - 1;
    let plain = match rows.last() {
        Some(Row::Done(p)) => Some(rate(p)),
        _ => None,
    };
    let mut out = head.to_string();
    for (setup, row) in SETUPS.iter().zip(rows) {
        let (tag, why) = match row {
            Row::Done(r) => {
                let ratio = plain.map_or("n/a".into(), |p| format!("{:.2}×", rate(r) / p));
                out.push_str(&format!("| {} | {} |\n", setup.label(), cells(r, ratio)));
                continue;
            }
            Row::Skipped(why) => ("skipped", why),
            Row::Failed(why) => ("**failed**", why),
        };
        let why = why.lines().next().unwrap_or_default().replace('|', "/");
        let empty = " |".repeat(columns - 2);
        out.push_str(&format!("| {} | {tag}: {why} |{empty}\n", setup.label()));
    }
    out
}

pub fn tables(notified: &[Row<Notified>], chatted: &[Row<Chatted>]) -> String {
    let notify = table(
        "| Storage | API calls/s | p50 API call | p99 API call | Stored and delivered/s | \
         ÷ plain publish | p50 end to end | p99 end to end | Every push, once |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
        notified,
        notify_rate,
        |n, ratio| {
            format!(
                "{} | {} | {} | {} | {ratio} | {} | {} | yes, {}",
                report::grouped(per_second(n.api.len(), n.api_elapsed) as u64),
                ms(n.api.value_at_quantile(0.50)),
                ms(n.api.value_at_quantile(0.99)),
                report::grouped(notify_rate(n) as u64),
                ms(n.e2e.value_at_quantile(0.50)),
                ms(n.e2e.value_at_quantile(0.99)),
                report::grouped(n.e2e.len()),
            )
        },
    );
    let chat = table(
        "| Storage | Messages/s | ÷ plain publish | p50 send → receive | p99 send → receive | \
         max send → receive | Every message once, in id order |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
        chatted,
        chat_rate,
        |c, ratio| {
            format!(
                "{} | {ratio} | {} | {} | {} | yes, {}",
                report::grouped(chat_rate(c) as u64),
                ms(c.latency.value_at_quantile(0.50)),
                ms(c.latency.value_at_quantile(0.99)),
                ms(c.latency.max()),
                report::grouped(c.latency.len()),
            )
        },
    );
    format!(
        "### Notifications: `notify` through the API, delivered live\n\n{notify}\n\
         ### Chat: `chat.send` from one member, delivered to the other\n\n{chat}"
    )
}

pub fn section(s: &Scale, command: &str, nofile: u64, tables: &str) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{HEADING}\n\n\
         Reproduce: `cargo run --release -p herald-bench -- {command}`\n\n\
         - Machine: {machine}\n- Date: {date}\n\
         - Three servers, one after another, in the same process as the load generator, each \
         on `127.0.0.1:0`: the embedded default (`storage.durable = true`, SQLite in a temp \
         directory, `sync = \"normal\"`); PostgreSQL (`storage.url` = a fresh database on the \
         local server, dropped afterwards); and plain publish: nothing stored, the inbox and \
         chat off, `plain:` channels. \"÷ plain publish\" is a row's delivered rate over the \
         plain row's.\n\
         - Notifications: {users} users, each with one WebSocket (joined to `inbox:#<user>` \
         at connect). {callers} concurrent callers each await one `POST /api/notify` (one \
         user per call, round-robin) before the next: {notifications} in all, after {callers} \
         unmeasured warm-up calls. `notify` answers once it has committed the notification \
         and published it and the user's new unread count (a count query); stored and \
         delivered/s runs from the first call to the last push arriving. End to end is from \
         the start of the API call to the `notification` push arriving, timed by a stamp in \
         its `data`. The plain row sends the same `data` with `POST /api/publish` to \
         `plain:<user>`, one subscriber each.\n\
         - Chat: {conversations} conversations of 2 members, both connected and subscribed to \
         `chat:<conversation>`. One member sends {messages} messages with `rpc` `chat.send` \
         (text, `data` with a stamp, `client_msg_id`), at most {window} unanswered, as fast \
         as the answers come; the other receives. Each message commits under its \
         conversation's lock, is published to the channel, and the receiver's unread count \
         goes to their `inbox:#<user>`. Latency runs from the sender stamping the command to \
         the `message` push arriving. The plain row sends the same `data` with the client \
         `publish` command to `plain:<conversation>`, with the same window.\n\
         - Checked, not sampled: every user must get exactly the notifications sent to them, \
         with the ids `notify` answered; every receiver must get message ids 1..={messages} \
         once each and in id order (plain: in the sender's order), and `chat.send` must have \
         answered each id once. Anything else, or any failed call, fails the run and writes \
         nothing.\n\
         - The load generator, the servers and PostgreSQL share the {cpus} CPUs of a shared \
         machine, so absolute numbers move between runs; compare rows of one run. Pings are \
         off (`client.ping_interval = \"10m\"`); open files limit {nofile}.\n\n\
         {tables}",
        machine = report::machine_facts(),
        date = report::today(),
        users = report::grouped(s.users as u64),
        callers = s.callers,
        notifications = report::grouped(s.notifications as u64),
        conversations = s.conversations,
        messages = s.messages,
        window = s.window,
    )
}
