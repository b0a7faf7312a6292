//! Who may call the demo's stand-in backend: the demo page itself.
//!
//! The demo mints tokens for any user and calls the server API without its
//! key, so a request is refused unless it is one the demo page makes:
//! - `Content-Type: application/json`. A cross-site page can send a "simple"
//!   request (`text/plain`, a form) without asking first; JSON needs a CORS
//!   preflight, which Herald never grants.
//! - No foreign origin: an `Origin` header, when a browser sends one, names
//!   this very host, and `Sec-Fetch-Site`, when sent, says `same-origin`.
//! - On a loopback listener, a loopback `Host`. A page on an attacker's name
//!   that resolves to 127.0.0.1 (DNS rebinding) is same-origin to itself, and
//!   only the Host header gives it away.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::net::IpAddr;

/// Refused demo requests, by reason: `content_type`, `origin` or `host`.
pub const REFUSED: &str = "herald_demo_refused_total";

/// The answer for a request the demo page would not make, or `None`.
pub fn refuse_foreign(headers: &HeaderMap, loopback_listener: bool) -> Option<Response> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST).unwrap_or_default();
    let (status, reason, why) = if !is_json(text(header::CONTENT_TYPE)) {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type",
            "send Content-Type: application/json".to_string(),
        )
    } else if !same_origin(text(header::ORIGIN), host)
        || text(header::HeaderName::from_static("sec-fetch-site"))
            .is_some_and(|site| site != "same-origin" && site != "none")
    {
        (
            StatusCode::FORBIDDEN,
            "origin",
            "the demo backend answers only the demo page's own origin".to_string(),
        )
    } else if loopback_listener && !is_loopback_host(host) {
        (
            StatusCode::FORBIDDEN,
            "host",
            format!("the demo listens on loopback; Host `{host}` is not a loopback name"),
        )
    } else {
        return None;
    };
    tracing::warn!(reason, host, origin = ?text(header::ORIGIN), "demo request refused: {why}");
    metrics::counter!(REFUSED, "reason" => reason).increment(1);
    Some((status, axum::Json(json!({"error": why}))).into_response())
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// No Origin (curl, a backend) or one naming this host.
fn same_origin(origin: Option<&str>, host: &str) -> bool {
    let Some(origin) = origin else { return true };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    !host.is_empty() && authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

/// `localhost`, a name under `.localhost`, 127.0.0.0/8 or `[::1]`, with or
/// without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn status(pairs: &[(&'static str, &'static str)], loopback: bool) -> Option<StatusCode> {
        refuse_foreign(&headers(pairs), loopback).map(|r| r.status())
    }

    #[test]
    fn the_demo_page_and_a_local_script_are_let_through() {
        let page = [
            ("host", "127.0.0.1:8000"),
            ("content-type", "application/json"),
            ("origin", "http://127.0.0.1:8000"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert_eq!(status(&page, true), None);
        let curl = [
            ("host", "localhost:8000"),
            ("content-type", "application/json; charset=utf-8"),
        ];
        assert_eq!(status(&curl, true), None);
        let ipv6 = [("host", "[::1]:8000"), ("content-type", "application/json")];
        assert_eq!(status(&ipv6, true), None);
    }

    #[test]
    fn a_cross_site_simple_request_is_refused() {
        let form = [
            ("host", "127.0.0.1:8000"),
            ("content-type", "text/plain"),
            ("origin", "https://evil.example"),
        ];
        assert_eq!(
            status(&form, true),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        let no_type = [("host", "127.0.0.1:8000")];
        assert_eq!(
            status(&no_type, true),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
    }

    #[test]
    fn a_foreign_origin_is_refused_even_with_json() {
        let foreign = [
            ("host", "127.0.0.1:8000"),
            ("content-type", "application/json"),
            ("origin", "https://evil.example"),
        ];
        assert_eq!(status(&foreign, true), Some(StatusCode::FORBIDDEN));
        let other_port = [
            ("host", "127.0.0.1:8000"),
            ("content-type", "application/json"),
            ("origin", "http://127.0.0.1:3000"),
        ];
        assert_eq!(status(&other_port, true), Some(StatusCode::FORBIDDEN));
        let cross_site = [
            ("host", "127.0.0.1:8000"),
            ("content-type", "application/json"),
            ("sec-fetch-site", "cross-site"),
        ];
        assert_eq!(status(&cross_site, true), Some(StatusCode::FORBIDDEN));
    }

    #[test]
    fn a_rebound_name_is_refused_on_a_loopback_listener_only() {
        let rebound = [
            ("host", "attacker.example:8000"),
            ("content-type", "application/json"),
            ("origin", "http://attacker.example:8000"),
        ];
        assert_eq!(status(&rebound, true), Some(StatusCode::FORBIDDEN));
        assert_eq!(status(&rebound, false), None);
    }

    #[test]
    fn loopback_names() {
        for host in [
            "localhost",
            "LOCALHOST:1",
            "app.localhost:8000",
            "127.0.0.2:80",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "example.com",
            "10.0.0.1:8000",
            "[2001:db8::1]:80",
            "localhost.evil",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
