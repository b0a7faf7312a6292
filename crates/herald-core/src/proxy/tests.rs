use super::*;

fn answer(body: &str) -> ProxyAnswer {
    Ok(Bytes::from(body.to_string()))
}

#[test]
fn a_result_allows_with_its_fields() {
    let verdict = judge::<ConnectResult>(
        ProxyKind::Connect,
        answer(
            r#"{"result":{"user":"42","expire_at":1900000000,"info":{"name":"Ann"},"channels":["news"],"meta":{"x":1}}}"#,
        ),
    );
    let Ok(Verdict::Allowed(result)) = verdict else {
        panic!("{verdict:?}");
    };
    assert_eq!(result.user, "42");
    assert_eq!(result.expire_at, 1_900_000_000);
    assert_eq!(result.info.unwrap().get(), r#"{"name":"Ann"}"#);
    assert_eq!(result.channels, ["news"]);
}

#[test]
fn an_error_refuses_with_the_backends_code_and_message() {
    let verdict = judge::<SubscribeResult>(
        ProxyKind::Subscribe,
        answer(r#"{"error":{"code":403,"message":"not yours","temporary":true}}"#),
    );
    let Ok(Verdict::Refused(error)) = verdict else {
        panic!("{verdict:?}");
    };
    assert_eq!(
        (error.code, error.message.as_str(), error.temporary),
        (403, "not yours", true)
    );
}

#[test]
fn a_disconnect_closes_with_the_backends_code() {
    let verdict = judge::<ConnectResult>(
        ProxyKind::Connect,
        answer(r#"{"disconnect":{"code":4501,"reason":"banned"}}"#),
    );
    let Ok(Verdict::Disconnect(disconnect)) = verdict else {
        panic!("{verdict:?}");
    };
    assert_eq!((disconnect.code, &*disconnect.reason), (4501, "banned"));
}

#[test]
fn unusable_answers_are_failures() {
    for body in [
        "not json",
        "{}",
        r#"{"result":{"user":42}}"#,
        r#"{"disconnect":{"code":1000,"reason":"reserved by WebSocket"}}"#,
    ] {
        let verdict = judge::<ConnectResult>(ProxyKind::Connect, answer(body));
        assert!(verdict.is_err(), "{body}: {verdict:?}");
    }
    let unreachable = judge::<RpcResult>(ProxyKind::Rpc, Err("connection refused".into()));
    assert_eq!(unreachable.unwrap_err(), "connection refused");
}

#[test]
fn a_request_body_has_the_askers_fields_then_the_events_without_nulls() {
    let asker = Asker {
        client: "c1",
        transport: "websocket",
        protocol: "json",
        encoding: "json",
        user: Some("42"),
    };
    let body = request_body(
        &asker,
        serde_json::json!({"channel": "chat:1", "data": null, "token": ""}),
    );
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"client": "c1", "transport": "websocket", "protocol": "json",
            "encoding": "json", "user": "42", "channel": "chat:1", "token": ""})
    );
}
