//! The Lua scripts, run with EVALSHA, that keep each channel's state atomic.
//!
//! Every script touches only keys of one channel (one Cluster slot), and the
//! publishing scripts send the pub/sub message themselves: offset assignment,
//! the history append and the fan-out message happen as one step, so every
//! node sees a channel's publications in offset order.

use redis::Script;

/// KEYS: meta, stream, idempotency key.
/// ARGV: object, history size, history ttl (ms), meta ttl (s), idempotency ttl (s),
/// pub/sub channel, publish command, now (ms), epoch to start with, "1" to dedupe.
/// Returns `{"ok"|"dup", "<offset> <epoch>"}`.
const PUBLISH: &str = r#"
if ARGV[10] == '1' then
  local seen = redis.call('GET', KEYS[3])
  if seen then return {'dup', seen} end
end
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[9]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch)
end
local top = redis.call('HINCRBY', KEYS[1], 't', 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
local entry = top .. ' ' .. ARGV[8] .. ' ' .. ARGV[1]
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], top .. '-1', 'd', entry)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call(ARGV[7], ARGV[6], 'p' .. epoch .. ' ' .. entry)
local position = top .. ' ' .. epoch
if ARGV[10] == '1' then
  redis.call('SET', KEYS[3], position, 'EX', ARGV[5])
end
return {'ok', position}
"#;

/// KEYS: idempotency key (or any key of the channel).
/// ARGV: message, pub/sub channel, publish command, idempotency ttl (s), "1" to dedupe.
/// Returns 1 when sent, 0 for a repeated key.
const PUBLISH_EPHEMERAL: &str = r#"
if ARGV[5] == '1' then
  if not redis.call('SET', KEYS[1], '0', 'NX', 'EX', ARGV[4]) then return 0 end
end
redis.call(ARGV[3], ARGV[2], ARGV[1])
return 1
"#;

/// KEYS: meta, stream. ARGV: epoch to start with, meta ttl (s).
/// Returns `{epoch, top, entry...}` oldest first.
const LOAD: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 't', 0)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
local out = {epoch, redis.call('HGET', KEYS[1], 't') or '0'}
for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do
  out[#out + 1] = entry[2][2]
end
return out
"#;

/// KEYS: meta, stream. ARGV: new epoch, meta ttl (s), pub/sub channel, publish command.
const REMOVE: &str = r#"
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'e', ARGV[1], 't', 0)
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call(ARGV[4], ARGV[3], 'r' .. ARGV[1])
return 1
"#;

/// KEYS: presence hash, expiry set. ARGV: client, info JSON, expires (ms), key ttl (s).
const PRESENCE_ADD: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"#;

/// KEYS: presence hash, expiry set. ARGV: client.
const PRESENCE_REMOVE: &str = r#"
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"#;

/// KEYS: presence hash, expiry set. ARGV: now (ms). Drops expired entries
/// (a dead node's) and returns the live ones.
const PRESENCE_GET: &str = r#"
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, client in ipairs(expired) do
  redis.call('HDEL', KEYS[1], client)
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
end
return redis.call('HVALS', KEYS[1])
"#;

/// KEYS: user's online set, seen key. ARGV: node, expires (ms), now (ms), key ttl (s).
/// Adds or refreshes this node's entry; returns 1 when no node had the user.
const USER_ONLINE: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if before == 0 then return 1 end
return 0
"#;

/// KEYS: user's online set, seen key. ARGV: node, now (ms), seen ttl (s).
/// Returns 1 when no node has the user any more.
const USER_OFFLINE: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
if redis.call('ZCARD', KEYS[1]) == 0 then return 1 end
return 0
"#;

/// KEYS: user's online set, seen key. ARGV: now (ms), entry ttl (ms), seen ttl (s).
/// Entries of dead nodes expire here, and leave when they were last refreshed
/// as the user's last-seen time. Returns `{nodes online, last seen or ""}`.
const USER_STATUS: &str = r#"
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES')
if #expired > 0 then
  local refreshed = tonumber(expired[#expired]) - tonumber(ARGV[2])
  local seen = tonumber(redis.call('GET', KEYS[2]) or '0')
  if refreshed > seen then
    redis.call('SET', KEYS[2], string.format('%d', refreshed), 'EX', ARGV[3])
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
end
return {redis.call('ZCARD', KEYS[1]), redis.call('GET', KEYS[2]) or ''}
"#;

pub(crate) struct Scripts {
    pub publish: Script,
    pub publish_ephemeral: Script,
    pub load: Script,
    pub remove: Script,
    pub presence_add: Script,
    pub presence_remove: Script,
    pub presence_get: Script,
    pub user_online: Script,
    pub user_offline: Script,
    pub user_status: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            publish: Script::new(PUBLISH),
            publish_ephemeral: Script::new(PUBLISH_EPHEMERAL),
            load: Script::new(LOAD),
            remove: Script::new(REMOVE),
            presence_add: Script::new(PRESENCE_ADD),
            presence_remove: Script::new(PRESENCE_REMOVE),
            presence_get: Script::new(PRESENCE_GET),
            user_online: Script::new(USER_ONLINE),
            user_offline: Script::new(USER_OFFLINE),
            user_status: Script::new(USER_STATUS),
        }
    }
}
