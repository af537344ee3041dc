//! The public listener (data plane). Routes served so far: `/cdn-cgi/access/certs` on every
//! host (the signing keys origins validate application tokens with), the sign-in endpoints
//! (`login`, `callback` on the team domain, `authorized` on application hosts; see
//! [`crate::signin`]), and the ingress catch-all — a plain 404 page that names nothing internal.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::signin::{self, SignInState};

/// What the public handlers need.
pub type PublicState = SignInState;

/// The public listener's router.
pub fn router(state: PublicState) -> Router {
    Router::new()
        .route("/cdn-cgi/access/certs", get(certs))
        .route("/cdn-cgi/access/login/{app_host}", get(signin::login))
        .route("/cdn-cgi/access/callback", get(signin::callback))
        .route("/cdn-cgi/access/authorized", get(signin::authorized))
        .route("/cdn-cgi/access/get-identity", get(signin::get_identity))
        .route("/cdn-cgi/access/test-idp/{idp_id}", get(signin::test_idp))
        .route("/cdn-cgi/access/logout", get(signin::logout).post(signin::logout))
        .fallback(catch_all)
        .with_state(state)
}

async fn certs(State(state): State<PublicState>) -> impl IntoResponse {
    let doc = state.keys.load().certs_document();
    ([(header::CACHE_CONTROL, "public, max-age=300")], axum::Json(doc))
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
