//! Herald's scale-out broker on Redis: standalone, Sentinel or Cluster.
//!
//! Every node publishes through one Lua script per channel that assigns the
//! offset, appends to the channel's stream and sends the pub/sub message in one
//! step. Every node subscribes to the channels it has subscribers on and keeps
//! a mirror of their history (see `herald_core::mirror`), so recovery runs on
//! local memory. One supervisor task per node owns the connection: it detects
//! loss (a dropped connection, failed or missing heartbeats), reconnects,
//! resubscribes, reloads each mirror and tells subscribers that may have
//! missed something to recover.
//!
//! # Layout
//! - this file: settings, the shared state, and the `Broker` methods nodes call.
//! - `connection.rs`: connecting to each topology as one connection type.
//! - `supervisor.rs`: the task that owns subscriptions, mirrors and failure handling.
//! - `scripts.rs`: the Lua scripts.
//! - `keys.rs`: key and channel names, hash-tagged per channel.
//! - `wire.rs`: the messages on a channel's pub/sub channel and in its stream.
//! - `nodes.rs`: presence entries, node announcements and commands between nodes.
//! - `status.rs`: online status per user across nodes.
#![forbid(unsafe_code)]

mod connection;
mod keys;
mod nodes;
mod scripts;
mod status;
mod supervisor;
mod wire;

pub use connection::{Topology, redact};

use connection::Conn;
use herald_core::broker::{Broker, BrokerPublish, NodeCommand};
use herald_core::durable::BoxFuture;
use herald_core::history::{Position, new_epoch, now_ms};
use herald_core::metrics as names;
use herald_core::node::{BrokerContext, NodeInfo};
use herald_core::status::UserStatus;
use herald_protocol::ErrorCode;
use herald_protocol::push::ClientInfo;
use keys::Keys;
use scripts::Scripts;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub topology: Topology,
    /// Starts every key and channel name, so apps can share one Redis.
    pub prefix: String,
    /// Connect and response timeout; also how long a subscribe waits for a
    /// channel while Redis is unreachable.
    pub timeout: Duration,
    /// How often the node checks its connection and announces itself.
    pub heartbeat: Duration,
    /// A presence entry not refreshed for this long (its node died) is dropped.
    pub presence_ttl: Duration,
    /// How long a channel's epoch and top offset outlive its last publish.
    pub history_meta_ttl: Duration,
    /// How long a channel stays subscribed after its last local subscriber
    /// leaves, so churn does not resubscribe and reload it each time.
    pub linger: Duration,
}

impl RedisSettings {
    pub fn new(topology: Topology) -> Self {
        Self {
            topology,
            prefix: "herald".into(),
            timeout: Duration::from_secs(3),
            heartbeat: Duration::from_secs(1),
            presence_ttl: Duration::from_secs(60),
            history_meta_ttl: Duration::from_secs(30 * 24 * 3600),
            linger: Duration::from_secs(5),
        }
    }
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[error("broker: cannot connect to {target}: {source}")]
pub struct ConnectError {
    target: String,
    #[source]
    source: redis::RedisError,
}

/// One node's link to Redis. Create it with `connect`, hand it to
/// `Node::with_broker`, then `start` it with the node's context.
pub struct RedisBroker {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    settings: RedisSettings,
    keys: Keys,
    scripts: Scripts,
    context: OnceLock<BrokerContext>,
    /// The live connection; `None` while it is being re-established.
    conn: Mutex<Option<Conn>>,
    /// Why the broker is unusable, while it is.
    down: Mutex<Option<String>>,
    watches: Mutex<HashMap<String, Watch>>,
    /// Numbers mirror loads, so only the latest load of a channel applies.
    generations: AtomicU64,
    stopped: AtomicBool,
    events: mpsc::UnboundedSender<supervisor::Event>,
    /// Taken by `start`.
    event_receiver: Mutex<Option<mpsc::UnboundedReceiver<supervisor::Event>>>,
}

#[derive(Default)]
pub(crate) struct Watch {
    count: usize,
    ready: bool,
    waiters: Vec<oneshot::Sender<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> ErrorCode {
    tracing::warn!(%error, "broker: {what} failed; answering with a temporary error");
    ::metrics::counter!(names::BROKER_ERRORS, "op" => what.to_string()).increment(1);
    ErrorCode::INTERNAL
}

impl RedisBroker {
    /// Connects once, so a wrong address fails start-up with a clear error
    /// instead of a node that never becomes healthy.
    pub async fn connect(settings: RedisSettings) -> Result<Self, ConnectError> {
        connection::connect(&settings.topology, settings.timeout, None)
            .await
            .map_err(|source| ConnectError {
                target: settings.topology.describe(),
                source,
            })?;
        let (events, event_receiver) = mpsc::unbounded_channel();
        Ok(Self {
            shared: Arc::new(Shared {
                keys: Keys::new(&settings.prefix),
                scripts: Scripts::new(),
                settings,
                context: OnceLock::new(),
                conn: Mutex::new(None),
                down: Mutex::new(Some("connecting to redis".into())),
                watches: Mutex::default(),
                generations: AtomicU64::new(1),
                stopped: AtomicBool::new(false),
                events,
                event_receiver: Mutex::new(Some(event_receiver)),
            }),
        })
    }

    /// Starts the supervisor for the node `context` describes; resolves once
    /// the first connection is up, so the node starts healthy.
    pub async fn start(&self, context: BrokerContext) {
        let Some(events) = lock(&self.shared.event_receiver).take() else {
            return;
        };
        let _ = self.shared.context.set(context);
        let (up, is_up) = oneshot::channel();
        tokio::spawn(supervisor::run(self.shared.clone(), events, up));
        let _ = tokio::time::timeout(self.shared.settings.timeout, is_up).await;
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        let _ = self.shared.events.send(supervisor::Event::Stop);
    }
}

impl Shared {
    /// The live connection for operation `op`, or a temporary error (counted
    /// under `op`) while the broker is down.
    fn conn(&self, op: &str) -> Result<Conn, ErrorCode> {
        if let Some(reason) = lock(&self.down).as_ref() {
            return Err(unavailable(op, reason));
        }
        lock(&self.conn)
            .clone()
            .ok_or_else(|| unavailable(op, "not connected"))
    }

    fn context(&self) -> &BrokerContext {
        self.context.get().expect("started before use")
    }

    fn secs(duration: Duration) -> u64 {
        duration.as_secs().max(1)
    }
}

/// `"<offset> <epoch>"`, as the publish script answers.
fn parse_position(text: &str) -> Option<Position> {
    let (offset, epoch) = text.split_once(' ')?;
    Some(Position {
        offset: offset.parse().ok()?,
        epoch: epoch.into(),
    })
}

impl Broker for RedisBroker {
    fn publish<'a>(
        &'a self,
        request: BrokerPublish<'a>,
    ) -> BoxFuture<'a, Result<Option<Position>, ErrorCode>> {
        Box::pin(async move {
            let mut conn = self.shared.conn("publish")?;
            let keys = &self.shared.keys;
            let settings = &self.shared.settings;
            let channel = request.channel;
            let object = request.draft.encode(0);
            let dedupe = request.idempotency_key.is_some();
            let idempotency_key = match request.idempotency_key {
                Some(key) => keys.idempotency(channel, key),
                None => keys.meta(channel),
            };
            let idempotency_ttl = Shared::secs(herald_core::engine::IDEMPOTENCY_WINDOW);
            let publish_command = conn.publish_command();
            let Some(retention) = request.history else {
                let mut invocation = self.shared.scripts.publish_ephemeral.key(idempotency_key);
                invocation
                    .arg(wire::ephemeral(&object))
                    .arg(keys.pubsub(channel))
                    .arg(publish_command)
                    .arg(idempotency_ttl)
                    .arg(if dedupe { "1" } else { "0" });
                let _: i64 = invocation
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| unavailable("publish", e))?;
                return Ok(None);
            };
            let meta_ttl = settings.history_meta_ttl.max(retention.ttl);
            let mut invocation = self.shared.scripts.publish.key(keys.meta(channel));
            invocation
                .key(keys.stream(channel))
                .key(idempotency_key)
                .arg(object.as_ref())
                .arg(retention.size)
                .arg(retention.ttl.as_millis().max(1) as u64)
                .arg(Shared::secs(meta_ttl))
                .arg(idempotency_ttl)
                .arg(keys.pubsub(channel))
                .arg(publish_command)
                .arg(now_ms())
                .arg(&*new_epoch())
                .arg(if dedupe { "1" } else { "0" });
            let (_, position): (String, String) = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(|e| unavailable("publish", e))?;
            parse_position(&position)
                .map(Some)
                .ok_or_else(|| unavailable("publish", format!("bad answer {position:?}")))
        })
    }

    fn remove_history<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), ErrorCode>> {
        Box::pin(async move {
            let mut conn = self.shared.conn("history_remove")?;
            let keys = &self.shared.keys;
            let mut invocation = self.shared.scripts.remove.key(keys.meta(channel));
            invocation
                .key(keys.stream(channel))
                .arg(&*new_epoch())
                .arg(Shared::secs(self.shared.settings.history_meta_ttl))
                .arg(keys.pubsub(channel))
                .arg(conn.publish_command());
            let _: i64 = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(|e| unavailable("history_remove", e))?;
            Ok(())
        })
    }

    fn joined(&self, channel: &str, presence: Option<&ClientInfo>, join: Option<bytes::Bytes>) {
        if let Ok(conn) = self.shared.conn("join_leave") {
            let change = nodes::PresenceChange::Joined(presence.cloned());
            nodes::spawn_membership(&self.shared, conn, channel, change, join);
        }
    }

    fn left(&self, channel: &str, client: &str, presence: bool, leave: Option<bytes::Bytes>) {
        if let Ok(conn) = self.shared.conn("join_leave") {
            let change = nodes::PresenceChange::Left(presence.then(|| client.to_string()));
            nodes::spawn_membership(&self.shared, conn, channel, change, leave);
        }
    }

    fn watch(&self, channel: &str) {
        let mut watches = lock(&self.shared.watches);
        let watch = watches.entry(channel.to_string()).or_default();
        watch.count += 1;
        if watch.count == 1 {
            let _ = self
                .shared
                .events
                .send(supervisor::Event::Watch(channel.to_string()));
        }
    }

    fn unwatch(&self, channel: &str) {
        let mut watches = lock(&self.shared.watches);
        let Some(watch) = watches.get_mut(channel) else {
            return;
        };
        watch.count = watch.count.saturating_sub(1);
        if watch.count == 0 {
            let events = self.shared.events.clone();
            let channel = channel.to_string();
            let linger = self.shared.settings.linger;
            tokio::spawn(async move {
                tokio::time::sleep(linger).await;
                let _ = events.send(supervisor::Event::Unwatch(channel));
            });
        }
    }

    fn is_ready(&self, channel: &str) -> bool {
        lock(&self.shared.watches)
            .get(channel)
            .is_some_and(|w| w.ready)
    }

    fn until_ready<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), ErrorCode>> {
        Box::pin(async move {
            let waiting = {
                let mut watches = lock(&self.shared.watches);
                let watch = watches.entry(channel.to_string()).or_default();
                if watch.ready {
                    return Ok(());
                }
                let (wake, waiting) = oneshot::channel();
                watch.waiters.push(wake);
                waiting
            };
            match tokio::time::timeout(self.shared.settings.timeout, waiting).await {
                Ok(Ok(())) => Ok(()),
                _ => Err(unavailable(
                    "subscribe",
                    format!("channel {channel} not ready"),
                )),
            }
        })
    }

    fn presence<'a>(
        &'a self,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ClientInfo>, ErrorCode>> {
        Box::pin(async move {
            nodes::presence(&self.shared, self.shared.conn("presence")?, channel).await
        })
    }

    fn user_connected<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<bool, ErrorCode>> {
        Box::pin(async move {
            status::online(&self.shared, &mut self.shared.conn("user_status")?, user).await
        })
    }

    fn user_disconnected<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<bool, ErrorCode>> {
        Box::pin(async move {
            status::offline(&self.shared, &mut self.shared.conn("user_status")?, user).await
        })
    }

    fn user_status<'a>(
        &'a self,
        users: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<UserStatus>, ErrorCode>> {
        Box::pin(async move {
            status::statuses(&self.shared, self.shared.conn("user_status")?, users).await
        })
    }

    fn command_nodes(&self, command: &NodeCommand) {
        if let Ok(conn) = self.shared.conn("node_command") {
            nodes::spawn_command(&self.shared, conn, command);
        }
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeInfo>, ErrorCode>> {
        Box::pin(async move { nodes::list(&self.shared, self.shared.conn("info")?).await })
    }

    fn health(&self) -> Result<(), String> {
        match lock(&self.shared.down).as_ref() {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
