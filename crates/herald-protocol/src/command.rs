//! Commands a client sends, decoded from one JSON object.
//!
//! A command is `{"id": N, "<method>": {...}}`. Unknown fields are ignored, so
//! newer SDKs that send extra fields (such as `flag`) keep working. Payload fields
//! (`data`) are raw JSON borrowed from the frame: the server never re-parses them.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;

#[derive(Debug, Default, Deserialize)]
pub struct Command<'a> {
    #[serde(default)]
    pub id: u32,
    #[serde(borrow, default)]
    pub connect: Option<ConnectRequest<'a>>,
    #[serde(borrow, default)]
    pub subscribe: Option<SubscribeRequest<'a>>,
    #[serde(default)]
    pub unsubscribe: Option<ChannelRequest>,
    #[serde(borrow, default)]
    pub publish: Option<PublishRequest<'a>>,
    #[serde(default)]
    pub presence: Option<ChannelRequest>,
    #[serde(default)]
    pub presence_stats: Option<ChannelRequest>,
    #[serde(default)]
    pub history: Option<HistoryRequest>,
    #[serde(default)]
    pub ping: Option<Empty>,
    #[serde(borrow, default)]
    pub send: Option<SendRequest<'a>>,
    #[serde(borrow, default)]
    pub rpc: Option<RpcRequest<'a>>,
    #[serde(default)]
    pub refresh: Option<RefreshRequest>,
    #[serde(default)]
    pub sub_refresh: Option<SubRefreshRequest>,
}

/// Which method a command calls; `Pong` is the empty `{}` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Pong,
    Connect,
    Subscribe,
    Unsubscribe,
    Publish,
    Presence,
    PresenceStats,
    History,
    Ping,
    Send,
    Rpc,
    Refresh,
    SubRefresh,
    /// An object with an id but no method this server knows.
    Unknown,
}

impl Method {
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Pong => "pong",
            Method::Connect => "connect",
            Method::Subscribe => "subscribe",
            Method::Unsubscribe => "unsubscribe",
            Method::Publish => "publish",
            Method::Presence => "presence",
            Method::PresenceStats => "presence_stats",
            Method::History => "history",
            Method::Ping => "ping",
            Method::Send => "send",
            Method::Rpc => "rpc",
            Method::Refresh => "refresh",
            Method::SubRefresh => "sub_refresh",
            Method::Unknown => "unknown",
        }
    }
}

impl Command<'_> {
    pub fn method(&self) -> Method {
        if self.connect.is_some() {
            Method::Connect
        } else if self.subscribe.is_some() {
            Method::Subscribe
        } else if self.unsubscribe.is_some() {
            Method::Unsubscribe
        } else if self.publish.is_some() {
            Method::Publish
        } else if self.presence.is_some() {
            Method::Presence
        } else if self.presence_stats.is_some() {
            Method::PresenceStats
        } else if self.history.is_some() {
            Method::History
        } else if self.ping.is_some() {
            Method::Ping
        } else if self.send.is_some() {
            Method::Send
        } else if self.rpc.is_some() {
            Method::Rpc
        } else if self.refresh.is_some() {
            Method::Refresh
        } else if self.sub_refresh.is_some() {
            Method::SubRefresh
        } else if self.id == 0 {
            Method::Pong
        } else {
            Method::Unknown
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Empty {}

#[derive(Debug, Default, Deserialize)]
pub struct ConnectRequest<'a> {
    #[serde(default)]
    pub token: String,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub subs: HashMap<String, SubscribeRequest<'a>>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct SubscribeRequest<'a> {
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub recover: bool,
    #[serde(default)]
    pub epoch: String,
    #[serde(default)]
    pub offset: u64,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
    #[serde(default)]
    pub positioned: bool,
    #[serde(default)]
    pub recoverable: bool,
    #[serde(default)]
    pub join_leave: bool,
    #[serde(default)]
    pub flag: u64,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChannelRequest {
    #[serde(default)]
    pub channel: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct PublishRequest<'a> {
    #[serde(default)]
    pub channel: String,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamPosition {
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub epoch: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryRequest {
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub limit: i32,
    #[serde(default)]
    pub since: Option<StreamPosition>,
    #[serde(default)]
    pub reverse: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct SendRequest<'a> {
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RpcRequest<'a> {
    #[serde(default)]
    pub method: String,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RefreshRequest {
    #[serde(default)]
    pub token: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct SubRefreshRequest {
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub token: String,
}
