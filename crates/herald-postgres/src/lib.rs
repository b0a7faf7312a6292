//! Durable history in PostgreSQL: `[storage] url = "postgres://..."`.
//!
//! The same contract as the embedded SQLite store: the group-commit writer in
//! `herald-core` hands over a whole batch, and it is written in one
//! transaction. Each part of the batch is one statement over arrays
//! (`UNNEST`), so a batch of thousands of publications costs a handful of
//! round trips, not one per row.
//!
//! # Layout
//! - this file: errors, opening, loading at start-up, and the batch commit.
//! - `schema.rs`: the `herald_`-prefixed tables and their versioned
//!   migrations, serialised by an advisory lock.
//! - `probe.rs`: whether the server answers, for `/health` ([`Probe`]).
//! - `url.rs`: checking `storage.url` and masking its password
//!   ([`check_url`], [`mask_password`]).
//! - [`testing`] (feature `testing`): a fresh database per test.
//! - `tests.rs`: the shared `DurableLog` conformance scenarios, then
//!   PostgreSQL's own (migrations, URLs, reconnecting).
#![forbid(unsafe_code)]

mod probe;
mod schema;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod url;

pub use probe::Probe;
pub use url::{check_url, mask_password};

use herald_core::durable::{
    BoxFuture, CommitBatch, DurableLog, IdempotencyRecord, Snapshot, StreamMeta,
};
use herald_core::history::StoredPublication;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage.url: `{url}` must start with postgres:// or postgresql://")]
    Scheme { url: String },
    #[error("storage.url: `{url}` is not a valid PostgreSQL URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("storage.url: cannot connect to PostgreSQL at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("storage.url: PostgreSQL at {url} did not answer within {}s", CONNECT_TIMEOUT.as_secs())]
    ConnectTimeout { url: String },
    #[error("storage: PostgreSQL schema migration to version {version} failed: {source}")]
    Migrate {
        version: usize,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "storage: the PostgreSQL schema is at version {found}, newer than the {known} this herald knows; run a newer herald"
    )]
    SchemaTooNew { found: usize, known: usize },
    #[error("storage: PostgreSQL: {0}")]
    Postgres(#[from] sqlx::Error),
}

/// How long opening waits for the server: a wrong host should fail start-up
/// promptly, not hang it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The writer commits one batch at a time and loading runs once, so a small
/// pool suffices; the headroom lets a reconnect overlap a stale connection.
const MAX_CONNECTIONS: u32 = 4;

/// How long a commit waits for a connection before its publishers get an
/// error instead of hanging while PostgreSQL is away.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct PgLog {
    pool: PgPool,
}

impl PgLog {
    /// Connects to `url` and brings the schema up to date. Errors name
    /// `storage.url` and never show its password.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = check_url(url)?;
        // One direct connection first: the pool would retry a refused
        // connection until its timeout and then report only "timed out",
        // hiding the cause (refused, bad password, no such database).
        let connect = PgConnection::connect_with(&options);
        let mut connection = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(source)) => {
                return Err(StoreError::Connect {
                    url: mask_password(url),
                    source,
                });
            }
            Err(_) => {
                return Err(StoreError::ConnectTimeout {
                    url: mask_password(url),
                });
            }
        };
        schema::migrate(&mut connection).await?;
        // Best effort: the session ends with the socket anyway.
        let _ = connection.close().await;
        // `test_before_acquire` stays on: a ping per commit, so a connection
        // the server dropped (restart, failover) is replaced instead of
        // failing a batch of publishes.
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    /// Everything needed to resume: streams (by channel) with their retained
    /// publications (by offset), and idempotency keys that have not expired.
    pub async fn load(&self, now_ms: u64) -> Result<Snapshot, StoreError> {
        // One snapshot for all three reads, so a commit landing in between
        // cannot pair a stream's top with another moment's publications.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let streams =
            sqlx::query("SELECT channel, epoch, top FROM herald_streams ORDER BY channel")
                .fetch_all(&mut *tx)
                .await?;
        let publications = sqlx::query(
            "SELECT channel, pub_offset, time_ms, object FROM herald_publications ORDER BY channel, pub_offset",
        )
        .fetch_all(&mut *tx)
        .await?;
        let keys = sqlx::query(
            "SELECT channel, key, pub_offset, epoch, expires_ms FROM herald_idempotency \
             WHERE expires_ms > $1 ORDER BY channel, key",
        )
        .bind(now_ms as i64)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let mut snapshot = Snapshot::default();
        // Both lists are sorted by channel in byte order (the "C" collation),
        // so one merge pass pairs them; publications of a channel without a
        // stream row are skipped, as they are unreachable.
        let mut publications = publications.into_iter().peekable();
        for row in streams {
            let meta = StreamMeta {
                channel: row.try_get("channel")?,
                epoch: Arc::from(row.try_get::<String, _>("epoch")?),
                top: row.try_get::<i64, _>("top")? as u64,
            };
            let mut kept = Vec::new();
            while let Some(next) = publications.peek() {
                let channel: &str = next.try_get("channel")?;
                match channel.cmp(meta.channel.as_str()) {
                    std::cmp::Ordering::Less => {
                        publications.next();
                    }
                    std::cmp::Ordering::Equal => {
                        let row = publications.next().expect("peeked");
                        kept.push(StoredPublication {
                            offset: row.try_get::<i64, _>("pub_offset")? as u64,
                            time_ms: row.try_get::<i64, _>("time_ms")? as u64,
                            object: row.try_get::<Vec<u8>, _>("object")?.into(),
                        });
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            snapshot.streams.push((meta, kept));
        }
        snapshot.idempotency = keys
            .into_iter()
            .map(|row| {
                Ok(IdempotencyRecord {
                    channel: row.try_get("channel")?,
                    key: row.try_get("key")?,
                    offset: row.try_get::<i64, _>("pub_offset")? as u64,
                    epoch: Arc::from(row.try_get::<String, _>("epoch")?),
                    expires_ms: row.try_get::<i64, _>("expires_ms")? as u64,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(snapshot)
    }

    /// The batch in one transaction, in the same order as the SQLite store:
    /// clear, upsert streams, insert publications, trim, record keys.
    async fn write(&self, batch: &CommitBatch) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if !batch.cleared.is_empty() {
            sqlx::query("DELETE FROM herald_publications WHERE channel = ANY($1)")
                .bind(&batch.cleared[..])
                .execute(&mut *tx)
                .await?;
        }
        let streams = last_per_key(&batch.streams, |meta| &meta.channel);
        if !streams.is_empty() {
            sqlx::query(
                "INSERT INTO herald_streams (channel, epoch, top) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[]) \
                 ON CONFLICT (channel) DO UPDATE SET epoch = EXCLUDED.epoch, top = EXCLUDED.top",
            )
            .bind(column(&streams, |meta| meta.channel.as_str()))
            .bind(column(&streams, |meta| &*meta.epoch))
            .bind(column(&streams, |meta| meta.top as i64))
            .execute(&mut *tx)
            .await?;
        }
        if !batch.publications.is_empty() {
            let rows: Vec<_> = batch.publications.iter().collect();
            sqlx::query(
                "INSERT INTO herald_publications (channel, pub_offset, time_ms, object) \
                 SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::bytea[])",
            )
            .bind(column(&rows, |(channel, _)| channel.as_str()))
            .bind(column(&rows, |(_, publication)| publication.offset as i64))
            .bind(column(&rows, |(_, publication)| publication.time_ms as i64))
            .bind(column(&rows, |(_, publication)| &publication.object[..]))
            .execute(&mut *tx)
            .await?;
        }
        if !batch.trims.is_empty() {
            let trims: Vec<_> = batch.trims.iter().collect();
            sqlx::query(
                "DELETE FROM herald_publications AS p \
                 USING UNNEST($1::text[], $2::int8[]) AS t(channel, up_to) \
                 WHERE p.channel = t.channel AND p.pub_offset <= t.up_to",
            )
            .bind(column(&trims, |(channel, _)| channel.as_str()))
            .bind(column(&trims, |(_, up_to)| *up_to as i64))
            .execute(&mut *tx)
            .await?;
        }
        let keys = last_per_key(&batch.idempotency, |record| (&record.channel, &record.key));
        if !keys.is_empty() {
            sqlx::query(
                "INSERT INTO herald_idempotency (channel, key, pub_offset, epoch, expires_ms) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[]) \
                 ON CONFLICT (channel, key) DO UPDATE SET pub_offset = EXCLUDED.pub_offset, \
                 epoch = EXCLUDED.epoch, expires_ms = EXCLUDED.expires_ms",
            )
            .bind(column(&keys, |record| record.channel.as_str()))
            .bind(column(&keys, |record| record.key.as_str()))
            .bind(column(&keys, |record| record.offset as i64))
            .bind(column(&keys, |record| &*record.epoch))
            .bind(column(&keys, |record| record.expires_ms as i64))
            .execute(&mut *tx)
            .await?;
            // Expired keys go while keys are being written anyway, so an idle
            // store is never touched for housekeeping.
            sqlx::query("DELETE FROM herald_idempotency WHERE expires_ms <= $1")
                .bind(herald_core::history::now_ms() as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}

impl DurableLog for PgLog {
    fn commit<'a>(&'a self, batch: &'a CommitBatch) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.write(batch).await.map_err(|e| e.to_string()) })
    }
}

/// One array parameter for `UNNEST`, taken from each row.
fn column<'a, T, V>(rows: &[&'a T], value: impl Fn(&'a T) -> V) -> Vec<V> {
    rows.iter().map(|row| value(row)).collect()
}

/// The last item per key, in input order. An upsert statement may touch each
/// row only once, while the SQLite store lets a later duplicate win.
fn last_per_key<'a, T, K: Eq + Hash>(items: &'a [T], key: impl Fn(&'a T) -> K) -> Vec<&'a T> {
    let last: HashMap<K, usize> = items
        .iter()
        .enumerate()
        .map(|(index, item)| (key(item), index))
        .collect();
    items
        .iter()
        .enumerate()
        .filter(|(index, item)| last.get(&key(item)) == Some(index))
        .map(|(_, item)| item)
        .collect()
}

#[cfg(test)]
mod tests;
