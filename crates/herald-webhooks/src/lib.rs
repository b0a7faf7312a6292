//! Webhooks: Herald tells the user's backend what happened (a user came
//! online, a chat message was sent, ...) with signed HTTP POSTs, at least
//! once.
//!
//! Events are not sent from the code that emits them. [`Webhooks::emit`]
//! hands the event to a writer task, which inserts it into the
//! `herald_webhook_outbox` table (SQLite or PostgreSQL, through sqlx's Any
//! driver). A delivery task polls that table, claims due rows with a lease
//! and POSTs them. A row is deleted only after a 2xx answer, so an event
//! survives a backend outage and a Herald restart. Several nodes may share
//! one PostgreSQL outbox: a claim is an optimistic update that one node
//! wins, and the rows of a node that died are picked up by the others once
//! their leases run out.
//!
//! # Wire format
//!
//! Each attempt is a `POST` to `webhooks.url` with this JSON body:
//!
//! ```json
//! {"id": "6f1c…", "event": "user.online", "time": 1767225600000, "data": {"user": "42"}}
//! ```
//!
//! - `id`: a UUID, the same on every retry of the event; receivers
//!   deduplicate on it, since an event may arrive more than once.
//! - `event`: one of [`EVENTS`].
//! - `time`: when the event happened, in milliseconds since the Unix epoch.
//! - `data`: the event's own fields.
//!
//! and these headers:
//!
//! | header               | value                                              |
//! |----------------------|----------------------------------------------------|
//! | `Content-Type`       | `application/json`                                 |
//! | `X-Herald-Event`     | the event, as in the body                          |
//! | `X-Herald-Delivery`  | the event id, as in the body                       |
//! | `X-Herald-Attempt`   | `1` for the first attempt, then `2`, `3`, ...       |
//! | `X-Herald-Timestamp` | when this attempt was signed, in Unix seconds      |
//! | `X-Herald-Signature` | `sha256=` + lowercase hex of HMAC-SHA256(`webhooks.secret`, `"<timestamp>.<body>"`) |
//!
//! Any 2xx answer (within `webhooks.timeout`) delivers the event. Anything
//! else (another status, a redirect, a refused connection, a timeout) is
//! retried after `retry_initial * 2^(attempt-1)`, capped at `retry_max`,
//! with jitter; after `max_attempts` attempts the event is dropped.
//!
//! A receiver checks the signature over the raw body bytes, for example
//! with [`signature`]:
//!
//! ```
//! let body = br#"{"id":"a","event":"connect","time":1,"data":{}}"#;
//! let timestamp = 1_767_225_600; // from X-Herald-Timestamp
//! let expected = herald_webhooks::signature("the secret", timestamp, body);
//! assert!(expected.starts_with("sha256=") && expected.len() == 7 + 64);
//! // Compare with X-Herald-Signature in constant time, and reject
//! // timestamps too far from now.
//! ```
//!
//! # Metrics
//!
//! - `herald_webhook_events_total{event}`: events emitted and queued.
//! - `herald_webhook_deliveries_total{outcome}`: `ok`, `retry` (a failed
//!   attempt that will be repeated) and `dropped` (out of attempts, or lost
//!   because the queue in front of the outbox was full or shut).
//! - `herald_webhook_outbox_pending`: rows in the outbox, all nodes
//!   together, refreshed about every second.
//!
//! # Layout
//! - this file: the wire format, [`Webhooks`] (start, filter, emit,
//!   shutdown) and [`WebhookError`].
//! - `settings.rs`: [`WebhookSettings`], [`EVENTS`], validation and the
//!   backoff schedule.
//! - `writer.rs`: the task that batches emitted events into the outbox.
//! - `worker.rs`: the task that polls, claims and delivers due rows.
//! - `deliver.rs`: one signed POST, and [`signature`].
//! - `outbox.rs`: the table and all SQL on it.
//! - `tests.rs`: unit tests (settings, backoff, signature, claims); the
//!   end-to-end tests against a real HTTP receiver are in `tests/`.
#![forbid(unsafe_code)]

mod deliver;
mod outbox;
mod settings;
mod worker;
mod writer;

#[cfg(test)]
mod tests;

pub use deliver::signature;
pub use settings::{EVENTS, WebhookSettings};

use outbox::Outbox;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, Notify, mpsc, watch};
use tokio::task::JoinHandle;
use writer::{Emitted, ToWriter};

/// Events [`Webhooks::emit`] can hold before the writer has inserted them.
/// Beyond this (the database is slow or away) events are dropped and
/// counted rather than growing memory without bound.
const QUEUE: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Settings(String),
    #[error("webhooks: creating the outbox table herald_webhook_outbox failed: {0}")]
    Migrate(#[source] sqlx::Error),
    #[error("webhooks: building the HTTP client failed: {0}")]
    Client(#[source] reqwest::Error),
}

/// The running webhooks of this node. Cheap to clone; every clone feeds the
/// same tasks.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    /// The events to send, from `webhooks.events` (all when empty).
    wanted: Vec<&'static str>,
    to_writer: mpsc::Sender<ToWriter>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Option<Tasks>>,
    /// Set while emits are being dropped, so an overflow warns once.
    overflowing: AtomicBool,
}

struct Tasks {
    writer: JoinHandle<()>,
    worker: JoinHandle<()>,
}

impl Webhooks {
    /// Checks `settings`, creates the outbox table if needed and starts the
    /// writer and delivery tasks on the current Tokio runtime. Rows left by
    /// an earlier run (or by other nodes) are delivered too.
    pub async fn start(
        settings: WebhookSettings,
        pool: sqlx::AnyPool,
    ) -> Result<Webhooks, WebhookError> {
        settings.validate().map_err(WebhookError::Settings)?;
        let outbox = Outbox::new(pool);
        outbox.migrate().await.map_err(WebhookError::Migrate)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("herald-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(WebhookError::Client)?;
        let wanted = EVENTS
            .iter()
            .copied()
            .filter(|known| {
                settings.events.is_empty() || settings.events.iter().any(|e| e == known)
            })
            .collect();
        let (to_writer, queue) = mpsc::channel(QUEUE);
        let (stop, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let writer = tokio::spawn(writer::run(queue, outbox.clone(), wake.clone()));
        let shared = Arc::new(worker::Shared {
            outbox,
            client,
            settings,
        });
        let worker = tokio::spawn(worker::run(shared, wake, stopped));
        Ok(Webhooks {
            inner: Arc::new(Inner {
                wanted,
                to_writer,
                stop,
                tasks: Mutex::new(Some(Tasks { writer, worker })),
                overflowing: AtomicBool::new(false),
            }),
        })
    }

    /// Whether `event` is sent at all, so callers can skip building its
    /// data. `false` for names not in [`EVENTS`].
    pub fn wants(&self, event: &str) -> bool {
        self.inner.wanted.contains(&event)
    }

    /// Queues `event` with `data` for delivery; returns at once, never
    /// waiting on the database or the network. Ignored unless
    /// [`wants`](Self::wants)`(event)`. Dropped (a warning and
    /// `outcome="dropped"`) when the queue is full or after
    /// [`shutdown`](Self::shutdown).
    pub fn emit(&self, event: &'static str, data: serde_json::Value) {
        if !self.wants(event) {
            return;
        }
        let emitted = Emitted {
            id: uuid::Uuid::new_v4().to_string(),
            event,
            time_ms: now_ms(),
            data,
        };
        match self.inner.to_writer.try_send(ToWriter::Event(emitted)) {
            Ok(()) => {
                metrics::counter!("herald_webhook_events_total", "event" => event).increment(1);
                // Read first: a store on every emit would bounce the cache
                // line between the threads emitting.
                if self.inner.overflowing.load(Ordering::Relaxed) {
                    self.inner.overflowing.store(false, Ordering::Relaxed);
                }
            }
            Err(error) => {
                metrics::counter!("herald_webhook_deliveries_total", "outcome" => "dropped")
                    .increment(1);
                let why = match error {
                    mpsc::error::TrySendError::Full(_) => {
                        "the queue to the outbox is full (is the database slow or away?)"
                    }
                    mpsc::error::TrySendError::Closed(_) => "webhooks are shut down",
                };
                if !self.inner.overflowing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        event,
                        "webhooks: dropping emitted events: {why}; further drops are counted, not logged"
                    );
                }
            }
        }
    }

    /// Writes everything emitted so far into the outbox, then stops the
    /// delivery task once the POSTs in flight have finished (each is bounded
    /// by `webhooks.timeout`). Undelivered rows stay in the outbox for the
    /// next start, or for another node. Later emits are dropped. Safe to
    /// call from several clones; all return once it is done.
    pub async fn shutdown(&self) {
        let mut tasks = self.inner.tasks.lock().await;
        let Some(Tasks { writer, worker }) = tasks.take() else {
            return;
        };
        // The writer ends once it has written everything queued.
        let _ = self.inner.to_writer.send(ToWriter::Flush).await;
        if let Err(error) = writer.await {
            tracing::error!(%error, "webhooks: the outbox writer task failed");
        }
        let _ = self.inner.stop.send(true);
        if let Err(error) = worker.await {
            tracing::error!(%error, "webhooks: the delivery task failed");
        }
    }
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("events", &self.inner.wanted)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}
