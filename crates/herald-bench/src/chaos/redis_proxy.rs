//! `redis-blackhole` and `redis-latency`: two nodes on one Redis, node 1
//! reaching it through the in-test proxy (`proxy.rs`), node 2 directly.
//! The proxy either stops forwarding with its sockets open, or holds every
//! chunk for a while; node 1's /health, the publishes through it and its
//! subscribers are watched, and nothing acknowledged may be lost.

use super::fleet::DETECT_WAIT;
use super::fleet::{self, Fleet, RECOVERY_WAIT};
use super::node::{self, Broker};
use super::proxy::{Mode, Proxy};
use super::redis_restart::SUBSCRIBERS_PER_NODE;
use super::{Ctx, Row, failed, secs};
use crate::Result;
use herald_tests::redis::{RedisOptions, RedisServer};
use std::time::{Duration, Instant};

pub const ABOUT_BLACKHOLE: &str = "**`redis-blackhole`**: two nodes on one Redis (append-only, as \
in `redis-restart`), node 1 through an in-test TCP proxy, node 2 directly; two subscribers on \
each node, callers publishing through both. The proxy stops forwarding in both directions while \
keeping every socket open (no RST, no FIN: what a dead switch or a paused VM looks like), so \
node 1 can only notice through its own timeouts and heartbeats. It stays so until node 1 \
reports 503, then for the scale's outage, then forwards again. *Lost* = acknowledged \
publications not in history afterwards or not received by a subscriber on either node. Pass: \
lost 0, no duplicates, node 1 /health 503 within 5 s of the blackhole and 200 within 30 s of \
the restore, node 2 200 throughout, no `recovered: false`.";

pub const ABOUT_LATENCY: &str = "**`redis-latency`**: the same two nodes; the proxy holds every \
chunk 250 ms in each direction (500 ms more per round trip, half the node's 1 s Redis timeout) \
for the scale's outage plus 2 s, then forwards at once again. *Lost* as in `redis-blackhole`. \
Pass: lost 0, no duplicates, no `recovered: false`; /health is reported, not required either \
way: a node whose Redis answers within its timeout may rightly stay 200.";

const LATENCY_EACH_WAY: Duration = Duration::from_millis(250);

struct Setup {
    redis: RedisServer,
    proxy: Proxy,
}

pub async fn blackhole(ctx: &Ctx<'_>) -> Result<Row> {
    with_proxy(ctx, "redis-blackhole").await
}

pub async fn latency(ctx: &Ctx<'_>) -> Result<Row> {
    with_proxy(ctx, "redis-latency").await
}

async fn with_proxy(ctx: &Ctx<'_>, scenario: &'static str) -> Result<Row> {
    let options = RedisOptions { appendonly: true };
    let redis = tokio::task::spawn_blocking(move || RedisServer::start_with(options))
        .await?
        .ok_or("redis-server is not installed")?;
    let proxy = Proxy::start(redis.port()).await?;
    let mut specs = super::redis_restart::specs(scenario, Broker::Redis(redis.url()), 2);
    specs[0].broker = Broker::Redis(format!("redis://127.0.0.1:{}", proxy.port));
    let setup = Setup { redis, proxy };
    let mut fleet = Fleet::start(ctx, specs).await?;
    let outcome = match scenario {
        "redis-blackhole" => drive_blackhole(ctx, &mut fleet, &setup).await,
        _ => drive_latency(ctx, &mut fleet, &setup).await,
    };
    fleet.stop(failed(&outcome)).await;
    drop(setup.redis);
    outcome
}

async fn drive_blackhole(ctx: &Ctx<'_>, fleet: &mut Fleet, setup: &Setup) -> Result<Row> {
    let mut row = Row {
        scenario: "redis-blackhole",
        ..Row::default()
    };
    fleet.load(ctx, SUBSCRIBERS_PER_NODE).await?;
    eprintln!(
        "  {} acknowledged; blackholing node 1's Redis",
        fleet.acked()
    );
    let down = Instant::now();
    setup.proxy.set(Mode::Blackhole);
    let detected = fleet.watches[0]
        .wait(down, down + DETECT_WAIT, node::is_unavailable)
        .await;
    let until = detected.unwrap_or(down + DETECT_WAIT) + ctx.scale.outage;
    tokio::time::sleep_until(until.into()).await;
    let acked = fleet.acked();
    setup.proxy.set(Mode::Forward);
    let restored = Instant::now();
    eprintln!(
        "  forwarding again after {}; {acked} acknowledged",
        secs(restored - down)
    );
    let healthy = [fleet.watches[0]
        .wait(restored, restored + RECOVERY_WAIT, node::is_ok)
        .await];
    fleet::outage_health(
        &mut row,
        (down, DETECT_WAIT),
        restored,
        &[detected],
        &healthy,
    );
    let other = fleet.watches[1].failures_between(down, Instant::now());
    row.health
        .push_str(&format!("; node 2: {other} polls not 200"));
    row.require(other == 0, || {
        format!("node 2 /health not 200 {other} times though its Redis was fine")
    });
    finish(ctx, fleet, &mut row, (acked, down, restored), &healthy).await?;
    Ok(row)
}

async fn drive_latency(ctx: &Ctx<'_>, fleet: &mut Fleet, setup: &Setup) -> Result<Row> {
    let mut row = Row {
        scenario: "redis-latency",
        ..Row::default()
    };
    fleet.load(ctx, SUBSCRIBERS_PER_NODE).await?;
    eprintln!("  {} acknowledged; delaying node 1's Redis", fleet.acked());
    let slow = Instant::now();
    setup.proxy.set(Mode::Delay(LATENCY_EACH_WAY));
    tokio::time::sleep_until((slow + ctx.scale.outage + Duration::from_secs(2)).into()).await;
    let acked = fleet.acked();
    setup.proxy.set(Mode::Forward);
    let restored = Instant::now();
    let unhealthy = fleet.watches[0].failures_between(slow, restored);
    let healthy = [fleet.watches[0]
        .wait(restored, restored + RECOVERY_WAIT, node::is_ok)
        .await];
    row.health = format!(
        "node 1: {unhealthy} polls not 200 during the spike, 200 {} after it",
        healthy[0].map_or("**never**".into(), |at| secs(at - restored))
    );
    row.require(healthy[0].is_some(), || {
        "node 1 /health not 200 after the spike".into()
    });
    finish(ctx, fleet, &mut row, (acked, slow, restored), &healthy).await?;
    Ok(row)
}

/// The tail both share: the `after` load, the count, and the recovery cell.
async fn finish(
    ctx: &Ctx<'_>,
    fleet: &mut Fleet,
    row: &mut Row,
    (acked, fault, restored): (u64, Instant, Instant),
    healthy: &[Option<Instant>],
) -> Result<()> {
    let subscribers = fleet.subscribers();
    let finished = fleet.finish(ctx, row, acked, fault).await?;
    row.recovery = fleet::recovery_cell(restored, healthy, &finished, subscribers);
    row.require(finished.unrecovered == 0, || {
        format!(
            "{} resubscriptions answered recovered: false",
            finished.unrecovered
        )
    });
    Ok(())
}
