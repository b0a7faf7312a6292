//! `redis-restart`: two nodes on one Redis (history in Redis streams) under
//! publishes through both; Redis is killed and started again on the same
//! port and append-only file. Both nodes must report the loss on /health,
//! come back, and every acknowledged publication must be in history and
//! reach every subscriber on either node.

use super::fleet::{self, DETECT_WAIT, Fleet, RECOVERY_WAIT};
use super::node::{self, Broker, Spec, Storage};
use super::{Ctx, Row, failed, secs};
use crate::Result;
use herald_tests::redis::{RedisOptions, RedisServer};
use std::time::Instant;

pub const ABOUT: &str = "**`redis-restart`**: two nodes with `[broker] kind = \"redis\"` on \
one `redis-server` (history in Redis streams; nothing in SQLite), two subscribers on each node, \
callers publishing through both nodes. Redis runs with `appendonly yes` and `appendfsync \
always`, so every write Redis acknowledged is on disk before Herald answers the publish: the \
honest expectation is then that nothing acknowledged is lost. (Without the append-only file, a \
restarted Redis starts empty; Herald would then start a new epoch and subscribers would be told \
`recovered: false`, which is the protocol's way of saying so, but history would be gone.) Redis \
gets SIGKILL, stays down for the scale's outage, and is started again on the same port and \
file. *Lost* = acknowledged publications not in history afterwards (read through node 1), or \
not received by a subscriber on either node. Pass: lost 0, no duplicates, both nodes' /health \
503 within 5 s of the kill and 200 again within 30 s of the restart, and no subscriber told \
`recovered: false`. *Recovery time* = from Redis accepting connections again until both nodes \
answer 200 and every subscriber that was told to resubscribe has recovered.";

pub const NODES: usize = 2;
pub const SUBSCRIBERS_PER_NODE: usize = 2;

/// `count` nodes named `<scenario>-<k>` on `broker`, with nothing on disk.
pub fn specs(scenario: &str, broker: Broker, count: usize) -> Vec<Spec> {
    (1..=count)
        .map(|k| Spec {
            name: format!("{scenario}-{k}"),
            storage: Storage::None,
            broker: broker.clone(),
            client: "",
            fd_limit: None,
        })
        .collect()
}

pub async fn run(ctx: &Ctx<'_>) -> Result<Row> {
    let options = RedisOptions { appendonly: true };
    let redis = tokio::task::spawn_blocking(move || RedisServer::start_with(options))
        .await?
        .ok_or("redis-server is not installed")?;
    let broker = Broker::Redis(redis.url());
    let mut fleet = Fleet::start(ctx, specs("redis-restart", broker, NODES)).await?;
    let outcome = drive(ctx, &mut fleet, redis).await;
    fleet.stop(failed(&outcome)).await;
    outcome
}

async fn drive(ctx: &Ctx<'_>, fleet: &mut Fleet, redis: RedisServer) -> Result<Row> {
    let mut row = Row {
        scenario: "redis-restart",
        ..Row::default()
    };
    fleet.load(ctx, SUBSCRIBERS_PER_NODE).await?;
    eprintln!("  {} acknowledged; killing redis", fleet.acked());
    let down = Instant::now();
    let mut redis = tokio::task::spawn_blocking(move || {
        let mut redis = redis;
        redis.kill();
        redis
    })
    .await?;
    let detected = fleet
        .health_after(down, DETECT_WAIT, node::is_unavailable)
        .await;
    // The outage lasts its planned length from the kill, however quickly it was detected.
    tokio::time::sleep_until((down + ctx.scale.outage).into()).await;
    let acked_down = fleet.acked();
    redis = tokio::task::spawn_blocking(move || {
        redis.restart();
        redis
    })
    .await?;
    let restored = Instant::now();
    eprintln!(
        "  redis back after {}; {acked_down} acknowledged",
        secs(restored - down)
    );
    let healthy = fleet
        .health_after(restored, RECOVERY_WAIT, node::is_ok)
        .await;
    fleet::outage_health(&mut row, (down, DETECT_WAIT), restored, &detected, &healthy);
    let subscribers = fleet.subscribers();
    let finished = fleet.finish(ctx, &mut row, acked_down, down).await?;
    row.recovery = fleet::recovery_cell(restored, &healthy, &finished, subscribers);
    row.require(finished.unrecovered == 0, || {
        format!(
            "{} resubscriptions answered recovered: false though Redis kept its data",
            finished.unrecovered
        )
    });
    drop(redis);
    Ok(row)
}
