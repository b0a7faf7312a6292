//! What nodes share besides channels: presence entries, announcements of
//! themselves, and server-API commands for users connected elsewhere.
//!
//! Each node refreshes the presence entries of its own subscribers; an entry
//! whose node died is no longer refreshed and is dropped when it expires.

use crate::connection::Conn;
use crate::{Shared, unavailable};
use herald_core::broker::NodeCommand;
use herald_core::history::now_ms;
use herald_core::node::NodeInfo;
use herald_protocol::ErrorCode;
use herald_protocol::push::ClientInfo;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// A message on the nodes' channel.
#[derive(Serialize, Deserialize)]
struct NodeMessage {
    from: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    heartbeat: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<NodeCommand>,
}

/// A node's announcement in the registry hash.
#[derive(Serialize, Deserialize)]
struct Announcement {
    seen_ms: u64,
    info: NodeInfo,
}

/// Handles a message from the nodes' channel; true for this node's own
/// heartbeat, which proves its subscription still delivers.
pub(crate) fn on_message(shared: &Shared, payload: &[u8]) -> bool {
    let Ok(message) = serde_json::from_slice::<NodeMessage>(payload) else {
        tracing::warn!("unreadable message on the nodes' channel; skipped");
        return false;
    };
    let context = shared.context();
    if message.from == context.node_id {
        return message.heartbeat;
    }
    if let Some(command) = message.command {
        command.apply(&context.hub);
    }
    false
}

fn publish_to_nodes(shared: &Arc<Shared>, mut conn: Conn, message: NodeMessage) {
    let channel = shared.keys.nodes_channel();
    let shared = shared.clone();
    tokio::spawn(async move {
        let payload = serde_json::to_vec(&message).expect("node messages serialize");
        let sent = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .exec_async(&mut conn)
            .await;
        if let Err(error) = sent {
            let reason = format!("heartbeat or node command failed: {error}");
            if message.heartbeat {
                let _ = shared
                    .events
                    .send(crate::supervisor::Event::HeartbeatFailed(reason));
            } else {
                unavailable("node_command", reason);
            }
        }
    });
}

pub(crate) fn spawn_command(shared: &Arc<Shared>, conn: Conn, command: &NodeCommand) {
    let message = NodeMessage {
        from: shared.context().node_id.clone(),
        heartbeat: false,
        command: Some(command.clone()),
    };
    publish_to_nodes(shared, conn, message);
}

/// Sends this node's heartbeat (it must come back to us) and announces its
/// counts in the registry.
pub(crate) fn spawn_heartbeat(shared: &Arc<Shared>, mut conn: Conn) {
    let context = shared.context();
    let message = NodeMessage {
        from: context.node_id.clone(),
        heartbeat: true,
        command: None,
    };
    publish_to_nodes(shared, conn.clone(), message);
    let announcement = Announcement {
        seen_ms: now_ms(),
        info: NodeInfo::of(
            &context.hub,
            &context.node_id,
            &context.name,
            context.started,
        ),
    };
    let key = shared.keys.nodes_info();
    let id = context.node_id.clone();
    tokio::spawn(async move {
        let json = serde_json::to_string(&announcement).expect("announcements serialize");
        if let Err(error) = redis::cmd("HSET")
            .arg(key)
            .arg(id)
            .arg(json)
            .exec_async(&mut conn)
            .await
        {
            unavailable("announce", error);
        }
    });
}

/// The nodes that announced themselves within a few heartbeats; older
/// announcements (nodes that stopped) are removed.
pub(crate) async fn list(shared: &Shared, mut conn: Conn) -> Result<Vec<NodeInfo>, ErrorCode> {
    let key = shared.keys.nodes_info();
    let all: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .map_err(|e| unavailable("info", e))?;
    let oldest = now_ms().saturating_sub((shared.settings.heartbeat * 5).as_millis() as u64);
    let mut nodes = Vec::new();
    let mut stale = Vec::new();
    for (id, json) in all {
        match serde_json::from_str::<Announcement>(&json) {
            Ok(announcement) if announcement.seen_ms >= oldest => nodes.push(announcement.info),
            _ => stale.push(id),
        }
    }
    if !stale.is_empty() {
        let removed = redis::cmd("HDEL")
            .arg(&key)
            .arg(stale)
            .exec_async(&mut conn)
            .await;
        if let Err(error) = removed {
            unavailable("info", error);
        }
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name).then(a.uid.cmp(&b.uid)));
    Ok(nodes)
}

async fn presence_add(shared: &Shared, conn: &mut Conn, channel: &str, info: &ClientInfo) {
    let keys = &shared.keys;
    let ttl = shared.settings.presence_ttl;
    let json = serde_json::to_string(info).expect("client info serializes");
    let mut invocation = shared.scripts.presence_add.key(keys.presence(channel));
    invocation
        .key(keys.presence_expiry(channel))
        .arg(&info.client)
        .arg(json)
        .arg(now_ms() + ttl.as_millis() as u64)
        .arg(Shared::secs(ttl * 2));
    if let Err(error) = invocation.invoke_async::<i64>(conn).await {
        unavailable("presence", error);
    }
}

/// A subscriber's presence entry to add (its info) or remove (its client id).
pub(crate) enum PresenceChange {
    Joined(Option<ClientInfo>),
    Left(Option<String>),
}

/// Writes a subscriber's presence change, then publishes its join or leave
/// push: whoever receives the push finds presence already up to date.
pub(crate) fn spawn_membership(
    shared: &Arc<Shared>,
    mut conn: Conn,
    channel: &str,
    change: PresenceChange,
    push: Option<bytes::Bytes>,
) {
    let shared = shared.clone();
    let channel = channel.to_string();
    tokio::spawn(async move {
        match change {
            PresenceChange::Joined(Some(info)) => {
                presence_add(&shared, &mut conn, &channel, &info).await;
            }
            PresenceChange::Left(Some(client)) => {
                presence_remove(&shared, &mut conn, &channel, &client).await;
            }
            PresenceChange::Joined(None) | PresenceChange::Left(None) => {}
        }
        let Some(push) = push else {
            return;
        };
        let published = redis::cmd(conn.publish_command())
            .arg(shared.keys.pubsub(&channel))
            .arg(crate::wire::join_leave(&push))
            .exec_async(&mut conn)
            .await;
        if let Err(error) = published {
            unavailable("join_leave", error);
        }
    });
}

async fn presence_remove(shared: &Shared, conn: &mut Conn, channel: &str, client: &str) {
    let keys = &shared.keys;
    let mut invocation = shared.scripts.presence_remove.key(keys.presence(channel));
    invocation.key(keys.presence_expiry(channel)).arg(client);
    if let Err(error) = invocation.invoke_async::<i64>(conn).await {
        unavailable("presence", error);
    }
}

/// Re-adds every local presence entry and online-status entry with a fresh expiry.
pub(crate) fn spawn_presence_refresh(shared: &Arc<Shared>, mut conn: Conn) {
    let shared = shared.clone();
    tokio::spawn(async move {
        for (channel, info) in shared.context().hub.local_presence() {
            presence_add(&shared, &mut conn, &channel, &info).await;
        }
        crate::status::refresh(&shared, &mut conn).await;
    });
}

pub(crate) async fn presence(
    shared: &Shared,
    mut conn: Conn,
    channel: &str,
) -> Result<Vec<ClientInfo>, ErrorCode> {
    let keys = &shared.keys;
    let mut invocation = shared.scripts.presence_get.key(keys.presence(channel));
    invocation.key(keys.presence_expiry(channel)).arg(now_ms());
    let entries: Vec<String> = invocation
        .invoke_async(&mut conn)
        .await
        .map_err(|e| unavailable("presence", e))?;
    Ok(entries
        .iter()
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect())
}
