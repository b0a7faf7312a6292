//! Connection and subscription tokens (JWT).
//!
//! The key is chosen by the algorithm family in the token header, and each family
//! only ever verifies with its own key. That closes algorithm confusion: an HS256
//! token signed with an RSA public key as the secret finds no HMAC key to match.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The SDK answers 109 by fetching a fresh token.
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Claims of a connection token.
#[derive(Debug, Default, Deserialize)]
pub struct ConnectClaims {
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub exp: Option<u64>,
    #[serde(default)]
    pub iat: Option<u64>,
    #[serde(default)]
    pub info: Option<Box<RawValue>>,
    /// Server-side subscriptions made at connect.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Server-side subscriptions with options, keyed by channel.
    #[serde(default)]
    pub subs: HashMap<String, SubClaim>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SubClaim {
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
}

/// Claims of a subscription token.
#[derive(Debug, Default, Deserialize)]
pub struct SubscribeClaims {
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub exp: Option<u64>,
    #[serde(default)]
    pub info: Option<Box<RawValue>>,
}

/// The keys a server verifies tokens with; any may be absent.
#[derive(Default, Clone)]
pub struct VerifierKeys {
    pub hmac_secret: Option<String>,
    /// PEM of an RSA public key, for RS256/384/512 and PS256/384/512.
    pub rsa_public_pem: Option<Vec<u8>>,
    /// PEM of an EC public key, for ES256/384.
    pub ec_public_pem: Option<Vec<u8>>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
}

pub struct TokenVerifier {
    hmac: Option<DecodingKey>,
    rsa: Option<DecodingKey>,
    ec: Option<DecodingKey>,
    audience: Option<String>,
    issuer: Option<String>,
}

impl TokenVerifier {
    pub fn new(keys: &VerifierKeys) -> Result<Self, TokenError> {
        let pem_error = |what: &str, e: jsonwebtoken::errors::Error| {
            TokenError::Invalid(format!("{what} public key is not a valid PEM: {e}"))
        };
        Ok(Self {
            hmac: keys
                .hmac_secret
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            rsa: match &keys.rsa_public_pem {
                Some(pem) => Some(DecodingKey::from_rsa_pem(pem).map_err(|e| pem_error("RSA", e))?),
                None => None,
            },
            ec: match &keys.ec_public_pem {
                Some(pem) => Some(DecodingKey::from_ec_pem(pem).map_err(|e| pem_error("EC", e))?),
                None => None,
            },
            audience: keys.audience.clone().filter(|s| !s.is_empty()),
            issuer: keys.issuer.clone().filter(|s| !s.is_empty()),
        })
    }

    pub fn verify_connect(&self, token: &str) -> Result<ConnectClaims, TokenError> {
        self.verify(token)
    }

    pub fn verify_subscribe(&self, token: &str) -> Result<SubscribeClaims, TokenError> {
        self.verify(token)
    }

    fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError::Invalid(format!("malformed header: {e}")))?;
        let family: &[Algorithm] = match header.alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            Algorithm::ES256 | Algorithm::ES384 => &[Algorithm::ES256, Algorithm::ES384],
            other => {
                return Err(TokenError::Invalid(format!(
                    "algorithm {other:?} is not accepted"
                )));
            }
        };
        let key = match family[0] {
            Algorithm::HS256 => self.hmac.as_ref(),
            Algorithm::RS256 => self.rsa.as_ref(),
            _ => self.ec.as_ref(),
        }
        .ok_or_else(|| {
            TokenError::Invalid(format!(
                "no key is configured for algorithm {:?}",
                header.alg
            ))
        })?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = family.to_vec();
        validation.leeway = 0;
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        jsonwebtoken::decode::<T>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            })
    }
}

#[cfg(test)]
mod tests;
