//! Connection and subscription tokens, verified with a fixed key set (an
//! HMAC secret, an RSA and an EC public key). An even first byte takes the
//! rest as a token as is; an odd one takes it as claims JSON and signs it
//! with the HMAC secret, so the fuzzer reaches claim parsing past the
//! signature check. A token with a bad signature must never verify.
#![no_main]

use herald_core::{TokenVerifier, VerifierKeys};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const SECRET: &str = "herald-fuzz-secret";
const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crates/herald-tests/fixtures"
);

fn verifier() -> &'static TokenVerifier {
    static VERIFIER: OnceLock<TokenVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let read = |name: &str| std::fs::read(format!("{FIXTURES}/{name}")).expect("a key fixture");
        TokenVerifier::new(&VerifierKeys {
            hmac_secret: Some(SECRET.into()),
            rsa_public_pem: Some(read("rsa_public.pem")),
            ec_public_pem: Some(read("ec_public.pem")),
            audience: None,
            issuer: None,
        })
        .expect("the fixture keys load")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let verifier = verifier();
    if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        let _ = verifier.verify_connect(token);
        let _ = verifier.verify_subscribe(token);
        return;
    }
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let Ok(token) = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key) else {
        return;
    };
    let _ = verifier.verify_connect(&token);
    let _ = verifier.verify_subscribe(&token);
    // The same claims under another key must be refused.
    let forged_key = jsonwebtoken::EncodingKey::from_secret(b"not the secret");
    let forged = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &forged_key)
        .expect("the claims encoded once already");
    assert!(
        verifier.verify_connect(&forged).is_err(),
        "a forged token verified"
    );
});
