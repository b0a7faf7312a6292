//! The session with a backend behind proxies: each command that asks waits
//! for the answer (`Step::Await`) and follows it. The backend here is a map
//! from event to canned answer, and it records what it was asked.

use super::*;
use crate::control::ControlQueue;
use crate::durable::BoxFuture;
use crate::proxy::{ProxyAnswer, ProxyCall, ProxyKind, ProxyTransport};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
struct Backend {
    answers: HashMap<&'static str, Result<Value, String>>,
    asked: Mutex<Vec<(ProxyKind, Value)>>,
}

impl Backend {
    fn answering(answers: &[(&'static str, Result<Value, &str>)]) -> Arc<Self> {
        Arc::new(Self {
            answers: answers
                .iter()
                .map(|(kind, answer)| (*kind, answer.clone().map_err(str::to_string)))
                .collect(),
            ..Self::default()
        })
    }

    fn asked(&self, kind: ProxyKind) -> Vec<Value> {
        let asked = self.asked.lock().unwrap();
        asked
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, body)| body.clone())
            .collect()
    }
}

impl ProxyTransport for Backend {
    fn enabled(&self, kind: ProxyKind) -> bool {
        self.answers.contains_key(kind.as_str())
    }

    fn proxies_rpc(&self, method: &str) -> bool {
        self.enabled(ProxyKind::Rpc) && !method.contains(':')
    }

    fn call(&self, call: &ProxyCall) -> BoxFuture<'static, ProxyAnswer> {
        let body = serde_json::from_slice(&call.body).unwrap();
        self.asked.lock().unwrap().push((call.kind, body));
        let answer = self.answers[call.kind.as_str()]
            .clone()
            .map(|v| bytes::Bytes::from(v.to_string()));
        Box::pin(std::future::ready(answer))
    }
}

/// A node whose `proxied` namespace asks the backend for subscribes and publishes.
fn node_with(backend: Arc<Backend>) -> Arc<Node> {
    let (mut config, verifier) = node_parts(ClientLimits::default());
    let proxied = ChannelOptions {
        subscribe_proxy_enabled: true,
        publish_proxy_enabled: true,
        sub_refresh_proxy_enabled: true,
        ..Default::default()
    };
    config.namespaces.named.insert("proxied".into(), proxied);
    let node = Arc::new(Node::new(config, verifier));
    node.set_proxy(backend);
    node
}

/// Runs `frame` through the session, answering every wait as the transport does.
async fn run(session: &mut Session, node: &Node, frame: &str) -> Result<Step, Disconnect> {
    let mut step = session.handle_frame(frame.as_bytes());
    while let Ok(Step::Await(wait)) = step {
        let prepared = node.prepare(wait).await;
        step = session.resume(frame.as_bytes(), prepared);
    }
    step
}

fn with_headers(node: &Arc<Node>) -> (Session, Arc<Outbox>, Arc<ControlQueue>) {
    let outbox = Arc::new(Outbox::new(node.limits.outbox));
    let control = Arc::new(ControlQueue::default());
    let request = ClientRequest {
        transport: "sse",
        headers: vec![("cookie".to_string(), "sessionid=abc".to_string())].into(),
    };
    let session =
        Session::new(node.clone(), outbox.clone(), control.clone()).with_client_request(request);
    (session, outbox, control)
}

const CONNECT: &str = r#"{"id":1,"connect":{"name":"js","version":"5.0","data":{"hello":1}}}"#;

#[tokio::test]
async fn a_connect_without_token_asks_the_backend_who_it_is() {
    let backend = Backend::answering(&[(
        "connect",
        Ok(
            json!({"result": {"user": "42", "info": {"name": "Ann"}, "data": {"welcome": true}, "channels": ["news"]}}),
        ),
    )]);
    let node = node_with(backend.clone());
    let (mut session, outbox, _) = with_headers(&node);
    let wait = session.handle_frame(CONNECT.as_bytes()).unwrap();
    let Step::Await(wait) = wait else {
        panic!("the connect must wait for the backend");
    };
    let call = wait.proxy.clone().unwrap();
    assert_eq!(call.kind, ProxyKind::Connect);
    assert_eq!(
        &*call.headers,
        [("cookie".to_string(), "sessionid=abc".to_string())]
    );
    assert_eq!(
        session.resume(CONNECT.as_bytes(), node.prepare(wait).await),
        Ok(Step::Done)
    );
    let replies = written(&outbox).await;
    let connect = &replies[0]["connect"];
    assert_eq!(connect["data"], json!({"welcome": true}));
    assert!(connect["subs"].get("news").is_some(), "{replies:?}");
    let asked = &backend.asked(ProxyKind::Connect)[0];
    assert_eq!(
        asked["client"], connect["client"],
        "the backend is told the client id the client gets"
    );
    assert_eq!(
        (&asked["transport"], &asked["protocol"], &asked["encoding"]),
        (&json!("sse"), &json!("json"), &json!("json"))
    );
    assert_eq!(
        (&asked["name"], &asked["version"]),
        (&json!("js"), &json!("5.0"))
    );
    assert_eq!(asked["data"], json!({"hello": 1}));
    assert!(
        asked.get("user").is_none(),
        "nobody is known before connect"
    );
    assert_eq!(node.hub.user_connection_count("42"), 1);
}

#[tokio::test]
async fn the_backends_error_disconnect_or_silence_reach_the_client() {
    // The backend's answer, and the error code the client gets (Ok) or the
    // disconnect code it is closed with (Err).
    type Case<'a> = (Result<Value, &'a str>, Result<u32, u16>);
    let cases: [Case; 3] = [
        (
            Ok(json!({"error": {"code": 1001, "message": "login first"}})),
            Ok(1001),
        ),
        (
            Ok(json!({"disconnect": {"code": 4403, "reason": "banned"}})),
            Err(4403),
        ),
        (Err("connection refused"), Ok(100)),
    ];
    for (answer, expected) in cases {
        let node = node_with(Backend::answering(&[("connect", answer)]));
        let (mut session, outbox, _) = with_headers(&node);
        let step = run(&mut session, &node, CONNECT).await;
        match expected {
            Ok(code) => {
                assert_eq!(step, Ok(Step::Done));
                let replies = written(&outbox).await;
                assert_eq!(replies[0]["error"]["code"], json!(code), "{replies:?}");
            }
            Err(code) => assert_eq!(step.unwrap_err().code, code),
        }
        assert_eq!(node.hub.num_clients(), 0);
    }
}

async fn connected_with(
    backend: &Arc<Backend>,
) -> (Arc<Node>, Session, Arc<Outbox>, Arc<ControlQueue>) {
    let node = node_with(backend.clone());
    let (mut session, outbox, control) = with_headers(&node);
    let frame = json!({"id": 1, "connect": {"token": token("42")}}).to_string();
    assert_eq!(run(&mut session, &node, &frame).await, Ok(Step::Done));
    written(&outbox).await;
    (node, session, outbox, control)
}

#[tokio::test]
async fn a_subscribe_follows_the_backend_with_its_data_and_overrides() {
    let backend = Backend::answering(&[(
        "subscribe",
        Ok(
            json!({"result": {"info": {"role": "staff"}, "data": {"state": 3}, "override": {"presence": {"value": true}}}}),
        ),
    )]);
    let (node, mut session, outbox, _) = connected_with(&backend).await;
    let frame = r#"{"id":2,"subscribe":{"channel":"proxied:1","data":{"why":"look"}}}"#;
    assert_eq!(run(&mut session, &node, frame).await, Ok(Step::Done));
    let replies = written(&outbox).await;
    assert_eq!(
        replies[0]["subscribe"]["data"],
        json!({"state": 3}),
        "{replies:?}"
    );
    let asked = &backend.asked(ProxyKind::Subscribe)[0];
    assert_eq!(
        (&asked["user"], &asked["channel"]),
        (&json!("42"), &json!("proxied:1"))
    );
    assert_eq!(asked["data"], json!({"why": "look"}));
    let presence = node.hub.presence("proxied:1");
    assert_eq!(presence.len(), 1, "the override turned presence on");
    assert_eq!(
        presence[0].chan_info.as_ref().unwrap().get(),
        r#"{"role":"staff"}"#
    );
}

#[tokio::test]
async fn a_refused_subscribe_answers_the_backends_code() {
    let backend = Backend::answering(&[(
        "subscribe",
        Ok(json!({"error": {"code": 403, "message": "not your order"}})),
    )]);
    let (node, mut session, outbox, _) = connected_with(&backend).await;
    let frame = r#"{"id":2,"subscribe":{"channel":"proxied:1"}}"#;
    assert_eq!(run(&mut session, &node, frame).await, Ok(Step::Done));
    let replies = written(&outbox).await;
    assert_eq!(
        replies[0]["error"],
        json!({"code": 403, "message": "not your order"})
    );
    assert_eq!(node.hub.num_subscriptions(), 0);
}

#[tokio::test]
async fn a_publish_goes_out_as_the_backend_rewrote_it_or_not_at_all() {
    let backend = Backend::answering(&[
        ("subscribe", Ok(json!({"result": {}}))),
        ("publish", Ok(json!({"result": {"data": {"text": "***"}}}))),
    ]);
    let (node, mut session, outbox, _) = connected_with(&backend).await;
    let frame = format!(
        "{}\n{}",
        r#"{"id":2,"subscribe":{"channel":"proxied:1"}}"#,
        r#"{"id":3,"publish":{"channel":"proxied:1","data":{"text":"darn"}}}"#
    );
    assert_eq!(run(&mut session, &node, &frame).await, Ok(Step::Done));
    let replies = written(&outbox).await;
    let publication = replies
        .iter()
        .find(|r| r["push"]["pub"].is_object())
        .unwrap_or_else(|| panic!("no publication in {replies:?}"));
    assert_eq!(publication["push"]["pub"]["data"], json!({"text": "***"}));
    assert_eq!(
        backend.asked(ProxyKind::Publish)[0]["data"],
        json!({"text": "darn"})
    );

    let refusing = Backend::answering(&[(
        "publish",
        Ok(json!({"error": {"code": 1403, "message": "muted"}})),
    )]);
    let (node, mut session, outbox, _) = connected_with(&refusing).await;
    let frame = r#"{"id":3,"publish":{"channel":"proxied:1","data":{}}}"#;
    assert_eq!(run(&mut session, &node, frame).await, Ok(Step::Done));
    assert_eq!(written(&outbox).await[0]["error"]["code"], json!(1403));
}

#[tokio::test]
async fn rpc_goes_to_the_backend_only_for_the_methods_it_routes() {
    let backend = Backend::answering(&[("rpc", Ok(json!({"result": {"data": {"price": 7}}})))]);
    let (node, mut session, outbox, _) = connected_with(&backend).await;
    let frame = format!(
        "{}\n{}",
        r#"{"id":2,"rpc":{"method":"getPrice","data":{"sku":1}}}"#,
        r#"{"id":3,"rpc":{"method":"other:thing"}}"#
    );
    assert_eq!(run(&mut session, &node, &frame).await, Ok(Step::Done));
    let replies = written(&outbox).await;
    assert_eq!(replies[0], json!({"id": 2, "rpc": {"data": {"price": 7}}}));
    assert_eq!(replies[1]["error"]["code"], json!(104));
    let asked = &backend.asked(ProxyKind::Rpc);
    assert_eq!(asked.len(), 1);
    assert_eq!(
        (&asked[0]["method"], &asked[0]["data"]),
        (&json!("getPrice"), &json!({"sku": 1}))
    );
}

#[tokio::test]
async fn an_expiring_proxied_connection_asks_the_refresh_proxy_and_follows_it() {
    let expire_at = crate::unix_now() + 1;
    let backend = Backend::answering(&[
        (
            "connect",
            Ok(json!({"result": {"user": "42", "expire_at": expire_at}})),
        ),
        ("refresh", Ok(json!({"result": {"expired": true}}))),
    ]);
    let node = node_with(backend.clone());
    let (mut session, outbox, control) = with_headers(&node);
    assert_eq!(run(&mut session, &node, CONNECT).await, Ok(Step::Done));
    let replies = written(&outbox).await;
    assert!(
        replies[0]["connect"].get("expires").is_none(),
        "the client does not refresh itself"
    );
    let due = session.next_deadline();
    assert!(
        due <= Instant::now() + Duration::from_secs(2),
        "refresh is due at expire_at"
    );
    assert_eq!(session.on_timer(due + Duration::from_millis(1)), Ok(()));
    let answer = tokio::time::timeout(Duration::from_secs(5), control.recv())
        .await
        .expect("the refresh is asked in the background");
    assert_eq!(session.handle_control(answer), Err(Disconnect::EXPIRED));
    assert_eq!(backend.asked(ProxyKind::Refresh)[0]["user"], json!("42"));
}
