//! The errors the inbox and chat answer, each naming what was wrong.

use herald_protocol::{DetailedError, ErrorCode};

pub type AppResult<T> = Result<T, DetailedError>;

pub(crate) fn bad_request(detail: impl std::fmt::Display) -> DetailedError {
    DetailedError::new(ErrorCode::BAD_REQUEST, detail)
}

pub(crate) fn denied(detail: impl std::fmt::Display) -> DetailedError {
    DetailedError::new(ErrorCode::PERMISSION_DENIED, detail)
}

pub(crate) fn unknown_conversation(id: &str) -> DetailedError {
    DetailedError {
        code: ErrorCode::UNKNOWN_CHANNEL.code,
        message: format!("unknown conversation: {id}"),
        temporary: false,
    }
}

pub(crate) fn switched_off(feature: &str) -> DetailedError {
    DetailedError::new(
        ErrorCode::NOT_AVAILABLE,
        format!("{feature} is switched off"),
    )
}

/// A database failure: logged and counted here, answered as a temporary 100
/// so clients retry.
pub(crate) fn database(operation: &'static str) -> impl FnOnce(sqlx::Error) -> DetailedError {
    move |error| {
        tracing::warn!(operation, %error, "app database error");
        ::metrics::counter!(crate::metrics::DATABASE_ERRORS, "operation" => operation).increment(1);
        DetailedError::from(ErrorCode::INTERNAL)
    }
}

/// Parses a request body, answering 107 with serde's reason.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(raw: &str) -> AppResult<T> {
    let raw = if raw.trim() == "null" { "{}" } else { raw };
    serde_json::from_str(raw).map_err(bad_request)
}
