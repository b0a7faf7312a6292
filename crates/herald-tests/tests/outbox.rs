//! Outbox consumers end to end: an application writes rows (PostgreSQL) or
//! entries (Redis Streams) the way Centrifugo documents them, and a real
//! Herald runs them as server API calls that reach WebSocket subscribers.
//! Without a reachable PostgreSQL or a `redis-server` binary these skip, or
//! fail under `CI=true`.

use herald_consumers::testing as outbox;
use herald_postgres::testing::TestDatabase;
use herald_server::Config;
use herald_server::config::{ConsumerSection, PostgresqlConsumer, RedisStreamConsumer};
use herald_tests::broker::{health, wait_until};
use herald_tests::redis::RedisServer;
use herald_tests::{Client, TestServer, metric_value, test_config};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

// ---- PostgreSQL ----

fn postgresql(name: &str, dsn: &str) -> (ConsumerSection, PostgresqlConsumer) {
    let section = ConsumerSection {
        name: name.into(),
        kind: "postgresql".into(),
        enabled: true,
        postgresql: None,
        redis_stream: None,
    };
    let table = PostgresqlConsumer {
        dsn: dsn.into(),
        outbox_table_name: "chat_outbox".into(),
        num_partitions: 1,
        partition_select_limit: 100,
        partition_poll_interval: "50ms".into(),
        partition_notification_channel: String::new(),
    };
    (section, table)
}

fn with_consumer((mut section, table): (ConsumerSection, PostgresqlConsumer)) -> Config {
    section.postgresql = Some(table);
    let mut config = test_config();
    config.consumers = vec![section];
    config
}

async fn outbox_table(db: &TestDatabase) -> PgPool {
    outbox::create_table(db.url()).await
}

async fn insert(connection: &mut PgConnection, method: &str, payload: Value, partition: i32) {
    outbox::insert(connection, method, payload, partition).await;
}

async fn publish_row(pool: &PgPool, channel: &str, data: Value, partition: i32) {
    let payload = json!({"channel": channel, "data": data});
    outbox::insert(pool, "publish", payload, partition).await;
}

async fn wait_until_empty(pool: &PgPool) {
    outbox::wait_until_empty(pool, DEADLINE).await;
}

/// The data of the next publication on `channel`.
async fn next_publication(client: &mut Client, channel: &str) -> Value {
    let push = client
        .wait_for(|m| m["push"]["channel"] == json!(channel) && m["push"]["pub"].is_object())
        .await;
    push["push"]["pub"]["data"].clone()
}

async fn subscribed(server: &TestServer, channel: &str) -> Client {
    let (mut client, _) = server.connect("reader").await;
    let reply = client.subscribe(channel).await;
    assert!(reply.get("subscribe").is_some(), "{reply}");
    client
}

async fn history(server: &TestServer, channel: &str) -> Vec<Value> {
    let (status, body) = server
        .api("history", json!({"channel": channel, "limit": 10}))
        .await;
    assert_eq!(status, 200, "{body}");
    let publications = body["result"]["publications"].as_array().cloned();
    publications
        .unwrap_or_default()
        .iter()
        .map(|p| p["data"].clone())
        .collect()
}

async fn wait_until_consumer_ok(server: &TestServer, name: &str) {
    wait_until(
        &format!("consumer {name} ok on /health"),
        DEADLINE,
        async || (health(server).await.1["consumers"][name] == json!("ok")).then_some(()),
    )
    .await;
}

#[tokio::test]
async fn committed_rows_reach_a_subscriber_in_partition_order() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pool = outbox_table(&db).await;
    let server = TestServer::start(with_consumer(postgresql("ordered", db.url()))).await;
    let mut client = subscribed(&server, "orders-live").await;
    // One application transaction writing many rows, as a bulk change does.
    let mut transaction = pool.begin().await.unwrap();
    for n in 1..=30 {
        let payload = json!({"channel": "orders-live", "data": {"n": n}});
        insert(&mut transaction, "publish", payload, 0).await;
    }
    transaction.commit().await.unwrap();
    for n in 1..=30 {
        assert_eq!(
            next_publication(&mut client, "orders-live").await,
            json!({"n": n})
        );
    }
    wait_until_empty(&pool).await;
    let metrics = server.metrics().await;
    let applied = r#"herald_consumer_applied_total{consumer="ordered"}"#;
    assert_eq!(metric_value(&metrics, applied), 30.0, "{metrics}");
    assert_eq!(
        metric_value(&metrics, r#"herald_consumer_up{consumer="ordered"}"#),
        1.0
    );
}

#[tokio::test]
async fn a_rolled_back_row_is_never_delivered() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pool = outbox_table(&db).await;
    let server = TestServer::start(with_consumer(postgresql("rollback", db.url()))).await;
    let mut client = subscribed(&server, "rollback").await;
    let mut transaction = pool.begin().await.unwrap();
    let payload = json!({"channel": "rollback", "data": "rolled back"});
    insert(&mut transaction, "publish", payload, 0).await;
    transaction.rollback().await.unwrap();
    // Committed after the rolled-back one, in the same partition: it can
    // only arrive once the consumer is past where the other would have been.
    publish_row(&pool, "rollback", json!("committed"), 0).await;
    assert_eq!(
        next_publication(&mut client, "rollback").await,
        json!("committed")
    );
    wait_until_empty(&pool).await;
}

#[tokio::test]
async fn rows_committed_while_herald_was_down_are_applied_once_it_starts() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pool = outbox_table(&db).await;
    for n in 1..=3 {
        publish_row(&pool, "history:while-down", json!(n), 0).await;
    }
    let server = TestServer::start(with_consumer(postgresql("late-start", db.url()))).await;
    let published = wait_until("the rows in history", DEADLINE, async || {
        let published = history(&server, "history:while-down").await;
        (published.len() == 3).then_some(published)
    })
    .await;
    assert_eq!(published, [json!(1), json!(2), json!(3)]);
    wait_until_empty(&pool).await;
}

#[tokio::test]
async fn poison_rows_are_removed_and_do_not_block_the_rows_behind_them() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pool = outbox_table(&db).await;
    let server = TestServer::start(with_consumer(postgresql("poison-pg", db.url()))).await;
    let mut client = subscribed(&server, "poison").await;
    let mut connection = pool.acquire().await.unwrap();
    insert(
        &mut connection,
        "publish",
        json!({"channel": "poison", "data": 1}),
        0,
    )
    .await;
    insert(
        &mut connection,
        "no_such_method",
        json!({"channel": "poison"}),
        0,
    )
    .await;
    insert(&mut connection, "publish", json!({"data": "no channel"}), 0).await;
    insert(
        &mut connection,
        "publish",
        json!({"channel": "nowhere:x", "data": 0}),
        0,
    )
    .await;
    insert(
        &mut connection,
        "publish",
        json!({"channel": "poison", "data": 2}),
        0,
    )
    .await;
    assert_eq!(next_publication(&mut client, "poison").await, json!(1));
    assert_eq!(next_publication(&mut client, "poison").await, json!(2));
    wait_until_empty(&pool).await;
    let metrics = server.metrics().await;
    let rejected = r#"herald_consumer_rejected_total{consumer="poison-pg"}"#;
    assert_eq!(metric_value(&metrics, rejected), 3.0, "{metrics}");
    assert_eq!(
        metric_value(
            &metrics,
            r#"herald_consumer_applied_total{consumer="poison-pg"}"#
        ),
        2.0
    );
}

#[tokio::test]
async fn two_nodes_on_one_table_apply_every_row_exactly_once() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pool = outbox_table(&db).await;
    let (section, mut table) = postgresql("shared", db.url());
    table.num_partitions = 3;
    table.partition_select_limit = 5;
    table.partition_poll_interval = "10ms".into();
    let config = with_consumer((section, table));
    let a = TestServer::start(config.clone()).await;
    let b = TestServer::start(config).await;
    let mut readers = [
        subscribed(&a, "shared").await,
        subscribed(&b, "shared").await,
    ];
    for n in 0..150 {
        publish_row(&pool, "shared", json!(n), n % 3).await;
    }
    wait_until_empty(&pool).await;
    // A row is deleted only after its publish returned, and a connection
    // delivers in order: behind this marker, every applied row has arrived.
    for server in [&a, &b] {
        let (status, body) = server
            .api("publish", json!({"channel": "shared", "data": "end"}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut seen = Vec::new();
    let mut per_node = Vec::new();
    for reader in &mut readers {
        let mut on_this_node = Vec::new();
        loop {
            match next_publication(reader, "shared").await {
                data if data == json!("end") => break,
                data => on_this_node.push(data.as_i64().expect("a row number")),
            }
        }
        for partition in 0..3 {
            let rows: Vec<i64> = on_this_node
                .iter()
                .copied()
                .filter(|n| n % 3 == partition)
                .collect();
            assert!(
                rows.is_sorted(),
                "partition {partition} out of order: {rows:?}"
            );
        }
        per_node.push(on_this_node.len());
        seen.extend(on_this_node);
    }
    seen.sort();
    assert_eq!(seen, (0..150).collect::<Vec<_>>(), "every row exactly once");
    eprintln!("rows applied per node: {per_node:?}");
}

#[tokio::test]
async fn a_notify_delivers_well_before_the_poll_interval() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pool = outbox_table(&db).await;
    outbox::add_notify_trigger(&pool).await;
    let (section, mut table) = postgresql("notified", db.url());
    table.partition_poll_interval = "5s".into();
    table.partition_notification_channel = outbox::NOTIFY_CHANNEL.into();
    let server = TestServer::start(with_consumer((section, table))).await;
    let mut client = subscribed(&server, "notified").await;
    // The first, empty pass is done: the next poll is about 5 s away.
    wait_until_consumer_ok(&server, "notified").await;
    for n in 1..=2 {
        let inserted = Instant::now();
        publish_row(&pool, "notified", json!(n), 0).await;
        assert_eq!(next_publication(&mut client, "notified").await, json!(n));
        let took = inserted.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "row {n} took {took:?} with a 5 s poll"
        );
    }
}

#[tokio::test]
async fn health_stays_200_and_names_a_consumer_whose_database_is_unreachable() {
    // Nothing listens on port 1: the consumer's own database is away, while
    // the node itself is fine.
    let config = with_consumer(postgresql("away", "postgres://postgres@127.0.0.1:1/app"));
    let server = TestServer::start(config).await;
    let body = wait_until("/health to name the consumer", DEADLINE, async || {
        let (status, body) = health(&server).await;
        assert_eq!(
            status, 200,
            "a consumer's source never takes the node out: {body}"
        );
        let reason = body["consumers"]["away"].as_str().unwrap_or_default();
        reason
            .starts_with("unreachable: PostgreSQL")
            .then_some(body)
    })
    .await;
    assert_eq!(body["status"], json!("ok"), "{body}");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"herald_consumer_up{consumer="away"} 0"#),
        "{metrics}"
    );
    assert!(metric_value(&metrics, r#"herald_consumer_errors_total{consumer="away"}"#) >= 1.0);
}

// ---- Redis Streams ----

fn redis_stream_config(name: &str, redis: &RedisServer, stream: &str) -> Config {
    let mut config = test_config();
    config.consumers = vec![ConsumerSection {
        name: name.into(),
        kind: "redis_stream".into(),
        enabled: true,
        postgresql: None,
        redis_stream: Some(RedisStreamConsumer {
            redis_url: redis.url(),
            streams: vec![stream.into()],
            consumer_group: "herald".into(),
            visibility_timeout: "1s".into(),
            method_value: "method".into(),
            payload_value: "payload".into(),
        }),
    }];
    config
}

fn xadd_publish(redis: &RedisServer, stream: &str, channel: &str, data: Value) {
    let payload = json!({"channel": channel, "data": data}).to_string();
    let id = redis.command(&[
        "XADD", stream, "*", "method", "publish", "payload", &payload,
    ]);
    assert!(id.contains('-'), "XADD answered {id}");
}

/// How many entries the group has delivered but not had acknowledged.
fn pending(redis: &RedisServer, stream: &str) -> u64 {
    let summary = redis.command(&["XPENDING", stream, "herald"]);
    summary.lines().next().unwrap_or_default().parse().unwrap()
}

#[tokio::test]
async fn stream_entries_are_applied_including_those_written_before_start() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Before Herald ever ran: no group exists yet, and the entry is still owed.
    xadd_publish(&redis, "outbox", "history:early", json!("early"));
    let server = TestServer::start(redis_stream_config("stream", &redis, "outbox")).await;
    let published = wait_until("the early entry in history", DEADLINE, async || {
        let published = history(&server, "history:early").await;
        (!published.is_empty()).then_some(published)
    })
    .await;
    assert_eq!(published, [json!("early")]);
    let mut client = subscribed(&server, "stream-live").await;
    for n in 1..=5 {
        xadd_publish(&redis, "outbox", "stream-live", json!(n));
    }
    for n in 1..=5 {
        assert_eq!(next_publication(&mut client, "stream-live").await, json!(n));
    }
    wait_until("every entry acknowledged", DEADLINE, async || {
        (pending(&redis, "outbox") == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_poison_stream_entry_is_acknowledged_and_does_not_block() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let server = TestServer::start(redis_stream_config("stream-poison", &redis, "outbox")).await;
    let mut client = subscribed(&server, "stream-poison").await;
    wait_until_consumer_ok(&server, "stream-poison").await;
    redis.command(&[
        "XADD",
        "outbox",
        "*",
        "method",
        "no_such_method",
        "payload",
        "{}",
    ]);
    redis.command(&[
        "XADD", "outbox", "*", "method", "publish", "payload", "not json",
    ]);
    redis.command(&[
        "XADD",
        "outbox",
        "*",
        "payload",
        "{\"channel\":\"stream-poison\"}",
    ]);
    xadd_publish(&redis, "outbox", "stream-poison", json!("after"));
    assert_eq!(
        next_publication(&mut client, "stream-poison").await,
        json!("after")
    );
    wait_until("every entry acknowledged", DEADLINE, async || {
        (pending(&redis, "outbox") == 0).then_some(())
    })
    .await;
    let metrics = server.metrics().await;
    let rejected = r#"herald_consumer_rejected_total{consumer="stream-poison"}"#;
    assert_eq!(metric_value(&metrics, rejected), 3.0, "{metrics}");
}

#[tokio::test]
async fn entries_pending_with_a_dead_consumer_are_reclaimed() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    redis.command(&["XGROUP", "CREATE", "outbox", "herald", "0", "MKSTREAM"]);
    xadd_publish(&redis, "outbox", "history:orphan", json!("orphan"));
    // Another Herald read it and died before acknowledging.
    let read = redis.command(&[
        "XREADGROUP",
        "GROUP",
        "herald",
        "crashed-node",
        "COUNT",
        "10",
        "STREAMS",
        "outbox",
        ">",
    ]);
    assert!(read.contains("orphan"), "{read}");
    assert_eq!(pending(&redis, "outbox"), 1);
    let server = TestServer::start(redis_stream_config("stream-reclaim", &redis, "outbox")).await;
    let published = wait_until("the orphan entry in history", DEADLINE, async || {
        let published = history(&server, "history:orphan").await;
        (!published.is_empty()).then_some(published)
    })
    .await;
    assert_eq!(published, [json!("orphan")], "applied once");
    wait_until("the orphan acknowledged", DEADLINE, async || {
        (pending(&redis, "outbox") == 0).then_some(())
    })
    .await;
}
