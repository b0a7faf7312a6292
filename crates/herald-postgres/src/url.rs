//! Checking `storage.url` and keeping its password out of messages and logs.

use crate::StoreError;
use sqlx::postgres::PgConnectOptions;
use std::str::FromStr;

/// Parses a `postgres://` or `postgresql://` URL into connect options.
/// Errors name `storage.url` and show the URL with its password masked.
pub fn check_url(url: &str) -> Result<PgConnectOptions, StoreError> {
    let masked = mask_password(url);
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    if !matches!(scheme, Some("postgres" | "postgresql")) {
        return Err(StoreError::Scheme { url: masked });
    }
    PgConnectOptions::from_str(url).map_err(|source| StoreError::InvalidUrl {
        url: masked,
        reason: source.to_string(),
    })
}

/// The URL with any password replaced by `***`, both in the user info
/// (`user:secret@host`) and in a `password=` query parameter.
pub fn mask_password(url: &str) -> String {
    let (prefix, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let (before_query, query) = match rest.find('?') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    // The last '@' ends the user info even when an unescaped '/' or '@' sits in
    // the password, so a sloppy URL over-masks rather than leaks.
    let authority = match before_query.rfind('@') {
        Some(at) => {
            let (userinfo, host) = before_query.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***{host}"),
                None => before_query.to_string(),
            }
        }
        None => before_query.to_string(),
    };
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.trim_start_matches('?') == "password" => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{prefix}{authority}{query}")
}
