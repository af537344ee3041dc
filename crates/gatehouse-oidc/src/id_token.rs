//! ID token validation: signature, algorithm, issuer, tenant, audience, lifetime and nonce.
//!
//! The signature is checked first, against the IdP's published keys ([`crate::jwks`]), with
//! an algorithm allow-list: RS256 for Entra; RS256, RS512, PS512, ES256, ES384 and ES512 for
//! generic OIDC — never `none` or the HMAC family. Then, in this order: `tid` equals the
//! configured directory (Entra), `iss` equals the tenant's issuer (Entra) or is a stable
//! https/loopback URL (generic), `aud` contains the client id (and `azp`, when present or
//! when there are several audiences, is the client id), `exp`/`nbf`/`iat` hold on the
//! injected clock within the allowed skew, and `nonce` equals the one sent (compared in
//! constant time). Entra keys that carry an `issuer` may only verify tokens of that issuer.
//!
//! This module decides whether a token is genuine and meant for us; it must not interpret
//! the user's claims (that is [`crate::identity`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use url::Url;
use uuid::Uuid;

use crate::clock::Clock;
use crate::endpoints::{IssuerPolicy, is_stable_issuer};
use crate::jwks::{JwksCache, KeyError, PublishedKey, SigAlg};

/// Largest ID token accepted.
const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Algorithms accepted from Entra ID.
pub(crate) const ENTRA_ALGORITHMS: &[SigAlg] = &[SigAlg::Rs256];
/// Algorithms accepted from a generic OIDC provider (Cloudflare's list).
pub(crate) const OIDC_ALGORITHMS: &[SigAlg] =
    &[SigAlg::Rs256, SigAlg::Rs512, SigAlg::Ps512, SigAlg::Es256, SigAlg::Es384, SigAlg::Es512];

/// Why an ID token was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    /// Not a well-formed signed JWT.
    #[error("the ID token is malformed: {0}")]
    Malformed(String),
    /// Signed with an algorithm that is not allowed (or not signed at all).
    #[error("the ID token is signed with {alg:?}, which is not allowed (allowed: {})", .allowed.join(", "))]
    AlgorithmNotAllowed {
        /// The token's `alg`.
        alg: String,
        /// What this IdP type allows.
        allowed: Vec<String>,
    },
    /// The signing keys could not be fetched.
    #[error("the signing keys could not be fetched: {0}")]
    Keys(crate::http::FetchError),
    /// No published key has the token's `kid`.
    #[error("no published signing key has the id {kid:?}{}", if *.refetch_rate_limited { " (the keys were refreshed too recently to try again)" } else { "" })]
    UnknownKey {
        /// The token's `kid`.
        kid: Option<String>,
        /// The JWKS URL.
        jwks_url: String,
        /// Whether a refetch was skipped because of the rate limit.
        refetch_rate_limited: bool,
    },
    /// A key with the right id exists but the signature does not verify.
    #[error("the ID token's signature is invalid")]
    BadSignature {
        /// The token's `kid`.
        kid: Option<String>,
    },
    /// The key that matches is published for another issuer.
    #[error("the signing key is published for issuer {key_issuer:?}, not {token_issuer:?}")]
    KeyIssuerMismatch {
        /// The key's `issuer`.
        key_issuer: String,
        /// The token's `iss`.
        token_issuer: String,
    },
    /// `tid` is not the configured directory.
    #[error("the token is from tenant {actual:?}, but the identity provider is configured for {expected}")]
    TenantMismatch {
        /// The configured `directory_id`.
        expected: Uuid,
        /// The token's `tid`.
        actual: String,
    },
    /// `iss` is not the expected issuer.
    #[error("the token's issuer is {actual:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The expected issuer.
        expected: String,
        /// The token's `iss`.
        actual: String,
    },
    /// Generic OIDC: `iss` is not a stable https (or loopback) URL.
    #[error("the token's issuer {issuer:?} is not an https URL")]
    UnstableIssuer {
        /// The token's `iss`.
        issuer: String,
    },
    /// `aud` does not contain the client id.
    #[error("the token is for {actual:?}, not for client {expected}")]
    AudienceMismatch {
        /// The configured client id.
        expected: String,
        /// The token's audiences.
        actual: Vec<String>,
    },
    /// `azp` is present (or required) and is not the client id.
    #[error("the token's authorized party is {actual:?}, not client {expected}")]
    AuthorizedPartyMismatch {
        /// The configured client id.
        expected: String,
        /// The token's `azp`.
        actual: Option<String>,
    },
    /// `exp` is past, beyond the allowed skew.
    #[error("the token expired at {expires_at} (now {now}, {} s ago)", .now - .expires_at)]
    Expired {
        /// `exp`, Unix seconds.
        expires_at: i64,
        /// The relying party's time.
        now: i64,
        /// The skew allowed, seconds.
        skew: i64,
    },
    /// `nbf` or `iat` is in the future, beyond the allowed skew.
    #[error("the token is valid only from {valid_from} (now {now}, {} s early)", .valid_from - .now)]
    NotYetValid {
        /// `nbf` or `iat`, Unix seconds.
        valid_from: i64,
        /// The relying party's time.
        now: i64,
        /// The skew allowed, seconds.
        skew: i64,
    },
    /// The token has no `nonce`.
    #[error("the token has no nonce")]
    NonceMissing,
    /// The token's `nonce` is not the one sent with this sign-in.
    #[error("the token's nonce does not match this sign-in")]
    NonceMismatch,
    /// A required claim is missing or has the wrong type.
    #[error("the token has no valid {0:?} claim")]
    MissingClaim(String),
}

/// What a token must satisfy.
#[derive(Debug)]
pub(crate) struct Expect<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) issuer: &'a IssuerPolicy,
    pub(crate) tenant_id: Option<Uuid>,
    pub(crate) nonce: &'a str,
    pub(crate) algorithms: &'a [SigAlg],
    pub(crate) skew_secs: i64,
    /// Whether per-key `issuer` scoping applies (Entra).
    pub(crate) key_issuer_scoping: bool,
}

/// A validated ID token.
#[derive(Debug, Clone)]
pub(crate) struct ValidIdToken {
    pub(crate) claims: Map<String, Value>,
    pub(crate) issuer: String,
    pub(crate) subject: String,
}

/// The parts of a compact JWS, decoded but not verified.
#[derive(Debug)]
pub(crate) struct Parts<'a> {
    pub(crate) alg: String,
    pub(crate) kid: Option<String>,
    pub(crate) claims: Map<String, Value>,
    /// `header.payload`, the signed bytes.
    pub(crate) message: &'a str,
    pub(crate) signature: &'a str,
}

/// Splits and decodes a compact JWS without verifying it. Never panics on any input.
pub(crate) fn split(jwt: &str) -> Result<Parts<'_>, IdTokenError> {
    let malformed = |m: &str| IdTokenError::Malformed(m.to_owned());
    if jwt.len() > MAX_TOKEN_LEN {
        return Err(malformed("longer than 64 KiB"));
    }
    let pieces: Vec<&str> = jwt.split('.').collect();
    match pieces.len() {
        3 => {}
        5 => return Err(malformed("an encrypted token (JWE); configure the IdP to sign ID tokens, not encrypt them")),
        _ => return Err(malformed("not three dot-separated parts")),
    }
    let decode = |part: &str, what: &str| -> Result<Map<String, Value>, IdTokenError> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed(&format!("the {what} is not base64url")))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(malformed(&format!("the {what} is not a JSON object"))),
        }
    };
    let header = decode(pieces[0], "header")?;
    let claims = decode(pieces[1], "payload")?;
    let alg = header.get("alg").and_then(Value::as_str).ok_or_else(|| malformed("the header has no alg"))?;
    if header.contains_key("crit") {
        return Err(malformed("the header has critical extensions this relying party does not understand"));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.chars().take(512).collect()),
        Some(_) => return Err(malformed("the header's kid is not a string")),
    };
    let message_len = pieces[0].len() + 1 + pieces[1].len();
    Ok(Parts { alg: alg.chars().take(32).collect(), kid, claims, message: &jwt[..message_len], signature: pieces[2] })
}

fn verify_with(key: &PublishedKey, alg: SigAlg, parts: &Parts<'_>) -> bool {
    match alg.jwt() {
        Some(jwt_alg) => {
            jsonwebtoken::crypto::verify(parts.signature, parts.message.as_bytes(), &key.key, jwt_alg).unwrap_or(false)
        }
        None => {
            // ES512: jsonwebtoken has no P-521; verify the fixed-size r||s signature directly.
            let Ok(point) = key.key.try_get_as_bytes() else { return false };
            let Ok(sig) = URL_SAFE_NO_PAD.decode(parts.signature) else { return false };
            aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P521_SHA512_FIXED, point)
                .verify(parts.message.as_bytes(), &sig)
                .is_ok()
        }
    }
}

fn numeric(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, IdTokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
            .map(Some)
            .ok_or_else(|| IdTokenError::MissingClaim(name.to_owned())),
    }
}

fn string<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, IdTokenError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| IdTokenError::MissingClaim(name.to_owned()))
}

/// Checks every claim rule against `now` (signature already verified).
pub(crate) fn check_claims(claims: &Map<String, Value>, expect: &Expect<'_>, now: i64) -> Result<(), IdTokenError> {
    if let Some(expected) = expect.tenant_id {
        let tid = string(claims, "tid")?;
        if Uuid::parse_str(tid).ok() != Some(expected) {
            return Err(IdTokenError::TenantMismatch { expected, actual: tid.chars().take(100).collect() });
        }
    }
    let iss = string(claims, "iss")?;
    match expect.issuer {
        IssuerPolicy::Exact(expected) if iss != expected => {
            return Err(IdTokenError::IssuerMismatch {
                expected: expected.clone(),
                actual: iss.chars().take(500).collect(),
            });
        }
        IssuerPolicy::AnyStable if !is_stable_issuer(iss) => {
            return Err(IdTokenError::UnstableIssuer { issuer: iss.chars().take(500).collect() });
        }
        _ => {}
    }
    let audiences: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).take(32).map(str::to_owned).collect(),
        _ => return Err(IdTokenError::MissingClaim("aud".into())),
    };
    if !audiences.iter().any(|a| a == expect.client_id) {
        return Err(IdTokenError::AudienceMismatch { expected: expect.client_id.to_owned(), actual: audiences });
    }
    let azp = claims.get("azp").and_then(Value::as_str);
    if (audiences.len() > 1 || azp.is_some()) && azp != Some(expect.client_id) {
        return Err(IdTokenError::AuthorizedPartyMismatch {
            expected: expect.client_id.to_owned(),
            actual: azp.map(str::to_owned),
        });
    }
    let skew = expect.skew_secs;
    let exp = numeric(claims, "exp")?.ok_or_else(|| IdTokenError::MissingClaim("exp".into()))?;
    let iat = numeric(claims, "iat")?.ok_or_else(|| IdTokenError::MissingClaim("iat".into()))?;
    let nbf = numeric(claims, "nbf")?;
    let valid_from = nbf.map_or(iat, |n| n.max(iat));
    if valid_from > now.saturating_add(skew) {
        return Err(IdTokenError::NotYetValid { valid_from, now, skew });
    }
    if now > exp.saturating_add(skew) {
        return Err(IdTokenError::Expired { expires_at: exp, now, skew });
    }
    let nonce = match claims.get("nonce") {
        Some(Value::String(n)) => n,
        _ => return Err(IdTokenError::NonceMissing),
    };
    if !bool::from(nonce.as_bytes().ct_eq(expect.nonce.as_bytes())) {
        return Err(IdTokenError::NonceMismatch);
    }
    string(claims, "sub")?;
    Ok(())
}

/// Validates an ID token completely.
#[tracing::instrument(skip_all)]
pub(crate) async fn validate(
    jwt: &str,
    expect: &Expect<'_>,
    jwks: &JwksCache,
    client: &reqwest::Client,
    clock: &dyn Clock,
    jwks_url: &Url,
) -> Result<ValidIdToken, IdTokenError> {
    let parts = split(jwt)?;
    let alg = SigAlg::parse(&parts.alg).filter(|a| expect.algorithms.contains(a)).ok_or_else(|| {
        IdTokenError::AlgorithmNotAllowed {
            alg: parts.alg.clone(),
            allowed: expect.algorithms.iter().map(|a| a.name().to_owned()).collect(),
        }
    })?;
    let candidates = jwks.candidates(client, clock, jwks_url, parts.kid.as_deref()).await.map_err(|e| match e {
        KeyError::Fetch(f) => IdTokenError::Keys(f),
        KeyError::UnknownKid { kid, url, refetch_rate_limited } => {
            IdTokenError::UnknownKey { kid, jwks_url: url, refetch_rate_limited }
        }
    })?;
    let token_iss = parts.claims.get("iss").and_then(Value::as_str).unwrap_or_default();
    let token_tid = parts.claims.get("tid").and_then(Value::as_str).unwrap_or_default();
    let mut issuer_refusal = None;
    let mut verified = false;
    for key in candidates.iter().filter(|k| k.kind.fits(alg)) {
        if key.alg.as_deref().is_some_and(|a| a != alg.name()) {
            continue;
        }
        if expect.key_issuer_scoping
            && let Some(key_issuer) = &key.issuer
            && key_issuer.replace("{tenantid}", token_tid) != token_iss
        {
            issuer_refusal = Some(IdTokenError::KeyIssuerMismatch {
                key_issuer: key_issuer.clone(),
                token_issuer: token_iss.chars().take(500).collect(),
            });
            continue;
        }
        if verify_with(key, alg, &parts) {
            verified = true;
            break;
        }
    }
    if !verified {
        return Err(issuer_refusal.unwrap_or(IdTokenError::BadSignature { kid: parts.kid.clone() }));
    }
    check_claims(&parts.claims, expect, clock.unix())?;
    let issuer = token_iss.to_owned();
    let subject = string(&parts.claims, "sub")?.to_owned();
    Ok(ValidIdToken { claims: parts.claims, issuer, subject })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    const TID: &str = "3f5c2a4e-9b1d-4c7e-8a2f-6d0e1b9c7a51";

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn base() -> Value {
        json!({"iss": format!("https://login.microsoftonline.com/{TID}/v2.0"), "tid": TID, "aud": "client",
               "sub": "s", "iat": 1000, "nbf": 1000, "exp": 4600, "nonce": "n0nce"})
    }

    fn check(c: Value, now: i64) -> Result<(), IdTokenError> {
        let issuer = IssuerPolicy::Exact(format!("https://login.microsoftonline.com/{TID}/v2.0"));
        let expect = Expect {
            client_id: "client",
            issuer: &issuer,
            tenant_id: Uuid::parse_str(TID).ok(),
            nonce: "n0nce",
            algorithms: ENTRA_ALGORITHMS,
            skew_secs: 300,
            key_issuer_scoping: true,
        };
        check_claims(&claims(c), &expect, now)
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = base();
        v[key] = value;
        v
    }

    #[test]
    fn claim_rules() {
        assert_eq!(check(base(), 2000), Ok(()));
        assert!(matches!(
            check(with("tid", json!("00000000-0000-0000-0000-000000000001")), 2000),
            Err(IdTokenError::TenantMismatch { .. })
        ));
        assert!(matches!(
            check(with("iss", json!("https://evil/v2.0")), 2000),
            Err(IdTokenError::IssuerMismatch { .. })
        ));
        assert!(matches!(check(with("aud", json!("other")), 2000), Err(IdTokenError::AudienceMismatch { .. })));
        assert!(matches!(
            check(with("aud", json!(["client", "other"])), 2000),
            Err(IdTokenError::AuthorizedPartyMismatch { .. })
        ));
        let mut multi = with("aud", json!(["client", "other"]));
        multi["azp"] = json!("client");
        assert_eq!(check(multi, 2000), Ok(()));
        assert_eq!(check(with("nonce", json!("other")), 2000), Err(IdTokenError::NonceMismatch));
        let mut no_nonce = base();
        no_nonce.as_object_mut().unwrap().remove("nonce");
        assert_eq!(check(no_nonce, 2000), Err(IdTokenError::NonceMissing));
        assert_eq!(check(with("exp", json!("soon")), 2000), Err(IdTokenError::MissingClaim("exp".into())));
    }

    #[test]
    fn lifetime_with_skew() {
        assert_eq!(check(base(), 1000 - 300), Ok(()), "early within the skew");
        assert!(matches!(check(base(), 1000 - 301), Err(IdTokenError::NotYetValid { valid_from: 1000, .. })));
        assert_eq!(check(base(), 4600 + 300), Ok(()), "late within the skew");
        assert!(matches!(check(base(), 4600 + 301), Err(IdTokenError::Expired { expires_at: 4600, .. })));
        assert!(matches!(
            check(with("iat", json!(9000)), 2000),
            Err(IdTokenError::NotYetValid { valid_from: 9000, .. })
        ));
    }

    #[test]
    fn split_rejects_garbage() {
        assert!(split("a.b").is_err());
        assert!(split("a.b.c.d.e").is_err());
        assert!(split("!!.??.x").is_err());
        let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let body = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        let unsigned = format!("{head}.{body}.");
        let parts = split(&unsigned).unwrap();
        assert_eq!(parts.alg, "none");
        assert_eq!(SigAlg::parse(&parts.alg), None);
        let crit = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","crit":["x"]}"#);
        assert!(split(&format!("{crit}.{body}.sig")).is_err());
    }

    fn ec_token(
        signing: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm,
        crv: &str,
        alg: &str,
    ) -> (PublishedKey, String) {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair};
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let half = (point.len() - 1) / 2;
        let jwk = json!({"kty": "EC", "crv": crv, "kid": "k1",
                         "x": URL_SAFE_NO_PAD.encode(&point[1..=half]), "y": URL_SAFE_NO_PAD.encode(&point[1 + half..])});
        let key = crate::jwks::parse_jwks(json!({"keys": [jwk]}).to_string().as_bytes()).unwrap().remove(0);
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "k1", "typ": "JWT"}).to_string());
        let payload = URL_SAFE_NO_PAD.encode(base().to_string());
        let message = format!("{header}.{payload}");
        let sig = pair.sign(&rng, message.as_bytes()).unwrap();
        (key, format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }

    #[test]
    fn ec_signatures_verify_including_es512() {
        for (signing, crv, alg, sig_alg) in [
            (&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", "ES256", SigAlg::Es256),
            (&aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", "ES384", SigAlg::Es384),
            (&aws_lc_rs::signature::ECDSA_P521_SHA512_FIXED_SIGNING, "P-521", "ES512", SigAlg::Es512),
        ] {
            let (key, jwt) = ec_token(signing, crv, alg);
            assert!(key.kind.fits(sig_alg), "{alg}");
            let parts = split(&jwt).unwrap();
            assert!(verify_with(&key, sig_alg, &parts), "{alg} verifies");
            assert!(OIDC_ALGORITHMS.contains(&sig_alg), "{alg} is allowed for generic OIDC");
            // Any change to the signed claims breaks it.
            let mut pieces: Vec<String> = jwt.split('.').map(str::to_owned).collect();
            pieces[1] = URL_SAFE_NO_PAD.encode(with("sub", json!("mallory")).to_string());
            let tampered = pieces.join(".");
            assert!(!verify_with(&key, sig_alg, &split(&tampered).unwrap()), "{alg} tampered");
        }
    }

    proptest::proptest! {
        #[test]
        fn split_never_panics(jwt in "\\PC{0,200}") {
            let _ = split(&jwt);
        }

        #[test]
        fn split_never_panics_on_encoded_parts(header in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
                                               payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
                                               sig in "[A-Za-z0-9_-]{0,20}") {
            let jwt = format!("{}.{}.{sig}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
            if let Ok(parts) = split(&jwt) {
                proptest::prop_assert_eq!(parts.signature, sig.as_str());
            }
        }

        #[test]
        fn claim_checks_never_panic(exp in proptest::prelude::any::<i64>(), iat in proptest::prelude::any::<i64>(),
                                    nbf in proptest::prelude::any::<f64>(), now in proptest::prelude::any::<i64>()) {
            let mut c = base();
            c["exp"] = json!(exp);
            c["iat"] = json!(iat);
            c["nbf"] = serde_json::Number::from_f64(nbf).map(Value::Number).unwrap_or(Value::Null);
            let _ = check(c, now);
        }
    }
}
