//! Asking the application's backend, in Centrifugo's proxy format.
//!
//! With a proxy configured, what a token would otherwise carry is asked of the
//! backend instead: who connects (`connect`), whether a connection or a
//! subscription lives on (`refresh`, `sub_refresh`), who may subscribe or
//! publish and with what (`subscribe`, `publish`), and what an `rpc` answers.
//! Request and response bodies are Centrifugo's JSON, so a backend written for
//! Centrifugo answers Herald unchanged.
//!
//! The core builds the requests and judges the answers; moving the bytes is a
//! [`ProxyTransport`]'s job (HTTP, in the server), so sessions stay sans-IO: a
//! command that needs the backend's word waits (`Step::Await`) as one that
//! needs a broker does, and runs again with the answer.

use crate::durable::BoxFuture;
use bytes::Bytes;
use herald_protocol::{DetailedError, Disconnect, ErrorCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;

pub const REQUESTS: &str = "herald_proxy_requests_total";

/// The events a backend can be asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    Connect,
    Refresh,
    Subscribe,
    Publish,
    SubRefresh,
    Rpc,
}

impl ProxyKind {
    pub const ALL: [ProxyKind; 6] = [
        ProxyKind::Connect,
        ProxyKind::Refresh,
        ProxyKind::Subscribe,
        ProxyKind::Publish,
        ProxyKind::SubRefresh,
        ProxyKind::Rpc,
    ];

    /// Centrifugo's name for the event, as config sections and metrics use it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyKind::Connect => "connect",
            ProxyKind::Refresh => "refresh",
            ProxyKind::Subscribe => "subscribe",
            ProxyKind::Publish => "publish",
            ProxyKind::SubRefresh => "sub_refresh",
            ProxyKind::Rpc => "rpc",
        }
    }
}

/// Headers of the client's own HTTP request (the WebSocket upgrade, the
/// streaming request) that a proxy may forward: names in lower case.
pub type ClientHeaders = Arc<[(String, String)]>;

/// One request to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyCall {
    pub kind: ProxyKind,
    /// The channel or rpc method it is about (empty for connect and refresh),
    /// so an answer is only taken by the command it was asked for.
    pub subject: String,
    /// The JSON request body.
    pub body: Bytes,
    pub headers: ClientHeaders,
}

/// The backend's raw answer, or why there is none (unreachable, timed out, a
/// status other than 200).
pub type ProxyAnswer = Result<Bytes, String>;

/// Moves proxy requests to the backend; the server implements it over HTTP.
pub trait ProxyTransport: Send + Sync + 'static {
    /// Whether a proxy for `kind` is configured.
    fn enabled(&self, kind: ProxyKind) -> bool;
    /// Whether `rpc` calls with this method go to the backend
    /// (`[rpc.without_namespace]` or the method's `[[rpc.namespaces]]`).
    fn proxies_rpc(&self, method: &str) -> bool;
    /// Sends `call` and returns the answer's body.
    fn call(&self, call: &ProxyCall) -> BoxFuture<'static, ProxyAnswer>;
}

impl crate::Node {
    /// Plugs in the backend's proxies; a node takes them once.
    pub fn set_proxy(&self, proxy: Arc<dyn ProxyTransport>) {
        if self.proxy.set(proxy).is_err() {
            tracing::warn!("proxies were already set; the second set is ignored");
        }
    }

    /// The proxies, when `kind` is configured.
    pub fn proxy(&self, kind: ProxyKind) -> Option<&Arc<dyn ProxyTransport>> {
        self.proxy.get().filter(|proxy| proxy.enabled(kind))
    }

    /// Whether an `rpc` with this method goes to the backend.
    pub fn proxies_rpc(&self, method: &str) -> bool {
        self.proxy
            .get()
            .is_some_and(|proxy| proxy.proxies_rpc(method))
    }

    /// Asks the backend; an answer for a kind nobody configured is a failure.
    pub async fn call_proxy(&self, call: &ProxyCall) -> ProxyAnswer {
        match self.proxy(call.kind) {
            Some(proxy) => proxy.call(call).await,
            None => Err(format!("no {} proxy is configured", call.kind.as_str())),
        }
    }
}

/// What the backend decided.
#[derive(Debug)]
pub enum Verdict<T> {
    /// `{"result": ...}`
    Allowed(T),
    /// `{"error": {"code", "message"}}`: the command is answered with it.
    Refused(DetailedError),
    /// `{"disconnect": {"code", "reason"}}`: the connection closes with it.
    Disconnect(Disconnect),
}

#[derive(Deserialize)]
struct Response<T> {
    result: Option<T>,
    error: Option<BackendError>,
    disconnect: Option<BackendDisconnect>,
}

#[derive(Deserialize)]
struct BackendError {
    code: u32,
    #[serde(default)]
    message: String,
    #[serde(default)]
    temporary: bool,
}

#[derive(Deserialize)]
struct BackendDisconnect {
    code: u16,
    #[serde(default)]
    reason: String,
}

/// Judges a backend's answer; `Err` (with the reason, logged and counted
/// here) when there is no usable answer, which callers turn into the
/// protocol's internal error.
pub fn judge<T: DeserializeOwned>(
    kind: ProxyKind,
    answer: ProxyAnswer,
) -> Result<Verdict<T>, String> {
    let verdict = answer.and_then(|body| parse(&body));
    let outcome = match &verdict {
        Ok(Verdict::Allowed(_)) => "result",
        Ok(Verdict::Refused(_)) => "error",
        Ok(Verdict::Disconnect(_)) => "disconnect",
        Err(_) => "failed",
    };
    ::metrics::counter!(REQUESTS, "kind" => kind.as_str(), "outcome" => outcome).increment(1);
    if let Err(why) = &verdict {
        tracing::warn!(proxy = kind.as_str(), %why, "proxy request failed");
    }
    verdict
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<Verdict<T>, String> {
    let response: Response<T> = serde_json::from_slice(body)
        .map_err(|e| format!("the backend's answer is not understood: {e}"))?;
    if let Some(disconnect) = response.disconnect {
        if !(3000..5000).contains(&disconnect.code) || disconnect.reason.len() > 123 {
            return Err(format!(
                "the backend's disconnect code {} is outside 3000-4999 or its reason over 123 bytes",
                disconnect.code
            ));
        }
        return Ok(Verdict::Disconnect(Disconnect::custom(
            disconnect.code,
            disconnect.reason,
        )));
    }
    if let Some(error) = response.error {
        return Ok(Verdict::Refused(DetailedError {
            code: error.code,
            message: error.message,
            temporary: error.temporary,
        }));
    }
    response
        .result
        .map(Verdict::Allowed)
        .ok_or_else(|| "the backend answered neither result, error nor disconnect".into())
}

/// The internal error a command gets when the backend gave no usable answer.
pub fn unavailable() -> DetailedError {
    ErrorCode::INTERNAL.into()
}

/// The fields every request starts with: who asks, and how it is connected.
#[derive(Debug, Clone, Serialize)]
pub struct Asker<'a> {
    pub client: &'a str,
    pub transport: &'a str,
    pub protocol: &'static str,
    pub encoding: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
}

/// A request body: the asker's fields followed by the event's own.
pub fn request_body(asker: &Asker<'_>, fields: serde_json::Value) -> Bytes {
    let mut body = serde_json::to_value(asker).expect("plain fields serialize");
    if let (Some(body), serde_json::Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields.into_iter().filter(|(_, v)| !v.is_null()));
    }
    Bytes::from(body.to_string())
}

/// A `connect` result: the connection's credentials, as a token's claims would
/// carry them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConnectResult {
    pub user: String,
    /// Unix seconds; 0 never expires.
    pub expire_at: u64,
    pub info: Option<Box<RawValue>>,
    pub data: Option<Box<RawValue>>,
    pub channels: Vec<String>,
    pub subs: HashMap<String, serde::de::IgnoredAny>,
}

/// A `refresh` or `sub_refresh` result.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RefreshResult {
    pub expired: bool,
    pub expire_at: u64,
    pub info: Option<Box<RawValue>>,
}

/// A `subscribe` result.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubscribeResult {
    pub info: Option<Box<RawValue>>,
    pub data: Option<Box<RawValue>>,
    #[serde(rename = "override")]
    pub overrides: Option<SubscribeOverride>,
    pub expire_at: u64,
}

/// Namespace options a `subscribe` result may change for this subscription.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SubscribeOverride {
    pub presence: Option<BoolValue>,
    pub join_leave: Option<BoolValue>,
    pub force_push_join_leave: Option<BoolValue>,
    pub force_recovery: Option<BoolValue>,
    pub force_positioning: Option<BoolValue>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct BoolValue {
    pub value: bool,
}

/// A `publish` result: the data to publish instead of the client's, if any.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PublishResult {
    pub data: Option<Box<RawValue>>,
    pub skip_history: bool,
    pub idempotency_key: Option<String>,
    pub tags: Option<HashMap<String, String>>,
}

/// An `rpc` result.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RpcResult {
    pub data: Option<Box<RawValue>>,
}

#[cfg(test)]
mod tests;
