//! What every consumer task shares: running one message through [`Apply`]
//! with its log line and metric, reporting whether the source is reachable,
//! the retry backoff, and the stop signal.

use crate::{APPLIED, Apply, ApplyError, ERRORS, REJECTED, StatusBoard, UP};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The first wait after a transient failure; it doubles up to [`BACKOFF_MAX`].
pub(crate) const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One consumer's identity and everything its tasks report to.
pub(crate) struct Worker {
    pub name: String,
    apply: Arc<dyn Apply>,
    board: StatusBoard,
    applied: metrics::Counter,
    rejected: metrics::Counter,
    errors: metrics::Counter,
    up: metrics::Gauge,
}

/// How one message ended.
pub(crate) enum Outcome {
    /// Applied, or rejected for good: either way it is done with.
    Done,
    /// Not applied, but it may be later: keep it and try again.
    Retry(String),
}

impl Worker {
    pub fn new(name: String, apply: Arc<dyn Apply>, board: StatusBoard) -> Self {
        let worker = Self {
            applied: metrics::counter!(APPLIED, "consumer" => name.clone()),
            rejected: metrics::counter!(REJECTED, "consumer" => name.clone()),
            errors: metrics::counter!(ERRORS, "consumer" => name.clone()),
            up: metrics::gauge!(UP, "consumer" => name.clone()),
            name,
            apply,
            board,
        };
        worker.up.set(0.0);
        worker
    }

    /// Runs one message. `id` names it in logs (a row id, a stream entry id).
    pub async fn apply(&self, id: &str, method: &str, payload: &str) -> Outcome {
        let payload: Box<RawValue> = match serde_json::from_str(payload) {
            Ok(payload) => payload,
            Err(error) => {
                self.reject(id, method, &format!("payload is not JSON: {error}"));
                return Outcome::Done;
            }
        };
        match self.apply.apply(method, &payload).await {
            Ok(()) => {
                self.applied.increment(1);
                Outcome::Done
            }
            Err(ApplyError::Rejected(reason)) => {
                self.reject(id, method, &reason);
                Outcome::Done
            }
            Err(ApplyError::Retry(reason)) => Outcome::Retry(reason),
        }
    }

    /// Logs and counts a message that can never be applied; the caller
    /// removes it so it never blocks the messages behind it.
    pub fn reject(&self, id: &str, method: &str, reason: &str) {
        tracing::warn!(consumer = %self.name, %id, %method, %reason, "outbox message rejected and dropped");
        self.rejected.increment(1);
    }

    /// Logs and counts a message kept for another attempt after `wait`.
    pub fn retrying(&self, id: &str, reason: &str, wait: Duration) {
        tracing::warn!(consumer = %self.name, %id, %reason, retry_in = ?wait, "outbox message not applied; retrying");
        self.errors.increment(1);
    }

    /// The source answered.
    pub fn reachable(&self) {
        if self.board.set(&self.name, Ok(())) {
            tracing::info!(consumer = %self.name, "outbox source reachable");
        }
        self.up.set(1.0);
    }

    /// The source did not answer; `reason` shows on `/health`. Logged when
    /// the source goes away, counted on every failed attempt.
    pub fn unreachable(&self, reason: String) {
        if self.board.set(&self.name, Err(reason.clone())) {
            tracing::error!(consumer = %self.name, %reason, "outbox source unreachable; retrying");
        } else {
            tracing::debug!(consumer = %self.name, %reason, "outbox source still unreachable");
        }
        self.errors.increment(1);
        self.up.set(0.0);
    }

    /// A failure beside the main path (the `LISTEN` connection): counted,
    /// and logged as a warning when `first` of a run, while the main path
    /// keeps the status.
    pub fn side_failure(&self, what: &str, reason: &str, wait: Duration, first: bool) {
        if first {
            tracing::warn!(consumer = %self.name, %reason, retry_in = ?wait, "{what}");
        } else {
            tracing::debug!(consumer = %self.name, %reason, retry_in = ?wait, "{what}");
        }
        self.errors.increment(1);
    }
}

/// Exponential backoff for transient failures: 100 ms, 200 ms, ... 5 s.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new() -> Self {
        Self {
            next: BACKOFF_INITIAL,
        }
    }

    /// The wait before the next attempt; each call doubles the one after.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }

    pub fn reset(&mut self) {
        self.next = BACKOFF_INITIAL;
    }
}

/// The stop signal, as each task sees it.
#[derive(Clone)]
pub(crate) struct Stop(watch::Receiver<bool>);

impl Stop {
    pub fn new(receiver: watch::Receiver<bool>) -> Self {
        Self(receiver)
    }

    /// Stopped, or whoever could stop us is gone (which means the same).
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves once stopped.
    pub async fn stopped(&mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }

    /// Sleeps for `wait`; false when stopped first.
    pub async fn sleep(&mut self, wait: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(wait) => !self.is_stopped(),
            _ = self.stopped() => false,
        }
    }
}
