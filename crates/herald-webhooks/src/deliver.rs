//! One POST of one event, and its signature.

use crate::outbox::Due;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The value of `X-Herald-Signature` for a request whose
/// `X-Herald-Timestamp` is `timestamp` and whose body is `body`:
/// `sha256=` and the lowercase hex of HMAC-SHA256 keyed with `secret` over
/// `"<timestamp>.<body>"`.
///
/// A receiver recomputes it from the raw body bytes (before any JSON
/// parsing) and compares in constant time; it should also reject timestamps
/// far from its own clock, so a captured request cannot be replayed later.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs `due` as attempt number `attempt`. `Err` carries why it did not
/// count as delivered: the status of a non-2xx answer, or the error chain.
pub(crate) async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    timeout: Duration,
    due: &Due,
    attempt: i64,
) -> Result<(), String> {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let response = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Herald-Event", due.event.as_str())
        .header("X-Herald-Delivery", due.id.as_str())
        .header("X-Herald-Attempt", attempt.to_string())
        .header("X-Herald-Timestamp", timestamp.to_string())
        .header(
            "X-Herald-Signature",
            signature(secret, timestamp, due.body.as_bytes()),
        )
        .body(due.body.clone())
        .send()
        .await
        .map_err(|error| chain(&error))?;
    let status = response.status();
    drain(response).await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

/// Reads and discards a short answer, so its connection goes back to the
/// pool for the next POST; a long one is cut off (closing the connection)
/// rather than read into memory. The request's timeout bounds the reading.
async fn drain(mut response: reqwest::Response) {
    const KEEP_ALIVE_UP_TO: usize = 64 * 1024;
    let mut read = 0;
    while let Ok(Some(chunk)) = response.chunk().await {
        read += chunk.len();
        if read > KEEP_ALIVE_UP_TO {
            return;
        }
    }
}

/// The error and its sources, `: `-separated: reqwest's own message alone
/// says "error sending request" without saying why.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
