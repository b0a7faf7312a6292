//! Building the node from config, routing, serving, and draining on shutdown.

use crate::app::{App, ConnectionTracker, WriterMetrics};
use crate::config::{Config, parse_duration};
use crate::shutdown::{self, Trigger};
use crate::transport::emulation;
use crate::{api, metrics, transport, web};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use herald_core::{
    ClientLimits, Namespaces, Node, NodeConfig, OutboxLimits, TokenVerifier, VerifierKeys,
};
use herald_redis::RedisBroker;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long shutdown waits for webhook events to reach the outbox.
const WEBHOOK_FLUSH: Duration = Duration::from_secs(5);
/// How long shutdown waits for outbox consumers to finish the batch in hand.
const CONSUMERS_STOP: Duration = Duration::from_secs(5);

/// A server that is listening; dropping it does not stop it, `shutdown` does.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    trigger: Trigger,
    grace: Duration,
    task: tokio::task::JoinHandle<()>,
    consumers: Option<herald_consumers::Consumers>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("server.listen: cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("auth: {0}")]
    Keys(String),
    #[error("config: {0}")]
    Config(String),
    #[error("{0}")]
    Storage(String),
}

fn read_pem(path: Option<&std::path::PathBuf>) -> Result<Option<Vec<u8>>, StartError> {
    path.map(|p| {
        std::fs::read(p).map_err(|e| StartError::Keys(format!("cannot read {}: {e}", p.display())))
    })
    .transpose()
}

pub async fn build_node(config: &Config) -> Result<Node, StartError> {
    let duration = |key: &str, value: &str| parse_duration(key, value).map_err(StartError::Config);
    let client = &config.client;
    let limits = ClientLimits {
        allow_anonymous: client.allow_anonymous_connect_without_token,
        channel_limit: client.channel_limit,
        user_connection_limit: client.user_connection_limit,
        ping_interval: duration("client.ping_interval", &client.ping_interval)?,
        pong_timeout: duration("client.pong_timeout", &client.pong_timeout)?,
        stale_timeout: duration("client.stale_timeout", &client.stale_timeout)?,
        expired_close_delay: duration("client.expired_close_delay", &client.expired_close_delay)?,
        outbox: OutboxLimits {
            max_messages: client.queue_max_messages,
            max_bytes: client.queue_max_bytes,
        },
        commands: client
            .rate_limit
            .command_limits()
            .map_err(StartError::Config)?,
    };
    let keys = VerifierKeys {
        hmac_secret: Some(config.auth.hmac_secret.clone()),
        rsa_public_pem: read_pem(config.auth.rsa_public_key.as_ref())?,
        ec_public_pem: read_pem(config.auth.ecdsa_public_key.as_ref())?,
        audience: config.auth.audience.clone(),
        issuer: config.auth.issuer.clone(),
    };
    let verifier = TokenVerifier::new(&keys).map_err(|e| StartError::Keys(e.to_string()))?;
    let name = if config.server.name.is_empty() {
        std::env::var("HOSTNAME").unwrap_or_else(|_| "herald".into())
    } else {
        config.server.name.clone()
    };
    let mut namespaces = Namespaces {
        without_namespace: config.channel.without_namespace.clone(),
        named: config.channel.namespaces.iter().cloned().collect(),
    };
    namespaces
        .named
        .extend(herald_apps::namespaces(&config.app_settings()));
    let node_config = NodeConfig {
        name,
        namespaces,
        limits,
    };
    if config.broker.kind == "redis" {
        return connect_broker(config, node_config, verifier).await;
    }
    let store = crate::storage::open_durable_store(&config.storage).await?;
    Ok(match store {
        Some((log, snapshot)) => Node::durable(node_config, verifier, log, snapshot),
        None => Node::new(node_config, verifier),
    })
}

/// A node on the Redis broker: history, presence and fan-out live in Redis,
/// so the local durable store is not used for history.
async fn connect_broker(
    config: &Config,
    node_config: NodeConfig,
    verifier: TokenVerifier,
) -> Result<Node, StartError> {
    let settings = config.broker.redis_settings().map_err(StartError::Config)?;
    tracing::info!(target_redis = %settings.topology.describe(), prefix = %settings.prefix, "connecting to the broker");
    let broker = Arc::new(
        RedisBroker::connect(settings)
            .await
            .map_err(|e| StartError::Storage(e.to_string()))?,
    );
    let node = Node::with_broker(node_config, verifier, broker.clone());
    broker.start(node.broker_context()).await;
    Ok(node)
}

pub fn router(app: Arc<App>, max_body_bytes: usize) -> Router {
    let admin = Router::new()
        .route("/admin", get(web::admin::page))
        .route("/admin/", get(web::admin::page))
        .route("/admin/api/overview", get(web::admin::overview))
        .route("/admin/api/presence", get(web::admin::presence))
        .route("/admin/api/publish", post(web::admin::publish))
        .route("/admin/api/stats", get(web::admin::stats))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            web::admin::guard,
        ));
    // The HTTP transports take client commands, so client limits apply.
    let http_transports = Router::new()
        .route(
            "/connection/http_stream",
            post(emulation::http_stream).options(emulation::preflight),
        )
        .route(
            "/connection/sse",
            get(emulation::sse).options(emulation::preflight),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::limits::limit_connects,
        ))
        .route(
            "/emulation",
            post(emulation::emulation).options(emulation::preflight),
        )
        .layer(DefaultBodyLimit::max(app.max_message_bytes));
    Router::new()
        .merge(admin)
        .merge(http_transports)
        .route("/", get(web::demo::index))
        .route("/assets/{*path}", get(web::assets::serve))
        .route("/demo/session", post(web::demo::session))
        .route("/demo/backend/{method}", post(web::demo::backend))
        .route(
            "/connection/websocket",
            any(transport::websocket::upgrade).layer(axum::middleware::from_fn_with_state(
                app.clone(),
                crate::limits::limit_connects,
            )),
        )
        .route("/api/{method}", post(api::handle))
        .route("/health", get(health))
        .route("/metrics", get(|| async { metrics::handle().render() }))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(app)
}

/// 200 while the node can serve; 503 with the reason while its broker or its
/// PostgreSQL is gone (see `health.rs`).
async fn health(axum::extract::State(app): axum::extract::State<Arc<App>>) -> impl IntoResponse {
    let (status, mut body) = match app.health.check(&app.node) {
        Ok(()) => (
            axum::http::StatusCode::OK,
            serde_json::json!({"status": "ok"}),
        ),
        Err(reason) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unavailable", "reason": reason}),
        ),
    };
    // Reported, never a reason for 503 (see `health.rs`).
    if let Some(consumers) = app.health.consumers() {
        body["consumers"] = serde_json::json!(consumers);
    }
    (status, axum::Json(body))
}

/// Binds and starts serving in the background.
pub async fn start(config: &Config) -> Result<RunningServer, StartError> {
    metrics::handle();
    let node = Arc::new(build_node(config).await?);
    let proxies = config.proxies().map_err(StartError::Config)?;
    let proxy_headers = proxies
        .as_ref()
        .map(herald_proxy::HttpProxies::forwarded_headers)
        .unwrap_or_default();
    if let Some(proxies) = proxies {
        node.set_proxy(Arc::new(proxies));
    }
    let features = crate::features::start(config, &node).await?;
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.server.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.server.listen.clone(),
        source,
    })?;
    let (trigger, shutdown) = shutdown::channel();
    if config.api.key.is_empty() {
        tracing::warn!("api.key is empty: the server API answers 401 to every request");
    }
    let app = Arc::new(App {
        node,
        apps: features.apps,
        webhooks: features.webhooks,
        demo: config.demo.enabled.then(|| web::demo::Demo {
            secret: config.auth.hmac_secret.clone(),
            loopback_listener: addr.ip().is_loopback(),
        }),
        admin_password: config.admin.password.clone(),
        admin_throttle: Default::default(),
        writer_metrics: WriterMetrics::register(),
        api_key: config.api.key.clone(),
        allowed_origins: config.server.allowed_origins.clone(),
        proxy_headers,
        connect_limiter: config
            .client
            .rate_limit
            .connect_bucket()
            .map_err(StartError::Config)?
            .map(crate::limits::ConnectLimiter::new),
        api_limiter: config
            .api_bucket()
            .map_err(StartError::Config)?
            .map(crate::limits::ApiLimiter::new),
        max_message_bytes: config.client.max_message_bytes,
        transports: config.transports.clone(),
        health: crate::health::Health::start(config.storage.url.as_deref(), shutdown.clone()),
        shutdown: shutdown.clone(),
        connections: ConnectionTracker::default(),
    });
    tokio::spawn(sweep_history(app.clone(), shutdown.clone()));
    let consumers = crate::consumers::start(config, &app, shutdown.clone())?;
    let router = router(app.clone(), config.api.max_body_bytes);
    let mut stop = shutdown;
    // Small frames go out at once: with Nagle's algorithm a push waits for
    // the client's delayed ACK of the previous one, about 40 ms on Linux.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    let task = tokio::spawn(async move {
        let serve = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.recv().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server stopped with an error");
        }
    });
    let grace = parse_duration("server.shutdown_grace", &config.server.shutdown_grace)
        .map_err(StartError::Config)?;
    tracing::info!(%addr, node = %app.node.name, "herald listening");
    Ok(RunningServer {
        addr,
        app,
        trigger,
        grace,
        task,
        consumers,
    })
}

/// Between sweeps of idle history streams (`Node::sweep_history`): often
/// enough that an idle burst's memory goes back within seconds, rarely
/// enough that walking every stream costs nothing measurable.
const HISTORY_SWEEP_EVERY: Duration = Duration::from_secs(2);

async fn sweep_history(app: Arc<App>, mut shutdown: shutdown::Shutdown) {
    let mut ticks = tokio::time::interval(HISTORY_SWEEP_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.recv() => return,
        }
        let remaining = app.node.sweep_history();
        if let Some(limiter) = &app.connect_limiter {
            limiter.forget_idle();
        }
        ::metrics::gauge!(herald_core::metrics::HISTORY_STREAMS).set(remaining as f64);
    }
}

impl RunningServer {
    /// Stops accepting, closes every client with 3001 so it reconnects elsewhere,
    /// and waits up to the grace period for connections to drain.
    pub async fn shutdown(self) {
        let clients = self.app.node.hub.num_clients();
        tracing::info!(clients, grace = ?self.grace, "shutting down: closing clients with 3001");
        self.trigger.notify();
        let drained = tokio::time::timeout(self.grace, self.app.connections.wait_drained()).await;
        if drained.is_err() {
            tracing::warn!(
                left = self.app.connections.active(),
                "grace period over; dropping remaining connections"
            );
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.task).await;
        if let Some(consumers) = self.consumers {
            let _ = tokio::time::timeout(CONSUMERS_STOP, consumers.stopped()).await;
        }
        if let Some(webhooks) = &self.app.webhooks {
            // Events of the closing connections go to the outbox for next time.
            let _ = tokio::time::timeout(WEBHOOK_FLUSH, webhooks.shutdown()).await;
        }
    }
}
