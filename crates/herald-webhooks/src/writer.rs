//! The writer task: takes what [`Webhooks::emit`](crate::Webhooks::emit)
//! queued and inserts it into the outbox in batches, one transaction each.

use crate::outbox::{NewRow, Outbox};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Rows per transaction at most.
const BATCH: usize = 256;

/// While running, a failed insert is retried without limit (the queue in
/// front absorbs the wait); while shutting down, this many tries, so that a
/// database that is gone cannot hold shutdown forever.
const TRIES_WHEN_STOPPING: u32 = 3;

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub(crate) enum ToWriter {
    Event(Emitted),
    /// Stop taking events, write everything queued, then end.
    Flush,
}

pub(crate) struct Emitted {
    pub id: String,
    pub event: &'static str,
    pub time_ms: i64,
    pub data: serde_json::Value,
}

/// The POST body, serialised once here so every retry sends the same bytes.
#[derive(Serialize)]
struct Body<'a> {
    id: &'a str,
    event: &'a str,
    time: i64,
    data: &'a serde_json::Value,
}

impl Emitted {
    fn into_row(self) -> NewRow {
        let body = serde_json::to_string(&Body {
            id: &self.id,
            event: self.event,
            time: self.time_ms,
            data: &self.data,
        })
        .expect("a serde_json::Value always serialises");
        NewRow {
            id: self.id,
            event: self.event,
            body,
            created_ms: self.time_ms,
        }
    }
}

/// Runs until every sender is gone, or [`ToWriter::Flush`] has arrived, and
/// the queue is empty.
pub(crate) async fn run(mut queue: mpsc::Receiver<ToWriter>, outbox: Outbox, wake: Arc<Notify>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut stopping = false;
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                ToWriter::Event(emitted) => batch.push(emitted.into_row()),
                // Events sent before the close are still written; after it,
                // emit reports them dropped.
                ToWriter::Flush => {
                    stopping = true;
                    queue.close();
                }
            }
            next = if batch.len() < BATCH {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        write(&outbox, &mut batch, stopping).await;
        wake.notify_one();
    }
}

/// Inserts `batch` and empties it.
async fn write(outbox: &Outbox, batch: &mut Vec<NewRow>, stopping: bool) {
    if batch.is_empty() {
        return;
    }
    let mut failures = 0;
    let mut wait = RETRY_FIRST;
    loop {
        match outbox.insert(batch).await {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(
                        rows = batch.len(),
                        failures,
                        "webhooks: writing events to the outbox works again"
                    );
                }
                batch.clear();
                return;
            }
            Err(error) => {
                failures += 1;
                if stopping && failures >= TRIES_WHEN_STOPPING {
                    tracing::warn!(
                        %error,
                        events = batch.len(),
                        "webhooks: shutting down and the outbox cannot be written; these events are dropped"
                    );
                    metrics::counter!("herald_webhook_deliveries_total", "outcome" => "dropped")
                        .increment(batch.len() as u64);
                    batch.clear();
                    return;
                }
                if failures == 1 {
                    tracing::warn!(
                        %error,
                        rows = batch.len(),
                        "webhooks: writing events to the outbox failed; retrying"
                    );
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}
