//! `/admin`: nodes, connections, channels, presence, a publish form and live
//! counts, behind HTTP Basic auth with `[admin] password`.

use crate::app::App;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use herald_core::metrics as names;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Lets a request through with the right password; 404 when the page is off.
pub async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if app.admin_password.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            "the admin page is off: set [admin] password\n",
        )
            .into_response();
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
    if given.is_some() {
        tracing::info!("admin page: wrong password");
        metrics::counter!(names::API_ERRORS, "method" => "admin", "code" => "401").increment(1);
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"herald admin\"")],
        "unauthorized\n",
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
