//! What every HTTP and WebSocket handler shares.

use crate::shutdown::Shutdown;
use herald_core::Node;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

pub struct App {
    pub node: Arc<Node>,
    /// The inbox and chat; `None` when both are switched off.
    pub apps: Option<Arc<herald_apps::Apps>>,
    /// `None` unless `webhooks.url` is set.
    pub webhooks: Option<herald_webhooks::Webhooks>,
    /// `None` unless `[demo] enabled`.
    pub demo: Option<crate::web::demo::Demo>,
    /// `[admin] password`; empty when the admin page is off.
    pub admin_password: String,
    /// Wrong admin passwords per address, and who must wait.
    pub admin_throttle: crate::web::throttle::FailureThrottle,
    pub writer_metrics: WriterMetrics,
    pub api_key: String,
    pub allowed_origins: Vec<String>,
    /// Client request headers some proxy forwards, lower case.
    pub proxy_headers: std::collections::HashSet<String>,
    /// Connects per client IP (`[client.rate_limit.connect]`).
    pub connect_limiter: Option<crate::limits::ConnectLimiter>,
    /// Server API calls (`[api.rate_limit]`).
    pub api_limiter: Option<crate::limits::ApiLimiter>,
    pub max_message_bytes: usize,
    pub transports: crate::config::TransportsSection,
    pub shutdown: Shutdown,
    /// What `/health` reports.
    pub health: crate::health::Health,
    pub connections: ConnectionTracker,
}

impl App {
    /// What proxies are told of a client's request: the transport, and the
    /// headers some proxy forwards (`http_headers`).
    pub fn client_request(
        &self,
        transport: &'static str,
        headers: &axum::http::HeaderMap,
    ) -> herald_core::session::ClientRequest {
        let forwarded: Vec<(String, String)> = headers
            .iter()
            .filter(|(name, _)| self.proxy_headers.contains(name.as_str()))
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect();
        herald_core::session::ClientRequest {
            transport,
            headers: forwarded.into(),
        }
    }

    /// No list, or `*` in it, allows any origin; a request without an Origin
    /// header (a backend, a CLI) is not a browser and is allowed.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        self.allowed_origins.is_empty()
            || self
                .allowed_origins
                .iter()
                .any(|allowed| allowed == "*" || allowed.trim_end_matches('/') == origin)
    }
}

/// Metric handles the writers use on every frame, looked up once: the
/// registry lookup behind the `metrics` macros is not free on a hot path.
#[derive(Clone)]
pub struct WriterMetrics {
    pub bytes_sent: metrics::Counter,
    pub publish_to_write: metrics::Histogram,
}

impl WriterMetrics {
    /// Looks the handles up in the installed recorder; call after installing it.
    pub fn register() -> Self {
        Self {
            bytes_sent: metrics::counter!(herald_core::metrics::BYTES_SENT),
            publish_to_write: metrics::histogram!(herald_core::metrics::PUBLISH_TO_WRITE),
        }
    }
}

/// Counts live WebSocket connections so shutdown can wait for them to drain.
#[derive(Default)]
pub struct ConnectionTracker {
    active: AtomicUsize,
    drained: Notify,
}

pub struct ActiveConnection<'a>(&'a ConnectionTracker);

impl ConnectionTracker {
    pub fn enter(&self) -> ActiveConnection<'_> {
        self.active.fetch_add(1, Ordering::SeqCst);
        ActiveConnection(self)
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    pub async fn wait_drained(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ActiveConnection<'_> {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}
