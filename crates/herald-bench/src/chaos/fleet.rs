//! What the publication scenarios share: some nodes, a `/health` watcher
//! each, subscribers spread over the nodes, callers publishing through all
//! of them to one channel, and the final count once the failure is over.
//! A scenario starts a fleet, injects its failure between [`Fleet::load`]
//! and [`Fleet::finish`], and always ends with [`Fleet::stop`].

use super::node::{self, HealthWatch, Node, Spec};
use super::subscriber::{self, Subscriber};
use super::traffic::{self, Callers};
use super::{Ctx, Row, secs, tally_publications};
use crate::Result;
use std::time::{Duration, Instant};

/// Longest nodes and subscribers may take to be back after a failure.
pub const RECOVERY_WAIT: Duration = Duration::from_secs(30);
/// The brief's bound: /health must say 503 within this of a required
/// dependency (Redis, PostgreSQL) going away.
pub const DETECT_WAIT: Duration = Duration::from_secs(5);

/// How the subscribers came through, once the fleet finished.
pub struct Finished {
    /// Subscribers that resubscribed after the fault.
    pub resubscribed: usize,
    /// When the last of them did.
    pub last: Option<Instant>,
    /// Resubscriptions answered `recovered: false`.
    pub unrecovered: usize,
}

pub struct Fleet {
    pub nodes: Vec<Node>,
    pub watches: Vec<HealthWatch>,
    pub channel: String,
    subscribers: Vec<Subscriber>,
    callers: Option<Callers>,
}

impl Fleet {
    /// Starts one node per spec, each in its own directory under the scenario's.
    pub async fn start(ctx: &Ctx<'_>, specs: Vec<Spec>) -> Result<Fleet> {
        let mut fleet = Fleet {
            nodes: Vec::new(),
            watches: Vec::new(),
            channel: subscriber::channel("stream"),
            subscribers: Vec::new(),
            callers: None,
        };
        for spec in specs {
            let dir = ctx.dir.join(&spec.name);
            match Node::start(ctx.binary, &dir, spec).await {
                Ok(node) => fleet.nodes.push(node),
                Err(e) => {
                    fleet.stop(true).await;
                    return Err(e);
                }
            }
        }
        Ok(fleet)
    }

    /// Waits until every node is healthy, subscribes `per_node` subscribers
    /// on each, and publishes until the scale's `before` load is acknowledged.
    pub async fn load(&mut self, ctx: &Ctx<'_>, per_node: usize) -> Result<()> {
        let s = ctx.scale;
        let ready = Instant::now() + RECOVERY_WAIT;
        for node in &self.nodes {
            let watch = HealthWatch::start(node.base());
            watch
                .wait(Instant::now(), ready, node::is_ok)
                .await
                .ok_or_else(|| format!("{}: /health not 200 after start", node.spec.name))?;
            self.watches.push(watch);
        }
        for i in 0..self.nodes.len() * per_node {
            let url = self.nodes[i % self.nodes.len()].ws_url();
            let subscriber = Subscriber::start(&url, &format!("s{i}"), &self.channel).await?;
            self.subscribers.push(subscriber);
        }
        let bases: Vec<String> = self.nodes.iter().map(Node::base).collect();
        let publish = traffic::publish_call(&self.channel);
        let callers = self
            .callers
            .insert(Callers::start(&bases, s.rate, s.callers, publish));
        callers
            .await_acked(s.calls_in(s.before), s.before * 3)
            .await
    }

    pub fn acked(&self) -> u64 {
        self.callers.as_ref().map_or(0, Callers::acked)
    }

    /// Each node's first `/health` answer after `since` that satisfies `wanted`.
    pub async fn health_after(
        &self,
        since: Instant,
        within: Duration,
        wanted: fn(Option<u16>) -> bool,
    ) -> Vec<Option<Instant>> {
        let mut times = Vec::new();
        for watch in &self.watches {
            times.push(watch.wait(since, since + within, wanted).await);
        }
        times
    }

    /// Each subscriber's first resubscription after `since` (when, and
    /// whether it recovered), waiting for it until `deadline`.
    pub async fn recoveries_after(
        &self,
        since: Instant,
        deadline: Instant,
    ) -> Vec<Option<(Instant, bool)>> {
        let mut outcomes = Vec::new();
        for subscriber in &self.subscribers {
            outcomes.push(subscriber.recovery_after(since, deadline).await);
        }
        outcomes
    }

    /// Publishes the scale's `after` load on top of `from` acknowledged calls,
    /// stops the callers, waits until every subscriber has the last
    /// acknowledged offset, and counts everything into `row`.
    pub async fn finish(
        &mut self,
        ctx: &Ctx<'_>,
        row: &mut Row,
        from: u64,
        fault: Instant,
    ) -> Result<Finished> {
        let s = ctx.scale;
        let callers = self.callers.take().ok_or("the fleet was not loaded")?;
        let after = callers
            .await_acked(from + s.calls_in(s.after), s.after * 3 + RECOVERY_WAIT)
            .await;
        let calls = callers.stop().await;
        after?;
        eprintln!(
            "  {} acknowledged, {} failed (first: {:?})",
            calls.acks.len(),
            calls.failed,
            calls.first_error
        );
        let top = calls
            .acks
            .iter()
            .map(|(_, a)| a.offset())
            .max()
            .unwrap_or(0);
        let deadline = Instant::now() + RECOVERY_WAIT;
        let (mut resubscribed, mut last) = (0, None);
        let mut received = Vec::new();
        for subscriber in std::mem::take(&mut self.subscribers) {
            subscriber.await_offset(top, deadline).await;
            if let Some((at, _)) = subscriber.recovery_after(fault, Instant::now()).await {
                resubscribed += 1;
                last = last.max(Some(at));
            }
            received.push(subscriber.stop().await?);
        }
        let causes: std::collections::BTreeSet<&str> = received
            .iter()
            .flat_map(|r| &r.recoveries)
            .map(|r| r.cause.as_str())
            .collect();
        if !causes.is_empty() {
            eprintln!("  subscribers resubscribed after: {causes:?}");
        }
        let http = traffic::http_client();
        let history = traffic::read_history(&http, &self.nodes[0].base(), &self.channel).await?;
        let unrecovered = tally_publications(row, &calls.acks, &history, &received);
        Ok(Finished {
            resubscribed,
            last,
            unrecovered,
        })
    }

    /// Resets every subscriber's connection at once; they reconnect and recover.
    pub fn drop_connections(&self) {
        for subscriber in &self.subscribers {
            subscriber.drop_connection();
        }
    }

    pub fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    /// Stops every node; prints their logs when the scenario failed.
    pub async fn stop(self, failed: bool) {
        for node in self.nodes {
            if failed {
                eprintln!("  {} log:\n{}", node.spec.name, node.log_tail());
            }
            node.stop().await;
        }
    }
}

/// The latest of `times` when all are there.
pub fn latest(times: &[Option<Instant>]) -> Option<Instant> {
    times
        .iter()
        .copied()
        .collect::<Option<Vec<_>>>()
        .and_then(|t| t.into_iter().max())
}

/// The /health cell of a dependency outage and its pass criteria, from each
/// node's first 503 after `down` and first 200 after `restored`.
pub fn outage_health(
    row: &mut Row,
    (down, detect_within): (Instant, Duration),
    restored: Instant,
    detected: &[Option<Instant>],
    healthy: &[Option<Instant>],
) {
    let slowest = |times: &[Option<Instant>], from: Instant| {
        latest(times).map(|t| t.saturating_duration_since(from))
    };
    let of_nodes = match detected.len() {
        1 => String::new(),
        n => format!(" (slowest of {n} nodes)"),
    };
    row.health = format!(
        "503 after {}, 200 again {} after restore{of_nodes}",
        slowest(detected, down).map_or("**never**".into(), secs),
        slowest(healthy, restored).map_or("**never**".into(), secs),
    );
    for (k, t) in detected.iter().enumerate() {
        row.require(t.is_some(), || {
            format!(
                "node {}: /health not 503 within {detect_within:?} of the outage",
                k + 1
            )
        });
    }
    for (k, t) in healthy.iter().enumerate() {
        row.require(t.is_some(), || {
            format!(
                "node {}: /health not 200 within {RECOVERY_WAIT:?} of the restore",
                k + 1
            )
        });
    }
}

/// The recovery cell: from `from` until every node is healthy and the last
/// subscriber that resubscribed has done so.
pub fn recovery_cell(
    from: Instant,
    healthy: &[Option<Instant>],
    finished: &Finished,
    subscribers: usize,
) -> String {
    match latest(healthy) {
        Some(at) => format!(
            "{} ({} of {subscribers} subscribers resubscribed)",
            secs(
                at.max(finished.last.unwrap_or(at))
                    .saturating_duration_since(from)
            ),
            finished.resubscribed
        ),
        None => "**never**".into(),
    }
}
