//! What every [`DurableLog`] must do, as scenarios each store's tests run
//! (feature `testing`). SQLite and PostgreSQL are held to one definition of
//! the contract instead of two copies that drift apart.
//!
//! Each scenario takes `open`, which opens the store under test on the same
//! storage every time it is called, so a scenario can also check reopening.

use super::{BoxFuture, CommitBatch, DurableLog, IdempotencyRecord, Snapshot, StreamMeta};
use crate::history::StoredPublication;

/// A store under test: committing through the trait, loading as the server
/// does at start-up (panicking on errors, this is test support).
pub trait Store: DurableLog {
    fn snapshot(&self, now_ms: u64) -> BoxFuture<'_, Snapshot>;
}

pub fn object(offset: u64) -> StoredPublication {
    StoredPublication {
        offset,
        time_ms: 1_000 + offset,
        object: format!("{{\"data\":{offset},\"offset\":{offset}}}")
            .into_bytes()
            .into(),
    }
}

pub fn meta(channel: &str, epoch: &str, top: u64) -> StreamMeta {
    StreamMeta {
        channel: channel.into(),
        epoch: epoch.into(),
        top,
    }
}

pub fn key(channel: &str, key: &str, offset: u64, expires_ms: u64) -> IdempotencyRecord {
    IdempotencyRecord {
        channel: channel.into(),
        key: key.into(),
        offset,
        epoch: "e1".into(),
        expires_ms,
    }
}

pub fn offsets(publications: &[StoredPublication]) -> Vec<u64> {
    publications.iter().map(|p| p.offset).collect()
}

pub async fn a_committed_batch_is_there_after_reopening<S: Store>(open: impl AsyncFn() -> S) {
    {
        let store = open().await;
        let batch = CommitBatch {
            streams: vec![meta("a", "e1", 3), meta("b", "e2", 1)],
            publications: vec![
                ("a".into(), object(1)),
                ("a".into(), object(2)),
                ("a".into(), object(3)),
                ("b".into(), object(1)),
            ],
            trims: vec![("a".into(), 1)],
            cleared: vec![],
            idempotency: vec![key("a", "k", 2, u64::MAX / 2)],
        };
        store.commit(&batch).await.unwrap();
    }
    let snapshot = open().await.snapshot(0).await;
    let (a_meta, a_pubs) = &snapshot.streams[0];
    assert_eq!(a_meta, &meta("a", "e1", 3));
    assert_eq!(offsets(a_pubs), [2, 3], "offset 1 was trimmed");
    assert_eq!(a_pubs[0], object(2), "time and bytes round-trip");
    assert_eq!(snapshot.streams[1], (meta("b", "e2", 1), vec![object(1)]));
    assert_eq!(snapshot.idempotency, [key("a", "k", 2, u64::MAX / 2)]);
}

pub async fn later_batches_advance_streams_and_trims_apply_per_channel<S: Store>(
    open: impl AsyncFn() -> S,
) {
    let store = open().await;
    let first = CommitBatch {
        streams: vec![meta("a", "e", 2), meta("b", "e", 2)],
        publications: (1..=2)
            .flat_map(|o| [("a".to_string(), object(o)), ("b".to_string(), object(o))])
            .collect(),
        ..Default::default()
    };
    store.commit(&first).await.unwrap();
    let second = CommitBatch {
        streams: vec![meta("a", "e", 4)],
        publications: vec![("a".into(), object(3)), ("a".into(), object(4))],
        trims: vec![("a".into(), 2), ("b".into(), 0)],
        ..Default::default()
    };
    store.commit(&second).await.unwrap();
    let snapshot = store.snapshot(0).await;
    assert_eq!(snapshot.streams[0].0, meta("a", "e", 4), "the top moved");
    assert_eq!(offsets(&snapshot.streams[0].1), [3, 4]);
    assert_eq!(offsets(&snapshot.streams[1].1), [1, 2], "b kept everything");
}

pub async fn clearing_a_channel_drops_its_publications_and_keeps_the_new_epoch<S: Store>(
    open: impl AsyncFn() -> S,
) {
    let store = open().await;
    let first = CommitBatch {
        streams: vec![meta("a", "old", 1), meta("other", "o", 1)],
        publications: vec![("a".into(), object(1)), ("other".into(), object(1))],
        ..Default::default()
    };
    store.commit(&first).await.unwrap();
    let reset = CommitBatch {
        streams: vec![meta("a", "new", 0)],
        cleared: vec!["a".into()],
        ..Default::default()
    };
    store.commit(&reset).await.unwrap();
    assert_eq!(
        store.snapshot(0).await.streams,
        vec![
            (meta("a", "new", 0), vec![]),
            (meta("other", "o", 1), vec![object(1)])
        ]
    );
}

pub async fn expired_idempotency_keys_are_not_loaded_and_a_rewritten_key_replaces_the_old<
    S: Store,
>(
    open: impl AsyncFn() -> S,
) {
    let store = open().await;
    let now = crate::history::now_ms();
    let batch = CommitBatch {
        streams: vec![meta("a", "e1", 2)],
        publications: vec![("a".into(), object(1)), ("a".into(), object(2))],
        idempotency: vec![
            key("a", "old", 1, now - 1),
            key("a", "live", 2, now + 60_000),
        ],
        ..Default::default()
    };
    store.commit(&batch).await.unwrap();
    assert_eq!(
        store.snapshot(now).await.idempotency,
        [key("a", "live", 2, now + 60_000)]
    );
    let again = CommitBatch {
        idempotency: vec![key("a", "live", 7, now + 90_000)],
        ..Default::default()
    };
    store.commit(&again).await.unwrap();
    assert_eq!(
        store.snapshot(now).await.idempotency,
        [key("a", "live", 7, now + 90_000)]
    );
}

/// The writer never sends duplicates today, but the trait does not forbid
/// them; the later entry wins, as a sequence of upserts would have it.
pub async fn within_a_batch_the_last_stream_and_key_entry_wins<S: Store>(
    open: impl AsyncFn() -> S,
) {
    let store = open().await;
    let batch = CommitBatch {
        streams: vec![meta("a", "e", 1), meta("a", "e", 2)],
        publications: vec![("a".into(), object(1)), ("a".into(), object(2))],
        idempotency: vec![
            key("a", "k", 1, u64::MAX / 2),
            key("a", "j", 1, u64::MAX / 2),
            key("a", "k", 2, u64::MAX / 2),
        ],
        ..Default::default()
    };
    store.commit(&batch).await.unwrap();
    let snapshot = store.snapshot(0).await;
    assert_eq!(snapshot.streams[0].0, meta("a", "e", 2));
    let mut keys = snapshot.idempotency;
    keys.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(
        keys,
        [
            key("a", "j", 1, u64::MAX / 2),
            key("a", "k", 2, u64::MAX / 2)
        ]
    );
}

pub async fn a_failing_batch_writes_nothing<S: Store>(open: impl AsyncFn() -> S) {
    let store = open().await;
    // The same offset twice violates the primary key: the whole batch must roll back.
    let bad = CommitBatch {
        streams: vec![meta("a", "e", 1)],
        publications: vec![("a".into(), object(1)), ("a".into(), object(1))],
        idempotency: vec![key("a", "k", 1, u64::MAX / 2)],
        ..Default::default()
    };
    assert!(store.commit(&bad).await.is_err());
    let snapshot = store.snapshot(0).await;
    assert!(snapshot.streams.is_empty() && snapshot.idempotency.is_empty());
}

/// Larger than the writer's biggest batch, and than any one statement a
/// store might chunk into.
pub async fn a_full_writer_batch_is_written_whole<S: Store>(open: impl AsyncFn() -> S) {
    let store = open().await;
    let count = 2_500;
    let batch = CommitBatch {
        streams: vec![meta("big", "e", count)],
        publications: (1..=count)
            .map(|offset| ("big".to_string(), object(offset)))
            .collect(),
        ..Default::default()
    };
    store.commit(&batch).await.unwrap();
    let snapshot = store.snapshot(0).await;
    assert_eq!(
        offsets(&snapshot.streams[0].1),
        (1..=count).collect::<Vec<_>>()
    );
}

/// Streams load in byte order of their channel (Rust's `str` order), each
/// with its own publications, whatever collation the database defaults to.
pub async fn channels_load_in_byte_order_each_with_its_publications<S: Store>(
    open: impl AsyncFn() -> S,
) {
    let store = open().await;
    // A linguistic collation sorts these differently ("a" before "B", "_" ignored).
    let channels = ["_z", "a", "B", "b:1", "é"];
    let batch = CommitBatch {
        streams: channels.iter().map(|c| meta(c, "e", 1)).collect(),
        publications: channels
            .iter()
            .map(|c| (c.to_string(), object(1)))
            .collect(),
        ..Default::default()
    };
    store.commit(&batch).await.unwrap();
    let snapshot = store.snapshot(0).await;
    let mut expected = channels.to_vec();
    expected.sort();
    let loaded: Vec<&str> = snapshot
        .streams
        .iter()
        .map(|(m, _)| m.channel.as_str())
        .collect();
    assert_eq!(loaded, expected);
    assert!(snapshot.streams.iter().all(|(_, p)| p == &[object(1)]));
}

/// Declares one `#[tokio::test]` per scenario. `$open` is an expression of
/// type `impl AsyncFn() -> S`; `$setup` runs first in each test and may
/// `return` to skip it (when a required service is missing).
#[macro_export]
macro_rules! durable_log_conformance {
    (setup: $setup:tt, open: $open:expr) => {
        $crate::durable_log_conformance!(@each $setup $open;
            a_committed_batch_is_there_after_reopening,
            later_batches_advance_streams_and_trims_apply_per_channel,
            clearing_a_channel_drops_its_publications_and_keeps_the_new_epoch,
            expired_idempotency_keys_are_not_loaded_and_a_rewritten_key_replaces_the_old,
            within_a_batch_the_last_stream_and_key_entry_wins,
            a_failing_batch_writes_nothing,
            a_full_writer_batch_is_written_whole,
            channels_load_in_byte_order_each_with_its_publications,
        );
    };
    (@each $setup:tt $open:expr; $($scenario:ident,)*) => {
        $($crate::durable_log_conformance!(@test $setup $open; $scenario);)*
    };
    (@test { $($setup:tt)* } $open:expr; $scenario:ident) => {
        #[tokio::test]
        async fn $scenario() {
            $($setup)*
            $crate::durable::conformance::$scenario($open).await;
        }
    };
}
