//! Replies to commands, encoded to JSON.
//!
//! A reply is `{"id":N,"<method>":{result}}` or `{"id":N,"error":{...}}`. Results
//! omit fields that hold their default value, as the protocol's JSON form does.

use crate::push::ClientInfo;
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Encoders for replies; each returns the finished JSON object as shared bytes.
pub struct Reply;

impl Reply {
    /// The `{}` ping the server sends, and the pong it expects back.
    pub const PING: Bytes = Bytes::from_static(b"{}");

    pub fn result<T: Serialize>(id: u32, method: &'static str, result: &T) -> Bytes {
        #[derive(Serialize)]
        struct Envelope<'a, T> {
            id: u32,
            #[serde(flatten)]
            body: BTreeMap<&'static str, &'a T>,
        }
        let envelope = Envelope {
            id,
            body: BTreeMap::from([(method, result)]),
        };
        encode(&envelope)
    }

    /// An error reply; `error` is an `ErrorCode` or a `DetailedError`.
    pub fn error<E: Serialize>(id: u32, error: &E) -> Bytes {
        #[derive(Serialize)]
        struct Envelope<'a, E> {
            id: u32,
            error: &'a E,
        }
        encode(&Envelope { id, error })
    }
}

/// Serializing these types cannot fail: they hold no maps with non-string keys and
/// their raw JSON was validated when it was parsed.
pub(crate) fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("protocol types always serialize"))
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

fn is_zero_u64(value: &u64) -> bool {
    *value == 0
}

#[derive(Debug, Default, Serialize)]
pub struct EmptyResult {}

#[derive(Debug, Default, Serialize)]
pub struct ConnectResult<'a> {
    pub client: &'a str,
    pub version: &'a str,
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub subs: BTreeMap<String, SubscribeResult<'a>>,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ping: u32,
    #[serde(skip_serializing_if = "is_false")]
    pub pong: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub node: &'a str,
    /// The secret an HTTP-streaming or SSE client names its commands with.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub session: &'a str,
}

#[derive(Debug, Default, Serialize)]
pub struct SubscribeResult<'a> {
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    #[serde(skip_serializing_if = "is_false")]
    pub recoverable: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub epoch: &'a str,
    /// Publication objects, already encoded (see `push::publication_object`).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub publications: Vec<&'a RawValue>,
    #[serde(skip_serializing_if = "is_false")]
    pub recovered: bool,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    #[serde(skip_serializing_if = "is_false")]
    pub positioned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "is_false")]
    pub was_recovering: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct RefreshResult<'a> {
    pub client: &'a str,
    pub version: &'a str,
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
}

#[derive(Debug, Default, Serialize)]
pub struct SubRefreshResult {
    #[serde(skip_serializing_if = "is_false")]
    pub expires: bool,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
}

#[derive(Debug, Default, Serialize)]
pub struct PresenceResult<'a> {
    pub presence: BTreeMap<&'a str, &'a ClientInfo>,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq, Clone, Copy)]
pub struct PresenceStatsResult {
    pub num_clients: u32,
    pub num_users: u32,
}

#[derive(Debug, Default, Serialize)]
pub struct HistoryResult<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub publications: Vec<&'a RawValue>,
    pub epoch: &'a str,
    pub offset: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct PublishResult<'a> {
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub epoch: &'a str,
}

#[derive(Debug, Default, Serialize)]
pub struct RpcResult<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a RawValue>,
}
