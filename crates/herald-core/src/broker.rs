//! The narrow trait a scale-out broker implements, and what nodes send each other.
//!
//! With a broker, a node no longer assigns offsets or fans out on its own: the
//! broker publishes (atomically appending to the channel's history), and every
//! node, this one included, delivers what the broker hands back to its own
//! subscribers. Each node keeps a mirror of the history of the channels it has
//! subscribers on, in the same `Streams` the in-memory engine uses, so
//! recovery, positioning and cache mode run the same code on one node or many.
//!
//! A channel is *watched* while this node has subscribers on it; it is *ready*
//! once the broker's subscription is confirmed and its mirror loaded. Sessions
//! never wait: they ask for readiness and the transport awaits it (see
//! `Session::handle_frame`).

use crate::durable::BoxFuture;
use crate::engine::Draft;
use crate::history::{Position, Retention};
use crate::hub::{Control, Emulated, Hub};
use crate::node::NodeInfo;
use crate::status::UserStatus;
use bytes::Bytes;
use herald_protocol::push::{self, ClientInfo};
use herald_protocol::{Disconnect, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;

/// What a publish asks of the broker.
pub struct BrokerPublish<'a> {
    pub channel: &'a str,
    pub draft: &'a Draft,
    /// `Some` for a channel that keeps history (and this publish is stored).
    pub history: Option<Retention>,
    pub idempotency_key: Option<&'a str>,
}

pub trait Broker: Send + Sync + 'static {
    /// Publishes to every node; for a stored publish, returns its position.
    fn publish<'a>(
        &'a self,
        request: BrokerPublish<'a>,
    ) -> BoxFuture<'a, Result<Option<Position>, ErrorCode>>;

    /// Empties a channel's history under a new epoch.
    fn remove_history<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), ErrorCode>>;

    /// A local subscriber joined: records its presence entry (when given),
    /// then sends the join push (when given) to every node, in that order, so
    /// whoever sees the join also finds the entry.
    fn joined(&self, channel: &str, presence: Option<&ClientInfo>, join: Option<Bytes>);

    /// A local subscriber left: removes its presence entry (when it had one),
    /// then sends the leave push (when given).
    fn left(&self, channel: &str, client: &str, presence: bool, leave: Option<Bytes>);

    /// One more local reason to receive the channel (a subscriber, a pending
    /// read); the first starts the broker subscription.
    fn watch(&self, channel: &str);

    /// Undoes one `watch`; the last stops the broker subscription.
    fn unwatch(&self, channel: &str);

    /// Whether the channel is watched, subscribed and its mirror loaded.
    fn is_ready(&self, channel: &str) -> bool;

    /// Resolves once the (watched) channel is ready, or fails with a temporary
    /// error when the broker cannot be reached in time.
    fn until_ready<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), ErrorCode>>;

    /// Every node's presence entries in the channel.
    fn presence<'a>(
        &'a self,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ClientInfo>, ErrorCode>>;

    /// This node's first connection of `user` opened; true when the user was
    /// offline on every node until now.
    fn user_connected<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<bool, ErrorCode>>;

    /// This node's last connection of `user` closed; true when the user is now
    /// offline on every node.
    fn user_disconnected<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<bool, ErrorCode>>;

    /// Each user's status across nodes, in the order asked.
    fn user_status<'a>(
        &'a self,
        users: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<UserStatus>, ErrorCode>>;

    /// Runs `command` on every other node.
    fn command_nodes(&self, command: &NodeCommand);

    /// The nodes that announced themselves recently, this one included.
    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeInfo>, ErrorCode>>;

    /// `Err(reason)` while publishes cannot go through or fan-out may be lost.
    fn health(&self) -> Result<(), String>;
}

/// A `watch` released when dropped: held while a command waits for readiness
/// and until the subscriber it is for has registered its own watch.
pub struct WatchGuard {
    broker: Arc<dyn Broker>,
    channel: String,
}

impl WatchGuard {
    pub fn new(broker: Arc<dyn Broker>, channel: &str) -> Self {
        broker.watch(channel);
        Self {
            broker,
            channel: channel.to_string(),
        }
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.broker.unwatch(&self.channel);
    }
}

/// Server-API work on a user's connections, wherever they are connected.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum NodeCommand {
    Subscribe {
        user: String,
        channel: String,
        client: Option<String>,
        data: Option<Box<RawValue>>,
    },
    Unsubscribe {
        user: String,
        channel: String,
        client: Option<String>,
    },
    Disconnect {
        user: String,
        client: Option<String>,
        code: u16,
        reason: String,
    },
    Refresh {
        user: String,
        client: Option<String>,
        expired: bool,
        expire_at: Option<u64>,
    },
    Send {
        user: String,
        client: Option<String>,
        data: Box<RawValue>,
    },
    /// Commands from an `/emulation` request that reached another node than
    /// the one holding the session.
    Emulate { session: String, commands: String },
}

impl NodeCommand {
    /// Applies the command to this node's connections; returns how many it reached.
    pub fn apply(&self, hub: &Hub) -> usize {
        let (user, client) = match self {
            Self::Subscribe { user, client, .. }
            | Self::Unsubscribe { user, client, .. }
            | Self::Disconnect { user, client, .. }
            | Self::Refresh { user, client, .. }
            | Self::Send { user, client, .. } => (user, client.as_deref()),
            Self::Emulate { session, commands } => {
                let commands = bytes::Bytes::copy_from_slice(commands.as_bytes());
                return usize::from(hub.emulate(session, commands) == Emulated::Delivered);
            }
        };
        let handles = hub.user_clients(user, client);
        match self {
            Self::Send { data, .. } => {
                let message = push::message(data);
                return handles
                    .iter()
                    .filter(|handle| handle.send(message.clone()))
                    .count();
            }
            // Closed here rather than queued as control work, so nothing
            // published after the caller hears back reaches the client: the
            // outbox refuses pushes from the moment it is closed.
            Self::Disconnect { code, reason, .. } => {
                let disconnect = Disconnect {
                    code: *code,
                    reason: reason.clone().into(),
                };
                for handle in &handles {
                    handle.outbox.close(disconnect.clone());
                }
                return handles.len();
            }
            _ => {}
        }
        for handle in &handles {
            handle.control(match self {
                Self::Subscribe { channel, data, .. } => Control::Subscribe {
                    channel: channel.clone(),
                    data: data.clone(),
                },
                Self::Unsubscribe { channel, .. } => {
                    hub.stop_delivery(channel, &handle.id);
                    Control::Unsubscribe {
                        channel: channel.clone(),
                    }
                }
                Self::Refresh {
                    expired, expire_at, ..
                } => Control::Refresh {
                    expired: *expired,
                    expire_at: *expire_at,
                },
                Self::Send { .. } | Self::Disconnect { .. } | Self::Emulate { .. } => {
                    unreachable!("handled above")
                }
            });
        }
        handles.len()
    }
}
