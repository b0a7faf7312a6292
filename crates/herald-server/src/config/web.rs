//! `[transports]`, `[admin]` and `[demo]`: what Herald serves over HTTP besides
//! its API.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// The HTTP Basic password of `/admin`; empty switches the page off.
    pub password: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoSection {
    /// Serve the demo at `/`, with `/demo/session` minting tokens for any
    /// user and `/demo/backend/<method>` calling the server API without its
    /// key. For trying Herald out only: dev defaults turn it on.
    pub enabled: bool,
}

/// The fallbacks for clients that cannot open a WebSocket; WebSocket itself is
/// always on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportsSection {
    /// `POST /connection/http_stream`, with commands through `/emulation`.
    pub http_stream: bool,
    /// `GET /connection/sse`, with commands through `/emulation`.
    pub sse: bool,
}

impl Default for TransportsSection {
    fn default() -> Self {
        Self {
            http_stream: true,
            sse: true,
        }
    }
}

/// Shortest admin password accepted: the page can publish to any channel.
const MIN_ADMIN_PASSWORD: usize = 12;

impl AdminSection {
    pub(super) fn check(&self, errors: &mut Vec<String>) {
        let length = self.password.chars().count();
        if length > 0 && length < MIN_ADMIN_PASSWORD {
            errors.push(format!(
                "admin.password: use at least {MIN_ADMIN_PASSWORD} characters (got {length})"
            ));
        }
    }
}
