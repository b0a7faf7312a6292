//! Where publications go: offsets, history, idempotency and fan-out.
//!
//! A channel with history is guarded by its stream's lock, and everything that
//! must be ordered against its publications happens under that lock: assigning
//! the offset, appending, fanning out, and a subscriber's join plus its
//! recovery reply. So offsets reach every subscriber strictly increasing, and a
//! recovering subscriber gets each missed publication exactly once.
//!
//! Without durability the caller publishes inline. With it, publications go to
//! the group-commit writer (`durable.rs`), which persists a batch in one
//! transaction and only then appends and fans out, so nothing acknowledged can
//! be lost to `kill -9`.

use crate::durable::{self, DurableLog, Job, Snapshot};
use crate::history::{Position, Retention, StoredPublication, Stream, now_ms};
use crate::hub::{Audience, Hub};
use bytes::Bytes;
use herald_protocol::ErrorCode;
use herald_protocol::push::{self, ClientInfo, Publication};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const SHARDS: usize = 64;
/// How long an idempotency key dedupes publishes to its channel.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(300);

/// What a publisher sends, before it has an offset.
#[derive(Debug)]
pub struct Draft {
    pub data: Box<RawValue>,
    pub info: Option<ClientInfo>,
    pub tags: Option<HashMap<String, String>>,
}

impl Draft {
    /// The publication object with `offset` inside, encoded once.
    pub fn encode(&self, offset: u64) -> Bytes {
        push::publication_object(&Publication {
            data: &self.data,
            info: self.info.as_ref(),
            offset,
            tags: self.tags.as_ref(),
        })
    }
}

type StreamShard = Mutex<HashMap<String, Stream>>;
/// `(channel, key)` → the original position and when the key is forgotten (ms).
type IdempotencyKeys = HashMap<(String, String), (Position, u64)>;

/// The streams of every channel with history, and the keys that dedupe publishes.
pub struct Streams {
    hasher: RandomState,
    shards: Box<[StreamShard]>,
    idempotency: Mutex<IdempotencyKeys>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for Streams {
    fn default() -> Self {
        Self::new()
    }
}

impl Streams {
    pub fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            idempotency: Mutex::default(),
        }
    }

    /// Runs `f` on the channel's stream with its lock held (creating the stream
    /// with a fresh epoch the first time).
    pub fn locked<R>(&self, channel: &str, f: impl FnOnce(&mut Stream) -> R) -> R {
        let shard = (self.hasher.hash_one(channel) as usize) % SHARDS;
        let mut streams = lock(&self.shards[shard]);
        if !streams.contains_key(channel) {
            streams.insert(channel.to_string(), Stream::new());
        }
        f(streams.get_mut(channel).expect("inserted above"))
    }

    /// The original position of a publish with this key, if it is still remembered.
    pub fn remembered(&self, channel: &str, key: &str, now_ms: u64) -> Option<Position> {
        lookup(&mut lock(&self.idempotency), channel, key, now_ms)
    }

    pub fn remember(&self, channel: &str, key: String, position: Position, deadline_ms: u64) {
        lock(&self.idempotency).insert((channel.to_string(), key), (position, deadline_ms));
    }

    /// Appends the publication `make` builds for the next offset, and fans it
    /// out in the same critical section.
    pub fn append_and_broadcast(
        &self,
        hub: &Hub,
        channel: &str,
        retention: Retention,
        make: impl FnOnce(u64) -> StoredPublication,
    ) -> Position {
        self.locked(channel, |stream| {
            let publication = make(stream.top() + 1);
            deliver(hub, channel, stream, retention, publication);
            stream.position()
        })
    }

    /// Upkeep for streams nobody publishes to: drops publications past their
    /// retention (otherwise only a next publish trims them), and forgets
    /// streams whose `policy` gives a meta TTL they have been idle past.
    /// `policy` answers `None` for a channel it knows nothing of, which is
    /// left alone. Returns how many streams remain.
    pub fn sweep(
        &self,
        now_ms: u64,
        policy: impl Fn(&str) -> Option<(Retention, Option<Duration>)>,
    ) -> usize {
        let mut remaining = 0;
        for shard in &self.shards {
            let mut streams = lock(shard);
            streams.retain(|channel, stream| {
                let Some((retention, forget_after)) = policy(channel) else {
                    return true;
                };
                stream.trim(retention, now_ms);
                forget_after.is_none_or(|after| {
                    !stream.idle_since(now_ms.saturating_sub(after.as_millis() as u64))
                })
            });
            // A burst of channels leaves the table at its peak size otherwise.
            if streams.capacity() > 4 * streams.len() + 64 {
                streams.shrink_to_fit();
            }
            remaining += streams.len();
        }
        let mut keys = lock(&self.idempotency);
        keys.retain(|_, (_, deadline)| *deadline > now_ms);
        keys.shrink_to_fit();
        remaining
    }

    /// Drops a channel's stream (a mirror nobody on this node watches any more).
    pub fn remove(&self, channel: &str) {
        let shard = (self.hasher.hash_one(channel) as usize) % SHARDS;
        lock(&self.shards[shard]).remove(channel);
    }
}

/// Appends a publication at the stream's next offset and fans it out; call with
/// the stream's lock held.
pub(crate) fn deliver(
    hub: &Hub,
    channel: &str,
    stream: &mut Stream,
    retention: Retention,
    publication: StoredPublication,
) {
    let message = push::publication_from_object(channel, &publication.object);
    let offset = publication.offset;
    stream.append(publication, retention, now_ms());
    let delivered = hub.broadcast_at(channel, &message, Audience::Everyone, offset);
    ::metrics::counter!(crate::metrics::MESSAGES_SENT).increment(delivered as u64);
}

fn lookup(keys: &mut IdempotencyKeys, channel: &str, key: &str, now_ms: u64) -> Option<Position> {
    keys.retain(|_, (_, deadline)| *deadline > now_ms);
    keys.get(&(channel.to_string(), key.to_string()))
        .map(|(p, _)| p.clone())
}

pub struct Engine {
    hub: Arc<Hub>,
    streams: Arc<Streams>,
    writer: Option<mpsc::Sender<Job>>,
}

impl Engine {
    /// An engine that keeps history in memory only.
    pub fn in_memory(hub: Arc<Hub>) -> Self {
        Self {
            hub,
            streams: Arc::new(Streams::new()),
            writer: None,
        }
    }

    /// An engine whose history survives restarts: `snapshot` is what `log` held
    /// at start-up, and every publication is committed to `log` before it is
    /// delivered or acknowledged.
    pub fn durable(
        hub: Arc<Hub>,
        log: Arc<dyn DurableLog>,
        snapshot: Snapshot,
        retention_of: impl Fn(&str) -> Retention,
    ) -> Self {
        let streams = Arc::new(Streams::new());
        let now = now_ms();
        for (meta, publications) in snapshot.streams {
            let retention = retention_of(&meta.channel);
            streams.locked(&meta.channel, |stream| {
                *stream = Stream::restore(meta.epoch.clone(), meta.top, publications);
                stream.trim(retention, now);
            });
        }
        for record in snapshot.idempotency {
            let position = Position {
                offset: record.offset,
                epoch: record.epoch,
            };
            streams.remember(&record.channel, record.key, position, record.expires_ms);
        }
        let writer = durable::spawn_writer(log, streams.clone(), hub.clone());
        Self {
            hub,
            streams,
            writer: Some(writer),
        }
    }

    pub fn streams(&self) -> &Streams {
        &self.streams
    }

    pub fn shared_streams(&self) -> Arc<Streams> {
        self.streams.clone()
    }

    pub fn is_durable(&self) -> bool {
        self.writer.is_some()
    }

    /// Publishes to a channel with history: returns the publication's position,
    /// or the original one for a repeated idempotency key.
    pub async fn publish(
        &self,
        channel: &str,
        draft: Draft,
        retention: Retention,
        idempotency_key: Option<String>,
    ) -> Result<Position, ErrorCode> {
        match &self.writer {
            Some(writer) => {
                let (reply, answer) = oneshot::channel();
                let job = Job::Publish {
                    channel: channel.to_string(),
                    draft,
                    retention,
                    idempotency_key,
                    reply,
                };
                writer.send(job).await.map_err(|_| ErrorCode::INTERNAL)?;
                answer.await.map_err(|_| ErrorCode::INTERNAL)?
            }
            None => Ok(self.publish_in_memory(channel, draft, retention, idempotency_key)),
        }
    }

    fn publish_in_memory(
        &self,
        channel: &str,
        draft: Draft,
        retention: Retention,
        idempotency_key: Option<String>,
    ) -> Position {
        let now = now_ms();
        // With a key, the check and the publish are one step under the keys' lock,
        // so two concurrent publishes with the same key cannot both get through.
        let mut keys = idempotency_key
            .as_ref()
            .map(|_| lock(&self.streams.idempotency));
        if let (Some(key), Some(keys)) = (&idempotency_key, keys.as_mut())
            && let Some(position) = lookup(keys, channel, key, now)
        {
            return position;
        }
        let position = self
            .streams
            .append_and_broadcast(&self.hub, channel, retention, |offset| StoredPublication {
                offset,
                time_ms: now,
                object: draft.encode(offset),
            });
        if let (Some(key), Some(keys)) = (idempotency_key, keys.as_mut()) {
            let deadline = now + IDEMPOTENCY_WINDOW.as_millis() as u64;
            keys.insert((channel.to_string(), key), (position.clone(), deadline));
        }
        position
    }

    /// Empties a channel's history under a new epoch.
    pub async fn remove_history(&self, channel: &str) -> Result<(), ErrorCode> {
        match &self.writer {
            Some(writer) => {
                let (reply, answer) = oneshot::channel();
                let job = Job::Remove {
                    channel: channel.to_string(),
                    reply,
                };
                writer.send(job).await.map_err(|_| ErrorCode::INTERNAL)?;
                answer.await.map_err(|_| ErrorCode::INTERNAL)?
            }
            None => {
                self.streams.locked(channel, Stream::reset);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
