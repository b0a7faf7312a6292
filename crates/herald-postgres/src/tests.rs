//! The shared `DurableLog` contract on a fresh database per test, then what
//! is PostgreSQL's own: migrations, connecting, URLs, reconnecting.

use super::*;
use crate::testing::TestDatabase;
use herald_core::durable::conformance::{Store, key, meta, object, offsets};

impl Store for PgLog {
    fn snapshot(&self, now_ms: u64) -> BoxFuture<'_, Snapshot> {
        Box::pin(async move { self.load(now_ms).await.unwrap() })
    }
}

herald_core::durable_log_conformance! {
    setup: {
        let Some(db) = TestDatabase::create().await else {
            return;
        };
    },
    open: async || PgLog::open(db.url()).await.unwrap()
}

async fn schema_versions(log: &PgLog) -> Vec<i32> {
    sqlx::query_scalar("SELECT version FROM herald_schema_version ORDER BY version")
        .fetch_all(&log.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn expired_idempotency_keys_are_purged_by_the_next_batch_that_writes_keys() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let log = PgLog::open(db.url()).await.unwrap();
    let now = herald_core::history::now_ms();
    let batch = CommitBatch {
        idempotency: vec![
            key("a", "old", 1, now - 1),
            key("a", "live", 2, now + 60_000),
        ],
        ..Default::default()
    };
    log.commit(&batch).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM herald_idempotency")
        .fetch_one(&log.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1, "only the live key is left on disk");
}

#[tokio::test]
async fn opening_again_applies_no_migration_twice() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let first = PgLog::open(db.url()).await.unwrap();
    let second = PgLog::open(db.url()).await.unwrap();
    let all: Vec<i32> = (1..=schema::MIGRATIONS.len() as i32).collect();
    assert_eq!(schema_versions(&first).await, all);
    assert_eq!(schema_versions(&second).await, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_opening_a_new_database_together_migrate_it_once() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    // Separate pools and connections, as separate nodes would have.
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let url = db.url().to_string();
            tokio::spawn(async move { PgLog::open(&url).await })
        })
        .collect();
    let mut logs = Vec::new();
    for open in opens {
        logs.push(open.await.unwrap().expect("every concurrent open succeeds"));
    }
    let all: Vec<i32> = (1..=schema::MIGRATIONS.len() as i32).collect();
    assert_eq!(schema_versions(&logs[0]).await, all);
}

#[tokio::test]
async fn a_schema_newer_than_this_build_is_refused() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let log = PgLog::open(db.url()).await.unwrap();
    sqlx::query("INSERT INTO herald_schema_version (version) VALUES (999)")
        .execute(&log.pool)
        .await
        .unwrap();
    let error = PgLog::open(db.url()).await.err().expect("refused");
    assert!(
        matches!(error, StoreError::SchemaTooNew { found: 999, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_refused_connection_names_the_key_and_hides_the_password() {
    // Port 1 refuses at once; no server is needed for this test.
    let error = PgLog::open("postgres://herald:s3cret@127.0.0.1:1/herald")
        .await
        .err()
        .expect("nothing listens on port 1");
    let message = error.to_string();
    assert!(
        message.starts_with("storage.url: cannot connect"),
        "{message}"
    );
    assert!(message.contains("herald:***@127.0.0.1:1"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

#[test]
fn urls_are_checked_with_the_key_named_and_the_password_masked() {
    assert!(check_url("postgres://u:p@localhost:5432/herald").is_ok());
    assert!(check_url("postgresql://localhost/herald?sslmode=disable").is_ok());
    for bad in ["mysql://u:p@h/db", "u:p@h/db", "", "postgres:/h"] {
        let message = check_url(bad).expect_err(bad).to_string();
        assert!(message.starts_with("storage.url: "), "{message}");
        assert!(message.contains("postgres://"), "{message}");
        assert!(!message.contains(":p@"), "{message}");
    }
    let message = check_url("postgres://u:p@h:notaport/db")
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("not a valid PostgreSQL URL"), "{message}");
    assert!(message.contains("u:***@h"), "{message}");
}

#[test]
fn passwords_are_masked_wherever_they_appear() {
    for (url, masked) in [
        ("postgres://u:p@h/db", "postgres://u:***@h/db"),
        ("postgres://u@h/db", "postgres://u@h/db"),
        (
            "postgres://h/db?password=p&sslmode=disable",
            "postgres://h/db?password=***&sslmode=disable",
        ),
        (
            "postgres://h/db?sslmode=disable&password=p",
            "postgres://h/db?sslmode=disable&password=***",
        ),
        ("postgres://u:p/q@r@h/db", "postgres://u:***@h/db"),
        ("u:p@h", "u:***@h"),
    ] {
        assert_eq!(mask_password(url), masked, "{url}");
    }
}

#[tokio::test]
async fn commits_resume_after_the_server_drops_every_session() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let log = PgLog::open(db.url()).await.unwrap();
    let batch = |offset: u64| CommitBatch {
        streams: vec![meta("a", "e", offset)],
        publications: vec![("a".into(), object(offset))],
        ..Default::default()
    };
    log.commit(&batch(1)).await.unwrap();
    // What a PostgreSQL restart or failover does to the pool's idle connections.
    let mut admin = PgConnection::connect(db.url()).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ended.is_empty(), "the pool held a session to end");
    log.commit(&batch(2))
        .await
        .expect("the pool replaces the dead connection");
    assert_eq!(offsets(&log.load(0).await.unwrap().streams[0].1), [1, 2]);
}
