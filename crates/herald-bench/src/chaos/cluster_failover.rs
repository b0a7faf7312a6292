//! `redis-cluster-failover`: two nodes on a Redis Cluster of three masters,
//! each with a replica; under publishes through both nodes, the master that
//! serves the channel's slot is failed over to its replica with `CLUSTER
//! FAILOVER`. Nothing acknowledged may be lost, and subscribers on both
//! nodes must get every publication.

use super::fleet::{self, Fleet, RECOVERY_WAIT};
use super::node::{self, Broker};
use super::redis_restart::{NODES, SUBSCRIBERS_PER_NODE, specs};
use super::{Ctx, Row, failed, secs};
use crate::Result;
use herald_tests::redis::RedisCluster;
use std::sync::Arc;
use std::time::Instant;

pub const ABOUT: &str = "**`redis-cluster-failover`**: two nodes with `[broker] cluster_urls` \
on a Redis Cluster of 3 masters with one replica each (`redis-cli --cluster create \
--cluster-replicas 1`, no persistence), two subscribers on each node, callers publishing \
through both. Mid-stream the replica of the master serving the channel's hash slot runs \
`CLUSTER FAILOVER`: a graceful manual failover, in which the replica first catches up with its \
master, so a write the master acknowledged is on the replica when it takes over and the honest \
expectation is that nothing is lost. (A master that dies instead can lose writes it \
acknowledged but had not yet replicated: Redis replication is asynchronous, and Herald does not \
`WAIT` for replicas.) *Lost* = acknowledged publications not in history afterwards (read \
through node 1) or not received by a subscriber on either node. Pass: lost 0, no duplicates, \
no `recovered: false`. /health is reported, not required to drop: a failover that takes a \
fraction of a second may never show as 503. *Recovery time* = from the failover being \
visible to every cluster node until both nodes answer 200 and every subscriber that was told \
to resubscribe has recovered.";

pub async fn run(ctx: &Ctx<'_>) -> Result<Row> {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start_with_replicas(3, 1))
        .await
        .map_err(|e| format!("the Redis Cluster did not form: {e}"))?
        .ok_or("redis-server or redis-cli is not installed")?;
    let cluster = Arc::new(cluster);
    let broker = Broker::Cluster(cluster.urls());
    let mut fleet = Fleet::start(ctx, specs("redis-cluster-failover", broker, NODES)).await?;
    let outcome = drive(ctx, &mut fleet, &cluster).await;
    fleet.stop(failed(&outcome)).await;
    outcome
}

async fn drive(ctx: &Ctx<'_>, fleet: &mut Fleet, cluster: &Arc<RedisCluster>) -> Result<Row> {
    let mut row = Row {
        scenario: "redis-cluster-failover",
        ..Row::default()
    };
    fleet.load(ctx, SUBSCRIBERS_PER_NODE).await?;
    // Every key of a channel shares the slot of its hash tag, the channel name.
    let slot = RedisCluster::key_slot(&format!("{{{}}}", fleet.channel));
    eprintln!("  {} acknowledged; failing over slot {slot}", fleet.acked());
    let started = Instant::now();
    let failover = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.failover(slot))
    };
    let (from, to) = failover
        .await
        .map_err(|e| format!("the failover did not complete: {e}"))?;
    let done = Instant::now();
    let acked = fleet.acked();
    eprintln!(
        "  master {from} -> {to} in {}; {acked} acknowledged",
        secs(done - started)
    );
    let healthy = fleet.health_after(done, RECOVERY_WAIT, node::is_ok).await;
    let unhealthy: usize = fleet
        .watches
        .iter()
        .map(|w| w.failures_between(started, done + RECOVERY_WAIT))
        .sum();
    row.health = format!(
        "{unhealthy} polls not 200 during the failover; 200 {} after it",
        fleet::latest(&healthy).map_or("**never**".into(), |at| secs(
            at.saturating_duration_since(done)
        ))
    );
    row.require(fleet::latest(&healthy).is_some(), || {
        format!("/health not 200 within {RECOVERY_WAIT:?} of the failover")
    });
    let subscribers = fleet.subscribers();
    let finished = fleet.finish(ctx, &mut row, acked, started).await?;
    row.recovery = fleet::recovery_cell(done, &healthy, &finished, subscribers);
    row.require(finished.unrecovered == 0, || {
        format!(
            "{} resubscriptions answered recovered: false",
            finished.unrecovered
        )
    });
    Ok(row)
}
