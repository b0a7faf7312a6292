//! Features built on channels (the inbox, chat), plugged into a node.
//!
//! The core knows nothing of notifications or conversations. A node holds at
//! most one `Extension`, and asks it three things: to answer a client's `rpc`,
//! whether a user may subscribe to a channel it guards (which may need a
//! database, so the session waits as it does for a broker), and which personal
//! channels every connection of a user joins.

use crate::durable::BoxFuture;
use herald_protocol::{ClientInfo, DetailedError, ErrorCode};
use serde_json::value::RawValue;

/// Who made an `rpc` call.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `""` for an anonymous connection.
    pub user: String,
    pub client: String,
}

pub type RpcFuture = BoxFuture<'static, Result<Box<RawValue>, DetailedError>>;

pub trait Extension: Send + Sync + 'static {
    /// Answers `rpc` `method`; `None` when no such method exists (104).
    fn rpc(&self, caller: Caller, method: &str, data: &RawValue) -> Option<RpcFuture>;

    /// Whether this extension, rather than the namespace's options, decides
    /// who may subscribe to `channel`.
    fn guards(&self, channel: &str) -> bool;

    /// Whether `user` may subscribe to a channel this extension guards.
    fn may_subscribe(
        &self,
        user: &str,
        channel: &str,
    ) -> BoxFuture<'static, Result<bool, ErrorCode>>;

    /// Channels every connection of `user` is subscribed to, server-side.
    fn personal_channels(&self, user: &str) -> Vec<String>;
}

/// What a session must have before a command can go on: channels the broker
/// must make ready here, and at most one subscribe permission to look up.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Wait {
    pub channels: Vec<String>,
    pub access: Option<AccessCheck>,
    /// A question for the application's backend.
    pub proxy: Option<crate::proxy::ProxyCall>,
}

/// May `user` subscribe to `channel`? Asked of the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessCheck {
    pub user: String,
    pub channel: String,
}

/// The answer to a `Wait`, handed back to `Session::resume`.
#[derive(Default)]
pub struct Prepared {
    /// Whether every channel became ready.
    pub ready: bool,
    /// The permission looked up, for the channel asked about.
    pub access: Option<(String, Result<bool, ErrorCode>)>,
    /// The backend's answer, with what it was asked about.
    pub proxied: Option<crate::session::Proxied>,
    /// Keep the channels ready until the command has run again.
    pub(crate) _guards: Vec<crate::broker::WatchGuard>,
}

impl Prepared {
    /// Channels ready, nothing looked up: what a session without a broker sees.
    pub fn ready() -> Self {
        Self {
            ready: true,
            ..Default::default()
        }
    }
}

impl crate::Node {
    /// Plugs in the extension; a node takes one, once.
    pub fn set_extension(&self, extension: std::sync::Arc<dyn Extension>) {
        if self.extension.set(extension).is_err() {
            tracing::warn!("an extension was already set; the second one is ignored");
        }
    }

    pub fn extension(&self) -> Option<&std::sync::Arc<dyn Extension>> {
        self.extension.get()
    }

    /// The channels every connection of `user` joins server-side.
    pub fn personal_channels(&self, user: &str) -> Vec<String> {
        match self.extension() {
            Some(extension) if !user.is_empty() => extension.personal_channels(user),
            _ => Vec::new(),
        }
    }

    /// Does what a session's `Step::Await` asks, for `Session::resume`.
    pub async fn prepare(&self, wait: Wait) -> Prepared {
        let readiness =
            futures_util::future::join_all(wait.channels.iter().map(|channel| self.ready(channel)));
        let access = async {
            let check = wait.access?;
            let allowed = match self.extension() {
                Some(extension) => extension.may_subscribe(&check.user, &check.channel).await,
                None => Ok(false),
            };
            Some((check.channel, allowed))
        };
        let proxied = async {
            let call = wait.proxy?;
            let answer = self.call_proxy(&call).await;
            Some(crate::session::Proxied {
                kind: call.kind,
                subject: call.subject,
                answer,
            })
        };
        let (outcomes, access, proxied) =
            futures_util::future::join3(readiness, access, proxied).await;
        let ready = outcomes.iter().all(Result::is_ok);
        Prepared {
            ready,
            access,
            proxied,
            _guards: outcomes
                .into_iter()
                .filter_map(|o| o.ok().flatten())
                .collect(),
        }
    }
}

/// Told what happens on a node (connections, subscriptions, users going on
/// and offline), for webhooks.
pub trait Observer: Send + Sync + 'static {
    /// Whether `event` is wanted, so unwanted ones cost nothing to build.
    fn wants(&self, event: &str) -> bool;
    /// Must not block: it runs on the connection's path.
    fn observe(&self, event: &'static str, data: serde_json::Value);
}

impl crate::Node {
    /// Plugs in the observer; a node takes one, once.
    pub fn set_observer(&self, observer: std::sync::Arc<dyn Observer>) {
        if self.observer.set(observer).is_err() {
            tracing::warn!("an observer was already set; the second one is ignored");
        }
    }

    /// Reports `event` when an observer wants it; `data` is built only then.
    pub fn observe(&self, event: &'static str, data: impl FnOnce() -> serde_json::Value) {
        if let Some(observer) = self.observer.get()
            && observer.wants(event)
        {
            observer.observe(event, data());
        }
    }

    fn observer_wants(&self, event: &str) -> bool {
        self.observer.get().is_some_and(|o| o.wants(event))
    }

    /// Reports a subscription that began (`joined`) or ended, and the channel
    /// becoming occupied or vacated on this node. Sessions do not report
    /// personal channels: they are Herald's own.
    pub(crate) fn observe_subscription(&self, channel: &str, info: &ClientInfo, joined: bool) {
        if self.observer.get().is_none() {
            return;
        }
        let (event, occupancy) = if joined {
            ("subscribe", "channel.occupied")
        } else {
            ("unsubscribe", "channel.vacated")
        };
        self.observe(
            event,
            || serde_json::json!({"client": info.client, "user": info.user, "channel": channel}),
        );
        if self.observer_wants(occupancy) {
            let subscribers = self.hub.subscribers(channel).len();
            if (joined && subscribers == 1) || (!joined && subscribers == 0) {
                self.observe(occupancy, || serde_json::json!({"channel": channel}));
            }
        }
    }
}
