//! The code tables of the client protocol.
//!
//! Error codes (100–112) answer a single command and leave the connection open.
//! Unsubscribe codes (2000–2999) end one subscription: below 2500 the client stays
//! unsubscribed, from 2500 it resubscribes. Disconnect codes (3000–3999) end the
//! connection and travel in the WebSocket Close frame: below 3500 the client
//! reconnects, from 3500 it does not.

use serde::Serialize;

/// An error answered to one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ErrorCode {
    pub code: u32,
    pub message: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

/// An error whose message names what was wrong (a field, an id), for methods
/// whose callers need more than the code's fixed text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DetailedError {
    pub code: u32,
    pub message: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

impl DetailedError {
    /// `code`'s text followed by the detail: "bad request: cursor: ...".
    pub fn new(code: ErrorCode, detail: impl std::fmt::Display) -> Self {
        Self {
            code: code.code,
            message: format!("{}: {detail}", code.message),
            temporary: code.temporary,
        }
    }
}

impl From<ErrorCode> for DetailedError {
    fn from(code: ErrorCode) -> Self {
        Self {
            code: code.code,
            message: code.message.to_string(),
            temporary: code.temporary,
        }
    }
}

impl std::fmt::Display for DetailedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

const fn error(code: u32, message: &'static str, temporary: bool) -> ErrorCode {
    ErrorCode {
        code,
        message,
        temporary,
    }
}

impl ErrorCode {
    pub const INTERNAL: Self = error(100, "internal server error", true);
    pub const UNAUTHORIZED: Self = error(101, "unauthorized", false);
    pub const UNKNOWN_CHANNEL: Self = error(102, "unknown channel", false);
    pub const PERMISSION_DENIED: Self = error(103, "permission denied", false);
    pub const METHOD_NOT_FOUND: Self = error(104, "method not found", false);
    pub const ALREADY_SUBSCRIBED: Self = error(105, "already subscribed", false);
    pub const LIMIT_EXCEEDED: Self = error(106, "limit exceeded", false);
    pub const BAD_REQUEST: Self = error(107, "bad request", false);
    pub const NOT_AVAILABLE: Self = error(108, "not available", false);
    pub const TOKEN_EXPIRED: Self = error(109, "token expired", false);
    pub const EXPIRED: Self = error(110, "expired", false);
    pub const TOO_MANY_REQUESTS: Self = error(111, "too many requests", true);
    pub const UNRECOVERABLE_POSITION: Self = error(112, "unrecoverable position", false);

    pub const ALL: [Self; 13] = [
        Self::INTERNAL,
        Self::UNAUTHORIZED,
        Self::UNKNOWN_CHANNEL,
        Self::PERMISSION_DENIED,
        Self::METHOD_NOT_FOUND,
        Self::ALREADY_SUBSCRIBED,
        Self::LIMIT_EXCEEDED,
        Self::BAD_REQUEST,
        Self::NOT_AVAILABLE,
        Self::TOKEN_EXPIRED,
        Self::EXPIRED,
        Self::TOO_MANY_REQUESTS,
        Self::UNRECOVERABLE_POSITION,
    ];
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

/// Why one subscription ended; sent in an `unsubscribe` push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Unsubscribe {
    pub code: u32,
    pub reason: &'static str,
}

impl Unsubscribe {
    pub const SERVER: Self = Self {
        code: 2000,
        reason: "server unsubscribe",
    };
    pub const INSUFFICIENT_STATE: Self = Self {
        code: 2500,
        reason: "insufficient state",
    };
    pub const EXPIRED: Self = Self {
        code: 2501,
        reason: "subscription expired",
    };
    pub const STATE_INVALIDATED: Self = Self {
        code: 2502,
        reason: "state invalidated",
    };

    /// From 2500 on the client resubscribes by itself.
    pub fn resubscribes(&self) -> bool {
        self.code >= 2500
    }
}

/// Why the connection ended; sent as the WebSocket Close code and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disconnect {
    pub code: u16,
    pub reason: std::borrow::Cow<'static, str>,
}

const fn disconnect(code: u16, reason: &'static str) -> Disconnect {
    Disconnect {
        code,
        reason: std::borrow::Cow::Borrowed(reason),
    }
}

impl Disconnect {
    pub const CONNECTION_CLOSED: Self = disconnect(3000, "connection closed");
    pub const SHUTDOWN: Self = disconnect(3001, "shutdown");
    pub const INTERNAL: Self = disconnect(3004, "internal server error");
    pub const EXPIRED: Self = disconnect(3005, "connection expired");
    pub const SUBSCRIPTION_EXPIRED: Self = disconnect(3006, "subscription expired");
    pub const SLOW: Self = disconnect(3008, "slow");
    pub const WRITE_ERROR: Self = disconnect(3009, "write error");
    pub const INSUFFICIENT_STATE: Self = disconnect(3010, "insufficient state");
    pub const FORCE_RECONNECT: Self = disconnect(3011, "force reconnect");
    pub const NO_PONG: Self = disconnect(3012, "no pong");
    pub const TOO_MANY_REQUESTS: Self = disconnect(3013, "too many requests");
    pub const INVALID_TOKEN: Self = disconnect(3500, "invalid token");
    pub const BAD_REQUEST: Self = disconnect(3501, "bad request");
    pub const STALE: Self = disconnect(3502, "stale");
    pub const FORCE_DISCONNECT: Self = disconnect(3503, "force disconnect");
    pub const CONNECTION_LIMIT: Self = disconnect(3504, "connection limit");
    pub const CHANNEL_LIMIT: Self = disconnect(3505, "channel limit");
    pub const INAPPROPRIATE_PROTOCOL: Self = disconnect(3506, "inappropriate protocol");
    pub const PERMISSION_DENIED: Self = disconnect(3507, "permission denied");
    pub const NOT_AVAILABLE: Self = disconnect(3508, "not available");
    pub const TOO_MANY_ERRORS: Self = disconnect(3509, "too many errors");
    /// Not a protocol code: the standard WebSocket "message too big".
    pub const MESSAGE_TOO_BIG: Self = disconnect(1009, "message too big");

    /// A custom disconnect, as the server API allows.
    pub fn custom(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: std::borrow::Cow::Owned(reason.into()),
        }
    }

    /// Whether a client is expected to reconnect after this code.
    pub fn reconnects(&self) -> bool {
        !((3500..4000).contains(&self.code) || (4500..5000).contains(&self.code))
    }
}

impl std::fmt::Display for Disconnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}
