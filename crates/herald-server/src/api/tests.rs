use super::*;

#[test]
fn glob_patterns() {
    assert!(glob_match("", "anything"));
    assert!(glob_match("orders:*", "orders:1"));
    assert!(!glob_match("orders:*", "chat:1"));
    assert!(glob_match("*:1", "orders:1"));
    assert!(glob_match("a*c*e", "abcde"));
    assert!(!glob_match("a*c*e", "abcd"));
    assert!(glob_match("exact", "exact"));
    assert!(!glob_match("exact", "exact2"));
}

#[test]
fn api_key_from_either_header() {
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", "k1".parse().unwrap());
    assert!(authorized("k1", &headers));
    assert!(!authorized("k2", &headers));
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, "apikey k1".parse().unwrap());
    assert!(authorized("k1", &headers));
    assert!(!authorized("", &HeaderMap::new()));
}
