//! Redis restarting empty under a publish stream: the channel's stream starts
//! a new epoch, so the subscriber cannot be made whole and must be told to
//! recover (2500, or 3010 for a positioned subscription).

use herald_tests::broker::{received_until, restart_mid_stream};
use herald_tests::redis::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_its_data_makes_subscribers_recover() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let (outcomes, mut client, _nodes) = restart_mid_stream(&mut redis).await;
    assert!(!outcomes.errors.is_empty());
    // Offsets restart in the new epoch, so no offset marks the end: read until
    // told (or fail when nothing more arrives).
    let (_, told_to_recover) = received_until(&mut client, u64::MAX).await;
    assert!(
        told_to_recover,
        "the stream restarted in a new epoch: the subscriber must be told"
    );
}
