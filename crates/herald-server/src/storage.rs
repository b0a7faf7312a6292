//! Choosing and opening the durable history store from `[storage]`.
//!
//! `storage.url` selects PostgreSQL and implies durability; otherwise
//! `storage.durable` chooses between SQLite under `storage.path` and memory.

use crate::config::{Config, StorageSection};
use crate::server::StartError;
use herald_apps::{Db, Location};
use herald_core::durable::{DurableLog, Snapshot};
use herald_postgres::PgLog;
use herald_sqlite::{SqliteLog, Sync};
use std::sync::Arc;

/// The store and what it held at start-up, or `None` when history is kept in
/// memory only.
pub async fn open_durable_store(
    config: &StorageSection,
) -> Result<Option<(Arc<dyn DurableLog>, Snapshot)>, StartError> {
    let now = herald_core::history::now_ms();
    let (log, snapshot): (Arc<dyn DurableLog>, Snapshot) = if let Some(url) = &config.url {
        tracing::info!(url = %herald_postgres::mask_password(url), "opening durable history in PostgreSQL");
        // The store's errors already name storage.url and mask the password.
        let storage = |e: herald_postgres::StoreError| StartError::Storage(e.to_string());
        let log = PgLog::open(url).await.map_err(storage)?;
        let snapshot = log.load(now).await.map_err(storage)?;
        (Arc::new(log), snapshot)
    } else if config.durable {
        let sync = match config.sync.as_str() {
            "full" => Sync::Full,
            _ => Sync::Normal,
        };
        let path = &config.path;
        tracing::info!(path = %path.display(), ?sync, "opening durable history in SQLite");
        let storage = |e: herald_sqlite::StoreError| StartError::Storage(e.to_string());
        let log = SqliteLog::open(path, sync).await.map_err(storage)?;
        let snapshot = log.load(now).await.map_err(storage)?;
        (Arc::new(log), snapshot)
    } else {
        tracing::info!("storage.durable is off: history is kept in memory and lost on restart");
        return Ok(None);
    };
    let publications: usize = snapshot.streams.iter().map(|(_, p)| p.len()).sum();
    tracing::info!(
        streams = snapshot.streams.len(),
        publications,
        "history loaded"
    );
    Ok(Some((log, snapshot)))
}

/// The database of the inbox, chat and the webhook outbox: PostgreSQL with
/// `storage.url`, else SQLite beside the history (in memory when
/// `storage.durable` is off); `None` when all three are off.
pub async fn open_app_store(config: &Config) -> Result<Option<Db>, StartError> {
    if !config.inbox.enabled && !config.chat.enabled && !config.webhooks.enabled() {
        return Ok(None);
    }
    let storage = &config.storage;
    let location = match &storage.url {
        Some(url) => Location::Postgres(url),
        None if storage.durable => Location::SqliteDir(&storage.path),
        None => Location::Memory,
    };
    if config.broker.kind == "redis" && storage.url.is_none() {
        tracing::warn!(
            "inbox and chat data stay on this node: set storage.url to a PostgreSQL database \
             that every node shares"
        );
    }
    let db = Db::open(location)
        .await
        .map_err(|e| StartError::Storage(mask(e.to_string(), storage.url.as_deref())))?;
    let kind = if storage.url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    tracing::info!(kind, "inbox and chat database open");
    Ok(Some(db))
}

/// Errors may quote the URL: never print its password.
fn mask(text: String, url: Option<&str>) -> String {
    match url {
        Some(url) => text.replace(url, &herald_postgres::mask_password(url)),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_database_fails_start_naming_the_key_without_the_password() {
        let config = StorageSection {
            url: Some("postgres://herald:hunter2@127.0.0.1:1/herald".into()),
            ..Default::default()
        };
        let error = open_durable_store(&config)
            .await
            .err()
            .expect("nothing listens on port 1")
            .to_string();
        assert!(error.starts_with("storage.url: cannot connect"), "{error}");
        assert!(error.contains("herald:***@127.0.0.1:1"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[tokio::test]
    async fn durable_off_keeps_history_in_memory() {
        let config = StorageSection {
            durable: false,
            ..Default::default()
        };
        assert!(open_durable_store(&config).await.unwrap().is_none());
    }
}
