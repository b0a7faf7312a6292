//! Durable history in PostgreSQL (`storage.url`): the same restart and
//! `kill -9` promises as the embedded default, on a fresh database per test.
//! Without a reachable server these skip, or fail under `CI=true`.

use herald_postgres::testing::TestDatabase;
use herald_tests::{durability, test_config};

#[tokio::test]
async fn history_epoch_offsets_and_idempotency_survive_a_restart() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    durability::history_epoch_offsets_and_idempotency_survive_a_restart(|| {
        let mut config = test_config();
        config.storage.durable = true;
        config.storage.url = Some(db.url().to_string());
        // Nothing may land in SQLite: a path that cannot be a directory
        // would fail start-up if it were used.
        config.storage.path = "/dev/null/herald-must-not-use-sqlite".into();
        config
    })
    .await;
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_publication() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = format!(
        "url = \"{}\"\npath = \"/dev/null/herald-must-not-use-sqlite\"",
        db.url()
    );
    durability::kill_9_loses_no_acknowledged_publication(dir.path(), &storage).await;
}
