//! Minting tokens: `herald gentoken` and the dev-mode banner use this.

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("auth.hmac_secret is empty: set it in the config or HERALD_AUTH_HMAC_SECRET")]
    NoSecret,
    #[error("--info must be a JSON value: {0}")]
    Info(serde_json::Error),
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// An HS256 connection token, or a subscription token when `channel` is given.
pub fn mint(
    secret: &str,
    user: &str,
    ttl: Option<Duration>,
    info: Option<&str>,
    channel: Option<&str>,
) -> Result<String, MintError> {
    if secret.is_empty() {
        return Err(MintError::NoSecret);
    }
    let now = herald_core::unix_now();
    let mut claims = json!({ "sub": user, "iat": now });
    if let Some(ttl) = ttl {
        claims["exp"] = json!(now + ttl.as_secs());
    }
    if let Some(info) = info {
        claims["info"] = serde_json::from_str::<Value>(info).map_err(MintError::Info)?;
    }
    if let Some(channel) = channel {
        claims["channel"] = json!(channel);
    }
    Ok(encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// A random secret of `len` URL-safe characters.
pub fn random_secret(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}
