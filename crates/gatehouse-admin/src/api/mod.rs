//! The Cloudflare v4-compatible REST API (`/client/v4`).
//!
//! Layout: authentication wraps every route (including unknown ones, so probing needs a
//! token); account-scoped routes additionally check the account id in the path.

pub(crate) mod accounts;
pub(crate) mod apps;
pub(crate) mod auth;
pub(crate) mod dataplane;
pub mod envelope;
pub(crate) mod extract;
pub(crate) mod idps;
pub(crate) mod keys;
pub(crate) mod organizations;
pub(crate) mod policies;
pub(crate) mod scim;
pub(crate) mod service_tokens;
pub(crate) mod users;

use axum::Router;
use axum::extract::{DefaultBodyLimit, OriginalUri, RawPathParams, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use axum::routing::{any, get, patch, post};
use gatehouse_core::AccountId;

use crate::{AdminState, MAX_BODY_BYTES};
use envelope::{ApiError, ErrorCode};

pub(crate) fn router(state: AdminState) -> Router {
    let account_scoped = Router::new()
        .route("/accounts/{account_id}/access/identity_providers", get(idps::list).post(idps::create))
        .route(
            "/accounts/{account_id}/access/identity_providers/{idp_id}",
            get(idps::get).put(idps::replace).delete(idps::delete),
        )
        .route(
            "/accounts/{account_id}/access/identity_providers/{idp_id}/refresh_scim_secret",
            post(idps::refresh_scim_secret).put(idps::refresh_scim_secret),
        )
        .route(
            "/accounts/{account_id}/access/organizations",
            get(organizations::get).put(organizations::update).post(organizations::update),
        )
        .route("/accounts/{account_id}/access/apps", get(apps::list).post(apps::create))
        .route("/accounts/{account_id}/access/apps/{app_id}", get(apps::get).put(apps::replace).delete(apps::delete))
        .route(
            "/accounts/{account_id}/access/apps/{app_id}/policies",
            get(apps::list_policies).post(apps::create_policy),
        )
        .route(
            "/accounts/{account_id}/access/apps/{app_id}/policies/{policy_id}",
            get(apps::get_policy).put(apps::replace_policy).delete(apps::delete_policy),
        )
        .route("/accounts/{account_id}/access/policies", get(policies::list).post(policies::create))
        .route(
            "/accounts/{account_id}/access/policies/{policy_id}",
            get(policies::get).put(policies::replace).delete(policies::delete),
        )
        .route("/accounts/{account_id}/access/groups", get(policies::list_groups).post(policies::create_group))
        .route(
            "/accounts/{account_id}/access/groups/{group_id}",
            get(policies::get_group).put(policies::replace_group).delete(policies::delete_group),
        )
        .route("/accounts/{account_id}/access/service_tokens", get(service_tokens::list).post(service_tokens::create))
        .route(
            "/accounts/{account_id}/access/service_tokens/{token_id}",
            get(service_tokens::get).put(service_tokens::update).delete(service_tokens::delete),
        )
        .route("/accounts/{account_id}/access/service_tokens/{token_id}/refresh", post(service_tokens::refresh))
        .route("/accounts/{account_id}/access/service_tokens/{token_id}/rotate", post(service_tokens::rotate))
        .route("/accounts/{account_id}/access/users", get(users::list))
        .route("/accounts/{account_id}/access/users/{user_id}", get(users::get))
        .route("/accounts/{account_id}/access/users/{user_id}/active_sessions", get(users::active_sessions))
        .route("/accounts/{account_id}/access/users/{user_id}/last_seen_identity", get(users::last_seen_identity))
        .route("/accounts/{account_id}/access/users/{user_id}/failed_logins", get(users::failed_logins))
        .route("/accounts/{account_id}/access/organizations/revoke_user", post(users::revoke_user))
        .route("/accounts/{account_id}/access/keys", get(keys::get).put(keys::update))
        .route("/accounts/{account_id}/access/keys/rotate", post(keys::rotate))
        .route("/accounts/{account_id}/access/apps/{app_id}/revoke_tokens", post(dataplane::revoke_app_tokens))
        .route("/accounts/{account_id}/access/logs/access_requests", get(dataplane::access_requests))
        .route("/accounts/{account_id}/access/logs/scim/updates", get(scim::logs))
        .route("/accounts/{account_id}/access/identity_providers/{idp_id}/scim/users", get(scim::users))
        .route("/accounts/{account_id}/access/identity_providers/{idp_id}/scim/groups", get(scim::groups))
        .route("/accounts/{account_id}/access/identity_providers/{idp_id}/scim/drift", get(scim::drift))
        .route("/accounts/{account_id}/access/seats", patch(scim::seats))
        .route("/accounts/{account_id}/cfd_tunnel", get(dataplane::list_tunnels))
        .route("/accounts/{account_id}/cfd_tunnel/{tunnel_id}", get(dataplane::get_tunnel))
        .route(
            "/accounts/{account_id}/cfd_tunnel/{tunnel_id}/configurations",
            get(dataplane::get_configuration).put(dataplane::put_configuration),
        )
        .route_layer(from_fn_with_state(state.clone(), check_account));

    Router::new()
        .route("/accounts", get(accounts::list))
        .route("/accounts/{account_id}", get(accounts::get))
        .route("/user/tokens/verify", get(accounts::verify_token))
        .route("/zones/{zone_id}/access/{*rest}", any(zone_scoped))
        .merge(account_scoped)
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), auth::require_token))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(count_requests))
        .with_state(state)
}

/// Counts API responses by method and status for `/metrics`.
async fn count_requests(req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let resp = next.run(req).await;
    metrics::counter!("gatehouse_admin_api_requests_total", "method" => method, "status" => resp.status().as_u16().to_string())
        .increment(1);
    resp
}

/// The `method` label: the name of a method the API serves, else `other`. A label per distinct
/// extension method would let anyone who can reach the listener add series without end.
fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Refuses account ids other than the installation's.
async fn check_account(
    State(state): State<AdminState>,
    uri: OriginalUri,
    params: RawPathParams,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let raw = params.iter().find(|(k, _)| *k == "account_id").map(|(_, v)| v).unwrap_or_default();
    let id: AccountId = extract::path_id(&uri, raw)?;
    if id != state.account_id {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NoRoute,
            format!(
                "Could not route to {}: account {id} does not exist here (GET /client/v4/accounts lists the account)",
                uri.path()
            ),
        ));
    }
    Ok(next.run(req).await)
}

async fn zone_scoped() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::NoRoute,
        "Zone-scoped Access endpoints are not supported; use /client/v4/accounts/{account_id}/access/...",
    )
}

async fn no_route(uri: OriginalUri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NoRoute, format!("No route for the URI {}", uri.path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("Method {} not allowed on {}", req.method(), req.uri().path()),
    )
}

/// The team domain's base URL (`scheme://host[:port]`): the organisation's `auth_domain` when
/// set, else the configured `public_url`.
pub(crate) fn team_base(state: &AdminState, org: &gatehouse_core::org::Organization) -> String {
    match &org.auth_domain {
        Some(domain) => format!("{}://{domain}", state.public_url.scheme()),
        None => state.public_url.origin().ascii_serialization(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn extension_methods_share_one_metrics_label() {
        assert_eq!(super::method_label(&http::Method::PATCH), "PATCH");
        let Ok(made_up) = http::Method::from_bytes(b"SERIES123") else { panic!("a valid method token") };
        assert_eq!(super::method_label(&made_up), "other");
    }
}
