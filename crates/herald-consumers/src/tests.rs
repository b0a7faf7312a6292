//! Settings checks, the backoff schedule, and the PostgreSQL consumer against
//! a real server (a fresh database per test; skipped without one unless
//! `CI=true`). The Redis Streams consumer is tested in `herald-tests`, where
//! the ephemeral Redis fixtures live.

use super::*;
use crate::worker::Backoff;
use herald_postgres::testing::TestDatabase;
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

// ---- settings ----

#[test]
fn plain_identifiers_are_accepted_and_everything_else_refused() {
    for good in [
        "chat_outbox",
        "_x",
        "app.chat_outbox",
        "T1",
        &"a".repeat(63),
    ] {
        assert!(is_plain_identifier(good), "{good}");
    }
    for bad in [
        "",
        "1outbox",
        "chat-outbox",
        "chat outbox",
        "outbox; DROP TABLE users",
        "\"quoted\"",
        "a.b.c",
        ".outbox",
        "app.",
        "outbox--",
        "ünïcode",
        &"a".repeat(64),
    ] {
        assert!(!is_plain_identifier(bad), "{bad}");
    }
}

fn postgres_settings(dsn: &str) -> PostgresSettings {
    PostgresSettings {
        dsn: dsn.into(),
        outbox_table_name: "chat_outbox".into(),
        num_partitions: 1,
        partition_select_limit: 100,
        partition_poll_interval: Duration::from_millis(300),
        partition_notification_channel: None,
    }
}

#[test]
fn every_bad_setting_is_reported_naming_its_key() {
    let consumer = ConsumerConfig {
        name: "x".into(),
        source: Source::Postgresql(PostgresSettings {
            outbox_table_name: "outbox; DROP TABLE users".into(),
            num_partitions: 0,
            partition_select_limit: 0,
            partition_poll_interval: Duration::ZERO,
            partition_notification_channel: Some(String::new()),
            ..postgres_settings("mysql://u:secret@h/db")
        }),
    };
    let problems: Vec<String> = consumer
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect();
    let keys: Vec<&str> = problems
        .iter()
        .map(|p| p.split(':').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "name",
            "dsn",
            "outbox_table_name",
            "num_partitions",
            "partition_select_limit",
            "partition_poll_interval",
            "partition_notification_channel"
        ],
        "{problems:#?}"
    );
    assert!(
        problems.iter().all(|p| !p.contains("secret")),
        "the password never shows: {problems:#?}"
    );

    let redis = ConsumerConfig {
        name: "stream-consumer".into(),
        source: Source::RedisStream(RedisStreamSettings {
            redis_url: "rediss://h".into(),
            streams: vec!["a".into(), "a".into()],
            consumer_group: String::new(),
            consumer_name: "node-1".into(),
            visibility_timeout: Duration::from_millis(10),
            method_value: "method".into(),
            payload_value: String::new(),
        }),
    };
    let problems: Vec<String> = redis.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "redis_url: must start with redis:// (TLS is not built in; terminate it in front of Redis)",
            "streams: `a` is listed twice",
            "consumer_group: must not be empty",
            "visibility_timeout: must be at least 1s, or entries would be reclaimed mid-apply",
            "payload_value: must not be empty",
        ]
    );
}

#[test]
fn backoff_doubles_from_100ms_up_to_5s_and_resets() {
    let mut backoff = Backoff::new();
    let waits: Vec<u64> = (0..8)
        .map(|_| backoff.next_wait().as_millis() as u64)
        .collect();
    assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    backoff.reset();
    assert_eq!(backoff.next_wait(), Duration::from_millis(100));
}

#[tokio::test]
async fn spawn_refuses_bad_settings_and_duplicate_names() {
    let recorder = Recorder::new();
    let bad = ConsumerConfig {
        name: "outbox".into(),
        source: Source::Postgresql(PostgresSettings {
            outbox_table_name: "x y".into(),
            ..postgres_settings("postgres://h/db")
        }),
    };
    let error = spawn(vec![bad], recorder.clone(), std::future::pending())
        .err()
        .expect("refused");
    assert!(
        error
            .to_string()
            .starts_with("consumer `outbox`: outbox_table_name: `x y`"),
        "{error}"
    );
    let good = ConsumerConfig {
        name: "outbox".into(),
        source: Source::Postgresql(postgres_settings("postgres://h/db")),
    };
    let error = spawn(vec![good.clone(), good], recorder, std::future::pending())
        .err()
        .expect("refused");
    assert_eq!(
        error.to_string(),
        "consumer `outbox` is defined twice; names must be unique"
    );
}

// ---- the PostgreSQL consumer ----

/// Applies `{"n": N}` payloads and records N; answers `Rejected` to the
/// method "nope" and `Retry` to the first K attempts of `{"n": N, "retry": K}`.
struct Recorder {
    applied: std::sync::Mutex<Vec<i64>>,
    attempts: std::sync::Mutex<HashMap<i64, u64>>,
    count: watch::Sender<usize>,
}

impl Recorder {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            applied: Default::default(),
            attempts: Default::default(),
            count: watch::channel(0).0,
        })
    }

    /// The applied numbers, once at least `wanted` of them are in.
    async fn wait_for(&self, wanted: usize) -> Vec<i64> {
        let mut count = self.count.subscribe();
        let reached = tokio::time::timeout(WAIT, count.wait_for(|n| *n >= wanted)).await;
        let applied = self.applied.lock().unwrap().clone();
        assert!(
            reached.is_ok(),
            "wanted {wanted} applied within {WAIT:?}, got {applied:?}"
        );
        applied
    }

    fn attempts(&self, n: i64) -> u64 {
        self.attempts.lock().unwrap().get(&n).copied().unwrap_or(0)
    }
}

impl Apply for Recorder {
    fn apply<'a>(
        &'a self,
        method: &'a str,
        payload: &'a RawValue,
    ) -> BoxFuture<'a, Result<(), ApplyError>> {
        Box::pin(async move {
            if method == "nope" {
                return Err(ApplyError::Rejected("unknown method".into()));
            }
            let payload: Value = serde_json::from_str(payload.get()).unwrap();
            let n = payload["n"].as_i64().expect("test payloads carry n");
            let attempt = {
                let mut attempts = self.attempts.lock().unwrap();
                let attempt = attempts.entry(n).or_default();
                *attempt += 1;
                *attempt
            };
            if attempt <= payload["retry"].as_u64().unwrap_or(0) {
                return Err(ApplyError::Retry(format!("attempt {attempt}")));
            }
            let mut applied = self.applied.lock().unwrap();
            applied.push(n);
            self.count.send_replace(applied.len());
            Ok(())
        })
    }
}

async fn outbox_table(db: &TestDatabase) -> PgPool {
    crate::testing::create_table(db.url()).await
}

async fn insert(pool: &PgPool, method: &str, payload: Value, partition: i32) {
    crate::testing::insert(pool, method, payload, partition).await;
}

async fn wait_until_empty(pool: &PgPool) {
    crate::testing::wait_until_empty(pool, WAIT).await;
}

/// Starts `settings` as consumer `name`; the returned sender stops it.
fn start(
    name: &str,
    settings: PostgresSettings,
    recorder: &Arc<Recorder>,
) -> (Consumers, tokio::sync::oneshot::Sender<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = ConsumerConfig {
        name: name.into(),
        source: Source::Postgresql(settings),
    };
    let consumers = spawn(vec![consumer], recorder.clone(), async move {
        let _ = stopped.await;
    })
    .expect("valid settings");
    (consumers, stop)
}

async fn wait_until_reachable(consumers: &Consumers, name: &str) {
    let deadline = Instant::now() + WAIT;
    while consumers.status()[name].is_err() {
        assert!(
            Instant::now() < deadline,
            "{name} not reachable: {:?}",
            consumers.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn rows_are_applied_in_id_order_across_batches_and_deleted() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pool = outbox_table(&db).await;
    for n in 1..=250 {
        insert(&pool, "publish", serde_json::json!({"n": n}), 0).await;
    }
    let recorder = Recorder::new();
    let (consumers, stop) = start("ordered", postgres_settings(db.url()), &recorder);
    let applied = recorder.wait_for(250).await;
    assert_eq!(applied, (1..=250).collect::<Vec<_>>());
    wait_until_empty(&pool).await;
    assert_eq!(consumers.status()["ordered"], Ok(()));
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, consumers.stopped())
        .await
        .expect("the consumer stops promptly");
}

#[tokio::test]
async fn a_rejected_row_is_deleted_and_does_not_block_the_rows_behind_it() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pool = outbox_table(&db).await;
    insert(&pool, "publish", serde_json::json!({"n": 1}), 0).await;
    insert(&pool, "nope", serde_json::json!({"n": 2}), 0).await;
    insert(&pool, "publish", serde_json::json!({"n": 3}), 0).await;
    let recorder = Recorder::new();
    let (_consumers, _stop) = start("poison", postgres_settings(db.url()), &recorder);
    assert_eq!(recorder.wait_for(2).await, [1, 3]);
    wait_until_empty(&pool).await;
}

#[tokio::test]
async fn a_retried_row_keeps_its_place_and_nothing_is_applied_twice() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pool = outbox_table(&db).await;
    insert(&pool, "publish", serde_json::json!({"n": 1}), 0).await;
    insert(&pool, "publish", serde_json::json!({"n": 2, "retry": 3}), 0).await;
    insert(&pool, "publish", serde_json::json!({"n": 3}), 0).await;
    let recorder = Recorder::new();
    let (_consumers, _stop) = start("retry", postgres_settings(db.url()), &recorder);
    assert_eq!(recorder.wait_for(3).await, [1, 2, 3]);
    assert_eq!(
        recorder.attempts(1),
        1,
        "the row before was not rolled back"
    );
    assert_eq!(recorder.attempts(2), 4, "three retries, then applied");
    assert_eq!(recorder.attempts(3), 1, "the row behind waited its turn");
    wait_until_empty(&pool).await;
}

#[tokio::test]
async fn a_notification_wakes_the_partition_long_before_the_poll() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pool = outbox_table(&db).await;
    let recorder = Recorder::new();
    let settings = PostgresSettings {
        num_partitions: 3,
        partition_poll_interval: Duration::from_secs(60),
        partition_notification_channel: Some("outbox_change".into()),
        ..postgres_settings(db.url())
    };
    let (consumers, _stop) = start("notified", settings, &recorder);
    wait_until_reachable(&consumers, "notified").await;
    // Every partition has had its first, empty pass: the next poll is a minute away.
    for (n, partition) in [(1, 2), (2, 0)] {
        let inserted = Instant::now();
        let mut transaction = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO chat_outbox (method, payload, partition) VALUES ('publish', $1::jsonb, $2)")
            .bind(serde_json::json!({"n": n}).to_string())
            .bind(partition)
            .execute(&mut *transaction)
            .await
            .unwrap();
        sqlx::query("SELECT pg_notify('outbox_change', $1)")
            .bind(partition.to_string())
            .execute(&mut *transaction)
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        recorder.wait_for(n as usize).await;
        let took = inserted.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "row {n} took {took:?} after NOTIFY"
        );
    }
}

#[tokio::test]
async fn two_consumers_on_one_table_apply_every_row_once_in_partition_order() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pool = outbox_table(&db).await;
    let recorder = Recorder::new();
    let settings = PostgresSettings {
        num_partitions: 4,
        partition_select_limit: 7,
        partition_poll_interval: Duration::from_millis(20),
        ..postgres_settings(db.url())
    };
    let (_a, _stop_a) = start("shared-a", settings.clone(), &recorder);
    let (_b, _stop_b) = start("shared-b", settings, &recorder);
    // Written while both run, so both compete for every partition.
    for n in 0..400 {
        insert(&pool, "publish", serde_json::json!({"n": n}), n % 4).await;
    }
    let applied = recorder.wait_for(400).await;
    let mut sorted = applied.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..400).collect::<Vec<_>>(),
        "each row exactly once"
    );
    for partition in 0..4 {
        let in_partition: Vec<i64> = applied
            .iter()
            .copied()
            .filter(|n| n % 4 == partition)
            .collect();
        assert!(
            in_partition.is_sorted(),
            "partition {partition} out of order: {in_partition:?}"
        );
    }
    wait_until_empty(&pool).await;
}

#[tokio::test]
async fn an_unreachable_database_shows_in_the_status_with_its_cause() {
    let recorder = Recorder::new();
    // Nothing listens on port 1.
    let (consumers, stop) = start(
        "away",
        postgres_settings("postgres://postgres@127.0.0.1:1/x"),
        &recorder,
    );
    let deadline = Instant::now() + WAIT;
    let reason = loop {
        match &consumers.status()["away"] {
            Err(reason) if reason != NOT_CONNECTED_YET => break reason.clone(),
            _ => {
                assert!(Instant::now() < deadline, "{:?}", consumers.status());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    assert!(reason.starts_with("PostgreSQL: "), "{reason}");
    assert!(reason.to_lowercase().contains("refused"), "{reason}");
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, consumers.stopped())
        .await
        .expect("a consumer in backoff stops promptly");
}
