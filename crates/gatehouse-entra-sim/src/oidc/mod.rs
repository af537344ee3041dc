//! The OpenID Connect v2.0 surface of the emulated tenant, on Entra's paths:
//!
//! ```text
//! GET       /{tenant}/v2.0/.well-known/openid-configuration   discovery.rs
//! GET       /{tenant}/discovery/v2.0/keys                     discovery.rs (and v1 /discovery/keys)
//! GET|POST  /{tenant}/oauth2/v2.0/authorize                   authorize.rs → sign-in page or redirect
//! POST      /{tenant}/login                                   authorize.rs (the sign-in form posts here)
//! POST      /{tenant}/oauth2/v2.0/token                       token.rs
//! GET|POST  /{tenant}/oauth2/v2.0/logout                      logout.rs
//! ```
//!
//! `{tenant}` is the tenant GUID, its domain, or `common`/`organizations`. This module holds
//! what the endpoints share: tenant-segment resolution, strict parameter parsing (duplicates
//! are errors, as in Entra) and the session cookie.

pub(crate) mod authorize;
pub(crate) mod claims;
pub(crate) mod discovery;
pub(crate) mod logout;
pub(crate) mod scopes;
pub(crate) mod store;
pub(crate) mod token;

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use uuid::Uuid;

use crate::aadsts::Aadsts;
use crate::server::SimState;
use crate::tenant::Tenant;

/// The browser-session cookie, named after Entra's.
pub(crate) const SESSION_COOKIE: &str = "ESTSAUTH";

/// The OIDC routes.
pub(crate) fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery::openid_configuration))
        .route("/{tenant}/discovery/v2.0/keys", get(discovery::keys_v2))
        .route("/{tenant}/discovery/keys", get(discovery::keys_v1))
        .route("/{tenant}/oauth2/v2.0/authorize", get(authorize::authorize_get).post(authorize::authorize_post))
        .route("/{tenant}/login", post(authorize::login))
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .route("/{tenant}/oauth2/v2.0/logout", get(logout::logout_get).post(logout::logout_post))
}

/// What the `{tenant}` path segment named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Authority {
    /// The tenant, by GUID or domain.
    Tenant,
    /// `common`.
    Common,
    /// `organizations`.
    Organizations,
}

impl Authority {
    /// The segment used in advertised URLs: the tenant GUID (even when requested by
    /// domain, as Entra does) or the multi-tenant alias.
    pub(crate) fn segment(self, tenant: &Tenant) -> String {
        match self {
            Authority::Tenant => tenant.id().to_string(),
            Authority::Common => "common".into(),
            Authority::Organizations => "organizations".into(),
        }
    }
}

/// Resolves the `{tenant}` segment.
pub(crate) fn resolve_authority(segment: &str, tenant: &Tenant) -> Result<Authority, Aadsts> {
    if segment.eq_ignore_ascii_case("common") {
        return Ok(Authority::Common);
    }
    if segment.eq_ignore_ascii_case("organizations") {
        return Ok(Authority::Organizations);
    }
    let by_id = Uuid::parse_str(segment).is_ok_and(|id| id == tenant.id());
    if by_id || segment.eq_ignore_ascii_case(&tenant.info().domain) {
        Ok(Authority::Tenant)
    } else {
        Err(Aadsts::TenantNotFound { tenant: segment.to_owned() })
    }
}

/// Form or query parameters, checked for duplicates on access.
#[derive(Clone, Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes.
    pub(crate) fn parse(bytes: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The parameter's value; empty counts as absent.
    pub(crate) fn get(&self, name: &'static str) -> Result<Option<&str>, Aadsts> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        match (values.next(), values.next()) {
            (Some(_), Some(_)) => Err(Aadsts::DuplicateParameter { name: name.to_owned() }),
            (Some(v), None) if !v.is_empty() => Ok(Some(v)),
            _ => Ok(None),
        }
    }

    /// The parameter's value, or the 900144 error naming it.
    pub(crate) fn require(&self, name: &'static str) -> Result<&str, Aadsts> {
        self.get(name)?.ok_or(Aadsts::MissingParameter { name })
    }
}

/// The value of a cookie in the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The client's `client-request-id`, which Entra reports back as the correlation id.
pub(crate) fn client_request_id(headers: &HeaderMap) -> Option<Uuid> {
    headers.get("client-request-id").and_then(|v| v.to_str().ok()).and_then(|v| Uuid::parse_str(v).ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_empty_values() {
        let p = Params::parse(b"a=1&a=2&b=&c=x%20y");
        assert!(matches!(p.get("a"), Err(Aadsts::DuplicateParameter { .. })));
        assert_eq!(p.get("b").unwrap(), None);
        assert_eq!(p.get("c").unwrap(), Some("x y"));
        assert!(matches!(p.require("d"), Err(Aadsts::MissingParameter { name: "d" })));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=1; ESTSAUTH=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "zz"), None);
    }
}
