use super::*;

async fn drain(outbox: &Outbox) -> (Vec<Bytes>, Drained) {
    let mut messages = Vec::new();
    let drained = outbox.drain(&mut messages).await;
    (messages, drained)
}

fn outbox(max_messages: usize, max_bytes: usize) -> Outbox {
    Outbox::new(OutboxLimits {
        max_messages,
        max_bytes,
    })
}

#[tokio::test]
async fn drains_everything_queued_in_order() {
    let outbox = outbox(10, 1000);
    outbox.push(Bytes::from_static(b"a")).unwrap();
    outbox.push(Bytes::from_static(b"b")).unwrap();
    let (messages, drained) = drain(&outbox).await;
    assert_eq!(
        messages,
        [Bytes::from_static(b"a"), Bytes::from_static(b"b")]
    );
    assert!(drained.oldest.is_some());
    assert!(drained.close.is_none());
}

#[tokio::test]
async fn overflowing_the_count_closes_as_slow() {
    let outbox = outbox(2, 1000);
    outbox.push(Bytes::from_static(b"a")).unwrap();
    outbox.push(Bytes::from_static(b"b")).unwrap();
    assert_eq!(
        outbox.push(Bytes::from_static(b"c")),
        Err(PushError::Overflow)
    );
    assert_eq!(
        outbox.push(Bytes::from_static(b"d")),
        Err(PushError::Closed)
    );
    let (messages, drained) = drain(&outbox).await;
    assert!(messages.is_empty());
    assert_eq!(drained.close, Some(Disconnect::SLOW));
}

#[tokio::test]
async fn overflowing_the_bytes_closes_as_slow() {
    let outbox = outbox(100, 5);
    outbox.push(Bytes::from_static(b"abc")).unwrap();
    assert_eq!(
        outbox.push(Bytes::from_static(b"def")),
        Err(PushError::Overflow)
    );
    assert_eq!(outbox.close_reason(), Some(Disconnect::SLOW));
}

#[tokio::test]
async fn close_flushes_queued_messages_first_and_first_close_wins() {
    let outbox = outbox(10, 1000);
    outbox.push(Bytes::from_static(b"last words")).unwrap();
    outbox.close(Disconnect::SHUTDOWN);
    outbox.close(Disconnect::SLOW);
    let (messages, drained) = drain(&outbox).await;
    assert_eq!(messages, [Bytes::from_static(b"last words")]);
    assert_eq!(drained.close, Some(Disconnect::SHUTDOWN));
}

#[tokio::test]
async fn a_waiting_writer_wakes_on_push() {
    let outbox = std::sync::Arc::new(outbox(10, 1000));
    let writer = tokio::spawn({
        let outbox = outbox.clone();
        async move { drain(&outbox).await }
    });
    tokio::task::yield_now().await;
    outbox.push(Bytes::from_static(b"x")).unwrap();
    let (messages, _) = tokio::time::timeout(std::time::Duration::from_secs(5), writer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(messages.len(), 1);
}

#[tokio::test]
async fn a_held_reply_goes_before_what_was_queued_during_the_hold() {
    let outbox = std::sync::Arc::new(outbox(10, 1000));
    outbox.push(Bytes::from_static(b"before")).unwrap();
    outbox.hold();
    outbox.push(Bytes::from_static(b"during")).unwrap();
    let writer = tokio::spawn({
        let outbox = outbox.clone();
        async move { drain(&outbox).await }
    });
    tokio::task::yield_now().await;
    assert!(!writer.is_finished(), "the writer waits while held");
    outbox.release(Some(Bytes::from_static(b"reply")));
    let (messages, _) = tokio::time::timeout(std::time::Duration::from_secs(5), writer)
        .await
        .unwrap()
        .unwrap();
    let order: Vec<&[u8]> = messages.iter().map(|m| m.as_ref()).collect();
    assert_eq!(order, [&b"before"[..], b"reply", b"during"]);
}
