//! `[webhooks]`: where Herald POSTs events, and how it retries.

use super::parse_duration;
use herald_webhooks::WebhookSettings;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksSection {
    /// The backend endpoint; empty switches webhooks off.
    pub url: String,
    /// The HMAC-SHA256 key of `X-Herald-Signature`.
    pub secret: String,
    /// The events to send; empty sends all of them.
    pub events: Vec<String>,
    pub timeout: String,
    pub max_attempts: u32,
    pub retry_initial: String,
    pub retry_max: String,
}

impl Default for WebhooksSection {
    fn default() -> Self {
        Self {
            url: String::new(),
            secret: String::new(),
            events: Vec::new(),
            timeout: "5s".into(),
            max_attempts: 12,
            retry_initial: "1s".into(),
            retry_max: "5m".into(),
        }
    }
}

impl WebhooksSection {
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// The delivery settings of this node, or every problem found.
    pub fn settings(&self, node_id: &str) -> Result<WebhookSettings, String> {
        let settings = self.parse(node_id)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The settings as written, durations parsed but nothing else checked.
    fn parse(&self, node_id: &str) -> Result<WebhookSettings, String> {
        Ok(WebhookSettings {
            url: self.url.clone(),
            secret: self.secret.clone(),
            events: self.events.clone(),
            timeout: parse_duration("webhooks.timeout", &self.timeout)?,
            max_attempts: self.max_attempts,
            retry_initial: parse_duration("webhooks.retry_initial", &self.retry_initial)?,
            retry_max: parse_duration("webhooks.retry_max", &self.retry_max)?,
            node_id: node_id.to_string(),
        })
    }

    /// Adds each problem as its own line: a problem's text may hold `; `.
    pub(super) fn check(&self, errors: &mut Vec<String>) {
        if !self.enabled() {
            return;
        }
        match self.parse("checkconfig") {
            Ok(settings) => errors.extend(settings.problems()),
            Err(problem) => errors.push(problem),
        }
    }
}
