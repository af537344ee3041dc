//! The user registry: `/access/users` (seats, last login), a user's active sessions, last
//! seen identity and failed sign-ins, and `organizations/revoke_user`, which ends every
//! session of a user at once.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_store::{FailedLoginStore, SessionKind, SessionStore, UserRecord, UserStore};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::envelope::{ApiError, ErrorCode, ok, ok_list};
use super::extract::{ApiJson, ApiQuery, PageParams, path_id};
use crate::AdminState;

fn render(u: &UserRecord) -> Value {
    json!({
        "id": u.id, "uid": u.id, "email": u.email, "name": u.name,
        "access_seat": u.access_seat, "gateway_seat": false, "seat_uid": u.id,
        "active_device_count": 0,
        "last_successful_login": u.last_login_at.map(gatehouse_core::rfc3339),
        "created_at": gatehouse_core::rfc3339(u.created_at),
        "updated_at": gatehouse_core::rfc3339(u.updated_at),
    })
}

/// Query of the users list.
#[derive(Debug, Deserialize)]
pub(crate) struct UsersQuery {
    page: Option<u32>,
    per_page: Option<u32>,
    search: Option<String>,
    email: Option<String>,
    name: Option<String>,
}

pub(crate) async fn list(
    State(state): State<AdminState>,
    ApiQuery(q): ApiQuery<UsersQuery>,
) -> Result<Response, ApiError> {
    let page = PageParams { page: q.page, per_page: q.per_page }.page()?;
    let search = q.search.or(q.email).or(q.name).filter(|s| !s.is_empty());
    if search.as_ref().is_some_and(|s| s.len() > 256) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            "search is longer than 256 characters",
        ));
    }
    let found = state.store.list_users(search.as_deref(), page).await?;
    Ok(ok_list(found.items.iter().map(render).collect(), page.page, page.per_page, found.total))
}

async fn load(state: &AdminState, uri: &OriginalUri, raw: &str) -> Result<UserRecord, ApiError> {
    let id: Uuid = path_id(uri, raw)?;
    state.store.get_user(id).await?.ok_or_else(|| ApiError::not_found("user"))
}

pub(crate) async fn get(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(render(&load(&state, &uri, &id).await?)))
}

pub(crate) async fn active_sessions(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let user = load(&state, &uri, &id).await?;
    let sessions = state.store.active_sessions(user.id, gatehouse_core::now_millis()).await?;
    let items: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "name": match s.kind { SessionKind::Org => "org", SessionKind::App => "app" },
                "expiration": s.expires_at / 1000,
                "metadata": {"nonce": s.nonce, "iat": s.created_at / 1000, "expires": s.expires_at / 1000,
                             "ttl": (s.expires_at - s.created_at) / 1000, "apps": {}},
            })
        })
        .collect();
    let n = items.len() as u64;
    Ok(ok_list(items, 1, u32::try_from(n.max(1)).unwrap_or(u32::MAX), n))
}

pub(crate) async fn last_seen_identity(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let user = load(&state, &uri, &id).await?;
    let mut identity = user.identity.clone();
    if let Some(obj) = identity.as_object_mut() {
        obj.insert("user_uuid".into(), json!(user.id));
        obj.insert("account_id".into(), json!(state.account_id.to_string()));
    }
    Ok(ok(identity))
}

/// Most failed sign-ins listed for one user.
const FAILED_LOGINS_LISTED: u32 = 1000;

/// `users/{id}/failed_logins`: the user's failed sign-ins, newest first, in Cloudflare's shape
/// (`expiration`, when the record goes, and `metadata`), plus why each failed.
pub(crate) async fn failed_logins(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let user = load(&state, &uri, &id).await?;
    let now = gatehouse_core::now_millis();
    let found = state.store.failed_logins(user.idp_id, &user.subject, now, FAILED_LOGINS_LISTED).await?;
    let items: Vec<Value> = found
        .iter()
        .map(|f| {
            json!({
                "expiration": f.expires_at / 1000,
                "metadata": {
                    "app_name": f.app_name.as_deref().unwrap_or_default(),
                    "aud": f.aud.as_deref().unwrap_or_default(),
                    "datetime": gatehouse_core::rfc3339(f.created_at),
                    "ray_id": f.ray_id,
                    "user_email": f.email.as_deref().unwrap_or(&user.email),
                    "user_uuid": user.id,
                    "idp_id": f.idp_id.map(|i| i.to_string()),
                    "ip": f.ip_address,
                    "reason_code": f.reason_code,
                    "reason": f.reason,
                },
            })
        })
        .collect();
    let n = items.len() as u64;
    Ok(ok_list(items, 1, u32::try_from(n.max(1)).unwrap_or(u32::MAX), n))
}

/// Body of `organizations/revoke_user`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeUser {
    email: Option<String>,
    user_uid: Option<String>,
    /// Accepted for compatibility: this gateway registers no devices.
    #[allow(dead_code)]
    devices: Option<bool>,
    /// Accepted for compatibility: there is no WARP client session to re-authenticate.
    #[allow(dead_code)]
    warp_session_reauth: Option<bool>,
}

/// Revokes every session of the users matching `user_uid` or (exactly) `email`.
pub(crate) async fn revoke_user(
    State(state): State<AdminState>,
    ApiJson(body): ApiJson<RevokeUser>,
) -> Result<Response, ApiError> {
    let invalid = |m: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            format!("access.api.error.invalid_request: {m}"),
        )
    };
    let mut users = Vec::new();
    if let Some(uid) = body.user_uid.as_deref().filter(|s| !s.is_empty()) {
        let id = Uuid::parse_str(uid).map_err(|_| invalid("user_uid: must be a user id (UUID)"))?;
        users.extend(state.store.get_user(id).await?);
    } else if let Some(email) = body.email.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let email = email.to_ascii_lowercase();
        let found = state.store.list_users(Some(&email), gatehouse_store::Page::new(1, 1000)).await?;
        users.extend(found.items.into_iter().filter(|u| u.email == email));
    } else {
        return Err(invalid("email or user_uid is required"));
    }
    if users.is_empty() {
        return Err(ApiError::not_found("user"));
    }
    let now = gatehouse_core::now_millis();
    for u in &users {
        let n = state.store.revoke_user_sessions(u.id, now).await?;
        tracing::info!(user = %u.id, sessions = n, "user sessions revoked");
    }
    Ok(ok(true))
}
