//! An application backend for the proxy tests: a real HTTP server on
//! `127.0.0.1:0` that answers Herald's proxy requests as a Django or Node
//! app with session cookies would, and records every request it got.
//!
//! - `POST /connect`: the user is the `sessionid` cookie; no cookie is
//!   refused with error 1401, user `banned` is disconnected with 4403.
//!   The result carries `info`, `data` and, for a user named `short-*`, an
//!   `expire_at` one second away.
//! - `POST /refresh` and `/sub_refresh`: `{"expired": true}`.
//! - `POST /subscribe`: a user may subscribe to channels that contain its
//!   name (with `data` for the reply and an expiry one second away for
//!   `*-short` channels); others are refused with 403.
//! - `POST /publish`: text with "spam" is refused with 1403; other text is
//!   published upper-cased, with the publisher's name beside it.
//! - `POST /rpc`: `echo` answers what it was asked; anything else 1404.
//! - `POST /slow`: answers after 3 s.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the backend got.
#[derive(Debug, Clone)]
pub struct Asked {
    pub kind: String,
    pub headers: HeaderMap,
    pub body: Value,
}

pub struct Backend {
    pub base: String,
    asked: Arc<Mutex<Vec<Asked>>>,
}

impl Backend {
    pub async fn start() -> Self {
        let asked: Arc<Mutex<Vec<Asked>>> = Arc::default();
        let app = axum::Router::new()
            .route("/{kind}", axum::routing::post(answer))
            .with_state(asked.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let base = format!("http://{}", listener.local_addr().expect("bound"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, asked }
    }

    pub fn url(&self, kind: &str) -> String {
        format!("{}/{kind}", self.base)
    }

    /// The requests of `kind` so far.
    pub fn asked(&self, kind: &str) -> Vec<Asked> {
        let asked = self.asked.lock().expect("not poisoned");
        asked.iter().filter(|a| a.kind == kind).cloned().collect()
    }
}

fn session_user(headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get("cookie")?.to_str().ok()?;
    cookies
        .split(';')
        .find_map(|c| c.trim().strip_prefix("sessionid="))
        .map(str::to_string)
}

async fn answer(
    State(asked): State<Arc<Mutex<Vec<Asked>>>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    asked.lock().expect("not poisoned").push(Asked {
        kind: kind.clone(),
        headers: headers.clone(),
        body: body.clone(),
    });
    let soon = herald_core::unix_now() + 1;
    let user = body["user"].as_str().unwrap_or_default();
    let channel = body["channel"].as_str().unwrap_or_default();
    Json(match kind.as_str() {
        "connect" => match session_user(&headers).as_deref() {
            None => json!({"error": {"code": 1401, "message": "login required"}}),
            Some("banned") => json!({"disconnect": {"code": 4403, "reason": "banned"}}),
            Some(user) => {
                let expire_at = if user.starts_with("short-") { soon } else { 0 };
                json!({"result": {"user": user, "expire_at": expire_at,
                    "info": {"name": user}, "data": {"welcome": user}}})
            }
        },
        "refresh" | "sub_refresh" => json!({"result": {"expired": true}}),
        "subscribe" if !user.is_empty() && channel.contains(user) => {
            let expire_at = if channel.ends_with("-short") { soon } else { 0 };
            json!({"result": {"data": {"granted": channel}, "info": {"role": "owner"}, "expire_at": expire_at}})
        }
        "subscribe" => json!({"error": {"code": 403, "message": "permission denied"}}),
        "publish" => {
            let text = body["data"]["text"].as_str().unwrap_or_default();
            if text.contains("spam") {
                json!({"error": {"code": 1403, "message": "spam is not allowed"}})
            } else {
                json!({"result": {"data": {"text": text.to_uppercase(), "by": user}}})
            }
        }
        "rpc" if body["method"] == "echo" => {
            json!({"result": {"data": {"user": user, "data": body["data"]}}})
        }
        "rpc" => json!({"error": {"code": 1404, "message": "no such method"}}),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            json!({"result": {}})
        }
        _ => json!({"error": {"code": 1400, "message": "unknown proxy kind"}}),
    })
}
