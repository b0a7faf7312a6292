//! `fd-storm`: one node started with RLIMIT_NOFILE 1024, and half again as
//! many TCP connections opened to it as it may hold files; they are held
//! for the scale's outage, then closed. The node must survive, /health must
//! answer whenever the node can accept at all, and a new client must connect
//! and subscribe within 2 s of the storm's end.

use super::node::{self, Broker, HealthWatch, Node, Spec, Storage};
use super::subscriber::{self, Subscriber};
use super::{Ctx, Row, secs};
use crate::Result;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

pub const ABOUT: &str = "**`fd-storm`**: one node (no history) started through `prlimit \
--nofile=1024:1024`, one subscriber on a channel. 1,536 plain TCP connections are opened to its \
port (the kernel completes each handshake; the node runs out of descriptors accepting them) \
and held for the scale's outage plus 2 s, then all closed at once. *Lost* does not apply (no \
publications). Pass: the process is alive throughout, the subscriber that was connected before \
the storm is still connected after it, /health answers 200 within 5 s of the storm's end, and a \
new client connects and subscribes within 2 s of the storm's end. The /health cell reports how \
many polls went unanswered during the storm; the watcher polls over one kept-alive HTTP \
connection opened before the storm, so it shows whether the node still serves what it holds, \
while a fresh connection has to wait for a descriptor. The node's open files are counted from \
`/proc/PID/fd` at the storm's peak: a storm that does not reach the limit fails the row.";

const FD_LIMIT: u64 = 1024;
const STORM: usize = 1536;
const NEW_CLIENT_WAIT: Duration = Duration::from_secs(2);
const HEALTH_WAIT: Duration = Duration::from_secs(5);
const OPENING_AT_ONCE: usize = 64;
/// Descriptors the node needs besides connections (listener, epoll, logs,
/// runtime): reaching the limit less these means the storm hit the limit.
const SPARE_FILES: u64 = 32;

pub async fn run(ctx: &Ctx<'_>) -> Result<Row> {
    let spec = Spec {
        name: "fd-storm".into(),
        storage: Storage::None,
        broker: Broker::Memory,
        client: "",
        fd_limit: Some(FD_LIMIT),
    };
    let node = Node::start(ctx.binary, &ctx.dir, spec).await?;
    let outcome = drive(ctx, &node).await;
    node.finish(outcome).await
}

/// Entries in `/proc/PID/fd`.
fn open_files(pid: Option<u32>) -> u64 {
    pid.and_then(|pid| std::fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .map_or(0, |entries| entries.count() as u64)
}

fn alive(pid: Option<u32>) -> bool {
    pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

async fn drive(ctx: &Ctx<'_>, node: &Node) -> Result<Row> {
    let mut row = Row {
        scenario: "fd-storm",
        in_history: "n/a".into(),
        delivered: "n/a (no publications)".into(),
        ..Row::default()
    };
    let channel = subscriber::channel("storm");
    let health = HealthWatch::start(node.base());
    let before = Subscriber::start(&node.ws_url(), "before", &channel).await?;
    let began = Instant::now();
    // A few dozen handshakes at a time: all at once would overflow the
    // SYN queue and time out before the node's descriptors ran out.
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(OPENING_AT_ONCE));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..STORM {
        let (port, gate) = (node.port, gate.clone());
        opening.spawn(async move {
            let _turn = gate.acquire_owned().await.ok()?;
            let connect = TcpStream::connect(("127.0.0.1", port));
            tokio::time::timeout(Duration::from_secs(2), connect)
                .await
                .ok()?
                .ok()
        });
    }
    let mut storm = Vec::with_capacity(STORM);
    let mut refused = 0;
    while let Some(opened) = opening.join_next().await {
        match opened.ok().flatten() {
            Some(stream) => storm.push(stream),
            None => refused += 1,
        }
    }
    let peak = open_files(node.pid());
    eprintln!(
        "  {} connections open, {refused} refused or timed out; the node holds {peak} files",
        storm.len()
    );
    tokio::time::sleep_until((began + ctx.scale.outage + Duration::from_secs(2)).into()).await;
    let survived_storm = alive(node.pid());
    drop(storm);
    let ended = Instant::now();
    let unanswered = health.failures_between(began, ended);
    let fresh = async {
        loop {
            match Subscriber::start(&node.ws_url(), "after", &channel).await {
                Ok(subscriber) => return subscriber,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    };
    let connected = tokio::time::timeout(NEW_CLIENT_WAIT, fresh).await.ok();
    let connected_after = ended.elapsed();
    let healthy = health.wait(ended, ended + HEALTH_WAIT, node::is_ok).await;
    row.require(peak + SPARE_FILES >= FD_LIMIT, || {
        format!("the storm reached only {peak} open files of the node's {FD_LIMIT}")
    });
    row.health = format!(
        "{unanswered} polls unanswered during the storm (node at {peak} of {FD_LIMIT} files); 200 {} after it",
        healthy.map_or("**never**".into(), |at| secs(
            at.saturating_duration_since(ended)
        ))
    );
    row.recovery = match &connected {
        Some(_) => format!(
            "new client subscribed {} after the storm",
            secs(connected_after)
        ),
        None => format!("**no new client within {NEW_CLIENT_WAIT:?}**"),
    };
    row.require(survived_storm && alive(node.pid()), || {
        "the node died".into()
    });
    row.require(healthy.is_some(), || {
        format!("/health not 200 within {HEALTH_WAIT:?} of the storm")
    });
    row.require(connected.is_some(), || {
        format!("no new client subscribed within {NEW_CLIENT_WAIT:?}")
    });
    row.require(
        before
            .live
            .subscribed
            .load(std::sync::atomic::Ordering::Relaxed),
        || "the subscriber connected before the storm lost its subscription".into(),
    );
    let kept = before.stop().await?;
    row.require(
        kept.recoveries.is_empty() && kept.close_codes.is_empty(),
        || {
            format!(
                "the subscriber from before the storm was disconnected: {:?}",
                kept.close_codes
            )
        },
    );
    if let Some(subscriber) = connected {
        subscriber.stop().await?;
    }
    Ok(row)
}
