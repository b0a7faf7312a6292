use super::*;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use herald_core::proxy::ClientHeaders;
use std::sync::{Arc, Mutex};

type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A backend on 127.0.0.1 that records each request and answers `/ok` with
/// a result, `/slow` after 2 s, and `/down` with 503.
async fn backend() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = |seen: Seen| {
        move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((headers, body));
            }
        }
    };
    let ok = record(seen.clone());
    let app = axum::Router::new()
        .route(
            "/ok",
            post(move |headers: HeaderMap, body: String| async move {
                ok(headers, body).await;
                r#"{"result":{"user":"42"}}"#
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "{}"
            }),
        )
        .route("/down", post(|| async { StatusCode::SERVICE_UNAVAILABLE }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

fn endpoint(url: String) -> ProxyEndpoint {
    ProxyEndpoint {
        endpoint: url,
        timeout: Duration::from_millis(300),
        http_headers: vec!["Cookie".into(), "X-Forwarded-For".into()],
        static_headers: vec![("X-Backend-Secret".into(), "s3".into())],
    }
}

fn call(kind: ProxyKind, headers: &[(&str, &str)]) -> ProxyCall {
    let headers: ClientHeaders = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    ProxyCall {
        kind,
        subject: String::new(),
        body: bytes::Bytes::from_static(br#"{"client":"c1"}"#),
        headers,
    }
}

#[tokio::test]
async fn posts_the_body_with_listed_client_headers_and_its_kind() {
    let (base, seen) = backend().await;
    let proxies = HttpProxies::new(
        [(ProxyKind::Connect, endpoint(format!("{base}/ok")))],
        RpcRoutes::default(),
    )
    .unwrap();
    let answer = proxies
        .call(&call(
            ProxyKind::Connect,
            &[("cookie", "sessionid=abc"), ("user-agent", "not forwarded")],
        ))
        .await
        .unwrap();
    assert_eq!(&answer[..], br#"{"result":{"user":"42"}}"#);
    let seen = seen.lock().unwrap();
    let (headers, body) = &seen[0];
    assert_eq!(body, r#"{"client":"c1"}"#);
    assert_eq!(headers["cookie"], "sessionid=abc");
    assert_eq!(headers["x-herald-proxy-kind"], "connect");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-backend-secret"], "s3");
    assert!(
        headers
            .get("user-agent")
            .is_none_or(|v| v != "not forwarded")
    );
}

#[tokio::test]
async fn timeouts_statuses_and_refused_connections_are_failures() {
    let (base, _) = backend().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", listener.local_addr().unwrap())
    };
    let proxies = HttpProxies::new(
        [
            (ProxyKind::Subscribe, endpoint(format!("{base}/slow"))),
            (ProxyKind::Publish, endpoint(format!("{base}/down"))),
            (ProxyKind::Rpc, endpoint(closed)),
        ],
        RpcRoutes::default(),
    )
    .unwrap();
    let started = Instant::now();
    let slow = proxies
        .call(&call(ProxyKind::Subscribe, &[]))
        .await
        .unwrap_err();
    assert!(slow.contains("did not answer within 300 ms"), "{slow}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout applies"
    );
    let down = proxies
        .call(&call(ProxyKind::Publish, &[]))
        .await
        .unwrap_err();
    assert!(down.contains("503"), "{down}");
    assert!(proxies.call(&call(ProxyKind::Rpc, &[])).await.is_err());
    assert!(
        proxies.call(&call(ProxyKind::Connect, &[])).await.is_err(),
        "not configured"
    );
}

#[test]
fn rpc_methods_route_by_namespace() {
    let routes = RpcRoutes {
        without_namespace: true,
        namespaces: ["billing".to_string()].into(),
    };
    assert!(routes.proxies("getPrice"));
    assert!(routes.proxies("billing:charge"));
    assert!(!routes.proxies("other:thing"));
    let without = RpcRoutes::default();
    assert!(!without.proxies("getPrice"));
}

#[test]
fn an_endpoint_must_be_an_http_url() {
    for bad in ["localhost:9000/connect", "grpc://127.0.0.1:9000", "http://"] {
        let error = HttpProxies::new(
            [(ProxyKind::Connect, endpoint(bad.into()))],
            RpcRoutes::default(),
        );
        assert!(error.is_err(), "{bad}");
    }
}
