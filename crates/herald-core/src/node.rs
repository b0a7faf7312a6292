//! One server's shared state, and the operations the server API performs on it.

use crate::channel::{self, Namespaces};
use crate::durable::{DurableLog, Snapshot};
use crate::engine::{Draft, Engine};
use crate::history::{HistoryError, HistoryQuery, Position, StoredPublication, now_ms};
use crate::hub::{Audience, ClientHandle, Control, Hub};
use crate::metrics;
use crate::outbox::OutboxLimits;
use crate::token::TokenVerifier;
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
    pub hub: Arc<Hub>,
    pub engine: Engine,
    started: Instant,
}

/// How a publish should be made.
#[derive(Debug, Default)]
pub struct PublishOptions {
    pub skip_history: bool,
    pub idempotency_key: Option<String>,
}

/// One node's counts, as the `info` API reports them.
#[derive(Debug, Clone, serde::Serialize)]
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
            limits: config.limits,
            verifier,
            hub,
            engine,
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
    pub fn history(
        &self,
        channel: &str,
        query: &HistoryQuery,
    ) -> Result<(Vec<Arc<StoredPublication>>, Position), ErrorCode> {
        let retention = self.checked_channel(channel)?.retention();
        if !retention.enabled() {
            return Err(ErrorCode::NOT_AVAILABLE);
        }
        self.engine.streams().locked(channel, |stream| {
            let publications = stream
                .read(query, retention, now_ms())
                .map_err(|e| match e {
                    HistoryError::UnrecoverablePosition => ErrorCode::UNRECOVERABLE_POSITION,
                })?;
            Ok((publications, stream.position()))
        })
    }

    pub async fn remove_history(&self, channel: &str) -> Result<(), ErrorCode> {
        if !self.checked_channel(channel)?.retention().enabled() {
            return Err(ErrorCode::NOT_AVAILABLE);
        }
        self.engine.remove_history(channel).await
    }

    pub fn subscribe_user(
        &self,
        user: &str,
        channel: &str,
        client: Option<&str>,
        data: Option<&RawValue>,
    ) -> Result<(), ErrorCode> {
        self.checked_channel(channel)?;
        for handle in self.hub.user_clients(user, client) {
            handle.control(Control::Subscribe {
                channel: channel.to_string(),
                data: data.map(ToOwned::to_owned),
            });
        }
        Ok(())
    }

    pub fn unsubscribe_user(
        &self,
        user: &str,
        channel: &str,
        client: Option<&str>,
    ) -> Result<(), ErrorCode> {
        self.checked_channel(channel)?;
        for handle in self.hub.user_clients(user, client) {
            handle.control(Control::Unsubscribe {
                channel: channel.to_string(),
            });
        }
        Ok(())
    }

    pub fn disconnect_user(&self, user: &str, client: Option<&str>, disconnect: Disconnect) {
        for handle in self.hub.user_clients(user, client) {
            handle.control(Control::Disconnect(disconnect.clone()));
        }
    }

    pub fn refresh_user(
        &self,
        user: &str,
        client: Option<&str>,
        expired: bool,
        expire_at: Option<u64>,
    ) {
        for handle in self.hub.user_clients(user, client) {
            handle.control(Control::Refresh { expired, expire_at });
        }
    }

    /// Sends an asynchronous `message` push to a user's connections.
    pub fn send_to_user(&self, user: &str, client: Option<&str>, data: &RawValue) -> usize {
        let message = push::message(data);
        self.hub
            .user_clients(user, client)
            .iter()
            .filter(|handle| handle.send(message.clone()))
            .count()
    }

    pub fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, ErrorCode> {
        self.presence_enabled(channel)?;
        Ok(self.hub.presence(channel))
    }

    pub fn presence_stats(&self, channel: &str) -> Result<PresenceStatsResult, ErrorCode> {
        self.presence_enabled(channel)?;
        let (clients, users) = self.hub.presence_stats(channel);
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
        NodeInfo {
            uid: self.id.clone(),
            name: self.name.clone(),
            version: self.version.to_string(),
            num_clients: self.hub.num_clients(),
            num_users: self.hub.num_users(),
            num_channels: self.hub.num_channels(),
            num_subs: self.hub.num_subscriptions(),
            uptime: self.started.elapsed().as_secs(),
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

    pub fn register(&self, handle: Arc<ClientHandle>) {
        self.hub.add_client(handle);
    }
}
