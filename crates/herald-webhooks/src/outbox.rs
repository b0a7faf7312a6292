//! The outbox table, `herald_webhook_outbox`, and every statement on it.
//!
//! The SQL runs unchanged on SQLite and PostgreSQL through sqlx's Any driver:
//! `$n` placeholders, each bound once; TEXT and BIGINT columns only; ids made
//! in Rust; no row locks. Claiming is an optimistic compare-and-set on the
//! row instead: a claim names the `attempts` it read and succeeds only while
//! the row is due, unleased (or its lease has run out) and unchanged, so of
//! several nodes polling one outbox exactly one wins each attempt.
//!
//! Lease times are each node's wall clock in milliseconds, so nodes sharing
//! an outbox need clocks within the lease margin of each other (seconds, see
//! `worker.rs`); beyond that an event may be sent twice, never lost.

use sqlx::{AnyPool, Row};
use std::time::Duration;

/// The table and its index. `IF NOT EXISTS` keeps this idempotent, so every
/// node runs it at start-up.
const MIGRATION: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS herald_webhook_outbox (
        id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        body TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        next_attempt_ms BIGINT NOT NULL,
        lease_owner TEXT,
        lease_until_ms BIGINT NOT NULL,
        created_ms BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS herald_webhook_outbox_next_attempt
        ON herald_webhook_outbox (next_attempt_ms)",
];

/// Two nodes starting together on PostgreSQL can both pass `IF NOT EXISTS`
/// and one then fails on the catalog's unique index; a second try sees the
/// table.
const MIGRATION_TRIES: u32 = 3;

/// One event as emitted, ready to insert.
pub(crate) struct NewRow {
    pub id: String,
    pub event: &'static str,
    pub body: String,
    pub created_ms: i64,
}

/// A row that was due when read.
#[derive(Debug, Clone)]
pub(crate) struct Due {
    pub id: String,
    pub event: String,
    pub body: String,
    /// Attempts already made; this one is `attempts + 1`.
    pub attempts: i64,
}

/// What identifies one claim of a row: the node and the lease's end, which
/// together fence a late finish after the lease ran out and someone else
/// claimed the row.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub owner: String,
    pub until_ms: i64,
}

#[derive(Clone)]
pub(crate) struct Outbox {
    pool: AnyPool,
}

impl Outbox {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    pub async fn migrate(&self) -> Result<(), sqlx::Error> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.migrate_once().await {
                Ok(()) => return Ok(()),
                Err(error) if tries < MIGRATION_TRIES => {
                    tracing::debug!(%error, "webhook outbox migration failed, trying again");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(tries))).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn migrate_once(&self) -> Result<(), sqlx::Error> {
        for statement in MIGRATION {
            sqlx::query(statement).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Inserts the rows in one transaction, due at once. A row already
    /// there is left alone: a retried batch whose earlier commit did land
    /// (only its answer was lost) must not fail forever on the primary key.
    pub async fn insert(&self, rows: &[NewRow]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for row in rows {
            sqlx::query(
                "INSERT INTO herald_webhook_outbox
                    (id, event, body, attempts, next_attempt_ms, lease_owner, lease_until_ms, created_ms)
                 VALUES ($1, $2, $3, 0, $4, NULL, 0, $5)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(row.id.as_str())
            .bind(row.event)
            .bind(row.body.as_str())
            .bind(row.created_ms)
            .bind(row.created_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Up to `limit` rows due at `now_ms` whose lease, if any, has run out,
    /// the longest waiting first.
    pub async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Due>, sqlx::Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT id, event, body, attempts FROM herald_webhook_outbox
             WHERE next_attempt_ms <= $1 AND lease_until_ms < $2
             ORDER BY next_attempt_ms LIMIT $3",
        )
        .bind(now_ms)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Due {
                    id: row.try_get("id")?,
                    event: row.try_get("event")?,
                    body: row.try_get("body")?,
                    attempts: row.try_get("attempts")?,
                })
            })
            .collect()
    }

    /// Claims `due` for `owner` until `until_ms`; `false` when another node
    /// got there first or the row changed since it was read.
    pub async fn claim(
        &self,
        due: &Due,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE herald_webhook_outbox SET lease_owner = $1, lease_until_ms = $2
             WHERE id = $3 AND attempts = $4 AND next_attempt_ms <= $5 AND lease_until_ms < $6",
        )
        .bind(owner)
        .bind(until_ms)
        .bind(due.id.as_str())
        .bind(due.attempts)
        .bind(now_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a delivered row, whoever holds it now: it has been delivered.
    pub async fn delete(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM herald_webhook_outbox WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed attempt and releases the lease; `false` when the
    /// claim had been lost, leaving the row to its new holder.
    pub async fn reschedule(
        &self,
        id: &str,
        claim: &Claim,
        attempts: i64,
        next_attempt_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE herald_webhook_outbox
             SET attempts = $1, next_attempt_ms = $2, lease_owner = NULL, lease_until_ms = 0
             WHERE id = $3 AND lease_owner = $4 AND lease_until_ms = $5",
        )
        .bind(attempts)
        .bind(next_attempt_ms)
        .bind(id)
        .bind(claim.owner.as_str())
        .bind(claim.until_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a row that used its last attempt; `false` when the claim had
    /// been lost.
    pub async fn give_up(&self, id: &str, claim: &Claim) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM herald_webhook_outbox
             WHERE id = $1 AND lease_owner = $2 AND lease_until_ms = $3",
        )
        .bind(id)
        .bind(claim.owner.as_str())
        .bind(claim.until_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Rows waiting, in flight included, across all nodes.
    pub async fn pending(&self) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT COUNT(*) AS n FROM herald_webhook_outbox")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")
    }
}
