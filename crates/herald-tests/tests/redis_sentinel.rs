//! Herald nodes that find their Redis master through a Sentinel behave like
//! nodes on one Redis: delivery, history and recovery span the nodes.

use herald_tests::TestServer;
use herald_tests::broker::{
    a_client_recovers_on_another_node, publications_reach_another_node_in_order, sentinel_config,
    two_nodes,
};
use herald_tests::redis::RedisSentinel;

async fn two_sentinel_nodes(sentinel: &RedisSentinel) -> (TestServer, TestServer) {
    two_nodes(&sentinel_config(sentinel)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_and_history_span_nodes_through_the_sentinel() {
    let Some(sentinel) = RedisSentinel::start() else {
        return;
    };
    let (a, b) = two_sentinel_nodes(&sentinel).await;
    let channels = ["history:s1", "history:s2"];
    publications_reach_another_node_in_order(&a, &b, &channels).await;
    // The history is on the master the Sentinel named.
    let master = sentinel.master();
    for channel in channels {
        let key = format!("herald{{{channel}}}:s");
        assert_eq!(master.command(&["XLEN", &key]), "3", "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_recovers_on_another_node_through_the_sentinel() {
    let Some(sentinel) = RedisSentinel::start() else {
        return;
    };
    let (a, b) = two_sentinel_nodes(&sentinel).await;
    a_client_recovers_on_another_node(&a, &b, "history:s3").await;
}
