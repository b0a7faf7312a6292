//! Concurrent HTTP publishers, each awaiting its answer before the next request:
//! - `saturating`: as fast as possible while at most `window` publications per
//!   subscriber are undelivered (keeps the system busy without growing its
//!   queues past what any of them allows a slow client);
//! - `fixed_rate`: publication i is due at `i / rate` seconds and carries its
//!   due time, so a publisher falling behind shows up as latency;
//! - `flat_out`: no subscribers in mind, publications (or batches) back to back.
//!
//! Publisher i sends to `endpoints[i % len]`, so with several nodes each
//! publisher stays on one node; with an [`Order`], it numbers its payloads.

use crate::loadgen::{self, Stats};
use crate::order::Order;
use crate::peers::Endpoint;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Publishers running in the background until [`Driver::stop`].
pub struct Driver {
    stop: Arc<AtomicBool>,
    /// Publications answered with 200.
    pub published: Arc<AtomicU64>,
    /// Requests that failed or got another status.
    pub errors: Arc<AtomicU64>,
    first_error: Arc<Mutex<Option<String>>>,
    tasks: Vec<JoinHandle<()>>,
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a plain HTTP client builds")
}

struct Shared {
    endpoints: Vec<Arc<Endpoint>>,
    order: Option<Arc<Order>>,
    http: reqwest::Client,
    stop: Arc<AtomicBool>,
    published: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    first_error: Arc<Mutex<Option<String>>>,
}

impl Shared {
    fn endpoint(&self, publisher: usize) -> &Endpoint {
        &self.endpoints[publisher % self.endpoints.len()]
    }

    fn payload(&self, publisher: usize, sent_us: u64) -> String {
        match &self.order {
            Some(order) => loadgen::tagged_payload(sent_us, &order.tag(publisher)),
            None => loadgen::payload(sent_us),
        }
    }

    /// Sends one request; counts `n` publications on a 200.
    async fn send(&self, request: reqwest::RequestBuilder, n: u64) {
        let failure = match request.send().await {
            Ok(response) if response.status().is_success() => {
                let body = response.bytes().await.unwrap_or_default();
                if body.windows(8).any(|w| w == b"\"error\":") {
                    Some(format!(
                        "answer: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    ))
                } else {
                    self.published.fetch_add(n, Ordering::Relaxed);
                    None
                }
            }
            Ok(response) => Some(format!("HTTP {}", response.status())),
            Err(e) => Some(e.to_string()),
        };
        if let Some(failure) = failure {
            self.errors.fetch_add(1, Ordering::Relaxed);
            self.first_error
                .lock()
                .expect("not poisoned")
                .get_or_insert(failure);
            // A failing server must not turn the loop into a busy spin.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn driver(
    endpoints: &[Arc<Endpoint>],
    order: Option<Arc<Order>>,
    publishers: usize,
    task: impl Fn(Arc<Shared>, usize) -> JoinHandle<()>,
) -> Driver {
    let shared = Arc::new(Shared {
        endpoints: endpoints.to_vec(),
        order,
        http: http_client(),
        stop: Arc::new(AtomicBool::new(false)),
        published: Arc::new(AtomicU64::new(0)),
        errors: Arc::new(AtomicU64::new(0)),
        first_error: Arc::new(Mutex::new(None)),
    });
    let tasks = (0..publishers.max(1))
        .map(|i| task(shared.clone(), i))
        .collect();
    Driver {
        stop: shared.stop.clone(),
        published: shared.published.clone(),
        errors: shared.errors.clone(),
        first_error: shared.first_error.clone(),
        tasks,
    }
}

/// Publishes to `room` as fast as the system takes it while fewer than
/// `window` publications per subscriber (`fanout` subscribers) are undelivered;
/// tags payloads for `stats.order`.
pub fn saturating(
    endpoints: &[Arc<Endpoint>],
    room: &str,
    fanout: u64,
    window: u64,
    stats: &Arc<Stats>,
    publishers: usize,
) -> Driver {
    let sent = Arc::new(AtomicU64::new(0));
    let base = stats.delivered();
    driver(endpoints, stats.order.clone(), publishers, |shared, p| {
        let (room, stats, sent) = (room.to_string(), stats.clone(), sent.clone());
        tokio::spawn(async move {
            while !shared.stop.load(Ordering::Relaxed) {
                let delivered = stats.delivered() - base;
                let in_flight = sent.load(Ordering::Relaxed) * fanout;
                if in_flight > delivered + window * fanout {
                    tokio::time::sleep(Duration::from_micros(500)).await;
                    continue;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                let payload = shared.payload(p, loadgen::now_us());
                let request = shared.endpoint(p).publish(&shared.http, &room, &payload);
                shared.send(request, 1).await;
            }
        })
    })
}

/// Publishes `rate` publications per second for `duration`, round-robin over
/// `rooms`, tagging payloads for `order`.
pub fn fixed_rate(
    endpoints: &[Arc<Endpoint>],
    rooms: Arc<Vec<String>>,
    rate: f64,
    duration: Duration,
    publishers: usize,
    order: Option<Arc<Order>>,
) -> Driver {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let total = (rate * duration.as_secs_f64()).ceil().max(1.0) as u64;
    driver(endpoints, order, publishers, |shared, p| {
        let (next, rooms) = (next.clone(), rooms.clone());
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                let due = started + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let payload = shared.payload(p, loadgen::us_at(due));
                let room = &rooms[i as usize % rooms.len()];
                let request = shared.endpoint(p).publish(&shared.http, room, &payload);
                shared.send(request, 1).await;
            }
        })
    })
}

/// Publications to `room` back to back; `batch` of them per request when given.
pub fn flat_out(
    endpoint: &Arc<Endpoint>,
    room: &str,
    batch: Option<usize>,
    publishers: usize,
) -> Driver {
    driver(
        std::slice::from_ref(endpoint),
        None,
        publishers,
        |shared, _| {
            let room = room.to_string();
            tokio::spawn(async move {
                while !shared.stop.load(Ordering::Relaxed) {
                    let payload = loadgen::payload(loadgen::now_us());
                    match batch {
                        Some(n) => {
                            let items: Vec<(String, String)> =
                                (0..n).map(|_| (room.clone(), payload.clone())).collect();
                            let Some(request) = shared.endpoint(0).batch(&shared.http, &items)
                            else {
                                return;
                            };
                            shared.send(request, n as u64).await;
                        }
                        None => {
                            let request = shared.endpoint(0).publish(&shared.http, &room, &payload);
                            shared.send(request, 1).await;
                        }
                    }
                }
            })
        },
    )
}

impl Driver {
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Whether every task has finished on its own (fixed-rate schedules do).
    pub fn finished(&self) -> bool {
        self.tasks.iter().all(JoinHandle::is_finished)
    }

    /// Stops the publishers after their request in flight; returns the first error seen.
    pub async fn stop(self) -> Option<String> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(35), task).await;
        }
        self.first_error.lock().expect("not poisoned").clone()
    }
}
