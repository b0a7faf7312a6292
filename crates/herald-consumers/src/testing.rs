//! An outbox table as an application keeps it, for tests (feature
//! `testing`): created with Centrifugo's columns, written to, and watched
//! until the consumers have emptied it.

use serde_json::Value;
use sqlx::PgPool;
use std::time::{Duration, Instant};

/// The table's name in every test database.
pub const TABLE: &str = "chat_outbox";

/// `chat_outbox` in the database at `url`, exactly as Centrifugo documents
/// the table; returns a pool on that database.
pub async fn create_table(url: &str) -> PgPool {
    let pool = PgPool::connect(url)
        .await
        .expect("the test database answers");
    sqlx::raw_sql(
        "CREATE TABLE chat_outbox (
            id BIGSERIAL PRIMARY KEY,
            method text NOT NULL,
            payload JSONB NOT NULL,
            partition INTEGER NOT NULL default 0,
            created_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .execute(&pool)
    .await
    .expect("the outbox table is created");
    pool
}

/// The channel [`add_notify_trigger`]'s trigger notifies.
pub const NOTIFY_CHANNEL: &str = "centrifugo_partition_change";

/// Centrifugo's documented trigger (docs/outbox.md), unchanged: each insert
/// notifies [`NOTIFY_CHANNEL`] with its partition.
pub async fn add_notify_trigger(pool: &PgPool) {
    sqlx::raw_sql(
        "CREATE OR REPLACE FUNCTION centrifugo_notify_partition_change()
        RETURNS TRIGGER AS $$
        BEGIN
            PERFORM pg_notify('centrifugo_partition_change', NEW.partition::text);
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql;
        CREATE OR REPLACE TRIGGER centrifugo_notify_partition_trigger
        AFTER INSERT ON chat_outbox
        FOR EACH ROW
        EXECUTE FUNCTION centrifugo_notify_partition_change();",
    )
    .execute(pool)
    .await
    .expect("the trigger is created");
}

/// Writes one row, on a pool or inside the caller's transaction.
pub async fn insert<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    method: &str,
    payload: Value,
    partition: i32,
) {
    sqlx::query("INSERT INTO chat_outbox (method, payload, partition) VALUES ($1, $2::jsonb, $3)")
        .bind(method)
        .bind(payload.to_string())
        .bind(partition)
        .execute(executor)
        .await
        .expect("the row is written");
}

pub async fn rows_left(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM chat_outbox")
        .fetch_one(pool)
        .await
        .expect("the table is readable")
}

/// Waits until the consumers have applied and deleted every row.
pub async fn wait_until_empty(pool: &PgPool, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let left = rows_left(pool).await;
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{left} rows left after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
