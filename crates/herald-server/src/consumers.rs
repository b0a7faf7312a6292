//! The outbox consumers' door into the node: each message runs as the server
//! API call it names, through the same `api::dispatch` as `POST /api/<method>`,
//! and is counted in the same API metrics.
//!
//! What is retried follows the code tables: an error marked `temporary`
//! (100 internal, 111 too many requests) is retried, in order, until it
//! passes; every other answer (400 malformed, 404 unknown method, 102
//! unknown channel, 108 not available, which here means a feature that is
//! switched off for the channel) can never pass and drops the message.

use crate::api::{self, ApiError, KNOWN_METHODS};
use crate::app::App;
use crate::config::Config;
use crate::server::StartError;
use crate::shutdown::Shutdown;
use herald_consumers::{Apply, ApplyError, BoxFuture, Consumers};
use herald_core::metrics as names;
use herald_protocol::DetailedError;
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::Arc;

/// Starts the consumers that are on; `None` when there are none.
pub fn start(
    config: &Config,
    app: &Arc<App>,
    mut shutdown: Shutdown,
) -> Result<Option<Consumers>, StartError> {
    // The node's id makes the name unique per process in a Redis consumer group.
    let consumer_name = format!("{}-{}", app.node.name, app.node.id);
    let mut consumers = Vec::new();
    for (index, section) in config.consumers.iter().enumerate() {
        if section.enabled {
            consumers.push(
                section
                    .settings(index, &consumer_name)
                    .map_err(StartError::Config)?,
            );
        }
    }
    if consumers.is_empty() {
        return Ok(None);
    }
    let apply = Arc::new(ApiApply { app: app.clone() });
    let consumers = herald_consumers::spawn(consumers, apply, async move {
        shutdown.recv().await;
    })
    .map_err(|e| StartError::Config(e.to_string()))?;
    app.health.watch_consumers(consumers.board());
    Ok(Some(consumers))
}

struct ApiApply {
    app: Arc<App>,
}

impl Apply for ApiApply {
    fn apply<'a>(
        &'a self,
        method: &'a str,
        payload: &'a RawValue,
    ) -> BoxFuture<'a, Result<(), ApplyError>> {
        Box::pin(async move {
            let known =
                KNOWN_METHODS.contains(&method) || herald_apps::api::METHODS.contains(&method);
            let label = if known { method } else { "unknown" }.to_string();
            metrics::counter!(names::API_REQUESTS, "method" => label.clone()).increment(1);
            let (code, error) = match api::dispatch(&self.app, method, payload).await {
                Ok(result) if method == "broadcast" => return broadcast_outcome(&result),
                Ok(_) => return Ok(()),
                Err(ApiError::Malformed(why)) => ("400".to_string(), ApplyError::Rejected(why)),
                Err(ApiError::UnknownMethod(name)) => (
                    "404".to_string(),
                    ApplyError::Rejected(format!("unknown method `{name}`")),
                ),
                Err(error) => {
                    let error = error.into_detailed();
                    (error.code.to_string(), classify(&error))
                }
            };
            metrics::counter!(names::API_ERRORS, "method" => label, "code" => code).increment(1);
            Err(error)
        })
    }
}

fn classify(error: &DetailedError) -> ApplyError {
    if error.temporary {
        ApplyError::Retry(error.to_string())
    } else {
        ApplyError::Rejected(error.to_string())
    }
}

/// A broadcast answers per channel. A temporary failure on any channel
/// retries the whole call (an `idempotency_key` keeps the channels that
/// passed from publishing twice); failures that can never pass drop it.
fn broadcast_outcome(result: &Value) -> Result<(), ApplyError> {
    let responses = result["responses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let errors: Vec<&Value> = responses.iter().filter_map(|r| r.get("error")).collect();
    if errors.is_empty() {
        return Ok(());
    }
    let describe = |error: &Value| {
        format!(
            "{} {}",
            error["code"],
            error["message"].as_str().unwrap_or_default()
        )
    };
    let summary = format!(
        "broadcast failed on {} of {} channels: {}",
        errors.len(),
        responses.len(),
        errors
            .iter()
            .map(|e| describe(e))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if errors.iter().any(|e| e["temporary"] == Value::Bool(true)) {
        Err(ApplyError::Retry(summary))
    } else {
        Err(ApplyError::Rejected(summary))
    }
}
