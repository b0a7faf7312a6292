//! `postgres-restart-apps`: the inbox (`notify`) and chat (`chat_post`)
//! under load on PostgreSQL storage, and the PostgreSQL server crashed
//! (`pg_ctl stop -m immediate`) and started again. Every acknowledged call
//! must be readable afterwards through `notifications_list` and
//! `chat_history`; calls during the outage must fail, not be acknowledged
//! and lost.

use super::fleet::{self, DETECT_WAIT, RECOVERY_WAIT};
use super::node::{self, Broker, HealthWatch, Node, Spec, Storage};
use super::postgres::OwnPostgres;
use super::traffic::{self, Ack, Callers, MakeCall, api};
use super::{Ctx, Row, secs};
use crate::{Result, report};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

pub const ABOUT: &str = "**`postgres-restart-apps`**: one node with `[storage] url` on a \
PostgreSQL server of its own (`initdb` into a temporary directory, its own port), callers \
alternating `notify` (one of 8 users per call) and `chat_post` (one of 4 two-member \
conversations) through the API. Mid-stream PostgreSQL is crashed with `pg_ctl stop -m \
immediate` (every backend killed, no checkpoint), stays down for the scale's outage, and is \
started again on the same data (it replays its WAL). *Lost* = acknowledged `notify` ids or \
`chat_post` messages that `notifications_list` and `chat_history` (read page by page \
afterwards) do not return. Pass: lost 0, no call answered while PostgreSQL was down is lost, no \
notification or message stored twice, /health 503 within 5 s of the crash and 200 again within \
30 s of the restart, and both kinds of call acknowledged again within 30 s of the restart. *Recovery time* = from PostgreSQL accepting connections again until both kinds \
of call are acknowledged again.";

const USERS: usize = 8;
const CONVERSATIONS: usize = 4;

/// Even numbers notify a user, odd ones post to a conversation.
fn call() -> MakeCall {
    Arc::new(|seq| {
        let data = json!({"seq": seq});
        if seq % 2 == 0 {
            let user = format!("u{}", (seq / 2) as usize % USERS);
            let body =
                json!({"users": [user], "title": "chaos", "message": "notify", "data": data});
            ("notify".into(), body)
        } else {
            let conversation = format!("c{}", (seq / 2) as usize % CONVERSATIONS);
            let body = json!({"conversation": conversation, "user": "a",
                              "text": format!("message {seq}"), "data": data});
            ("chat_post".into(), body)
        }
    })
}

/// What a stored notification or message is known by: notification ids are
/// global, message ids count per conversation.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Stored {
    Notification(i64),
    Message(String, i64),
}

/// The id the API gave an acknowledged call.
fn stored_id(ack: &Ack) -> Option<Stored> {
    match ack.seq % 2 {
        0 => ack.result["ids"][0].as_i64().map(Stored::Notification),
        _ => {
            let message = &ack.result["message"];
            let conversation = message["conversation"].as_str()?.to_string();
            Some(Stored::Message(conversation, message["id"].as_i64()?))
        }
    }
}

pub async fn run(ctx: &Ctx<'_>) -> Result<Row> {
    let postgres = OwnPostgres::start().await?;
    let spec = Spec {
        name: "postgres-restart-apps".into(),
        storage: Storage::Postgres(postgres.url()),
        broker: Broker::Memory,
        client: "",
        fd_limit: None,
    };
    let node = Node::start(ctx.binary, &ctx.dir, spec).await?;
    let outcome = drive(ctx, &node, &postgres).await;
    node.finish(outcome).await
}

async fn drive(ctx: &Ctx<'_>, node: &Node, postgres: &OwnPostgres) -> Result<Row> {
    let s = ctx.scale;
    let mut row = Row {
        scenario: "postgres-restart-apps",
        delivered: "n/a (read back through the API)".into(),
        ..Row::default()
    };
    let http = traffic::http_client();
    let base = node.base();
    for c in 0..CONVERSATIONS {
        let body = json!({"conversation": format!("c{c}"), "members": ["a", "b"]});
        api(&http, &base, "chat_create", &body).await?;
    }
    let health = HealthWatch::start(base.clone());
    let callers = Callers::start(std::slice::from_ref(&base), s.rate, s.callers, call());
    callers
        .await_acked(s.calls_in(s.before), s.before * 3)
        .await?;
    eprintln!("  {} acknowledged; crashing PostgreSQL", callers.acked());
    let down = Instant::now();
    postgres.crash().await?;
    let detected = health
        .wait(down, down + DETECT_WAIT, node::is_unavailable)
        .await;
    // Down for the scale's outage after the node noticed, so calls do meet it.
    let until = detected.unwrap_or(down + DETECT_WAIT) + s.outage;
    tokio::time::sleep_until(until.into()).await;
    postgres.start_server().await?;
    let restored = Instant::now();
    let healthy = health
        .wait(restored, restored + RECOVERY_WAIT, node::is_ok)
        .await;
    let acked_restored = callers.acked();
    eprintln!(
        "  PostgreSQL back after {}; {acked_restored} acknowledged",
        secs(restored - down)
    );
    let after = callers
        .await_acked(
            acked_restored + s.calls_in(s.after),
            s.after * 3 + RECOVERY_WAIT,
        )
        .await;
    let calls = callers.stop().await;
    after?;
    eprintln!(
        "  {} acknowledged, {} failed (first: {:?})",
        calls.acks.len(),
        calls.failed,
        calls.first_error
    );
    fleet::outage_health(
        &mut row,
        (down, DETECT_WAIT),
        restored,
        &[detected],
        &[healthy],
    );

    let during = calls
        .acks
        .iter()
        .filter(|(at, _)| *at > down && *at < restored)
        .count();
    let back = |kind: u64| {
        calls
            .acks
            .iter()
            .find(|(at, ack)| *at > restored && ack.seq % 2 == kind)
            .map(|(at, _)| *at - restored)
    };
    row.recovery = match (back(0), back(1)) {
        (Some(n), Some(c)) => format!(
            "{} (notify {}, chat_post {})",
            secs(n.max(c)),
            secs(n),
            secs(c)
        ),
        _ => "**never**".into(),
    };
    row.require(back(0).is_some() && back(1).is_some(), || {
        "a kind of call never succeeded again after the restart".into()
    });

    let stored = read_back(&http, &base).await?;
    let mut times: BTreeMap<Stored, u64> = BTreeMap::new();
    for (id, _) in &stored {
        *times.entry(id.clone()).or_default() += 1;
    }
    row.duplicates = times.values().map(|n| n - 1).sum();
    let by_id: BTreeMap<Stored, u64> = stored.into_iter().collect();
    let missing: Vec<u64> = calls
        .acks
        .iter()
        .filter(|(_, ack)| stored_id(ack).and_then(|id| by_id.get(&id)) != Some(&ack.seq))
        .map(|(_, ack)| ack.seq)
        .collect();
    row.acknowledged = calls.acks.len() as u64;
    row.lost = missing.len() as u64;
    let found = calls.acks.len() - missing.len();
    row.in_history = format!(
        "{} of {} readable ({during} acknowledged during the outage)",
        report::grouped(found as u64),
        report::grouped(calls.acks.len() as u64)
    );
    row.require(missing.is_empty(), || {
        format!(
            "{} acknowledged calls not readable afterwards (first seqs {:?})",
            missing.len(),
            &missing[..missing.len().min(5)]
        )
    });
    let duplicates = row.duplicates;
    row.require(duplicates == 0, || format!("{duplicates} stored twice"));
    Ok(row)
}

/// (id, seq) of every notification of every user and every message of
/// every conversation, read page by page.
async fn read_back(http: &reqwest::Client, base: &str) -> Result<Vec<(Stored, u64)>> {
    let id = |v: &Value| v["id"].as_i64().unwrap_or(-1);
    let seq = |v: &Value| v["data"]["seq"].as_u64().unwrap_or(u64::MAX);
    let mut stored = Vec::new();
    for u in 0..USERS {
        let mut cursor = Value::Null;
        loop {
            let mut body = json!({"user": format!("u{u}"), "limit": 100});
            if !cursor.is_null() {
                body["cursor"] = cursor.clone();
            }
            let page = api(http, base, "notifications_list", &body).await?;
            let notifications = page["notifications"].as_array().into_iter().flatten();
            stored.extend(notifications.map(|n| (Stored::Notification(id(n)), seq(n))));
            cursor = page["next_cursor"].clone();
            if cursor.is_null() {
                break;
            }
        }
    }
    for c in 0..CONVERSATIONS {
        let mut before = None;
        loop {
            let mut body = json!({"conversation": format!("c{c}"), "limit": 100});
            if let Some(before) = before {
                body["before"] = json!(before);
            }
            let page = api(http, base, "chat_history", &body).await?;
            let messages = page["messages"].as_array().cloned().unwrap_or_default();
            let conversation = format!("c{c}");
            stored.extend(
                messages
                    .iter()
                    .map(|m| (Stored::Message(conversation.clone(), id(m)), seq(m))),
            );
            before = messages.iter().filter_map(|m| m["id"].as_i64()).min();
            if page["has_more"] != json!(true) || before.is_none() {
                break;
            }
        }
    }
    Ok(stored)
}
