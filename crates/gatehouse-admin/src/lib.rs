//! The admin listener: the Cloudflare-compatible REST API under `/client/v4`, the web
//! dashboard under `/`, plus `/healthz`, `/readyz` and `/metrics`.
//!
//! Every API response uses Cloudflare's envelope (`success`, `errors`, `messages`, `result`,
//! `result_info`), including errors raised before a handler runs (authentication, bad JSON,
//! unknown routes), so SDKs always get a body they can parse. This crate talks to the store
//! through its capability traits and never reaches into the data plane.

mod api;
mod dashboard;
mod health;

use axum::Router;
use gatehouse_core::AccountId;
use gatehouse_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

pub use api::envelope::{ApiError, ErrorCode};
pub use dashboard::SESSION_COOKIE;

/// Largest request body the API accepts (1 MiB); larger bodies get `413`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the admin handlers need.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The store.
    pub store: Store,
    /// The installation's account id.
    pub account_id: AccountId,
    /// The team domain as browsers reach it (`public_url` in the config).
    pub public_url: url::Url,
    /// Renders `/metrics`; `None` when no recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// The configuration file's ingress rules (shown until rules are set through the API).
    pub ingress_file: std::sync::Arc<Vec<gatehouse_proxy::ingress::IngressRule>>,
}

/// The admin listener's router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .nest("/client/v4", api::router(state.clone()))
        .merge(health::router(state.clone()))
        .merge(dashboard::router(state))
}
