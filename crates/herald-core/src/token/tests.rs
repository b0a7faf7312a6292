use super::*;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

fn verifier() -> TokenVerifier {
    TokenVerifier::new(&VerifierKeys {
        hmac_secret: Some("secret".into()),
        ..Default::default()
    })
    .unwrap()
}

fn sign(alg: Algorithm, claims: serde_json::Value, secret: &str) -> String {
    encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[test]
fn accepts_every_hmac_size_and_reads_claims() {
    let exp = crate::unix_now() + 60;
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let token = sign(
            alg,
            json!({"sub":"42","exp":exp,"info":{"n":1},"channels":["a"]}),
            "secret",
        );
        let claims = verifier().verify_connect(&token).unwrap();
        assert_eq!(claims.sub, "42");
        assert_eq!(claims.exp, Some(exp));
        assert_eq!(claims.info.unwrap().get(), r#"{"n":1}"#);
        assert_eq!(claims.channels, ["a"]);
    }
}

#[test]
fn an_expired_token_is_expired_not_invalid() {
    let token = sign(
        Algorithm::HS256,
        json!({"sub":"1","exp":crate::unix_now() - 5}),
        "secret",
    );
    assert_eq!(
        verifier().verify_connect(&token).unwrap_err(),
        TokenError::Expired
    );
}

#[test]
fn a_wrong_signature_is_invalid() {
    let token = sign(Algorithm::HS256, json!({"sub":"1"}), "other");
    assert!(matches!(
        verifier().verify_connect(&token),
        Err(TokenError::Invalid(_))
    ));
}

#[test]
fn alg_none_is_rejected() {
    let token = format!(
        "{}.{}.",
        encode_segment(br#"{"alg":"none","typ":"JWT"}"#),
        encode_segment(br#"{"sub":"1"}"#)
    );
    assert!(matches!(
        verifier().verify_connect(&token),
        Err(TokenError::Invalid(_))
    ));
}

#[test]
fn an_rsa_token_finds_no_key_when_only_hmac_is_configured() {
    // The header says RS256: the HMAC secret must never be tried for it.
    let token = format!(
        "{}.{}.c2ln",
        encode_segment(br#"{"alg":"RS256","typ":"JWT"}"#),
        encode_segment(br#"{"sub":"1"}"#)
    );
    let err = verifier().verify_connect(&token).unwrap_err();
    assert!(err.to_string().contains("no key"), "{err}");
}

#[test]
fn audience_and_issuer_are_checked_when_configured() {
    let verifier = TokenVerifier::new(&VerifierKeys {
        hmac_secret: Some("secret".into()),
        audience: Some("herald".into()),
        issuer: Some("shop".into()),
        ..Default::default()
    })
    .unwrap();
    let good = sign(
        Algorithm::HS256,
        json!({"sub":"1","aud":"herald","iss":"shop"}),
        "secret",
    );
    assert!(verifier.verify_connect(&good).is_ok());
    let wrong_aud = sign(
        Algorithm::HS256,
        json!({"sub":"1","aud":"x","iss":"shop"}),
        "secret",
    );
    assert!(verifier.verify_connect(&wrong_aud).is_err());
    let missing_iss = sign(
        Algorithm::HS256,
        json!({"sub":"1","aud":"herald"}),
        "secret",
    );
    assert!(verifier.verify_connect(&missing_iss).is_err());
}

fn encode_segment(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(input)
}
