//! The delivery task: polls the outbox for due rows, claims them, and runs
//! up to [`MAX_IN_FLIGHT`] POSTs at once, each finishing its own row.

use crate::deliver;
use crate::now_ms;
use crate::outbox::{Claim, Due, Outbox};
use crate::settings::WebhookSettings;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

/// POSTs in flight per node at most.
pub(crate) const MAX_IN_FLIGHT: usize = 8;

/// The longest the task sleeps between polls: rows whose lease ran out on
/// a dead node, or that another node rescheduled, are seen this late.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// How often `herald_webhook_outbox_pending` is refreshed at most.
const COUNT_EVERY: Duration = Duration::from_secs(1);

/// A claim lasts the POST's timeout plus this, so a live node always
/// finishes (and releases or deletes) a row before its lease runs out.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// What a delivery needs, shared by every one in flight.
pub(crate) struct Shared {
    pub outbox: Outbox,
    pub client: reqwest::Client,
    pub settings: WebhookSettings,
}

/// Runs until `stop` turns true or its sender is dropped, then waits for
/// the POSTs in flight to finish.
pub(crate) async fn run(shared: Arc<Shared>, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let mut worker = Worker {
        shared,
        tasks: JoinSet::new(),
        in_flight: HashMap::new(),
        next_retry_ms: None,
        counted: None,
        failing: false,
    };
    let lease_ms = millis(worker.shared.settings.timeout + LEASE_MARGIN);
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        while let Some(joined) = worker.tasks.try_join_next_with_id() {
            worker.finished(joined);
        }
        let now = now_ms();
        if worker.next_retry_ms.is_some_and(|at| at <= now) {
            worker.next_retry_ms = None;
        }
        let more = worker.poll(now, lease_ms).await;
        worker.count().await;
        if more {
            continue;
        }
        let wait = worker.next_retry_ms.map_or(POLL_EVERY, |at| {
            POLL_EVERY.min(Duration::from_millis(
                at.saturating_sub(now_ms()).max(0) as u64
            ))
        });
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(joined) = worker.tasks.join_next_with_id() => worker.finished(joined),
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
    while let Some(joined) = worker.tasks.join_next_with_id().await {
        worker.finished(joined);
    }
}

struct Worker {
    shared: Arc<Shared>,
    tasks: JoinSet<Option<i64>>,
    /// Row ids by the task delivering them, so a row is never claimed again
    /// here while its POST is still running.
    in_flight: HashMap<tokio::task::Id, String>,
    /// The earliest retry this node scheduled that is still ahead.
    next_retry_ms: Option<i64>,
    counted: Option<Instant>,
    /// Whether the last poll failed, so an outage logs once, not per poll.
    failing: bool,
}

impl Worker {
    /// Claims and starts what is due and fits; `true` when more may be due
    /// right away (a full page was read and something was claimed).
    async fn poll(&mut self, now: i64, lease_ms: i64) -> bool {
        let free = MAX_IN_FLIGHT.saturating_sub(self.tasks.len());
        if free == 0 {
            return false;
        }
        match self.claim_due(now, free, lease_ms).await {
            Ok(more) => {
                if self.failing {
                    self.failing = false;
                    tracing::info!("webhooks: the outbox can be read again");
                }
                more
            }
            Err(error) => {
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(%error, "webhooks: polling the outbox failed; retrying every second");
                }
                false
            }
        }
    }

    async fn claim_due(
        &mut self,
        now: i64,
        free: usize,
        lease_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let rows = self.shared.outbox.due(now, free).await?;
        let page_full = rows.len() == free;
        let mut claimed = 0;
        let owner = &self.shared.settings.node_id;
        for due in rows {
            if self.in_flight.values().any(|id| *id == due.id) {
                continue;
            }
            let until_ms = now + lease_ms;
            if !self.shared.outbox.claim(&due, owner, now, until_ms).await? {
                continue;
            }
            claimed += 1;
            let claim = Claim {
                owner: owner.clone(),
                until_ms,
            };
            let id = due.id.clone();
            let handle = self
                .tasks
                .spawn(deliver_one(self.shared.clone(), due, claim));
            self.in_flight.insert(handle.id(), id);
        }
        Ok(page_full && claimed > 0)
    }

    fn finished(&mut self, joined: Result<(tokio::task::Id, Option<i64>), JoinError>) {
        match joined {
            Ok((task, retry_at)) => {
                self.in_flight.remove(&task);
                if let Some(at) = retry_at {
                    self.next_retry_ms = Some(self.next_retry_ms.map_or(at, |next| next.min(at)));
                }
            }
            Err(error) => {
                // The row keeps its lease until it runs out; then it is
                // delivered again, here or elsewhere.
                let id = self.in_flight.remove(&error.id());
                tracing::error!(%error, ?id, "webhooks: a delivery task failed");
            }
        }
    }

    async fn count(&mut self) {
        if self.counted.is_some_and(|at| at.elapsed() < COUNT_EVERY) {
            return;
        }
        self.counted = Some(Instant::now());
        if let Ok(pending) = self.shared.outbox.pending().await {
            metrics::gauge!("herald_webhook_outbox_pending").set(pending as f64);
        }
    }
}

/// Makes one attempt at `due` and finishes its row; returns when the row is
/// due again if it was rescheduled.
async fn deliver_one(shared: Arc<Shared>, due: Due, claim: Claim) -> Option<i64> {
    let settings = &shared.settings;
    let attempt = due.attempts + 1;
    let result = deliver::post(
        &shared.client,
        &settings.url,
        &settings.secret,
        settings.timeout,
        &due,
        attempt,
    )
    .await;
    let outbox = &shared.outbox;
    let (id, event) = (due.id.as_str(), due.event.as_str());
    match result {
        Ok(()) => {
            metrics::counter!("herald_webhook_deliveries_total", "outcome" => "ok").increment(1);
            if let Err(error) = outbox.delete(id).await {
                tracing::warn!(
                    %error, id, event,
                    "webhooks: delivered, but the outbox row could not be deleted; it will be sent again"
                );
            }
            None
        }
        Err(reason) if attempt >= i64::from(settings.max_attempts) => {
            match outbox.give_up(id, &claim).await {
                Ok(true) => {
                    metrics::counter!("herald_webhook_deliveries_total", "outcome" => "dropped")
                        .increment(1);
                    tracing::warn!(
                        id, event, attempts = attempt, %reason, url = %settings.url,
                        "webhooks: event dropped after its last attempt failed"
                    );
                }
                Ok(false) => lost_claim(id, event),
                Err(error) => tracing::warn!(
                    %error, id, event,
                    "webhooks: could not drop an event after its last attempt; it will be tried again"
                ),
            }
            None
        }
        Err(reason) => {
            let wait = settings.backoff(u32::try_from(attempt).unwrap_or(u32::MAX));
            let at = now_ms() + millis(wait);
            match outbox.reschedule(id, &claim, attempt, at).await {
                Ok(true) => {
                    metrics::counter!("herald_webhook_deliveries_total", "outcome" => "retry")
                        .increment(1);
                    tracing::info!(
                        id, event, attempt, %reason, retry_in = ?wait,
                        "webhooks: delivery failed; will retry"
                    );
                    Some(at)
                }
                Ok(false) => {
                    lost_claim(id, event);
                    None
                }
                Err(error) => {
                    tracing::warn!(
                        %error, id, event, attempt, %reason,
                        "webhooks: delivery failed and could not be rescheduled; it will be tried again once its lease runs out"
                    );
                    None
                }
            }
        }
    }
}

fn lost_claim(id: &str, event: &str) {
    tracing::debug!(
        id,
        event,
        "webhooks: the row's lease ran out during the attempt and another claim took over"
    );
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
