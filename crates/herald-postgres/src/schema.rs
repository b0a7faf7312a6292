//! The schema and its versioned migrations.
//!
//! Every table is prefixed `herald_` so the database can be shared with an
//! application. `herald_schema_version` holds one row per applied version.

use crate::StoreError;
use sqlx::{Connection, PgConnection};

/// Serialises migrations across every node opening the same database. Advisory
/// locks are scoped to the database, so other databases on the server do not
/// contend. The value spells "herald" in ASCII.
const MIGRATION_LOCK: i64 = 0x6865_7261_6c64;

/// One step per version, applied in order; never edit a released step, add one.
///
/// Channels use the "C" collation: ordering is then by bytes, which is Rust's
/// `str` ordering, so loading can merge streams and publications in one pass
/// whatever the database's default locale is.
pub(crate) const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE herald_streams (
    channel TEXT COLLATE "C" PRIMARY KEY,
    epoch   TEXT NOT NULL,
    top     BIGINT NOT NULL
);
CREATE TABLE herald_publications (
    channel    TEXT COLLATE "C" NOT NULL,
    pub_offset BIGINT NOT NULL,
    time_ms    BIGINT NOT NULL,
    object     BYTEA NOT NULL,
    PRIMARY KEY (channel, pub_offset)
);
CREATE TABLE herald_idempotency (
    channel    TEXT COLLATE "C" NOT NULL,
    key        TEXT NOT NULL,
    pub_offset BIGINT NOT NULL,
    epoch      TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (channel, key)
);
CREATE INDEX herald_idempotency_expiry ON herald_idempotency (expires_ms);
"#];

/// Brings the schema up to date in one transaction. Two nodes starting
/// together queue on the advisory lock; the second finds nothing left to do.
pub(crate) async fn migrate(connection: &mut PgConnection) -> Result<(), StoreError> {
    let mut tx = connection.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    // After the lock: concurrent `CREATE TABLE IF NOT EXISTS` can still collide.
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS herald_schema_version (
            version    INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .execute(&mut *tx)
    .await?;
    let applied: i32 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM herald_schema_version")
            .fetch_one(&mut *tx)
            .await?;
    let applied = applied as usize;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::SchemaTooNew {
            found: applied,
            known: MIGRATIONS.len(),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        let version = index + 1;
        sqlx::raw_sql(*migration)
            .execute(&mut *tx)
            .await
            .map_err(|source| StoreError::Migrate { version, source })?;
        sqlx::query("INSERT INTO herald_schema_version (version) VALUES ($1)")
            .bind(version as i32)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    if applied < MIGRATIONS.len() {
        tracing::info!(
            from = applied,
            to = MIGRATIONS.len(),
            "PostgreSQL schema migrated"
        );
    }
    Ok(())
}
