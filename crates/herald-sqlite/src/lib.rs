//! The embedded default's durable store: channel history in SQLite.
//!
//! One database file in WAL mode. The group-commit writer in `herald-core`
//! hands over a whole batch of publications, and this crate writes it in one
//! transaction, so one sync to disk serves many publishes.
//!
//! # Layout
//! - this file: opening, the schema and its migrations, loading at start-up,
//!   and the batch commit.
#![forbid(unsafe_code)]

use herald_core::durable::{
    BoxFuture, CommitBatch, DurableLog, IdempotencyRecord, Snapshot, StreamMeta,
};
use herald_core::history::StoredPublication;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage.path: cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Sqlite(#[from] sqlx::Error),
}

/// How hard each commit pushes data to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// Survives the process being killed (`kill -9`); a power cut may lose the
    /// last commits. SQLite's `synchronous = NORMAL` in WAL mode.
    Normal,
    /// Also survives a power cut: an fsync per commit. `synchronous = FULL`.
    Full,
}

/// Rows per multi-row statement: 4 values each stays far below SQLite's
/// limit of 32,766 bound variables.
const ROWS_PER_STATEMENT: usize = 1000;

/// The schema, one step per version; `PRAGMA user_version` records the last applied.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE streams (
    channel TEXT PRIMARY KEY,
    epoch   TEXT NOT NULL,
    top     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE publications (
    channel    TEXT NOT NULL,
    pub_offset INTEGER NOT NULL,
    time_ms    INTEGER NOT NULL,
    object     BLOB NOT NULL,
    PRIMARY KEY (channel, pub_offset)
) WITHOUT ROWID;
CREATE TABLE idempotency (
    channel    TEXT NOT NULL,
    key        TEXT NOT NULL,
    pub_offset INTEGER NOT NULL,
    epoch      TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (channel, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_expiry ON idempotency (expires_ms);
"#];

#[derive(Clone)]
pub struct SqliteLog {
    pool: SqlitePool,
}

impl SqliteLog {
    /// Opens (creating if needed) `dir/herald.db` and brings its schema up to date.
    pub async fn open(dir: &Path, sync: Sync) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join("herald.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                Sync::Normal => SqliteSynchronous::Normal,
                Sync::Full => SqliteSynchronous::Full,
            })
            .busy_timeout(Duration::from_secs(5));
        // One connection: SQLite has one writer anyway, and the writer task is it.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let log = Self { pool };
        log.migrate().await?;
        Ok(log)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&self.pool)
            .await?;
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let mut tx = self.pool.begin().await?;
            sqlx::raw_sql(*migration).execute(&mut *tx).await?;
            // Built from a loop index, not from input.
            let pragma = format!("PRAGMA user_version = {}", index + 1);
            sqlx::raw_sql(sqlx::AssertSqlSafe(pragma))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version = index + 1, "storage schema migrated");
        }
        Ok(())
    }

    /// Everything needed to resume: streams with their retained publications,
    /// and idempotency keys that have not expired.
    pub async fn load(&self, now_ms: u64) -> Result<Snapshot, StoreError> {
        let mut snapshot = Snapshot::default();
        let streams = sqlx::query("SELECT channel, epoch, top FROM streams ORDER BY channel")
            .fetch_all(&self.pool)
            .await?;
        let publications = sqlx::query(
            "SELECT channel, pub_offset, time_ms, object FROM publications ORDER BY channel, pub_offset",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut publications = publications.into_iter().peekable();
        for row in streams {
            let meta = StreamMeta {
                channel: row.get("channel"),
                epoch: Arc::from(row.get::<String, _>("epoch")),
                top: row.get::<i64, _>("top") as u64,
            };
            let mut kept = Vec::new();
            while let Some(next) = publications.peek() {
                let channel: String = next.get("channel");
                match channel.as_str().cmp(meta.channel.as_str()) {
                    std::cmp::Ordering::Less => {
                        publications.next();
                    }
                    std::cmp::Ordering::Equal => {
                        let row = publications.next().expect("peeked");
                        kept.push(StoredPublication {
                            offset: row.get::<i64, _>("pub_offset") as u64,
                            time_ms: row.get::<i64, _>("time_ms") as u64,
                            object: row.get::<Vec<u8>, _>("object").into(),
                        });
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            snapshot.streams.push((meta, kept));
        }
        let keys = sqlx::query("SELECT channel, key, pub_offset, epoch, expires_ms FROM idempotency WHERE expires_ms > ?")
            .bind(now_ms as i64)
            .fetch_all(&self.pool)
            .await?;
        snapshot.idempotency = keys
            .into_iter()
            .map(|row| IdempotencyRecord {
                channel: row.get("channel"),
                key: row.get("key"),
                offset: row.get::<i64, _>("pub_offset") as u64,
                epoch: Arc::from(row.get::<String, _>("epoch")),
                expires_ms: row.get::<i64, _>("expires_ms") as u64,
            })
            .collect();
        Ok(snapshot)
    }

    async fn write(&self, batch: &CommitBatch) -> Result<(), sqlx::Error> {
        let mut tx: Transaction<'_, Sqlite> = self.pool.begin().await?;
        for channel in &batch.cleared {
            sqlx::query("DELETE FROM publications WHERE channel = ?")
                .bind(channel)
                .execute(&mut *tx)
                .await?;
        }
        // Multi-row statements: each statement is a round trip to SQLite's worker
        // thread, and a batch may hold thousands of publications.
        for chunk in batch.streams.chunks(ROWS_PER_STATEMENT) {
            let mut upsert =
                QueryBuilder::<Sqlite>::new("INSERT INTO streams (channel, epoch, top) ");
            upsert.push_values(chunk, |mut row, meta| {
                row.push_bind(&meta.channel)
                    .push_bind(&*meta.epoch)
                    .push_bind(meta.top as i64);
            });
            upsert.push(
                " ON CONFLICT (channel) DO UPDATE SET epoch = excluded.epoch, top = excluded.top",
            );
            upsert.build().execute(&mut *tx).await?;
        }
        for chunk in batch.publications.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO publications (channel, pub_offset, time_ms, object) ",
            );
            insert.push_values(chunk, |mut row, (channel, publication)| {
                row.push_bind(channel)
                    .push_bind(publication.offset as i64)
                    .push_bind(publication.time_ms as i64)
                    .push_bind(&publication.object[..]);
            });
            insert.build().execute(&mut *tx).await?;
        }
        for (channel, up_to) in &batch.trims {
            sqlx::query("DELETE FROM publications WHERE channel = ? AND pub_offset <= ?")
                .bind(channel)
                .bind(*up_to as i64)
                .execute(&mut *tx)
                .await?;
        }
        for record in &batch.idempotency {
            sqlx::query(
                "INSERT OR REPLACE INTO idempotency (channel, key, pub_offset, epoch, expires_ms) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&record.channel)
            .bind(&record.key)
            .bind(record.offset as i64)
            .bind(&*record.epoch)
            .bind(record.expires_ms as i64)
            .execute(&mut *tx)
            .await?;
        }
        if !batch.idempotency.is_empty() {
            let now = herald_core::history::now_ms() as i64;
            sqlx::query("DELETE FROM idempotency WHERE expires_ms <= ?")
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}

impl DurableLog for SqliteLog {
    fn commit<'a>(&'a self, batch: &'a CommitBatch) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.write(batch).await.map_err(|e| e.to_string()) })
    }
}

#[cfg(test)]
mod tests;
