use super::*;

const KEEP: Retention = Retention {
    size: 3,
    ttl: Duration::from_secs(60),
};

fn publication(offset: u64, time_ms: u64) -> StoredPublication {
    StoredPublication {
        offset,
        time_ms,
        object: Bytes::from(format!("{{\"data\":{offset},\"offset\":{offset}}}")),
    }
}

fn stream_with(count: u64, now: u64) -> Stream {
    let mut stream = Stream::new();
    for offset in 1..=count {
        stream.append(publication(offset, now), KEEP, now);
    }
    stream
}

fn offsets(list: &[Arc<StoredPublication>]) -> Vec<u64> {
    list.iter().map(|p| p.offset).collect()
}

#[test]
fn size_trims_entries_but_keeps_the_position() {
    let stream = stream_with(5, 1000);
    assert_eq!(stream.top(), 5);
    let all = stream
        .read(
            &HistoryQuery {
                limit: -1,
                ..Default::default()
            },
            KEEP,
            1000,
        )
        .unwrap();
    assert_eq!(offsets(&all), [3, 4, 5]);
}

#[test]
fn reads_oldest_or_newest_first_with_limits() {
    let stream = stream_with(3, 1000);
    let query = |limit, reverse| HistoryQuery {
        since: None,
        limit,
        reverse,
    };
    assert_eq!(
        offsets(&stream.read(&query(2, false), KEEP, 1000).unwrap()),
        [1, 2]
    );
    assert_eq!(
        offsets(&stream.read(&query(2, true), KEEP, 1000).unwrap()),
        [3, 2]
    );
    assert!(
        stream
            .read(&query(0, false), KEEP, 1000)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn recovery_is_all_or_nothing() {
    let stream = stream_with(5, 1000);
    assert_eq!(offsets(&stream.since(3, KEEP, 1000).unwrap()), [4, 5]);
    assert_eq!(stream.since(5, KEEP, 1000).unwrap().len(), 0);
    assert!(
        stream.since(1, KEEP, 1000).is_none(),
        "2 was trimmed: no partial replay"
    );
    assert!(
        stream.since(9, KEEP, 1000).is_none(),
        "a position from the future"
    );
}

#[test]
fn expired_publications_make_recovery_fail() {
    let stream = stream_with(2, 1000);
    let later = 1000 + 61_000;
    assert!(stream.since(0, KEEP, later).is_none());
    assert!(stream.latest(KEEP, later).is_none());
    assert_eq!(stream.latest(KEEP, 1000).unwrap().offset, 2);
}

#[test]
fn since_with_another_epoch_is_unrecoverable() {
    let stream = stream_with(2, 1000);
    let query = HistoryQuery {
        since: Some((1, "other".into())),
        limit: -1,
        reverse: false,
    };
    assert_eq!(
        stream.read(&query, KEEP, 1000),
        Err(HistoryError::UnrecoverablePosition)
    );
    let same = HistoryQuery {
        since: Some((1, stream.epoch().to_string())),
        ..query
    };
    assert_eq!(offsets(&stream.read(&same, KEEP, 1000).unwrap()), [2]);
}

#[test]
fn reset_starts_a_new_epoch() {
    let mut stream = stream_with(2, 1000);
    let before = stream.epoch().clone();
    stream.reset();
    assert_ne!(stream.epoch(), &before);
    assert_eq!(stream.top(), 0);
}

#[test]
fn a_stream_is_idle_once_its_history_expired_and_nothing_changed_since() {
    let start = now_ms();
    let mut stream = Stream::new();
    stream.append(publication(1, start), KEEP, start);
    assert!(
        !stream.idle_since(start + 1),
        "it still holds a publication"
    );
    let later = start + KEEP.ttl.as_millis() as u64 + 1;
    stream.trim(KEEP, later);
    assert!(stream.idle_since(later), "expired, and untouched since");
    assert!(!stream.idle_since(start), "it was appended to at `start`");
    assert_eq!(stream.top(), 1, "the position outlives its publications");
}
