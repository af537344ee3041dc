//! Starting a sign-in: the authorization request and the [`PendingSignIn`] the gateway keeps
//! until the IdP sends the browser back.
//!
//! Each sign-in gets a fresh `state` and `nonce` (256 random bits each) and, when the IdP has
//! `pkce_enabled`, a PKCE S256 verifier. Scopes are `openid profile email`; an Entra IdP with
//! `support_groups` adds `{graph}/.default`, so the same code exchange yields an access token
//! for Microsoft Graph carrying every consented Graph permission (used when the ID token's
//! groups overflow). The response comes back by `response_mode=query`.
//!
//! This module must not store anything: the caller keeps the [`PendingSignIn`] server-side
//! and hands it back to [`crate::OidcClient::complete`] exactly once.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::IdpId;
use gatehouse_core::idp::{IdentityProvider, IdpType, Prompt};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::endpoints::Endpoints;

/// A sign-in that was started and not yet completed.
///
/// Serialisable so the gateway can keep it server-side (keyed by an opaque cookie, or in
/// its session store) between [`crate::OidcClient::begin`] and
/// [`crate::OidcClient::complete`]. It holds the PKCE verifier, so it must never be sent to
/// the browser in readable form; `Debug` redacts `state`, `nonce` and the verifier.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingSignIn {
    /// The identity provider the sign-in was started with.
    pub idp_id: IdpId,
    /// The `state` sent to the IdP; the callback must echo it.
    pub state: String,
    /// The `nonce` sent to the IdP; the ID token must carry it.
    pub nonce: String,
    /// The PKCE verifier, when PKCE is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce_verifier: Option<String>,
    /// The redirect URI sent; the token request repeats it.
    pub redirect_uri: String,
    /// When the sign-in started, Unix seconds.
    pub created_at: i64,
}

impl fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("idp_id", &self.idp_id)
            .field("state", &"[redacted]")
            .field("nonce", &"[redacted]")
            .field("pkce", &self.pkce_verifier.is_some())
            .field("redirect_uri", &self.redirect_uri)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// The system random generator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random generator failed")]
pub(crate) struct RandomError;

/// `bytes` random bytes, base64url without padding.
pub(crate) fn random_token(bytes: usize) -> Result<String, RandomError> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).map_err(|_| RandomError)?;
    Ok(URL_SAFE_NO_PAD.encode(&buf))
}

/// The S256 challenge of a PKCE verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref())
}

/// The wire value of a `prompt`.
pub fn prompt_value(prompt: Prompt) -> &'static str {
    match prompt {
        Prompt::Login => "login",
        Prompt::SelectAccount => "select_account",
        Prompt::None => "none",
    }
}

/// The scopes requested from `idp`.
///
/// `azureAD`: `openid profile email`, plus `{graph}/.default` with `support_groups`.
/// `oidc`: the configured scopes (default `openid email profile`), `openid` always included.
pub fn scopes_for(idp: &IdentityProvider, endpoints: &Endpoints) -> Vec<String> {
    match idp.kind {
        IdpType::AzureAd => {
            let mut scopes: Vec<String> = ["openid", "profile", "email"].map(str::to_owned).to_vec();
            if idp.config.support_groups
                && let Some(resource) = &endpoints.graph_resource
            {
                scopes.push(format!("{resource}/.default"));
            }
            scopes
        }
        IdpType::Oidc => {
            let mut scopes: Vec<String> = idp
                .config
                .scopes
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
                .collect();
            if scopes.is_empty() {
                scopes = ["openid", "email", "profile"].map(str::to_owned).to_vec();
            }
            if !scopes.iter().any(|s| s == "openid") {
                scopes.insert(0, "openid".to_owned());
            }
            scopes.dedup();
            scopes
        }
    }
}

/// What goes into one authorization request.
#[derive(Debug)]
pub(crate) struct AuthorizeParams<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) redirect_uri: &'a str,
    pub(crate) scopes: &'a [String],
    pub(crate) state: &'a str,
    pub(crate) nonce: &'a str,
    pub(crate) code_challenge: Option<&'a str>,
    pub(crate) prompt: Option<Prompt>,
}

/// The authorization URL: the endpoint with the request's parameters appended to any query
/// it already has.
pub(crate) fn authorize_url(endpoint: &Url, p: &AuthorizeParams<'_>) -> Url {
    let mut url = endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", p.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", p.redirect_uri)
            .append_pair("response_mode", "query")
            .append_pair("scope", &p.scopes.join(" "))
            .append_pair("state", p.state)
            .append_pair("nonce", p.nonce);
        if let Some(challenge) = p.code_challenge {
            q.append_pair("code_challenge", challenge).append_pair("code_challenge_method", "S256");
        }
        if let Some(prompt) = p.prompt {
            q.append_pair("prompt", prompt_value(prompt));
        }
    }
    url
}

/// Checks a redirect URI: absolute http(s), a host, no fragment, no credentials.
pub(crate) fn check_redirect_uri(uri: &str) -> Result<Url, String> {
    let url = Url::parse(uri).map_err(|e| format!("not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must be an http or https URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must include a host".into());
    }
    if url.fragment().is_some() {
        return Err("must not contain a #fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    Ok(url)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let a = random_token(32).unwrap();
        let b = random_token(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn rfc7636_appendix_b_challenge() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn authorize_url_keeps_an_existing_query() {
        let endpoint = Url::parse("https://idp.example.com/authorize?tenant=x").unwrap();
        let scopes = vec!["openid".to_owned(), "email".to_owned()];
        let url = authorize_url(
            &endpoint,
            &AuthorizeParams {
                client_id: "c",
                redirect_uri: "https://gw.example.com/cdn-cgi/access/callback",
                scopes: &scopes,
                state: "s",
                nonce: "n",
                code_challenge: Some("ch"),
                prompt: Some(Prompt::Login),
            },
        );
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("tenant"), Some("x"));
        assert_eq!(get("scope"), Some("openid email"));
        assert_eq!(get("response_mode"), Some("query"));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("prompt"), Some("login"));
    }

    #[test]
    fn redirect_uri_rules() {
        assert!(check_redirect_uri("https://team.example.com/cdn-cgi/access/callback").is_ok());
        assert!(check_redirect_uri("/cdn-cgi/access/callback").is_err());
        assert!(check_redirect_uri("https://x.example.com/cb#f").is_err());
        assert!(check_redirect_uri("ftp://x.example.com/cb").is_err());
    }

    #[test]
    fn pending_debug_redacts() {
        let p = PendingSignIn {
            idp_id: IdpId::generate(),
            state: "STATE".into(),
            nonce: "NONCE".into(),
            pkce_verifier: Some("VERIFIER".into()),
            redirect_uri: "https://x/cb".into(),
            created_at: 1,
        };
        let text = format!("{p:?}");
        assert!(!text.contains("STATE") && !text.contains("NONCE") && !text.contains("VERIFIER"));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<PendingSignIn>(&json).unwrap(), p);
    }
}
