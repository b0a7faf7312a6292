//! The subscription registry, presence, and fan-out.
//!
//! Channels are spread over shards, each behind its own lock, so subscribes on
//! different channels rarely contend. Fan-out takes a shard's read lock, hands the
//! same `Bytes` to every subscriber's outbox, and never awaits.

use crate::control::ControlQueue;
use crate::history::now_ms;
use crate::metrics;
use crate::outbox::{Outbox, PushError};
use bytes::Bytes;
use herald_protocol::{ClientInfo, Disconnect};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

const SHARDS: usize = 64;

/// Work that must run inside a connection's own task because it changes the
/// session's state (its subscriptions, its expiry).
#[derive(Debug)]
pub enum Control {
    Subscribe {
        channel: String,
        data: Option<Box<RawValue>>,
    },
    Unsubscribe {
        channel: String,
    },
    /// The channel's stream broke (the broker lost publications): the client
    /// is unsubscribed with 2500 and resubscribes to recover.
    Resubscribe {
        channel: String,
    },
    Refresh {
        expired: bool,
        expire_at: Option<u64>,
    },
    /// The backend's answer to a `refresh` or `sub_refresh` the session
    /// asked for in the background (`subject`: the channel, for sub_refresh).
    Proxied {
        kind: crate::proxy::ProxyKind,
        subject: String,
        answer: crate::proxy::ProxyAnswer,
    },
}

/// What the rest of the server holds of one live connection.
pub struct ClientHandle {
    pub id: Arc<str>,
    pub user: Arc<str>,
    pub outbox: Arc<Outbox>,
    pub control: Arc<ControlQueue>,
    /// Set for HTTP-streaming and SSE connections, whose commands arrive in
    /// separate requests.
    pub emulation: Option<Emulation>,
}

/// How commands reach a connection whose stream carries only server-to-client
/// data: each `/emulation` request names the session, which is a secret, unlike
/// the client id that presence shows to other users.
#[derive(Clone)]
pub struct Emulation {
    pub session: Arc<str>,
    pub commands: tokio::sync::mpsc::Sender<Bytes>,
}

/// What became of commands sent to an emulated session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulated {
    Delivered,
    /// The session's queue was full: the connection is closed as slow.
    Overloaded,
    /// No such session (any more) on this node, or on the live node named.
    Gone,
    /// The request named no live node: it restarted, or never existed.
    UnknownNode,
    /// The broker could not be asked which nodes are live.
    Unavailable,
}

impl ClientHandle {
    /// Queues a message; an overflow disconnects this client as slow.
    pub fn send(&self, message: Bytes) -> bool {
        self.send_at(message, std::time::Instant::now())
    }

    /// `send` with the caller's clock reading (see `Outbox::push_at`).
    pub fn send_at(&self, message: Bytes, queued_at: std::time::Instant) -> bool {
        match self.outbox.push_at(message, queued_at) {
            Ok(()) => true,
            Err(PushError::Overflow) => {
                tracing::info!(client = %self.id, user = %self.user, "slow client disconnected: outbox full");
                false
            }
            Err(PushError::Closed) => false,
        }
    }

    /// Hands control work to the connection task. A full control queue means the
    /// connection is not keeping up, so it is disconnected rather than waited on.
    pub fn control(&self, control: Control) {
        if !self.control.push(control) {
            self.outbox.close(Disconnect::SLOW);
        }
    }

    /// Hands commands from an `/emulation` request to the connection task,
    /// on the same terms as control work: a full queue disconnects as slow.
    pub fn emulate(&self, commands: Bytes) -> Emulated {
        let Some(emulation) = &self.emulation else {
            return Emulated::Gone;
        };
        match emulation.commands.try_send(commands) {
            Ok(()) => Emulated::Delivered,
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                self.outbox.close(Disconnect::SLOW);
                Emulated::Overloaded
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Emulated::Gone,
        }
    }
}

struct Subscriber {
    client: Arc<ClientHandle>,
    join_leave: bool,
    /// For positioned subscriptions, the offset last delivered; a publication
    /// that skips one means the client lost its place and must recover.
    position: Option<AtomicU64>,
}

/// How one subscription wants its channel's messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscriberOptions {
    pub join_leave: bool,
    /// Set for positioned subscriptions: the stream top at subscribe time.
    pub positioned_at: Option<u64>,
}

/// A presence entry lives while its connection keeps touching it: entries of a
/// connection that vanished without cleanup (a crashed task, or later a dead
/// node) expire instead of haunting the channel.
struct PresenceEntry {
    info: ClientInfo,
    expires_ms: AtomicU64,
}

impl PresenceEntry {
    fn live(&self, now_ms: u64) -> bool {
        self.expires_ms.load(Ordering::Relaxed) > now_ms
    }
}

#[derive(Default)]
struct ChannelState {
    subscribers: HashMap<Arc<str>, Subscriber>,
    presence: HashMap<Arc<str>, PresenceEntry>,
}

type UserClients = HashMap<Arc<str>, Arc<ClientHandle>>;
type UserShard = RwLock<HashMap<Arc<str>, UserClients>>;
type ChannelShard = RwLock<HashMap<String, ChannelState>>;

pub struct Hub {
    hasher: RandomState,
    channels: Box<[ChannelShard]>,
    users: Box<[UserShard]>,
    /// Emulated connections by session secret.
    sessions: RwLock<HashMap<Arc<str>, Arc<ClientHandle>>>,
    clients: AtomicUsize,
    subscriptions: AtomicUsize,
    presence_ttl_ms: u64,
}

/// How long a presence entry lives without being touched.
pub const DEFAULT_PRESENCE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for Hub {
    fn default() -> Self {
        Self::new(DEFAULT_PRESENCE_TTL)
    }
}

impl Hub {
    pub fn new(presence_ttl: std::time::Duration) -> Self {
        Self {
            presence_ttl_ms: presence_ttl.as_millis() as u64,
            hasher: RandomState::new(),
            channels: (0..SHARDS).map(|_| RwLock::default()).collect(),
            users: (0..SHARDS).map(|_| RwLock::default()).collect(),
            sessions: RwLock::default(),
            clients: AtomicUsize::new(0),
            subscriptions: AtomicUsize::new(0),
        }
    }
}

/// `(clients, distinct users)` of a channel's presence entries.
pub fn presence_counts<'a>(entries: impl Iterator<Item = &'a ClientInfo>) -> (usize, usize) {
    let mut users = std::collections::HashSet::new();
    let mut clients = 0;
    for info in entries {
        clients += 1;
        users.insert(info.user.as_str());
    }
    (clients, users.len())
}

/// Who receives a broadcast on a channel.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Everyone,
    /// Join/leave pushes go only to subscribers that asked for them.
    JoinLeave,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    fn shard(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    /// Registers a connection; true when it is its user's first on this node.
    pub fn add_client(&self, client: Arc<ClientHandle>) -> bool {
        let shard = self.shard(&client.user);
        let mut users = write(&self.users[shard]);
        let clients = users.entry(client.user.clone()).or_default();
        let first = clients.is_empty();
        if let Some(emulation) = &client.emulation {
            write(&self.sessions).insert(emulation.session.clone(), client.clone());
        }
        clients.insert(client.id.clone(), client);
        self.clients.fetch_add(1, Ordering::Relaxed);
        ::metrics::gauge!(metrics::CONNECTIONS).increment(1.0);
        first
    }

    /// Unregisters a connection; true when it was its user's last on this node.
    pub fn remove_client(&self, client: &ClientHandle) -> bool {
        let shard = self.shard(&client.user);
        let mut users = write(&self.users[shard]);
        let Some(clients) = users.get_mut(&client.user) else {
            return false;
        };
        let removed = clients.remove(&client.id).is_some();
        if let Some(emulation) = &client.emulation {
            write(&self.sessions).remove(&emulation.session);
        }
        if removed {
            self.clients.fetch_sub(1, Ordering::Relaxed);
            ::metrics::gauge!(metrics::CONNECTIONS).decrement(1.0);
        }
        let last = clients.is_empty();
        if last {
            users.remove(&client.user);
        }
        removed && last
    }

    /// Hands commands to the emulated connection with this session secret;
    /// `Gone` when it is not on this node.
    pub fn emulate(&self, session: &str, commands: Bytes) -> Emulated {
        self.emulated(session)
            .map_or(Emulated::Gone, |handle| handle.emulate(commands))
    }

    /// The emulated connection with this session secret, if it is on this node.
    pub fn emulated(&self, session: &str) -> Option<Arc<ClientHandle>> {
        read(&self.sessions).get(session).cloned()
    }

    /// The users with a connection on this node.
    pub fn local_users(&self) -> Vec<Arc<str>> {
        self.users
            .iter()
            .flat_map(|shard| read(shard).keys().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// The live connections of a user, optionally only the one with `client` id.
    pub fn user_clients(&self, user: &str, client: Option<&str>) -> Vec<Arc<ClientHandle>> {
        let users = read(&self.users[self.shard(user)]);
        users
            .get(user)
            .map(|clients| {
                clients
                    .values()
                    .filter(|c| client.is_none_or(|id| &*c.id == id))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn user_connection_count(&self, user: &str) -> usize {
        read(&self.users[self.shard(user)])
            .get(user)
            .map_or(0, HashMap::len)
    }

    /// Adds a subscriber, and its presence entry when given one.
    pub fn subscribe(
        &self,
        channel: &str,
        client: Arc<ClientHandle>,
        options: SubscriberOptions,
        presence: Option<ClientInfo>,
    ) {
        let mut channels = write(&self.channels[self.shard(channel)]);
        let state = channels.entry(channel.to_string()).or_default();
        if let Some(info) = presence {
            let expires_ms = AtomicU64::new(now_ms() + self.presence_ttl_ms);
            state
                .presence
                .insert(client.id.clone(), PresenceEntry { info, expires_ms });
        }
        let id = client.id.clone();
        if state
            .subscribers
            .insert(
                id,
                Subscriber {
                    client,
                    join_leave: options.join_leave,
                    position: options.positioned_at.map(AtomicU64::new),
                },
            )
            .is_none()
        {
            self.subscriptions.fetch_add(1, Ordering::Relaxed);
            ::metrics::gauge!(metrics::SUBSCRIPTIONS).increment(1.0);
        }
    }

    /// Removes a subscriber and its presence; returns the presence entry it had.
    pub fn unsubscribe(&self, channel: &str, client_id: &str) -> Option<ClientInfo> {
        let mut channels = write(&self.channels[self.shard(channel)]);
        let state = channels.get_mut(channel)?;
        if state.subscribers.remove(client_id).is_some() {
            self.subscriptions.fetch_sub(1, Ordering::Relaxed);
            ::metrics::gauge!(metrics::SUBSCRIPTIONS).decrement(1.0);
        }
        let info = state.presence.remove(client_id).map(|entry| entry.info);
        if state.subscribers.is_empty() && state.presence.is_empty() {
            channels.remove(channel);
            // After a burst of channels, give the table back as they go idle.
            let left = channels.len();
            if channels.capacity() > 4 * left + 64 {
                channels.shrink_to(2 * left);
            }
        }
        info
    }

    /// Stops fan-out to one subscriber at once, ahead of its session's own
    /// unsubscribe, which still removes its presence and tells everyone: so
    /// nothing published after a server-API unsubscribe answers reaches it.
    pub fn stop_delivery(&self, channel: &str, client_id: &str) {
        let mut channels = write(&self.channels[self.shard(channel)]);
        if let Some(state) = channels.get_mut(channel)
            && state.subscribers.remove(client_id).is_some()
        {
            self.subscriptions.fetch_sub(1, Ordering::Relaxed);
            ::metrics::gauge!(metrics::SUBSCRIPTIONS).decrement(1.0);
        }
    }

    /// Hands `message` to every subscriber of `channel` in `audience`; returns how
    /// many took it. Never awaits: a full outbox disconnects its owner instead.
    pub fn broadcast(&self, channel: &str, message: &Bytes, audience: Audience) -> usize {
        self.broadcast_at(channel, message, audience, 0)
    }

    /// Like `broadcast`, for a publication at `offset` (0: none). A positioned
    /// subscriber that would see a gap is disconnected with 3010 to recover.
    pub fn broadcast_at(
        &self,
        channel: &str,
        message: &Bytes,
        audience: Audience,
        offset: u64,
    ) -> usize {
        let channels = read(&self.channels[self.shard(channel)]);
        let Some(state) = channels.get(channel) else {
            return 0;
        };
        let mut delivered = 0;
        let now = std::time::Instant::now();
        for subscriber in state.subscribers.values() {
            if audience == Audience::JoinLeave && !subscriber.join_leave {
                continue;
            }
            if offset > 0
                && let Some(position) = &subscriber.position
            {
                let previous = position.swap(offset, Ordering::Relaxed);
                if offset != previous + 1 {
                    tracing::info!(client = %subscriber.client.id, %channel, previous, offset, "positioned subscriber missed a publication");
                    subscriber
                        .client
                        .outbox
                        .close(Disconnect::INSUFFICIENT_STATE);
                    continue;
                }
            }
            if subscriber.client.send_at(message.clone(), now) {
                delivered += 1;
            }
        }
        delivered
    }

    pub fn presence(&self, channel: &str) -> Vec<ClientInfo> {
        let now = now_ms();
        read(&self.channels[self.shard(channel)])
            .get(channel)
            .map(|state| {
                state
                    .presence
                    .values()
                    .filter(|entry| entry.live(now))
                    .map(|entry| entry.info.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `(clients, distinct users)` present in the channel.
    pub fn presence_stats(&self, channel: &str) -> (usize, usize) {
        let now = now_ms();
        let channels = read(&self.channels[self.shard(channel)]);
        let Some(state) = channels.get(channel) else {
            return (0, 0);
        };
        let live = state.presence.values().filter(|e| e.live(now));
        presence_counts(live.map(|e| &e.info))
    }

    /// Keeps a connection's presence entry alive for another TTL.
    pub fn touch_presence(&self, channel: &str, client_id: &str) {
        let channels = read(&self.channels[self.shard(channel)]);
        if let Some(entry) = channels
            .get(channel)
            .and_then(|s| s.presence.get(client_id))
        {
            entry
                .expires_ms
                .store(now_ms() + self.presence_ttl_ms, Ordering::Relaxed);
        }
    }

    /// The local subscribers of a channel.
    pub fn subscribers(&self, channel: &str) -> Vec<Arc<ClientHandle>> {
        read(&self.channels[self.shard(channel)])
            .get(channel)
            .map(|state| {
                state
                    .subscribers
                    .values()
                    .map(|s| s.client.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every live local presence entry, for a broker to refresh.
    pub fn local_presence(&self) -> Vec<(String, ClientInfo)> {
        let now = now_ms();
        self.channels
            .iter()
            .flat_map(|shard| {
                read(shard)
                    .iter()
                    .flat_map(|(name, state)| {
                        state
                            .presence
                            .values()
                            .filter(|entry| entry.live(now))
                            .map(|entry| (name.clone(), entry.info.clone()))
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Channels with at least one subscriber, with their subscriber counts.
    pub fn channels(&self) -> Vec<(String, usize)> {
        self.channels
            .iter()
            .flat_map(|shard| {
                read(shard)
                    .iter()
                    .filter(|(_, state)| !state.subscribers.is_empty())
                    .map(|(name, state)| (name.clone(), state.subscribers.len()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn num_clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    pub fn num_subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }

    pub fn num_users(&self) -> usize {
        self.users.iter().map(|shard| read(shard).len()).sum()
    }

    pub fn num_channels(&self) -> usize {
        self.channels.iter().map(|shard| read(shard).len()).sum()
    }

    /// Every live connection, for shutdown.
    pub fn all_clients(&self) -> Vec<Arc<ClientHandle>> {
        self.users
            .iter()
            .flat_map(|shard| {
                read(shard)
                    .values()
                    .flat_map(|clients| clients.values().cloned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
