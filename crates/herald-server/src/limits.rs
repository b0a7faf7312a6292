//! The server's own rate limits, in front of the core's command limits:
//! connects per client IP (`[client.rate_limit.connect]`, on by default) and
//! server API calls (`[api.rate_limit]`). A refusal is HTTP 429 with
//! `Retry-After`, a log line and `herald_rate_limited_total{scope}`: the
//! SDKs reconnect with backoff, and API clients can wait as told.

use crate::app::App;
use crate::web::throttle::retry_after_secs;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::RateLimiter;
use governor::clock::{Clock, MonotonicClock};
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use herald_core::ratelimit::{Bucket, RATE_LIMITED};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

type ByAddress = RateLimiter<IpAddr, HashMapStateStore<IpAddr>, MonotonicClock>;
type Overall = RateLimiter<NotKeyed, InMemoryState, MonotonicClock>;

/// Connects per client IP.
pub struct ConnectLimiter(ByAddress);

impl ConnectLimiter {
    pub fn new(bucket: Bucket) -> Self {
        Self(RateLimiter::hashmap_with_clock(
            bucket.quota(),
            MonotonicClock,
        ))
    }

    /// `Err(wait)` when `ip` has used up its connects for now.
    pub fn admit(&self, ip: IpAddr) -> Result<(), Duration> {
        self.0
            .check_key(&ip)
            .map_err(|refused| refused.wait_time_from(MonotonicClock.now()))
    }

    /// Forgets addresses whose buckets are full again.
    pub fn forget_idle(&self) {
        self.0.retain_recent();
        self.0.shrink_to_fit();
    }
}

/// Server API calls over all callers (Herald has one API key).
pub struct ApiLimiter(Overall);

impl ApiLimiter {
    pub fn new(bucket: Bucket) -> Self {
        Self(RateLimiter::direct_with_clock(
            bucket.quota(),
            MonotonicClock,
        ))
    }

    pub fn admit(&self) -> Result<(), Duration> {
        self.0
            .check()
            .map_err(|refused| refused.wait_time_from(MonotonicClock.now()))
    }
}

/// 429 with `Retry-After`, counted under `scope`.
pub fn too_many(scope: &'static str, wait: Duration) -> Response {
    ::metrics::counter!(RATE_LIMITED, "scope" => scope, "method" => "any").increment(1);
    let seconds = retry_after_secs(wait);
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(serde_json::json!({"error": {"code": 111, "message": "too many requests"}})),
    )
        .into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&seconds.to_string()).expect("digits are a valid header value"),
    );
    response
}

/// Middleware on the connection endpoints: refuses a client IP over its
/// connect rate before any work is done for it.
pub async fn limit_connects(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let (Some(limiter), Some(ConnectInfo(peer))) = (
        app.connect_limiter.as_ref(),
        request.extensions().get::<ConnectInfo<SocketAddr>>(),
    ) else {
        return next.run(request).await;
    };
    match limiter.admit(peer.ip()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            tracing::info!(ip = %peer.ip(), "connect refused: over the per-IP connect rate");
            too_many("connect", wait)
        }
    }
}
