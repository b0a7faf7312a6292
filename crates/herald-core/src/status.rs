//! Online status: whether a user has a connection on any node, and when one
//! of theirs was last seen.
//!
//! A user counts once however many tabs they have open: they come online with
//! their first connection and go offline with their last, across nodes when a
//! broker is used. When the app configures a `status` namespace, each change
//! is published to `status:<user>` as
//! `{"type":"status","user":"42","online":true,"last_seen":1700000000000}`,
//! under that namespace's permissions.

use crate::engine::Draft;
use crate::history::now_ms;
use crate::hub::ClientHandle;
use crate::node::{Node, PublishOptions};
use herald_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The namespace status changes are published in, when the app configures it.
pub const STATUS_NAMESPACE: &str = "status";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatus {
    pub user: String,
    pub online: bool,
    /// Now for an online user; when the last connection closed for an
    /// offline one; `None` for a user never seen (or forgotten).
    pub last_seen: Option<u64>,
}

/// When each user's last connection closed, for a node without a broker.
#[derive(Default)]
pub struct LastSeen(Mutex<HashMap<String, u64>>);

impl Node {
    /// Registers a connection; when its user was offline, announces them online.
    pub fn connected(self: &Arc<Self>, handle: Arc<ClientHandle>) {
        let user = handle.user.clone();
        self.observe("connect", || json!({"client": &*handle.id, "user": &*user}));
        if !self.hub.add_client(handle) || user.is_empty() {
            return;
        }
        match self.broker.clone() {
            None => self.announce_status(&user, true),
            Some(broker) => {
                let node = self.clone();
                tokio::spawn(async move {
                    if broker.user_connected(&user).await == Ok(true) {
                        node.announce_status(&user, true);
                    }
                });
            }
        }
    }

    /// Unregisters a connection; when it was its user's last, announces them offline.
    pub fn disconnected(self: &Arc<Self>, handle: &ClientHandle) {
        let user = handle.user.clone();
        self.observe(
            "disconnect",
            || json!({"client": &*handle.id, "user": &*user}),
        );
        if !self.hub.remove_client(handle) || user.is_empty() {
            return;
        }
        match self.broker.clone() {
            None => {
                let mut last_seen = self.last_seen.0.lock().unwrap_or_else(|e| e.into_inner());
                last_seen.insert(user.to_string(), now_ms());
                drop(last_seen);
                self.announce_status(&user, false);
            }
            Some(broker) => {
                let node = self.clone();
                tokio::spawn(async move {
                    if broker.user_disconnected(&user).await == Ok(true) {
                        node.announce_status(&user, false);
                    }
                });
            }
        }
    }

    /// Each user's status, in the order asked.
    pub async fn user_status(&self, users: &[String]) -> Result<Vec<UserStatus>, ErrorCode> {
        if let Some(broker) = &self.broker {
            return broker.user_status(users).await;
        }
        let now = now_ms();
        let last_seen = self.last_seen.0.lock().unwrap_or_else(|e| e.into_inner());
        Ok(users
            .iter()
            .map(|user| {
                // Anonymous connections share the user "" and have no status.
                let online = !user.is_empty() && self.hub.user_connection_count(user) > 0;
                UserStatus {
                    user: user.clone(),
                    online,
                    last_seen: if online {
                        Some(now)
                    } else {
                        last_seen.get(user).copied()
                    },
                }
            })
            .collect())
    }

    fn announce_status(self: &Arc<Self>, user: &str, online: bool) {
        let event = if online {
            "user.online"
        } else {
            "user.offline"
        };
        self.observe(event, || json!({"user": user, "last_seen": now_ms()}));
        if !self.namespaces.named.contains_key(STATUS_NAMESPACE) {
            return;
        }
        let channel = format!("{STATUS_NAMESPACE}:{user}");
        let body = serde_json::json!({
            "type": "status",
            "user": user,
            "online": online,
            "last_seen": now_ms(),
        });
        let Ok(data) = serde_json::value::to_raw_value(&body) else {
            return;
        };
        let draft = Draft {
            data,
            info: None,
            tags: None,
        };
        let node = self.clone();
        tokio::spawn(async move {
            if let Err(error) = node
                .publish(&channel, draft, PublishOptions::default())
                .await
            {
                tracing::warn!(%channel, code = error.code, "status change not published");
            }
        });
    }
}
