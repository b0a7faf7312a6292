use super::*;
use crate::wire::{ChannelMessage, decode};

#[test]
fn every_key_of_a_channel_shares_its_hash_tag() {
    let keys = Keys::new("app1");
    let channel = "chat:room}1";
    let tag = |key: &str| {
        let open = key.find('{').unwrap();
        let close = open + key[open..].find('}').unwrap();
        key[open + 1..close].to_string()
    };
    let all = [
        keys.pubsub(channel),
        keys.meta(channel),
        keys.stream(channel),
        keys.idempotency(channel, "k"),
        keys.presence(channel),
        keys.presence_expiry(channel),
    ];
    for key in &all {
        assert!(key.starts_with("app1{"), "{key} carries the prefix");
        assert_eq!(tag(key), tag(&all[0]), "{key}");
    }
    assert_eq!(keys.channel_of(&keys.pubsub(channel)), Some(channel));
    assert_eq!(Keys::new("other").channel_of(&keys.pubsub(channel)), None);
}

#[test]
fn channel_messages_decode_to_what_was_published() {
    let Some(ChannelMessage::Publication { epoch, publication }) =
        decode(br#"pab12 7 1700000000000 {"data":{"x":1}}"#)
    else {
        panic!("a publication decodes");
    };
    assert_eq!(epoch, "ab12");
    assert_eq!(
        (publication.offset, publication.time_ms),
        (7, 1_700_000_000_000)
    );
    let object: serde_json::Value = serde_json::from_slice(&publication.object).unwrap();
    assert_eq!(object, serde_json::json!({"data": {"x": 1}, "offset": 7}));
    assert_eq!(
        decode(&wire::ephemeral(br#"{"data":1}"#)),
        Some(ChannelMessage::Ephemeral(bytes::Bytes::from_static(
            br#"{"data":1}"#
        )))
    );
    assert_eq!(
        decode(b"rnewepoch"),
        Some(ChannelMessage::Reset { epoch: "newepoch" })
    );
    assert_eq!(decode(b"p no-offset"), None);
    assert_eq!(decode(b"x"), None);
    assert_eq!(decode(b""), None);
}

#[test]
fn positions_and_urls_are_read_and_shown_safely() {
    let position = parse_position("12 abc").unwrap();
    assert_eq!((position.offset, &*position.epoch), (12, "abc"));
    assert!(parse_position("abc").is_none());
    assert_eq!(
        redact("redis://:secret@10.0.0.1:6379/0"),
        "redis://***@10.0.0.1:6379/0"
    );
    assert_eq!(redact("redis://10.0.0.1:6379"), "redis://10.0.0.1:6379");
}
