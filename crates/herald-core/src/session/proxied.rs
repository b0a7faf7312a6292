//! Asking the application's backend (`crate::proxy`).
//!
//! A command the backend decides asks with [`Session::consult`]: the first
//! time it stops without effect and the transport waits for the answer
//! (`Step::Await`); run again, it finds the answer and goes on. Refreshes
//! are not commands: when a proxied connection or subscription reaches its
//! `expire_at`, the session asks in the background and the answer comes back
//! as control work, so the connection keeps serving meanwhile.

use super::{Session, State, expiry};
use crate::hub::Control;
use crate::proxy::{
    self, Asker, ClientHeaders, ProxyAnswer, ProxyCall, ProxyKind, RefreshResult, Verdict,
};
use herald_protocol::{Disconnect, Unsubscribe};
use std::time::{Duration, Instant};

/// How long to wait before asking again when a refresh got no usable answer:
/// a backend outage must not cut off every connection it authenticated.
const REFRESH_RETRY: Duration = Duration::from_secs(10);

/// How the client reached the server, as proxies are told.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// `websocket`, `http_stream` or `sse`.
    pub transport: &'static str,
    /// The request headers any proxy forwards (lower-case names).
    pub headers: ClientHeaders,
}

impl Default for ClientRequest {
    fn default() -> Self {
        Self {
            transport: "websocket",
            headers: ClientHeaders::from([]),
        }
    }
}

/// The backend's answer, and what it was asked about.
#[derive(Debug, Clone)]
pub struct Proxied {
    pub kind: ProxyKind,
    pub subject: String,
    pub answer: ProxyAnswer,
}

/// When a Unix time in seconds falls; `None` for 0, which never expires.
pub(super) fn instant_of(expire_at: u64) -> Option<Instant> {
    (expire_at > 0).then(|| {
        let left = expire_at.saturating_sub(crate::unix_now());
        Instant::now() + Duration::from_secs(left)
    })
}

impl Session {
    /// Tells the session how the client came (set by the transport).
    pub fn with_client_request(mut self, request: ClientRequest) -> Self {
        self.request = request;
        self
    }

    /// Whether a proxy for `kind` is configured.
    pub(super) fn proxied(&self, kind: ProxyKind) -> bool {
        self.node.proxy(kind).is_some()
    }

    /// The backend's answer about `subject` when the command runs again after
    /// waiting for it; otherwise asks (with the event's own `fields`) and
    /// returns `None`: the command must then stop without effect.
    pub(super) fn consult(
        &mut self,
        kind: ProxyKind,
        subject: &str,
        fields: impl FnOnce() -> serde_json::Value,
    ) -> Option<ProxyAnswer> {
        if let Some(proxied) = &self.proxied
            && proxied.kind == kind
            && proxied.subject == subject
        {
            return Some(proxied.answer.clone());
        }
        self.awaiting_proxy = Some(self.call(kind, subject.to_string(), fields()));
        None
    }

    fn call(&self, kind: ProxyKind, subject: String, fields: serde_json::Value) -> ProxyCall {
        let user = match &self.state {
            State::Connected(c) => Some(c.info.user.as_str()),
            _ => None,
        };
        let asker = Asker {
            client: &self.id,
            transport: self.request.transport,
            protocol: "json",
            encoding: "json",
            user,
        };
        ProxyCall {
            kind,
            subject,
            body: proxy::request_body(&asker, fields),
            headers: self.request.headers.clone(),
        }
    }

    /// Starts the refreshes that are due: the connection's, then each
    /// subscription's. Each is asked once; its answer sets the next one.
    pub(super) fn refresh_due(&mut self, now: Instant) {
        let State::Connected(c) = &mut self.state else {
            return;
        };
        let mut due = Vec::new();
        if c.refresh_at.is_some_and(|at| now >= at) {
            c.refresh_at = None;
            due.push((ProxyKind::Refresh, String::new()));
        }
        for (channel, subscription) in &mut c.subscriptions {
            if subscription.refresh_at.is_some_and(|at| now >= at) {
                subscription.refresh_at = None;
                due.push((ProxyKind::SubRefresh, channel.clone()));
            }
        }
        for (kind, subject) in due {
            let fields = match kind {
                ProxyKind::SubRefresh => serde_json::json!({ "channel": subject }),
                _ => serde_json::json!({}),
            };
            let call = self.call(kind, subject, fields);
            let (node, control) = (self.node.clone(), self.control.clone());
            tokio::spawn(async move {
                let answer = node.call_proxy(&call).await;
                let subject = call.subject;
                control.push(Control::Proxied {
                    kind,
                    subject,
                    answer,
                });
            });
        }
    }

    /// Applies a background refresh's answer: a later refresh, new info, or
    /// the end of the connection (`refresh`) or subscription (`sub_refresh`).
    pub(super) fn refreshed(
        &mut self,
        kind: ProxyKind,
        subject: &str,
        answer: ProxyAnswer,
    ) -> Result<(), Disconnect> {
        let verdict = proxy::judge::<RefreshResult>(kind, answer);
        let State::Connected(c) = &mut self.state else {
            return Ok(());
        };
        let result = match verdict {
            Ok(Verdict::Allowed(result)) => result,
            Ok(Verdict::Disconnect(disconnect)) => return Err(disconnect),
            // Refresh answers carry a result only; anything else is retried.
            Ok(Verdict::Refused(_)) | Err(_) => {
                let retry = Some(Instant::now() + REFRESH_RETRY);
                match kind {
                    ProxyKind::SubRefresh => {
                        if let Some(subscription) = c.subscriptions.get_mut(subject) {
                            subscription.refresh_at = retry;
                        }
                    }
                    _ => c.refresh_at = retry,
                }
                return Ok(());
            }
        };
        if kind != ProxyKind::SubRefresh {
            if result.expired {
                tracing::info!(client = %c.handle.id, "the refresh proxy says the connection expired");
                return Err(Disconnect::EXPIRED);
            }
            c.refresh_at = instant_of(result.expire_at);
            if result.info.is_some() {
                c.info.conn_info = result.info;
            }
            return Ok(());
        }
        if result.expired {
            tracing::info!(client = %c.handle.id, channel = subject, "the sub_refresh proxy says the subscription expired");
            self.remove_subscription(subject, Some(Unsubscribe::EXPIRED));
            return Ok(());
        }
        if let Some(subscription) = c.subscriptions.get_mut(subject) {
            subscription.refresh_at = instant_of(result.expire_at);
            if result.info.is_some() {
                subscription.info.chan_info = result.info;
            }
        }
        Ok(())
    }

    /// The deadlines of credentials that expire at `expire_at`: closed after
    /// the grace period, or, where `refresh` asks the backend, asked at
    /// `expire_at` and never closed for the backend's silence.
    pub(super) fn deadlines(
        &self,
        expire_at: Option<u64>,
        refresh: ProxyKind,
        by_proxy: bool,
    ) -> (super::Expiry, Option<Instant>) {
        let grace = self.node.limits.expired_close_delay;
        if by_proxy && self.proxied(refresh) {
            let refresh_at = expire_at.and_then(instant_of);
            (expiry(None, grace), refresh_at)
        } else {
            (expiry(expire_at, grace), None)
        }
    }
}
