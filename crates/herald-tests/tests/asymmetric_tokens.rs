//! RS256 and ES256 connection tokens, and algorithm confusion.

use herald_tests::{Client, TestServer, now, test_config};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

async fn server() -> TestServer {
    let mut config = test_config();
    config.auth.rsa_public_key = Some(fixture("rsa_public.pem"));
    config.auth.ecdsa_public_key = Some(fixture("ec_public.pem"));
    TestServer::start(config).await
}

async fn connect_code(server: &TestServer, token: String) -> Result<String, u16> {
    let mut client = Client::open(&server.ws_url()).await;
    client.send(json!({"connect": {"token": token}})).await;
    match client.read(herald_tests::WAIT).await {
        herald_tests::Event::Json(replies) => Ok(replies[0]["connect"]["client"]
            .as_str()
            .unwrap_or("")
            .to_string()),
        herald_tests::Event::Close(code, _) => Err(code),
        herald_tests::Event::Ended => Err(0),
    }
}

#[tokio::test]
async fn rs256_and_es256_tokens_connect() {
    let server = server().await;
    let claims = json!({"sub": "rsa-user", "exp": now() + 60});
    let rsa =
        EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa_private.pem")).unwrap()).unwrap();
    let token = encode(&Header::new(Algorithm::RS256), &claims, &rsa).unwrap();
    assert!(!connect_code(&server, token).await.unwrap().is_empty());
    let ec = EncodingKey::from_ec_pem(&std::fs::read(fixture("ec_private.pem")).unwrap()).unwrap();
    let token = encode(&Header::new(Algorithm::ES256), &claims, &ec).unwrap();
    assert!(!connect_code(&server, token).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_rsa_public_key_is_refused() {
    let server = server().await;
    let public_pem = std::fs::read(fixture("rsa_public.pem")).unwrap();
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "attacker"}),
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    assert_eq!(connect_code(&server, forged).await, Err(3500));
}

#[tokio::test]
async fn an_rs256_token_is_refused_when_no_rsa_key_is_configured() {
    let server = TestServer::default().await;
    let rsa =
        EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa_private.pem")).unwrap()).unwrap();
    let token = encode(&Header::new(Algorithm::RS256), &json!({"sub": "x"}), &rsa).unwrap();
    assert_eq!(connect_code(&server, token).await, Err(3500));
}
