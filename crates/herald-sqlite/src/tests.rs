use super::*;
use bytes_like::object;

mod bytes_like {
    pub fn object(offset: u64) -> herald_core::history::StoredPublication {
        herald_core::history::StoredPublication {
            offset,
            time_ms: 1_000 + offset,
            object: format!("{{\"data\":{offset},\"offset\":{offset}}}")
                .into_bytes()
                .into(),
        }
    }
}

fn meta(channel: &str, epoch: &str, top: u64) -> StreamMeta {
    StreamMeta {
        channel: channel.into(),
        epoch: epoch.into(),
        top,
    }
}

#[tokio::test]
async fn a_committed_batch_is_there_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = SqliteLog::open(dir.path(), Sync::Normal).await.unwrap();
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
            idempotency: vec![IdempotencyRecord {
                channel: "a".into(),
                key: "k".into(),
                offset: 2,
                epoch: "e1".into(),
                expires_ms: u64::MAX / 2,
            }],
        };
        log.commit(&batch).await.unwrap();
    }
    let log = SqliteLog::open(dir.path(), Sync::Full).await.unwrap();
    let snapshot = log.load(0).await.unwrap();
    let (a_meta, a_pubs) = &snapshot.streams[0];
    assert_eq!(a_meta, &meta("a", "e1", 3));
    assert_eq!(
        a_pubs.iter().map(|p| p.offset).collect::<Vec<_>>(),
        [2, 3],
        "offset 1 was trimmed"
    );
    assert_eq!(a_pubs[0], object(2));
    assert_eq!(snapshot.streams[1].1.len(), 1);
    assert_eq!(snapshot.idempotency.len(), 1);
    assert_eq!(snapshot.idempotency[0].offset, 2);
}

#[tokio::test]
async fn clearing_a_channel_drops_its_publications_and_keeps_the_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path(), Sync::Normal).await.unwrap();
    let first = CommitBatch {
        streams: vec![meta("a", "old", 1)],
        publications: vec![("a".into(), object(1))],
        ..Default::default()
    };
    log.commit(&first).await.unwrap();
    let reset = CommitBatch {
        streams: vec![meta("a", "new", 0)],
        cleared: vec!["a".into()],
        ..Default::default()
    };
    log.commit(&reset).await.unwrap();
    let snapshot = log.load(0).await.unwrap();
    assert_eq!(snapshot.streams, vec![(meta("a", "new", 0), vec![])]);
}

#[tokio::test]
async fn a_failing_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path(), Sync::Normal).await.unwrap();
    // The same offset twice violates the primary key: the whole batch must roll back.
    let bad = CommitBatch {
        streams: vec![meta("a", "e", 1)],
        publications: vec![("a".into(), object(1)), ("a".into(), object(1))],
        ..Default::default()
    };
    assert!(log.commit(&bad).await.is_err());
    assert!(log.load(0).await.unwrap().streams.is_empty());
}

#[tokio::test]
async fn a_batch_larger_than_one_statement_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path(), Sync::Normal).await.unwrap();
    let count = (ROWS_PER_STATEMENT * 2 + 500) as u64;
    let batch = CommitBatch {
        streams: vec![meta("big", "e", count)],
        publications: (1..=count)
            .map(|offset| ("big".to_string(), object(offset)))
            .collect(),
        ..Default::default()
    };
    log.commit(&batch).await.unwrap();
    let snapshot = log.load(0).await.unwrap();
    let offsets: Vec<u64> = snapshot.streams[0].1.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, (1..=count).collect::<Vec<_>>());
}
