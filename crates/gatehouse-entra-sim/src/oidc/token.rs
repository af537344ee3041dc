//! The token endpoint: client authentication and the `authorization_code`, `refresh_token`
//! and `client_credentials` grants.
//!
//! Client authentication accepts `client_secret_basic` (RFC 6749 §2.3.1: form-encoded id
//! and secret, base64 in the `Authorization` header) and `client_secret_post`. A secret is
//! compared against every secret **value** of the app in constant time; a match on an
//! expired secret is AADSTS7000222; a value equal to one of the app's secret **IDs** is
//! AADSTS7000215 with a sentence saying so. Codes are single-use (54005) and short-lived
//! (70008); the check-and-mark happens under one lock so two concurrent redemptions cannot
//! both succeed. Refresh tokens rotate and the old one stays valid, as in Entra.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::claims;
use super::store::{Grant, RefreshGrant, opaque};
use super::{Params, client_request_id, resolve_authority};
use crate::aadsts::{Aadsts, AadstsError};
use crate::server::SimState;
use crate::tenant::App;

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token(
    State(st): State<Arc<SimState>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = st.clock.now();
    match handle(&st, &segment, &headers, &Params::parse(&body), now) {
        Ok(response) => response,
        Err(kind) => {
            tracing::info!(code = kind.code(), "token request refused");
            AadstsError::new(kind, now, client_request_id(&headers)).json_response(&st.urls.login)
        }
    }
}

fn handle(
    st: &SimState,
    segment: &str,
    headers: &HeaderMap,
    params: &Params,
    now: OffsetDateTime,
) -> Result<Response, Aadsts> {
    st.tenant.read(|t| resolve_authority(segment, t))?;
    let basic = basic_credentials(headers);
    let client = match &basic {
        Some((id, _)) => id.clone(),
        None => params.require("client_id")?.to_owned(),
    };
    let secret = match &basic {
        Some((_, secret)) => Some(secret.clone()),
        None => params.get("client_secret")?.map(str::to_owned),
    };
    let grant_type = params.require("grant_type")?.to_owned();
    let app = st.tenant.read(|t| {
        let unknown =
            || Aadsts::UnknownClient { client_id: client.clone(), tenant_name: t.info().display_name.clone() };
        let id = Uuid::parse_str(&client).map_err(|_| unknown())?;
        let app = t.app(id).cloned().ok_or_else(unknown)?;
        Ok::<App, Aadsts>(app)
    })?;
    authenticate(&app, secret.as_deref(), now)?;
    match grant_type.as_str() {
        "authorization_code" => authorization_code(st, &app, params, now),
        "refresh_token" => refresh_token(st, &app, params, now),
        "client_credentials" => client_credentials(st, &app, params, now),
        other => Err(Aadsts::UnsupportedGrantType { grant_type: other.to_owned() }),
    }
}

/// Reads `Authorization: Basic` credentials, undoing the form encoding RFC 6749 requires.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("v={}", text.replace('&', "%26").replace('=', "%3D")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Checks the client's credential against the app's secrets.
fn authenticate(app: &App, secret: Option<&str>, now: OffsetDateTime) -> Result<(), Aadsts> {
    let client_id = app.client_id.to_string();
    let Some(secret) = secret else {
        return if app.public_client { Ok(()) } else { Err(Aadsts::MissingCredential) };
    };
    if let Some(matched) = app.secrets.iter().find(|s| s.value.matches(secret)) {
        return match matched.expires {
            Some(expiry) if expiry <= now => Err(Aadsts::ExpiredSecret { client_id }),
            _ => Ok(()),
        };
    }
    let id_sent = app.secrets.iter().find(|s| s.id.to_string().eq_ignore_ascii_case(secret.trim())).map(|s| s.id);
    Err(Aadsts::InvalidSecret { client_id, secret_id_sent: id_sent })
}

fn authorization_code(st: &SimState, app: &App, params: &Params, now: OffsetDateTime) -> Result<Response, Aadsts> {
    let code = params.require("code")?;
    let redirect_uri = params.get("redirect_uri")?;
    let verifier = params.get("code_verifier")?;
    let unix = now.unix_timestamp();
    let grant = {
        let mut store = st.store();
        let record = store.codes.get_mut(code).ok_or(Aadsts::MalformedRequest)?;
        if record.grant.client_id != app.client_id {
            return Err(Aadsts::GrantInvalid);
        }
        if record.redeemed {
            return Err(Aadsts::CodeRedeemed);
        }
        if unix >= record.expires {
            return Err(Aadsts::CodeExpired);
        }
        match redirect_uri {
            Some(sent) if sent != record.redirect_uri => {
                return Err(Aadsts::RedirectUriChanged {
                    sent: sent.to_owned(),
                    original: record.redirect_uri.clone(),
                });
            }
            None if record.redirect_uri_sent => {
                return Err(Aadsts::MissingParameter { name: "redirect_uri" });
            }
            _ => {}
        }
        if let Some(pkce) = &record.pkce {
            let verifier = verifier.ok_or(Aadsts::PkceMismatch)?;
            let computed = if pkce.s256 {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
                URL_SAFE_NO_PAD.encode(digest.as_ref())
            } else {
                verifier.to_owned()
            };
            if computed != pkce.challenge {
                return Err(Aadsts::PkceMismatch);
            }
        }
        record.redeemed = true;
        record.grant.clone()
    };
    issue(st, app, &grant, now)
}

fn refresh_token(st: &SimState, app: &App, params: &Params, now: OffsetDateTime) -> Result<Response, Aadsts> {
    let token = params.require("refresh_token")?;
    let unix = now.unix_timestamp();
    let lifetime = st.tenant.read(|t| i64::try_from(t.info().settings.refresh_token_lifetime_secs).unwrap_or(i64::MAX));
    let grant = {
        let mut store = st.store();
        let record = store.refresh_tokens.get_mut(token).ok_or(Aadsts::MalformedRequest)?;
        if record.grant.client_id != app.client_id {
            return Err(Aadsts::GrantInvalid);
        }
        if unix.saturating_sub(record.last_used) > lifetime {
            return Err(Aadsts::RefreshTokenExpired);
        }
        record.last_used = unix;
        let mut grant = record.grant.clone();
        // A refreshed ID token carries no nonce: there is no authorization request to echo.
        grant.nonce = None;
        grant
    };
    issue(st, app, &grant, now)
}

fn client_credentials(st: &SimState, app: &App, params: &Params, now: OffsetDateTime) -> Result<Response, Aadsts> {
    let scope = params.require("scope")?;
    let graph_default = st.tenant.read(|t| {
        super::scopes::graph_prefixes(t.info().cloud.graph_host(), &st.urls.graph)
            .iter()
            .any(|prefix| scope.eq_ignore_ascii_case(&format!("{prefix}.default")))
    });
    if !graph_default {
        return Err(Aadsts::ClientCredentialsScope { scope: scope.to_owned() });
    }
    let claims = st.tenant.read(|t| claims::app_access_token(t, app, now.unix_timestamp()));
    let access_token = st.keys().sign(&claims).map_err(|_| Aadsts::MalformedRequest)?;
    let expires_in = st.tenant.read(|t| t.info().settings.access_token_lifetime_secs);
    Ok(token_response(json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token,
    })))
}

/// Issues the tokens a grant entitles the client to, after re-checking the user and consent.
fn issue(st: &SimState, app: &App, grant: &Grant, now: OffsetDateTime) -> Result<Response, Aadsts> {
    let unix = now.unix_timestamp();
    let (id_claims, access_claims, scope, expires_in) = st.tenant.read(|t| {
        let user = t.user(grant.user_id).ok_or(Aadsts::GrantInvalid)?;
        if !user.can_sign_in() {
            return Err(Aadsts::UserDisabled);
        }
        // Consent may have been revoked since the code was issued.
        let current = t.app(app.client_id).ok_or(Aadsts::GrantInvalid)?;
        if !current.admin_consent {
            return Err(Aadsts::ConsentRequired {
                client_id: current.client_id.to_string(),
                app_name: current.display_name.clone(),
            });
        }
        let id_claims = grant.scopes.openid.then(|| claims::id_token(t, &st.urls, current, user, grant, unix));
        let access_claims = claims::graph_access_token(t, current, user, grant, unix);
        let graph_resource = format!("https://{}/", t.info().cloud.graph_host());
        let mut scope: Vec<String> = claims::delegated_scopes(current, grant)
            .into_iter()
            .map(|s| {
                if ["openid", "profile", "email"].iter().any(|o| o.eq_ignore_ascii_case(&s)) {
                    s
                } else {
                    format!("{graph_resource}{s}")
                }
            })
            .collect();
        if grant.scopes.offline_access {
            scope.push("offline_access".into());
        }
        Ok((id_claims, access_claims, scope.join(" "), t.info().settings.access_token_lifetime_secs))
    })?;
    let (id_token, access_token) = {
        let keys = st.keys();
        let id_token = id_claims.map(|c| keys.sign(&c)).transpose().map_err(|_| Aadsts::MalformedRequest)?;
        let access_token = keys.sign(&access_claims).map_err(|_| Aadsts::MalformedRequest)?;
        (id_token, access_token)
    };
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": access_token,
    });
    if grant.scopes.offline_access {
        let refresh = opaque("1.A");
        let mut store = st.store();
        store.refresh_tokens.insert(refresh.clone(), RefreshGrant { grant: grant.clone(), last_used: unix });
        let lifetime =
            st.tenant.read(|t| i64::try_from(t.info().settings.refresh_token_lifetime_secs).unwrap_or(i64::MAX));
        store.inserted(unix, lifetime);
        body["refresh_token"] = json!(refresh);
    }
    if let Some(id_token) = id_token {
        body["id_token"] = json!(id_token);
    }
    Ok(token_response(body))
}

fn token_response(body: serde_json::Value) -> Response {
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store, no-cache"), (header::PRAGMA, "no-cache")], axum::Json(body))
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let raw = STANDARD.encode("my%20id:s%3Ae+c%2Bret");
        h.insert(header::AUTHORIZATION, format!("Basic {raw}").parse().unwrap());
        assert_eq!(basic_credentials(&h), Some(("my id".into(), "s:e c+ret".into())));
        h.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(basic_credentials(&h), None);
    }

    proptest::proptest! {
        #[test]
        fn basic_credentials_never_panic(value in ".*") {
            let mut h = HeaderMap::new();
            if let Ok(v) = format!("Basic {value}").parse() {
                h.insert(header::AUTHORIZATION, v);
                let _ = basic_credentials(&h);
            }
        }

        #[test]
        fn basic_credentials_round_trip(id in "[ -~]{1,20}", secret in "[ -~]{0,40}") {
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let raw = STANDARD.encode(format!("{}:{}", enc(&id), enc(&secret)));
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, format!("Basic {raw}").parse().unwrap());
            proptest::prop_assert_eq!(basic_credentials(&h), Some((id, secret)));
        }
    }
}
