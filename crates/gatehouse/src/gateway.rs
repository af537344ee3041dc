//! Starting a gateway: open the store, bind both listeners, serve until shut down.

use std::net::SocketAddr;

use gatehouse_admin::AdminState;
use gatehouse_core::secret::SecretKey;
use gatehouse_oidc::{CloudOverrides, CloudUrls, OidcClient, OidcOptions};
use gatehouse_proxy::dataplane::{DataPlane, DataPlaneOptions, DataPlaneParts};
use gatehouse_proxy::ingress::{self, IngressHandle};
use gatehouse_proxy::keys::{self, KeyRingHandle};
use gatehouse_proxy::public::{PublicService, PublicState};
use gatehouse_proxy::routes::RoutesHandle;
use gatehouse_proxy::signin::TeamDomain;
use gatehouse_store::{OrgStore, Store, StoreError};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, CpuAffinity};

/// Why a gateway could not start; exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// Signing keys could not be loaded or created.
    #[error("signing keys: {0}")]
    Keys(#[from] gatehouse_proxy::keys::KeyError),
    /// The OIDC client could not be built.
    #[error("OIDC client: {0}")]
    Oidc(String),
    /// The stored ingress rules are invalid.
    #[error("ingress rules: {0}")]
    Ingress(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// Where the public listener is bound.
    pub public_addr: SocketAddr,
    /// Where the admin listener is bound.
    pub admin_addr: SocketAddr,
    /// The store it uses.
    pub store: Store,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
    public_threads: Vec<std::thread::JoinHandle<()>>,
    refreshers: Vec<JoinHandle<()>>,
}

impl Gateway {
    /// Opens the store and serves both listeners in the background.
    pub async fn start(config: &Config, key: SecretKey, metrics: Option<PrometheusHandle>) -> Result<Self, StartError> {
        let store = Store::connect(&config.store_url(), key).await?;
        let account_id = store.account_id().await?;
        store.organization().await?;
        let interval = keys::rotation_interval(&store).await?;
        let ring = KeyRingHandle::new(keys::load_or_rotate(&store, interval, gatehouse_core::now_millis()).await?);

        let public = bind(config.listen.public).await?;
        let admin = bind(config.listen.admin).await?;
        let public_addr = local_addr(&public, config.listen.public)?;
        let admin_addr = local_addr(&admin, config.listen.admin)?;

        let admin_router = gatehouse_admin::router(AdminState {
            store: store.clone(),
            account_id,
            public_url: config.public_url.clone(),
            metrics,
            ingress_file: std::sync::Arc::new(config.ingress.clone()),
        });
        let (shutdown, rx) = watch::channel(false);
        let routes = RoutesHandle::new(gatehouse_proxy::routes::load(&store).await?);
        let oidc = OidcClient::new(cloud_overrides(config), OidcOptions::default())
            .map_err(|e| StartError::Oidc(e.to_string()))?;
        let team = TeamDomain::from_url(&config.public_url);
        let ingress = IngressHandle::new(ingress::load(&store, &config.ingress).await.map_err(StartError::Ingress)?);
        let (data_plane, mut refreshers) = DataPlane::start(DataPlaneParts {
            store: store.clone(),
            routes: routes.clone(),
            ingress: ingress.clone(),
            keys: ring.clone(),
            team: team.clone(),
            options: DataPlaneOptions {
                origin_response_timeout: config.proxy.origin_response_timeout.get(),
                log_every_request: config.proxy.log_every_request,
            },
        })
        .await?;
        // Sign-in and the other control routes run on this runtime (with the store); proxied
        // requests stay on the listener thread that accepted them.
        let control = gatehouse_proxy::public::router(PublicState {
            store: store.clone(),
            oidc: std::sync::Arc::new(oidc),
            keys: ring.clone(),
            routes: routes.clone(),
            team,
        })
        .merge(gatehouse_scim::router(gatehouse_scim::ScimState::new(store.clone(), &config.public_url)));
        let public_service = PublicService::new(control, data_plane, tokio::runtime::Handle::current());
        refreshers.extend([
            keys::spawn_refresher(store.clone(), ring),
            gatehouse_proxy::routes::spawn_refresher(store.clone(), routes),
            ingress::spawn_refresher(store.clone(), config.ingress.clone(), ingress),
        ]);
        let threads = match config.proxy.threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        };
        let cpus = pin_plan(&allowed_cpus(), threads, config.proxy.cpu_affinity);
        let public_threads = serve_per_core(public, public_service, &rx, &cpus)
            .map_err(|source| StartError::Bind { addr: public_addr, source })?;
        let tasks = vec![tokio::spawn(serve(admin, admin_router, rx))];
        tracing::info!(%public_addr, %admin_addr, %account_id, backend = ?store.backend_kind(), "gateway started");
        Ok(Self { public_addr, admin_addr, store, shutdown, tasks, public_threads, refreshers })
    }

    /// Stops accepting, lets in-flight requests finish, and closes the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for r in &self.refreshers {
            r.abort();
        }
        for t in self.public_threads {
            // Joined, so that its runtime and connections are gone when this returns.
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        for t in self.tasks {
            match t.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "listener ended with an error"),
                Err(e) => tracing::warn!(error = %e, "listener task failed"),
                Ok(Ok(())) => {}
            }
        }
        self.store.close().await;
    }
}

/// The per-cloud host overrides of the configuration (`entra.clouds.<cloud>`).
fn cloud_overrides(config: &Config) -> CloudOverrides {
    let mut o = CloudOverrides::none();
    for (name, hosts) in &config.entra.clouds {
        if let Some(cloud) = gatehouse_core::idp::AzureCloud::parse(name) {
            o = o.with(
                cloud,
                CloudUrls {
                    login_url: hosts.login_url.as_str().trim_end_matches('/').to_owned(),
                    graph_url: hosts.graph_url.as_str().trim_end_matches('/').to_owned(),
                    issuer_url: None,
                },
            );
        }
    }
    o
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })
}

fn local_addr(l: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, StartError> {
    l.local_addr().map_err(|source| StartError::Bind { addr, source })
}

/// The CPUs this process may run on (its affinity mask, which a container's `cpuset` or
/// `taskset` narrows), in ascending order; empty when it cannot be read.
pub fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the CPUs this process may use; threads are not pinned");
            Vec::new()
        }
    }
}

/// Which CPU each public-listener thread is pinned to, if any. With `auto`, threads are
/// pinned only when there is exactly one per allowed CPU and more than one: then a busy
/// thread is never queued behind its sibling on one core while the other core runs
/// something else. With another number of threads (a CPU quota, `proxy.threads` set to
/// another number) the kernel places them.
pub fn pin_plan(allowed: &[usize], threads: usize, mode: CpuAffinity) -> Vec<Option<usize>> {
    let threads = threads.max(1);
    if mode == CpuAffinity::Auto && threads > 1 && allowed.len() == threads {
        allowed.iter().copied().map(Some).collect()
    } else {
        vec![None; threads]
    }
}

/// Keeps the calling thread on `cpu`; a failure is logged and the thread runs unpinned.
fn pin_current_thread(cpu: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    match rustix::thread::sched_setaffinity(None, &set) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(cpu, error = %e, "cannot pin a public listener thread to its CPU");
            false
        }
    }
}

/// Serves the public listener from one thread per entry of `cpus` (pinned to that CPU when
/// it names one), each with its own single-threaded runtime accepting from the same socket:
/// a proxied request, its origin connection and its response stay on one thread, with no
/// hand-off between threads (as nginx's workers do). Returns the threads once every one
/// has started (and pinned itself); each ends when serving has stopped.
fn serve_per_core(
    listener: TcpListener,
    service: PublicService,
    stop: &watch::Receiver<bool>,
    cpus: &[Option<usize>],
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let std_listener = listener.into_std()?;
    let mut done = Vec::with_capacity(cpus.len());
    // Each thread reports the CPU it was pinned to, if any.
    let (started_tx, started) = std::sync::mpsc::channel::<Option<usize>>();
    for (i, cpu) in cpus.iter().copied().enumerate() {
        let socket = std_listener.try_clone()?;
        let (service, stop, started_tx) = (service.clone(), stop.clone(), started_tx.clone());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name(format!("gatehouse-public-{i}")).spawn(move || {
            let _ = started_tx.send(cpu.filter(|&c| pin_current_thread(c)));
            runtime.block_on(async move {
                match TcpListener::from_std(socket) {
                    Ok(l) => gatehouse_proxy::public::serve(l, service, stop).await,
                    Err(e) => tracing::error!(error = %e, "public listener thread could not start"),
                }
            });
            // Let connections still open finish their work before the runtime goes.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        })?;
        done.push(thread);
    }
    drop(started_tx);
    // Every thread reports once (a short wait: no runtime is needed for it); the loop ends
    // early only if one died first.
    let mut pinned: Vec<usize> = started.iter().take(cpus.len()).flatten().collect();
    pinned.sort_unstable();
    if !pinned.is_empty() {
        tracing::info!(cpus = ?pinned, "public listener threads pinned, one per CPU");
    }
    Ok(done)
}

async fn serve(listener: TcpListener, router: axum::Router, mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

/// Upper bounds (seconds) of the proxy's latency histogram buckets: from well under a
/// millisecond for a cached decision to the origin response timeout's range.
const LATENCY_BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 100.0];

/// Installs the process's Prometheus recorder (behind `/metrics`) with its upkeep task,
/// which drains recorded histogram samples every 5 s. Request latency is a Prometheus
/// histogram with fixed buckets (which instances can be summed over, and costs a bucket
/// search per sample to keep) rather than a summary. `None` if a recorder is already
/// installed. Call inside a Tokio runtime.
pub fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(gatehouse_proxy::dataplane::LATENCY_METRIC.to_owned()), &LATENCY_BUCKETS)
        .ok()?
        .install_recorder()
        .ok()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Some(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_pinned_only_one_per_allowed_cpu() {
        use CpuAffinity::{Auto, Off};
        // The allowed CPUs need not start at 0 or be contiguous (a container's cpuset).
        assert_eq!(pin_plan(&[0, 1], 2, Auto), [Some(0), Some(1)]);
        assert_eq!(pin_plan(&[2, 5, 7], 3, Auto), [Some(2), Some(5), Some(7)]);
        // Fewer or more threads than CPUs, one thread, turned off, or CPUs unknown: unpinned.
        assert_eq!(pin_plan(&[0, 1, 2, 3], 2, Auto), [None, None]);
        assert_eq!(pin_plan(&[0, 1], 3, Auto), [None, None, None]);
        assert_eq!(pin_plan(&[0], 1, Auto), [None]);
        assert_eq!(pin_plan(&[0, 1], 2, Off), [None, None]);
        assert_eq!(pin_plan(&[], 2, Auto), [None, None]);
        // At least one thread, whatever is asked.
        assert_eq!(pin_plan(&[0, 1], 0, Auto), [None]);
    }
}
