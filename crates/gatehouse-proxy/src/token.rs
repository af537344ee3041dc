//! Application tokens (Cloudflare Access's `CF_Authorization` JWT): RS256, `kid` in the
//! header, claims `aud` (array), `email`, `exp`, `iat`, `nbf`, `iss`, `type`,
//! `identity_nonce`, `sub`, `custom`.
//!
//! Verification is strict: RS256 only, the `kid` must be published, `iss` must equal the team
//! URL, `aud` must contain the expected audience, and `exp`/`nbf` hold with at most
//! [`LEEWAY_SECS`] of skew.

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::keys::KeyRing;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

/// The claims of an application or organisation token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Audience tags (the application's 64-hex `aud`).
    pub aud: Vec<String>,
    /// The user's e-mail.
    pub email: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// The team URL.
    pub iss: String,
    /// `app` (application token) or `org` (team-domain session).
    #[serde(rename = "type")]
    pub kind: String,
    /// Session identifier; also the get-identity cache key and the revocation handle.
    pub identity_nonce: String,
    /// The user's id.
    pub sub: String,
    /// Configured IdP claims.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub custom: Map<String, Value>,
    /// Country of the request, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// Why a token was refused. Messages are for logs; clients see only "not authorised".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No current signing key.
    #[error("no signing key available")]
    NoKey,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The token is not a well-formed JWT, or uses another algorithm.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The `kid` is not published (unknown, or past its grace period).
    #[error("unknown signing key")]
    UnknownKey,
    /// Signature, issuer, audience or time check failed.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Signs `claims` (an [`AccessClaims`], or another payload such as a service token's) with the
/// ring's current key.
pub fn sign<C: Serialize>(ring: &KeyRing, claims: &C) -> Result<String, TokenError> {
    let (kid, key) = ring.signer().ok_or(TokenError::NoKey)?;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).map_err(|e| TokenError::Sign(e.to_string()))
}

/// Verifies a token for `audience` issued by `issuer`.
pub fn verify(ring: &KeyRing, token: &str, issuer: &str, audience: &str) -> Result<AccessClaims, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
    if header.alg != Algorithm::RS256 {
        return Err(TokenError::Malformed(format!("algorithm {:?} is not accepted", header.alg)));
    }
    let kid = header.kid.ok_or_else(|| TokenError::Malformed("no kid".into()))?;
    let key = ring.verifier(&kid).ok_or(TokenError::UnknownKey)?;
    let mut v = Validation::new(Algorithm::RS256);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<AccessClaims>(token, key, &v)
        .map(|d| d.claims)
        .map_err(|e| TokenError::Invalid(e.to_string()))
}
