//! The task that owns a node's Redis connection, its subscriptions and the
//! mirrors of the channels it receives.
//!
//! Everything that must be ordered per channel runs here, one event at a time:
//! subscribing, loading a mirror, buffering what arrives while it loads, and
//! applying publications in offset order. When the connection or its
//! subscriptions are lost (a `Disconnection` push, a failed heartbeat, or our
//! own heartbeats no longer coming back) the node reports itself down,
//! reconnects, resubscribes and reloads every mirror: subscribers get what
//! they missed in order, or are told to recover when Redis no longer has it.

use crate::connection::{self, Conn};
use crate::wire::{self, ChannelMessage};
use crate::{Shared, lock, nodes};
use herald_core::history::{Retention, StoredPublication};
use herald_core::hub::{Audience, Control};
use herald_core::metrics as names;
use herald_core::mirror::{Arrival, LoadedStream, Reload};
use herald_protocol::push;
use redis::{PushInfo, PushKind, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

pub(crate) enum Event {
    /// The channel gained its first local watcher.
    Watch(String),
    /// The channel lost its last watcher a while ago (it may have regained one).
    Unwatch(String),
    Loaded {
        channel: String,
        generation: u64,
        result: Result<LoadedStream, String>,
    },
    HeartbeatFailed(String),
    /// The broker was dropped with its node: close the connection and end.
    Stop,
}

/// Where a received channel stands.
enum Sync {
    /// Its mirror is being loaded; what arrives meanwhile waits in `buffer`.
    Loading {
        generation: u64,
        buffer: Vec<Pending>,
        /// The mirror existed before: its subscribers must be kept whole.
        reload: bool,
    },
    Ready,
}

enum Pending {
    Publication {
        epoch: String,
        publication: StoredPublication,
    },
    Reset {
        epoch: String,
    },
}

const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(crate) async fn run(
    shared: Arc<Shared>,
    mut events: mpsc::UnboundedReceiver<Event>,
    up: oneshot::Sender<()>,
) {
    let mut up = Some(up);
    let mut backoff = Duration::from_millis(100);
    let mut reconnecting = false;
    loop {
        let (push_sender, pushes) = mpsc::unbounded_channel();
        let settings = &shared.settings;
        let (topology, timeout) = (&settings.topology, settings.timeout);
        let connected = async {
            let subscriber = connection::connect(topology, timeout, Some(push_sender)).await?;
            let conn = connection::connect(topology, timeout, None).await?;
            Ok::<_, redis::RedisError>((subscriber, conn))
        };
        match connected.await {
            Ok((subscriber, conn)) => {
                backoff = Duration::from_millis(100);
                let mut link = Link {
                    shared: shared.clone(),
                    conn,
                    subscriber,
                    pushes,
                    channels: HashMap::new(),
                    last_heartbeat: Instant::now(),
                    reconnecting,
                };
                let reason = link.serve(&mut events, &mut up).await;
                if shared.stopped.load(Ordering::Relaxed) {
                    return;
                }
                mark_down(&shared, reason);
                reconnecting = true;
            }
            Err(error) => mark_down(&shared, format!("cannot connect to redis: {error}")),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn mark_down(shared: &Shared, reason: String) {
    let mut down = lock(&shared.down);
    if down.is_none() {
        tracing::error!(%reason, "broker down: publishes fail with a temporary error until it is back");
        ::metrics::counter!(names::BROKER_DISCONNECTS).increment(1);
    }
    *down = Some(reason);
    *lock(&shared.conn) = None;
    ::metrics::gauge!(names::BROKER_UP).set(0.0);
    for watch in lock(&shared.watches).values_mut() {
        watch.ready = false;
    }
}

fn set_ready(shared: &Shared, channel: &str) {
    if let Some(watch) = lock(&shared.watches).get_mut(channel) {
        watch.ready = true;
        for waiter in watch.waiters.drain(..) {
            let _ = waiter.send(());
        }
    }
}

struct Link {
    shared: Arc<Shared>,
    /// For commands: scripts, loads, heartbeats.
    conn: Conn,
    /// For subscriptions only (see `connection.rs` for why they are apart).
    subscriber: Conn,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    channels: HashMap<String, Sync>,
    last_heartbeat: Instant,
    /// This connection replaces a lost one: mirrors must be reloaded and
    /// subscribers of channels without history told they may have missed some.
    reconnecting: bool,
}

impl Link {
    /// Runs the connection until it is lost; returns why.
    async fn serve(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<Event>,
        up: &mut Option<oneshot::Sender<()>>,
    ) -> String {
        let nodes_channel = self.shared.keys.nodes_channel();
        if let Err(error) = self.subscriber.subscribe_nodes(&nodes_channel).await {
            return format!("cannot subscribe to {nodes_channel}: {error}");
        }
        let watched: Vec<String> = lock(&self.shared.watches)
            .iter()
            .filter(|(_, watch)| watch.count > 0)
            .map(|(channel, _)| channel.clone())
            .collect();
        if let Err(reason) = self.subscribe(&watched).await {
            return reason;
        }
        *lock(&self.shared.conn) = Some(self.conn.clone());
        *lock(&self.shared.down) = None;
        ::metrics::gauge!(names::BROKER_UP).set(1.0);
        tracing::info!(target_redis = %self.shared.settings.topology.describe(), channels = watched.len(), "broker connected");
        if let Some(up) = up.take() {
            let _ = up.send(());
        }
        let settings = &self.shared.settings;
        let heartbeat = settings.heartbeat;
        // Lenient enough that a busy Redis delaying our own heartbeat is not
        // mistaken for a lost subscription.
        let silence_limit = heartbeat * 3 + settings.timeout;
        let mut ticks = tokio::time::interval(heartbeat);
        let mut presence_ticks = tokio::time::interval(settings.presence_ttl / 3);
        self.last_heartbeat = Instant::now();
        loop {
            let lost = tokio::select! {
                push = self.pushes.recv() => match push {
                    Some(push) => self.on_push(push).await,
                    None => Some("the connection's push queue closed".into()),
                },
                event = events.recv() => match event {
                    Some(event) => self.on_event(event).await,
                    None => Some("the node is shutting down".into()),
                },
                _ = ticks.tick() => {
                    if self.last_heartbeat.elapsed() > silence_limit {
                        Some("heartbeats stopped arriving: the subscription is lost".into())
                    } else {
                        nodes::spawn_heartbeat(&self.shared, self.conn.clone());
                        None
                    }
                }
                _ = presence_ticks.tick() => {
                    nodes::spawn_presence_refresh(&self.shared, self.conn.clone());
                    None
                }
            };
            if let Some(reason) = lost {
                return reason;
            }
        }
    }

    async fn subscribe(&mut self, channels: &[String]) -> Result<(), String> {
        if channels.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = channels
            .iter()
            .map(|c| self.shared.keys.pubsub(c))
            .collect();
        self.subscriber
            .subscribe_channels(&names)
            .await
            .map_err(|error| format!("cannot subscribe: {error}"))?;
        for channel in channels {
            self.start_sync(channel, self.reconnecting);
        }
        Ok(())
    }

    fn retention(&self, channel: &str) -> Retention {
        let context = self.shared.context();
        context
            .namespaces
            .options(channel)
            .map(|o| o.retention())
            .unwrap_or_default()
    }

    /// Loads the channel's mirror (or, without history, marks it ready).
    fn start_sync(&mut self, channel: &str, reload: bool) {
        if !self.retention(channel).enabled() {
            self.channels.insert(channel.to_string(), Sync::Ready);
            if reload {
                self.tell_to_recover(channel);
            }
            set_ready(&self.shared, channel);
            return;
        }
        // Counted across connections, so a load that outlived its connection
        // is never mistaken for the current one.
        let generation = self.shared.generations.fetch_add(1, Ordering::Relaxed);
        self.channels.insert(
            channel.to_string(),
            Sync::Loading {
                generation,
                buffer: Vec::new(),
                reload,
            },
        );
        let shared = self.shared.clone();
        let conn = self.conn.clone();
        let channel = channel.to_string();
        tokio::spawn(async move {
            let result = load(&shared, conn, &channel).await;
            let _ = shared.events.send(Event::Loaded {
                channel,
                generation,
                result,
            });
        });
    }

    /// Unsubscribes the channel's local subscribers with 2500, so they
    /// resubscribe and recover what they missed (or learn they cannot).
    fn tell_to_recover(&self, channel: &str) {
        let subscribers = self.shared.context().hub.subscribers(channel);
        if !subscribers.is_empty() {
            tracing::warn!(%channel, subscribers = subscribers.len(), "publications may have been missed; subscribers are told to recover");
        }
        for client in subscribers {
            client.control(Control::Resubscribe {
                channel: channel.to_string(),
            });
        }
    }

    async fn on_push(&mut self, push: PushInfo) -> Option<String> {
        match push.kind {
            PushKind::Disconnection => Some("the connection to redis was lost".into()),
            PushKind::Message | PushKind::SMessage => {
                let [Value::BulkString(name), Value::BulkString(payload)] = push.data.as_slice()
                else {
                    return None;
                };
                let name = String::from_utf8_lossy(name);
                if name == self.shared.keys.nodes_channel() {
                    if nodes::on_message(&self.shared, payload) {
                        self.last_heartbeat = Instant::now();
                    }
                } else if let Some(channel) = self.shared.keys.channel_of(&name) {
                    let channel = channel.to_string();
                    self.on_channel_message(&channel, payload);
                }
                None
            }
            // Redis drops sharded subscriptions of a slot that moved to another
            // shard; one we still hold must follow it.
            PushKind::SUnsubscribe => {
                let Some(Value::BulkString(name)) = push.data.first() else {
                    return None;
                };
                let name = String::from_utf8_lossy(name).into_owned();
                let channel = self.shared.keys.channel_of(&name)?.to_string();
                if !self.channels.contains_key(&channel) {
                    return None;
                }
                tracing::info!(%channel, "sharded subscription moved; resubscribing");
                match self.subscriber.subscribe_channels(&[name]).await {
                    Ok(()) => {
                        self.start_sync(&channel, true);
                        None
                    }
                    Err(error) => Some(format!("cannot resubscribe {channel}: {error}")),
                }
            }
            _ => None,
        }
    }

    fn on_channel_message(&mut self, channel: &str, payload: &[u8]) {
        let Some(message) = wire::decode(payload) else {
            tracing::warn!(%channel, "unreadable message on the channel's pub/sub channel; skipped");
            return;
        };
        let hub = &self.shared.context().hub;
        let pending = match message {
            ChannelMessage::Ephemeral(object) => {
                let message = push::publication_from_object(channel, &object);
                let delivered = hub.broadcast(channel, &message, Audience::Everyone);
                ::metrics::counter!(names::MESSAGES_SENT).increment(delivered as u64);
                return;
            }
            ChannelMessage::JoinLeave(message) => {
                hub.broadcast(channel, &message, Audience::JoinLeave);
                return;
            }
            ChannelMessage::Publication { epoch, publication } => Pending::Publication {
                epoch: epoch.to_string(),
                publication,
            },
            ChannelMessage::Reset { epoch } => Pending::Reset {
                epoch: epoch.to_string(),
            },
        };
        if let Some(Sync::Loading { buffer, .. }) = self.channels.get_mut(channel) {
            buffer.push(pending);
        } else if self.channels.contains_key(channel) && !self.apply(channel, pending) {
            self.start_sync(channel, true);
        }
    }

    /// Applies one arrival to the mirror; false when the mirror is out of step.
    fn apply(&self, channel: &str, pending: Pending) -> bool {
        let context = self.shared.context();
        let retention = self.retention(channel);
        match pending {
            Pending::Publication { epoch, publication } => {
                let arrival =
                    context
                        .streams
                        .arrive(&context.hub, channel, retention, &epoch, publication);
                arrival != Arrival::OutOfStep
            }
            Pending::Reset { epoch } => {
                let empty = LoadedStream {
                    epoch: epoch.into(),
                    top: 0,
                    publications: Vec::new(),
                };
                context
                    .streams
                    .reload(&context.hub, channel, retention, empty, true);
                true
            }
        }
    }

    async fn on_event(&mut self, event: Event) -> Option<String> {
        match event {
            Event::Watch(channel) => {
                if matches!(self.channels.get(&channel), Some(Sync::Ready)) {
                    set_ready(&self.shared, &channel);
                    return None;
                }
                let watched = lock(&self.shared.watches)
                    .get(&channel)
                    .is_some_and(|w| w.count > 0);
                if watched && !self.channels.contains_key(&channel) {
                    return self.subscribe(&[channel]).await.err();
                }
                None
            }
            Event::Unwatch(channel) => {
                {
                    let mut watches = lock(&self.shared.watches);
                    let watch = watches.get_mut(&channel)?;
                    // Waiters that gave up (timed out) do not keep a channel.
                    watch.waiters.retain(|waiter| !waiter.is_closed());
                    if watch.count > 0 || !watch.waiters.is_empty() {
                        return None;
                    }
                    watches.remove(&channel);
                }
                if self.channels.remove(&channel).is_some() {
                    self.shared.context().streams.remove(&channel);
                    let name = self.shared.keys.pubsub(&channel);
                    if let Err(error) = self.subscriber.unsubscribe_channels(&[name]).await {
                        return Some(format!("cannot unsubscribe {channel}: {error}"));
                    }
                }
                None
            }
            Event::Loaded {
                channel,
                generation,
                result,
            } => self.on_loaded(channel, generation, result),
            Event::HeartbeatFailed(reason) => Some(reason),
            Event::Stop => {
                self.shared.stopped.store(true, Ordering::Relaxed);
                Some("the node stopped".into())
            }
        }
    }

    fn on_loaded(
        &mut self,
        channel: String,
        generation: u64,
        result: Result<LoadedStream, String>,
    ) -> Option<String> {
        match self.channels.get(&channel) {
            Some(Sync::Loading { generation: g, .. }) if *g == generation => {}
            _ => return None,
        }
        let loaded = match result {
            Ok(loaded) => loaded,
            Err(error) => return Some(format!("cannot load the history of {channel}: {error}")),
        };
        let Some(Sync::Loading { buffer, reload, .. }) =
            self.channels.insert(channel.clone(), Sync::Ready)
        else {
            return None;
        };
        let context = self.shared.context();
        let retention = self.retention(&channel);
        let outcome = context
            .streams
            .reload(&context.hub, &channel, retention, loaded, !reload);
        if reload {
            let label = match outcome {
                Reload::Continuous { .. } => "continuous",
                Reload::Broken => "broken",
            };
            ::metrics::counter!(names::BROKER_RELOADS, "outcome" => label).increment(1);
        }
        if outcome == Reload::Broken {
            self.tell_to_recover(&channel);
        }
        for pending in buffer {
            if !self.apply(&channel, pending) {
                self.start_sync(&channel, true);
                return None;
            }
        }
        set_ready(&self.shared, &channel);
        None
    }
}

/// Reads a channel's epoch, top offset and retained publications at once.
async fn load(shared: &Shared, mut conn: Conn, channel: &str) -> Result<LoadedStream, String> {
    let keys = &shared.keys;
    let mut invocation = shared.scripts.load.key(keys.meta(channel));
    invocation
        .key(keys.stream(channel))
        .arg(&*herald_core::history::new_epoch())
        .arg(Shared::secs(shared.settings.history_meta_ttl));
    let answer: Vec<Vec<u8>> = invocation
        .invoke_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut parts = answer.into_iter();
    let epoch = parts.next().ok_or("no epoch")?;
    let top = parts.next().ok_or("no top offset")?;
    let top = std::str::from_utf8(&top)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or("bad top offset")?;
    let publications = parts
        .map(|entry| wire::decode_entry(&entry).ok_or("bad stream entry"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LoadedStream {
        epoch: String::from_utf8_lossy(&epoch).into(),
        top,
        publications,
    })
}
