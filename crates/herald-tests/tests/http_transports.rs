//! The HTTP fallbacks: `/connection/http_stream` and `/connection/sse` carry
//! replies and pushes, `/emulation` carries every command after connect, on
//! this node or, through Redis, on another.

use herald_tests::broker::{standalone_config, two_nodes, wait_until};
use herald_tests::redis::RedisServer;
use herald_tests::{TestServer, WAIT, metric_value, test_config, token};
use serde_json::{Value, json};

/// One HTTP-streaming or SSE connection, read value by value.
struct Stream {
    response: reqwest::Response,
    pending: String,
    values: std::collections::VecDeque<Value>,
}

impl Stream {
    async fn http_stream(server: &TestServer, connect: Value) -> Self {
        let response = reqwest::Client::new()
            .post(server.http_url("/connection/http_stream"))
            .body(connect.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        Self::reading(response)
    }

    async fn sse(server: &TestServer, connect: Value) -> Self {
        let response = reqwest::Client::new()
            .get(server.http_url("/connection/sse"))
            .query(&[("cf_connect", connect.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self::reading(response)
    }

    fn reading(response: reqwest::Response) -> Self {
        Self {
            response,
            pending: String::new(),
            values: Default::default(),
        }
    }

    /// The next value, or `None` once the server ended the stream.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(value) = self.values.pop_front() {
                return Some(value);
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("the stream sends within the wait")
                .unwrap()?;
            self.pending.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = self.pending.find('\n') {
                let line: String = self.pending.drain(..=end).collect();
                // SSE: a blank line ends an event; each value is a `data:` line.
                let json = line.trim_end().trim_start_matches("data: ");
                if !json.is_empty() {
                    self.values.push_back(serde_json::from_str(json).unwrap());
                }
            }
        }
    }

    async fn next_matching(&mut self, predicate: impl Fn(&Value) -> bool) -> Value {
        loop {
            let value = self.next().await.expect("the stream is open");
            if predicate(&value) {
                return value;
            }
        }
    }
}

fn connect_command(user: &str) -> Value {
    json!({"id": 1, "connect": {"token": token(user, 3600)}})
}

/// `(session, node)` from a connect reply.
fn emulation_ids(reply: &Value) -> (String, String) {
    let connect = &reply["connect"];
    let session = connect["session"].as_str().expect("a session").to_string();
    let node = connect["node"].as_str().expect("a node").to_string();
    (session, node)
}

async fn emulate(server: &TestServer, session: &str, node: &str, commands: &[Value]) -> u16 {
    let data: Vec<String> = commands.iter().map(Value::to_string).collect();
    let body = json!({"session": session, "node": node, "data": data.join("\n")});
    post_raw(server, "/emulation", body.to_string()).await.0
}

/// Subscribes the stream's connection to "news" with a command posted to `via`
/// (its own node, or another), and waits for the reply on the stream.
async fn subscribe_news(stream: &mut Stream, via: &TestServer, session: &str, node: &str) {
    let subscribe = json!({"id": 2, "subscribe": {"channel": "news"}});
    assert_eq!(emulate(via, session, node, &[subscribe]).await, 200);
    let reply = stream.next_matching(|v| v["id"] == 2).await;
    assert!(reply.get("error").is_none(), "{reply}");
}

async fn post_raw(server: &TestServer, path: &str, body: String) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(server.http_url(path))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn http_stream_carries_replies_and_pushes_and_commands_come_through_emulation() {
    let server = TestServer::default().await;
    let mut stream = Stream::http_stream(&server, connect_command("42")).await;
    let reply = stream.next().await.unwrap();
    let (session, node) = emulation_ids(&reply);
    assert_eq!(reply["id"], 1);
    assert_ne!(
        session, reply["connect"]["client"],
        "the secret is not the client id"
    );
    let (_, info) = server.api("info", json!({})).await;
    assert_eq!(
        node, info["result"]["nodes"][0]["uid"],
        "the node id routes commands"
    );

    subscribe_news(&mut stream, &server, &session, &node).await;
    server
        .api("publish", json!({"channel": "news", "data": {"n": 1}}))
        .await;
    let push = stream.next_matching(|v| v["push"]["pub"].is_object()).await;
    assert_eq!(push["push"]["channel"], "news");
    assert_eq!(push["push"]["pub"]["data"], json!({"n": 1}));

    // Several commands in one request run in order.
    let batch = [
        json!({"id": 3, "publish": {"channel": "news", "data": {"n": 2}}}),
        json!({"id": 4, "presence": {"channel": "news"}}),
    ];
    assert_eq!(emulate(&server, &session, &node, &batch).await, 200);
    let published = stream.next_matching(|v| v["id"] == 3).await;
    assert!(published.get("error").is_none(), "{published}");
    let presence = stream.next_matching(|v| v["id"] == 4).await;
    let clients = presence["presence"]["presence"].as_object().unwrap();
    assert_eq!(clients.len(), 1, "{presence}");
}

#[tokio::test]
async fn sse_sends_the_same_replies_as_events() {
    let server = TestServer::default().await;
    let mut stream = Stream::sse(&server, connect_command("42")).await;
    let reply = stream.next().await.unwrap();
    let (session, node) = emulation_ids(&reply);
    subscribe_news(&mut stream, &server, &session, &node).await;
    server
        .api("publish", json!({"channel": "news", "data": "hi"}))
        .await;
    let push = stream.next_matching(|v| v["push"]["pub"].is_object()).await;
    assert_eq!(push["push"]["pub"]["data"], "hi");

    let (status, body) = post_raw(&server, "/connection/sse", String::new()).await;
    assert_eq!(status, 405, "{body}");
    let (status, body) = post_raw(&server, "/connection/http_stream", String::new()).await;
    assert_eq!(status, 400);
    assert!(body.contains("must carry the connect command"), "{body}");
    let response = reqwest::get(server.http_url("/connection/sse"))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("cf_connect: missing")
    );
}

#[tokio::test]
async fn a_server_disconnect_is_pushed_with_its_code_and_ends_the_stream() {
    let server = TestServer::default().await;
    let mut stream = Stream::http_stream(&server, connect_command("42")).await;
    stream.next().await.unwrap();
    let disconnect = json!({"user": "42", "disconnect": {"code": 4501, "reason": "bye"}});
    server.api("disconnect", disconnect).await;
    let push = stream
        .next_matching(|v| v["push"]["disconnect"].is_object())
        .await;
    assert_eq!(
        push["push"]["disconnect"],
        json!({"code": 4501, "reason": "bye", "reconnect": false})
    );
    assert_eq!(stream.next().await, None, "the stream ends after the push");
}

#[tokio::test]
async fn a_bad_token_gets_its_error_and_the_stream_ends() {
    let server = TestServer::default().await;
    let connect = json!({"id": 1, "connect": {"token": "not-a-jwt"}});
    let mut stream = Stream::http_stream(&server, connect).await;
    let mut values = Vec::new();
    while let Some(value) = stream.next().await {
        values.push(value);
    }
    let disconnect = values.iter().find(|v| v["push"]["disconnect"].is_object());
    let code = disconnect.expect("a disconnect push")["push"]["disconnect"]["code"].clone();
    assert_eq!(code, 3500, "invalid token: {values:?}");
}

#[tokio::test]
async fn emulation_requests_that_cannot_be_delivered_get_precise_statuses() {
    let server = TestServer::default().await;
    let mut stream = Stream::http_stream(&server, connect_command("42")).await;
    let (session, node) = emulation_ids(&stream.next().await.unwrap());

    let (status, body) = post_raw(&server, "/emulation", "nope".into()).await;
    assert_eq!(status, 400);
    assert!(body.starts_with("emulation request: expected"), "{body}");
    let missing = json!({"session": session, "node": node}).to_string();
    let (status, body) = post_raw(&server, "/emulation", missing).await;
    assert_eq!(status, 400);
    assert!(body.contains("missing field `data`"), "{body}");

    assert_eq!(emulate(&server, &session, "no-such-node", &[]).await, 404);
    assert_eq!(emulate(&server, "no-such-session", &node, &[]).await, 204);
    let oversize = json!({"session": session, "node": node, "data": "x".repeat(70_000)});
    let (status, _) = post_raw(&server, "/emulation", oversize.to_string()).await;
    assert_eq!(status, 413);

    let metrics = server.metrics().await;
    let series = |outcome: &str| {
        let name = format!("herald_emulation_requests_total{{outcome=\"{outcome}\"}}");
        metric_value(&metrics, &name)
    };
    // Other tests of this binary share the recorder: at least ours are counted.
    assert!(series("bad_request") >= 2.0, "{metrics}");
    assert!(series("unknown_node") >= 1.0, "{metrics}");
    assert!(series("gone") >= 1.0, "{metrics}");
}

#[tokio::test]
async fn a_client_that_goes_away_is_unregistered() {
    let server = TestServer::default().await;
    let mut stream = Stream::http_stream(&server, connect_command("42")).await;
    stream.next().await.unwrap();
    drop(stream);
    wait_until("the client is gone", WAIT, async || {
        let (_, info) = server.api("info", json!({})).await;
        (info["result"]["nodes"][0]["num_clients"] == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn switched_off_transports_answer_404_and_origins_are_checked() {
    let mut config = test_config();
    config.transports.http_stream = false;
    config.server.allowed_origins = vec!["http://app.example".into()];
    let server = TestServer::start(config).await;
    let (status, body) = post_raw(&server, "/connection/http_stream", "{}".into()).await;
    assert_eq!(status, 404);
    assert!(body.contains("http_stream is switched off"), "{body}");

    let client = reqwest::Client::new();
    let sse = |origin: &'static str| {
        client
            .get(server.http_url("/connection/sse"))
            .query(&[("cf_connect", connect_command("42").to_string())])
            .header("origin", origin)
            .send()
    };
    let refused = sse("http://evil.example").await.unwrap();
    assert_eq!(refused.status(), 403);
    let allowed = sse("http://app.example").await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://app.example"
    );

    let preflight = client
        .request(reqwest::Method::OPTIONS, server.http_url("/emulation"))
        .header("origin", "http://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], "http://app.example");
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(headers["access-control-allow-headers"], "content-type");
}

#[tokio::test]
async fn commands_sent_to_another_node_reach_the_session_through_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_nodes(&standalone_config(&redis.url())).await;
    let mut stream = Stream::http_stream(&a, connect_command("42")).await;
    let (session, node) = emulation_ids(&stream.next().await.unwrap());

    subscribe_news(&mut stream, &b, &session, &node).await;
    b.api("publish", json!({"channel": "news", "data": "via b"}))
        .await;
    let push = stream.next_matching(|v| v["push"]["pub"].is_object()).await;
    assert_eq!(push["push"]["pub"]["data"], "via b");
    assert_eq!(emulate(&b, &session, "no-such-node", &[]).await, 404);
}
