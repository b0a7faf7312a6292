//! Online status across nodes: each node keeps one expiring entry per user it
//! has connections of, so a user counts once however many tabs and nodes they
//! use, and a dead node's users go offline when its entries expire.

use crate::connection::Conn;
use crate::{Shared, unavailable};
use herald_core::history::now_ms;
use herald_core::status::UserStatus;
use herald_protocol::ErrorCode;

/// Adds or refreshes this node's entry for `user`; true when no node had them.
pub(crate) async fn online(
    shared: &Shared,
    conn: &mut Conn,
    user: &str,
) -> Result<bool, ErrorCode> {
    let ttl = shared.settings.presence_ttl;
    let now = now_ms();
    let args = [now + ttl.as_millis() as u64, now, Shared::secs(ttl * 2)];
    change(shared, conn, &shared.scripts.user_online, user, &args).await
}

/// Removes this node's entry for `user`; true when no node has them any more.
pub(crate) async fn offline(
    shared: &Shared,
    conn: &mut Conn,
    user: &str,
) -> Result<bool, ErrorCode> {
    let args = [now_ms(), Shared::secs(shared.settings.history_meta_ttl)];
    change(shared, conn, &shared.scripts.user_offline, user, &args).await
}

/// Runs a status script on `user`'s keys with this node's id and `args`;
/// true when the script reports a change of the user's status.
async fn change(
    shared: &Shared,
    conn: &mut Conn,
    script: &redis::Script,
    user: &str,
    args: &[u64],
) -> Result<bool, ErrorCode> {
    let keys = &shared.keys;
    let mut invocation = script.key(keys.user_online(user));
    invocation
        .key(keys.user_seen(user))
        .arg(&shared.context().node_id);
    for arg in args {
        invocation.arg(*arg);
    }
    let changed: i64 = invocation
        .invoke_async(conn)
        .await
        .map_err(|e| unavailable("user_status", e))?;
    Ok(changed == 1)
}

pub(crate) async fn statuses(
    shared: &Shared,
    mut conn: Conn,
    users: &[String],
) -> Result<Vec<UserStatus>, ErrorCode> {
    let keys = &shared.keys;
    let mut statuses = Vec::with_capacity(users.len());
    for user in users {
        let now = now_ms();
        let mut invocation = shared.scripts.user_status.key(keys.user_online(user));
        invocation
            .key(keys.user_seen(user))
            .arg(now)
            .arg(shared.settings.presence_ttl.as_millis() as u64)
            .arg(Shared::secs(shared.settings.history_meta_ttl));
        let (nodes, seen): (i64, String) = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable("user_status", e))?;
        let online = nodes > 0;
        statuses.push(UserStatus {
            user: user.clone(),
            online,
            last_seen: if online { Some(now) } else { seen.parse().ok() },
        });
    }
    Ok(statuses)
}

/// Refreshes the entries of every user connected to this node.
pub(crate) async fn refresh(shared: &Shared, conn: &mut Conn) {
    for user in shared.context().hub.local_users() {
        if !user.is_empty() {
            let _ = online(shared, conn, &user).await;
        }
    }
}
