//! The shared `DurableLog` contract, run against SQLite in a temp directory.

use super::*;
use herald_core::durable::conformance::Store;

impl Store for SqliteLog {
    fn snapshot(&self, now_ms: u64) -> BoxFuture<'_, Snapshot> {
        Box::pin(async move { self.load(now_ms).await.unwrap() })
    }
}

herald_core::durable_log_conformance! {
    setup: { let dir = tempfile::tempdir().unwrap(); },
    open: async || SqliteLog::open(dir.path(), Sync::Normal).await.unwrap()
}

// The shared 2,500-row scenario only exercises chunking while a chunk is smaller.
const _: () = assert!(ROWS_PER_STATEMENT * 2 < 2_500);
