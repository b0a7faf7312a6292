//! One server's shared state, and the operations the server API performs on it.

use crate::broker::{Broker, BrokerPublish, NodeCommand, WatchGuard};
use crate::channel::{self, Namespaces};
use crate::durable::{DurableLog, Snapshot};
use crate::engine::{Draft, Engine, Streams};
use crate::history::{HistoryError, HistoryQuery, Position, StoredPublication, now_ms};
use crate::hub::{Audience, Emulated, Hub};
use crate::metrics;
use crate::outbox::OutboxLimits;
use crate::token::TokenVerifier;
use bytes::Bytes;
use herald_protocol::push::{self, ClientInfo};
use herald_protocol::reply::PresenceStatsResult;
use herald_protocol::{Disconnect, ErrorCode};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per-connection limits and timers.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    pub allow_anonymous: bool,
    pub channel_limit: usize,
    /// 0 means unlimited.
    pub user_connection_limit: usize,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    /// A connection that has not sent `connect` by then is closed with 3502.
    pub stale_timeout: Duration,
    /// Grace after `exp` for the client's `refresh` to arrive.
    pub expired_close_delay: Duration,
    pub outbox: OutboxLimits,
    /// Command rate limits; empty by default.
    pub commands: crate::ratelimit::CommandLimits,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            allow_anonymous: false,
            channel_limit: 128,
            user_connection_limit: 0,
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(10),
            stale_timeout: Duration::from_secs(10),
            expired_close_delay: Duration::from_secs(25),
            outbox: OutboxLimits::default(),
            commands: Default::default(),
        }
    }
}

/// Connections touch their presence entries at every ping, so entries live for
/// a few ping intervals and never less than the default.
fn presence_ttl(limits: &ClientLimits) -> Duration {
    (limits.ping_interval * 3).max(crate::hub::DEFAULT_PRESENCE_TTL)
}

pub struct NodeConfig {
    pub name: String,
    pub namespaces: Namespaces,
    pub limits: ClientLimits,
}

pub struct Node {
    pub id: String,
    pub name: String,
    pub version: &'static str,
    pub namespaces: Namespaces,
    pub limits: ClientLimits,
    pub verifier: TokenVerifier,
    /// The per-user command buckets (`limits.commands.user`).
    pub user_limiters: crate::ratelimit::UserLimiters,
    pub hub: Arc<Hub>,
    pub engine: Engine,
    /// The scale-out broker; `None` on the single-node engines.
    pub(crate) broker: Option<Arc<dyn Broker>>,
    pub(crate) last_seen: crate::status::LastSeen,
    /// The inbox and chat, once the server plugs them in.
    pub(crate) extension: std::sync::OnceLock<Arc<dyn crate::extension::Extension>>,
    /// Told about connections and subscriptions, for webhooks.
    pub(crate) observer: std::sync::OnceLock<Arc<dyn crate::extension::Observer>>,
    /// The application backend's proxies, once the server plugs them in.
    pub(crate) proxy: std::sync::OnceLock<Arc<dyn crate::proxy::ProxyTransport>>,
    started: Instant,
}

/// What a broker needs of the node it serves.
#[derive(Clone)]
pub struct BrokerContext {
    pub node_id: String,
    pub hub: Arc<Hub>,
    pub streams: Arc<Streams>,
    pub namespaces: Namespaces,
    pub name: String,
    pub started: Instant,
}

/// How a publish should be made.
#[derive(Debug, Default)]
pub struct PublishOptions {
    pub skip_history: bool,
    pub idempotency_key: Option<String>,
}

/// One node's counts, as the `info` API reports them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    pub uid: String,
    pub name: String,
    pub version: String,
    pub num_clients: usize,
    pub num_users: usize,
    pub num_channels: usize,
    pub num_subs: usize,
    pub uptime: u64,
}

impl NodeInfo {
    pub fn of(hub: &Hub, uid: &str, name: &str, started: Instant) -> Self {
        Self {
            uid: uid.to_string(),
            name: name.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            num_clients: hub.num_clients(),
            num_users: hub.num_users(),
            num_channels: hub.num_channels(),
            num_subs: hub.num_subscriptions(),
            uptime: started.elapsed().as_secs(),
        }
    }
}

impl Node {
    /// A node whose history lives in memory only.
    pub fn new(config: NodeConfig, verifier: TokenVerifier) -> Self {
        let hub = Arc::new(Hub::new(presence_ttl(&config.limits)));
        let engine = Engine::in_memory(hub.clone());
        Self::assemble(config, verifier, hub, engine)
    }

    /// A node whose history is committed to `log` before it is acknowledged;
    /// `snapshot` is what the log held at start-up.
    pub fn durable(
        config: NodeConfig,
        verifier: TokenVerifier,
        log: Arc<dyn DurableLog>,
        snapshot: Snapshot,
    ) -> Self {
        let hub = Arc::new(Hub::default());
        let namespaces = config.namespaces.clone();
        let retention_of = move |channel: &str| {
            namespaces
                .options(channel)
                .map(|o| o.retention())
                .unwrap_or_default()
        };
        let engine = Engine::durable(hub.clone(), log, snapshot, retention_of);
        Self::assemble(config, verifier, hub, engine)
    }

    /// A node that publishes through `broker` and mirrors its history; start the
    /// broker with `broker_context` afterwards.
    pub fn with_broker(
        config: NodeConfig,
        verifier: TokenVerifier,
        broker: Arc<dyn Broker>,
    ) -> Self {
        let mut node = Self::new(config, verifier);
        node.broker = Some(broker);
        node
    }

    pub fn broker_context(&self) -> BrokerContext {
        BrokerContext {
            node_id: self.id.clone(),
            hub: self.hub.clone(),
            streams: self.engine.shared_streams(),
            namespaces: self.namespaces.clone(),
            name: self.name.clone(),
            started: self.started,
        }
    }

    fn assemble(
        config: NodeConfig,
        verifier: TokenVerifier,
        hub: Arc<Hub>,
        engine: Engine,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            name: config.name,
            version: env!("CARGO_PKG_VERSION"),
            namespaces: config.namespaces,
            user_limiters: crate::ratelimit::UserLimiters::new(&config.limits.commands),
            limits: config.limits,
            verifier,
            hub,
            engine,
            broker: None,
            last_seen: Default::default(),
            extension: Default::default(),
            observer: Default::default(),
            proxy: Default::default(),
            started: Instant::now(),
        }
    }

    pub fn checked_channel(&self, channel: &str) -> Result<&crate::ChannelOptions, ErrorCode> {
        channel::validate_name(channel)?;
        self.namespaces.options(channel)
    }

    /// Publishes to a channel: into its history when the namespace keeps one
    /// (returning the position), straight to subscribers otherwise.
    pub async fn publish(
        &self,
        channel: &str,
        draft: Draft,
        options: PublishOptions,
    ) -> Result<Option<Position>, ErrorCode> {
        let retention = self.checked_channel(channel)?.retention();
        ::metrics::counter!(metrics::PUBLICATIONS).increment(1);
        if let Some(broker) = &self.broker {
            let stored = retention.enabled() && !options.skip_history;
            let request = BrokerPublish {
                channel,
                draft: &draft,
                history: stored.then_some(retention),
                idempotency_key: options.idempotency_key.as_deref(),
            };
            return broker.publish(request).await;
        }
        if retention.enabled() && !options.skip_history {
            let position = self
                .engine
                .publish(channel, draft, retention, options.idempotency_key)
                .await?;
            return Ok(Some(position));
        }
        let streams = self.engine.streams();
        let now = now_ms();
        if let Some(key) = &options.idempotency_key
            && streams.remembered(channel, key, now).is_some()
        {
            return Ok(None);
        }
        let message = push::publication_from_object(channel, &draft.encode(0));
        let delivered = self.hub.broadcast(channel, &message, Audience::Everyone);
        ::metrics::counter!(metrics::MESSAGES_SENT).increment(delivered as u64);
        if let Some(key) = options.idempotency_key {
            let deadline = now + crate::engine::IDEMPOTENCY_WINDOW.as_millis() as u64;
            streams.remember(channel, key, Position::default(), deadline);
        }
        Ok(None)
    }

    /// Reads a channel's history; 108 when the namespace keeps none.
    pub async fn history(
        &self,
        channel: &str,
        query: &HistoryQuery,
    ) -> Result<(Vec<Arc<StoredPublication>>, Position), ErrorCode> {
        let retention = self.checked_channel(channel)?.retention();
        if !retention.enabled() {
            return Err(ErrorCode::NOT_AVAILABLE);
        }
        let _ready = self.ready(channel).await?;
        self.engine.streams().locked(channel, |stream| {
            let publications = stream
                .read(query, retention, now_ms())
                .map_err(|e| match e {
                    HistoryError::UnrecoverablePosition => ErrorCode::UNRECOVERABLE_POSITION,
                })?;
            Ok((publications, stream.position()))
        })
    }

    /// Waits until the broker has the channel ready here; the guard keeps it so.
    pub async fn ready(&self, channel: &str) -> Result<Option<WatchGuard>, ErrorCode> {
        let Some(broker) = &self.broker else {
            return Ok(None);
        };
        let guard = WatchGuard::new(broker.clone(), channel);
        broker.until_ready(channel).await?;
        Ok(Some(guard))
    }

    /// Whether a subscribe to `channel` can be answered without waiting.
    pub fn channel_ready(&self, channel: &str) -> bool {
        self.broker.as_ref().is_none_or(|b| b.is_ready(channel))
    }

    /// A local subscriber is about to register: the broker watches the
    /// channel for it.
    pub fn track_subscriber(&self, channel: &str) {
        if let Some(broker) = &self.broker {
            broker.watch(channel);
        }
    }

    /// A local subscriber joined: its presence entry and join push (when the
    /// namespace has them) go to every node.
    pub fn subscriber_joined(
        &self,
        channel: &str,
        presence: Option<&ClientInfo>,
        join: Option<Bytes>,
    ) {
        match &self.broker {
            Some(broker) => broker.joined(channel, presence, join),
            None => {
                if let Some(join) = join {
                    self.hub.broadcast(channel, &join, Audience::JoinLeave);
                }
            }
        }
    }

    /// A local subscriber left: the reverse of `track_subscriber` and
    /// `subscriber_joined`.
    pub fn subscriber_left(
        &self,
        channel: &str,
        client: &str,
        had_presence: bool,
        leave: Option<Bytes>,
    ) {
        match &self.broker {
            Some(broker) => {
                broker.left(channel, client, had_presence, leave);
                broker.unwatch(channel);
            }
            None => {
                if let Some(leave) = leave {
                    self.hub.broadcast(channel, &leave, Audience::JoinLeave);
                }
            }
        }
    }

    /// Forgets idle users' rate-limit buckets, trims expired history from
    /// streams nobody publishes to and, on the in-memory engine alone, forgets streams idle past their namespace's
    /// `history_meta_ttl`. A durable stream's position must match what
    /// storage holds, and a broker's mirror is dropped by the mirror itself,
    /// so those keep theirs. Returns how many streams remain.
    pub fn sweep_history(&self) -> usize {
        self.user_limiters.forget_idle();
        let may_forget = self.broker.is_none() && !self.engine.is_durable();
        self.engine
            .streams()
            .sweep(crate::history::now_ms(), |channel| {
                let options = self.namespaces.options(channel).ok()?;
                let forget_after = options.history_meta_ttl().filter(|_| may_forget);
                Some((options.retention(), forget_after))
            })
    }

    /// `Err(reason)` while the broker is unreachable.
    pub fn health(&self) -> Result<(), String> {
        self.broker.as_ref().map_or(Ok(()), |b| b.health())
    }

    pub async fn remove_history(&self, channel: &str) -> Result<(), ErrorCode> {
        if !self.checked_channel(channel)?.retention().enabled() {
            return Err(ErrorCode::NOT_AVAILABLE);
        }
        match &self.broker {
            Some(broker) => broker.remove_history(channel).await,
            None => self.engine.remove_history(channel).await,
        }
    }

    pub fn subscribe_user(
        &self,
        user: &str,
        channel: &str,
        client: Option<&str>,
        data: Option<&RawValue>,
    ) -> Result<(), ErrorCode> {
        self.checked_channel(channel)?;
        self.run_everywhere(NodeCommand::Subscribe {
            user: user.to_string(),
            channel: channel.to_string(),
            client: client.map(str::to_string),
            data: data.map(ToOwned::to_owned),
        });
        Ok(())
    }

    pub fn unsubscribe_user(
        &self,
        user: &str,
        channel: &str,
        client: Option<&str>,
    ) -> Result<(), ErrorCode> {
        self.checked_channel(channel)?;
        self.run_everywhere(NodeCommand::Unsubscribe {
            user: user.to_string(),
            channel: channel.to_string(),
            client: client.map(str::to_string),
        });
        Ok(())
    }

    pub fn disconnect_user(&self, user: &str, client: Option<&str>, disconnect: Disconnect) {
        self.run_everywhere(NodeCommand::Disconnect {
            user: user.to_string(),
            client: client.map(str::to_string),
            code: disconnect.code,
            reason: disconnect.reason.into_owned(),
        });
    }

    pub fn refresh_user(
        &self,
        user: &str,
        client: Option<&str>,
        expired: bool,
        expire_at: Option<u64>,
    ) {
        self.run_everywhere(NodeCommand::Refresh {
            user: user.to_string(),
            client: client.map(str::to_string),
            expired,
            expire_at,
        });
    }

    /// Sends an asynchronous `message` push to a user's connections; returns how
    /// many connections of this node took it.
    pub fn send_to_user(&self, user: &str, client: Option<&str>, data: &RawValue) -> usize {
        self.run_everywhere(NodeCommand::Send {
            user: user.to_string(),
            client: client.map(str::to_string),
            data: data.to_owned(),
        })
    }

    /// Routes commands from an `/emulation` request to the node holding the
    /// session: here, or through the broker to the live node the request names.
    pub async fn emulate(&self, node: &str, session: &str, commands: String) -> Emulated {
        if node == self.id {
            return self.hub.emulate(session, commands.into());
        }
        let Some(broker) = &self.broker else {
            return Emulated::UnknownNode;
        };
        match broker.nodes().await {
            Err(_) => Emulated::Unavailable,
            Ok(nodes) if !nodes.iter().any(|info| info.uid == node) => Emulated::UnknownNode,
            Ok(_) => {
                broker.command_nodes(&NodeCommand::Emulate {
                    session: session.to_string(),
                    commands,
                });
                Emulated::Delivered
            }
        }
    }

    /// Runs a command on this node's connections and hands it to the others.
    fn run_everywhere(&self, command: NodeCommand) -> usize {
        if let Some(broker) = &self.broker {
            broker.command_nodes(&command);
        }
        command.apply(&self.hub)
    }

    pub async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, ErrorCode> {
        self.presence_enabled(channel)?;
        match &self.broker {
            Some(broker) => broker.presence(channel).await,
            None => Ok(self.hub.presence(channel)),
        }
    }

    pub async fn presence_stats(&self, channel: &str) -> Result<PresenceStatsResult, ErrorCode> {
        self.presence_enabled(channel)?;
        let (clients, users) = match &self.broker {
            Some(broker) => crate::hub::presence_counts(broker.presence(channel).await?.iter()),
            None => self.hub.presence_stats(channel),
        };
        Ok(PresenceStatsResult {
            num_clients: clients as u32,
            num_users: users as u32,
        })
    }

    fn presence_enabled(&self, channel: &str) -> Result<(), ErrorCode> {
        if self.checked_channel(channel)?.presence {
            Ok(())
        } else {
            Err(ErrorCode::NOT_AVAILABLE)
        }
    }

    pub fn info(&self) -> NodeInfo {
        NodeInfo::of(&self.hub, &self.id, &self.name, self.started)
    }

    /// Every node's counts: all nodes with a broker, this one alone without.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ErrorCode> {
        match &self.broker {
            Some(broker) => broker.nodes().await,
            None => Ok(vec![self.info()]),
        }
    }

    /// Closes every connection with `disconnect`, for shutdown.
    pub fn disconnect_all(&self, disconnect: &Disconnect) -> usize {
        let clients = self.hub.all_clients();
        for client in &clients {
            client.outbox.close(disconnect.clone());
        }
        clients.len()
    }
}
