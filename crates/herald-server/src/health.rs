//! What `/health` answers: 200 while the node can serve, 503 with the reason
//! while a dependency it cannot work without is gone, so a load balancer stops
//! sending clients and publishes to a node that would fail them.
//!
//! Two dependencies are required when configured: the broker (Redis), which
//! reports its own state through the node, and PostgreSQL (`storage.url`),
//! which holds history, the inbox, chat and the webhook outbox. PostgreSQL is
//! probed here, once a second over a connection of its own. The embedded
//! SQLite store is a file in this process, not something that can go away
//! while the process lives; its failures are the publishes' own errors.
//!
//! Outbox consumers are reported but never turn `/health` to 503: their
//! source database or Redis is shared by every node, so when it is gone it
//! is gone for all of them, and taking every node out of rotation would stop
//! live traffic without bringing a single outbox row closer. The body names
//! each consumer (`"consumers": {"app-outbox": "unreachable: ..."}`) and the
//! gauge `herald_consumer_up` says the same.

use crate::shutdown::Shutdown;
use herald_core::node::Node;
use herald_postgres::Probe;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub const STORAGE_UP: &str = "herald_storage_up";

/// Between probes of PostgreSQL.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// One probe's round trip, connecting included when needed.
const PROBE_LIMIT: Duration = Duration::from_secs(1);
/// Failed probes in a row before the node reports 503: one slow answer under
/// load must not take a node out of rotation. With the two limits above, a
/// lost server shows within about 4 s, inside the 5 s operators are promised.
const FAILURES_BEFORE_DOWN: u32 = 2;

#[derive(Clone, Default)]
pub struct Health {
    /// `Some(reason)` while PostgreSQL storage is unreachable.
    storage_down: Arc<Mutex<Option<String>>>,
    /// The outbox consumers' statuses, once they run.
    consumers: Arc<OnceLock<herald_consumers::StatusBoard>>,
}

impl Health {
    /// Starts probing `storage_url` (PostgreSQL) until shutdown; without one
    /// there is nothing to probe and storage is always up.
    pub fn start(storage_url: Option<&str>, shutdown: Shutdown) -> Self {
        let health = Self::default();
        if let Some(url) = storage_url {
            // The URL was checked when the stores opened it.
            if let Ok(probe) = Probe::new(url) {
                ::metrics::gauge!(STORAGE_UP).set(1.0);
                tokio::spawn(probe_storage(probe, health.storage_down.clone(), shutdown));
            }
        }
        health
    }

    /// Reports these consumers from now on.
    pub fn watch_consumers(&self, board: herald_consumers::StatusBoard) {
        let _ = self.consumers.set(board);
    }

    /// Per outbox consumer, "ok" or "unreachable: <reason>"; `None` when no
    /// consumer runs. Informational: never part of [`Health::check`].
    pub fn consumers(&self) -> Option<BTreeMap<String, String>> {
        let board = self.consumers.get()?;
        let statuses = board.snapshot().into_iter().map(|(name, status)| {
            let status = match status {
                Ok(()) => "ok".to_string(),
                Err(reason) => format!("unreachable: {reason}"),
            };
            (name, status)
        });
        Some(statuses.collect())
    }

    /// `Err(reason)` while a required dependency is gone.
    pub fn check(&self, node: &Node) -> Result<(), String> {
        node.health()?;
        match &*self.storage_down.lock().expect("never poisoned") {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }
}

async fn probe_storage(
    mut probe: Probe,
    storage_down: Arc<Mutex<Option<String>>>,
    mut shutdown: Shutdown,
) {
    let mut failures = 0;
    let mut ticks = tokio::time::interval(PROBE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.recv() => return,
        }
        let outcome = probe.check(PROBE_LIMIT).await;
        let mut down = storage_down.lock().expect("never poisoned");
        match outcome {
            Ok(()) => {
                failures = 0;
                if down.take().is_some() {
                    tracing::info!("storage: PostgreSQL answers again; /health is 200");
                    ::metrics::gauge!(STORAGE_UP).set(1.0);
                }
            }
            Err(error) => {
                failures += 1;
                if failures >= FAILURES_BEFORE_DOWN && down.is_none() {
                    tracing::error!(%error, "storage unreachable; /health is 503 until it answers");
                    ::metrics::gauge!(STORAGE_UP).set(0.0);
                    *down = Some(format!("storage: {error}"));
                }
            }
        }
    }
}
