//! The demo at `/`, and what stands in for the app's backend there: tokens
//! for any user, and server-API calls without the key. Only with
//! `[demo] enabled` (dev defaults), never for production; `demo/guard.rs`
//! keeps other pages and other hosts out.

mod guard;

pub use guard::REFUSED;

use crate::app::App;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The core server-API methods the demo's buttons may call, besides every
/// inbox and chat method.
const BACKEND_METHODS: [&str; 8] = [
    "publish",
    "broadcast",
    "presence",
    "presence_stats",
    "history",
    "info",
    "channels",
    "user_status",
];

/// What the demo needs to run: on only with `[demo] enabled`.
pub struct Demo {
    /// The HMAC secret the demo mints tokens with.
    pub secret: String,
    /// The server listens on a loopback address, so requests must name a
    /// loopback host.
    pub loopback_listener: bool,
}

const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
const MAX_USER: usize = 64;

/// `/`: the demo when it is on, else a page saying where things are.
pub async fn index(State(app): State<Arc<App>>) -> Response {
    if app.demo.is_some()
        && let Some(page) = super::assets::find("demo/index.html")
    {
        return Html(page).into_response();
    }
    Html(include_str!("../index.html")).into_response()
}

#[derive(Deserialize)]
pub struct SessionRequest {
    user: String,
}

/// `POST /demo/session`: a connection token for whichever user the demo picks.
pub async fn session(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(demo) = &app.demo else {
        return (StatusCode::NOT_FOUND, "the demo is off\n").into_response();
    };
    if let Some(refused) = guard::refuse_foreign(&headers, demo.loopback_listener) {
        return refused;
    }
    let user = match serde_json::from_slice::<SessionRequest>(&body) {
        Ok(request) => request.user,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.to_string()})),
            )
                .into_response();
        }
    };
    let valid = !user.is_empty()
        && user.len() <= MAX_USER
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !valid {
        let why = format!("user: 1 to {MAX_USER} letters, digits, '-', '_' or '.'");
        return (StatusCode::BAD_REQUEST, Json(json!({"error": why}))).into_response();
    }
    let token = match crate::tokens::mint(&demo.secret, &user, Some(TOKEN_TTL), None, None) {
        Ok(token) => token,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let ws_url = format!("ws://{host}/connection/websocket");
    Json(json!({"token": token, "user": user, "ws_url": ws_url})).into_response()
}

/// `POST /demo/backend/<method>`: the server API without its key, for the
/// demo's "backend" buttons.
pub async fn backend(
    State(app): State<Arc<App>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(demo) = &app.demo else {
        return (StatusCode::NOT_FOUND, "the demo is off\n").into_response();
    };
    if let Some(refused) = guard::refuse_foreign(&headers, demo.loopback_listener) {
        return refused;
    }
    let offered = BACKEND_METHODS.contains(&method.as_str())
        || herald_apps::api::METHODS.contains(&method.as_str());
    if !offered {
        let why = format!("the demo backend does not offer {method}");
        return (StatusCode::NOT_FOUND, Json(json!({"error": why}))).into_response();
    }
    crate::api::answer(&app, &method, &body).await
}
