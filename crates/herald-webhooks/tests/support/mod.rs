//! What the end-to-end tests share: an HTTP receiver standing in for the
//! user's backend, settings, pools, and waiting with deadlines.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use herald_webhooks::WebhookSettings;
use sqlx::AnyPool;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long any wait in these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub const SECRET: &str = "test-secret";

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {self:?}"))
            .to_str()
            .unwrap()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn id(&self) -> String {
        self.json()["id"].as_str().unwrap().to_string()
    }
}

struct Shared {
    requests: Mutex<Vec<Received>>,
    /// Requests answered 500 before the others get 200.
    fail_first: usize,
    answered: AtomicUsize,
    /// The number of requests received so far.
    count: watch::Sender<usize>,
    /// Requests to this path wait for `release` before being answered.
    hold: Option<String>,
    release: watch::Sender<bool>,
}

/// A backend on 127.0.0.1 that records every request.
pub struct Receiver {
    shared: Arc<Shared>,
    address: std::net::SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers 200 to everything.
    pub async fn start() -> Self {
        Self::start_with(0, None).await
    }

    /// Answers the first `fail_first` requests with 500, and holds requests
    /// to the path `hold` until [`release`](Self::release).
    pub async fn start_with(fail_first: usize, hold: Option<&str>) -> Self {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            fail_first,
            answered: AtomicUsize::new(0),
            count: watch::channel(0).0,
            hold: hold.map(str::to_string),
            release: watch::channel(false).0,
        });
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            shared,
            address,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests have arrived (held ones included)
    /// and returns all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let mut count = self.shared.count.subscribe();
        within(
            &format!("the receiver to get {n} requests"),
            count.wait_for(|seen| *seen >= n),
        )
        .await
        .unwrap();
        self.requests()
    }

    /// Answers the held requests, and from now on every request at once.
    pub fn release(&self) {
        self.shared.release.send_replace(true);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_string();
    let held = shared.hold.as_deref() == Some(path.as_str());
    {
        let mut requests = shared.requests.lock().unwrap();
        requests.push(Received {
            path,
            headers,
            body,
        });
        shared.count.send_replace(requests.len());
    }
    if held {
        let mut released = shared.release.subscribe();
        let _ = released.wait_for(|released| *released).await;
    }
    if shared.answered.fetch_add(1, Ordering::SeqCst) < shared.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// Settings for a test: quick retries, many attempts.
pub fn settings(url: String) -> WebhookSettings {
    WebhookSettings {
        url,
        secret: SECRET.into(),
        events: Vec::new(),
        timeout: Duration::from_secs(5),
        max_attempts: 20,
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        node_id: "node-a".into(),
    }
}

/// A URL nothing listens on: a port that was just free.
pub fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/hooks")
}

pub fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/w.db?mode=rwc", dir.path().display())
}

pub async fn pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

pub async fn outbox_rows(pool: &AnyPool) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM herald_webhook_outbox")
        .fetch_one(pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

/// Waits until the outbox is empty: every event delivered or dropped.
pub async fn wait_outbox_empty(pool: &AnyPool) {
    within("the outbox to empty", async {
        while outbox_rows(pool).await > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// `future`'s output, or a panic naming `what` after [`DEADLINE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?} waiting for {what}"))
}
