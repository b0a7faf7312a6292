//! `/admin`: nodes, connections, channels, presence, a publish form and live
//! counts, behind HTTP Basic auth with `[admin] password`.

use crate::app::App;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use herald_core::metrics as names;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Admin-page refusals, by reason: `wrong_password` (401) or `throttled` (429).
pub const AUTH_REFUSED: &str = "herald_admin_auth_refused_total";

/// Lets a request through with the right password; 404 when the page is off,
/// 429 while the caller's address is throttled for failing too often.
pub async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if app.admin_password.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            "the admin page is off: set [admin] password\n",
        )
            .into_response();
    }
    // Without a peer address (a router served without connect info) every
    // caller shares one allowance, which still bounds guessing.
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |ConnectInfo(addr)| {
            addr.ip()
        });
    if let Some(wait) = app.admin_throttle.blocked(ip) {
        return throttled(ip, wait);
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
        .and_then(|v| String::from_utf8(v).ok());
    let password = given
        .as_deref()
        .and_then(|v| v.split_once(':'))
        .map(|(_, p)| p);
    if password
        .is_some_and(|p| crate::api::constant_time_eq(p.as_bytes(), app.admin_password.as_bytes()))
    {
        return next.run(request).await;
    }
    // A browser's first request carries no credentials: that is the prompt,
    // not a guess.
    if given.is_some() {
        if let Some(wait) = app.admin_throttle.fail(ip) {
            return throttled(ip, wait);
        }
        tracing::info!(%ip, "admin page: wrong password");
        metrics::counter!(AUTH_REFUSED, "reason" => "wrong_password").increment(1);
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"herald admin\"")],
        "unauthorized\n",
    )
        .into_response()
}

fn throttled(ip: IpAddr, wait: Duration) -> Response {
    let retry_after = super::throttle::retry_after_secs(wait);
    tracing::warn!(%ip, retry_after, "admin page: too many wrong passwords; refusing this address for now");
    metrics::counter!(AUTH_REFUSED, "reason" => "throttled").increment(1);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, retry_after.to_string())],
        format!("too many wrong passwords; retry in {retry_after} s\n"),
    )
        .into_response()
}

pub async fn page() -> Response {
    super::assets::respond("admin/index.html")
}

/// Every node, and the channels of this one.
pub async fn overview(State(app): State<Arc<App>>) -> Response {
    let nodes = match app.node.nodes().await {
        Ok(nodes) => nodes,
        Err(error) => return axum::Json(json!({"error": error})).into_response(),
    };
    let channels: serde_json::Map<String, Value> = app
        .node
        .hub
        .channels()
        .into_iter()
        .map(|(channel, clients)| (channel, json!({"num_clients": clients})))
        .collect();
    axum::Json(json!({"nodes": nodes, "channels": channels})).into_response()
}

#[derive(Deserialize)]
pub struct PresenceQuery {
    channel: String,
}

/// `{"presence": {...}}` for the channel, or `{"error": {...}}`.
pub async fn presence(State(app): State<Arc<App>>, Query(query): Query<PresenceQuery>) -> Response {
    let params = serde_json::value::to_raw_value(&json!({"channel": query.channel}))
        .expect("a JSON object serializes");
    match crate::api::dispatch(&app, "presence", &params).await {
        Ok(result) => axum::Json(result).into_response(),
        Err(error) => axum::Json(json!({"error": error.into_detailed()})).into_response(),
    }
}

pub async fn publish(State(app): State<Arc<App>>, body: Bytes) -> Response {
    crate::api::answer(&app, "publish", &body).await
}

/// Counts for the live chart; the page turns the counters into rates.
pub async fn stats(State(app): State<Arc<App>>) -> Response {
    let info = app.node.info();
    let rendered = crate::metrics::handle().render();
    axum::Json(json!({
        "time": herald_core::history::now_ms(),
        "connections": info.num_clients,
        "users": info.num_users,
        "channels": info.num_channels,
        "subscriptions": info.num_subs,
        "messages_sent": series_total(&rendered, names::MESSAGES_SENT),
        "publications": series_total(&rendered, names::PUBLICATIONS),
        "api_requests": series_total(&rendered, names::API_REQUESTS),
    }))
    .into_response()
}

/// The sum of every sample of one series in Prometheus text.
fn series_total(rendered: &str, name: &str) -> f64 {
    rendered
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_series_total_sums_its_labelled_samples_only() {
        let text = "# TYPE herald_api_requests_total counter\n\
                    herald_api_requests_total{method=\"publish\"} 3\n\
                    herald_api_requests_total{method=\"info\"} 2\n\
                    herald_api_requests_totally 100\n";
        assert_eq!(super::series_total(text, "herald_api_requests_total"), 5.0);
    }
}
