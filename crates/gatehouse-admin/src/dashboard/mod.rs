//! The web dashboard: server-rendered pages on the admin listener under `/`.
//!
//! Pages are askama templates (`templates/`, checked at compile time, HTML-escaped by
//! default) with a little hand-written CSS and a few lines of vanilla JavaScript for the
//! policy builder. Every change goes through the same operations and validation as the REST
//! API (`crate::api`), so the dashboard holds no business rules of its own; it only turns
//! forms into the API's input types and errors back into messages beside their fields.
//!
//! Access: [`session`] signs in with an admin API token and keeps a server-side session;
//! every POST is checked for the session's CSRF token and a same-origin `Origin`, and
//! sessions opened with a read-only token can look but not change.

mod apps;
mod form;
mod groups;
mod idps;
mod keys;
mod logs;
mod page;
mod policies;
mod session;
mod tokens;
mod users;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::AdminState;

pub use session::SESSION_COOKIE;

/// The dashboard's router, mounted at `/` of the admin listener.
pub(crate) fn router(state: AdminState) -> Router {
    let signed_in = Router::new()
        .route("/", get(page::overview))
        .route("/idps", get(idps::list))
        .route("/idps/new", get(idps::new_form).post(idps::create))
        .route("/idps/{id}", get(idps::show).post(idps::update))
        .route("/idps/{id}/scim-secret", post(idps::regenerate_scim_secret))
        .route("/idps/{id}/delete", post(idps::delete))
        .route("/idps/{id}/drift", get(idps::drift))
        .route("/idps/{id}/scim/{kind}", get(idps::scim_resources))
        .route("/apps", get(apps::list))
        .route("/apps/new", get(apps::new_form).post(apps::create))
        .route("/apps/{id}", get(apps::show).post(apps::update))
        .route("/apps/{id}/delete", post(apps::delete))
        .route("/apps/{id}/policies", post(apps::add_policy))
        .route("/apps/{id}/policies/{policy}", get(apps::edit_policy).post(apps::update_policy))
        .route("/apps/{id}/policies/{policy}/delete", post(apps::delete_policy))
        .route("/apps/{id}/policies/attach", post(apps::attach_policy))
        .route("/policies", get(policies::list))
        .route("/policies/new", get(policies::new_form).post(policies::create))
        .route("/policies/{id}", get(policies::show).post(policies::update))
        .route("/policies/{id}/delete", post(policies::delete))
        .route("/groups", get(groups::list))
        .route("/groups/new", get(groups::new_form).post(groups::create))
        .route("/groups/{id}", get(groups::show).post(groups::update))
        .route("/groups/{id}/delete", post(groups::delete))
        .route("/service-tokens", get(tokens::list).post(tokens::create))
        .route("/service-tokens/{id}/delete", post(tokens::delete))
        .route("/service-tokens/{id}/rotate", post(tokens::rotate))
        .route("/users", get(users::list))
        .route("/users/{id}", get(users::show))
        .route("/users/{id}/revoke", post(users::revoke))
        .route("/users/{id}/seat", post(users::seat))
        .route("/logs", get(logs::access))
        .route("/logs/scim", get(logs::scim))
        .route("/keys", get(keys::keys).post(keys::update_interval))
        .route("/keys/rotate", post(keys::rotate))
        .route("/settings", get(keys::settings).post(keys::update_settings))
        .route("/logout", post(session::logout))
        .route_layer(from_fn_with_state(state.clone(), session::require_session));
    Router::new()
        .route("/login", get(session::login_form).post(session::login))
        .route("/static/dashboard.css", get(css))
        .route("/static/dashboard.js", get(js))
        .merge(signed_in)
        .fallback(not_found)
        .layer(from_fn(security_headers))
        .with_state(state)
}

/// Unknown paths of the admin listener outside the API: an HTML page, not an empty body.
async fn not_found() -> page::PageError {
    page::PageError::NotFound("page")
}

async fn css() -> Response {
    static_file("text/css; charset=utf-8", include_str!("../../static/dashboard.css"))
}

async fn js() -> Response {
    static_file("text/javascript; charset=utf-8", include_str!("../../static/dashboard.js"))
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

/// Headers every dashboard response carries: no framing (clickjacking), scripts and styles
/// only from the dashboard itself, no caching of pages that may show secrets once, and no
/// referrer leaking ids to other sites.
async fn security_headers(req: axum::extract::Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !is_static {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
