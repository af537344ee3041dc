//! The request path: resolve the application, authenticate, decide, forward.
//!
//! Nothing here waits on the database in the steady state. Applications and compiled
//! policies, ingress rules, signing keys, revocations and service tokens are immutable
//! snapshots swapped on change; a token's signature is verified once and the result cached;
//! a user's policy identity is read from the user registry once and cached until it changes.
//! Decisions go to the access log through a channel that never blocks.

use std::collections::{HashMap, HashSet};

type FastHash = foldhash::fast::RandomState;

/// Hashes a token by its last [`TokenTailHash::TAIL`] bytes (part of its signature) and its
/// length, with foldhash seeded per process: a cache lookup on every request reads a few
/// dozen bytes instead of the whole ~800. Keys are still compared whole. Only verified
/// tokens are ever inserted, so nobody can fill the cache with keys that collide.
#[derive(Debug, Clone, Default)]
struct TokenTailHash(FastHash);

impl TokenTailHash {
    const TAIL: usize = 32;
}

impl std::hash::BuildHasher for TokenTailHash {
    type Hasher = TokenTailHasher;

    fn build_hasher(&self) -> TokenTailHasher {
        TokenTailHasher(self.0.build_hasher())
    }
}

/// See [`TokenTailHash`].
struct TokenTailHasher(foldhash::fast::FoldHasher<'static>);

impl std::hash::Hasher for TokenTailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(&bytes[bytes.len().saturating_sub(TokenTailHash::TAIL)..]);
    }

    fn write_usize(&mut self, n: usize) {
        self.0.write_usize(n);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use gatehouse_core::app::Application;
use gatehouse_core::policy::eval::{Decision, Identity, RequestFacts};
use gatehouse_core::{AppId, UnixMillis, now_millis};
use gatehouse_store::{
    AccessLogRecord, DataPlaneStore as _, ServiceTokenStore as _, SessionStore as _, Store, UserStore as _,
};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, StatusCode};
use uuid::Uuid;

use crate::accesslog::AccessLogger;
use crate::forward::{self, Forwarded, Origins};
use crate::ingress::{IngressHandle, Service};
use crate::keys::KeyRingHandle;
use crate::routes::{AppRoute, RoutesHandle};
use crate::signin::TeamDomain;
use crate::token::{self, AccessClaims, LEEWAY_SECS};

/// Verified tokens kept at most; the cache is emptied when full.
const TOKEN_CACHE_MAX: usize = 100_000;
/// Identities kept at most.
const IDENTITY_CACHE_MAX: usize = 100_000;
/// A cached service-token JWT is re-signed when it has less than this left.
const SERVICE_JWT_MARGIN_S: i64 = 60;

/// Settings of the data plane.
#[derive(Debug, Clone)]
pub struct DataPlaneOptions {
    /// How long to wait for an origin's response headers before answering 504.
    pub origin_response_timeout: Duration,
    /// Log every request, not only decisions that are new (first use of a session on an
    /// application, refusals, bypasses, service tokens).
    pub log_every_request: bool,
}

impl Default for DataPlaneOptions {
    fn default() -> Self {
        Self { origin_response_timeout: Duration::from_secs(100), log_every_request: false }
    }
}

/// What the data plane needs from the rest of the gateway.
#[derive(Debug, Clone)]
pub struct DataPlaneParts {
    /// The store (identities on a cache miss, revocations, service tokens, logs).
    pub store: Store,
    /// Applications and policies.
    pub routes: RoutesHandle,
    /// Origins.
    pub ingress: IngressHandle,
    /// Signing keys.
    pub keys: KeyRingHandle,
    /// The team domain (token issuer, login URL).
    pub team: TeamDomain,
    /// Settings.
    pub options: DataPlaneOptions,
}

#[derive(Debug, Default)]
struct Revoked {
    nonces: HashSet<String, FastHash>,
    apps: HashMap<AppId, UnixMillis, FastHash>,
}

#[derive(Debug)]
struct ServiceTokenEntry {
    id: Uuid,
    client_id: String,
    secret_hash: String,
    previous: Option<(String, UnixMillis)>,
    expires_at: UnixMillis,
}

#[derive(Debug)]
struct CachedToken {
    aud: Box<str>,
    user: Uuid,
    nonce: Box<str>,
    /// The token as the origin gets it (`Cf-Access-Jwt-Assertion`), built once.
    assertion: HeaderValue,
    /// `Cf-Access-Authenticated-User-Email`, built once.
    email_header: Option<HeaderValue>,
    exp_s: i64,
    iat_s: i64,
    /// [`crate::keys::KeyRing::id`] of the ring it was verified with.
    ring: u64,
}

impl CachedToken {
    /// A copy that shares no allocation (and so no reference count) with this one.
    fn private_copy(&self) -> Self {
        let fresh = |v: &HeaderValue| HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone());
        Self {
            aud: self.aud.clone(),
            user: self.user,
            nonce: self.nonce.clone(),
            assertion: fresh(&self.assertion),
            email_header: self.email_header.as_ref().map(fresh),
            exp_s: self.exp_s,
            iat_s: self.iat_s,
            ring: self.ring,
        }
    }
}

/// One thread's copies of a data plane's verified tokens and identities. Every request reads
/// them; kept per thread, they cost no lock and no reference count another thread also
/// touches (with one shared cache, each request moved those cache lines between cores).
struct LocalCaches {
    owner: u64,
    /// [`Inner::identity_generation`] when `identities` was last emptied.
    generation: u64,
    tokens: HashMap<Box<[u8]>, Arc<CachedToken>, TokenTailHash>,
    identities: HashMap<Uuid, Arc<Identity>, FastHash>,
}

thread_local! {
    /// Per data plane (usually one), searched without hashing.
    static LOCAL: std::cell::RefCell<Vec<LocalCaches>> = const { std::cell::RefCell::new(Vec::new()) };
}

static NEXT_DATA_PLANE: AtomicU64 = AtomicU64::new(1);

/// Inserts into a cache of at most `max` entries, emptied when full (every entry can be
/// rebuilt; a full cache is rare and the next requests refill it).
fn insert_bounded<K, V, S>(cache: &mut HashMap<K, V, S>, key: K, value: V, max: usize)
where
    K: std::hash::Hash + Eq,
    S: std::hash::BuildHasher,
{
    if cache.len() >= max {
        cache.clear();
    }
    cache.insert(key, value);
}

/// A signed service-token JWT (as a header value) and its expiry (Unix seconds).
type SignedServiceJwt = (HeaderValue, i64);

/// The client a connection comes from, its address formatted once per connection for the
/// headers the origin gets.
#[derive(Debug, Clone)]
pub struct Peer {
    addr: SocketAddr,
    ip_header: HeaderValue,
}

impl Peer {
    /// The peer of a new connection.
    pub fn new(addr: SocketAddr) -> Self {
        let ip_header = HeaderValue::from_str(&addr.ip().to_string()).unwrap_or(HeaderValue::from_static(""));
        Self { addr, ip_header }
    }

    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

const CLIENT_ID: HeaderName = HeaderName::from_static("cf-access-client-id");
const CLIENT_SECRET: HeaderName = HeaderName::from_static("cf-access-client-secret");
const ACCESS_TOKEN: HeaderName = HeaderName::from_static("cf-access-token");
const REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");

/// The histogram of the time from a request's arrival to its response's head, in seconds.
pub const LATENCY_METRIC: &str = "gatehouse_proxy_request_duration_seconds";

#[derive(Debug)]
struct Metrics {
    allow: metrics::Counter,
    bypass: metrics::Counter,
    service: metrics::Counter,
    deny: metrics::Counter,
    login: metrics::Counter,
    not_found: metrics::Counter,
    origin_errors: metrics::Counter,
    latency: metrics::Histogram,
}

impl Metrics {
    fn new() -> Self {
        let c = |d: &'static str| metrics::counter!("gatehouse_proxy_requests_total", "decision" => d);
        Self {
            allow: c("allow"),
            bypass: c("bypass"),
            service: c("non_identity"),
            deny: c("deny"),
            login: c("login_required"),
            not_found: c("not_found"),
            origin_errors: metrics::counter!("gatehouse_proxy_origin_errors_total"),
            latency: metrics::histogram!(LATENCY_METRIC),
        }
    }
}

#[derive(Debug)]
struct Inner {
    store: Store,
    routes: RoutesHandle,
    ingress: IngressHandle,
    keys: KeyRingHandle,
    team: TeamDomain,
    options: DataPlaneOptions,
    origins: Origins,
    logger: AccessLogger,
    revoked: ArcSwap<Revoked>,
    service_tokens: ArcSwap<HashMap<String, ServiceTokenEntry>>,
    /// Keyed by the whole token, hashed by its end (see [`TokenTailHash`]). Behind each
    /// thread's own copy ([`LOCAL`]); this one decides when a token is new.
    tokens: RwLock<HashMap<Box<[u8]>, Arc<CachedToken>, TokenTailHash>>,
    identities: RwLock<HashMap<Uuid, Arc<Identity>, FastHash>>,
    /// Moves on whenever the identities change: the threads' copies are then dropped.
    identity_generation: AtomicU64,
    /// Tells this data plane's per-thread caches from another's.
    id: u64,
    service_jwts: RwLock<HashMap<(Uuid, AppId), SignedServiceJwt>>,
    metrics: Metrics,
    ray_prefix: u32,
    ray_counter: AtomicU64,
    /// The runtime the store's connections belong to; store calls made while serving run there.
    control: tokio::runtime::Handle,
}

/// The data plane; cheap to clone.
#[derive(Debug, Clone)]
pub struct DataPlane(Arc<Inner>);

/// How the request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    None,
    Session,
    ServiceToken,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Session => "sso",
            Self::ServiceToken => "service_token",
        }
    }
}

/// What is known about the caller after authentication.
#[derive(Debug, Default)]
struct Caller {
    token: Option<(Arc<CachedToken>, bool)>,
    identity: Option<Arc<Identity>>,
    service: Option<(Uuid, String)>,
    service_rejected: bool,
    token_rejected: Option<&'static str>,
}

impl DataPlane {
    /// Loads revocations and service tokens and starts keeping them current. Returns the data
    /// plane and its background tasks.
    pub async fn start(
        parts: DataPlaneParts,
    ) -> Result<(Self, Vec<tokio::task::JoinHandle<()>>), gatehouse_store::StoreError> {
        let (logger, log_task) = AccessLogger::spawn(parts.store.clone());
        let mut prefix = [0u8; 4];
        let _ = gatehouse_core::secret::random_fill(&mut prefix);
        let dp = Self(Arc::new(Inner {
            origins: Origins::new(parts.options.origin_response_timeout),
            store: parts.store,
            routes: parts.routes,
            ingress: parts.ingress,
            keys: parts.keys,
            team: parts.team,
            options: parts.options,
            logger,
            revoked: ArcSwap::default(),
            service_tokens: ArcSwap::default(),
            tokens: RwLock::default(),
            identities: RwLock::default(),
            identity_generation: AtomicU64::new(0),
            id: NEXT_DATA_PLANE.fetch_add(1, Ordering::Relaxed),
            service_jwts: RwLock::default(),
            metrics: Metrics::new(),
            ray_prefix: u32::from_be_bytes(prefix),
            ray_counter: AtomicU64::new(0),
            control: tokio::runtime::Handle::current(),
        }));
        dp.reload_revocations().await?;
        dp.reload_service_tokens().await?;
        let bus = dp.0.store.clone();
        let mut tasks = vec![log_task];
        let d = dp.clone();
        tasks.push(crate::reload::spawn_reloader(
            &bus,
            |c| c == gatehouse_store::Change::Revocations,
            move || {
                let d = d.clone();
                async move {
                    if let Err(e) = d.reload_revocations().await {
                        tracing::error!(error = %e, "could not reload revocations; keeping the current ones");
                    }
                }
            },
        ));
        let d = dp.clone();
        tasks.push(crate::reload::spawn_reloader(
            &bus,
            |c| c == gatehouse_store::Change::ServiceTokens,
            move || {
                let d = d.clone();
                async move {
                    if let Err(e) = d.reload_service_tokens().await {
                        tracing::error!(error = %e, "could not reload service tokens; keeping the current ones");
                    }
                }
            },
        ));
        let d = dp.clone();
        tasks.push(crate::reload::spawn_reloader(
            &bus,
            |c| c == gatehouse_store::Change::Identities,
            move || {
                let d = d.clone();
                async move {
                    d.0.identities.write().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
                    d.0.identity_generation.fetch_add(1, Ordering::AcqRel);
                }
            },
        ));
        Ok((dp, tasks))
    }

    async fn reload_revocations(&self) -> Result<(), gatehouse_store::StoreError> {
        let now = now_millis();
        let nonces = self.0.store.revoked_nonces(now).await?.into_iter().collect();
        let apps = self.0.store.app_token_revocations().await?.into_iter().collect();
        self.0.revoked.store(Arc::new(Revoked { nonces, apps }));
        Ok(())
    }

    async fn reload_service_tokens(&self) -> Result<(), gatehouse_store::StoreError> {
        let all = self.0.store.all_service_tokens().await?;
        let map = all
            .into_iter()
            .map(|t| {
                let previous = t.previous_secret_hash.zip(t.previous_expires_at);
                (
                    t.client_id.clone(),
                    ServiceTokenEntry {
                        id: t.id,
                        client_id: t.client_id,
                        secret_hash: t.secret_hash,
                        previous,
                        expires_at: t.expires_at,
                    },
                )
            })
            .collect();
        self.0.service_tokens.store(Arc::new(map));
        self.0.service_jwts.write().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        Ok(())
    }

    fn ray_id(&self) -> String {
        let n = self.0.ray_counter.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{:08x}", self.0.ray_prefix, n & 0xffff_ffff)
    }

    /// Handles one request on the public listener that no `/cdn-cgi/access` route took.
    pub async fn handle(&self, peer: &Peer, mut req: Request<Body>) -> Response {
        let start = Instant::now();
        let host_header = host_of(&req);
        let host = host_header.to_str().unwrap_or_default();
        // Match and forward one canonical path, so the path a policy was checked for is the
        // path the origin serves (see `crate::path`).
        match crate::path::canonical(req.uri().path()) {
            Ok(std::borrow::Cow::Borrowed(_)) => {}
            Ok(std::borrow::Cow::Owned(p)) => {
                let pq = match req.uri().query() {
                    Some(q) => format!("{p}?{q}"),
                    None => p,
                };
                let mut parts = req.uri().clone().into_parts();
                parts.path_and_query = pq.parse().ok();
                match http::Uri::from_parts(parts) {
                    Ok(uri) => *req.uri_mut() = uri,
                    Err(_) => return bad_path(crate::path::PathError::BadEncoding),
                }
            }
            Err(e) => return bad_path(e),
        }
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        if path.starts_with("/cdn-cgi/") {
            self.0.metrics.not_found.increment(1);
            return not_found();
        }
        let routes = self.0.routes.load();
        let Some(route) = routes.resolve(host, path) else {
            self.0.metrics.not_found.increment(1);
            return not_found();
        };
        let now = now_millis();
        let caller = self.authenticate(&parts, route, now).await;
        let facts = RequestFacts {
            identity: caller.identity.as_deref(),
            ip: peer.addr.ip(),
            country: None,
            service_token: caller.service.as_ref().map(|s| s.0),
        };
        let outcome = route.policies.evaluate(&facts);
        let via = if caller.service.is_some() && outcome.decision == Decision::ServiceAuth {
            Via::ServiceToken
        } else if caller.identity.is_some() {
            Via::Session
        } else {
            Via::None
        };
        let first_sight = caller.token.as_ref().is_some_and(|t| t.1);
        let routine = outcome.decision == Decision::Allow && !first_sight;
        // What the access log names, taken before the request goes on (most requests are
        // routine and not logged).
        let logged = (self.0.options.log_every_request || !routine)
            .then(|| (format!("{host}{path}"), format!("{} {path}", parts.method)));
        let (resp, reason) = match outcome.decision {
            Decision::Allow | Decision::Bypass | Decision::ServiceAuth => {
                let (m, reason) = match outcome.decision {
                    Decision::Allow => (&self.0.metrics.allow, "allowed by policy"),
                    Decision::Bypass => (&self.0.metrics.bypass, "bypass policy"),
                    _ => (&self.0.metrics.service, "service auth policy"),
                };
                m.increment(1);
                let req = Request::from_parts(parts, body);
                let resp = self.forward(req, peer, (host, &host_header), route, &caller, outcome.decision, now).await;
                (resp, reason)
            }
            Decision::Deny => {
                self.0.metrics.deny.increment(1);
                let reason = if caller.service_rejected && caller.identity.is_none() {
                    "invalid service token"
                } else if outcome.policy.is_some() {
                    "denied by policy"
                } else {
                    "no policy allows"
                };
                (self.denied(route, caller.identity.is_some() || caller.service.is_some()), reason)
            }
            Decision::NeedLogin => {
                self.0.metrics.login.increment(1);
                let reason = caller.token_rejected.unwrap_or("no session");
                (self.need_login(&parts, host, route, &caller), reason)
            }
        };
        let status = resp.status();
        self.0.metrics.latency.record(start.elapsed().as_secs_f64());
        if let Some((app_domain, request)) = logged {
            let user_email = match (&caller.identity, &caller.service) {
                (Some(i), _) => i.email.clone(),
                (None, Some((_, client_id))) => client_id.clone(),
                _ => String::new(),
            };
            self.0.logger.log(AccessLogRecord {
                ray_id: self.ray_id(),
                created_at: now,
                app_id: Some(route.app.id),
                app_domain,
                user_email,
                user_id: caller.token.as_ref().map(|t| t.0.user),
                ip_address: peer.addr.ip().to_string(),
                action: if first_sight { "login".into() } else { "request".into() },
                allowed: matches!(outcome.decision, Decision::Allow | Decision::Bypass | Decision::ServiceAuth)
                    && !status.is_server_error(),
                decision: decision_name(outcome.decision).into(),
                policy_id: outcome.policy.map(str::to_owned),
                reason: if status.is_server_error() {
                    format!("{reason}; origin answered {status}")
                } else {
                    reason.into()
                },
                connection: via.as_str().into(),
                request,
                status: status.as_u16(),
                latency_us: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
            });
        }
        resp
    }

    async fn authenticate(&self, req: &http::request::Parts, route: &AppRoute, now: UnixMillis) -> Caller {
        let mut caller = Caller::default();
        let headers = &req.headers;
        if let Some(id) = header_str(headers, &CLIENT_ID) {
            let secret = header_str(headers, &CLIENT_SECRET).unwrap_or_default();
            match self.service_token(id, secret, now) {
                Some(t) => caller.service = Some(t),
                None => caller.service_rejected = true,
            }
        }
        let token = crate::cookies::get_bytes(headers, "CF_Authorization")
            .or_else(|| headers.get(&ACCESS_TOKEN).map(|v| v.as_bytes().trim_ascii()).filter(|v| !v.is_empty()));
        if let Some(raw) = token {
            match self.verify(raw, &route.app, now) {
                Ok((entry, first)) => {
                    caller.identity = self.identity(entry.user, first).await;
                    if caller.identity.is_some() {
                        caller.token = Some((entry, first));
                    } else {
                        caller.token_rejected = Some("user no longer exists");
                    }
                }
                Err(why) => caller.token_rejected = Some(why),
            }
        }
        caller
    }

    fn service_token(&self, client_id: &str, secret: &str, now: UnixMillis) -> Option<(Uuid, String)> {
        let tokens = self.0.service_tokens.load();
        let t = tokens.get(client_id)?;
        if t.expires_at <= now {
            return None;
        }
        let current = gatehouse_core::secret::verify_bearer_secret(secret, &t.secret_hash);
        let previous = t
            .previous
            .as_ref()
            .is_some_and(|(h, until)| *until > now && gatehouse_core::secret::verify_bearer_secret(secret, h));
        (current || previous).then(|| (t.id, t.client_id.clone()))
    }

    /// Verifies an application token for `app`, from the cache when possible; `true` when the
    /// token was seen for the first time.
    fn verify(&self, raw: &[u8], app: &Application, now: UnixMillis) -> Result<(Arc<CachedToken>, bool), &'static str> {
        let ring = self.0.keys.peek();
        let ring_id = ring.id();
        let leeway_ms = i64::try_from(LEEWAY_SECS).unwrap_or(0) * 1000;
        let cached = self.with_local(|l| l.tokens.get(raw).cloned()).or_else(|| {
            let shared = self.0.tokens.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(raw).cloned()?;
            // This thread's own copy from now on: nothing in it is shared with another thread.
            Some(self.remember_token(raw, &shared))
        });
        let (entry, first) = match cached {
            Some(e) if *e.aud == *app.aud && e.ring == ring_id => (e, false),
            _ => {
                let text = std::str::from_utf8(raw).map_err(|_| "invalid or expired token")?;
                let claims: AccessClaims =
                    token::verify(&ring, text, &self.0.team.base, &app.aud).map_err(|_| "invalid or expired token")?;
                if claims.kind != "app" {
                    return Err("not an application token");
                }
                let user = Uuid::parse_str(&claims.sub).map_err(|_| "token without a user")?;
                let assertion = HeaderValue::from_bytes(raw).map_err(|_| "invalid or expired token")?;
                let e = Arc::new(CachedToken {
                    aud: app.aud.as_str().into(),
                    user,
                    nonce: claims.identity_nonce.into(),
                    email_header: HeaderValue::from_str(&claims.email).ok(),
                    assertion,
                    exp_s: claims.exp,
                    iat_s: claims.iat,
                    ring: ring_id,
                });
                let mut cache = self.0.tokens.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                insert_bounded(&mut cache, raw.into(), e.clone(), TOKEN_CACHE_MAX);
                drop(cache);
                (self.remember_token(raw, &e), true)
            }
        };
        if entry.exp_s.saturating_mul(1000).saturating_add(leeway_ms) <= now {
            return Err("invalid or expired token");
        }
        let revoked = self.0.revoked.load();
        if revoked.nonces.contains(&*entry.nonce) {
            return Err("session revoked");
        }
        if revoked.apps.get(&app.id).is_some_and(|at| entry.iat_s.saturating_mul(1000) < *at) {
            return Err("application tokens revoked");
        }
        Ok((entry, first))
    }

    /// The user's policy identity, from the cache unless `fresh` (a new session: read the
    /// registry again, it was just updated by the sign-in).
    async fn identity(&self, user: Uuid, fresh: bool) -> Option<Arc<Identity>> {
        if !fresh {
            if let Some(i) = self.with_local(|l| l.identities.get(&user).cloned()) {
                return Some(i);
            }
            let shared =
                self.0.identities.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&user).cloned();
            if let Some(i) = shared {
                let own = Arc::new(Identity::clone(&i));
                self.remember_identity(user, &own);
                return Some(own);
            }
        }
        let store = self.0.store.clone();
        let record = match self.0.control.spawn(async move { store.get_user(user).await }).await {
            Ok(Ok(r)) => r?,
            Err(e) => {
                tracing::error!(error = %e, "user registry lookup failed");
                return None;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read the user registry; treating the request as signed out");
                return None;
            }
        };
        let identity = Arc::new(crate::identity::from_registry(&record));
        let mut cache = self.0.identities.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        insert_bounded(&mut cache, user, identity.clone(), IDENTITY_CACHE_MAX);
        drop(cache);
        let own = Arc::new(Identity::clone(&identity));
        self.remember_identity(user, &own);
        Some(own)
    }

    /// This thread's own copy of `token`, kept for the next requests carrying `raw`.
    fn remember_token(&self, raw: &[u8], token: &CachedToken) -> Arc<CachedToken> {
        let own = Arc::new(token.private_copy());
        self.with_local(|l| insert_bounded(&mut l.tokens, raw.into(), own.clone(), TOKEN_CACHE_MAX));
        own
    }

    fn remember_identity(&self, user: Uuid, identity: &Arc<Identity>) {
        self.with_local(|l| insert_bounded(&mut l.identities, user, identity.clone(), IDENTITY_CACHE_MAX));
    }

    /// Runs `f` on this thread's caches for this data plane, dropping its identities first if
    /// they have changed since they were copied.
    fn with_local<R>(&self, f: impl FnOnce(&mut LocalCaches) -> R) -> R {
        let generation = self.0.identity_generation.load(Ordering::Acquire);
        LOCAL.with_borrow_mut(|all| {
            let i = match all.iter().position(|l| l.owner == self.0.id) {
                Some(i) => i,
                None => {
                    all.push(LocalCaches {
                        owner: self.0.id,
                        generation,
                        tokens: HashMap::default(),
                        identities: HashMap::default(),
                    });
                    all.len() - 1
                }
            };
            let local = &mut all[i];
            if local.generation != generation {
                local.identities.clear();
                local.generation = generation;
            }
            f(local)
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        mut req: Request<Body>,
        peer: &Peer,
        (host, host_header): (&str, &HeaderValue),
        route: &AppRoute,
        caller: &Caller,
        decision: Decision,
        now: UnixMillis,
    ) -> Response {
        let service = {
            let ingress = self.0.ingress.load();
            ingress.resolve(host, req.uri().path()).cloned()
        };
        let origin = match service.as_deref() {
            Some(Service::Origin(o)) => o.clone(),
            Some(Service::Status(code)) => {
                return StatusCode::from_u16(*code).unwrap_or(StatusCode::NOT_FOUND).into_response();
            }
            None => return not_found(),
        };
        let upgrade = forward::is_upgrade(req.headers());
        let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let fwd = Forwarded {
            client_ip: &peer.ip_header,
            proto: if self.0.team.https { "https" } else { "http" },
            host: host_header,
        };
        let mut up = match forward::upstream_request(req, &origin, fwd, upgrade) {
            Ok(r) => r,
            Err(_) => return crate::pages::page(StatusCode::BAD_REQUEST, "Bad request", "The request is not valid."),
        };
        let h = up.headers_mut();
        let session = |h: &mut HeaderMap, t: &CachedToken| {
            h.insert(forward::JWT_ASSERTION, t.assertion.clone());
            if let Some(email) = &t.email_header {
                h.insert(forward::AUTHENTICATED_EMAIL, email.clone());
            }
        };
        match (decision, &caller.service, &caller.token) {
            (Decision::ServiceAuth, Some((id, client_id)), _) => {
                if let Some(jwt) = self.service_jwt(*id, client_id, &route.app, now) {
                    h.insert(forward::JWT_ASSERTION, jwt);
                }
            }
            (Decision::Allow | Decision::ServiceAuth, _, Some((t, _))) => session(h, t),
            _ => {}
        }
        match self.0.origins.send(&origin, up, on_upgrade).await {
            Ok(r) => r,
            Err(f) => {
                self.0.metrics.origin_errors.increment(1);
                tracing::warn!(app = %route.app.id, origin = %origin, failure = ?f, "origin failed");
                forward::failure_page(f)
            }
        }
    }

    /// A token for a service token's requests (`common_name` = client id), signed once and
    /// reused until shortly before it expires.
    fn service_jwt(&self, id: Uuid, client_id: &str, app: &Application, now: UnixMillis) -> Option<HeaderValue> {
        let now_s = now / 1000;
        if let Some((jwt, exp)) =
            self.0.service_jwts.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&(id, app.id))
            && exp - SERVICE_JWT_MARGIN_S > now_s
        {
            return Some(jwt.clone());
        }
        let tokens = self.0.service_tokens.load();
        let token_exp = tokens.get(client_id).map_or(now_s, |t| t.expires_at / 1000);
        let session = i64::try_from(app.settings.session_duration.get().as_secs()).unwrap_or(86_400);
        let exp = (now_s + session).min(token_exp);
        // Cloudflare's service-token payload: no user, the client id as `common_name`.
        let claims = serde_json::json!({
            "aud": [app.aud],
            "exp": exp,
            "iat": now_s,
            "nbf": now_s,
            "iss": self.0.team.base,
            "type": "app",
            "common_name": client_id,
            "sub": "",
        });
        let jwt = match token::sign(&self.0.keys.load(), &claims).map(|j| HeaderValue::from_str(&j)) {
            Ok(Ok(j)) => j,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "a signed service token JWT is not a header value");
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot sign a service token JWT");
                return None;
            }
        };
        self.0
            .service_jwts
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((id, app.id), (jwt.clone(), exp));
        Some(jwt)
    }

    fn denied(&self, route: &AppRoute, known: bool) -> Response {
        let msg = route.app.settings.custom_deny_message.as_deref().unwrap_or(if known {
            "You do not have access to this application. If you think you should, ask your administrator."
        } else {
            "This application does not accept your credentials."
        });
        crate::pages::page(StatusCode::FORBIDDEN, "Access denied", msg)
    }

    fn need_login(&self, req: &http::request::Parts, host: &str, route: &AppRoute, caller: &Caller) -> Response {
        let headers = &req.headers;
        let xhr = header_str(headers, &REQUESTED_WITH).is_some_and(|v| v.eq_ignore_ascii_case("XMLHttpRequest"));
        let non_browser = caller.service_rejected || header_str(headers, &ACCESS_TOKEN).is_some();
        if xhr || non_browser || route.app.settings.service_auth_401_redirect {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                [(header::CACHE_CONTROL, "no-store")],
                axum::Json(serde_json::json!({"error": "authentication required"})),
            )
                .into_response();
            if let Ok(aud) = HeaderValue::from_str(&route.app.aud) {
                r.headers_mut().insert("cf-access-aud", aud);
            }
            if let Ok(d) = HeaderValue::from_str(&self.0.team.host) {
                r.headers_mut().insert("cf-access-domain", d);
            }
            return r;
        }
        let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let location = format!(
            "{}/cdn-cgi/access/login/{}?kid={}&redirect_url={}",
            self.0.team.base,
            enc(host),
            enc(&route.app.aud),
            enc(pq)
        );
        match HeaderValue::from_str(&location) {
            Ok(l) => (
                StatusCode::FOUND,
                [(header::LOCATION, l), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            )
                .into_response(),
            Err(_) => not_found(),
        }
    }
}

fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Allow => "allow",
        Decision::Bypass => "bypass",
        Decision::ServiceAuth => "non_identity",
        Decision::Deny => "deny",
        Decision::NeedLogin => "login_required",
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty())
}

/// The `Host` the client asked for: the header, or the authority of an absolute-form target.
fn host_of(req: &Request<Body>) -> HeaderValue {
    match req.headers().get(header::HOST) {
        Some(h) => h.clone(),
        None => req.uri().host().and_then(|h| HeaderValue::from_str(h).ok()).unwrap_or(HeaderValue::from_static("")),
    }
}

fn bad_path(e: crate::path::PathError) -> Response {
    crate::pages::page(StatusCode::BAD_REQUEST, "Bad request", &e.to_string())
}

fn not_found() -> Response {
    crate::pages::page(StatusCode::NOT_FOUND, "Not found", "No application is configured for this address.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hashed_by_their_end_are_still_compared_whole() {
        let mut cache: HashMap<Box<[u8]>, u32, TokenTailHash> = HashMap::default();
        let end = [b'x'; 2 * TokenTailHash::TAIL];
        let a = [b"header.payload-a.".as_slice(), &end].concat();
        let b = [b"header.payload-b.".as_slice(), &end].concat();
        cache.insert(a.clone().into(), 1);
        assert_eq!(cache.get(&a[..]), Some(&1));
        assert_eq!(cache.get(&b[..]), None, "same end, other token");
        cache.insert(b.clone().into(), 2);
        assert_eq!((cache.get(&a[..]), cache.get(&b[..]), cache.len()), (Some(&1), Some(&2), 2));
        // Shorter than the tail: hashed whole.
        cache.insert(Box::from(&b"short"[..]), 3);
        assert_eq!(cache.get(&b"short"[..]), Some(&3));
        assert_eq!(cache.get(&b"shore"[..]), None);
    }
}
