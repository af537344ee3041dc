//! The end-session endpoint.
//!
//! Clears the browser session (server side and cookie). Returns to `post_logout_redirect_uri`
//! (with `state`) only when that URI is registered on one of the tenant's apps — otherwise
//! Entra's "You signed out" page — so the endpoint is not an open redirect.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::{Params, SESSION_COOKIE, cookie, resolve_authority};
use crate::aadsts::AadstsError;
use crate::html;
use crate::server::SimState;

/// `GET /{tenant}/oauth2/v2.0/logout`.
pub(crate) async fn logout_get(
    State(st): State<Arc<SimState>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    logout(&st, &segment, &headers, &Params::parse(query.unwrap_or_default().as_bytes()))
}

/// `POST /{tenant}/oauth2/v2.0/logout`.
pub(crate) async fn logout_post(
    State(st): State<Arc<SimState>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    logout(&st, &segment, &headers, &Params::parse(&body))
}

fn logout(st: &SimState, segment: &str, headers: &HeaderMap, params: &Params) -> Response {
    if let Err(kind) = st.tenant.read(|t| resolve_authority(segment, t)) {
        return super::authorize::error_page(AadstsError::new(kind, st.clock.now(), None));
    }
    if let Some(handle) = cookie(headers, SESSION_COOKIE) {
        st.store().sessions.remove(handle);
    }
    let target = params
        .get("post_logout_redirect_uri")
        .ok()
        .flatten()
        .filter(|uri| st.tenant.read(|t| t.apps().any(|a| a.redirect_uris.iter().any(|r| r == uri))));
    let mut response = match target {
        Some(uri) => {
            let mut location = uri.to_owned();
            if let Some(state) = params.get("state").ok().flatten() {
                let sep = if location.contains('?') { '&' } else { '?' };
                let encoded: String = url::form_urlencoded::byte_serialize(state.as_bytes()).collect();
                location.push_str(&format!("{sep}state={encoded}"));
            }
            match HeaderValue::from_str(&location) {
                Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
                Err(_) => Html(html::signed_out_page()).into_response(),
            }
        }
        None => Html(html::signed_out_page()).into_response(),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, HeaderValue::from_static("ESTSAUTH=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"));
    response
}
