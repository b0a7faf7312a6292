//! `[[consumers]]`: outbox consumers, in Centrifugo's vocabulary, so a
//! Centrifugo consumer config reads the same (`type` is accepted for `kind`).

use super::parse_duration;
use herald_consumers::{ConsumerConfig, PostgresSettings, RedisStreamSettings, Source};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSection {
    /// Names the consumer in logs, metrics and `/health`.
    pub name: String,
    /// "postgresql" or "redis_stream".
    #[serde(alias = "type")]
    pub kind: String,
    /// Centrifugo's switch; here a consumer is on unless switched off.
    #[serde(default = "on")]
    pub enabled: bool,
    pub postgresql: Option<PostgresqlConsumer>,
    pub redis_stream: Option<RedisStreamConsumer>,
}

fn on() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresqlConsumer {
    pub dsn: String,
    pub outbox_table_name: String,
    #[serde(default = "one")]
    pub num_partitions: u32,
    #[serde(default = "hundred")]
    pub partition_select_limit: u32,
    #[serde(default = "poll_interval")]
    pub partition_poll_interval: String,
    #[serde(default)]
    pub partition_notification_channel: String,
}

fn one() -> u32 {
    1
}

fn hundred() -> u32 {
    100
}

fn poll_interval() -> String {
    "300ms".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStreamConsumer {
    #[serde(default = "redis_url")]
    pub redis_url: String,
    pub streams: Vec<String>,
    pub consumer_group: String,
    #[serde(default = "visibility_timeout")]
    pub visibility_timeout: String,
    #[serde(default = "method_value")]
    pub method_value: String,
    #[serde(default = "payload_value")]
    pub payload_value: String,
}

fn redis_url() -> String {
    "redis://127.0.0.1:6379".into()
}

fn visibility_timeout() -> String {
    "30s".into()
}

fn method_value() -> String {
    "method".into()
}

fn payload_value() -> String {
    "payload".into()
}

/// Reads and checks `[[consumers]]`, each entry on its own so one bad entry
/// does not hide the problems of the others. Checked here rather than in
/// `Config::validate`, where an entry that failed to parse is missing and
/// the positions in the key paths would no longer match the file.
pub(super) fn consumers_section(
    table: &toml::Table,
    errors: &mut Vec<String>,
) -> Vec<ConsumerSection> {
    let Some(value) = table.get("consumers") else {
        return Vec::new();
    };
    let Some(list) = value.as_array() else {
        errors.push("consumers: must be an array of tables ([[consumers]])".into());
        return Vec::new();
    };
    let mut consumers = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (index, item) in list.iter().enumerate() {
        match ConsumerSection::deserialize(item.clone()) {
            Ok(consumer) => {
                if !names.insert(consumer.name.clone()) {
                    errors.push(format!(
                        "consumers[{index}].name: `{}` is used twice; names must be unique",
                        consumer.name
                    ));
                }
                consumer.check(index, errors);
                consumers.push(consumer);
            }
            Err(e) => errors.push(format!("consumers[{index}]: {}", e.to_string().trim())),
        }
    }
    consumers
}

/// `HERALD_CONSUMERS_<NAME>_POSTGRESQL_DSN` and
/// `HERALD_CONSUMERS_<NAME>_REDIS_STREAM_REDIS_URL` (the name upper-cased,
/// `-` as `_`) replace that consumer's connection string, so its password
/// can stay out of the file.
pub(super) fn apply_env(table: &mut toml::Table, env: &HashMap<String, String>) {
    let Some(toml::Value::Array(consumers)) = table.get_mut("consumers") else {
        return;
    };
    for consumer in consumers.iter_mut().filter_map(toml::Value::as_table_mut) {
        let Some(name) = consumer.get("name").and_then(toml::Value::as_str) else {
            continue;
        };
        let prefix = format!(
            "HERALD_CONSUMERS_{}_",
            name.to_ascii_uppercase().replace('-', "_")
        );
        for (suffix, section, key) in [
            ("POSTGRESQL_DSN", "postgresql", "dsn"),
            ("REDIS_STREAM_REDIS_URL", "redis_stream", "redis_url"),
        ] {
            if let Some(value) = env.get(&format!("{prefix}{suffix}")) {
                let entry = consumer
                    .entry(section)
                    .or_insert_with(|| toml::Value::Table(Default::default()));
                if let toml::Value::Table(section) = entry {
                    section.insert(key.into(), toml::Value::String(value.clone()));
                }
            }
        }
    }
}

impl ConsumerSection {
    /// The consumer's settings; `Err` names the first bad key from
    /// `consumers[index]` on. `consumer_name` is this process's name in a
    /// Redis consumer group.
    pub fn settings(&self, index: usize, consumer_name: &str) -> Result<ConsumerConfig, String> {
        let key = format!("consumers[{index}]");
        let source = match (self.kind.as_str(), &self.postgresql, &self.redis_stream) {
            ("postgresql", Some(pg), None) => Source::Postgresql(PostgresSettings {
                dsn: pg.dsn.clone(),
                outbox_table_name: pg.outbox_table_name.clone(),
                num_partitions: pg.num_partitions,
                partition_select_limit: pg.partition_select_limit,
                partition_poll_interval: parse_duration(
                    &format!("{key}.postgresql.partition_poll_interval"),
                    &pg.partition_poll_interval,
                )?,
                partition_notification_channel: Some(pg.partition_notification_channel.clone())
                    .filter(|channel| !channel.is_empty()),
            }),
            ("redis_stream", None, Some(redis)) => Source::RedisStream(RedisStreamSettings {
                redis_url: redis.redis_url.clone(),
                streams: redis.streams.clone(),
                consumer_group: redis.consumer_group.clone(),
                consumer_name: consumer_name.to_string(),
                visibility_timeout: parse_duration(
                    &format!("{key}.redis_stream.visibility_timeout"),
                    &redis.visibility_timeout,
                )?,
                method_value: redis.method_value.clone(),
                payload_value: redis.payload_value.clone(),
            }),
            (kind @ ("postgresql" | "redis_stream"), _, _) => {
                return Err(format!(
                    "{key}: kind = \"{kind}\" needs a [consumers.{kind}] table, and no other"
                ));
            }
            (other, _, _) => {
                return Err(format!(
                    "{key}.kind: `{other}` is unknown; expected \"postgresql\" or \"redis_stream\""
                ));
            }
        };
        Ok(ConsumerConfig {
            name: self.name.clone(),
            source,
        })
    }

    /// Every problem of this consumer (when it is on), each as its own line
    /// naming its key path.
    fn check(&self, index: usize, errors: &mut Vec<String>) {
        if !self.enabled {
            return;
        }
        let config = match self.settings(index, "checkconfig") {
            Ok(config) => config,
            Err(problem) => {
                errors.push(problem);
                return;
            }
        };
        let section = match config.source {
            Source::Postgresql(_) => "postgresql.",
            Source::RedisStream(_) => "redis_stream.",
        };
        for problem in config.problems() {
            let problem = problem.to_string();
            // `name` sits on the consumer itself; every other key in its source table.
            let section = if problem.starts_with("name:") {
                ""
            } else {
                section
            };
            errors.push(format!("consumers[{index}].{section}{problem}"));
        }
    }
}

#[cfg(test)]
mod tests;
