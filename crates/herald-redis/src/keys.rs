//! Where each channel's state lives in Redis.
//!
//! Every key of a channel starts with `<prefix>{<channel>}`, so in a Cluster
//! they all hash to one slot (the `{...}` hash tag) and one script can touch
//! them together; the channel's sharded pub/sub channel is that same name.

pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    /// The pub/sub channel that carries the channel's publications and joins.
    pub fn pubsub(&self, channel: &str) -> String {
        format!("{}{{{channel}}}", self.prefix)
    }

    /// A hash: `e` the epoch, `t` the top offset.
    pub fn meta(&self, channel: &str) -> String {
        format!("{}:m", self.pubsub(channel))
    }

    /// A stream whose entry ids are the offsets.
    pub fn stream(&self, channel: &str) -> String {
        format!("{}:s", self.pubsub(channel))
    }

    pub fn idempotency(&self, channel: &str, key: &str) -> String {
        format!("{}:i:{key}", self.pubsub(channel))
    }

    /// A hash: client id → its presence info as JSON.
    pub fn presence(&self, channel: &str) -> String {
        format!("{}:p", self.pubsub(channel))
    }

    /// A sorted set: client id scored by when its entry expires (ms).
    pub fn presence_expiry(&self, channel: &str) -> String {
        format!("{}:q", self.pubsub(channel))
    }

    /// A sorted set: the nodes where the user has connections, scored by when
    /// the entry expires (ms). Tagged by user, like the next key.
    pub fn user_online(&self, user: &str) -> String {
        format!("{}:user{{{user}}}:online", self.prefix)
    }

    /// When the user's last connection closed (ms).
    pub fn user_seen(&self, user: &str) -> String {
        format!("{}:user{{{user}}}:seen", self.prefix)
    }

    /// The pub/sub channel nodes send commands and heartbeats on.
    pub fn nodes_channel(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// A hash: node id → its last announcement.
    pub fn nodes_info(&self) -> String {
        format!("{}:nodes:info", self.prefix)
    }

    /// The Herald channel a pub/sub channel name belongs to.
    pub fn channel_of<'a>(&self, pubsub: &'a str) -> Option<&'a str> {
        pubsub
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('{')?
            .strip_suffix('}')
    }
}
