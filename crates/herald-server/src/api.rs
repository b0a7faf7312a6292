//! The server HTTP API: `POST /api/<method>`, request and result shapes as in the
//! Centrifugo server API so existing clients (such as `cent`) work unchanged.

use crate::app::App;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::engine::Draft;
use herald_core::history::HistoryQuery;
use herald_core::metrics as names;
use herald_core::node::{Node, PublishOptions};
use herald_protocol::{DetailedError, Disconnect, ErrorCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Why one API call failed.
#[derive(Debug)]
pub enum ApiError {
    /// Answered as `{"error":{"code","message"}}` with HTTP 200.
    Code(ErrorCode),
    /// The request could not be understood: HTTP 400 with the reason.
    Malformed(String),
    /// No such method: HTTP 404.
    UnknownMethod(String),
    /// Answered like `Code`, with a message naming what was wrong.
    Detailed(DetailedError),
}

impl ApiError {
    /// The error as a client sees it in `{"error": ...}`.
    pub fn into_detailed(self) -> DetailedError {
        match self {
            ApiError::Code(error) => error.into(),
            ApiError::Detailed(error) => error,
            ApiError::Malformed(why) => DetailedError {
                code: ErrorCode::BAD_REQUEST.code,
                message: why,
                temporary: false,
            },
            ApiError::UnknownMethod(name) => DetailedError::new(ErrorCode::METHOD_NOT_FOUND, name),
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError::Code(code)
    }
}

pub async fn handle(
    State(app): State<Arc<App>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&app.api_key, &headers) {
        tracing::info!(%method, "server API request with a wrong or missing key");
        metrics::counter!(names::API_ERRORS, "method" => "auth", "code" => "401").increment(1);
        return (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
    }
    if let Some(Err(wait)) = app.api_limiter.as_ref().map(|l| l.admit()) {
        tracing::info!(%method, "server API call refused: over [api.rate_limit]");
        return crate::limits::too_many("api", wait);
    }
    answer(&app, &method, &body).await
}

/// Runs `method` with the JSON `body` and answers it; the caller has checked
/// who may call.
pub async fn answer(app: &App, method: &str, body: &[u8]) -> Response {
    let known = KNOWN_METHODS.contains(&method) || herald_apps::api::METHODS.contains(&method);
    let method_label = if known { method } else { "unknown" }.to_string();
    metrics::counter!(names::API_REQUESTS, "method" => method_label.clone()).increment(1);
    let params: &RawValue = match serde_json::from_slice(if body.is_empty() { b"{}" } else { body })
    {
        Ok(params) => params,
        Err(e) => return malformed(&method_label, format!("invalid JSON body: {e}")),
    };
    let outcome = if method == "batch" {
        batch(app, params)
            .await
            .map(|replies| json!({ "replies": replies }))
    } else {
        dispatch(app, method, params)
            .await
            .map(|result| json!({ "result": result }))
    };
    let error = match outcome {
        Ok(body) => return axum::Json(body).into_response(),
        Err(ApiError::Malformed(why)) => return malformed(&method_label, why),
        Err(ApiError::UnknownMethod(name)) => {
            metrics::counter!(names::API_ERRORS, "method" => "unknown", "code" => "404")
                .increment(1);
            let error = ErrorCode::METHOD_NOT_FOUND;
            let body = json!({ "error": { "code": error.code, "message": format!("{}: {name}", error.message) } });
            return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
        }
        Err(error) => error.into_detailed(),
    };
    metrics::counter!(names::API_ERRORS, "method" => method_label, "code" => error.code.to_string()).increment(1);
    axum::Json(json!({ "error": error })).into_response()
}

/// The inbox and chat answer their own methods; the core answers the rest.
pub(crate) async fn dispatch(
    app: &App,
    method: &str,
    params: &RawValue,
) -> Result<Value, ApiError> {
    if let Some(call) = app.apps.as_ref().and_then(|a| a.api(method, params.get())) {
        return call.await.map_err(ApiError::Detailed);
    }
    call(&app.node, method, params).await
}

fn malformed(method: &str, why: String) -> Response {
    tracing::info!(%method, %why, "malformed server API request");
    metrics::counter!(names::API_ERRORS, "method" => method.to_string(), "code" => "400")
        .increment(1);
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": { "code": 107, "message": why } })),
    )
        .into_response()
}

fn authorized(key: &str, headers: &HeaderMap) -> bool {
    if key.is_empty() {
        return false;
    }
    let given = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("apikey "))
        });
    given.is_some_and(|given| constant_time_eq(given.trim().as_bytes(), key.as_bytes()))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The core's server-API methods; the inbox and chat add `herald_apps::api::METHODS`.
pub const KNOWN_METHODS: [&str; 15] = [
    "publish",
    "broadcast",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "refresh",
    "presence",
    "presence_stats",
    "history",
    "history_remove",
    "channels",
    "info",
    "batch",
    "send",
    "user_status",
];

fn params<T: DeserializeOwned>(raw: &RawValue) -> Result<T, ApiError> {
    serde_json::from_str(raw.get())
        .map_err(|e| ApiError::Malformed(format!("invalid parameters: {e}")))
}

#[derive(Deserialize)]
struct PublishParams {
    channel: String,
    data: Option<Box<RawValue>>,
    #[serde(default)]
    tags: Option<HashMap<String, String>>,
    #[serde(default)]
    skip_history: bool,
    idempotency_key: Option<String>,
}

#[derive(Deserialize)]
struct BroadcastParams {
    channels: Vec<String>,
    data: Option<Box<RawValue>>,
    #[serde(default)]
    tags: Option<HashMap<String, String>>,
    #[serde(default)]
    skip_history: bool,
    idempotency_key: Option<String>,
}

#[derive(Deserialize)]
struct HistoryParams {
    channel: String,
    #[serde(default)]
    limit: i32,
    since: Option<SincePosition>,
    #[serde(default)]
    reverse: bool,
}

#[derive(Deserialize)]
struct SincePosition {
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    epoch: String,
}

#[derive(Deserialize)]
struct UserChannelParams {
    user: String,
    channel: String,
    client: Option<String>,
    data: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct DisconnectParams {
    user: String,
    client: Option<String>,
    disconnect: Option<CustomDisconnect>,
}

#[derive(Deserialize)]
struct CustomDisconnect {
    code: u16,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct RefreshParams {
    user: String,
    client: Option<String>,
    #[serde(default)]
    expired: bool,
    expire_at: Option<u64>,
}

#[derive(Deserialize)]
struct ChannelParams {
    channel: String,
}

#[derive(Deserialize, Default)]
struct ChannelsParams {
    #[serde(default)]
    pattern: String,
}

#[derive(Deserialize)]
struct SendParams {
    user: String,
    client: Option<String>,
    data: Box<RawValue>,
}

#[derive(Deserialize)]
struct UserStatusParams {
    users: Vec<String>,
}

/// More users than this in one `user_status` call answer 107.
const MAX_STATUS_USERS: usize = 1000;

fn required_data(data: Option<Box<RawValue>>) -> Result<Box<RawValue>, ApiError> {
    data.ok_or(ApiError::Code(ErrorCode::BAD_REQUEST))
}

/// Publishes one draft and shapes the result as the API answers it.
async fn publish_one(
    node: &Node,
    channel: &str,
    data: &RawValue,
    tags: Option<HashMap<String, String>>,
    options: PublishOptions,
) -> Result<Value, ErrorCode> {
    let draft = Draft {
        data: data.to_owned(),
        info: None,
        tags,
    };
    Ok(match node.publish(channel, draft, options).await? {
        Some(position) => json!({ "offset": position.offset, "epoch": &*position.epoch }),
        None => json!({}),
    })
}

/// Runs one API method and returns its result object.
pub async fn call(node: &Node, method: &str, raw: &RawValue) -> Result<Value, ApiError> {
    match method {
        "publish" => {
            let p: PublishParams = params(raw)?;
            let data = required_data(p.data)?;
            let options = PublishOptions {
                skip_history: p.skip_history,
                idempotency_key: p.idempotency_key,
            };
            Ok(publish_one(node, &p.channel, &data, p.tags, options).await?)
        }
        "broadcast" => {
            let p: BroadcastParams = params(raw)?;
            let data = required_data(p.data)?;
            let mut responses = Vec::with_capacity(p.channels.len());
            for channel in &p.channels {
                let options = PublishOptions {
                    skip_history: p.skip_history,
                    idempotency_key: p.idempotency_key.clone(),
                };
                responses.push(
                    match publish_one(node, channel, &data, p.tags.clone(), options).await {
                        Ok(result) => json!({ "result": result }),
                        Err(e) => json!({ "error": e }),
                    },
                );
            }
            Ok(json!({ "responses": responses }))
        }
        "subscribe" => {
            let p: UserChannelParams = params(raw)?;
            node.subscribe_user(&p.user, &p.channel, p.client.as_deref(), p.data.as_deref())?;
            Ok(json!({}))
        }
        "unsubscribe" => {
            let p: UserChannelParams = params(raw)?;
            node.unsubscribe_user(&p.user, &p.channel, p.client.as_deref())?;
            Ok(json!({}))
        }
        "disconnect" => {
            let p: DisconnectParams = params(raw)?;
            let disconnect = match p.disconnect {
                None => Disconnect::FORCE_DISCONNECT,
                Some(d) if (3000..5000).contains(&d.code) && d.reason.len() <= 123 => {
                    Disconnect::custom(d.code, d.reason)
                }
                Some(_) => return Err(ApiError::Code(ErrorCode::BAD_REQUEST)),
            };
            node.disconnect_user(&p.user, p.client.as_deref(), disconnect);
            Ok(json!({}))
        }
        "refresh" => {
            let p: RefreshParams = params(raw)?;
            node.refresh_user(&p.user, p.client.as_deref(), p.expired, p.expire_at);
            Ok(json!({}))
        }
        "presence" => {
            let p: ChannelParams = params(raw)?;
            let entries = node.presence(&p.channel).await?;
            let presence: BTreeMap<&str, _> = entries
                .iter()
                .map(|info| (info.client.as_str(), info))
                .collect();
            Ok(json!({ "presence": presence }))
        }
        "presence_stats" => {
            let p: ChannelParams = params(raw)?;
            Ok(serde_json::to_value(node.presence_stats(&p.channel).await?).unwrap_or_default())
        }
        "history" => {
            let p: HistoryParams = params(raw)?;
            let query = HistoryQuery {
                since: p.since.map(|since| (since.offset, since.epoch)),
                limit: p.limit,
                reverse: p.reverse,
            };
            let (publications, position) = node.history(&p.channel, &query).await?;
            let publications: Vec<&RawValue> = publications
                .iter()
                .filter_map(|p| serde_json::from_slice(&p.object).ok())
                .collect();
            Ok(
                json!({ "publications": publications, "offset": position.offset, "epoch": &*position.epoch }),
            )
        }
        "history_remove" => {
            let p: ChannelParams = params(raw)?;
            node.remove_history(&p.channel).await?;
            Ok(json!({}))
        }
        "channels" => {
            let p: ChannelsParams = params(raw)?;
            let channels: BTreeMap<String, Value> = node
                .hub
                .channels()
                .into_iter()
                .filter(|(name, _)| glob_match(&p.pattern, name))
                .map(|(name, clients)| (name, json!({ "num_clients": clients })))
                .collect();
            Ok(json!({ "channels": channels }))
        }
        "info" => Ok(json!({ "nodes": node.nodes().await? })),
        "user_status" => {
            let p: UserStatusParams = params(raw)?;
            if p.users.len() > MAX_STATUS_USERS {
                return Err(ApiError::Malformed(format!(
                    "users: at most {MAX_STATUS_USERS} per call"
                )));
            }
            Ok(json!({ "statuses": node.user_status(&p.users).await? }))
        }
        "send" => {
            let p: SendParams = params(raw)?;
            node.send_to_user(&p.user, p.client.as_deref(), &p.data);
            Ok(json!({}))
        }
        other => Err(ApiError::UnknownMethod(other.to_string())),
    }
}

#[derive(Deserialize)]
struct BatchParams {
    commands: Vec<HashMap<String, Box<RawValue>>>,
}

/// Runs each command in order; each reply is `{"<method>": result}` or `{"error": ...}`.
async fn batch(app: &App, raw: &RawValue) -> Result<Vec<Value>, ApiError> {
    let p: BatchParams = params(raw)?;
    let mut replies = Vec::with_capacity(p.commands.len());
    for command in &p.commands {
        let Some((method, params)) = command.iter().next().filter(|_| command.len() == 1) else {
            return Err(ApiError::Malformed(
                "each batch command must hold exactly one method".into(),
            ));
        };
        if method == "batch" {
            return Err(ApiError::Malformed("batch commands cannot nest".into()));
        }
        replies.push(match dispatch(app, method, params).await {
            Ok(result) => json!({ method.clone(): result }),
            Err(error) => json!({ "error": error.into_detailed() }),
        });
    }
    Ok(replies)
}

/// `*` matches any run of characters; an empty pattern matches everything.
fn glob_match(pattern: &str, name: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(stripped) = rest.strip_prefix(part) else {
                return false;
            };
            rest = stripped;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests;
