//! The database the inbox and chat keep their data in: SQLite on the embedded
//! default, PostgreSQL when several nodes share it.
//!
//! Both are reached through sqlx's `Any` driver so each query is written once:
//! `$n` placeholders, TEXT and BIGINT columns only. Only the id column of the
//! schema differs between the two.

use crate::error::{AppResult, bad_request};
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, AssertSqlSafe, Executor};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage.path: cannot create {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: cannot open the app database: {source}")]
    Open {
        key: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("{key}: migrating the app database failed: {source}")]
    Migrate {
        key: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Where the app data lives.
#[derive(Debug, Clone, Copy)]
pub enum Location<'a> {
    /// A PostgreSQL URL (`storage.url`).
    Postgres(&'a str),
    /// `apps.db` in this directory (`storage.path`).
    SqliteDir(&'a Path),
    /// Lost on restart (`storage.durable = false`).
    Memory,
}

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub dialect: Dialect,
}

/// Key naming the config setting in errors.
fn key_of(location: Location<'_>) -> &'static str {
    match location {
        Location::Postgres(_) => "storage.url",
        Location::SqliteDir(_) | Location::Memory => "storage.path",
    }
}

impl Db {
    pub async fn open(location: Location<'_>) -> Result<Self, StoreError> {
        install_default_drivers();
        let key = key_of(location);
        let open = |source| StoreError::Open { key, source };
        let (pool, dialect) = match location {
            Location::Postgres(url) => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(url)
                    .await
                    .map_err(open)?;
                (pool, Dialect::Postgres)
            }
            Location::SqliteDir(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    path: dir.display().to_string(),
                    source,
                })?;
                let url = format!("sqlite://{}?mode=rwc", dir.join("apps.db").display());
                // One connection: SQLite has one writer, and writers that
                // meet on its file lock wait in its busy handler, which
                // sleeps in steps of up to 100 ms (chat p99 went past 200 ms
                // with four). Queued on the pool instead, each runs as soon
                // as the one before it finishes.
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .after_connect(|connection, _| {
                        Box::pin(async move {
                            // Per connection, and taking no lock: NORMAL
                            // survives `kill -9`, as the history store does.
                            connection
                                .execute("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000")
                                .await
                                .map(|_| ())
                        })
                    })
                    .connect(&url)
                    .await
                    .map_err(open)?;
                // Once, while nothing else holds the file (which keeps the
                // setting): in WAL a commit is one append to the log, and
                // tools reading the file never block the server.
                pool.execute("PRAGMA journal_mode = WAL")
                    .await
                    .map_err(open)?;
                (pool, Dialect::Sqlite)
            }
            Location::Memory => {
                // One connection holds the whole database: it must never close.
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect("sqlite::memory:")
                    .await
                    .map_err(open)?;
                (pool, Dialect::Sqlite)
            }
        };
        let db = Self { pool, dialect };
        db.migrate()
            .await
            .map_err(|source| StoreError::Migrate { key, source })?;
        Ok(db)
    }

    /// Applies the schema steps not applied yet. On PostgreSQL an advisory
    /// lock keeps nodes starting together from migrating twice.
    async fn migrate(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if self.dialect == Dialect::Postgres {
            tx.execute("SELECT pg_advisory_xact_lock(7406223001)")
                .await?;
        }
        tx.execute("CREATE TABLE IF NOT EXISTS herald_apps_schema (version BIGINT NOT NULL)")
            .await?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM herald_apps_schema")
                .fetch_one(&mut *tx)
                .await?;
        let applied = applied.unwrap_or(0) as usize;
        let id_column = match self.dialect {
            Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Dialect::Postgres => "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        };
        let sequence = match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => "CREATE SEQUENCE herald_chat_activity;",
        };
        for (index, step) in MIGRATIONS.iter().enumerate().skip(applied) {
            let step = step
                .replace("{ID}", id_column)
                .replace("{SEQUENCE}", sequence);
            sqlx::raw_sql(AssertSqlSafe(step)).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO herald_apps_schema (version) VALUES ($1)")
                .bind(index as i64 + 1)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}

/// The schema, one step per version. `{ID}` is the dialect's auto id column,
/// `{SEQUENCE}` creates the activity sequence where the dialect has sequences.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE herald_notifications (
    id          {ID},
    user_id     TEXT NOT NULL,
    title       TEXT NOT NULL,
    message     TEXT NOT NULL,
    level       TEXT NOT NULL,
    category    TEXT NOT NULL,
    data        TEXT,
    dedupe_key  TEXT,
    is_read     BIGINT NOT NULL,
    archived    BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL
);
CREATE INDEX herald_notifications_by_user ON herald_notifications (user_id, id);
CREATE INDEX herald_notifications_unread ON herald_notifications (user_id, is_read, archived);
CREATE UNIQUE INDEX herald_notifications_dedupe ON herald_notifications (user_id, dedupe_key);
CREATE TABLE herald_inbox_preferences (
    user_id           TEXT PRIMARY KEY,
    muted_levels      TEXT NOT NULL,
    muted_categories  TEXT NOT NULL
);
CREATE TABLE herald_conversations (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    data        TEXT,
    last_seq    BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL
);
CREATE TABLE herald_chat_members (
    conversation  TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    read_seq      BIGINT NOT NULL,
    joined_ms     BIGINT NOT NULL,
    PRIMARY KEY (conversation, user_id)
);
CREATE INDEX herald_chat_members_by_user ON herald_chat_members (user_id);
CREATE TABLE herald_chat_messages (
    conversation   TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    user_id        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    text           TEXT NOT NULL,
    data           TEXT,
    client_msg_id  TEXT,
    created_ms     BIGINT NOT NULL,
    PRIMARY KEY (conversation, seq)
);
CREATE UNIQUE INDEX herald_chat_messages_client_id
    ON herald_chat_messages (conversation, user_id, client_msg_id);
"#,
    // Milliseconds tie: conversations are ordered by a counter instead.
    r#"
ALTER TABLE herald_conversations ADD COLUMN activity BIGINT NOT NULL DEFAULT 0;
CREATE INDEX herald_conversations_by_activity ON herald_conversations (activity);
{SEQUENCE}
"#,
];

impl Db {
    /// An expression for the next value of the activity counter, which
    /// orders conversations by their last change. SQLite has one writer at a
    /// time, so the current maximum plus one is unique there.
    pub(crate) fn next_activity(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "(SELECT COALESCE(MAX(activity), 0) + 1 FROM herald_conversations)",
            Dialect::Postgres => "nextval('herald_chat_activity')",
        }
    }
}

/// `$first, $first+1, …` for `count` values, for an `IN (…)` list.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The most JSON a notification's or a message's `data` may take.
const MAX_DATA_BYTES: usize = 8 * 1024;

/// 107 when `data` is larger than a row should carry.
pub(crate) fn validate_data(data: &Value) -> AppResult<()> {
    if data.to_string().len() > MAX_DATA_BYTES {
        return Err(bad_request(format!(
            "data: at most {MAX_DATA_BYTES} bytes of JSON"
        )));
    }
    Ok(())
}

/// `data` as stored: NULL for JSON null, else its JSON text.
pub(crate) fn data_to_text(data: &Value) -> Option<String> {
    (!data.is_null()).then(|| data.to_string())
}

/// A stored `data` column back as JSON.
pub(crate) fn data_from_text(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}
