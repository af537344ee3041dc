//! The public listener (data plane). Until applications are configured every request gets
//! the ingress catch-all: a plain 404 page that names nothing internal.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};

/// The public listener's router.
pub fn router() -> Router {
    Router::new().fallback(catch_all)
}

async fn catch_all() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Html(
            "<!doctype html><meta charset=utf-8><title>Not found</title>\
             <h1>Not found</h1><p>No application is configured for this address.</p>",
        ),
    )
}
