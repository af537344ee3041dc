//! SCIM in the admin API: the read views of an IdP's provisioned users and groups
//! (`identity_providers/{id}/scim/users|groups`, Cloudflare's query parameters), nested-group
//! drift (`identity_providers/{id}/scim/drift`), the SCIM provisioning log
//! (`logs/scim/updates`, Cloudflare's fields; every SCIM request is in it) and seats
//! (`PATCH seats`).

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::IdpId;
use gatehouse_store::{
    IdpStore, ScimAttr, ScimDriftRecord, ScimFilter, ScimGroupRecord, ScimLogFilter, ScimLogRecord, ScimOp, ScimStore,
    ScimUserRecord, ScimValue, UserStore,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::envelope::{ApiError, ErrorCode, ok, ok_list};
use super::extract::{ApiJson, PageParams, path_id};
use crate::AdminState;

fn bad_query(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery, msg)
}

/// Query parameters as (name, value) pairs; `name[]` is the same as `name`.
fn params(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.trim_end_matches("[]").to_owned(), v.into_owned()))
        .collect()
}

fn one<'a>(ps: &'a [(String, String)], name: &str) -> Option<&'a str> {
    ps.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

fn all(ps: &[(String, String)], name: &str) -> Vec<String> {
    ps.iter().filter(|(k, _)| k == name).flat_map(|(_, v)| v.split(',').map(str::trim).map(str::to_owned)).collect()
}

fn number(ps: &[(String, String)], name: &str) -> Result<Option<u32>, ApiError> {
    one(ps, name).map(|v| v.parse().map_err(|_| bad_query(format!("{name} {v:?}: not a number")))).transpose()
}

fn page_of(ps: &[(String, String)]) -> Result<gatehouse_store::Page, ApiError> {
    let per_page = number(ps, "per_page")?.or(number(ps, "limit")?);
    PageParams { page: number(ps, "page")?, per_page }.page()
}

/// Refuses unknown parameters, so a typo does not silently return everything.
fn known(ps: &[(String, String)], names: &[&str]) -> Result<(), ApiError> {
    match ps.iter().find(|(k, _)| !names.contains(&k.as_str())) {
        Some((k, _)) => Err(bad_query(format!("unknown query parameter {k:?}; known: {}", names.join(", ")))),
        None => Ok(()),
    }
}

async fn idp_of(state: &AdminState, uri: &OriginalUri, raw: &str) -> Result<IdpId, ApiError> {
    let id: IdpId = path_id(uri, raw)?;
    state.store.get_idp(id).await?.ok_or_else(|| ApiError::not_found("identity provider"))?;
    Ok(id)
}

fn and_all(terms: Vec<ScimFilter>) -> Option<ScimFilter> {
    terms.into_iter().reduce(|a, b| ScimFilter::And(Box::new(a), Box::new(b)))
}

fn cmp(attr: ScimAttr, op: ScimOp, v: &str) -> ScimFilter {
    ScimFilter::Compare { attr, op, value: ScimValue::Str(v.to_owned()) }
}

fn any_of(attr: ScimAttr, values: &[String]) -> Option<ScimFilter> {
    values.iter().take(50).map(|v| cmp(attr, ScimOp::Eq, v)).reduce(|a, b| ScimFilter::Or(Box::new(a), Box::new(b)))
}

fn resource(stored: &Value, id: &str, created: i64, modified: i64) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(id.to_owned()));
    if let Some(m) = stored.as_object() {
        for (k, v) in m {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert(
        "meta".into(),
        json!({"created": gatehouse_core::rfc3339(created), "lastModified": gatehouse_core::rfc3339(modified)}),
    );
    Value::Object(out)
}

fn render_user(u: &ScimUserRecord) -> Value {
    let mut v = resource(&u.resource, &u.id, u.created_at, u.updated_at);
    v["active"] = Value::Bool(u.active);
    v
}

fn render_group(g: &ScimGroupRecord) -> Value {
    resource(&g.resource, &g.id, g.created_at, g.updated_at)
}

/// `GET /accounts/{id}/access/identity_providers/{idp_id}/scim/users`.
pub(crate) async fn users(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, idp)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let idp = idp_of(&state, &uri, &idp).await?;
    let ps = params(raw.as_deref());
    known(&ps, &["cf_resource_id", "idp_resource_id", "email", "name", "username", "page", "per_page"])?;
    let page = page_of(&ps)?;
    let mut terms: Vec<ScimFilter> = Vec::new();
    terms.extend(any_of(ScimAttr::Id, &all(&ps, "cf_resource_id")));
    terms.extend(any_of(ScimAttr::ExternalId, &all(&ps, "idp_resource_id")));
    terms.extend(one(&ps, "email").map(|v| cmp(ScimAttr::Email, ScimOp::Eq, v)));
    terms.extend(one(&ps, "name").map(|v| cmp(ScimAttr::DisplayName, ScimOp::Eq, v)));
    terms.extend(one(&ps, "username").map(|v| cmp(ScimAttr::UserName, ScimOp::Eq, v)));
    let filter = and_all(terms);
    let offset = u64::from(page.page - 1) * u64::from(page.per_page);
    let found = state.store.scim_list_users(idp, filter.as_ref(), offset, page.per_page).await?;
    Ok(ok_list(found.items.iter().map(render_user).collect(), page.page, page.per_page, found.total))
}

/// `GET /accounts/{id}/access/identity_providers/{idp_id}/scim/groups`.
pub(crate) async fn groups(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, idp)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let idp = idp_of(&state, &uri, &idp).await?;
    let ps = params(raw.as_deref());
    known(
        &ps,
        &["cf_resource_id", "idp_resource_id", "name", "search_contains", "search_starts_with", "page", "per_page"],
    )?;
    let page = page_of(&ps)?;
    let mut terms: Vec<ScimFilter> = Vec::new();
    terms.extend(any_of(ScimAttr::Id, &all(&ps, "cf_resource_id")));
    terms.extend(any_of(ScimAttr::ExternalId, &all(&ps, "idp_resource_id")));
    terms.extend(one(&ps, "name").map(|v| cmp(ScimAttr::DisplayName, ScimOp::Eq, v)));
    terms.extend(one(&ps, "search_contains").map(|v| cmp(ScimAttr::DisplayName, ScimOp::Co, v)));
    terms.extend(one(&ps, "search_starts_with").map(|v| cmp(ScimAttr::DisplayName, ScimOp::Sw, v)));
    let filter = and_all(terms);
    let offset = u64::from(page.page - 1) * u64::from(page.per_page);
    let found = state.store.scim_list_groups(idp, filter.as_ref(), offset, page.per_page).await?;
    Ok(ok_list(found.items.iter().map(render_group).collect(), page.page, page.per_page, found.total))
}

fn render_drift(d: &ScimDriftRecord) -> Value {
    json!({
        "idp_id": d.idp_id.to_string(),
        "cf_resource_id": d.scim_user_id,
        "user_name": d.user_name,
        "group_cf_resource_id": d.group_id,
        "group_name": d.group_name,
        "group_idp_resource_id": d.group_external_id,
        "detected_at": gatehouse_core::rfc3339(d.detected_at),
        "reason": "At sign-in the user was in this group only through a nested group; Entra's SCIM sends direct \
                   members only. Assign the nested group to the provisioning app, or add the user directly.",
    })
}

/// `GET /accounts/{id}/access/identity_providers/{idp_id}/scim/drift`: users who reached a
/// provisioned group only through nesting at their last sign-in.
pub(crate) async fn drift(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, idp)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let idp = idp_of(&state, &uri, &idp).await?;
    let ps = params(raw.as_deref());
    known(&ps, &["page", "per_page"])?;
    let page = page_of(&ps)?;
    let found = state.store.scim_drift(Some(idp), page).await?;
    Ok(ok_list(found.items.iter().map(render_drift).collect(), page.page, page.per_page, found.total))
}

fn instant(name: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let t = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad_query(format!("{name} {raw:?}: expected an RFC 3339 time such as 2026-01-31T12:00:00Z")))?;
    Ok(Some(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)))
}

fn render_log(l: &ScimLogRecord) -> Value {
    json!({
        "logged_at": gatehouse_core::rfc3339(l.logged_at),
        "idp_id": l.idp_id.to_string(),
        "request_method": l.request_method,
        "resource_type": l.resource_type,
        "cf_resource_id": l.cf_resource_id,
        "idp_resource_id": l.idp_resource_id,
        "resource_user_email": l.resource_user_email,
        "resource_group_name": l.resource_group_name,
        "status": l.status,
        "error_description": l.error_description,
        "request_body": l.request_body,
    })
}

fn upper_in(ps: &[(String, String)], name: &str, allowed: &[&str]) -> Result<Vec<String>, ApiError> {
    all(ps, name)
        .into_iter()
        .map(|v| {
            let up = v.to_ascii_uppercase();
            if allowed.contains(&up.as_str()) {
                Ok(up)
            } else {
                Err(bad_query(format!("{name} {v:?}: one of {}", allowed.join(", "))))
            }
        })
        .collect()
}

/// `GET /accounts/{id}/access/logs/scim/updates`.
pub(crate) async fn logs(State(state): State<AdminState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let ps = params(raw.as_deref());
    known(
        &ps,
        &[
            "idp_id",
            "cf_resource_id",
            "idp_resource_id",
            "resource_user_email",
            "resource_group_name",
            "resource_type",
            "request_method",
            "status",
            "since",
            "until",
            "direction",
            "limit",
            "page",
            "per_page",
        ],
    )?;
    let idp_ids = all(&ps, "idp_id")
        .into_iter()
        .map(|v| v.parse::<IdpId>().map_err(|_| bad_query(format!("idp_id {v:?}: not an identity provider id"))))
        .collect::<Result<Vec<_>, _>>()?;
    let ascending = match one(&ps, "direction") {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => return Err(bad_query(format!("direction {other:?}: use asc or desc"))),
    };
    let filter = ScimLogFilter {
        idp_ids,
        methods: upper_in(&ps, "request_method", &["GET", "POST", "PUT", "PATCH", "DELETE"])?,
        resource_types: upper_in(&ps, "resource_type", &["USER", "GROUP", "CONFIG"])?,
        statuses: upper_in(&ps, "status", &["SUCCESS", "FAILURE"])?,
        cf_resource_id: one(&ps, "cf_resource_id").map(str::to_owned),
        idp_resource_id: one(&ps, "idp_resource_id").map(str::to_owned),
        resource_user_email: one(&ps, "resource_user_email").map(str::to_owned),
        resource_group_name: one(&ps, "resource_group_name").map(str::to_owned),
        since: instant("since", one(&ps, "since"))?,
        until: instant("until", one(&ps, "until"))?,
        ascending,
    };
    let page = page_of(&ps)?;
    let found = state.store.scim_logs(&filter, page).await?;
    Ok(ok_list(found.items.iter().map(render_log).collect(), page.page, page.per_page, found.total))
}

/// One seat change of `PATCH seats`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeatChange {
    seat_uid: String,
    access_seat: bool,
    #[allow(dead_code)]
    gateway_seat: bool,
}

/// `PATCH /accounts/{id}/access/seats`: sets users' Access seats (`seat_uid` is the user id;
/// Gatehouse has no Gateway seats, so `gateway_seat` is accepted and reported false).
pub(crate) async fn seats(
    State(state): State<AdminState>,
    ApiJson(changes): ApiJson<Vec<SeatChange>>,
) -> Result<Response, ApiError> {
    if changes.len() > 1000 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, "at most 1000 seats at once"));
    }
    // Every seat is checked before any changes, so a bad entry changes nothing.
    let mut ids = Vec::with_capacity(changes.len());
    for c in &changes {
        let id: Uuid = c.seat_uid.parse().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                format!("seat_uid {:?}: not a seat id", c.seat_uid),
            )
        })?;
        state.store.get_user(id).await?.ok_or_else(|| ApiError::not_found("seat"))?;
        ids.push(id);
    }
    let now = gatehouse_core::now_millis();
    let mut out = Vec::with_capacity(changes.len());
    for (c, id) in changes.iter().zip(ids) {
        state.store.set_access_seat(id, c.access_seat, now).await?;
        let user = state.store.get_user(id).await?.ok_or_else(|| ApiError::not_found("seat"))?;
        out.push(json!({
            "seat_uid": user.id, "access_seat": user.access_seat, "gateway_seat": false,
            "created_at": gatehouse_core::rfc3339(user.created_at),
            "updated_at": gatehouse_core::rfc3339(user.updated_at),
        }));
    }
    Ok(ok(out))
}
