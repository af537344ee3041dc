//! Signing in to the dashboard, its session cookie, and the checks every change passes.
//!
//! - Sign-in takes an admin API token: looked up by its SHA-256 and compared in constant time,
//!   exactly as the REST API does. The token is never stored, logged or shown again.
//! - The session cookie holds 256 random bits; the store keeps only their SHA-256. It is
//!   `HttpOnly`, `SameSite=Strict`, `Path=/`, expires with the session (12 hours), and is
//!   `Secure` when the browser reached the dashboard over https (a TLS-terminating proxy in
//!   front of the admin listener).
//! - Every POST carries a synchroniser token derived from the session cookie (`_csrf`,
//!   compared in constant time) and must come from the dashboard's own origin (`Origin`, or
//!   `Referer` when a browser sends no `Origin`). The sign-in form itself is protected the same
//!   way by a short-lived double-submit cookie.
//! - A session opened with a read-only token may view everything and change nothing; the
//!   organisation's `is_ui_read_only` makes every session so, except for that setting itself.

use askama::Template;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use gatehouse_core::now_millis;
use gatehouse_core::secret::{constant_time_eq, hash_bearer_secret, random_fill, verify_bearer_secret};
use gatehouse_store::{DashboardSession, DashboardSessionStore, OrgStore, TokenStore};

use super::form::{Form, Pairs, Query};
use super::page::{PageError, render, see_other};
use crate::{AdminState, MAX_BODY_BYTES};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "gatehouse_dashboard";
/// Name of the sign-in form's double-submit cookie.
const LOGIN_COOKIE: &str = "gatehouse_dashboard_login";
/// How long a dashboard session lasts.
const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// Longest token worth hashing (as the API).
const MAX_TOKEN_LEN: usize = 512;

/// The signed-in session, available to handlers as a request extension.
#[derive(Debug, Clone)]
pub(crate) struct Dash {
    /// The synchroniser token to put in every form.
    pub csrf: String,
    /// May only view.
    pub read_only: bool,
    id_hash: String,
}

fn random_value() -> Result<String, PageError> {
    let mut b = [0u8; 32];
    random_fill(&mut b).map_err(|e| PageError::internal(&e))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// The CSRF token of a session: bound to the cookie value, which only the browser holding the
/// session has, and not derivable from what the store keeps (the cookie's hash).
fn csrf_for(cookie_value: &str) -> String {
    hash_bearer_secret(&format!("gatehouse-dashboard-csrf:{cookie_value}"))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether the browser reached us over https (directly or through a proxy that says so).
fn over_https(headers: &HeaderMap) -> bool {
    let header_is = |name: &str, want: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
    };
    header_is("x-forwarded-proto", "https")
        || headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).is_some_and(|o| o.starts_with("https://"))
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age_s: i64) -> Result<HeaderValue, PageError> {
    let secure = if over_https(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"))
        .map_err(|e| PageError::internal(&e))
}

/// Whether a state-changing request comes from the dashboard's own origin: `Origin` (or
/// `Referer`) must name the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok());
    let Some(host) = text(header::HOST) else { return false };
    let forwarded_host = headers.get("x-forwarded-host").and_then(|v| v.to_str().ok());
    let Some(from) = text(header::ORIGIN).or_else(|| text(header::REFERER)) else { return false };
    let Ok(url) = url::Url::parse(from) else { return false };
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    let Some(h) = url.host_str() else { return false };
    let authority = match url.port() {
        Some(p) => format!("{h}:{p}"),
        None => h.to_owned(),
    };
    authority.eq_ignore_ascii_case(host) || forwarded_host.is_some_and(|f| authority.eq_ignore_ascii_case(f.trim()))
}

/// Where to go after signing in: a path of the dashboard only (never another site).
fn safe_next(raw: &str) -> String {
    // Browsers drop tabs and newlines from a Location, so `/\t/evil.example` would become
    // `//evil.example`: no control characters at all.
    let ok = raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.chars().any(|c| c == '\\' || c.is_control())
        && !raw.starts_with("/login")
        && raw.len() <= 2048;
    if ok { raw.to_owned() } else { "/".to_owned() }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nonce: String,
    next: String,
    error: Option<String>,
}

fn login_page(
    headers: &HeaderMap,
    status: StatusCode,
    next: String,
    error: Option<String>,
) -> Result<Response, PageError> {
    let nonce = random_value()?;
    let cookie = set_cookie(headers, LOGIN_COOKIE, &nonce, 600)?;
    let mut resp = render(&LoginPage { nonce, next, error });
    *resp.status_mut() = status;
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(resp)
}

async fn current(state: &AdminState, headers: &HeaderMap) -> Result<Option<(DashboardSession, String)>, PageError> {
    let Some(value) = cookie(headers, SESSION_COOKIE).filter(|v| !v.is_empty() && v.len() <= 128) else {
        return Ok(None);
    };
    let found = state.store.dashboard_session(&hash_bearer_secret(value), now_millis()).await?;
    Ok(found.map(|s| (s, value.to_owned())))
}

/// `GET /login`.
pub(crate) async fn login_form(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query,
) -> Result<Response, PageError> {
    let next = safe_next(q.get("next"));
    if current(&state, &headers).await?.is_some() {
        return Ok(see_other(&next));
    }
    login_page(&headers, StatusCode::OK, next, None)
}

/// `POST /login`: exchanges an admin API token for a session.
#[tracing::instrument(skip_all)]
pub(crate) async fn login(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    if !same_origin(&headers) {
        return Err(PageError::cross_origin());
    }
    let form = Pairs::parse(&body);
    let next = safe_next(form.get("next"));
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let presented = form.get("_login");
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), presented.as_bytes()) {
        let msg = "The sign-in form expired or was opened in another browser; please try again.";
        return login_page(&headers, StatusCode::BAD_REQUEST, next, Some(msg.to_owned()));
    }
    let token = form.get("token");
    if token.is_empty() {
        let msg = "Paste an admin API token (create one with 'gatehouse api-token create --name NAME').";
        return login_page(&headers, StatusCode::BAD_REQUEST, next, Some(msg.to_owned()));
    }
    let found = if token.len() > MAX_TOKEN_LEN {
        None
    } else {
        state.store.find_token_by_hash(&hash_bearer_secret(token)).await?
    };
    let Some(api_token) = found.filter(|t| verify_bearer_secret(token, &t.secret_hash)) else {
        tracing::info!("dashboard sign-in with an unknown token refused");
        let msg = "That token is not valid. Use an admin API token as printed by 'gatehouse api-token create'.";
        return login_page(&headers, StatusCode::UNAUTHORIZED, next, Some(msg.to_owned()));
    };
    let now = now_millis();
    let value = random_value()?;
    state
        .store
        .insert_dashboard_session(&DashboardSession {
            id_hash: hash_bearer_secret(&value),
            token_id: api_token.id,
            read_only: api_token.read_only,
            created_at: now,
            expires_at: now + SESSION_TTL_MS,
        })
        .await?;
    if let Err(e) = state.store.touch_token(api_token.id, now).await {
        tracing::warn!(error = %e, "could not record API token use");
    }
    if let Err(e) = state.store.prune_dashboard_sessions(now).await {
        tracing::warn!(error = %e, "could not prune expired dashboard sessions");
    }
    tracing::info!(token = %api_token.id, read_only = api_token.read_only, "dashboard sign-in");
    let mut resp = see_other(&next);
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(&headers, SESSION_COOKIE, &value, SESSION_TTL_MS / 1000)?);
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(&headers, LOGIN_COOKIE, "", 0)?);
    Ok(resp)
}

/// `POST /logout`: ends the session here and in the store.
pub(crate) async fn logout(
    State(state): State<AdminState>,
    headers: HeaderMap,
    axum::Extension(dash): axum::Extension<Dash>,
) -> Result<Response, PageError> {
    state.store.delete_dashboard_session(&dash.id_hash).await?;
    let mut resp = see_other("/login");
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(&headers, SESSION_COOKIE, "", 0)?);
    Ok(resp)
}

/// Middleware of every signed-in page: finds the session (else sends the browser to sign
/// in), and on POST checks origin, CSRF token and write permission before the handler runs.
pub(crate) async fn require_session(
    State(state): State<AdminState>,
    req: Request,
    next: Next,
) -> Result<Response, PageError> {
    let Some((session, value)) = current(&state, req.headers()).await? else {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let to = if req.method() == Method::GET {
            format!("/login?next={}", url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>())
        } else {
            "/login".to_owned()
        };
        return Ok(see_other(&to));
    };
    let dash = Dash { csrf: csrf_for(&value), read_only: session.read_only, id_hash: session.id_hash };
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(dash.clone());
    if matches!(parts.method, Method::GET | Method::HEAD) {
        return Ok(next.run(Request::from_parts(parts, body)).await);
    }
    if !same_origin(&parts.headers) {
        tracing::info!(path = parts.uri.path(), "dashboard change from another origin refused");
        return Err(PageError::cross_origin());
    }
    let bytes =
        to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| PageError::bad_request("The form is larger than 1 MiB."))?;
    let form = Pairs::parse(&bytes);
    if !constant_time_eq(form.get("_csrf").as_bytes(), dash.csrf.as_bytes()) {
        tracing::info!(path = parts.uri.path(), "dashboard change without a valid CSRF token refused");
        return Err(PageError::Forbidden(
            "This form is out of date (its security token does not match your session). Go back, reload the page and try again."
                .into(),
        ));
    }
    let path = parts.uri.path().to_owned();
    if path != "/logout" {
        if dash.read_only {
            return Err(PageError::Forbidden(
                "You signed in with a read-only API token: you can view everything but change nothing. Sign in with a token created without --read-only to make changes."
                    .into(),
            ));
        }
        if path != "/settings" && state.store.organization().await?.is_ui_read_only {
            return Err(PageError::Forbidden(
                "The organisation is set to read-only in the dashboard (is_ui_read_only): make changes through the API, or turn the setting off under Settings."
                    .into(),
            ));
        }
    }
    parts.extensions.insert(Form(form));
    Ok(next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")));
        }
        h
    }

    #[test]
    fn origin_must_match_the_host() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:9090"), ("origin", "http://127.0.0.1:9090")])));
        assert!(same_origin(&headers(&[("host", "admin.example"), ("origin", "https://admin.example")])));
        assert!(same_origin(&headers(&[("host", "127.0.0.1:9090"), ("referer", "http://127.0.0.1:9090/apps")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:9090"), ("origin", "http://evil.example")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:9090"), ("origin", "http://127.0.0.1:9091")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:9090"), ("origin", "null")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:9090")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:9090"),
            ("x-forwarded-host", "admin.example"),
            ("origin", "https://admin.example")
        ])));
    }

    #[test]
    fn cookies_are_secure_behind_https() {
        let attrs =
            |h: &HeaderMap| set_cookie(h, SESSION_COOKIE, "v", 60).map(|v| v.to_str().unwrap_or_default().to_owned());
        let plain = attrs(&headers(&[("host", "127.0.0.1:9090")])).unwrap_or_default();
        assert_eq!(plain, "gatehouse_dashboard=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=60");
        for h in [
            headers(&[("host", "admin.example"), ("x-forwarded-proto", "https")]),
            headers(&[("host", "admin.example"), ("origin", "https://admin.example")]),
        ] {
            assert!(attrs(&h).unwrap_or_default().ends_with("; Secure"), "{h:?}");
        }
    }

    #[test]
    fn next_stays_on_the_dashboard() {
        assert_eq!(safe_next("/apps?page=2"), "/apps?page=2");
        for bad in
            ["//evil.example", "https://evil.example", "/\\evil", "", "/login?next=/x", "/\t/evil.example", "/\n/evil"]
        {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }

    #[test]
    fn cookies_are_found_and_csrf_is_bound_to_the_session() {
        let h = headers(&[("cookie", "a=1; gatehouse_dashboard=xyz"), ("cookie", "b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
        assert_ne!(csrf_for("one"), csrf_for("two"));
        assert_ne!(csrf_for("one"), hash_bearer_secret("one"));
    }
}
