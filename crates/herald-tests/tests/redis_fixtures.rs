//! The Redis fixtures against real `redis-server` processes. A test returns
//! early (passes) when Redis is not installed, unless CI=true.

use herald_tests::redis::{RedisCluster, RedisOptions, RedisSentinel, RedisServer};
use std::net::TcpStream;

#[test]
fn standalone_server_answers_ping_and_set_get() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert_eq!(server.command(&["PING"]), "PONG");
    assert_eq!(server.command(&["SET", "greeting", "hello world"]), "OK");
    assert_eq!(server.command(&["GET", "greeting"]), "hello world");
    assert_eq!(server.command(&["GET", "missing"]), "(nil)");
    assert_eq!(server.command(&["RPUSH", "list", "a", "b"]), "2");
    assert_eq!(server.command(&["LRANGE", "list", "0", "-1"]), "a\nb");
    assert!(server.command(&["NO-SUCH-COMMAND"]).starts_with("ERR "));
    // Enabled on purpose so tests can stall a server.
    assert_eq!(server.command(&["DEBUG", "SLEEP", "0"]), "OK");
}

#[test]
fn restart_with_appendonly_keeps_the_port_and_the_data() {
    let Some(mut server) = RedisServer::start_with(RedisOptions { appendonly: true }) else {
        return;
    };
    let port = server.port();
    assert_eq!(server.command(&["SET", "kept", "yes"]), "OK");
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(server.command(&["GET", "kept"]), "yes");
}

#[test]
fn restart_without_appendonly_loses_the_data() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let port = server.port();
    assert_eq!(server.command(&["SET", "lost", "yes"]), "OK");
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(server.command(&["GET", "lost"]), "(nil)");
}

#[test]
fn kill_closes_the_port_until_restart() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let port = server.port();
    server.kill();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    server.restart();
    assert_eq!(server.command(&["PING"]), "PONG");
}

#[test]
fn sentinel_reports_the_master() {
    let Some(sentinel) = RedisSentinel::start() else {
        return;
    };
    let master_port = sentinel.master().port();
    assert_eq!(sentinel.master_name(), "herald");
    assert_eq!(
        sentinel.url(),
        format!(
            "redis+sentinel://127.0.0.1:{}/herald",
            sentinel.sentinel().port()
        )
    );
    assert_eq!(
        sentinel
            .sentinel()
            .command(&["SENTINEL", "get-master-addr-by-name", "herald"]),
        format!("127.0.0.1\n{master_port}")
    );
    assert_eq!(sentinel.master().command(&["PING"]), "PONG");
}

#[test]
fn key_slot_is_crc16_with_hash_tags() {
    // CRC16/XMODEM("123456789") is 0x31C3 = 12739, already below 16384.
    assert_eq!(RedisCluster::key_slot("123456789"), 12739);
    assert_eq!(RedisCluster::key_slot("foo"), 12182);
    assert_eq!(
        RedisCluster::key_slot("{foo}bar"),
        RedisCluster::key_slot("foo")
    );
    // An empty tag does not count: the whole key is hashed.
    assert_ne!(
        RedisCluster::key_slot("{}foo"),
        RedisCluster::key_slot("foo")
    );
}

/// Whether `port`'s own line in CLUSTER NODES lists `slot` among its ranges.
fn claims(cluster_nodes: &str, port: u16, slot: u16) -> bool {
    let line = cluster_nodes
        .lines()
        .find(|line| line.contains(&format!(":{port}@")))
        .unwrap_or_else(|| panic!("port {port} missing from CLUSTER NODES:\n{cluster_nodes}"));
    line.split(' ').skip(8).any(|range| {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        matches!((first.parse(), last.parse()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
    })
}

#[test]
fn cluster_forms_and_move_slot_carries_a_key_to_the_new_owner() {
    let Some(cluster) = RedisCluster::start(3) else {
        return;
    };
    assert_eq!(cluster.nodes().len(), 3);
    assert_eq!(cluster.urls()[0], cluster.nodes()[0].url());
    for node in cluster.nodes() {
        let info = node.command(&["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
    }
    let first = &cluster.nodes()[0];
    for key in ["foo", "{foo}bar", "{}foo", "foo{{bar}}zap", "123456789"] {
        let slot = RedisCluster::key_slot(key);
        assert_eq!(
            first.command(&["CLUSTER", "KEYSLOT", key]),
            slot.to_string()
        );
    }

    let key = "moving-key";
    let slot = RedisCluster::key_slot(key);
    // Only the owner accepts the write; the others answer MOVED and store nothing.
    let owners: Vec<u16> = cluster
        .nodes()
        .iter()
        .filter(|node| node.command(&["SET", key, "carried"]) == "OK")
        .map(RedisServer::port)
        .collect();
    assert_eq!(owners.len(), 1, "exactly one node owns slot {slot}");

    let (from, to) = cluster.move_slot(slot);
    assert_eq!(from, owners[0]);
    assert_ne!(to, from);
    let node = |port: u16| cluster.nodes().iter().find(|n| n.port() == port).unwrap();
    let new_owner = node(to);
    assert_eq!(new_owner.command(&["GET", key]), "carried");
    assert_eq!(
        new_owner.command(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]),
        "1"
    );
    assert_eq!(
        node(from).command(&["GET", key]),
        format!("MOVED {slot} 127.0.0.1:{to}")
    );
    for node in cluster.nodes() {
        let nodes = node.command(&["CLUSTER", "NODES"]);
        assert!(claims(&nodes, to, slot), "{nodes}");
        assert!(!claims(&nodes, from, slot), "{nodes}");
    }
}

#[test]
fn cluster_failover_promotes_a_replica_that_keeps_the_data() {
    let Some(cluster) = RedisCluster::start_with_replicas(3, 1) else {
        return;
    };
    assert_eq!(cluster.nodes().len(), 6);
    let key = "failing-over-key";
    let slot = RedisCluster::key_slot(key);
    let owner = cluster
        .nodes()
        .iter()
        .find(|node| node.command(&["SET", key, "kept"]) == "OK")
        .map(RedisServer::port)
        .expect("one master owns the slot");
    let (from, to) = cluster.failover(slot);
    assert_eq!(from, owner);
    assert_ne!(to, from);
    let node = |port: u16| cluster.nodes().iter().find(|n| n.port() == port).unwrap();
    assert_eq!(node(to).command(&["GET", key]), "kept");
    for node in cluster.nodes() {
        let nodes = node.command(&["CLUSTER", "NODES"]);
        assert!(claims(&nodes, to, slot), "{nodes}");
        assert!(!claims(&nodes, from, slot), "{nodes}");
    }
}
