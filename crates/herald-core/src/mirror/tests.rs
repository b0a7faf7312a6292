use super::*;
use crate::hub::{ClientHandle, SubscriberOptions};
use crate::outbox::{Outbox, OutboxLimits};
use bytes::Bytes;
use std::time::Duration;

const RETENTION: Retention = Retention {
    size: 10,
    ttl: Duration::from_secs(300),
};

fn publication(offset: u64) -> StoredPublication {
    StoredPublication {
        offset,
        time_ms: now_ms(),
        object: Bytes::from(format!(r#"{{"data":{offset},"offset":{offset}}}"#)),
    }
}

fn loaded(epoch: &str, offsets: std::ops::RangeInclusive<u64>) -> LoadedStream {
    LoadedStream {
        epoch: epoch.into(),
        top: *offsets.end(),
        publications: offsets.map(publication).collect(),
    }
}

/// A hub with one positioned subscriber on "ch" at `top`, and its outbox.
fn positioned_subscriber(top: u64) -> (Hub, Arc<Outbox>) {
    let hub = Hub::default();
    let outbox = Arc::new(Outbox::new(OutboxLimits::default()));
    let client = Arc::new(ClientHandle {
        id: "c".into(),
        user: "u".into(),
        outbox: outbox.clone(),
        control: Default::default(),
        emulation: None,
    });
    let options = SubscriberOptions {
        join_leave: false,
        positioned_at: Some(top),
    };
    hub.subscribe("ch", client, options, None);
    (hub, outbox)
}

async fn delivered_offsets(outbox: &Outbox) -> Vec<u64> {
    let mut messages = Vec::new();
    if outbox.is_closed() {
        return Vec::new();
    }
    tokio::time::timeout(Duration::from_secs(1), outbox.drain(&mut messages))
        .await
        .expect("something was queued");
    messages
        .iter()
        .map(|m| {
            let value: serde_json::Value = serde_json::from_slice(m).unwrap();
            value["push"]["pub"]["offset"].as_u64().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn arrivals_in_order_are_delivered_and_the_rest_are_flagged() {
    let streams = Streams::new();
    let (hub, outbox) = positioned_subscriber(2);
    streams.reload(&hub, "ch", RETENTION, loaded("e1", 1..=2), true);
    assert_eq!(
        streams.arrive(&hub, "ch", RETENTION, "e1", publication(3)),
        Arrival::Delivered
    );
    assert_eq!(
        streams.arrive(&hub, "ch", RETENTION, "e1", publication(3)),
        Arrival::Duplicate
    );
    assert_eq!(
        streams.arrive(&hub, "ch", RETENTION, "e1", publication(5)),
        Arrival::OutOfStep,
        "offset 4 is missing"
    );
    assert_eq!(
        streams.arrive(&hub, "ch", RETENTION, "e2", publication(4)),
        Arrival::OutOfStep,
        "another epoch"
    );
    assert_eq!(delivered_offsets(&outbox).await, [3]);
    assert!(!outbox.is_closed());
}

#[tokio::test]
async fn a_reload_after_a_gap_delivers_what_was_missed_in_order() {
    let streams = Streams::new();
    let (hub, outbox) = positioned_subscriber(2);
    streams.reload(&hub, "ch", RETENTION, loaded("e1", 1..=2), true);
    let outcome = streams.reload(&hub, "ch", RETENTION, loaded("e1", 1..=5), false);
    assert_eq!(outcome, Reload::Continuous { delivered: 3 });
    assert_eq!(delivered_offsets(&outbox).await, [3, 4, 5]);
    assert!(!outbox.is_closed(), "the positioned subscriber saw no gap");
}

#[tokio::test]
async fn a_reload_is_broken_by_a_new_epoch_or_expired_publications() {
    let streams = Streams::new();
    let (hub, _outbox) = positioned_subscriber(2);
    streams.reload(&hub, "ch", RETENTION, loaded("e1", 1..=2), true);
    assert_eq!(
        streams.reload(&hub, "ch", RETENTION, loaded("e1", 5..=6), false),
        Reload::Broken,
        "3 and 4 are no longer retained"
    );
    assert_eq!(
        streams.reload(&hub, "ch", RETENTION, loaded("e2", 1..=1), false),
        Reload::Broken
    );
    let position = streams.locked("ch", |s| s.position());
    assert_eq!((position.offset, &*position.epoch), (1, "e2"));
}
