use crate::codes::{Disconnect, ErrorCode, Unsubscribe};
use crate::command::Method;
use crate::frame::{FrameDecoder, pack_frame};
use crate::push::{self, ClientInfo, Publication};
use crate::reply::{ConnectResult, Reply};
use bytes::Bytes;
use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{Value, json};

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn decodes_a_batch_of_commands_and_ignores_unknown_fields() {
    let frame = br#"{"id":1,"connect":{"token":"t","name":"js","future_field":1}}
{"id":2,"subscribe":{"channel":"news","flag":3,"recover":true,"offset":5,"epoch":"e"}}

{}"#;
    let commands: Vec<_> = FrameDecoder::new(frame)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(commands.len(), 3);
    assert_eq!(commands[0].method(), Method::Connect);
    assert_eq!(commands[0].connect.as_ref().unwrap().token, "t");
    let subscribe = commands[1].subscribe.as_ref().unwrap();
    assert_eq!(
        (subscribe.channel.as_str(), subscribe.offset, subscribe.flag),
        ("news", 5, 3)
    );
    assert!(subscribe.recover);
    assert_eq!(commands[2].method(), Method::Pong);
}

#[test]
fn an_object_with_an_id_and_no_known_method_is_unknown() {
    let mut decoder = FrameDecoder::new(br#"{"id":7,"teleport":{}}"#).unwrap();
    assert_eq!(decoder.next().unwrap().unwrap().method(), Method::Unknown);
}

#[test]
fn invalid_json_names_the_failing_command() {
    let mut decoder = FrameDecoder::new(b"{}\n{nope").unwrap();
    assert!(decoder.next().unwrap().is_ok());
    let error = decoder.next().unwrap().unwrap_err();
    assert!(
        error.to_string().starts_with("command 1 of the frame"),
        "{error}"
    );
}

#[test]
fn invalid_utf8_is_rejected() {
    assert!(FrameDecoder::new(&[0xff, 0xfe]).is_err());
}

#[test]
fn payload_data_stays_raw_json() {
    let frame = br#"{"id":3,"publish":{"channel":"c","data":{"b":1,  "a":[1,2]}}}"#;
    let command = FrameDecoder::new(frame).unwrap().next().unwrap().unwrap();
    assert_eq!(
        command.publish.unwrap().data.unwrap().get(),
        r#"{"b":1,  "a":[1,2]}"#
    );
}

#[test]
fn error_reply_has_code_and_message_and_temporary_only_when_set() {
    assert_eq!(
        parse(&Reply::error(4, &ErrorCode::PERMISSION_DENIED)),
        json!({"id":4,"error":{"code":103,"message":"permission denied"}})
    );
    assert_eq!(
        parse(&Reply::error(5, &ErrorCode::INTERNAL)),
        json!({"id":5,"error":{"code":100,"message":"internal server error","temporary":true}})
    );
}

#[test]
fn connect_result_omits_defaults() {
    let result = ConnectResult {
        client: "c1",
        version: "0.1.0",
        ping: 25,
        pong: true,
        ..Default::default()
    };
    assert_eq!(
        parse(&Reply::result(1, "connect", &result)),
        json!({"id":1,"connect":{"client":"c1","version":"0.1.0","ping":25,"pong":true}})
    );
}

#[test]
fn pushes_have_the_protocol_shape() {
    let info = ClientInfo {
        user: "42".into(),
        client: "c1".into(),
        conn_info: Some(RawValue::from_string(r#"{"name":"Ann"}"#.into()).unwrap()),
        chan_info: None,
    };
    let data = RawValue::from_string("[1]".into()).unwrap();
    let publication = Publication {
        data: &data,
        info: Some(&info),
        offset: 0,
        tags: None,
    };
    assert_eq!(
        parse(&push::publication("news", &publication)),
        json!({"push":{"channel":"news","pub":{"data":[1],"info":{"user":"42","client":"c1","conn_info":{"name":"Ann"}}}}})
    );
    let object = push::publication_object(&publication);
    assert_eq!(
        push::publication_from_object("news", &object),
        push::publication("news", &publication)
    );
    assert_eq!(
        parse(&push::join("news", &info))["push"]["join"]["info"]["user"],
        json!("42")
    );
    assert_eq!(
        parse(&push::unsubscribe("news", &Unsubscribe::SERVER)),
        json!({"push":{"channel":"news","unsubscribe":{"code":2000,"reason":"server unsubscribe"}}})
    );
    assert_eq!(
        parse(&push::disconnect(&Disconnect::SLOW)),
        json!({"push":{"disconnect":{"code":3008,"reason":"slow","reconnect":true}}})
    );
    assert_eq!(
        parse(&push::message(&data)),
        json!({"push":{"message":{"data":[1]}}})
    );
}

#[test]
fn code_tables_match_the_protocol() {
    let codes: Vec<u32> = ErrorCode::ALL.iter().map(|e| e.code).collect();
    assert_eq!(codes, (100..=112).collect::<Vec<_>>());
    assert!(Disconnect::SHUTDOWN.reconnects());
    assert!(Disconnect::NO_PONG.reconnects());
    assert!(!Disconnect::INVALID_TOKEN.reconnects());
    assert!(!Disconnect::FORCE_DISCONNECT.reconnects());
    assert!(Disconnect::custom(4000, "app").reconnects());
    assert!(!Disconnect::custom(4500, "app").reconnects());
    assert!(!Unsubscribe::SERVER.resubscribes());
    assert!(Unsubscribe::INSUFFICIENT_STATE.resubscribes());
}

proptest! {
    #[test]
    fn packed_frames_split_back_into_the_same_messages(
        payloads in proptest::collection::vec(any::<(u32, String)>(), 1..20)
    ) {
        let messages: Vec<Bytes> = payloads
            .iter()
            .map(|(id, text)| {
                let raw = serde_json::to_string(text).unwrap();
                let data = RawValue::from_string(raw).unwrap();
                Reply::result(id.saturating_add(1), "rpc", &crate::reply::RpcResult { data: Some(&data) })
            })
            .collect();
        let frame = pack_frame(&messages);
        let lines: Vec<Value> = std::str::from_utf8(&frame).unwrap().split('\n').map(|l| parse(l.as_bytes())).collect();
        prop_assert_eq!(lines.len(), payloads.len());
        for (line, (id, text)) in lines.iter().zip(&payloads) {
            prop_assert_eq!(&line["id"], &json!(id.saturating_add(1)));
            prop_assert_eq!(&line["rpc"]["data"], &json!(text));
        }
    }

    #[test]
    fn publish_commands_round_trip_any_json_string_data(channel in "[a-z:#,0-9]{1,40}", text in any::<String>()) {
        let command = json!({"id": 9, "publish": {"channel": channel, "data": {"text": text}}});
        let bytes = serde_json::to_vec(&command).unwrap();
        let decoded = FrameDecoder::new(&bytes).unwrap().next().unwrap().unwrap();
        let publish = decoded.publish.unwrap();
        prop_assert_eq!(&publish.channel, &channel);
        let data: Value = serde_json::from_str(publish.data.unwrap().get()).unwrap();
        prop_assert_eq!(data, json!({"text": text}));
    }
}

#[test]
fn an_offset_is_added_to_an_object_encoded_without_one() {
    let data = serde_json::value::RawValue::from_string(r#"{"text":"hi"}"#.into()).unwrap();
    let object = push::publication_object(&push::Publication {
        data: &data,
        info: None,
        offset: 0,
        tags: None,
    });
    let placed = push::with_offset(&object, 42).expect("an object ends with a brace");
    let value: serde_json::Value = serde_json::from_slice(&placed).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"data": {"text": "hi"}, "offset": 42})
    );
    assert!(push::with_offset(b"not an object", 1).is_none());
}
