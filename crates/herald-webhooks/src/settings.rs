//! The `[webhooks]` settings, their checks, and the retry schedule.

use std::time::Duration;

/// Every event Herald can send, in the order the docs list them.
pub const EVENTS: &[&str] = &[
    "connect",
    "disconnect",
    "user.online",
    "user.offline",
    "subscribe",
    "unsubscribe",
    "channel.occupied",
    "channel.vacated",
    "chat.message",
    "notification.read",
];

/// How webhooks are delivered. The server builds this from `[webhooks]`;
/// [`WebhookSettings::validate`] names the offending `webhooks.<key>`.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The backend endpoint; every event is POSTed here. `http://` only: this
    /// build has no TLS client, so put a TLS-terminating proxy in between
    /// when the backend is remote.
    pub url: String,
    /// The HMAC-SHA256 key of `X-Herald-Signature`.
    pub secret: String,
    /// Which events to send; empty sends all of [`EVENTS`].
    pub events: Vec<String>,
    /// The limit on one POST, from connecting to the end of the response.
    pub timeout: Duration,
    /// Attempts per event, the first included; after the last failed one
    /// the event is dropped (a warning and `outcome="dropped"`).
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each
    /// further failure up to [`retry_max`](Self::retry_max), with jitter.
    pub retry_initial: Duration,
    /// The longest wait between two attempts.
    pub retry_max: Duration,
    /// This node's id, written into the rows it claims. Nodes sharing one
    /// outbox need distinct ids.
    pub node_id: String,
}

impl WebhookSettings {
    /// Checks every field and lists every problem, each naming its key,
    /// separated by `; `.
    pub fn validate(&self) -> Result<(), String> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Every problem with these settings, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(problem) = check_url(&self.url) {
            problems.push(problem);
        }
        if self.secret.is_empty() {
            problems.push("webhooks.secret must not be empty: it keys X-Herald-Signature".into());
        }
        let unknown: Vec<String> = self
            .events
            .iter()
            .filter(|event| !EVENTS.contains(&event.as_str()))
            .map(|event| format!("`{event}`"))
            .collect();
        if !unknown.is_empty() {
            problems.push(format!(
                "webhooks.events: unknown event{} {}; known events are {}",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.join(", "),
                EVENTS.join(", ")
            ));
        }
        if self.timeout.is_zero() {
            problems.push("webhooks.timeout must be greater than zero".into());
        }
        if self.max_attempts == 0 {
            problems.push("webhooks.max_attempts must be at least 1".into());
        }
        if self.retry_initial.is_zero() {
            problems.push("webhooks.retry_initial must be greater than zero".into());
        }
        if self.retry_max < self.retry_initial {
            problems.push(format!(
                "webhooks.retry_max ({:?}) must not be shorter than webhooks.retry_initial ({:?})",
                self.retry_max, self.retry_initial
            ));
        }
        if self.node_id.is_empty() {
            problems.push("webhooks: the node id must not be empty".into());
        }
        problems
    }

    /// The wait after failed attempt number `attempt` (1 for the first):
    /// `retry_initial * 2^(attempt-1)` capped at `retry_max`, then a random
    /// point in its upper half, so nodes retrying together spread out.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let full = self
            .retry_initial
            .saturating_mul(1u32 << doublings)
            .min(self.retry_max);
        let half = full / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::random_range(0..=jitter_ms))
    }
}

fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Err(format!(
            "webhooks.url: `{url}` uses https://, but this build of Herald has no TLS client; \
             use http:// (for a remote backend, through a TLS-terminating proxy)"
        ));
    }
    if !url.starts_with("http://") {
        return Err(format!("webhooks.url: `{url}` must start with http://"));
    }
    match reqwest::Url::parse(url) {
        Ok(parsed) if parsed.host_str().is_some_and(|host| !host.is_empty()) => Ok(()),
        Ok(_) => Err(format!("webhooks.url: `{url}` has no host")),
        Err(error) => Err(format!("webhooks.url: `{url}` is not a valid URL: {error}")),
    }
}
