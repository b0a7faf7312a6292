//! The session driven with plain bytes: no sockets, no tasks.

use super::*;
use crate::channel::{ChannelOptions, Namespaces};
use crate::node::{ClientLimits, NodeConfig};
use crate::token::{TokenVerifier, VerifierKeys};
use serde_json::{Value, json};

const SECRET: &str = "s";

fn node(limits: ClientLimits) -> Arc<Node> {
    let namespaces = Namespaces {
        without_namespace: ChannelOptions {
            presence: true,
            join_leave: true,
            allow_subscribe_for_client: true,
            allow_publish_for_subscriber: true,
            ..Default::default()
        },
        named: Default::default(),
    };
    let verifier = TokenVerifier::new(&VerifierKeys {
        hmac_secret: Some(SECRET.into()),
        ..Default::default()
    })
    .unwrap();
    Arc::new(Node::new(
        NodeConfig {
            name: "test".into(),
            namespaces,
            limits,
        },
        verifier,
    ))
}

fn session(node: &Arc<Node>) -> (Session, Arc<Outbox>) {
    let outbox = Arc::new(Outbox::new(node.limits.outbox));
    let control = Default::default();
    (Session::new(node.clone(), outbox.clone(), control), outbox)
}

fn token(user: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": user}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Everything queued so far, one JSON value per line.
async fn written(outbox: &Outbox) -> Vec<Value> {
    let mut messages = Vec::new();
    outbox.drain(&mut messages).await;
    messages
        .iter()
        .flat_map(|frame| {
            std::str::from_utf8(frame)
                .unwrap()
                .split('\n')
                .map(|line| serde_json::from_str(line).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

#[tokio::test]
async fn connect_subscribe_and_receive_a_publication() {
    let node = node(ClientLimits::default());
    let (mut session, outbox) = session(&node);
    let frame = format!(
        "{}\n{}",
        json!({"id": 1, "connect": {"token": token("42")}}),
        json!({"id": 2, "subscribe": {"channel": "news"}})
    );
    assert_eq!(session.handle_frame(frame.as_bytes()), Ok(Step::Done));
    let replies = written(&outbox).await;
    assert_eq!(replies[0]["id"], json!(1));
    assert_eq!(replies[1], json!({"id": 2, "subscribe": {}}));
    let draft = crate::engine::Draft {
        data: RawValue::from_string("7".into()).unwrap(),
        info: None,
        tags: None,
    };
    let published = node.publish("news", draft, Default::default()).await;
    assert_eq!(
        published,
        Ok(None),
        "no history in this namespace: no position"
    );
    let push = written(&outbox).await;
    assert_eq!(
        push,
        [json!({"push": {"channel": "news", "pub": {"data": 7}}})]
    );
}

#[tokio::test]
async fn anything_before_connect_is_a_bad_request() {
    let node = node(ClientLimits::default());
    let (mut session, _) = session(&node);
    let frame = json!({"id": 1, "subscribe": {"channel": "x"}}).to_string();
    assert_eq!(
        session.handle_frame(frame.as_bytes()),
        Err(Disconnect::BAD_REQUEST)
    );
}

#[tokio::test]
async fn pings_on_schedule_and_a_missing_pong_disconnects() {
    let limits = ClientLimits {
        ping_interval: Duration::from_secs(5),
        pong_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let node = node(limits);
    let (mut session, outbox) = session(&node);
    let connect = json!({"id": 1, "connect": {"token": token("1")}}).to_string();
    assert_eq!(session.handle_frame(connect.as_bytes()), Ok(Step::Done));
    written(&outbox).await;
    let ping_at = session.next_deadline();
    session.on_timer(ping_at).unwrap();
    assert_eq!(written(&outbox).await, [json!({})]);
    // A pong clears the deadline; the next ping is due an interval later.
    assert_eq!(session.handle_frame(b"{}"), Ok(Step::Done));
    let next_ping = session.next_deadline();
    assert_eq!(next_ping, ping_at + Duration::from_secs(5));
    session.on_timer(next_ping).unwrap();
    let pong_deadline = session.next_deadline();
    assert_eq!(session.on_timer(pong_deadline), Err(Disconnect::NO_PONG));
}

#[tokio::test]
async fn close_leaves_channels_and_unregisters() {
    let node = node(ClientLimits::default());
    let (mut watcher, watcher_outbox) = session(&node);
    let (mut leaving, _) = session(&node);
    for (session, user) in [(&mut watcher, "w"), (&mut leaving, "l")] {
        let frame = format!(
            "{}\n{}",
            json!({"id": 1, "connect": {"token": token(user)}}),
            json!({"id": 2, "subscribe": {"channel": "room", "join_leave": true}})
        );
        assert_eq!(session.handle_frame(frame.as_bytes()), Ok(Step::Done));
    }
    assert_eq!(node.hub.presence_stats("room"), (2, 2));
    written(&watcher_outbox).await;
    leaving.close();
    assert_eq!(node.hub.presence_stats("room"), (1, 1));
    assert_eq!(node.hub.num_clients(), 1);
    let leave = written(&watcher_outbox).await;
    assert_eq!(leave[0]["push"]["leave"]["info"]["user"], json!("l"));
}
