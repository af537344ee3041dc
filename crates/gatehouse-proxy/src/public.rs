//! The public listener: `/cdn-cgi/access/certs` on every host (the signing keys origins
//! validate application tokens with), the sign-in endpoints (`login`, `callback` on the team
//! domain, `authorized` on application hosts; see [`crate::signin`]), and everything else
//! through the [`DataPlane`] to the applications' origins.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::dataplane::DataPlane;

use crate::signin::{self, SignInState};

/// What the public handlers need.
pub type PublicState = SignInState;

/// The `/cdn-cgi/access` routes of the public listener; [`with_data_plane`] adds the rest.
pub fn router(state: PublicState) -> Router {
    Router::new()
        .route("/cdn-cgi/access/certs", get(certs))
        .route("/cdn-cgi/access/login/{app_host}", get(signin::login))
        .route("/cdn-cgi/access/callback", get(signin::callback))
        .route("/cdn-cgi/access/authorized", get(signin::authorized))
        .route("/cdn-cgi/access/get-identity", get(signin::get_identity))
        .route("/cdn-cgi/access/test-idp/{idp_id}", get(signin::test_idp))
        .route("/cdn-cgi/access/logout", get(signin::logout).post(signin::logout))
        .with_state(state)
}

/// Sends every request no other route takes through the data plane. Serve the result with
/// connect info (`SocketAddr`).
pub fn with_data_plane(router: Router, data_plane: DataPlane) -> Router {
    router
        .fallback(move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request| data_plane.clone().handle(peer, req))
}

async fn certs(State(state): State<PublicState>) -> impl IntoResponse {
    let doc = state.keys.load().certs_document();
    ([(header::CACHE_CONTROL, "public, max-age=300")], axum::Json(doc))
}

/// The public listener for per-core serving: requests for the control routes
/// (`/cdn-cgi/...`, `/populations/...`) run on `control_runtime`, where the store lives;
/// everything else goes through the data plane on the thread that accepted it.
pub fn per_core(control: Router, data_plane: DataPlane, control_runtime: tokio::runtime::Handle) -> Router {
    let run = tower::service_fn(move |req: Request| {
        let (control, handle) = (control.clone(), control_runtime.clone());
        async move {
            use tower::ServiceExt as _;
            Ok::<_, std::convert::Infallible>(match handle.spawn(control.oneshot(req)).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(never)) => match never {},
                Err(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
            })
        }
    });
    with_data_plane(
        Router::new().route_service("/cdn-cgi/{*rest}", run.clone()).route_service("/populations/{*rest}", run),
        data_plane,
    )
}
