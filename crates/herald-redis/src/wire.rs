//! What travels on a channel's pub/sub channel and in its stream.
//!
//! Publication objects are encoded once by the publishing node, without an
//! offset; the script prefixes the offset and time it assigned, and each
//! receiving node splices the offset into the object.
//!
//! - `p<epoch> <offset> <time_ms> <object>`: a publication kept in history;
//!   a stream entry is the same without the `p<epoch> ` part.
//! - `e<object>`: a publication without history.
//! - `j<push>`: a join or leave push, ready to send.
//! - `r<epoch>`: the history was removed; the stream restarts in this epoch.

use bytes::Bytes;
use herald_core::history::StoredPublication;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChannelMessage<'a> {
    Publication {
        epoch: &'a str,
        publication: StoredPublication,
    },
    Ephemeral(Bytes),
    JoinLeave(Bytes),
    Reset {
        epoch: &'a str,
    },
}

pub(crate) fn decode(payload: &[u8]) -> Option<ChannelMessage<'_>> {
    let (&kind, rest) = payload.split_first()?;
    match kind {
        b'p' => {
            let space = rest.iter().position(|&b| b == b' ')?;
            let epoch = std::str::from_utf8(&rest[..space]).ok()?;
            let publication = decode_entry(&rest[space + 1..])?;
            Some(ChannelMessage::Publication { epoch, publication })
        }
        b'e' => Some(ChannelMessage::Ephemeral(Bytes::copy_from_slice(rest))),
        b'j' => Some(ChannelMessage::JoinLeave(Bytes::copy_from_slice(rest))),
        b'r' => Some(ChannelMessage::Reset {
            epoch: std::str::from_utf8(rest).ok()?,
        }),
        _ => None,
    }
}

/// `<offset> <time_ms> <object without offset>` → the stored publication.
pub(crate) fn decode_entry(entry: &[u8]) -> Option<StoredPublication> {
    let mut parts = entry.splitn(3, |&b| b == b' ');
    let offset = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let time_ms = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let object = herald_protocol::push::with_offset(parts.next()?, offset)?;
    Some(StoredPublication {
        offset,
        time_ms,
        object,
    })
}

pub(crate) fn ephemeral(object: &[u8]) -> Vec<u8> {
    prefixed(b'e', object)
}

pub(crate) fn join_leave(push: &[u8]) -> Vec<u8> {
    prefixed(b'j', push)
}

fn prefixed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(kind);
    out.extend_from_slice(body);
    out
}
