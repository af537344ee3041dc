//! The SCIM endpoint of each identity provider, `/populations/<idp_id>/scim/v2`, served on
//! the team domain: routing, bearer authentication, failed-authentication rate limiting, the
//! wire format (`application/scim+json`, RFC 7644 errors) and the provisioning log.
//!
//! Request lifecycle:
//!
//! ```text
//! team domain? ─ no ─► 404
//! IdP exists, scim_config.enabled, bearer matches the stored hash (constant time)?
//!   ─ no ─► 401, or 429 once the peer is over the failed-auth limit (a right secret is
//!           never limited, so failures from a shared address cannot lock provisioning out)
//! handler (users / groups / discovery) ─► store ─► effects (sessions, identities)
//! provisioning log entry (every request), response
//! ```
//!
//! The bearer secret is never logged; request bodies are logged only in the provisioning log
//! the administrator reads, as Cloudflare's `request_body` does.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use gatehouse_core::IdpId;
use gatehouse_core::idp::IdentityProvider;
use gatehouse_store::{IdpStore, ScimLogRecord, ScimStore, Store, StoreError};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::{ScimError, ScimType};
use crate::{discovery, groups, search, users};

/// The media type of every SCIM body.
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";
/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Failed authentications a peer may make per [`FAIL_WINDOW`] before it gets 429s.
pub const MAX_FAILED_AUTH: u32 = 20;
/// The failed-authentication window.
pub const FAIL_WINDOW: Duration = Duration::from_secs(60);
/// Peers tracked by the limiter at most; beyond that the oldest windows are dropped.
const LIMITER_CAPACITY: usize = 10_000;

// === impl ScimState ===

/// What the SCIM handlers need; cheap to clone.
#[derive(Debug, Clone)]
pub struct ScimState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    /// `scheme://host[:port]` of the team domain, for `meta.location`.
    base: String,
    /// Host name of the team domain, compared with `Host` (without the port: a load balancer
    /// or TLS terminator in front may forward with another port than the public URL's).
    host: String,
    limiter: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    log: mpsc::UnboundedSender<ScimLogRecord>,
}

impl ScimState {
    /// The SCIM service over `store`, answering on the team domain of `public_url`. Starts the
    /// provisioning-log writer on the current Tokio runtime.
    pub fn new(store: Store, public_url: &url::Url) -> Self {
        let base = public_url.origin().ascii_serialization();
        let host = public_url.host_str().map_or_else(String::new, |h| hostname(h).to_owned());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_log(store.clone(), rx));
        Self { inner: Arc::new(Inner { store, base, host, limiter: Mutex::default(), log: tx }) }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The SCIM base URL of an IdP.
    pub(crate) fn base_url(&self, idp: IdpId) -> String {
        format!("{}/populations/{idp}/scim/v2", self.inner.base)
    }

    pub(crate) fn log(&self, entry: ScimLogRecord) {
        // The writer only stops with the runtime.
        let _ = self.inner.log.send(entry);
    }

    /// Whether `peer` is over the failed-authentication limit (counting the failure just made).
    fn limited(&self, peer: Option<IpAddr>, now: Instant) -> bool {
        let Some(peer) = peer else { return false };
        let map = self.inner.limiter.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&peer).is_some_and(|(start, n)| now.duration_since(*start) < FAIL_WINDOW && *n > MAX_FAILED_AUTH)
    }

    fn record_failure(&self, peer: Option<IpAddr>, now: Instant) {
        let Some(peer) = peer else { return };
        let mut map = self.inner.limiter.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= LIMITER_CAPACITY {
            map.retain(|_, (start, _)| now.duration_since(*start) < FAIL_WINDOW);
        }
        let slot = map.entry(peer).or_insert((now, 0));
        if now.duration_since(slot.0) >= FAIL_WINDOW {
            *slot = (now, 0);
        }
        slot.1 = slot.1.saturating_add(1);
    }
}

/// How long the log writer gathers entries before writing them in one transaction.
const LOG_BATCH_WINDOW: Duration = Duration::from_millis(200);
/// Most entries written in one transaction.
const LOG_BATCH_MAX: usize = 1024;

/// Writes provisioning-log entries in batches: the first entry opens a short window in which
/// further entries join it, so a provisioning cycle costs one log transaction per window
/// instead of one per request (each SQLite commit is an fsync).
async fn write_log(store: Store, mut rx: mpsc::UnboundedReceiver<ScimLogRecord>) {
    let mut batch = Vec::with_capacity(LOG_BATCH_MAX);
    while rx.recv_many(&mut batch, LOG_BATCH_MAX).await > 0 {
        let deadline = tokio::time::Instant::now() + LOG_BATCH_WINDOW;
        while batch.len() < LOG_BATCH_MAX {
            let room = LOG_BATCH_MAX - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if let Err(e) = store.scim_log_append(&batch).await {
            tracing::error!(error = %e, entries = batch.len(), "could not write the SCIM provisioning log");
        }
        batch.clear();
    }
}

// === the router ===

/// The SCIM routes, `/populations/{idp_id}/scim/v2/...`. Serve with connect info
/// (`SocketAddr`) so failed authentications are limited per peer address.
pub fn router(state: ScimState) -> Router {
    const BASE: &str = "/populations/{idp}/scim/v2";
    let r = |p: &str| format!("{BASE}{p}");
    Router::new()
        .route(&r("/Users"), get(users::list).post(users::create))
        .route(&r("/.search"), post(search::search_all))
        .route(&r("/Users/.search"), post(users::search))
        .route(&r("/Users/{id}"), get(users::get).put(users::replace).patch(users::patch).delete(users::delete))
        .route(&r("/Groups"), get(groups::list).post(groups::create))
        .route(&r("/Groups/.search"), post(groups::search))
        .route(&r("/Groups/{id}"), get(groups::get).put(groups::replace).patch(groups::patch).delete(groups::delete))
        .route(&r("/Schemas"), get(discovery::schemas))
        .route(&r("/Schemas/{id}"), get(discovery::schema_by_id))
        .route(&r("/ResourceTypes"), get(discovery::resource_types))
        .route(&r("/ResourceTypes/{id}"), get(discovery::resource_type))
        .route(&r("/ServiceProviderConfig"), get(discovery::service_provider_config))
        .route(&r("/{*rest}"), any(unknown_endpoint))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn unknown_endpoint(_auth: Authed) -> Response {
    ScimError { status: 404, scim_type: None, detail: "no such SCIM endpoint".into() }.into_response()
}

// === responses ===

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        scim_response(status, &self.to_json())
    }
}

/// A SCIM JSON response.
pub(crate) fn scim_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE));
    resp
}

/// Maps a store failure to a SCIM error: conflicts are `uniqueness`, refused queries and
/// references are `invalidValue`/`invalidFilter`, anything else a logged 500/503.
pub(crate) fn store_error(e: StoreError) -> ScimError {
    match e {
        StoreError::Conflict(what) => ScimError { status: 409, scim_type: Some(ScimType::Uniqueness), detail: what },
        StoreError::Invalid(what) => ScimError::bad_request(ScimType::InvalidValue, what),
        e if e.is_unavailable() => {
            tracing::error!(error = %e, "SCIM request failed: store unavailable");
            ScimError { status: 503, scim_type: None, detail: "the store is unavailable; try again".into() }
        }
        e => {
            tracing::error!(error = %e, "SCIM request failed");
            ScimError { status: 500, scim_type: None, detail: "internal error".into() }
        }
    }
}

// === authentication ===

/// An authenticated SCIM request: the IdP whose endpoint was called, with a valid secret.
#[derive(Debug)]
pub(crate) struct Authed {
    pub(crate) idp: IdentityProvider,
}

fn unauthorized(detail: &str) -> ScimError {
    ScimError { status: 401, scim_type: None, detail: detail.into() }
}

fn host_of(headers: &HeaderMap) -> &str {
    hostname(headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default())
}

/// The host name of a `Host` value: without the port, IPv6 brackets kept.
fn hostname(host: &str) -> &str {
    match host.rfind(']') {
        Some(end) => &host[..=end],
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    }
}

impl FromRequestParts<ScimState> for Authed {
    type Rejection = Response;

    #[tracing::instrument(skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &ScimState) -> Result<Self, Response> {
        if !host_of(&parts.headers).eq_ignore_ascii_case(&state.inner.host) {
            return Err(ScimError { status: 404, scim_type: None, detail: "SCIM is served on the team domain".into() }
                .into_response());
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| limiter_key(c.0.ip()));
        let now = Instant::now();
        let idp_id = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|Path(p)| p.get("idp").and_then(|s| s.parse::<IdpId>().ok()))
            .or_else(|| {
                // The catch-all route has no `{idp}`: take it from the path.
                parts.uri.path().strip_prefix("/populations/")?.split('/').next()?.parse().ok()
            });
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_owned());
        let idp = match idp_id {
            Some(id) => state.store().get_idp(id).await.map_err(|e| store_error(e).into_response())?,
            None => None,
        };
        let ok = match (&idp, &presented) {
            (Some(idp), Some(token)) if idp.scim.enabled => idp
                .scim_secret_hash
                .as_deref()
                .is_some_and(|hash| gatehouse_core::secret::verify_bearer_secret(token, hash)),
            _ => false,
        };
        match idp {
            Some(idp) if ok => Ok(Self { idp }),
            _ => {
                // Only failures are limited: the right secret always gets through, so nobody
                // can lock a provisioning service out by failing from the same address.
                state.record_failure(peer, now);
                tracing::warn!(peer = ?peer, idp = ?idp_id, "SCIM request with a missing or wrong bearer secret");
                if state.limited(peer, now) {
                    let mut resp = ScimError {
                        status: 429,
                        scim_type: None,
                        detail: "too many failed authentications from this address; try again later".into(),
                    }
                    .into_response();
                    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
                    return Err(resp);
                }
                Err(unauthorized(
                    "authentication failed: send the identity provider's SCIM secret as a bearer token to an \
                     identity provider with SCIM enabled",
                )
                .into_response())
            }
        }
    }
}

/// The limiter's key for a peer: IPv6 peers by their /64, which one host controls whole.
fn limiter_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_names_drop_the_port() {
        assert_eq!(super::hostname("auth.example.com:8443"), "auth.example.com");
        assert_eq!(super::hostname("auth.example.com"), "auth.example.com");
        assert_eq!(super::hostname("[::1]:8080"), "[::1]");
        assert_eq!(super::hostname("[::1]"), "[::1]");
    }

    #[test]
    fn ipv6_peers_are_limited_by_their_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap_or(std::net::IpAddr::from([0u8; 4]));
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap_or(std::net::IpAddr::from([0u8; 4]));
        let c: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap_or(std::net::IpAddr::from([0u8; 4]));
        assert_eq!(super::limiter_key(a), super::limiter_key(b));
        assert_ne!(super::limiter_key(a), super::limiter_key(c));
        let v4: std::net::IpAddr = "192.0.2.7".parse().unwrap_or(a);
        assert_eq!(super::limiter_key(v4), v4);
    }
}

// === request bodies and queries ===

/// The `{id}` of a resource path. Taken by name: the public listener routes
/// `/populations/{*rest}` here, so other path parameters are present too.
#[derive(Debug)]
pub(crate) struct ResourceId(pub(crate) String);

impl FromRequestParts<ScimState> for ResourceId {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &ScimState) -> Result<Self, ScimError> {
        Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|Path(mut p)| p.remove("id"))
            .map(Self)
            .ok_or_else(|| ScimError { status: 404, scim_type: None, detail: "no such resource".into() })
    }
}

/// A JSON request body, whatever its content type; anything else is `invalidSyntax`.
#[derive(Debug)]
pub(crate) struct ScimJson(pub(crate) Value, pub(crate) String);

impl FromRequest<ScimState> for ScimJson {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &ScimState) -> Result<Self, ScimError> {
        let bytes = bytes::Bytes::from_request(req, state).await.map_err(|e| ScimError {
            status: e.status().as_u16(),
            scim_type: Some(ScimType::InvalidSyntax),
            detail: e.body_text(),
        })?;
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| ScimError::bad_request(ScimType::InvalidSyntax, "the request body is not UTF-8"))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            ScimError::bad_request(ScimType::InvalidSyntax, format!("the request body is not valid JSON: {e}"))
        })?;
        if !value.is_object() {
            return Err(ScimError::bad_request(ScimType::InvalidSyntax, "the request body must be a JSON object"));
        }
        // PostgreSQL cannot store NUL in text, and no SCIM attribute needs one.
        if has_nul(&value) {
            return Err(ScimError::bad_request(ScimType::InvalidValue, "strings must not contain the NUL character"));
        }
        Ok(Self(value, text))
    }
}

/// Whether any string (or key) in `v` contains a NUL character.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// A log entry under construction for one request.
#[derive(Debug)]
pub(crate) struct LogEntry {
    pub(crate) method: &'static str,
    pub(crate) resource_type: &'static str,
    pub(crate) cf_resource_id: Option<String>,
    pub(crate) idp_resource_id: Option<String>,
    pub(crate) user_email: Option<String>,
    pub(crate) group_name: Option<String>,
    pub(crate) body: Option<String>,
}

impl LogEntry {
    pub(crate) fn new(method: &'static str, resource_type: &'static str) -> Self {
        Self {
            method,
            resource_type,
            cf_resource_id: None,
            idp_resource_id: None,
            user_email: None,
            group_name: None,
            body: None,
        }
    }

    /// Records the outcome and returns the response.
    pub(crate) fn finish(self, state: &ScimState, idp: IdpId, result: Result<Response, ScimError>) -> Response {
        let (status, error, resp) = match result {
            Ok(r) => ("SUCCESS", None, r),
            Err(e) => ("FAILURE", Some(e.detail.clone()), e.into_response()),
        };
        state.log(ScimLogRecord {
            id: uuid::Uuid::new_v4().to_string(),
            idp_id: idp,
            logged_at: gatehouse_core::now_millis(),
            request_method: self.method.to_owned(),
            resource_type: self.resource_type.to_owned(),
            cf_resource_id: self.cf_resource_id,
            idp_resource_id: self.idp_resource_id,
            resource_user_email: self.user_email,
            resource_group_name: self.group_name,
            status: status.to_owned(),
            error_description: error,
            request_body: self.body,
        });
        resp
    }
}
