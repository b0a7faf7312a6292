//! Durable history on the embedded default: restarts and `kill -9`.
//! The scenarios live in `herald_tests::durability`, shared with PostgreSQL.

use herald_tests::durability;
use herald_tests::test_config;

fn durable_config(dir: &std::path::Path) -> herald_server::Config {
    let mut config = test_config();
    config.storage.durable = true;
    config.storage.path = dir.to_path_buf();
    config
}

#[tokio::test]
async fn history_epoch_offsets_and_idempotency_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    durability::history_epoch_offsets_and_idempotency_survive_a_restart(|| {
        durable_config(dir.path())
    })
    .await;
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_publication() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("path = \"{}\"", dir.path().join("data").display());
    durability::kill_9_loses_no_acknowledged_publication(dir.path(), &storage).await;
}
