use super::*;

const KEEP: Retention = Retention {
    size: 10,
    ttl: Duration::from_secs(1),
};

fn publish(streams: &Streams, hub: &Hub, channel: &str, time_ms: u64) {
    streams.append_and_broadcast(hub, channel, KEEP, |offset| StoredPublication {
        offset,
        time_ms,
        object: Bytes::from_static(b"{\"data\":{}}"),
    });
}

fn retained(streams: &Streams, channel: &str, now_ms: u64) -> usize {
    streams.locked(channel, |stream| {
        let everything = crate::history::HistoryQuery {
            limit: -1,
            ..Default::default()
        };
        stream
            .read(&everything, KEEP, now_ms)
            .map_or(0, |l| l.len())
    })
}

#[test]
fn sweep_drops_expired_history_and_forgets_only_idle_streams_with_a_meta_ttl() {
    let (streams, hub) = (Streams::new(), Hub::default());
    let start = now_ms();
    for channel in ["forgetful:1", "keeper:1", "unknown:1"] {
        publish(&streams, &hub, channel, start);
    }
    let policy = |channel: &str| match channel.split_once(':')?.0 {
        "forgetful" => Some((KEEP, Some(Duration::from_secs(5)))),
        "keeper" => Some((KEEP, None)),
        _ => None,
    };

    assert_eq!(streams.sweep(start, policy), 3, "nothing expired yet");
    assert_eq!(retained(&streams, "keeper:1", start), 1);

    let expired = start + 2_000;
    assert_eq!(
        streams.sweep(expired, policy),
        3,
        "positions outlive history"
    );
    streams.locked("keeper:1", |s| assert!(s.idle_since(expired)));

    let forgotten = start + 6_000;
    assert_eq!(
        streams.sweep(forgotten, policy),
        2,
        "the idle forgetful stream goes"
    );
    assert_eq!(streams.locked("keeper:1", |s| s.top()), 1);
    assert_eq!(
        streams.locked("unknown:1", |s| s.top()),
        1,
        "a channel the policy does not know is left alone"
    );
    assert_eq!(
        streams.locked("forgetful:1", |s| s.top()),
        0,
        "a forgotten stream starts afresh"
    );
}
