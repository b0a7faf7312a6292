//! The group-commit writer that makes history durable.
//!
//! Publishes queue here; the writer takes everything queued at once, assigns
//! offsets, persists the batch in one transaction, and only then appends to
//! the in-memory streams, fans out, and answers the publishers. One fsync
//! serves the whole batch, so durability costs per batch, not per publication.

use crate::engine::{Draft, IDEMPOTENCY_WINDOW, Streams};
use crate::history::{Position, Retention, StoredPublication, Stream, new_epoch, now_ms};
use crate::hub::Hub;
use herald_protocol::ErrorCode;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most publishes one transaction takes; more wait for the next batch.
const MAX_BATCH: usize = 2048;
const QUEUE: usize = 8192;

/// A stream's identity and top, as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMeta {
    pub channel: String,
    pub epoch: Arc<str>,
    pub top: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub channel: String,
    pub key: String,
    pub offset: u64,
    pub epoch: Arc<str>,
    pub expires_ms: u64,
}

/// Everything one transaction writes.
#[derive(Debug, Default)]
pub struct CommitBatch {
    /// Streams created, advanced or reset (upsert by channel).
    pub streams: Vec<StreamMeta>,
    pub publications: Vec<(String, StoredPublication)>,
    /// Per channel: delete publications with offsets up to this one (size trim).
    pub trims: Vec<(String, u64)>,
    /// Channels whose publications are all deleted (history removed).
    pub cleared: Vec<String>,
    pub idempotency: Vec<IdempotencyRecord>,
}

/// What storage held at start-up.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub streams: Vec<(StreamMeta, Vec<StoredPublication>)>,
    pub idempotency: Vec<IdempotencyRecord>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Durable storage for history, implemented by the SQLite and PostgreSQL
/// stores; both run the scenarios in `conformance` (feature `testing`).
pub trait DurableLog: Send + Sync + 'static {
    /// Persists the whole batch atomically, or nothing of it.
    fn commit<'a>(&'a self, batch: &'a CommitBatch) -> BoxFuture<'a, Result<(), String>>;
}

pub(crate) enum Job {
    Publish {
        channel: String,
        draft: Draft,
        retention: Retention,
        idempotency_key: Option<String>,
        reply: oneshot::Sender<Result<Position, ErrorCode>>,
    },
    Remove {
        channel: String,
        reply: oneshot::Sender<Result<(), ErrorCode>>,
    },
}

pub(crate) fn spawn_writer(
    log: Arc<dyn DurableLog>,
    streams: Arc<Streams>,
    hub: Arc<Hub>,
) -> mpsc::Sender<Job> {
    let (sender, receiver) = mpsc::channel(QUEUE);
    tokio::spawn(write_loop(log, streams, hub, receiver));
    sender
}

/// What a batch will do once its transaction commits.
enum Planned {
    Publish {
        channel: String,
        publication: StoredPublication,
        retention: Retention,
        position: Position,
        idempotency: Option<(String, u64)>,
        reply: oneshot::Sender<Result<Position, ErrorCode>>,
    },
    Duplicate {
        position: Position,
        reply: oneshot::Sender<Result<Position, ErrorCode>>,
    },
    Remove {
        channel: String,
        epoch: Arc<str>,
        reply: oneshot::Sender<Result<(), ErrorCode>>,
    },
}

async fn write_loop(
    log: Arc<dyn DurableLog>,
    streams: Arc<Streams>,
    hub: Arc<Hub>,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut batch_jobs = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch_jobs, MAX_BATCH).await > 0 {
        let (batch, planned) = plan(&streams, batch_jobs.drain(..));
        let started = std::time::Instant::now();
        let result = log.commit(&batch).await;
        ::metrics::histogram!(crate::metrics::COMMIT_SECONDS)
            .record(started.elapsed().as_secs_f64());
        ::metrics::counter!(crate::metrics::COMMITTED).increment(batch.publications.len() as u64);
        match result {
            Ok(()) => apply(&streams, &hub, planned),
            Err(error) => {
                tracing::error!(%error, publications = batch.publications.len(), "history commit failed; publishers get error 100");
                ::metrics::counter!(crate::metrics::COMMIT_ERRORS).increment(1);
                fail(planned);
            }
        }
    }
}

/// Assigns offsets and builds the transaction. Nothing is visible to readers
/// until `apply`, so a failed commit leaves no trace.
fn plan(streams: &Streams, jobs: impl Iterator<Item = Job>) -> (CommitBatch, Vec<Planned>) {
    let now = now_ms();
    let mut batch = CommitBatch::default();
    let mut planned = Vec::new();
    // The position each touched channel will have after this batch.
    let mut tops: HashMap<String, (Arc<str>, u64, usize)> = HashMap::new();
    let mut batch_keys: HashMap<(String, String), Position> = HashMap::new();
    for job in jobs {
        match job {
            Job::Publish {
                channel,
                draft,
                retention,
                idempotency_key,
                reply,
            } => {
                if let Some(key) = &idempotency_key {
                    let earlier = batch_keys.get(&(channel.clone(), key.clone())).cloned();
                    if let Some(position) =
                        earlier.or_else(|| streams.remembered(&channel, key, now))
                    {
                        planned.push(Planned::Duplicate { position, reply });
                        continue;
                    }
                }
                let (epoch, top, size) = tops.entry(channel.clone()).or_insert_with(|| {
                    streams.locked(&channel, |s: &mut Stream| (s.epoch().clone(), s.top(), 0))
                });
                *size = (*size).max(retention.size);
                *top += 1;
                let position = Position {
                    offset: *top,
                    epoch: epoch.clone(),
                };
                let publication = StoredPublication {
                    offset: *top,
                    time_ms: now,
                    object: draft.encode(*top),
                };
                batch
                    .publications
                    .push((channel.clone(), publication.clone()));
                let idempotency = idempotency_key.map(|key| {
                    let expires_ms = now + IDEMPOTENCY_WINDOW.as_millis() as u64;
                    batch_keys.insert((channel.clone(), key.clone()), position.clone());
                    batch.idempotency.push(IdempotencyRecord {
                        channel: channel.clone(),
                        key: key.clone(),
                        offset: position.offset,
                        epoch: position.epoch.clone(),
                        expires_ms,
                    });
                    (key, expires_ms)
                });
                planned.push(Planned::Publish {
                    channel,
                    publication,
                    retention,
                    position,
                    idempotency,
                    reply,
                });
            }
            Job::Remove { channel, reply } => {
                // Publications planned earlier in this batch belong to the
                // removed epoch: they must not be written after the clear.
                batch.publications.retain(|(c, _)| *c != channel);
                let epoch = new_epoch();
                tops.insert(channel.clone(), (epoch.clone(), 0, 0));
                batch.cleared.push(channel.clone());
                planned.push(Planned::Remove {
                    channel,
                    epoch,
                    reply,
                });
            }
        }
    }
    for (channel, (epoch, top, size)) in tops {
        batch
            .trims
            .push((channel.clone(), top.saturating_sub(size as u64)));
        batch.streams.push(StreamMeta {
            channel,
            epoch,
            top,
        });
    }
    (batch, planned)
}

fn apply(streams: &Streams, hub: &Hub, planned: Vec<Planned>) {
    for step in planned {
        match step {
            Planned::Publish {
                channel,
                publication,
                retention,
                position,
                idempotency,
                reply,
            } => {
                streams.append_and_broadcast(hub, &channel, retention, |next| {
                    debug_assert_eq!(next, publication.offset, "only the writer appends");
                    publication
                });
                if let Some((key, expires_ms)) = idempotency {
                    streams.remember(&channel, key, position.clone(), expires_ms);
                }
                let _ = reply.send(Ok(position));
            }
            Planned::Duplicate { position, reply } => {
                let _ = reply.send(Ok(position));
            }
            Planned::Remove {
                channel,
                epoch,
                reply,
            } => {
                streams.locked(&channel, |stream| {
                    *stream = Stream::restore(epoch, 0, Vec::new())
                });
                let _ = reply.send(Ok(()));
            }
        }
    }
}

fn fail(planned: Vec<Planned>) {
    for step in planned {
        match step {
            Planned::Publish { reply, .. } | Planned::Duplicate { reply, .. } => {
                let _ = reply.send(Err(ErrorCode::INTERNAL));
            }
            Planned::Remove { reply, .. } => {
                let _ = reply.send(Err(ErrorCode::INTERNAL));
            }
        }
    }
}

#[cfg(feature = "testing")]
pub mod conformance;
