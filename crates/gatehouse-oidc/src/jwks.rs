//! Signing keys: fetching an IdP's JWKS and caching it by URL and `kid`.
//!
//! Keys are cached per JWKS URL for at most `max_age` (24 hours by default, Microsoft's
//! recommendation). A token signed with a `kid` the cache does not know triggers one refetch,
//! but at most once per `min_refetch_interval` per URL (5 minutes by default), so a flood of
//! tokens with made-up `kid`s cannot make the gateway hammer the IdP. Concurrent lookups for
//! the same URL share one fetch. Only RSA and EC signature keys are kept; keys marked
//! `"use": "enc"` and keys of other types are skipped rather than failing the whole set.
//!
//! This module holds public keys only. It must not decide whether a token is acceptable
//! beyond "which keys could have signed it".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use url::Url;

use crate::clock::Clock;
use crate::http::{self, Endpoint, FetchError, FetchFailure};

/// Largest JWKS document read.
const JWKS_BODY_LIMIT: usize = 512 * 1024;
/// Most keys kept from one document.
const MAX_KEYS: usize = 64;

/// A published verification key.
#[derive(Clone)]
pub(crate) struct PublishedKey {
    pub(crate) kid: Option<String>,
    /// The key's own `alg`, when it declares one.
    pub(crate) alg: Option<String>,
    /// Entra's per-key `issuer` (possibly the `{tenantid}` template).
    pub(crate) issuer: Option<String>,
    pub(crate) kind: KeyKind,
    pub(crate) key: DecodingKey,
}

impl std::fmt::Debug for PublishedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kind", &self.kind)
            .finish()
    }
}

/// Key type and, for EC, the curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    P256,
    P384,
    P521,
}

/// The signature algorithms this crate can verify. `none` and the HMAC family are absent on
/// purpose: an ID token is never accepted unsigned or signed with a shared secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigAlg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
}

impl SigAlg {
    /// Parses a JOSE `alg`; `None` for anything this crate does not verify.
    pub(crate) fn parse(alg: &str) -> Option<Self> {
        Some(match alg {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "ES512" => Self::Es512,
            _ => return None,
        })
    }

    /// The JOSE name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
        }
    }

    /// The `jsonwebtoken` algorithm; ES512 is verified with aws-lc-rs directly.
    pub(crate) fn jwt(self) -> Option<Algorithm> {
        Some(match self {
            Self::Rs256 => Algorithm::RS256,
            Self::Rs384 => Algorithm::RS384,
            Self::Rs512 => Algorithm::RS512,
            Self::Ps256 => Algorithm::PS256,
            Self::Ps384 => Algorithm::PS384,
            Self::Ps512 => Algorithm::PS512,
            Self::Es256 => Algorithm::ES256,
            Self::Es384 => Algorithm::ES384,
            Self::Es512 => return None,
        })
    }
}

impl KeyKind {
    /// Whether a key of this kind can verify `alg`.
    pub(crate) fn fits(self, alg: SigAlg) -> bool {
        match self {
            KeyKind::Rsa => matches!(
                alg,
                SigAlg::Rs256 | SigAlg::Rs384 | SigAlg::Rs512 | SigAlg::Ps256 | SigAlg::Ps384 | SigAlg::Ps512
            ),
            KeyKind::P256 => alg == SigAlg::Es256,
            KeyKind::P384 => alg == SigAlg::Es384,
            KeyKind::P521 => alg == SigAlg::Es512,
        }
    }
}

/// Why no key could be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyError {
    /// The JWKS could not be fetched or read.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// No published key has this `kid`, even after a refetch (or a refetch was not allowed
    /// yet because of the rate limit).
    #[error("no signing key with id {kid:?} is published at {url}{}", if *.refetch_rate_limited { " (refetch rate-limited)" } else { "" })]
    UnknownKid {
        /// The token's `kid`.
        kid: Option<String>,
        /// The JWKS URL.
        url: String,
        /// Whether the refetch was skipped because one happened too recently.
        refetch_rate_limited: bool,
    },
}

/// Parses a JWKS document leniently: unusable keys are skipped.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<Vec<PublishedKey>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let keys = doc.get("keys").and_then(Value::as_array).ok_or("no \"keys\" array")?;
    let mut out = Vec::new();
    for k in keys.iter().take(MAX_KEYS * 2) {
        if out.len() == MAX_KEYS {
            break;
        }
        if let Some(key) = parse_key(k) {
            out.push(key);
        }
    }
    Ok(out)
}

fn parse_key(k: &Value) -> Option<PublishedKey> {
    let s = |name: &str| k.get(name).and_then(Value::as_str);
    if s("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let (kind, key) = match s("kty")? {
        "RSA" => (KeyKind::Rsa, DecodingKey::from_rsa_components(s("n")?, s("e")?).ok()?),
        "EC" => {
            let kind = match s("crv")? {
                "P-256" => KeyKind::P256,
                "P-384" => KeyKind::P384,
                "P-521" => KeyKind::P521,
                _ => return None,
            };
            (kind, DecodingKey::from_ec_components(s("x")?, s("y")?).ok()?)
        }
        _ => return None,
    };
    let short = |v: Option<&str>| v.map(|t| t.chars().take(512).collect::<String>());
    Some(PublishedKey { kid: short(s("kid")), alg: short(s("alg")), issuer: short(s("issuer")), kind, key })
}

#[derive(Debug, Default)]
struct EntryState {
    keys: Option<Arc<Vec<PublishedKey>>>,
    fetched_at: Option<i64>,
    last_attempt: Option<i64>,
}

#[derive(Debug, Default)]
struct Entry {
    /// Serialises fetches of one URL.
    fetching: tokio::sync::Mutex<()>,
    state: Mutex<EntryState>,
}

/// The cache of every IdP's signing keys.
#[derive(Debug)]
pub(crate) struct JwksCache {
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    min_refetch_interval: i64,
    max_age: i64,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

fn matching(keys: &[PublishedKey], kid: Option<&str>) -> Vec<PublishedKey> {
    match kid {
        Some(kid) => keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).cloned().collect(),
        None => keys.to_vec(),
    }
}

impl JwksCache {
    pub(crate) fn new(min_refetch_interval: Duration, max_age: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            min_refetch_interval: secs(min_refetch_interval),
            max_age: secs(max_age),
        }
    }

    fn entry(&self, url: &Url) -> Arc<Entry> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.entry(url.as_str().to_owned()).or_default().clone()
    }

    /// The keys at `url` that could have signed a token with `kid` (every key when the token
    /// has no `kid`), fetching or refetching as the cache rules allow.
    pub(crate) async fn candidates(
        &self,
        client: &reqwest::Client,
        clock: &dyn Clock,
        url: &Url,
        kid: Option<&str>,
    ) -> Result<Vec<PublishedKey>, KeyError> {
        let entry = self.entry(url);
        if let Some(found) = self.cached(&entry, clock.unix(), kid) {
            return Ok(found);
        }
        let _fetching = entry.fetching.lock().await;
        let now = clock.unix();
        // Another task may have fetched while this one waited.
        if let Some(found) = self.cached(&entry, now, kid) {
            return Ok(found);
        }
        let (stale, allowed) = {
            let state = entry.state.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = state.fetched_at.is_some_and(|t| now.saturating_sub(t) < self.max_age);
            let recent = state.last_attempt.is_some_and(|t| now.saturating_sub(t) < self.min_refetch_interval);
            (state.keys.clone(), !fresh || !recent)
        };
        if !allowed {
            tracing::warn!(url = %http::display_url(url), kid = ?kid, "unknown signing key; refetch rate-limited");
            return Err(KeyError::UnknownKid {
                kid: kid.map(str::to_owned),
                url: http::display_url(url),
                refetch_rate_limited: true,
            });
        }
        entry.state.lock().unwrap_or_else(|e| e.into_inner()).last_attempt = Some(now);
        match fetch(client, url).await {
            Ok(keys) => {
                tracing::info!(url = %http::display_url(url), keys = keys.len(), "signing keys fetched");
                let keys = Arc::new(keys);
                {
                    let mut state = entry.state.lock().unwrap_or_else(|e| e.into_inner());
                    state.keys = Some(keys.clone());
                    state.fetched_at = Some(now);
                }
                let found = matching(&keys, kid);
                if found.is_empty() {
                    return Err(KeyError::UnknownKid {
                        kid: kid.map(str::to_owned),
                        url: http::display_url(url),
                        refetch_rate_limited: false,
                    });
                }
                Ok(found)
            }
            Err(e) => {
                // An IdP outage must not lock out users whose key is still published in the
                // copy we hold, even if that copy is past its age.
                if let Some(keys) = stale {
                    let found = matching(&keys, kid);
                    if !found.is_empty() {
                        tracing::warn!(error = %e, "signing keys could not be refreshed; using the cached copy");
                        return Ok(found);
                    }
                }
                Err(KeyError::Fetch(e))
            }
        }
    }

    fn cached(&self, entry: &Entry, now: i64, kid: Option<&str>) -> Option<Vec<PublishedKey>> {
        let state = entry.state.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = state.fetched_at.is_some_and(|t| now.saturating_sub(t) < self.max_age);
        let keys = state.keys.as_ref().filter(|_| fresh)?;
        let found = matching(keys, kid);
        (!found.is_empty()).then_some(found)
    }
}

async fn fetch(client: &reqwest::Client, url: &Url) -> Result<Vec<PublishedKey>, FetchError> {
    let fail = |failure| FetchError::new(Endpoint::Jwks, url, failure);
    let response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| fail(http::classify(&e)))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(fail(FetchFailure::Redirect { status: status.as_u16(), location: http::location(&response) }));
    }
    let body = http::read_limited(response, JWKS_BODY_LIMIT).await.map_err(fail)?;
    if !status.is_success() {
        return Err(fail(FetchFailure::Status { status: status.as_u16(), excerpt: http::excerpt(&body) }));
    }
    let keys = parse_jwks(&body).map_err(|reason| fail(FetchFailure::Malformed(format!("JWKS {reason}"))))?;
    if keys.is_empty() {
        return Err(fail(FetchFailure::Malformed("the JWKS has no usable RSA or EC signing key".into())));
    }
    Ok(keys)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn lenient_parsing_skips_unusable_keys() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "use": "sig", "kid": "a", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB", "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0"},
            {"kty": "RSA", "use": "enc", "kid": "b", "n": "xx", "e": "AQAB"},
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256", "kid": "c", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "RSA"},
            "not an object"
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, vec![Some("a"), Some("c")]);
        assert_eq!(keys[0].issuer.as_deref(), Some("https://login.microsoftonline.com/{tenantid}/v2.0"));
        assert!(keys[0].kind.fits(SigAlg::Rs256) && !keys[0].kind.fits(SigAlg::Es256));
        assert!(keys[1].kind.fits(SigAlg::Es256) && !keys[1].kind.fits(SigAlg::Rs256));
        assert_eq!(SigAlg::parse("none"), None);
        assert_eq!(SigAlg::parse("HS256"), None);
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"nope").is_err());
    }

    proptest::proptest! {
        #[test]
        fn jwks_parsing_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_jwks(&body);
        }

        #[test]
        fn jwk_fields_of_any_shape_never_panic(kty in "(RSA|EC|oct|OKP|[A-Z]{0,3})", crv in "(P-256|P-384|P-521|x)",
                                               n in "[A-Za-z0-9_-]{0,40}", e in "[A-Za-z0-9_-]{0,8}", usage in "(sig|enc|)") {
            let doc = serde_json::json!({"keys": [{"kty": kty, "crv": crv, "n": n, "e": e, "x": n, "y": e, "use": usage}]});
            let _ = parse_jwks(doc.to_string().as_bytes());
        }
    }
}
