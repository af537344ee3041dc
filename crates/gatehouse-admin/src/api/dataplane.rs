//! The data plane's API: the ingress configuration in `cloudflared`'s shape under
//! `cfd_tunnel/{tunnel_id}/configurations` (the gateway is the account's one tunnel), the
//! access decision log (`access/logs/access_requests`), and per-application token revocation
//! (`access/apps/{id}/revoke_tokens`).

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::{AppId, now_millis, rfc3339};
use gatehouse_proxy::ingress;
use gatehouse_store::{AccessLogFilter, AccessLogRecord, AppStore as _, DataPlaneStore as _};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::envelope::{ApiError, ErrorCode, ok, ok_list};
use super::extract::{ApiJson, ApiQuery, PageParams, path_id};
use crate::AdminState;

const TUNNEL_NAME: &str = "gatehouse";

async fn tunnel(state: &AdminState, uri: &OriginalUri, raw: &str) -> Result<Uuid, ApiError> {
    let id: Uuid = path_id(uri, raw)?;
    let ours = state.store.tunnel_id().await?;
    if id != ours {
        return Err(ApiError::not_found("tunnel"));
    }
    Ok(ours)
}

fn render_tunnel(id: Uuid) -> Value {
    json!({
        "id": id, "name": TUNNEL_NAME, "status": "healthy", "tun_type": "cfd_tunnel",
        "config_src": "cloudflare", "remote_config": true, "connections": [],
        "deleted_at": null,
    })
}

/// `GET /accounts/{id}/cfd_tunnel`: the gateway itself, as the account's only tunnel.
pub(crate) async fn list_tunnels(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let id = state.store.tunnel_id().await?;
    Ok(ok_list(vec![render_tunnel(id)], 1, 1, 1))
}

/// `GET /accounts/{id}/cfd_tunnel/{tunnel_id}`.
pub(crate) async fn get_tunnel(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(render_tunnel(tunnel(&state, &uri, &id).await?)))
}

/// `GET .../cfd_tunnel/{tunnel_id}/configurations`: the rules in effect — the API's when set,
/// else the configuration file's.
pub(crate) async fn get_configuration(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = tunnel(&state, &uri, &id).await?;
    let result = match state.store.ingress().await? {
        Some(s) => json!({
            "tunnel_id": id, "version": s.version, "config": s.config,
            "source": "cloudflare", "created_at": rfc3339(s.updated_at),
        }),
        None => {
            let rules =
                if state.ingress_file.is_empty() { ingress::default_rules() } else { state.ingress_file.to_vec() };
            json!({
                "tunnel_id": id, "version": 0, "config": {"ingress": rules},
                "source": "local", "created_at": null,
            })
        }
    };
    Ok(ok(result))
}

/// Body of `PUT .../configurations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigurationBody {
    config: Value,
}

/// `PUT .../cfd_tunnel/{tunnel_id}/configurations`: validates and stores the rules; every
/// instance applies them on the change notification.
pub(crate) async fn put_configuration(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ConfigurationBody>,
) -> Result<Response, ApiError> {
    let id = tunnel(&state, &uri, &id).await?;
    let invalid = |errs: Vec<String>| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            format!("Invalid ingress: {}", errs.join("; ")),
        )
    };
    let rules = ingress::rules_from_config(&body.config).map_err(invalid)?;
    ingress::validate(&rules).map_err(invalid)?;
    let stored = state.store.put_ingress(&body.config, now_millis()).await?;
    Ok(ok(json!({
        "tunnel_id": id, "version": stored.version, "config": stored.config,
        "source": "cloudflare", "created_at": rfc3339(stored.updated_at),
    })))
}

/// `POST /accounts/{id}/access/apps/{app_id}/revoke_tokens`: every token issued for the
/// application until now stops working, on every instance.
pub(crate) async fn revoke_app_tokens(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let app: AppId = path_id(&uri, &id)?;
    if state.store.get_app(app).await?.is_none() {
        return Err(ApiError::not_found("application"));
    }
    state.store.revoke_app_tokens(app, now_millis()).await?;
    Ok(ok(Value::Null))
}

/// Query of the access log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogQuery {
    page: Option<u32>,
    per_page: Option<u32>,
    limit: Option<u32>,
    direction: Option<String>,
    since: Option<String>,
    until: Option<String>,
    email: Option<String>,
    allowed: Option<bool>,
    app_uid: Option<String>,
}

fn instant(name: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let t = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            format!("{name} {raw:?}: expected an RFC 3339 time such as 2026-01-31T12:00:00Z"),
        )
    })?;
    Ok(Some(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)))
}

fn render_log(l: &AccessLogRecord) -> Value {
    json!({
        "ray_id": l.ray_id, "created_at": rfc3339(l.created_at),
        "app_uid": l.app_id, "app_domain": l.app_domain,
        "user_email": l.user_email, "user_uid": l.user_id, "ip_address": l.ip_address,
        "action": l.action, "allowed": l.allowed, "decision": l.decision,
        "policy_id": l.policy_id, "reason": l.reason, "connection": l.connection,
        "request": l.request, "status": l.status, "latency_us": l.latency_us,
    })
}

/// `GET /accounts/{id}/access/logs/access_requests`.
pub(crate) async fn access_requests(
    State(state): State<AdminState>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Response, ApiError> {
    let newest_first = match q.direction.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                format!("direction {other:?}: use asc or desc"),
            ));
        }
    };
    let app_id = match q.app_uid.as_deref() {
        Some(raw) => Some(raw.parse::<AppId>().map_err(|_| {
            ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery, format!("app_uid {raw:?}: not an id"))
        })?),
        None => None,
    };
    let filter = AccessLogFilter {
        since: instant("since", q.since.as_deref())?,
        until: instant("until", q.until.as_deref())?,
        email: q.email.filter(|e| !e.is_empty()),
        allowed: q.allowed,
        app_id,
        newest_first,
    };
    let page = PageParams { page: q.page, per_page: q.per_page.or(q.limit) }.page()?;
    let found = state.store.list_access_logs(&filter, page).await?;
    Ok(ok_list(found.items.iter().map(render_log).collect(), page.page, page.per_page, found.total))
}
