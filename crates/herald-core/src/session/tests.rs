//! The session driven with plain bytes: no sockets, no tasks.

use super::*;
use crate::channel::{ChannelOptions, Namespaces};
use crate::node::{ClientLimits, NodeConfig};
use crate::token::{TokenVerifier, VerifierKeys};
use serde_json::{Value, json};

const SECRET: &str = "s";

fn node(limits: ClientLimits) -> Arc<Node> {
    let (config, verifier) = node_parts(limits);
    Arc::new(Node::new(config, verifier))
}

fn node_parts(limits: ClientLimits) -> (NodeConfig, TokenVerifier) {
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
    let config = NodeConfig {
        name: "test".into(),
        namespaces,
        limits,
    };
    (config, verifier)
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

/// Connects user 42 and subscribes it to "news", in one frame.
fn connect_to_news(session: &mut Session) {
    let frame = format!(
        "{}\n{}",
        json!({"id": 1, "connect": {"token": token("42")}}),
        json!({"id": 2, "subscribe": {"channel": "news"}})
    );
    assert_eq!(session.handle_frame(frame.as_bytes()), Ok(Step::Done));
}

async fn publish_seven(node: &Node) -> Result<Option<crate::history::Position>, ErrorCode> {
    let draft = crate::engine::Draft {
        data: RawValue::from_string("7".into()).unwrap(),
        info: None,
        tags: None,
    };
    node.publish("news", draft, Default::default()).await
}

#[tokio::test]
async fn connect_subscribe_and_receive_a_publication() {
    let node = node(ClientLimits::default());
    let (mut session, outbox) = session(&node);
    connect_to_news(&mut session);
    let replies = written(&outbox).await;
    assert_eq!(replies[0]["id"], json!(1));
    assert_eq!(replies[1], json!({"id": 2, "subscribe": {}}));
    let published = publish_seven(&node).await;
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

/// The server API's disconnect answers only after the client's outbox is
/// closed, so a publication made after that answer is never delivered: tests
/// and backends may publish a "gap" right after forcing a reconnect.
#[tokio::test]
async fn nothing_published_after_disconnect_user_returns_reaches_the_client() {
    let node = node(ClientLimits::default());
    let (mut session, outbox) = session(&node);
    connect_to_news(&mut session);
    assert_eq!(
        written(&outbox).await.len(),
        2,
        "connect and subscribe replies"
    );
    let kick = Disconnect {
        code: 3011,
        reason: "force reconnect".into(),
    };
    node.disconnect_user("42", None, kick.clone());
    publish_seven(&node).await.unwrap();
    let mut after = Vec::new();
    let drained = outbox.drain(&mut after).await;
    assert_eq!(drained.close, Some(kick));
    assert!(
        after.is_empty(),
        "delivered after the disconnect: {after:?}"
    );
}

/// Likewise the server API's unsubscribe: delivery on the channel stops before
/// it answers; the session's own work (the unsubscribe push) follows.
#[tokio::test]
async fn nothing_published_after_unsubscribe_user_returns_reaches_the_client() {
    let node = node(ClientLimits::default());
    let outbox = Arc::new(Outbox::new(node.limits.outbox));
    let control: Arc<ControlQueue> = Default::default();
    let mut session = Session::new(node.clone(), outbox.clone(), control.clone());
    connect_to_news(&mut session);
    assert_eq!(
        written(&outbox).await.len(),
        2,
        "connect and subscribe replies"
    );
    node.unsubscribe_user("42", "news", None).unwrap();
    assert_eq!(publish_seven(&node).await, Ok(None));
    assert_eq!(session.handle_control(control.recv().await), Ok(Step::Done));
    let after = written(&outbox).await;
    assert_eq!(
        after,
        [
            json!({"push": {"channel": "news", "unsubscribe": {"code": 2000, "reason": "server unsubscribe"}}})
        ],
        "only the unsubscribe push, no publication"
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

/// A broker whose channels become ready when the test says so.
#[derive(Default)]
struct GatedBroker {
    ready: std::sync::Mutex<std::collections::HashSet<String>>,
    watches: std::sync::Mutex<HashMap<String, usize>>,
}

impl GatedBroker {
    fn open(&self, channel: &str) {
        self.ready.lock().unwrap().insert(channel.to_string());
    }

    fn watches(&self, channel: &str) -> usize {
        self.watches
            .lock()
            .unwrap()
            .get(channel)
            .copied()
            .unwrap_or(0)
    }
}

impl crate::broker::Broker for GatedBroker {
    fn publish<'a>(
        &'a self,
        _: crate::broker::BrokerPublish<'a>,
    ) -> crate::durable::BoxFuture<'a, Result<Option<crate::history::Position>, ErrorCode>> {
        Box::pin(async { Ok(None) })
    }
    fn remove_history<'a>(
        &'a self,
        _: &'a str,
    ) -> crate::durable::BoxFuture<'a, Result<(), ErrorCode>> {
        Box::pin(async { Ok(()) })
    }
    fn joined(&self, _: &str, _: Option<&ClientInfo>, _: Option<Bytes>) {}
    fn left(&self, _: &str, _: &str, _: bool, _: Option<Bytes>) {}
    fn watch(&self, channel: &str) {
        *self
            .watches
            .lock()
            .unwrap()
            .entry(channel.into())
            .or_default() += 1;
    }
    fn unwatch(&self, channel: &str) {
        *self
            .watches
            .lock()
            .unwrap()
            .entry(channel.into())
            .or_default() -= 1;
    }
    fn is_ready(&self, channel: &str) -> bool {
        self.ready.lock().unwrap().contains(channel)
    }
    fn until_ready<'a>(
        &'a self,
        _: &'a str,
    ) -> crate::durable::BoxFuture<'a, Result<(), ErrorCode>> {
        Box::pin(async { Ok(()) })
    }
    fn presence<'a>(
        &'a self,
        _: &'a str,
    ) -> crate::durable::BoxFuture<'a, Result<Vec<ClientInfo>, ErrorCode>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn user_connected<'a>(
        &'a self,
        _: &'a str,
    ) -> crate::durable::BoxFuture<'a, Result<bool, ErrorCode>> {
        Box::pin(async { Ok(false) })
    }
    fn user_disconnected<'a>(
        &'a self,
        _: &'a str,
    ) -> crate::durable::BoxFuture<'a, Result<bool, ErrorCode>> {
        Box::pin(async { Ok(false) })
    }
    fn user_status<'a>(
        &'a self,
        _: &'a [String],
    ) -> crate::durable::BoxFuture<'a, Result<Vec<crate::status::UserStatus>, ErrorCode>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn command_nodes(&self, _: &crate::broker::NodeCommand) {}
    fn nodes(
        &self,
    ) -> crate::durable::BoxFuture<'_, Result<Vec<crate::node::NodeInfo>, ErrorCode>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
}

fn brokered() -> (Arc<Node>, Arc<GatedBroker>) {
    let broker = Arc::new(GatedBroker::default());
    let (config, verifier) = node_parts(ClientLimits::default());
    let node = Node::with_broker(config, verifier, broker.clone());
    (Arc::new(node), broker)
}

#[tokio::test]
async fn a_subscribe_waits_for_its_channel_without_effect_then_runs_in_order() {
    let (node, broker) = brokered();
    let (mut session, outbox) = session(&node);
    let connect = json!({"id": 1, "connect": {"token": token("42")}}).to_string();
    assert_eq!(session.handle_frame(connect.as_bytes()), Ok(Step::Done));
    written(&outbox).await;
    let frame = format!(
        "{}\n{}",
        json!({"id": 2, "subscribe": {"channel": "news"}}),
        json!({"id": 3, "ping": {}})
    );
    let step = session.handle_frame(frame.as_bytes());
    assert_eq!(step, Ok(Step::Await(waits_for("news"))));
    assert_eq!(
        node.hub.num_subscriptions(),
        0,
        "no effect before the channel is ready"
    );
    broker.open("news");
    assert_eq!(
        session.resume(frame.as_bytes(), Prepared::ready()),
        Ok(Step::Done)
    );
    let replies = written(&outbox).await;
    let ids: Vec<&Value> = replies.iter().map(|r| &r["id"]).collect();
    assert_eq!(
        ids,
        [&json!(2), &json!(3)],
        "the ping waited behind the subscribe"
    );
    assert_eq!(node.hub.num_subscriptions(), 1);
    assert_eq!(
        broker.watches("news"),
        1,
        "the subscription watches its channel"
    );
    session.close();
    assert_eq!(
        broker.watches("news"),
        0,
        "and stops watching when it leaves"
    );
}

#[tokio::test]
async fn a_subscribe_whose_channel_cannot_be_made_ready_answers_a_temporary_error() {
    let (node, _broker) = brokered();
    let (mut session, outbox) = session(&node);
    let frame = format!(
        "{}\n{}",
        json!({"id": 1, "connect": {"token": token("42")}}),
        json!({"id": 2, "subscribe": {"channel": "news"}})
    );
    assert_eq!(
        session.handle_frame(frame.as_bytes()),
        Ok(Step::Await(waits_for("news")))
    );
    assert_eq!(
        session.resume(frame.as_bytes(), Prepared::default()),
        Ok(Step::Done)
    );
    let replies = written(&outbox).await;
    let error = replies.iter().find(|r| r["id"] == json!(2)).unwrap();
    assert_eq!(error["error"]["code"], json!(100));
    assert_eq!(error["error"]["temporary"], json!(true));
    assert_eq!(node.hub.num_subscriptions(), 0);
}

fn waits_for(channel: &str) -> Wait {
    Wait {
        channels: vec![channel.to_string()],
        ..Wait::default()
    }
}

mod extension;
mod proxy;
