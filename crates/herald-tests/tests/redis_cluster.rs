//! Herald nodes on a 3-master Redis Cluster: channels whose keys live on
//! different shards behave like on one Redis (delivery, history, recovery
//! across nodes), and a channel keeps every publication, in order and in the
//! same epoch, while its slot moves to another shard.

use herald_tests::broker::{
    Outcomes, Publisher, a_client_recovers_on_another_node, cluster_config, history,
    publications_reach_another_node_in_order, received_until, two_nodes,
};
use herald_tests::redis::{RedisCluster, RedisServer};
use herald_tests::{TestServer, publish_at};
use serde_json::json;

/// The stream key of a channel under the default prefix.
fn stream_key(channel: &str) -> String {
    format!("herald{{{channel}}}:s")
}

/// The node serving `key`: the first node answers for its own slots and
/// redirects with `MOVED <slot> <host>:<port>` for the others.
fn owner<'a>(cluster: &'a RedisCluster, key: &str) -> &'a RedisServer {
    let first = &cluster.nodes()[0];
    let reply = first.command(&["EXISTS", key]);
    let Some(moved) = reply.strip_prefix("MOVED ") else {
        assert!(reply == "0" || reply == "1", "EXISTS {key}: {reply}");
        return first;
    };
    let (slot, address) = moved.split_once(' ').expect("MOVED <slot> <address>");
    assert_eq!(slot, RedisCluster::key_slot(key).to_string(), "{key}");
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    let mut nodes = cluster.nodes().iter();
    nodes
        .find(|n| n.port() == port)
        .expect("a node of the cluster")
}

/// One `history:` channel per shard, named so each one's keys hash to a slot
/// another shard serves.
fn a_channel_on_each_shard(cluster: &RedisCluster) -> Vec<String> {
    let mut ports = Vec::new();
    let mut channels = Vec::new();
    for n in 0..1000 {
        if ports.len() == cluster.nodes().len() {
            break;
        }
        let channel = format!("history:shard-{n}");
        let port = owner(cluster, &stream_key(&channel)).port();
        if !ports.contains(&port) {
            ports.push(port);
            channels.push(channel);
        }
    }
    assert_eq!(ports.len(), 3, "every master serves some slots");
    channels
}

async fn two_cluster_nodes(cluster: &RedisCluster) -> (TestServer, TestServer) {
    two_nodes(&cluster_config(cluster)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_on_different_shards_deliver_and_keep_history_across_nodes() {
    let Some(cluster) = RedisCluster::start(3) else {
        return;
    };
    let (a, b) = two_cluster_nodes(&cluster).await;
    let channels = a_channel_on_each_shard(&cluster);
    let names: Vec<&str> = channels.iter().map(String::as_str).collect();
    publications_reach_another_node_in_order(&a, &b, &names).await;
    // The history really lives on three different masters.
    for channel in &channels {
        let key = stream_key(channel);
        let shard = owner(&cluster, &key);
        assert_eq!(
            shard.command(&["XLEN", &key]),
            "3",
            "{key} on {}",
            shard.port()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_recovers_on_another_node_from_each_shard() {
    let Some(cluster) = RedisCluster::start(3) else {
        return;
    };
    let (a, b) = two_cluster_nodes(&cluster).await;
    for channel in a_channel_on_each_shard(&cluster) {
        a_client_recovers_on_another_node(&a, &b, &channel).await;
    }
}

/// `count` channels whose keys the master serving `channel` also serves, in other slots.
fn neighbours(cluster: &RedisCluster, channel: &str, count: usize) -> Vec<String> {
    let shard = owner(cluster, &stream_key(channel)).port();
    let slot = RedisCluster::key_slot(&stream_key(channel));
    let candidates = (0..1000).map(|n| format!("history:beside-{n}"));
    let same_shard = candidates.filter(|other| {
        let key = stream_key(other);
        RedisCluster::key_slot(&key) != slot && owner(cluster, &key).port() == shard
    });
    let found: Vec<String> = same_shard.take(count).collect();
    assert_eq!(found.len(), count, "channels beside {channel}");
    found
}

/// Every publish of a sequential publisher was acknowledged, with the next
/// offset each time, from `first`; returns the last offset.
fn assert_acknowledged_in_turn(channel: &str, outcomes: &Outcomes, first: u64) -> u64 {
    assert!(
        outcomes.errors.is_empty(),
        "{channel}: publishes failed during the move: {:?}",
        outcomes.errors
    );
    let top = first + outcomes.acknowledged.len() as u64 - 1;
    let expected: Vec<u64> = (first..=top).collect();
    assert_eq!(
        outcomes.acknowledged, expected,
        "{channel}: each publish acknowledged with its own, next offset"
    );
    top
}

/// A slot move under load: the moving channel and three others on the same
/// (source) shard are published to all along; nothing fails, every
/// acknowledgement names its own offset, and the subscribers of the moving
/// channel get every offset in order, in the same epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_move_loses_nothing_and_keeps_the_epoch() {
    let Some(cluster) = RedisCluster::start(3) else {
        return;
    };
    let channel = "history:moving";
    let key = stream_key(channel);
    let (a, b) = two_cluster_nodes(&cluster).await;
    // A positioned subscriber on each node: a gap it notices closes it with 3010.
    let mut subscribers = Vec::new();
    for node in [&a, &b] {
        let (mut client, _) = node.connect("alice").await;
        let subscribe = json!({"channel": channel, "positioned": true, "recoverable": true});
        let reply = client.call(json!({ "subscribe": subscribe })).await;
        assert!(reply["subscribe"].is_object(), "{reply}");
        subscribers.push(client);
    }
    let (first, epoch) = publish_at(&b, channel, json!(0)).await;
    assert_eq!(first, 1);
    let before = owner(&cluster, &key).port();
    let beside: Vec<(String, Publisher)> = neighbours(&cluster, channel, 3)
        .into_iter()
        .map(|other| {
            let publisher = Publisher::start(a.http_url(""), &other);
            (other, publisher)
        })
        .collect();

    let publisher = Publisher::start(b.http_url(""), channel);
    publisher
        .wait_for_more_acks("publishes before the move", 20)
        .await;
    let slot = RedisCluster::key_slot(&format!("herald{{{channel}}}"));
    assert_eq!(slot, RedisCluster::key_slot(&key));
    // move_slot polls synchronously; the publishers keep running meanwhile.
    let (from, to) = tokio::task::block_in_place(|| cluster.move_slot(slot));
    assert_eq!(from, before);
    assert_eq!(
        owner(&cluster, &key).port(),
        to,
        "the stream followed its slot"
    );
    publisher
        .wait_for_more_acks("publishes after the move", 20)
        .await;
    for (other, publisher) in beside {
        assert_acknowledged_in_turn(&other, &publisher.stop().await, 1);
    }
    let top = assert_acknowledged_in_turn(channel, &publisher.stop().await, 2);

    for (node, client) in ["a", "b"].into_iter().zip(&mut subscribers) {
        let (received, told_to_recover) = received_until(client, top).await;
        assert!(
            !told_to_recover,
            "the subscriber on {node} was told to recover"
        );
        let expected: Vec<u64> = (1..=top).collect();
        assert_eq!(received, expected, "{node} got every offset once, in order");
    }
    // history_size is 10 in the test namespace.
    let kept = (top - 9..=top).collect::<Vec<u64>>();
    for server in [&a, &b] {
        assert_eq!(
            history(server, channel).await,
            (kept.clone(), epoch.clone())
        );
    }
    assert_eq!(
        publish_at(&a, channel, json!("after")).await,
        (top + 1, epoch)
    );
}
