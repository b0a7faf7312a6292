//! The session with an extension plugged in: rpc, guarded channels and
//! personal channels, driven with plain bytes.

use super::*;
use crate::durable::BoxFuture;
use crate::extension::{AccessCheck, Caller, Extension, RpcFuture};
use herald_protocol::DetailedError;

/// Guards `room:` channels (user 42 is the only member), answers `echo` and
/// `fail`, and gives every user a personal channel `room:me-<user>`.
struct Rooms;

impl Extension for Rooms {
    fn rpc(&self, caller: Caller, method: &str, data: &RawValue) -> Option<RpcFuture> {
        let data = data.get().to_string();
        match method {
            "echo" => Some(Box::pin(async move {
                let answer = json!({"user": caller.user, "data": serde_json::from_str::<Value>(&data).unwrap()});
                Ok(RawValue::from_string(answer.to_string()).unwrap())
            })),
            "fail" => Some(Box::pin(async {
                Err(DetailedError::new(ErrorCode::BAD_REQUEST, "text: too long"))
            })),
            _ => None,
        }
    }

    fn guards(&self, channel: &str) -> bool {
        channel.starts_with("room:")
    }

    fn may_subscribe(
        &self,
        user: &str,
        _channel: &str,
    ) -> BoxFuture<'static, Result<bool, ErrorCode>> {
        let member = user == "42";
        Box::pin(async move { Ok(member) })
    }

    fn personal_channels(&self, user: &str) -> Vec<String> {
        vec![format!("room:me-{user}")]
    }
}

fn node_with_rooms() -> Arc<Node> {
    let (mut config, verifier) = node_parts(ClientLimits::default());
    config
        .namespaces
        .named
        .insert("room".into(), ChannelOptions::default());
    let node = Arc::new(Node::new(config, verifier));
    node.set_extension(Arc::new(Rooms));
    node
}

async fn connected(node: &Arc<Node>, user: &str) -> (Session, Arc<Outbox>, Vec<Value>) {
    let (mut session, outbox) = session(node);
    let connect = json!({"id": 1, "connect": {"token": token(user)}}).to_string();
    assert_eq!(session.handle_frame(connect.as_bytes()), Ok(Step::Done));
    let replies = written(&outbox).await;
    (session, outbox, replies)
}

#[tokio::test]
async fn every_connection_joins_its_users_personal_channel() {
    let node = node_with_rooms();
    let (_session, _outbox, replies) = connected(&node, "7").await;
    let subs = &replies[0]["connect"]["subs"];
    assert!(subs.get("room:me-7").is_some(), "{replies:?}");
    assert_eq!(node.hub.num_subscriptions(), 1);
}

#[tokio::test]
async fn a_guarded_subscribe_waits_for_the_permission_then_follows_it() {
    let node = node_with_rooms();
    let mut open = Vec::new();
    for (user, allowed) in [("42", true), ("7", false)] {
        let (mut session, outbox, _) = connected(&node, user).await;
        let frame = json!({"id": 2, "subscribe": {"channel": "room:1"}}).to_string();
        let Ok(Step::Await(wait)) = session.handle_frame(frame.as_bytes()) else {
            panic!("a guarded channel must wait for its permission");
        };
        assert_eq!(
            wait.access,
            Some(AccessCheck {
                user: user.into(),
                channel: "room:1".into()
            })
        );
        let prepared = node.prepare(wait).await;
        assert_eq!(session.resume(frame.as_bytes(), prepared), Ok(Step::Done));
        let reply = written(&outbox).await.remove(0);
        if allowed {
            assert!(reply.get("subscribe").is_some(), "{reply}");
        } else {
            assert_eq!(reply["error"]["code"], json!(103), "{reply}");
        }
        open.push(session);
    }
    assert_eq!(node.hub.subscribers("room:1").len(), 1);
}

#[tokio::test]
async fn rpc_answers_with_the_extensions_result_or_its_detailed_error() {
    let node = node_with_rooms();
    let (mut session, outbox, _) = connected(&node, "42").await;
    let frame = [
        json!({"id": 2, "rpc": {"method": "echo", "data": {"n": 1}}}),
        json!({"id": 3, "rpc": {"method": "fail"}}),
        json!({"id": 4, "rpc": {"method": "nope"}}),
    ]
    .map(|c| c.to_string())
    .join("\n");
    assert_eq!(session.handle_frame(frame.as_bytes()), Ok(Step::Done));
    let replies = written(&outbox).await;
    let by_id = |id: u32| replies.iter().find(|r| r["id"] == json!(id)).unwrap();
    assert_eq!(
        by_id(2)["rpc"]["data"],
        json!({"user": "42", "data": {"n": 1}})
    );
    assert_eq!(
        by_id(3)["error"],
        json!({"code": 107, "message": "bad request: text: too long"})
    );
    assert_eq!(by_id(4)["error"]["code"], json!(104));
}
