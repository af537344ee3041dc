//! Starting, running and stopping the emulator: [`EntraSim`] and [`RunningSim`].
//!
//! One listener serves everything, routed by path: the OIDC endpoints under `/{tenant}/...`,
//! Microsoft Graph under `/v1.0/...` (and `/oidc/userinfo`), the admin API under `/admin`,
//! and an index page at `/`. [`SimState`] is the shared state behind every handler; its
//! locks are never held across an `.await`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::clock::Clock;
use crate::cloud::SimUrls;
use crate::graph::Throttle;
use crate::keys::KeySet;
use crate::oidc::store::AuthStore;
use crate::provision::{ProvisioningLogEntry, ProvisioningMode, ProvisioningReport, ProvisioningState};
use crate::tenant::{Tenant, TenantHandle, ThrottleConfig};
use crate::{SimError, admin, graph, html, oidc};

/// State shared by every handler of one running emulator.
#[derive(Debug)]
pub(crate) struct SimState {
    pub(crate) tenant: TenantHandle,
    pub(crate) urls: SimUrls,
    pub(crate) clock: Clock,
    keys: RwLock<KeySet>,
    store: Mutex<AuthStore>,
    throttle: Mutex<Throttle>,
    pub(crate) provisioning: tokio::sync::Mutex<ProvisioningState>,
}

// Every guarded value stays consistent between statements (no multi-step invariants are
// broken mid-way), so a lock poisoned by a panicking handler is still safe to use.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimState {
    pub(crate) fn keys(&self) -> RwLockReadGuard<'_, KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn keys_mut(&self) -> RwLockWriteGuard<'_, KeySet> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, AuthStore> {
        lock(&self.store)
    }

    pub(crate) fn throttle(&self) -> MutexGuard<'_, Throttle> {
        lock(&self.throttle)
    }

    /// Rotates the signing key; see [`RunningSim::rotate_keys`].
    pub(crate) fn rotate_keys(&self, keep_previous: bool) -> Result<String, SimError> {
        let now = self.clock.now();
        self.keys_mut().rotate(now, keep_previous)
    }
}

/// Starts emulators.
#[derive(Debug)]
pub struct EntraSim;

impl EntraSim {
    /// Starts an emulator for `tenant` on `listen` (use port 0 in tests) and returns once
    /// it accepts connections.
    ///
    /// # Errors
    /// [`SimError::Bind`], [`SimError::InvalidTenant`] for bad URL overrides, or
    /// [`SimError::Key`].
    pub async fn start(tenant: Tenant, listen: SocketAddr) -> Result<RunningSim, SimError> {
        Self::start_with(TenantHandle::new(tenant), listen).await
    }

    /// Loads a tenant file and starts an emulator whose admin `reload` re-reads that file.
    ///
    /// # Errors
    /// Loading errors, or those of [`EntraSim::start`].
    pub async fn start_from_file(path: &Path, listen: SocketAddr) -> Result<RunningSim, SimError> {
        let tenant = Tenant::load(path)?;
        Self::start_with(TenantHandle::with_source(tenant, path), listen).await
    }

    async fn start_with(tenant: TenantHandle, listen: SocketAddr) -> Result<RunningSim, SimError> {
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|source| SimError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind { addr: listen, source })?;
        let (cloud, hosts, throttle) = tenant.read(|t| (t.info().cloud, t.info().hosts.clone(), t.graph_throttle()));
        let urls = SimUrls::resolve(cloud, &hosts, addr)?;
        let clock = Clock::default();
        // RSA key generation takes a moment; keep it off the async workers.
        let now = clock.now();
        let keys = tokio::task::spawn_blocking(move || KeySet::generate(now))
            .await
            .map_err(|e| SimError::Key(e.to_string()))??;
        let state = Arc::new(SimState {
            tenant,
            urls,
            clock,
            keys: RwLock::new(keys),
            store: Mutex::new(AuthStore::default()),
            throttle: Mutex::new(Throttle::new(throttle)),
            provisioning: tokio::sync::Mutex::new(ProvisioningState::default()),
        });
        let app = router(state.clone());
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = signal.await;
                })
                .await
        });
        tracing::info!(login = %state.urls.login, tenant = %state.tenant.read(Tenant::id), "Entra ID emulator listening");
        Ok(RunningSim { state, addr, shutdown: Some(shutdown), task: Some(task) })
    }
}

fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/", get(index))
        .merge(oidc::router())
        .merge(graph::router())
        .nest("/admin", admin::router())
        .with_state(state)
}

async fn index(State(st): State<Arc<SimState>>) -> impl IntoResponse {
    let tid = st.tenant.read(Tenant::id);
    Html(html::index_page(&[
        ("Tenant id", tid.to_string()),
        ("Discovery", format!("{}/{tid}/v2.0/.well-known/openid-configuration", st.urls.login)),
        ("Issuer", format!("{}/{tid}/v2.0", st.urls.issuer)),
        ("Microsoft Graph", format!("{}/v1.0", st.urls.graph)),
        ("Admin API", format!("{}/admin/tenant", st.urls.login)),
    ]))
}

/// A running emulator. Dropping it stops the server; [`RunningSim::shutdown`] also waits.
#[derive(Debug)]
pub struct RunningSim {
    state: Arc<SimState>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningSim {
    /// The socket address the emulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The root of the login endpoints, e.g. `http://127.0.0.1:41234` (same as
    /// [`RunningSim::login_url`]).
    pub fn base_url(&self) -> &str {
        &self.state.urls.login
    }

    /// The root of the login endpoints, what a relying party configures as the cloud's
    /// `login_url`.
    pub fn login_url(&self) -> &str {
        &self.state.urls.login
    }

    /// The scheme and host of token issuers (differs from the login URL in China mode).
    pub fn issuer_url(&self) -> &str {
        &self.state.urls.issuer
    }

    /// The Microsoft Graph root, what a relying party configures as the cloud's
    /// `graph_url` (Graph paths start with `/v1.0`).
    pub fn graph_url(&self) -> &str {
        &self.state.urls.graph
    }

    /// The Graph v1.0 base, `{graph_url}/v1.0`.
    pub fn graph_base_url(&self) -> String {
        format!("{}/v1.0", self.state.urls.graph)
    }

    /// The admin API base, `{login_url}/admin`.
    pub fn admin_url(&self) -> String {
        format!("{}/admin", self.state.urls.login)
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> Uuid {
        self.state.tenant.read(Tenant::id)
    }

    /// The v2.0 issuer, `{issuer_url}/{tid}/v2.0`.
    pub fn issuer(&self) -> String {
        format!("{}/{}/v2.0", self.state.urls.issuer, self.tenant_id())
    }

    /// The tenant authority, `{login_url}/{tid}/v2.0`; discovery is under it.
    pub fn authority(&self) -> String {
        format!("{}/{}/v2.0", self.state.urls.login, self.tenant_id())
    }

    /// The tenant's discovery document URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.authority())
    }

    /// All three base URLs.
    pub fn urls(&self) -> &SimUrls {
        &self.state.urls
    }

    /// The live tenant, for edits between requests or provisioning cycles.
    pub fn tenant(&self) -> &TenantHandle {
        &self.state.tenant
    }

    /// Makes a new key the signing key, keeping the previous ones published (up to three
    /// in all). Returns the new `kid`.
    ///
    /// # Errors
    /// [`SimError::Key`] when key generation fails.
    pub fn rotate_keys(&self) -> Result<String, SimError> {
        self.state.rotate_keys(true)
    }

    /// Every published `kid`, the signing key first.
    pub fn published_kids(&self) -> Vec<String> {
        self.state.keys().kids()
    }

    /// Replaces the Graph 429 injection settings (and restarts its request count).
    pub fn set_graph_throttle(&self, config: ThrottleConfig) {
        self.state.throttle().configure(config);
    }

    /// Moves the emulator's clock forward (codes, tokens and secrets expire by it).
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.state.clock.advance(by);
    }

    /// Runs one provisioning cycle against a SCIM endpoint, incremental after the first
    /// against the same base URL.
    ///
    /// # Errors
    /// [`SimError::InvalidScimUrl`] or [`SimError::HttpClient`]; request failures are in
    /// the report, not errors.
    pub async fn provision(
        &self,
        scim_url: &str,
        token: &str,
        mode: ProvisioningMode,
    ) -> Result<ProvisioningReport, SimError> {
        crate::provision::run_in(&self.state, scim_url, token, mode).await
    }

    /// The provisioning log of every cycle run so far.
    pub async fn provisioning_log(&self) -> Vec<ProvisioningLogEntry> {
        self.state.provisioning.lock().await.log().to_vec()
    }

    /// Stops accepting connections and waits for the server to finish.
    ///
    /// # Errors
    /// [`SimError::Serve`] if the server had failed.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => match task.await {
                Ok(result) => result.map_err(SimError::Serve),
                Err(e) => Err(SimError::Serve(std::io::Error::other(e.to_string()))),
            },
            None => Ok(()),
        }
    }

    /// Waits until the server stops (after ctrl-c handling by the caller, or a failure).
    pub(crate) async fn wait(&mut self) -> Result<(), SimError> {
        match self.task.as_mut() {
            Some(task) => match task.await {
                Ok(result) => {
                    self.task = None;
                    result.map_err(SimError::Serve)
                }
                Err(e) => Err(SimError::Serve(std::io::Error::other(e.to_string()))),
            },
            None => Ok(()),
        }
    }

    pub(crate) fn stop_signal(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.stop_signal();
    }
}
