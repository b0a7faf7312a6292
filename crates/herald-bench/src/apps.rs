//! `apps`: the inbox and chat under load, on SQLite (the embedded default) and
//! on PostgreSQL, beside plain publishes with nothing stored, all in one run.
//!
//! Notifications: every user holds one WebSocket, joined to `inbox:#<user>`
//! server-side at connect; API callers `notify` one user per call, round-robin.
//! Chat: conversations of two members, both subscribed to `chat:<conversation>`;
//! one member sends `chat.send` with a few calls in flight, the other receives.
//! Every notification and message carries its send time and a sequence number
//! in `data`, so every push is timed and checked: a failed call, a missing or
//! repeated delivery, or a chat message out of id order fails the run instead
//! of reporting a rate. The plain rows send the same payloads with `publish`
//! (the API for notifications, the client command for chat) to `plain:`
//! channels on a server with nothing stored and the inbox and chat off.
//!
//! `apps/wire.rs` is the client side (API calls, connections, receivers,
//! checks); `apps/doc.rs` writes the tables and the section.

mod doc;
pub(crate) mod wire;

use crate::load::{self, Server};
use crate::{Result, procs, report};
use futures_util::SinkExt;
use hdrhistogram::Histogram;
use herald_core::ChannelOptions;
use herald_postgres::testing::TestDatabase;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use wire::{GRACE, Listeners, Sink, Stream, api, connect, difference, stamp, verdict};

const HEADING: &str = "## Inbox and chat";
/// Ids of commands sent after the setup calls, which `Ws` numbered from 1.
const FIRST_ID: usize = 1_000;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    output: report::Output,
    /// Concurrent API callers for notifications, instead of the scale's.
    #[arg(long)]
    callers: Option<usize>,
    /// `chat.send` calls in flight per sender, instead of the scale's.
    #[arg(long)]
    window: Option<usize>,
}

struct Scale {
    name: String,
    users: usize,
    notifications: usize,
    callers: usize,
    conversations: usize,
    /// Messages per conversation.
    messages: usize,
    /// `chat.send` calls in flight per sender.
    window: usize,
}

fn scale(name: &str) -> Option<Scale> {
    // (users, notifications, callers, conversations, messages, window)
    let (users, notifications, callers, conversations, messages, window) = match name {
        "smoke" => (20, 400, 4, 5, 40, 4),
        "small" => (200, 30_000, 8, 50, 400, 4),
        "full" => (1_000, 100_000, 16, 200, 500, 4),
        _ => return None,
    };
    let name = name.to_string();
    Some(Scale {
        name,
        users,
        notifications,
        callers,
        conversations,
        messages,
        window,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    Sqlite,
    Postgres,
    Plain,
}

/// In the order they run and are listed; plain, the baseline, last.
const SETUPS: [Setup; 3] = [Setup::Sqlite, Setup::Postgres, Setup::Plain];

impl Setup {
    fn label(self) -> &'static str {
        match self {
            Setup::Sqlite => "SQLite (embedded default)",
            Setup::Postgres => "PostgreSQL",
            Setup::Plain => "Plain publish, no storage",
        }
    }
}

/// One cell of the comparison: measured, skipped (no PostgreSQL) or failed.
enum Row<T> {
    Done(T),
    Skipped(String),
    Failed(String),
}

struct Notified {
    api_elapsed: Duration,
    /// From the first call to the last push arriving.
    all_elapsed: Duration,
    api: Histogram<u64>,
    e2e: Histogram<u64>,
}

struct Chatted {
    elapsed: Duration,
    latency: Histogram<u64>,
}

pub async fn run(args: Args) -> Result<()> {
    let mut s = args.output.scale(scale)?;
    let mut command = format!("apps --scale {}", s.name);
    if let Some(callers) = args.callers {
        s.callers = callers;
        command.push_str(&format!(" --callers {callers}"));
    }
    if let Some(window) = args.window {
        s.window = window;
        command.push_str(&format!(" --window {window}"));
    }
    if s.callers == 0 || s.window == 0 {
        return Err("--callers and --window must be at least 1".into());
    }
    stamp();
    let nofile = procs::raise_nofile();
    eprintln!(
        "herald-bench {command}: {} users, {} notifications from {} callers; \
         {} conversations × {} messages, {} in flight",
        s.users, s.notifications, s.callers, s.conversations, s.messages, s.window
    );
    let http = reqwest::Client::new();
    let (mut notified, mut chatted) = (Vec::new(), Vec::new());
    for setup in SETUPS {
        eprintln!("== {} ==", setup.label());
        let (n, c) = measure(setup, &s, &http).await;
        notified.push(n);
        chatted.push(c);
    }
    let tables = doc::tables(&notified, &chatted);
    println!("{tables}");
    let mut failures = Vec::new();
    for (setup, (n, c)) in SETUPS.iter().zip(notified.iter().zip(&chatted)) {
        for (what, row) in [("notifications", failed(n)), ("chat", failed(c))] {
            if let Some(why) = row {
                failures.push(format!("{} {what}: {why}", setup.label()));
            }
        }
    }
    if !failures.is_empty() {
        return Err(format!("not writing numbers that failed:\n{}", failures.join("\n")).into());
    }
    args.output
        .write(|| doc::section(&s, &command, nofile, &tables))
}

fn failed<T>(row: &Row<T>) -> Option<&str> {
    match row {
        Row::Failed(why) => Some(why),
        _ => None,
    }
}

/// A row from an outcome, saying on stderr how it went.
fn row<T>(what: &str, outcome: Result<T>, summary: impl Fn(&T) -> String) -> Row<T> {
    match outcome {
        Ok(t) => {
            eprintln!("  {what}: {}", summary(&t));
            Row::Done(t)
        }
        Err(e) => {
            eprintln!("  {what}: FAILED: {e}");
            Row::Failed(e.to_string())
        }
    }
}

/// One setup: start its server, run both workloads, stop it.
async fn measure(setup: Setup, s: &Scale, http: &reqwest::Client) -> (Row<Notified>, Row<Chatted>) {
    let (server, _db) = match start(setup).await {
        Ok(Some(started)) => started,
        Ok(None) => {
            let why = "PostgreSQL not reachable; set HERALD_TEST_POSTGRES_URL";
            eprintln!("  skipped: {why}");
            return (Row::Skipped(why.into()), Row::Skipped(why.into()));
        }
        Err(e) => return (Row::Failed(e.to_string()), Row::Failed(e.to_string())),
    };
    let notified = row(
        "notifications",
        notifications(&server, setup, s, http).await,
        |n| {
            format!(
                "{:.0} API calls/s, {:.0} delivered/s, p99 end to end {:.2} ms",
                doc::per_second(n.api.len(), n.api_elapsed),
                doc::per_second(n.e2e.len(), n.all_elapsed),
                n.e2e.value_at_quantile(0.99) as f64 / 1000.0
            )
        },
    );
    let chatted = row("chat", chat(&server, setup, s, http).await, |c| {
        format!(
            "{:.0} messages/s, p99 {:.2} ms",
            doc::per_second(c.latency.len(), c.elapsed),
            c.latency.value_at_quantile(0.99) as f64 / 1000.0
        )
    });
    server.running.shutdown().await;
    (notified, chatted)
}

/// The server of one setup, with the database it uses; `None` when
/// PostgreSQL is unreachable outside CI.
async fn start(setup: Setup) -> Result<Option<(Server, Option<TestDatabase>)>> {
    let mut config = load::base_config();
    // Nothing here measures pings, and the clients do not answer them.
    config.client.ping_interval = "10m".into();
    let label = setup.label();
    match setup {
        Setup::Plain => {
            config.storage.durable = false;
            config.inbox.enabled = false;
            config.chat.enabled = false;
            let plain = ChannelOptions {
                allow_subscribe_for_client: true,
                allow_publish_for_subscriber: true,
                ..Default::default()
            };
            config.channel.namespaces = vec![("plain".into(), plain)];
            Ok(Some((Server::start(label, config, None).await?, None)))
        }
        Setup::Sqlite => {
            let dir = tempfile::tempdir()?;
            config.storage.durable = true;
            config.storage.path = dir.path().to_path_buf();
            Ok(Some((Server::start(label, config, Some(dir)).await?, None)))
        }
        Setup::Postgres => {
            // `create` panics under CI=true when the server is unreachable.
            let db = match tokio::spawn(TestDatabase::create()).await {
                Ok(Some(db)) => db,
                Ok(None) => return Ok(None),
                Err(_) => return Err("PostgreSQL not reachable, and CI=true requires it".into()),
            };
            config.storage.url = Some(db.url().to_string());
            Ok(Some((Server::start(label, config, None).await?, Some(db))))
        }
    }
}

/// The API method and body that tell `user` about sequence number `seq`.
fn notify_call(setup: Setup, user: &str, seq: usize) -> (&'static str, Value) {
    let data = json!({"t": stamp(), "seq": seq});
    if setup == Setup::Plain {
        let channel = format!("plain:{user}");
        let body = json!({"channel": channel, "data": {"type": "plain", "data": data}});
        return ("publish", body);
    }
    let body = json!({"users": [user], "title": "Order shipped",
                      "message": "A notification from herald-bench", "data": data});
    ("notify", body)
}

/// What one API caller got.
struct Calls {
    latency: Histogram<u64>,
    /// `notify`'s notification id for each sequence number.
    ids: Vec<(usize, i64)>,
    failed: Vec<String>,
}

/// API calls, one at a time, until `next` passes `total`. A failed call is
/// counted and the caller goes on, so the run can say how many failed.
async fn caller(
    (http, base): (reqwest::Client, String),
    setup: Setup,
    (users, total): (usize, usize),
    next: Arc<AtomicUsize>,
    sent: Arc<AtomicUsize>,
) -> Calls {
    let (latency, ids, failed) = (load::new_histogram(), Vec::new(), Vec::new());
    let mut calls = Calls {
        latency,
        ids,
        failed,
    };
    loop {
        let seq = next.fetch_add(1, Relaxed);
        if seq >= total {
            return calls;
        }
        let user = format!("u{}", seq % users);
        let began = Instant::now();
        let (method, body) = notify_call(setup, &user, seq);
        let answer = api(&http, &base, method, &body).await;
        let took = began.elapsed().as_micros().max(1) as u64;
        calls.latency.saturating_record(took);
        sent.fetch_add(1, Relaxed);
        match answer.map(|result| (result["ids"].as_array().cloned(), result)) {
            Err(e) => calls.failed.push(format!("{user}: {e}")),
            Ok(_) if setup == Setup::Plain => {}
            Ok((Some(ids), _)) if ids.len() == 1 && ids[0].is_i64() => {
                calls.ids.push((seq, ids[0].as_i64().unwrap_or_default()));
            }
            Ok((_, result)) => calls
                .failed
                .push(format!("{user}: notify answered {result}")),
        }
    }
}

async fn notifications(
    server: &Server,
    setup: Setup,
    s: &Scale,
    http: &reqwest::Client,
) -> Result<Notified> {
    let (plain, total, base) = (setup == Setup::Plain, s.notifications, server.url("/api/"));
    let mut listeners = Listeners::new();
    for i in 0..s.users {
        let user = format!("u{i}");
        let channel = match plain {
            true => format!("plain:{user}"),
            false => format!("inbox:#{user}"),
        };
        let subscribe: &[&str] = if plain { &[&channel] } else { &[] };
        listeners.listen(connect(server, &user, !plain, subscribe).await?, channel);
    }
    // Unmeasured: opens the HTTP connections and warms the database.
    for seq in 0..s.callers {
        let (method, body) = notify_call(setup, "warmup", seq);
        api(http, &base, method, &body).await?;
    }
    let sent = Arc::new(AtomicUsize::new(0));
    let label = format!("{} notifications", setup.label());
    let ticker = wire::progress(label, sent.clone(), listeners.delivered.clone(), total);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let callers: Vec<_> = (0..s.callers)
        .map(|_| {
            let (client, next, sent) = ((http.clone(), base.clone()), next.clone(), sent.clone());
            tokio::spawn(caller(client, setup, (s.users, total), next, sent))
        })
        .collect();
    let (mut api_latency, mut ids, mut failed) = (load::new_histogram(), vec![None; total], vec![]);
    for task in callers {
        let calls = task.await?;
        api_latency.add(calls.latency).map_err(|e| e.to_string())?;
        for (seq, id) in calls.ids {
            ids[seq] = Some(id);
        }
        failed.extend(calls.failed);
    }
    let api_elapsed = started.elapsed();
    let received = listeners.finish(total, failed.is_empty()).await;
    ticker.abort();
    let method = notify_call(setup, "", 0).0;
    verdict(failed, total, &format!("`{method}` calls failed"))?;
    let (mut e2e, mut last, mut problems) = (load::new_histogram(), started, Vec::new());
    for (i, got) in received?.into_iter().enumerate() {
        e2e.add(&got.latency).map_err(|e| e.to_string())?;
        last = last.max(got.last.unwrap_or(started));
        let mut seqs: Vec<u64> = got.items.iter().map(|item| item.seq).collect();
        seqs.sort_unstable();
        let expected: Vec<u64> = (i..total).step_by(s.users).map(|n| n as u64).collect();
        let wrong_id = |item: &&wire::Item| !plain && item.id != ids[item.seq as usize];
        if let Some(e) = got.error {
            problems.push(format!("u{i}: {e}"));
        } else if let Some(why) = difference(&seqs, &expected) {
            problems.push(format!("u{i}: notifications {why}"));
        } else if let Some(item) = got.items.iter().find(wrong_id) {
            let answered = ids[item.seq as usize];
            problems.push(format!(
                "u{i}: notification {} pushed with id {:?}, notify answered {answered:?}",
                item.seq, item.id
            ));
        }
    }
    verdict(
        problems,
        s.users,
        "users did not get exactly their notifications",
    )?;
    Ok(Notified {
        api_elapsed,
        all_elapsed: last - started,
        api: api_latency,
        e2e,
    })
}

/// Answers to one sender's commands, freeing a window slot for each; the
/// message ids `chat.send` answered.
async fn acks(mut stream: Stream, room: Arc<Semaphore>, messages: usize) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(messages);
    let mut answers = 0;
    let outcome: Result<()> = async {
        while answers < messages {
            let text = tokio::time::timeout(GRACE, wire::next_text(&mut stream))
                .await
                .map_err(|_| format!("no answer within {GRACE:?}"))??;
            for message in wire::lines(&text) {
                let message = message?;
                let Some(id) = message["id"].as_u64() else {
                    continue; // a push
                };
                if message.get("error").is_some() {
                    return Err(format!("command {id} answered {message}").into());
                }
                if let Some(id) = message["rpc"]["data"]["message"]["id"].as_i64() {
                    ids.push(id);
                }
                answers += 1;
                room.add_permits(1);
            }
        }
        Ok(())
    }
    .await;
    room.close();
    outcome.map(|()| ids)
}

/// One conversation's sender: `messages` sends, at most `window` unanswered.
async fn send(
    (mut sink, stream): (Sink, Stream),
    plain: bool,
    (conversation, channel): (String, String),
    (messages, window): (usize, usize),
    sent: Arc<AtomicUsize>,
) -> Result<Vec<i64>> {
    let room = Arc::new(Semaphore::new(window));
    let answers = tokio::spawn(acks(stream, room.clone(), messages));
    for seq in 0..messages {
        let Ok(slot) = room.acquire().await else {
            break; // the answers failed; their error says why
        };
        slot.forget();
        let (id, data) = (FIRST_ID + seq, json!({"t": stamp(), "seq": seq}));
        let command = if plain {
            json!({"id": id, "publish": {"channel": channel, "data": {"type": "plain", "data": data}}})
        } else {
            let text = format!("message {seq}");
            json!({"id": id, "rpc": {"method": "chat.send", "data": {"conversation": conversation,
                   "text": text, "data": data, "client_msg_id": format!("m{seq}")}}})
        };
        sink.send(Message::text(command.to_string())).await?;
        sent.fetch_add(1, Relaxed);
    }
    answers.await?
}

async fn chat(server: &Server, setup: Setup, s: &Scale, http: &reqwest::Client) -> Result<Chatted> {
    let plain = setup == Setup::Plain;
    let total = s.conversations * s.messages;
    let (mut listeners, mut senders) = (Listeners::new(), Vec::new());
    for c in 0..s.conversations {
        let conversation = format!("bench-{c}");
        let (a, b) = (format!("c{c}-a"), format!("c{c}-b"));
        let channel = if plain {
            format!("plain:{conversation}")
        } else {
            let create = json!({"conversation": conversation, "title": "Order", "members": [a, b]});
            api(http, &server.url("/api/"), "chat_create", &create).await?;
            format!("chat:{conversation}")
        };
        let sender = connect(server, &a, !plain, &[&channel]).await?;
        listeners.listen(
            connect(server, &b, !plain, &[&channel]).await?,
            channel.clone(),
        );
        senders.push((sender, (conversation, channel)));
    }
    let sent = Arc::new(AtomicUsize::new(0));
    let label = format!("{} chat", setup.label());
    let ticker = wire::progress(label, sent.clone(), listeners.delivered.clone(), total);
    let started = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|(socket, names)| {
            let sizes = (s.messages, s.window);
            tokio::spawn(send(socket, plain, names, sizes, sent.clone()))
        })
        .collect();
    let (mut problems, mut acked) = (Vec::new(), Vec::new());
    for (c, task) in tasks.into_iter().enumerate() {
        let outcome = match task.await {
            Ok(outcome) => outcome,
            Err(e) => Err(e.into()),
        };
        match outcome {
            Ok(ids) => acked.push(ids),
            Err(e) => problems.push(format!("bench-{c}: sender: {e}")),
        }
    }
    let received = listeners.finish(total, problems.is_empty()).await;
    ticker.abort();
    verdict(problems, s.conversations, "senders failed")?;
    let expected: Vec<u64> = (1..=s.messages as u64).collect();
    let (mut latency, mut last, mut problems) = (load::new_histogram(), started, Vec::new());
    for (c, got) in received?.into_iter().enumerate() {
        latency.add(&got.latency).map_err(|e| e.to_string())?;
        last = last.max(got.last.unwrap_or(started));
        // Plain publications have no id: their order is the sender's.
        let id = |item: &wire::Item| match plain {
            true => item.seq + 1,
            false => item.id.unwrap_or(0).max(0) as u64,
        };
        let arrived: Vec<u64> = got.items.iter().map(id).collect();
        let mut sorted = arrived.clone();
        sorted.sort_unstable();
        let mut answered: Vec<u64> = acked[c].iter().map(|&id| id.max(0) as u64).collect();
        answered.sort_unstable();
        let late: Vec<usize> = (1..arrived.len())
            .filter(|&k| arrived[k] < arrived[k - 1])
            .collect();
        if let Some(e) = got.error {
            problems.push(format!("bench-{c}: {e}"));
        } else if let Some(why) = difference(&sorted, &expected) {
            problems.push(format!("bench-{c}: messages {why}"));
        } else if let Some(why) = difference(&answered, &expected).filter(|_| !plain) {
            problems.push(format!("bench-{c}: chat.send answered ids that {why}"));
        } else if let Some(&k) = late.first() {
            let around = &arrived[k.saturating_sub(3)..(k + 3).min(arrived.len())];
            problems.push(format!(
                "bench-{c}: {} of {} messages arrived after a higher id; first: id {} after {} \
                 (arrival order around it: {around:?})",
                late.len(),
                arrived.len(),
                arrived[k],
                arrived[k - 1]
            ));
        }
    }
    let what = "conversations did not deliver every message once, in id order";
    verdict(problems, s.conversations, what)?;
    Ok(Chatted {
        elapsed: last - started,
        latency,
    })
}
