//! The steady load every scenario runs under: paced API callers that keep
//! every acknowledged answer; and the checks of what became of them: the
//! history read, and what each subscriber received.
//!
//! A call is *acknowledged* when the API answered 200 with `{"result": ...}`
//! and no `error`; anything else (refused, reset, timed out, an error answer)
//! counts as failed and promises nothing, whether or not it was applied.

use super::node::API_KEY;
use crate::Result;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Longest one API call may take before it counts as failed: long enough
/// for a slow commit, short enough that a blackholed node does not stall the run.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// History pages read at a time.
const PAGE: usize = 1_000;

/// One acknowledged call: the caller's sequence number and the API's result.
#[derive(Clone, Debug)]
pub struct Ack {
    pub seq: u64,
    pub result: Value,
}

impl Ack {
    /// The offset a publish was answered with.
    pub fn offset(&self) -> u64 {
        self.result["offset"].as_u64().unwrap_or(0)
    }

    pub fn epoch(&self) -> &str {
        self.result["epoch"].as_str().unwrap_or_default()
    }
}

/// The API method and body for sequence number `seq`; `None` ends the caller.
pub type MakeCall = Arc<dyn Fn(u64) -> (String, Value) + Send + Sync>;

/// The body of the publish of `seq` to `channel`.
pub fn publish_call(channel: &str) -> MakeCall {
    let channel = channel.to_string();
    Arc::new(move |seq| {
        let body = json!({"channel": channel, "data": {"seq": seq, "text": "chaos"}});
        ("publish".to_string(), body)
    })
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(CALL_TIMEOUT)
        .build()
        .expect("a plain HTTP client builds")
}

/// One server API call: `Ok(result)` only when acknowledged.
pub async fn api(http: &reqwest::Client, base: &str, method: &str, body: &Value) -> Result<Value> {
    let response = http
        .post(format!("{base}/api/{method}"))
        .header("X-API-Key", API_KEY)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("{method}: {e}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{method}: {e}"))?;
    let mut answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status != 200 || answer.get("error").is_some() || answer.get("result").is_none() {
        let text = &text[..text.len().min(200)];
        return Err(format!("{method}: HTTP {status}, answer {text}").into());
    }
    Ok(answer["result"].take())
}

/// Callers running in the background until [`Callers::stop`].
pub struct Callers {
    stop: Arc<AtomicBool>,
    pub acked: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    first_error: Arc<Mutex<Option<(Instant, String)>>>,
    tasks: Vec<JoinHandle<Vec<(Instant, Ack)>>>,
}

/// What the callers did, once stopped.
pub struct Calls {
    /// In the order answered, with the time of each answer.
    pub acks: Vec<(Instant, Ack)>,
    pub failed: u64,
    pub first_error: Option<String>,
}

impl Callers {
    /// `callers` tasks that together make `rate` calls per second; caller i
    /// calls `targets[i % len]` and awaits each answer before its next call.
    /// A caller that falls behind (a failing or slow server) does not build
    /// up debt to burst later: its schedule restarts from now.
    pub fn start(targets: &[String], rate: f64, callers: usize, make: MakeCall) -> Callers {
        let stop = Arc::new(AtomicBool::new(false));
        let (acked, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let first_error = Arc::new(Mutex::new(None));
        let next = Arc::new(AtomicU64::new(0));
        let http = http_client();
        let interval = Duration::from_secs_f64(callers.max(1) as f64 / rate.max(1.0));
        let tasks = (0..callers.max(1))
            .map(|i| {
                let base = targets[i % targets.len()].clone();
                let (stop, acked, failed) = (stop.clone(), acked.clone(), failed.clone());
                let (first_error, next, http, make) = (
                    first_error.clone(),
                    next.clone(),
                    http.clone(),
                    make.clone(),
                );
                // Spread the callers over one interval so calls arrive evenly.
                let offset = interval.mul_f64(i as f64 / callers.max(1) as f64);
                tokio::spawn(async move {
                    let mut acks = Vec::new();
                    let mut due = Instant::now() + offset;
                    while !stop.load(Relaxed) {
                        tokio::time::sleep_until(due.into()).await;
                        due = (due + interval).max(Instant::now() - interval);
                        let seq = next.fetch_add(1, Relaxed);
                        let (method, body) = make(seq);
                        match api(&http, &base, &method, &body).await {
                            Ok(result) => {
                                acked.fetch_add(1, Relaxed);
                                acks.push((Instant::now(), Ack { seq, result }));
                            }
                            Err(e) => {
                                failed.fetch_add(1, Relaxed);
                                let mut first = first_error.lock().expect("not poisoned");
                                first.get_or_insert((Instant::now(), e.to_string()));
                            }
                        }
                    }
                    acks
                })
            })
            .collect();
        Callers {
            stop,
            acked,
            failed,
            first_error,
            tasks,
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Relaxed)
    }

    /// Waits until `count` calls were acknowledged in all, or fails at `deadline`.
    pub async fn await_acked(&self, count: u64, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while self.acked() < count {
            if Instant::now() > deadline {
                return Err(format!(
                    "only {} of {count} calls acknowledged within {within:?} ({} failed, first: {:?})",
                    self.acked(),
                    self.failed(),
                    self.first_error.lock().expect("not poisoned").as_ref().map(|e| &e.1)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Stops every caller after its call in flight.
    pub async fn stop(self) -> Calls {
        self.stop.store(true, Relaxed);
        let mut acks = Vec::new();
        for task in self.tasks {
            if let Ok(Ok(mut done)) = tokio::time::timeout(CALL_TIMEOUT * 2, task).await {
                acks.append(&mut done);
            }
        }
        acks.sort_by_key(|(at, _)| *at);
        let first_error = self.first_error.lock().expect("not poisoned").take();
        Calls {
            acks,
            failed: self.failed.load(Relaxed),
            first_error: first_error.map(|(_, e)| e),
        }
    }
}

/// A channel's history as the API returns it: every retained publication's
/// offset and the `seq` in its data.
pub struct History {
    pub epoch: String,
    pub top: u64,
    pub entries: Vec<(u64, u64)>,
}

/// Reads all of `channel`'s history, a page at a time, oldest first.
pub async fn read_history(http: &reqwest::Client, base: &str, channel: &str) -> Result<History> {
    let position = api(
        http,
        base,
        "history",
        &json!({"channel": channel, "limit": 0}),
    )
    .await?;
    let epoch = position["epoch"].as_str().unwrap_or_default().to_string();
    let top = position["offset"].as_u64().unwrap_or(0);
    let mut entries = Vec::new();
    let mut since = 0;
    while since < top {
        let body = json!({"channel": channel, "limit": PAGE,
                          "since": {"offset": since, "epoch": epoch}});
        let page = api(http, base, "history", &body).await?;
        if page["epoch"].as_str() != Some(epoch.as_str()) {
            return Err(
                format!("{channel}: the epoch changed while reading history: {page}").into(),
            );
        }
        let publications = page["publications"].as_array().cloned().unwrap_or_default();
        if publications.is_empty() {
            break;
        }
        for publication in publications {
            let offset = publication["offset"].as_u64().unwrap_or(0);
            let seq = publication["data"]["seq"].as_u64().unwrap_or(u64::MAX);
            entries.push((offset, seq));
            since = offset;
        }
    }
    Ok(History {
        epoch,
        top,
        entries,
    })
}

/// How acknowledged publishes compare with a channel's history.
pub struct HistoryCheck {
    /// Acknowledged publications found at the offset they were answered with.
    pub found: u64,
    /// Acknowledged sequence numbers missing from history (or at another offset).
    pub missing: Vec<u64>,
    /// Sequence numbers history holds more than once.
    pub duplicates: u64,
    pub problems: Vec<String>,
}

/// Every acknowledged publish must be in history, under the epoch and at the
/// offset it was answered with; history must hold offsets 1..=top with no
/// gap and no publication twice.
pub fn check_history(acks: &[(Instant, Ack)], history: &History) -> HistoryCheck {
    let mut check = HistoryCheck {
        found: 0,
        missing: Vec::new(),
        duplicates: 0,
        problems: Vec::new(),
    };
    let at_offset: BTreeMap<u64, u64> = history.entries.iter().copied().collect();
    let mut times: BTreeMap<u64, u64> = BTreeMap::new();
    for (_, seq) in &history.entries {
        *times.entry(*seq).or_default() += 1;
    }
    check.duplicates = times.values().map(|n| n - 1).sum();
    let offsets: Vec<u64> = history.entries.iter().map(|(o, _)| *o).collect();
    let expected: Vec<u64> = (1..=history.top).collect();
    if offsets != expected {
        let first = offsets.iter().zip(&expected).position(|(a, b)| a != b);
        check.problems.push(format!(
            "history holds {} publications up to offset {}, not 1..={} (first difference at index {first:?})",
            offsets.len(),
            offsets.last().unwrap_or(&0),
            history.top
        ));
    }
    let mut epochs: Vec<&str> = Vec::new();
    for (_, ack) in acks {
        if !epochs.contains(&ack.epoch()) {
            epochs.push(ack.epoch());
        }
        let kept = ack.epoch() == history.epoch && at_offset.get(&ack.offset()) == Some(&ack.seq);
        if kept {
            check.found += 1;
        } else {
            check.missing.push(ack.seq);
        }
    }
    if epochs.iter().any(|e| *e != history.epoch) {
        check.problems.push(format!(
            "publishes were answered under epochs {epochs:?}; history is under {}",
            history.epoch
        ));
    }
    if !check.missing.is_empty() {
        check.problems.push(format!(
            "{} acknowledged publications not in history at their offset (first seqs {:?})",
            check.missing.len(),
            &check.missing[..check.missing.len().min(5)]
        ));
    }
    if check.duplicates > 0 {
        check.problems.push(format!(
            "history holds {} publications twice",
            check.duplicates
        ));
    }
    check
}

/// How what a subscriber received compares with what was acknowledged.
pub struct Delivery {
    /// Acknowledged publications it should have received and did not.
    pub missing: Vec<u64>,
    /// Publications it received more than once.
    pub duplicates: u64,
    /// Publications that arrived after one with a higher offset.
    pub out_of_order: u64,
    /// Times it was told `recovered: false`.
    pub unrecovered: usize,
}

/// A subscriber owes every acknowledged publication above its first
/// position, except those it was told it could not recover (between the
/// last offset it saw and the position a `recovered: false` reply named).
pub fn check_delivery(received: &super::subscriber::Received, acked: &[(u64, u64)]) -> Delivery {
    let mut seen = std::collections::BTreeMap::new();
    let (mut duplicates, mut out_of_order, mut last) = (0, 0, 0);
    for &(offset, seq) in &received.publications {
        if seen.insert(seq, offset).is_some() {
            duplicates += 1;
        } else if offset < last {
            out_of_order += 1;
        }
        last = last.max(offset);
    }
    let unrecovered = received.recoveries.iter().filter(|r| !r.recovered).count();
    let excused = |offset: u64| {
        received
            .recoveries
            .iter()
            .filter_map(|r| r.skipped)
            .any(|(after, upto)| offset > after && offset <= upto)
    };
    let missing = acked
        .iter()
        .filter(|(offset, seq)| {
            *offset > received.start_offset && !seen.contains_key(seq) && !excused(*offset)
        })
        .map(|(_, seq)| *seq)
        .collect();
    Delivery {
        missing,
        duplicates,
        out_of_order,
        unrecovered,
    }
}
