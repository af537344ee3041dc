//! The admin API of a running emulator, under `/admin`: tenant edits between sign-ins or
//! provisioning cycles, reload of the tenant file, key rotation, Graph throttling, the clock,
//! and provisioning cycles.
//!
//! It is JSON in, JSON out, errors as `{"error": "..."}` with 400/404/409. It has no
//! authentication: the emulator is a local test tool and listens on loopback by default.
//! Objects in paths may be named by object id, UPN (users) or display name (groups). Every
//! edit goes through [`TenantHandle::edit`](crate::TenantHandle::edit), so the API and the
//! Rust API validate alike.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::provision::ProvisioningMode;
use crate::server::SimState;
use crate::tenant::{AppUpdate, DateTimeSpec, GroupSpec, GroupUpdate, Tenant, ThrottleConfig, UserSpec, UserUpdate};
use crate::{SimError, provision};

/// The admin routes (nested under `/admin`).
pub(crate) fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/tenant", get(tenant_summary))
        .route("/reload", post(reload))
        .route("/users", post(create_user))
        .route("/users/{id}", patch(update_user).delete(delete_user))
        .route("/users/{id}/restore", post(restore_user))
        .route("/groups", post(create_group))
        .route("/groups/{id}", patch(update_group).delete(delete_group))
        .route("/groups/{id}/members/{member}", put(add_member).delete(remove_member))
        .route("/scim/assignments/{id}", put(assign).delete(unassign))
        .route("/apps/{client_id}", patch(update_app))
        .route("/apps/{client_id}/secrets", post(add_secret))
        .route("/keys/rotate", post(rotate_keys))
        .route("/graph/throttle", get(get_throttle).put(set_throttle))
        .route("/clock/advance", post(advance_clock))
        .route("/sessions", delete(clear_sessions))
        .route("/provision", post(provision_cycle))
        .route("/provision/log", get(provision_log))
        .route("/provision/state", get(provision_state))
}

/// An admin API failure.
#[derive(Debug)]
struct AdminError(StatusCode, String);

impl From<SimError> for AdminError {
    fn from(e: SimError) -> Self {
        let status = match &e {
            SimError::NotFound(_) => StatusCode::NOT_FOUND,
            SimError::InvalidTenant(_)
            | SimError::ParseTenant { .. }
            | SimError::UnknownMode(_)
            | SimError::InvalidScimUrl { .. } => StatusCode::BAD_REQUEST,
            SimError::NoTenantFile => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "admin request failed");
        }
        AdminError(status, e.to_string())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

type AdminResult = Result<Response, AdminError>;

/// Parses a JSON body with the admin API's error format; an empty body is `{}`.
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| AdminError(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

fn no_content() -> AdminResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn member_id(t: &Tenant, reference: &str) -> Result<Uuid, SimError> {
    t.resolve_user(reference).or_else(|_| t.resolve_group(reference))
}

fn app_id(reference: &str) -> Result<Uuid, SimError> {
    Uuid::parse_str(reference).map_err(|_| SimError::NotFound(format!("app {reference:?}")))
}

async fn tenant_summary(State(st): State<Arc<SimState>>) -> AdminResult {
    let kids = st.keys().kids();
    let summary = st.tenant.read(|t| {
        let users: Vec<Value> = t
            .users()
            .map(|u| {
                json!({
                    "id": u.id, "upn": u.upn, "display_name": u.display_name, "mail": u.mail(),
                    "enabled": u.enabled, "soft_deleted": u.soft_deleted, "manager": u.manager,
                    "groups": t.direct_groups(u.id).iter().map(|g| g.id).collect::<Vec<_>>(),
                })
            })
            .collect();
        let groups: Vec<Value> = t
            .groups()
            .map(|g| {
                json!({
                    "id": g.id, "display_name": g.display_name, "security_enabled": g.security_enabled,
                    "member_users": g.member_users, "member_groups": g.member_groups,
                })
            })
            .collect();
        let apps: Vec<Value> = t
            .apps()
            .map(|a| {
                let secrets: Vec<Value> = a
                    .secrets
                    .iter()
                    .map(|s| {
                        let expires =
                            s.expires.and_then(|e| e.format(&time::format_description::well_known::Rfc3339).ok());
                        json!({ "id": s.id, "hint": s.hint(), "expires": expires, "display_name": s.display_name })
                    })
                    .collect();
                json!({
                    "client_id": a.client_id, "display_name": a.display_name, "redirect_uris": a.redirect_uris,
                    "admin_consent": a.admin_consent, "group_membership_claims": a.group_membership_claims,
                    "optional_claims": a.optional_claims, "graph_permissions": a.graph_permissions,
                    "public_client": a.public_client, "secrets": secrets,
                })
            })
            .collect();
        let info = t.info();
        json!({
            "tenant": { "id": info.id, "display_name": info.display_name, "domain": info.domain, "cloud": info.cloud },
            "urls": st.urls,
            "users": users,
            "groups": groups,
            "apps": apps,
            "scim": { "users": t.scim_assignments().users, "groups": t.scim_assignments().groups },
            "keys": kids,
        })
    });
    Ok(axum::Json(summary).into_response())
}

async fn reload(State(st): State<Arc<SimState>>) -> AdminResult {
    st.tenant.reload()?;
    no_content()
}

async fn create_user(State(st): State<Arc<SimState>>, bytes: Bytes) -> AdminResult {
    let spec: UserSpec = body(&bytes)?;
    let id = st.tenant.edit(|t| t.add_user(spec))?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response())
}

async fn update_user(State(st): State<Arc<SimState>>, Path(user): Path<String>, bytes: Bytes) -> AdminResult {
    let update: UserUpdate = body(&bytes)?;
    st.tenant.edit(|t| {
        let id = t.resolve_user(&user)?;
        t.update_user(id, update)
    })?;
    no_content()
}

async fn delete_user(
    State(st): State<Arc<SimState>>,
    Path(user): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> AdminResult {
    let soft = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "soft" && (v == "true" || v == "1"));
    st.tenant.edit(|t| {
        let id = t.resolve_user(&user)?;
        if soft { t.soft_delete_user(id) } else { t.delete_user(id) }
    })?;
    no_content()
}

async fn restore_user(State(st): State<Arc<SimState>>, Path(user): Path<String>) -> AdminResult {
    st.tenant.edit(|t| {
        let id = t.resolve_user(&user)?;
        t.restore_user(id)
    })?;
    no_content()
}

async fn create_group(State(st): State<Arc<SimState>>, bytes: Bytes) -> AdminResult {
    let spec: GroupSpec = body(&bytes)?;
    let id = st.tenant.edit(|t| t.add_group(spec))?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response())
}

async fn update_group(State(st): State<Arc<SimState>>, Path(group): Path<String>, bytes: Bytes) -> AdminResult {
    let update: GroupUpdate = body(&bytes)?;
    st.tenant.edit(|t| {
        let id = t.resolve_group(&group)?;
        t.update_group(id, update)
    })?;
    no_content()
}

async fn delete_group(State(st): State<Arc<SimState>>, Path(group): Path<String>) -> AdminResult {
    st.tenant.edit(|t| {
        let id = t.resolve_group(&group)?;
        t.delete_group(id)
    })?;
    no_content()
}

async fn add_member(State(st): State<Arc<SimState>>, Path((group, member)): Path<(String, String)>) -> AdminResult {
    st.tenant.edit(|t| {
        let gid = t.resolve_group(&group)?;
        let mid = member_id(t, &member)?;
        t.add_member(gid, mid)
    })?;
    no_content()
}

async fn remove_member(State(st): State<Arc<SimState>>, Path((group, member)): Path<(String, String)>) -> AdminResult {
    st.tenant.edit(|t| {
        let gid = t.resolve_group(&group)?;
        let mid = member_id(t, &member)?;
        t.remove_member(gid, mid)
    })?;
    no_content()
}

async fn assign(State(st): State<Arc<SimState>>, Path(object): Path<String>) -> AdminResult {
    st.tenant.edit(|t| {
        let id = member_id(t, &object)?;
        t.assign_scim(id)
    })?;
    no_content()
}

async fn unassign(State(st): State<Arc<SimState>>, Path(object): Path<String>) -> AdminResult {
    st.tenant.edit(|t| {
        let id = member_id(t, &object)?;
        t.unassign_scim(id)
    })?;
    no_content()
}

async fn update_app(State(st): State<Arc<SimState>>, Path(client): Path<String>, bytes: Bytes) -> AdminResult {
    let update: AppUpdate = body(&bytes)?;
    let id = app_id(&client)?;
    st.tenant.edit(|t| t.update_app(id, update))?;
    no_content()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSecret {
    #[serde(default)]
    expires: Option<DateTimeSpec>,
    #[serde(default)]
    display_name: Option<String>,
}

async fn add_secret(State(st): State<Arc<SimState>>, Path(client): Path<String>, bytes: Bytes) -> AdminResult {
    let request: NewSecret = body(&bytes)?;
    let id = app_id(&client)?;
    let (secret_id, value) =
        st.tenant.edit(|t| t.add_app_secret(id, request.expires.map(|e| e.0), request.display_name))?;
    // Returned once, as the portal shows a new secret's value only on creation.
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": secret_id, "value": value }))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotate {
    #[serde(default = "keep")]
    keep_previous: bool,
}

fn keep() -> bool {
    true
}

async fn rotate_keys(State(st): State<Arc<SimState>>, bytes: Bytes) -> AdminResult {
    let request: Rotate = body(&bytes)?;
    // RSA key generation takes a moment; keep it off the async workers.
    let worker = st.clone();
    let kid = tokio::task::spawn_blocking(move || worker.rotate_keys(request.keep_previous))
        .await
        .map_err(|e| AdminError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(axum::Json(json!({ "kid": kid, "published": st.keys().kids() })).into_response())
}

async fn get_throttle(State(st): State<Arc<SimState>>) -> AdminResult {
    Ok(axum::Json(st.throttle().config()).into_response())
}

async fn set_throttle(State(st): State<Arc<SimState>>, bytes: Bytes) -> AdminResult {
    let config: ThrottleConfig = body(&bytes)?;
    st.throttle().configure(config);
    Ok(axum::Json(config).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: u64,
}

async fn advance_clock(State(st): State<Arc<SimState>>, bytes: Bytes) -> AdminResult {
    let request: Advance = body(&bytes)?;
    st.clock.advance(std::time::Duration::from_secs(request.seconds));
    let now = st.clock.now().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    Ok(axum::Json(json!({ "now": now })).into_response())
}

async fn clear_sessions(State(st): State<Arc<SimState>>) -> AdminResult {
    st.store().sessions.clear();
    no_content()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvisionRequest {
    scim_url: String,
    token: String,
    #[serde(default)]
    mode: ProvisioningMode,
}

async fn provision_cycle(State(st): State<Arc<SimState>>, bytes: Bytes) -> AdminResult {
    let request: ProvisionRequest = body(&bytes)?;
    let report = provision::run_in(&st, &request.scim_url, &request.token, request.mode).await?;
    Ok(axum::Json(report).into_response())
}

async fn provision_log(State(st): State<Arc<SimState>>) -> AdminResult {
    let log = st.provisioning.lock().await.log().to_vec();
    Ok(axum::Json(log).into_response())
}

async fn provision_state(State(st): State<Arc<SimState>>) -> AdminResult {
    let state = st.provisioning.lock().await;
    Ok(axum::Json(json!({ "cycles": state.cycles(), "ids": state.id_mapping() })).into_response())
}
