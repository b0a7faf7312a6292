//! Pushes: messages the server sends on its own, not in answer to a command.
//!
//! `{"push":{"channel":"news","pub":{...}}}`. A publication push is encoded once
//! per publication and the same bytes go to every subscriber.

use crate::codes::{Disconnect, Unsubscribe};
use crate::reply::{SubscribeResult, encode};
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// Who a connection is: attached to presence, join/leave and client publications.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ClientInfo {
    pub user: String,
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub conn_info: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub chan_info: Option<Box<RawValue>>,
}

#[derive(Debug, Serialize)]
pub struct Publication<'a> {
    pub data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<&'a ClientInfo>,
    #[serde(skip_serializing_if = "is_zero")]
    pub offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<&'a HashMap<String, String>>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Body<'a> {
    Pub(&'a Publication<'a>),
    Join {
        info: &'a ClientInfo,
    },
    Leave {
        info: &'a ClientInfo,
    },
    Unsubscribe(&'a Unsubscribe),
    Subscribe(&'a SubscribeResult<'a>),
    Message {
        data: &'a RawValue,
    },
    Disconnect {
        code: u16,
        reason: &'a str,
        reconnect: bool,
    },
    Refresh {
        expires: bool,
        ttl: u32,
    },
}

#[derive(Serialize)]
struct Push<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    channel: &'a str,
    #[serde(flatten)]
    body: Body<'a>,
}

fn encode_push(channel: &str, body: Body<'_>) -> Bytes {
    #[derive(Serialize)]
    struct Envelope<'a> {
        push: Push<'a>,
    }
    encode(&Envelope {
        push: Push { channel, body },
    })
}

pub fn publication(channel: &str, publication: &Publication<'_>) -> Bytes {
    encode_push(channel, Body::Pub(publication))
}

/// The publication object alone, as history stores it and replies embed it.
pub fn publication_object(publication: &Publication<'_>) -> Bytes {
    encode(publication)
}

/// A publication object encoded without an offset (a broker assigns it later),
/// with `offset` added: the object's closing brace becomes `,"offset":N}`.
pub fn with_offset(object: &[u8], offset: u64) -> Option<Bytes> {
    let body = object.strip_suffix(b"}")?;
    let mut out = Vec::with_capacity(object.len() + 24);
    out.extend_from_slice(body);
    out.extend_from_slice(format!(",\"offset\":{offset}}}").as_bytes());
    Some(Bytes::from(out))
}

/// A `pub` push around an already-encoded publication object, so a publication
/// kept in history is serialized once and framed without re-encoding.
pub fn publication_from_object(channel: &str, object: &[u8]) -> Bytes {
    let channel = serde_json::to_string(channel).expect("strings always serialize");
    let mut out = Vec::with_capacity(object.len() + channel.len() + 32);
    out.extend_from_slice(b"{\"push\":{\"channel\":");
    out.extend_from_slice(channel.as_bytes());
    out.extend_from_slice(b",\"pub\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}}");
    Bytes::from(out)
}

pub fn join(channel: &str, info: &ClientInfo) -> Bytes {
    encode_push(channel, Body::Join { info })
}

pub fn leave(channel: &str, info: &ClientInfo) -> Bytes {
    encode_push(channel, Body::Leave { info })
}

pub fn unsubscribe(channel: &str, unsubscribe: &Unsubscribe) -> Bytes {
    encode_push(channel, Body::Unsubscribe(unsubscribe))
}

pub fn subscribe(channel: &str, result: &SubscribeResult<'_>) -> Bytes {
    encode_push(channel, Body::Subscribe(result))
}

pub fn message(data: &RawValue) -> Bytes {
    encode_push("", Body::Message { data })
}

pub fn disconnect(disconnect: &Disconnect) -> Bytes {
    encode_push(
        "",
        Body::Disconnect {
            code: disconnect.code,
            reason: &disconnect.reason,
            reconnect: disconnect.reconnects(),
        },
    )
}

pub fn refresh(expires: bool, ttl: u32) -> Bytes {
    encode_push("", Body::Refresh { expires, ttl })
}
