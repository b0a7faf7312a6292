//! The pages beside the endpoints: embedded assets, the demo's stand-in
//! backend, and the admin page behind its password.

use herald_tests::{Client, TestServer, test_config};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

async fn get(url: String, password: Option<&str>) -> (u16, String, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(password) = password {
        request = request.basic_auth("admin", Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

async fn post(url: String, body: Value, password: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).body(body.to_string());
    if let Some(password) = password {
        request = request.basic_auth("admin", Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_demo_is_off_unless_configured() {
    let server = TestServer::default().await;
    let (status, kind, _) = get(server.http_url("/"), None).await;
    assert_eq!((status, kind.as_str()), (200, "text/html; charset=utf-8"));
    let (status, _) = post(server.http_url("/demo/session"), json!({"user": "a"}), None).await;
    assert_eq!(status, 404);
    let (status, _) = post(server.http_url("/demo/backend/publish"), json!({}), None).await;
    assert_eq!(status, 404);
    let (status, kind, body) = get(server.http_url("/assets/README.md"), None).await;
    assert_eq!((status, kind.as_str()), (200, "text/plain; charset=utf-8"));
    assert!(body.contains("compiled into the `herald` binary"));
    assert_eq!(get(server.http_url("/assets/nope.js"), None).await.0, 404);
}

#[tokio::test]
async fn the_demo_mints_tokens_and_calls_the_api_without_its_key() {
    let mut config = test_config();
    config.demo.enabled = true;
    let server = TestServer::start(config).await;
    let (status, session) = post(
        server.http_url("/demo/session"),
        json!({"user": "customer-1"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{session}");
    assert!(
        session["ws_url"]
            .as_str()
            .unwrap()
            .ends_with("/connection/websocket")
    );
    let mut client = Client::open(&server.ws_url()).await;
    let connected = client
        .call(json!({"connect": {"token": session["token"]}}))
        .await;
    assert!(connected["connect"].is_object(), "{connected}");
    client.subscribe("news").await;
    let (status, published) = post(
        server.http_url("/demo/backend/publish"),
        json!({"channel": "news", "data": {"from": "demo"}}),
        None,
    )
    .await;
    assert_eq!((status, published), (200, json!({"result": {}})));
    let push = client.wait_for(|m| m["push"]["pub"].is_object()).await;
    assert_eq!(push["push"]["pub"]["data"], json!({"from": "demo"}));
    let (status, _) = post(
        server.http_url("/demo/backend/disconnect"),
        json!({"user": "customer-1"}),
        None,
    )
    .await;
    assert_eq!(status, 404, "only the listed methods");
    let (status, _) = post(
        server.http_url("/demo/session"),
        json!({"user": "a b"}),
        None,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_admin_page_needs_its_password() {
    let off = TestServer::default().await;
    assert_eq!(get(off.http_url("/admin"), Some(PASSWORD)).await.0, 404);

    let mut config = test_config();
    config.admin.password = PASSWORD.into();
    let server = TestServer::start(config).await;
    let (status, _, _) = get(server.http_url("/admin/api/stats"), None).await;
    assert_eq!(status, 401);
    let (status, _, _) = get(server.http_url("/admin/api/stats"), Some("wrong password!")).await;
    assert_eq!(status, 401);

    let (mut client, _) = server.connect("42").await;
    client.subscribe("news").await;
    let (status, _, stats) = get(server.http_url("/admin/api/stats"), Some(PASSWORD)).await;
    assert_eq!(status, 200);
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["connections"], json!(1), "{stats}");
    let (_, _, overview) = get(server.http_url("/admin/api/overview"), Some(PASSWORD)).await;
    let overview: Value = serde_json::from_str(&overview).unwrap();
    assert_eq!(
        overview["channels"]["news"],
        json!({"num_clients": 1}),
        "{overview}"
    );
    assert_eq!(overview["nodes"][0]["num_clients"], json!(1), "{overview}");
    let (_, _, presence) = get(
        server.http_url("/admin/api/presence?channel=news"),
        Some(PASSWORD),
    )
    .await;
    let presence: Value = serde_json::from_str(&presence).unwrap();
    assert_eq!(
        presence["presence"].as_object().unwrap().len(),
        1,
        "{presence}"
    );
    let (_, _, refused) = get(
        server.http_url("/admin/api/presence?channel=nope:x"),
        Some(PASSWORD),
    )
    .await;
    let refused: Value = serde_json::from_str(&refused).unwrap();
    assert_eq!(refused["error"]["code"], json!(102), "{refused}");
    let (status, published) = post(
        server.http_url("/admin/api/publish"),
        json!({"channel": "news", "data": "from admin"}),
        Some(PASSWORD),
    )
    .await;
    assert_eq!((status, published), (200, json!({"result": {}})));
    let push = client.wait_for(|m| m["push"]["pub"].is_object()).await;
    assert_eq!(push["push"]["pub"]["data"], json!("from admin"));
}
