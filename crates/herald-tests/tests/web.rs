//! The pages beside the endpoints: embedded assets, the demo's stand-in
//! backend, and the admin page behind its password.

use herald_tests::{Client, TestServer, metric_value, test_config};
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
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
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

/// A POST as a foreign page's `fetch` or form would send it.
async fn post_from(url: String, content_type: &str, origin: &str, body: Value) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .header("origin", origin)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_cross_site_demo_post_is_refused_and_publishes_nothing() {
    let mut config = test_config();
    config.demo.enabled = true;
    let server = TestServer::start(config).await;
    let (mut client, _) = server.connect("watcher").await;
    client.subscribe("news").await;
    let publish = server.http_url("/demo/backend/publish");
    let forged = json!({"channel": "news", "data": "forged"});
    let evil = "https://evil.example";
    assert_eq!(
        post_from(publish.clone(), "text/plain", evil, forged.clone()).await,
        415
    );
    assert_eq!(
        post_from(publish.clone(), "application/json", evil, forged.clone()).await,
        403
    );
    let session = server.http_url("/demo/session");
    assert_eq!(
        post_from(session, "application/json", evil, json!({"user": "admin"})).await,
        403,
        "no token for a foreign page"
    );
    // The demo page itself: its own origin.
    let own = format!("http://{}", server.running.addr);
    let genuine = json!({"channel": "news", "data": "genuine"});
    assert_eq!(
        post_from(publish, "application/json", &own, genuine).await,
        200
    );
    let push = client.wait_for(|m| m["push"]["pub"].is_object()).await;
    assert_eq!(
        push["push"]["pub"]["data"],
        json!("genuine"),
        "the refused posts published nothing before it"
    );
    let metrics = server.metrics().await;
    for reason in ["content_type", "origin"] {
        let series = format!("herald_demo_refused_total{{reason=\"{reason}\"}}");
        assert!(metric_value(&metrics, &series) >= 1.0, "{series} counted");
    }
}

#[tokio::test]
async fn admin_throttling_starts_by_the_20th_failure_and_holds_off_the_right_password() {
    let mut config = test_config();
    config.admin.password = PASSWORD.into();
    let server = TestServer::start(config).await;
    let stats = server.http_url("/admin/api/stats");
    let mut first_throttled = None;
    for attempt in 1..=20 {
        let response = reqwest::Client::new()
            .get(&stats)
            .basic_auth("admin", Some(format!("guess number {attempt}")))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            401 => {}
            429 => {
                let retry_after: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
                first_throttled = Some(attempt);
                break;
            }
            other => panic!("attempt {attempt} answered {other}"),
        }
    }
    let first = first_throttled.expect("throttled by the 20th wrong password");
    assert!(
        first > 3,
        "a few typos are not throttled (throttled at {first})"
    );
    assert_eq!(
        get(stats.clone(), Some(PASSWORD)).await.0,
        429,
        "a throttled address may not try even the right password"
    );
    let series = "herald_admin_auth_refused_total{reason=\"throttled\"}";
    assert!(
        metric_value(&server.metrics().await, series) >= 2.0,
        "{series} counted"
    );
    assert!(
        metric_value(
            &server.metrics().await,
            "herald_admin_auth_refused_total{reason=\"wrong_password\"}"
        ) >= 3.0
    );
}
