//! What a consumer reads from, and the checks that keep bad settings (above
//! all a table name that would be spliced into SQL) from ever running.

use sqlx::postgres::PgConnectOptions;
use std::str::FromStr;
use std::time::Duration;

/// One consumer: a name for logs, metrics and `/health`, and its source.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub name: String,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub enum Source {
    Postgresql(PostgresSettings),
    RedisStream(RedisStreamSettings),
}

/// A PostgreSQL outbox table in Centrifugo's format:
///
/// ```sql
/// CREATE TABLE chat_outbox (
///     id BIGSERIAL PRIMARY KEY,
///     method text NOT NULL,
///     payload JSONB NOT NULL,
///     partition INTEGER NOT NULL default 0,
///     created_at timestamptz NOT NULL DEFAULT now()
/// );
/// ```
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// `postgres://` or `postgresql://`.
    pub dsn: String,
    /// A plain identifier, optionally schema-qualified (`app.chat_outbox`);
    /// checked by [`is_plain_identifier`] because it is spliced into SQL.
    pub outbox_table_name: String,
    /// Partitions `0..num_partitions` are consumed concurrently, each in
    /// `id` order, each over a connection of its own.
    pub num_partitions: u32,
    /// Rows taken per transaction.
    pub partition_select_limit: u32,
    /// How often an idle partition looks for rows.
    pub partition_poll_interval: Duration,
    /// When set, `LISTEN` here and look at once when notified.
    pub partition_notification_channel: Option<String>,
}

/// Streams read through one consumer group.
#[derive(Debug, Clone)]
pub struct RedisStreamSettings {
    /// `redis://[user:password@]host:port[/db]`.
    pub redis_url: String,
    pub streams: Vec<String>,
    pub consumer_group: String,
    /// This process's name inside the group; distinct per process, so that
    /// what one process left pending is visibly someone else's to reclaim.
    pub consumer_name: String,
    /// How long an entry may stay delivered but unacknowledged before
    /// another consumer reclaims it (`XAUTOCLAIM` min idle time).
    pub visibility_timeout: Duration,
    /// The entry field holding the method (Centrifugo: `method_value`).
    pub method_value: String,
    /// The entry field holding the JSON payload (Centrifugo: `payload_value`).
    pub payload_value: String,
}

/// One bad setting; the message starts with the key it is about, so the
/// server can prefix it with where the consumer sits in its config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("name: `{0}` must be at least 2 characters of letters, digits, '_' and '-'")]
    Name(String),
    // Connection strings are never echoed: they may hold a password.
    #[error("dsn: must start with postgres:// or postgresql://")]
    DsnScheme,
    #[error("dsn: not a valid PostgreSQL URL: {0}")]
    DsnInvalid(String),
    #[error(
        "outbox_table_name: `{0}` must be a plain SQL identifier (letters, digits, '_', not \
         starting with a digit, at most {IDENTIFIER_MAX} bytes), optionally schema-qualified as \
         `schema.table`"
    )]
    TableName(String),
    #[error("num_partitions: {0} must be between 1 and {MAX_PARTITIONS}")]
    Partitions(u32),
    #[error("partition_select_limit: {0} must be between 1 and {MAX_SELECT_LIMIT}")]
    SelectLimit(u32),
    #[error("partition_poll_interval: must be above zero")]
    PollInterval,
    #[error(
        "partition_notification_channel: `{0}` must be 1 to {IDENTIFIER_MAX} bytes; leave it out to poll only"
    )]
    NotificationChannel(String),
    #[error(
        "redis_url: must start with redis:// (TLS is not built in; terminate it in front of Redis)"
    )]
    RedisScheme,
    #[error("redis_url: not a valid Redis URL: {0}")]
    RedisInvalid(String),
    #[error("streams: name at least one stream")]
    NoStreams,
    #[error("streams: `{0}` is listed twice")]
    DuplicateStream(String),
    #[error("consumer_group: must not be empty")]
    ConsumerGroup,
    #[error("visibility_timeout: must be at least 1s, or entries would be reclaimed mid-apply")]
    VisibilityTimeout,
    #[error("{key}: must not be empty")]
    EmptyField { key: &'static str },
}

/// PostgreSQL truncates longer identifiers, so a longer name would quietly
/// mean another table or channel.
const IDENTIFIER_MAX: usize = 63;
/// Each partition holds a connection of its own.
const MAX_PARTITIONS: u32 = 64;
const MAX_SELECT_LIMIT: u32 = 10_000;

impl ConsumerConfig {
    /// Every problem, each naming its key relative to the consumer
    /// (`name`, `dsn`, `streams`, ...).
    pub fn problems(&self) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        if !is_consumer_name(&self.name) {
            problems.push(SettingsError::Name(self.name.clone()));
        }
        match &self.source {
            Source::Postgresql(settings) => settings.check(&mut problems),
            Source::RedisStream(settings) => settings.check(&mut problems),
        }
        problems
    }
}

impl PostgresSettings {
    fn check(&self, problems: &mut Vec<SettingsError>) {
        if let Err(problem) = self.connect_options() {
            problems.push(problem);
        }
        if !is_plain_identifier(&self.outbox_table_name) {
            problems.push(SettingsError::TableName(self.outbox_table_name.clone()));
        }
        if !(1..=MAX_PARTITIONS).contains(&self.num_partitions) {
            problems.push(SettingsError::Partitions(self.num_partitions));
        }
        if !(1..=MAX_SELECT_LIMIT).contains(&self.partition_select_limit) {
            problems.push(SettingsError::SelectLimit(self.partition_select_limit));
        }
        if self.partition_poll_interval.is_zero() {
            problems.push(SettingsError::PollInterval);
        }
        if let Some(channel) = &self.partition_notification_channel
            && (channel.is_empty() || channel.len() > IDENTIFIER_MAX)
        {
            problems.push(SettingsError::NotificationChannel(channel.clone()));
        }
    }

    pub(crate) fn connect_options(&self) -> Result<PgConnectOptions, SettingsError> {
        let scheme = self.dsn.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("postgres" | "postgresql")) {
            return Err(SettingsError::DsnScheme);
        }
        let options = PgConnectOptions::from_str(&self.dsn)
            .map_err(|source| SettingsError::DsnInvalid(source.to_string()))?;
        // Shows who holds the outbox's row locks in pg_stat_activity.
        Ok(options.application_name("herald outbox consumer"))
    }
}

impl RedisStreamSettings {
    fn check(&self, problems: &mut Vec<SettingsError>) {
        if let Err(problem) = self.client() {
            problems.push(problem);
        }
        if self.streams.is_empty() {
            problems.push(SettingsError::NoStreams);
        }
        for (index, stream) in self.streams.iter().enumerate() {
            if stream.is_empty() {
                problems.push(SettingsError::EmptyField { key: "streams" });
            } else if self.streams[..index].contains(stream) {
                problems.push(SettingsError::DuplicateStream(stream.clone()));
            }
        }
        if self.consumer_group.is_empty() {
            problems.push(SettingsError::ConsumerGroup);
        }
        if self.visibility_timeout < Duration::from_secs(1) {
            problems.push(SettingsError::VisibilityTimeout);
        }
        for (key, value) in [
            ("method_value", &self.method_value),
            ("payload_value", &self.payload_value),
            ("consumer_name", &self.consumer_name),
        ] {
            if value.is_empty() {
                problems.push(SettingsError::EmptyField { key });
            }
        }
    }

    pub(crate) fn client(&self) -> Result<redis::Client, SettingsError> {
        if !self.redis_url.starts_with("redis://") {
            return Err(SettingsError::RedisScheme);
        }
        redis::Client::open(self.redis_url.as_str())
            .map_err(|source| SettingsError::RedisInvalid(source.to_string()))
    }
}

/// Letters, digits, `_` and `-`, at least two: safe in a metric label, a
/// log line and an environment variable name (with `-` as `_`).
pub fn is_consumer_name(name: &str) -> bool {
    name.len() >= 2
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `table` or `schema.table`, each part an unquoted SQL identifier: ASCII
/// letters, digits and `_`, not starting with a digit. Nothing else can
/// appear, so the name is safe to splice into a statement (PostgreSQL folds
/// it to lower case, as it does in the user's own unquoted DDL).
pub fn is_plain_identifier(name: &str) -> bool {
    let mut parts = name.split('.');
    let valid = |part: &str| {
        part.len() <= IDENTIFIER_MAX
            && part
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match (parts.next(), parts.next(), parts.next()) {
        (Some(table), None, None) => valid(table),
        (Some(schema), Some(table), None) => valid(schema) && valid(table),
        _ => false,
    }
}
