//! The app features Herald ships: a notification inbox and chat.
//!
//! Both keep their data in one database ([`store`]): SQLite on the embedded
//! default, PostgreSQL on scale-out. Both are reached two ways: by backends
//! through the server API ([`api`]), and by browsers through the client
//! protocol's `rpc` ([`rpc`]), where the caller is the connection's user.
//! Changes reach every open tab live, through channels the core delivers:
//! each user's personal channel `inbox:#<user>`, and `chat:<conversation>`.
//!
//! # Layout
//! - [`store`]: opening the database, the schema and its migrations.
//! - [`inbox`]: notifications, unread counts, preferences.
//! - [`chat`] (and `chat/queries.rs`): conversations, members, messages, read marks.
//! - [`api`]: server-API methods (`notify`, `chat_create`, …).
//! - [`rpc`]: client `rpc` methods (`inbox.*`, `chat.*`) and channel access.
//! - [`error`]: the precise errors both answer.
//! - `locks.rs`: a lock per conversation and per user, so pushes keep order.
#![forbid(unsafe_code)]

pub mod api;
pub mod chat;
pub mod error;
pub mod inbox;
mod locks;
pub mod metrics;
pub mod rpc;
pub mod store;

use herald_core::engine::Draft;
use herald_core::node::PublishOptions;
use herald_core::{ChannelOptions, Node};
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::{Arc, Weak};

pub use store::{Db, Dialect, Location, StoreError};

/// The namespaces the features own; users may not configure them.
pub const INBOX_NAMESPACE: &str = "inbox";
pub const CHAT_NAMESPACE: &str = "chat";

#[derive(Debug, Clone)]
pub struct Settings {
    pub inbox: bool,
    pub chat: bool,
    /// The longest chat message text, in characters.
    pub max_text_length: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            inbox: true,
            chat: true,
            max_text_length: 4000,
        }
    }
}

/// The inbox and chat of one node.
pub struct Apps {
    pub settings: Settings,
    pub(crate) db: Db,
    node: Weak<Node>,
    /// Per conversation and per user: changes reach clients in order.
    pub(crate) ordered: locks::KeyedLocks,
}

impl Apps {
    /// Builds the features on `db` and plugs them into `node`.
    pub fn install(settings: Settings, db: Db, node: &Arc<Node>) -> Arc<Self> {
        let apps = Arc::new(Self {
            settings,
            db,
            node: Arc::downgrade(node),
            ordered: Default::default(),
        });
        node.set_extension(Arc::new(rpc::Plugged(apps.clone())));
        apps
    }

    /// Publishes `data` to `channel`, after the change it reports is committed.
    /// A failure is logged, not returned: the change stands, and clients
    /// resync when they next fetch.
    pub(crate) async fn push(&self, channel: &str, data: &Value) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        let data = RawValue::from_string(data.to_string()).expect("a JSON value is JSON");
        let draft = Draft {
            data,
            info: None,
            tags: None,
        };
        if let Err(error) = node
            .publish(channel, draft, PublishOptions::default())
            .await
        {
            tracing::warn!(%channel, %error, "live push failed");
            ::metrics::counter!(metrics::PUSH_ERRORS).increment(1);
        }
    }

    pub(crate) fn node(&self) -> Option<Arc<Node>> {
        self.node.upgrade()
    }

    /// Reports an app event (`chat.message`, `notification.read`) to the
    /// node's observer (webhooks), which builds `data` only when it wants it.
    pub(crate) fn event(&self, name: &'static str, data: impl FnOnce() -> Value) {
        if let Some(node) = self.node.upgrade() {
            node.observe(name, data);
        }
    }
}

/// The namespaces the enabled features own, as the node must know them.
pub fn namespaces(settings: &Settings) -> Vec<(String, ChannelOptions)> {
    let mut owned = Vec::new();
    if settings.inbox || settings.chat {
        // `inbox:#42` is user 42's alone; every connection joins it server-side.
        let personal = ChannelOptions {
            allow_user_limited_channels: true,
            ..Default::default()
        };
        owned.push((INBOX_NAMESPACE.to_string(), personal));
    }
    if settings.chat {
        // Who may subscribe is the extension's to decide (members only); the
        // messages live in the database, so the channel keeps no history.
        let conversation = ChannelOptions {
            presence: true,
            join_leave: true,
            force_push_join_leave: true,
            allow_presence_for_subscriber: true,
            ..Default::default()
        };
        owned.push((CHAT_NAMESPACE.to_string(), conversation));
    }
    owned
}

/// The user's personal channel, where inbox and unread pushes go.
pub fn personal_channel(user: &str) -> String {
    format!("{INBOX_NAMESPACE}:#{user}")
}

/// The channel of a conversation.
pub fn chat_channel(conversation: &str) -> String {
    format!("{CHAT_NAMESPACE}:{conversation}")
}

#[cfg(test)]
mod tests;
