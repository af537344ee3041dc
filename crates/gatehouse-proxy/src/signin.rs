//! Sign-in across the team domain and application hosts (Cloudflare Access's flow):
//!
//! ```text
//! app host ─► team /cdn-cgi/access/login/<app-host>?kid=<aud>&redirect_url=<path>
//!   (IdP chooser unless one IdP or auto-redirect) ─► IdP ─► team /cdn-cgi/access/callback
//!   callback: single-use pending sign-in (bound to this browser by CF_Session), code
//!   exchange and ID-token validation (gatehouse-oidc), policies with the full identity,
//!   user registry, session, team-domain CF_Authorization (org token)
//!   ─► app /cdn-cgi/access/authorized?code=<one-time> ─► app CF_Authorization ─► <path>
//! ```
//!
//! Invariants: the pending sign-in and the one-time code are taken (deleted) before use, so a
//! replay fails on every instance; `redirect_url` is confined to a path on the application's
//! own host (no open redirect); errors shown to browsers are plain words, never internals.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use gatehouse_core::policy::eval::Identity as PolicyIdentity;
use gatehouse_core::policy::{Decision, RequestFacts};
use gatehouse_core::{AppId, IdpId, now_millis};
use gatehouse_oidc::{CallbackParams, OidcClient, PendingSignIn, SignedIn};
use gatehouse_store::{
    FailedLoginRecord, FailedLoginStore, IdpFilter, IdpStore, OrgStore, Page, PendingStore, SessionKind, SessionRecord,
    SessionStore, Store, UserStore,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cookies::get as cookie;
use crate::keys::KeyRingHandle;
use crate::routes::RoutesHandle;
use crate::token::{self, AccessClaims};

/// How long a started sign-in may take.
const PENDING_TTL_MS: i64 = 15 * 60 * 1000;
/// How long the one-time code handed to the application host lives.
const CODE_TTL_MS: i64 = 60 * 1000;
/// How long failed sign-ins are kept.
pub const FAILED_LOGIN_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;
/// Failed sign-ins kept per user (newest first).
pub const FAILED_LOGINS_PER_USER: u32 = 100;
/// Failed sign-ins kept whose user the IdP did not name (IdP errors, invalid responses).
pub const FAILED_LOGINS_WITHOUT_USER: u32 = 1000;

/// The team domain as browsers reach it.
#[derive(Debug, Clone)]
pub struct TeamDomain {
    /// `scheme://host[:port]`.
    pub base: String,
    /// `host[:port]`, compared with the `Host` header.
    pub host: String,
    /// Whether cookies get `Secure`.
    pub https: bool,
}

impl TeamDomain {
    /// From the configured public URL.
    pub fn from_url(url: &url::Url) -> Self {
        let base = url.origin().ascii_serialization();
        let host = base.split_once("://").map_or(base.as_str(), |(_, h)| h).to_owned();
        Self { https: url.scheme() == "https", base, host }
    }
}

/// What the sign-in handlers need.
#[derive(Debug, Clone)]
pub struct SignInState {
    /// The store (pending sign-ins, users, sessions, IdPs).
    pub store: Store,
    /// The OIDC relying party.
    pub oidc: Arc<OidcClient>,
    /// Signing keys.
    pub keys: KeyRingHandle,
    /// Applications.
    pub routes: RoutesHandle,
    /// The team domain.
    pub team: TeamDomain,
}

/// What the callback needs besides the OIDC state.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    oidc: PendingSignIn,
    /// The application being signed in to; `None` for an IdP test.
    app: Option<AppId>,
    app_host: String,
    redirect_url: String,
}

/// What the application host needs to finish.
#[derive(Debug, Serialize, Deserialize)]
struct Grant {
    app: AppId,
    app_host: String,
    redirect_url: String,
    user: uuid::Uuid,
    email: String,
    nonce: String,
    session_expires_at: i64,
    custom: serde_json::Map<String, serde_json::Value>,
}

/// Escapes text for HTML content and attributes.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A small HTML page; `title` and `body` are escaped.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>{t}</title><h1>{t}</h1><p>{b}</p>",
        t = escape(title),
        b = escape(body)
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// 256 random bits, URL-safe; `None` only if the system generator fails.
fn random_token() -> Option<String> {
    let mut b = [0u8; 32];
    gatehouse_core::secret::random_fill(&mut b).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

fn internal(what: &str) -> Response {
    tracing::error!(what, "sign-in failed internally");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The sign-in could not be completed. Try again; if it keeps failing, tell your administrator.",
    )
}

/// A request id for failure pages and records (16 hex digits, as Cloudflare's Ray IDs).
fn ray_id() -> String {
    let mut b = [0u8; 8];
    // A zero id is still a usable (if less unique) label; the random generator failing is
    // reported where it matters (tokens, nonces).
    let _ = gatehouse_core::secret::random_fill(&mut b);
    hex::encode(b)
}

/// Who a failed sign-in was, when the IdP said.
struct FailedUser<'a> {
    subject: &'a str,
    email: &'a str,
}

/// Records a failed sign-in at the callback and returns its Ray ID for the page. A store
/// failure is logged, never shown: the user sees the sign-in failure either way.
async fn record_failure(
    state: &SignInState,
    peer: SocketAddr,
    idp: IdpId,
    app: Option<AppId>,
    who: Option<FailedUser<'_>>,
    code: &str,
    reason: &str,
) -> String {
    let ray = ray_id();
    let now = now_millis();
    let routes = state.routes.load();
    let route = app.and_then(|a| routes.by_id(a));
    let keep = if who.is_some() { FAILED_LOGINS_PER_USER } else { FAILED_LOGINS_WITHOUT_USER };
    let record = FailedLoginRecord {
        id: uuid::Uuid::new_v4(),
        created_at: now,
        expires_at: now.saturating_add(FAILED_LOGIN_RETENTION_MS),
        idp_id: Some(idp),
        subject: who.as_ref().map(|w| w.subject.to_owned()),
        user_id: None,
        email: who.as_ref().map(|w| w.email.to_owned()),
        app_id: app,
        app_name: route.map(|r| r.app.name.clone()),
        aud: route.map(|r| r.app.aud.clone()),
        reason_code: code.to_owned(),
        reason: reason.to_owned(),
        ip_address: peer.ip().to_string(),
        ray_id: ray.clone(),
    };
    tracing::info!(%idp, app = ?app, code, ray = %ray, "failed sign-in recorded");
    if let Err(e) = state.store.record_failed_login(&record, keep).await {
        tracing::error!(error = %e, ray = %ray, "could not record a failed sign-in");
    }
    ray
}

fn host_of(headers: &HeaderMap) -> &str {
    headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default()
}

/// A path on the same host: starts with one `/`, no scheme-relative `//` or `/\`, no control
/// characters. Anything else becomes `/`.
pub fn confine_redirect(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && !p.chars().any(|c| c.is_control() || c == '\\')
                && p.len() <= 2048 =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn set_cookie(resp: &mut Response, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn redirect(location: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Path parameters by name. The sign-in routes may be served under a wildcard route of an
/// outer router (the per-core public listener), whose capture axum passes along, so a
/// handler picks its own parameter by name instead of expecting exactly one.
type PathParams = std::collections::HashMap<String, String>;

/// Query of the login endpoint.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    kid: Option<String>,
    redirect_url: Option<String>,
    idp: Option<String>,
}

/// `GET /cdn-cgi/access/login/<app-host>` on the team domain.
pub async fn login(
    State(state): State<SignInState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(params): Path<PathParams>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let Some(app_host) = params.get("app_host").cloned() else {
        return page(StatusCode::NOT_FOUND, "Not found", "No application named.");
    };
    if !host_of(&headers).eq_ignore_ascii_case(&state.team.host) {
        return page(StatusCode::NOT_FOUND, "Not found", "Sign-in starts on the team domain.");
    }
    let routes = state.routes.load();
    let Some(route) = q.kid.as_deref().and_then(|k| routes.by_aud(k)) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Unknown application",
            "This sign-in link does not name a known application.",
        );
    };
    let app_host = app_host.to_ascii_lowercase();
    let serves_host = route.app.destinations.iter().any(|d| d.split('/').next() == Some(app_host.as_str()));
    if !serves_host {
        return page(StatusCode::BAD_REQUEST, "Unknown application", "This application does not serve that address.");
    }
    let idps = match state.store.list_idps(IdpFilter::default(), Page::new(1, Page::MAX_PER_PAGE)).await {
        Ok(p) => p.items,
        Err(e) => return internal(&e.to_string()),
    };
    let allowed = &route.app.settings.allowed_idps;
    let offered: Vec<_> = idps.into_iter().filter(|i| allowed.is_empty() || allowed.contains(&i.id)).collect();
    let chosen = match q.idp.as_deref() {
        Some(id) => offered.iter().find(|i| i.id.to_string() == id),
        None if offered.len() == 1 || (route.app.settings.auto_redirect_to_identity && !offered.is_empty()) => {
            offered.first()
        }
        None => None,
    };
    let redirect_url = confine_redirect(q.redirect_url.as_deref());
    if let Some(resp) = single_sign_on(&state, &headers, peer, route, &app_host, &redirect_url).await {
        return resp;
    }
    let Some(idp) = chosen else {
        if offered.is_empty() {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is not set up",
                "No identity provider is configured for this application.",
            );
        }
        return chooser(&state, &app_host, &route.app.aud, &redirect_url, &offered);
    };
    let callback = format!("{}/cdn-cgi/access/callback", state.team.base);
    let (url, oidc) = match state.oidc.begin(idp, &callback, None) {
        Ok(x) => x,
        Err(e) => {
            let d = e.diagnosis();
            tracing::warn!(idp = %idp.id, error = %e, "sign-in could not start");
            return page(StatusCode::BAD_GATEWAY, &d.title, &d.explanation);
        }
    };
    let Some(handle) = random_token() else { return internal("random generator failed") };
    let pending = Pending { oidc, app: Some(route.app.id), app_host, redirect_url };
    let data = match serde_json::to_string(&pending) {
        Ok(d) => d,
        Err(e) => return internal(&e.to_string()),
    };
    if let Err(e) = state.store.put_pending(&handle, &data, now_millis() + PENDING_TTL_MS).await {
        return internal(&e.to_string());
    }
    let mut resp = redirect(url.as_str());
    let secure = if state.team.https { "; Secure" } else { "" };
    set_cookie(
        &mut resp,
        format!("CF_Session={handle}; Path=/cdn-cgi/access/; Max-Age=900; HttpOnly; SameSite=Lax{secure}"),
    );
    resp
}

fn chooser(
    state: &SignInState,
    app_host: &str,
    aud: &str,
    redirect_url: &str,
    idps: &[gatehouse_core::idp::IdentityProvider],
) -> Response {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let links: String = idps
        .iter()
        .map(|i| {
            let href = format!(
                "{}/cdn-cgi/access/login/{}?kid={}&redirect_url={}&idp={}",
                state.team.base,
                enc(app_host),
                enc(aud),
                enc(redirect_url),
                i.id
            );
            format!("<li><a href=\"{}\">{}</a></li>", escape(&href), escape(&i.name))
        })
        .collect();
    let html = format!("<!doctype html><meta charset=utf-8><title>Sign in</title><h1>Sign in</h1><ul>{links}</ul>");
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

fn policy_identity(s: &SignedIn, idp: IdpId) -> PolicyIdentity {
    PolicyIdentity {
        email: s.identity.email.to_ascii_lowercase(),
        idp: Some(idp),
        groups: s.identity.groups.iter().map(|g| g.id.to_ascii_lowercase()).collect(),
        amr: s.identity.amr.clone(),
        claims: s.identity.oidc_fields.clone(),
    }
}

/// Starts an IdP test: a real sign-in with `prompt=login` whose callback shows the result
/// instead of signing in (see [`crate::idp_test`]).
pub async fn test_idp(
    State(state): State<SignInState>,
    headers: HeaderMap,
    Path(params): Path<PathParams>,
) -> Response {
    let idp_id = params.get("idp_id").map_or("", String::as_str);
    if !host_of(&headers).eq_ignore_ascii_case(&state.team.host) {
        return page(StatusCode::NOT_FOUND, "Not found", "IdP tests run on the team domain.");
    }
    let idp = match idp_id.parse::<IdpId>() {
        Ok(id) => state.store.get_idp(id).await,
        Err(_) => Ok(None),
    };
    let idp = match idp {
        Ok(Some(i)) => i,
        Ok(None) => {
            return page(StatusCode::NOT_FOUND, "Unknown identity provider", "No identity provider has this id.");
        }
        Err(e) => return internal(&e.to_string()),
    };
    let callback = format!("{}/cdn-cgi/access/callback", state.team.base);
    // Mistakes Entra reports only on its own page (redirect URI, unknown client or tenant)
    // never reach the callback, so look for them first.
    if let Err(e) = state.oidc.preflight(&idp, &callback).await {
        return crate::idp_test::result_page(&idp, &Err(e));
    }
    let (url, oidc) = match state.oidc.begin(&idp, &callback, Some(gatehouse_core::idp::Prompt::Login)) {
        Ok(x) => x,
        Err(e) => return crate::idp_test::result_page(&idp, &Err(e)),
    };
    let Some(handle) = random_token() else { return internal("random generator failed") };
    let pending = Pending { oidc, app: None, app_host: String::new(), redirect_url: String::new() };
    let data = match serde_json::to_string(&pending) {
        Ok(d) => d,
        Err(e) => return internal(&e.to_string()),
    };
    if let Err(e) = state.store.put_pending(&handle, &data, now_millis() + PENDING_TTL_MS).await {
        return internal(&e.to_string());
    }
    let mut resp = redirect(url.as_str());
    let secure = if state.team.https { "; Secure" } else { "" };
    set_cookie(
        &mut resp,
        format!("CF_Session={handle}; Path=/cdn-cgi/access/; Max-Age=900; HttpOnly; SameSite=Lax{secure}"),
    );
    resp
}

/// `GET /cdn-cgi/access/callback` on the team domain.
pub async fn callback(
    State(state): State<SignInState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if !host_of(&headers).eq_ignore_ascii_case(&state.team.host) {
        return page(StatusCode::NOT_FOUND, "Not found", "The sign-in callback is on the team domain.");
    }
    let expired = || {
        page(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in was already used, has expired, or was started in another browser. Open the application again to sign in.",
        )
    };
    let Some(handle) = cookie(&headers, "CF_Session") else { return expired() };
    let now = now_millis();
    let pending: Pending = match state.store.take_pending(handle, now).await {
        Ok(Some(d)) => match serde_json::from_str(&d) {
            Ok(p) => p,
            Err(e) => return internal(&e.to_string()),
        },
        Ok(None) => return expired(),
        Err(e) => return internal(&e.to_string()),
    };
    // From here on the sign-in is this browser's own: every failure is recorded (IdP tests
    // excepted, which are an administrator's diagnostics).
    let (idp_id, for_app) = (pending.oidc.idp_id, pending.app);
    let fail = |status: StatusCode, code: &'static str, title: String, body: String| {
        let state = &state;
        async move {
            let ray = match for_app {
                Some(app) => Some(record_failure(state, peer, idp_id, Some(app), None, code, &title).await),
                None => None,
            };
            let body = match ray {
                Some(r) => format!("{body} (Ray ID: {r})"),
                None => body,
            };
            page(status, &title, &body)
        }
    };
    let params = match CallbackParams::from_query(query.as_deref().unwrap_or_default()) {
        Ok(p) => p,
        Err(_) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "callback_malformed",
                "Invalid sign-in response".into(),
                "The identity provider's response could not be read.".into(),
            )
            .await;
        }
    };
    let idp = match state.store.get_idp(idp_id).await {
        Ok(Some(i)) => i,
        Ok(None) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "idp_removed",
                "Sign-in not available".into(),
                "The identity provider was removed.".into(),
            )
            .await;
        }
        Err(e) => return internal(&e.to_string()),
    };
    let result = state.oidc.complete(&idp, &pending.oidc, params).await;
    let Some(app) = pending.app else {
        // An administrator's IdP test: show what happened, never sign anyone in.
        return crate::idp_test::result_page(&idp, &result);
    };
    let signed_in = match result {
        Ok(s) => s,
        Err(e) => {
            let d = e.diagnosis();
            tracing::warn!(idp = %idp.id, code = d.code, error = %e, "sign-in failed");
            let ray = record_failure(
                &state,
                peer,
                idp.id,
                Some(app),
                None,
                &d.code,
                &format!("{}: {}", d.title, d.explanation),
            )
            .await;
            return page(
                StatusCode::UNAUTHORIZED,
                &d.title,
                &format!(
                    "Signing in did not succeed. Try again; if it keeps failing, tell your administrator (Ray ID: {ray})."
                ),
            );
        }
    };
    let routes = state.routes.load();
    let Some(route) = routes.by_id(app) else {
        return fail(
            StatusCode::NOT_FOUND,
            "app_removed",
            "Unknown application".into(),
            "The application was removed.".into(),
        )
        .await;
    };
    let identity = policy_identity(&signed_in, idp.id);
    // SCIM: a user the IdP deprovisioned cannot sign in again until reactivated; provisioned
    // group names are joined to the token's group ids, and nested-only memberships recorded.
    let scim = if idp.scim.enabled {
        let subject = signed_in.identity.user_key.as_string();
        let groups: Vec<String> = identity.groups.iter().cloned().collect();
        match gatehouse_store::ScimStore::scim_sign_in(&state.store, idp.id, &subject, &identity.email, &groups, now)
            .await
        {
            Ok(s) => s,
            Err(e) => return internal(&e.to_string()),
        }
    } else {
        gatehouse_store::ScimSignIn::default()
    };
    if scim.deactivated && idp.scim.user_deprovision {
        let subject = signed_in.identity.user_key.as_string();
        let who = FailedUser { subject: &subject, email: &identity.email };
        let reason = "The user is deactivated by SCIM provisioning";
        let ray = record_failure(&state, peer, idp.id, Some(app), Some(who), "scim_deactivated", reason).await;
        let msg = format!("Your account is deactivated. Ask your administrator to reactivate it. (Ray ID: {ray})");
        return page(StatusCode::FORBIDDEN, "Access denied", &msg);
    }
    let facts = RequestFacts { identity: Some(&identity), ip: peer.ip(), country: None, service_token: None };
    let outcome = route.policies.evaluate(&facts);
    if outcome.decision != Decision::Allow {
        tracing::info!(app = %route.app.id, email = %identity.email, policy = ?outcome.policy, "access denied at sign-in");
        let subject = signed_in.identity.user_key.as_string();
        let reason = match outcome.policy {
            Some(p) => format!("Denied by the application's policies (deciding policy {p})"),
            None => "No policy of the application admits this user".to_owned(),
        };
        let who = FailedUser { subject: &subject, email: &identity.email };
        let ray = record_failure(&state, peer, idp.id, Some(app), Some(who), "policy_denied", &reason).await;
        let msg = route
            .app
            .settings
            .custom_deny_message
            .as_deref()
            .unwrap_or("You signed in, but you do not have access to this application.");
        return page(StatusCode::FORBIDDEN, "Access denied", &format!("{msg} (Ray ID: {ray})"));
    }
    let id = &signed_in.identity;
    let registry_identity = json!({
        "email": id.email,
        "name": id.name,
        "groups": id.groups.iter().map(|g| {
            let name = g.name.clone().or_else(|| scim.group_names.get(&g.id.to_ascii_lowercase()).cloned());
            json!({"id": g.id, "name": name})
        }).collect::<Vec<_>>(),
        "idp": {"id": idp.id.to_string(), "type": idp.kind.as_str()},
        "oidc_fields": id.oidc_fields,
        "amr": id.amr,
        "ip": peer.ip().to_string(),
        "iat": now / 1000,
        "version": 2,
    });
    let name = id.name.clone().unwrap_or_default();
    let user = match state
        .store
        .record_sign_in(idp.id, &id.user_key.as_string(), &identity.email, &name, &registry_identity, now)
        .await
    {
        Ok(u) => u,
        Err(e) => return internal(&e.to_string()),
    };
    let org = match state.store.organization().await {
        Ok(o) => o,
        Err(e) => return internal(&e.to_string()),
    };
    let session_ms = i64::try_from(org.session_duration.get().as_millis()).unwrap_or(i64::MAX);
    let Some(nonce) = random_token() else { return internal("random generator failed") };
    let session = SessionRecord {
        nonce: nonce.clone(),
        user_id: user.id,
        kind: SessionKind::Org,
        app_id: None,
        created_at: now,
        expires_at: now.saturating_add(session_ms),
        revoked_at: None,
    };
    if let Err(e) = state.store.insert_session(&session).await {
        return internal(&e.to_string());
    }
    let ring = state.keys.load();
    let org_claims = AccessClaims {
        aud: vec![state.team.base.clone()],
        email: identity.email.clone(),
        exp: session.expires_at / 1000,
        iat: now / 1000,
        nbf: now / 1000,
        iss: state.team.base.clone(),
        kind: "org".into(),
        identity_nonce: nonce.clone(),
        sub: user.id.to_string(),
        custom: id.oidc_fields.clone(),
        country: None,
    };
    let org_jwt = match token::sign(&ring, &org_claims) {
        Ok(t) => t,
        Err(e) => return internal(&e.to_string()),
    };
    let grant = Grant {
        app: route.app.id,
        app_host: pending.app_host.clone(),
        redirect_url: pending.redirect_url.clone(),
        user: user.id,
        email: identity.email.clone(),
        nonce,
        session_expires_at: session.expires_at,
        custom: id.oidc_fields.clone(),
    };
    tracing::info!(app = %route.app.id, user = %user.id, idp = %idp.id, "signed in");
    let mut resp = issue_grant(&state, grant).await;
    let secure = if state.team.https { "; Secure" } else { "" };
    set_cookie(&mut resp, format!("CF_Session=; Path=/cdn-cgi/access/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"));
    set_cookie(
        &mut resp,
        format!("CF_Authorization={org_jwt}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}", session_ms / 1000),
    );
    resp
}

/// Stores a one-time code for the application host and redirects the browser there.
async fn issue_grant(state: &SignInState, grant: Grant) -> Response {
    let Some(code) = random_token() else { return internal("random generator failed") };
    let (app_host, redirect_url) = (grant.app_host.clone(), grant.redirect_url.clone());
    let data = match serde_json::to_string(&grant) {
        Ok(g) => g,
        Err(e) => return internal(&e.to_string()),
    };
    if let Err(e) = state.store.put_pending(&format!("code:{code}"), &data, now_millis() + CODE_TTL_MS).await {
        return internal(&e.to_string());
    }
    let scheme = if state.team.https { "https" } else { "http" };
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    redirect(&format!(
        "{scheme}://{app_host}/cdn-cgi/access/authorized?code={}&redirect_url={}",
        enc(&code),
        enc(&redirect_url)
    ))
}

/// The verified, live session token in the request's `CF_Authorization` cookie (or
/// `cf-access-token` header): on the team domain an org token, on an application host an
/// application token for an application on that host.
async fn session_claims(state: &SignInState, headers: &HeaderMap) -> Option<AccessClaims> {
    let token =
        cookie(headers, "CF_Authorization").or_else(|| headers.get("cf-access-token").and_then(|v| v.to_str().ok()))?;
    let host = host_of(headers).to_ascii_lowercase();
    let ring = state.keys.load();
    let claims = if host == state.team.host {
        token::verify(&ring, token, &state.team.base, &state.team.base).ok()?
    } else {
        let routes = state.routes.load();
        let found = routes.on_host(&host).find_map(|r| token::verify(&ring, token, &state.team.base, &r.app.aud).ok());
        found?
    };
    match state.store.live_session(&claims.identity_nonce, now_millis()).await {
        Ok(Some(_)) => Some(claims),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "session check failed; treating the request as signed out");
            None
        }
    }
}

/// `GET /cdn-cgi/access/get-identity`: the signed-in user's identity, bare JSON.
pub async fn get_identity(State(state): State<SignInState>, headers: HeaderMap) -> Response {
    let Some(claims) = session_claims(&state, &headers).await else {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"err": "no valid session"}))).into_response();
    };
    let user = match uuid::Uuid::parse_str(&claims.sub) {
        Ok(id) => state.store.get_user(id).await,
        Err(_) => Ok(None),
    };
    let user = match user {
        Ok(Some(u)) => u,
        Ok(None) => return (StatusCode::UNAUTHORIZED, axum::Json(json!({"err": "no valid session"}))).into_response(),
        Err(e) => return internal(&e.to_string()),
    };
    let account_id = state.store.account_id().await.map(|a| a.to_string()).unwrap_or_default();
    let mut identity = user.identity.clone();
    if let Some(obj) = identity.as_object_mut() {
        obj.insert("id".into(), json!(claims.identity_nonce));
        obj.insert("user_uuid".into(), json!(user.id));
        obj.insert("account_id".into(), json!(account_id));
        obj.insert("iat".into(), json!(claims.iat));
    }
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(identity)).into_response()
}

/// `GET /cdn-cgi/access/logout`: revokes the session everywhere and clears this host's cookies.
pub async fn logout(State(state): State<SignInState>, headers: HeaderMap) -> Response {
    if let Some(claims) = session_claims(&state, &headers).await
        && let Err(e) = state.store.revoke_session(&claims.identity_nonce, now_millis()).await
    {
        return internal(&e.to_string());
    }
    let mut resp = page(StatusCode::OK, "Signed out", "You have signed out. Close this window or sign in again.");
    let secure = if state.team.https { "; Secure" } else { "" };
    set_cookie(&mut resp, format!("CF_Authorization=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"));
    resp
}

/// The policy identity recorded in the user registry at the last sign-in.
fn registry_identity(user: &gatehouse_store::UserRecord) -> PolicyIdentity {
    let v = &user.identity;
    PolicyIdentity {
        email: user.email.to_ascii_lowercase(),
        idp: Some(user.idp_id),
        groups: v["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["id"].as_str().map(str::to_ascii_lowercase))
            .collect(),
        amr: v["amr"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_owned)).collect(),
        claims: v["oidc_fields"].as_object().cloned().unwrap_or_default(),
    }
}

/// Single sign-on: a live team-domain session goes straight to the application when its
/// policies admit the user; `None` means "sign in at the IdP".
async fn single_sign_on(
    state: &SignInState,
    headers: &HeaderMap,
    peer: SocketAddr,
    route: &crate::routes::AppRoute,
    app_host: &str,
    redirect_url: &str,
) -> Option<Response> {
    let claims = session_claims(state, headers).await?;
    let user = state.store.get_user(uuid::Uuid::parse_str(&claims.sub).ok()?).await.ok()??;
    let allowed = &route.app.settings.allowed_idps;
    if !allowed.is_empty() && !allowed.contains(&user.idp_id) {
        return None;
    }
    let identity = registry_identity(&user);
    let facts = RequestFacts { identity: Some(&identity), ip: peer.ip(), country: None, service_token: None };
    if route.policies.evaluate(&facts).decision != Decision::Allow {
        return None;
    }
    let grant = Grant {
        app: route.app.id,
        app_host: app_host.to_owned(),
        redirect_url: redirect_url.to_owned(),
        user: user.id,
        email: user.email.clone(),
        nonce: claims.identity_nonce,
        session_expires_at: claims.exp.saturating_mul(1000),
        custom: claims.custom,
    };
    Some(issue_grant(state, grant).await)
}

/// Query of the authorized endpoint.
#[derive(Debug, Deserialize)]
pub struct AuthorizedQuery {
    code: Option<String>,
}

/// `GET /cdn-cgi/access/authorized` on the application's host: trades the one-time code for
/// the application cookie.
pub async fn authorized(
    State(state): State<SignInState>,
    headers: HeaderMap,
    Query(q): Query<AuthorizedQuery>,
) -> Response {
    let invalid = || {
        page(
            StatusCode::BAD_REQUEST,
            "Sign-in link expired",
            "This link was already used or has expired. Open the application again to sign in.",
        )
    };
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 128) else { return invalid() };
    let now = now_millis();
    let grant: Grant = match state.store.take_pending(&format!("code:{code}"), now).await {
        Ok(Some(d)) => match serde_json::from_str(&d) {
            Ok(g) => g,
            Err(e) => return internal(&e.to_string()),
        },
        Ok(None) => return invalid(),
        Err(e) => return internal(&e.to_string()),
    };
    // The code is only good on the host it was issued for.
    if !host_of(&headers).eq_ignore_ascii_case(&grant.app_host) {
        return invalid();
    }
    let routes = state.routes.load();
    let Some(route) = routes.by_id(grant.app) else { return invalid() };
    let s = &route.app.settings;
    let app_ms = i64::try_from(s.session_duration.get().as_millis()).unwrap_or(i64::MAX);
    let exp = now.saturating_add(app_ms).min(grant.session_expires_at);
    let claims = AccessClaims {
        aud: vec![route.app.aud.clone()],
        email: grant.email,
        exp: exp / 1000,
        iat: now / 1000,
        nbf: now / 1000,
        iss: state.team.base.clone(),
        kind: "app".into(),
        identity_nonce: grant.nonce,
        sub: grant.user.to_string(),
        custom: grant.custom,
        country: None,
    };
    let jwt = match token::sign(&state.keys.load(), &claims) {
        Ok(t) => t,
        Err(e) => return internal(&e.to_string()),
    };
    let mut attrs = format!("CF_Authorization={jwt}; Path=/; Max-Age={}", (exp - now).max(0) / 1000);
    if s.http_only_cookie_attribute {
        attrs.push_str("; HttpOnly");
    }
    match s.same_site_cookie_attribute {
        Some(gatehouse_core::app::SameSite::None) => attrs.push_str("; SameSite=None"),
        Some(gatehouse_core::app::SameSite::Strict) => attrs.push_str("; SameSite=Strict"),
        _ => attrs.push_str("; SameSite=Lax"),
    }
    if state.team.https {
        attrs.push_str("; Secure");
    }
    let mut resp = redirect(&confine_redirect(Some(&grant.redirect_url)));
    set_cookie(&mut resp, attrs);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_the_host() {
        assert_eq!(confine_redirect(Some("/wiki/page?x=1")), "/wiki/page?x=1");
        for bad in
            ["//evil.example", "/\\evil.example", "https://evil.example/", "evil", "", "/a\r\nSet-Cookie: x=1", "/a\\b"]
        {
            assert_eq!(confine_redirect(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(confine_redirect(None), "/");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; CF_Session=abc; b=2"));
        assert_eq!(cookie(&h, "CF_Session"), Some("abc"));
        assert_eq!(cookie(&h, "CF"), None);
    }
}
