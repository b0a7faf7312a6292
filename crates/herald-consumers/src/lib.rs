//! Outbox consumers: server API calls that an application writes into its own
//! database (or a Redis stream) and Herald runs, at least once.
//!
//! The application inserts a row `(method, payload)`, for example
//! `('publish', '{"channel": "orders:42", "data": {...}}')`, in the same
//! transaction as its business change. The row exists exactly when the change
//! committed, so the publication can neither get lost (the app crashed after
//! its commit) nor announce a change that was rolled back. Herald reads the
//! rows and runs each as the server API call it names. The formats are
//! Centrifugo's, so an outbox written for Centrifugo works unchanged.
//!
//! This crate knows nothing of the server: it hands each message to an
//! [`Apply`], which answers done, [`ApplyError::Rejected`] (the message can
//! never succeed: it is logged, counted and removed, so it cannot wedge the
//! messages behind it) or [`ApplyError::Retry`] (kept, and retried with
//! backoff from 100 ms doubling to 5 s, in order).
//!
//! # Sources
//!
//! - **PostgreSQL** ([`Source::Postgresql`]): for each partition, one
//!   transaction takes an advisory lock on the partition, selects up to
//!   `partition_select_limit` rows `FOR UPDATE SKIP LOCKED` in `id` order,
//!   applies them, deletes them and commits. The lock keeps a partition's
//!   order even with several Herald nodes on one table; `SKIP LOCKED` keeps
//!   them from waiting on each other. Partitions are polled every
//!   `partition_poll_interval`, and at once on a `NOTIFY` on
//!   `partition_notification_channel`.
//! - **Redis Streams** ([`Source::RedisStream`]): entries with a `method` and
//!   a `payload` field, read with `XREADGROUP` in a consumer group and
//!   acknowledged with `XACK` once applied (or rejected). Entries left pending
//!   by a consumer that died are reclaimed with `XAUTOCLAIM` after
//!   `visibility_timeout`. See `redis_stream.rs` for the choices made there.
//!
//! # Delivery
//!
//! At least once: a message is removed only after it was applied, so a crash
//! between the two applies it again. Put an `idempotency_key` into `publish`
//! payloads to make history see it once.
//!
//! # Metrics
//!
//! All labelled `consumer`: [`APPLIED`], [`REJECTED`], [`ERRORS`] (transient
//! failures, each followed by a retry) and the gauge [`UP`], 1 while the
//! source answers. [`Consumers::status`] tells the same per consumer.
//!
//! # Layout
//! - this file: [`Apply`], [`spawn`], [`Consumers`] and [`StatusBoard`].
//! - `settings.rs`: [`ConsumerConfig`] and its sources' settings, and their
//!   checks.
//! - `worker.rs`: applying one message, reporting, backoff, the stop signal.
//! - `postgres.rs`: the PostgreSQL outbox table consumer.
//! - `redis_stream.rs`: the Redis Streams consumer.
//! - `tests.rs`: settings checks, and the PostgreSQL consumer against a real
//!   server. Redis Streams and end-to-end tests live in `herald-tests`.
#![forbid(unsafe_code)]

mod postgres;
mod redis_stream;
mod settings;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod worker;

pub use settings::{
    ConsumerConfig, PostgresSettings, RedisStreamSettings, SettingsError, Source, is_consumer_name,
    is_plain_identifier,
};

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use worker::{Stop, Worker};

/// Messages applied, per consumer.
pub const APPLIED: &str = "herald_consumer_applied_total";
/// Messages that can never be applied, logged and removed.
pub const REJECTED: &str = "herald_consumer_rejected_total";
/// Transient failures (source unreachable, apply answered retry).
pub const ERRORS: &str = "herald_consumer_errors_total";
/// 1 while the consumer's source answers, 0 while it does not.
pub const UP: &str = "herald_consumer_up";

/// What a consumer reports before its source first answered.
pub const NOT_CONNECTED_YET: &str = "not connected yet";

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs one message: `method` is a server API method (`publish`,
/// `broadcast`, `disconnect`, ...), `payload` its JSON parameters.
pub trait Apply: Send + Sync + 'static {
    fn apply<'a>(
        &'a self,
        method: &'a str,
        payload: &'a serde_json::value::RawValue,
    ) -> BoxFuture<'a, Result<(), ApplyError>>;
}

/// Why a message was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// It never will be (unknown method, bad payload, permission): drop it.
    #[error("rejected: {0}")]
    Rejected(String),
    /// It may be later (the node's broker is away): keep it and retry.
    #[error("retry: {0}")]
    Retry(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("consumer `{name}`: {}", join(problems))]
    Settings {
        name: String,
        problems: Vec<SettingsError>,
    },
    #[error("consumer `{0}` is defined twice; names must be unique")]
    DuplicateName(String),
}

fn join(problems: &[SettingsError]) -> String {
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    problems.join("; ")
}

/// Per consumer, `Ok` while its source answers, `Err(reason)` while not.
/// Cheap to clone; every clone sees the same board.
#[derive(Clone, Default)]
pub struct StatusBoard(Arc<Mutex<BTreeMap<String, Result<(), String>>>>);

impl StatusBoard {
    pub fn snapshot(&self) -> BTreeMap<String, Result<(), String>> {
        self.0.lock().expect("never poisoned").clone()
    }

    /// Records `status`; true when it tells something new: the source came
    /// or went, or was reached (or not) for the first time.
    fn set(&self, name: &str, status: Result<(), String>) -> bool {
        let mut board = self.0.lock().expect("never poisoned");
        let changed = board.get(name).is_none_or(|old| {
            old.is_ok() != status.is_ok()
                || old
                    .as_ref()
                    .is_err_and(|reason| reason == NOT_CONNECTED_YET)
        });
        board.insert(name.to_string(), status);
        changed
    }
}

/// The running consumers.
pub struct Consumers {
    board: StatusBoard,
    tasks: Vec<JoinHandle<()>>,
}

impl Consumers {
    /// Per consumer name, `Ok(())` or why its source is unreachable.
    pub fn status(&self) -> BTreeMap<String, Result<(), String>> {
        self.board.snapshot()
    }

    /// A handle on the same statuses, for whoever reports them.
    pub fn board(&self) -> StatusBoard {
        self.board.clone()
    }

    /// Resolves once every consumer has stopped after `shutdown`: each
    /// finishes the batch in hand (applied messages are removed), so
    /// nothing applied is left to be applied twice.
    pub async fn stopped(self) {
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "an outbox consumer task failed");
            }
        }
    }
}

/// Checks every consumer, then starts them on the current Tokio runtime;
/// they run until `shutdown` resolves.
pub fn spawn(
    consumers: Vec<ConsumerConfig>,
    apply: Arc<dyn Apply>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Consumers, SpawnError> {
    let mut names = std::collections::HashSet::new();
    for consumer in &consumers {
        let problems = consumer.problems();
        if !problems.is_empty() {
            return Err(SpawnError::Settings {
                name: consumer.name.clone(),
                problems,
            });
        }
        if !names.insert(consumer.name.as_str()) {
            return Err(SpawnError::DuplicateName(consumer.name.clone()));
        }
    }
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let board = StatusBoard::default();
    let mut tasks = vec![tokio::spawn(async move {
        shutdown.await;
        let _ = stop_sender.send(true);
    })];
    for consumer in consumers {
        board.set(&consumer.name, Err(NOT_CONNECTED_YET.into()));
        let worker = Arc::new(Worker::new(consumer.name, apply.clone(), board.clone()));
        let stop = Stop::new(stop.clone());
        match consumer.source {
            Source::Postgresql(settings) => {
                tracing::info!(consumer = %worker.name, table = %settings.outbox_table_name, partitions = settings.num_partitions, "outbox consumer on PostgreSQL");
                tasks.extend(postgres::spawn(worker, settings, stop));
            }
            Source::RedisStream(settings) => {
                tracing::info!(consumer = %worker.name, streams = ?settings.streams, group = %settings.consumer_group, "outbox consumer on Redis Streams");
                tasks.push(tokio::spawn(redis_stream::run(worker, settings, stop)));
            }
        }
    }
    Ok(Consumers { board, tasks })
}

#[cfg(test)]
mod tests;
