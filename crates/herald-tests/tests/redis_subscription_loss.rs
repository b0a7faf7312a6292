//! Redis stays up but drops the nodes' subscriptions (`CLIENT KILL TYPE
//! pubsub`) in the middle of a publish stream: the nodes notice, resubscribe
//! and reload, and the subscriber still gets every acknowledged publication,
//! once and in order.

use herald_tests::broker::{
    received_until, standalone_config, subscribed_under_a_stream, two_nodes,
};
use herald_tests::redis::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_subscription_is_resubscribed_without_loss() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_nodes(&standalone_config(&redis.url())).await;
    let (mut client, publisher) = subscribed_under_a_stream(&a, &b, "history:kept").await;

    let killed: usize = redis
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .parse()
        .unwrap();
    assert!(killed >= 2, "each node's subscription connection: {killed}");
    publisher.wait_for_more_acks("publishes after", 40).await;
    let outcomes = publisher.stop().await;

    let top = *outcomes.acknowledged.last().unwrap();
    let (received, told_to_recover) = received_until(&mut client, top).await;
    assert!(
        !told_to_recover,
        "Redis kept everything: nothing to recover"
    );
    assert_eq!(received, (1..=top).collect::<Vec<u64>>(), "once, in order");
    let killed_again: usize = redis
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .parse()
        .unwrap();
    assert!(
        killed_again >= 2,
        "both nodes subscribed again: {killed_again}"
    );
}
