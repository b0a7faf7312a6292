use crate::config::{Config, parse};
use herald_consumers::Source;
use std::collections::HashMap;
use std::time::Duration;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<String>> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse(text, "herald.toml", &env)
}

const BOTH_KINDS: &str = r#"
[[consumers]]
name = "app-outbox"
kind = "postgresql"
[consumers.postgresql]
dsn = "postgres://app:secret@db/app"
outbox_table_name = "chat_outbox"
num_partitions = 4
partition_select_limit = 50
partition_poll_interval = "1s"
partition_notification_channel = "centrifugo_partition_change"

[[consumers]]
name = "stream"
type = "redis_stream"
[consumers.redis_stream]
redis_url = "redis://127.0.0.1:6379/2"
streams = ["herald-outbox", "other"]
consumer_group = "herald"
"#;

#[test]
fn reads_both_kinds_with_centrifugo_names_and_defaults() {
    let config = load(BOTH_KINDS, &[]).unwrap();
    assert_eq!(config.consumers.len(), 2);
    let Source::Postgresql(pg) = config.consumers[0].settings(0, "node").unwrap().source else {
        panic!("the first is PostgreSQL");
    };
    assert_eq!(pg.outbox_table_name, "chat_outbox");
    assert_eq!((pg.num_partitions, pg.partition_select_limit), (4, 50));
    assert_eq!(pg.partition_poll_interval, Duration::from_secs(1));
    assert_eq!(
        pg.partition_notification_channel.as_deref(),
        Some("centrifugo_partition_change")
    );
    let Source::RedisStream(redis) = config.consumers[1].settings(1, "node").unwrap().source else {
        panic!("`type` is read as `kind`");
    };
    assert_eq!(redis.streams, ["herald-outbox", "other"]);
    assert_eq!(redis.consumer_name, "node");
    assert_eq!(redis.visibility_timeout, Duration::from_secs(30));
    assert_eq!(
        (redis.method_value.as_str(), redis.payload_value.as_str()),
        ("method", "payload")
    );
}

#[test]
fn postgresql_defaults_are_centrifugos() {
    let config = load(
        "[[consumers]]\nname = \"o\"\nkind = \"postgresql\"\n[consumers.postgresql]\n\
         dsn = \"postgres://db/app\"\noutbox_table_name = \"app.outbox\"\n",
        &[],
    );
    // `o` is too short a name: Centrifugo's rule, at least two characters.
    assert_eq!(
        config.unwrap_err(),
        ["consumers[0].name: `o` must be at least 2 characters of letters, digits, '_' and '-'"]
    );
    let config = load(
        "[[consumers]]\nname = \"outbox\"\nkind = \"postgresql\"\n[consumers.postgresql]\n\
         dsn = \"postgres://db/app\"\noutbox_table_name = \"app.outbox\"\n",
        &[],
    )
    .unwrap();
    let Source::Postgresql(pg) = config.consumers[0].settings(0, "node").unwrap().source else {
        panic!("PostgreSQL");
    };
    assert_eq!((pg.num_partitions, pg.partition_select_limit), (1, 100));
    assert_eq!(pg.partition_poll_interval, Duration::from_millis(300));
    assert_eq!(pg.partition_notification_channel, None);
}

#[test]
fn every_problem_names_its_key_path() {
    let errors = load(
        r#"
[[consumers]]
name = "bad-table"
kind = "postgresql"
[consumers.postgresql]
dsn = "mysql://u:hunter2@db/app"
outbox_table_name = "outbox; DROP TABLE users"
partition_poll_interval = "soon"

[[consumers]]
name = "bad-table"
kind = "kafka"

[[consumers]]
name = "no-table"
kind = "redis_stream"

[[consumers]]
name = "typo"
kind = "postgresql"
[consumers.postgresql]
dsn = "postgres://db/app"
outbox_table = "x"

[[consumers]]
name = "stream"
kind = "redis_stream"
[consumers.redis_stream]
streams = []
consumer_group = "herald"
visibility_timeout = "10ms"
"#,
        &[],
    )
    .unwrap_err();
    let all = errors.join("\n");
    for expected in [
        "consumers[3]: unknown field `outbox_table`",
        "consumers[0].postgresql.partition_poll_interval: `soon` is not a duration",
        "consumers[1].name: `bad-table` is used twice",
        "consumers[1].kind: `kafka` is unknown; expected \"postgresql\" or \"redis_stream\"",
        "consumers[2]: kind = \"redis_stream\" needs a [consumers.redis_stream] table",
        "consumers[4].redis_stream.streams: name at least one stream",
        "consumers[4].redis_stream.visibility_timeout: must be at least 1s",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    assert!(!all.contains("hunter2"), "a password never shows:\n{all}");

    let errors = load(
        "[[consumers]]\nname = \"outbox\"\nkind = \"postgresql\"\n[consumers.postgresql]\n\
         dsn = \"mysql://db/app\"\noutbox_table_name = \"outbox; DROP TABLE users\"\nnum_partitions = 0\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        errors,
        [
            "consumers[0].postgresql.dsn: must start with postgres:// or postgresql://",
            "consumers[0].postgresql.outbox_table_name: `outbox; DROP TABLE users` must be a plain \
             SQL identifier (letters, digits, '_', not starting with a digit, at most 63 bytes), \
             optionally schema-qualified as `schema.table`",
            "consumers[0].postgresql.num_partitions: 0 must be between 1 and 64",
        ]
    );
}

#[test]
fn a_switched_off_consumer_is_not_checked_beyond_its_shape() {
    let config = load(
        "[[consumers]]\nname = \"later\"\nkind = \"postgresql\"\nenabled = false\n\
         [consumers.postgresql]\ndsn = \"\"\noutbox_table_name = \"\"\n",
        &[],
    )
    .unwrap();
    assert!(!config.consumers[0].enabled);
}

#[test]
fn the_environment_supplies_connection_strings_by_consumer_name() {
    let config = load(
        BOTH_KINDS,
        &[
            (
                "HERALD_CONSUMERS_APP_OUTBOX_POSTGRESQL_DSN",
                "postgres://from-env/app",
            ),
            (
                "HERALD_CONSUMERS_STREAM_REDIS_STREAM_REDIS_URL",
                "redis://from-env:6380",
            ),
            ("HERALD_API_KEY", "still-works"),
        ],
    )
    .unwrap();
    assert_eq!(config.api.key, "still-works");
    let pg = config.consumers[0].postgresql.as_ref().unwrap();
    assert_eq!(pg.dsn, "postgres://from-env/app");
    let redis = config.consumers[1].redis_stream.as_ref().unwrap();
    assert_eq!(redis.redis_url, "redis://from-env:6380");
}

#[test]
fn consumers_must_be_an_array_of_tables() {
    let errors = load("consumers = \"app\"\n", &[]).unwrap_err();
    assert_eq!(
        errors,
        ["consumers: must be an array of tables ([[consumers]])"]
    );
}
