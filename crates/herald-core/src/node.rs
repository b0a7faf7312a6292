//! One server's shared state, and the operations the server API performs on it.

use crate::channel::{self, Namespaces};
use crate::hub::{Audience, ClientHandle, Control, Hub};
use crate::metrics;
use crate::outbox::OutboxLimits;
use crate::token::TokenVerifier;
use herald_protocol::push::{self, ClientInfo, Publication};
use herald_protocol::reply::PresenceStatsResult;
use herald_protocol::{Disconnect, ErrorCode};
use serde_json::value::RawValue;
use std::collections::HashMap;
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
    pub hub: Hub,
    started: Instant,
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
    pub fn new(config: NodeConfig, verifier: TokenVerifier) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            name: config.name,
            version: env!("CARGO_PKG_VERSION"),
            namespaces: config.namespaces,
            limits: config.limits,
            verifier,
            hub: Hub::default(),
            started: Instant::now(),
        }
    }

    fn checked_channel(&self, channel: &str) -> Result<&crate::ChannelOptions, ErrorCode> {
        channel::validate_name(channel)?;
        self.namespaces.options(channel)
    }

    /// Encodes the publication once and fans it out; returns the deliveries.
    pub fn publish(
        &self,
        channel: &str,
        data: &RawValue,
        info: Option<&ClientInfo>,
        tags: Option<&HashMap<String, String>>,
    ) -> Result<usize, ErrorCode> {
        self.checked_channel(channel)?;
        let message = push::publication(
            channel,
            &Publication {
                data,
                info,
                offset: 0,
                tags,
            },
        );
        ::metrics::counter!(metrics::PUBLICATIONS).increment(1);
        let delivered = self.hub.broadcast(channel, &message, Audience::Everyone);
        ::metrics::counter!(metrics::MESSAGES_SENT).increment(delivered as u64);
        Ok(delivered)
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
