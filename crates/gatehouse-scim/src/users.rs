//! `/Users`: list with filter and pagination, GET, POST, PUT, PATCH (RFC 7644 plus Entra's
//! quirks, through [`crate::patch`]) and DELETE. A user is deactivated, not deleted, when
//! Entra unassigns or disables it; deactivation and deletion run the deprovisioning effects.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_store::ScimStore;
use serde_json::Value;

use crate::effects;
use crate::error::ScimError;
use crate::patch::{ResourceKind, apply_patch};
use crate::query::{ReadQuery, list_response};
use crate::resource::{self, render_user};
use crate::server::{Authed, LogEntry, ResourceId, ScimJson, ScimState, scim_response, store_error};

fn not_found(id: &str) -> ScimError {
    ScimError { status: 404, scim_type: None, detail: format!("no user with id {id:?}") }
}

fn with_location(mut resp: Response, user: &serde_json::Map<String, Value>) -> Response {
    if let Some(loc) = user.get("meta").and_then(|m| m.get("location")).and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(loc)
    {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(version) = user.get("meta").and_then(|m| m.get("version")).and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(version)
    {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// `GET /Users`.
pub(crate) async fn list(State(state): State<ScimState>, auth: Authed, RawQuery(raw): RawQuery) -> Response {
    let result = match ReadQuery::parse(raw.as_deref(), ResourceKind::User) {
        Ok(q) => list_with(&state, &auth, q).await,
        Err(e) => Err(e),
    };
    LogEntry::new("GET", "USER").finish(&state, auth.idp.id, result)
}

/// `POST /Users/.search`.
pub(crate) async fn search(
    State(state): State<ScimState>,
    auth: Authed,
    body: Result<ScimJson, ScimError>,
) -> Response {
    let mut log = LogEntry::new("POST", "USER");
    let result = match body {
        Ok(ScimJson(value, text)) => {
            log.body = Some(resource::redacted_body(&text));
            match ReadQuery::from_search(&value, ResourceKind::User) {
                Ok(q) => list_with(&state, &auth, q).await,
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    log.finish(&state, auth.idp.id, result)
}

async fn list_with(state: &ScimState, auth: &Authed, q: ReadQuery) -> Result<Response, ScimError> {
    let page = state
        .store()
        .scim_list_users(auth.idp.id, q.filter.as_ref(), q.start_index - 1, q.count)
        .await
        .map_err(store_error)?;
    let base = state.base_url(auth.idp.id);
    let resources = page
        .items
        .iter()
        .map(|u| {
            let mut r = render_user(u, &base);
            q.projection.apply(&mut r);
            Value::Object(r)
        })
        .collect();
    Ok(scim_response(StatusCode::OK, &list_response(page.total, q.start_index, resources)))
}

/// `GET /Users/{id}`.
pub(crate) async fn get(
    State(state): State<ScimState>,
    auth: Authed,
    ResourceId(id): ResourceId,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut log = LogEntry::new("GET", "USER");
    log.cf_resource_id = Some(id.clone());
    let result = async {
        let q = ReadQuery::parse(raw.as_deref(), ResourceKind::User)?;
        let user =
            state.store().scim_get_user(auth.idp.id, &id).await.map_err(store_error)?.ok_or_else(|| not_found(&id))?;
        let mut r = render_user(&user, &state.base_url(auth.idp.id));
        q.projection.apply(&mut r);
        Ok(with_location(scim_response(StatusCode::OK, &Value::Object(r.clone())), &r))
    };
    log.finish(&state, auth.idp.id, result.await)
}

/// `POST /Users`: 201, or 409 `uniqueness` when the `userName` is taken (ignoring case).
pub(crate) async fn create(
    State(state): State<ScimState>,
    auth: Authed,
    body: Result<ScimJson, ScimError>,
) -> Response {
    let mut log = LogEntry::new("POST", "USER");
    let result = async {
        let ScimJson(value, text) = body?;
        log.body = Some(resource::redacted_body(&text));
        let mut map = resource::object(value)?;
        let fields = resource::user_fields(&mut map)?;
        log.user_email = Some(fields.user_name.clone());
        log.idp_resource_id.clone_from(&fields.external_id);
        let user = resource::new_user(auth.idp.id, map, fields, gatehouse_core::now_millis());
        state.store().scim_insert_user(&user).await.map_err(store_error)?;
        log.cf_resource_id = Some(user.id.clone());
        if !user.active {
            effects::user_inactive(state.store(), &auth.idp, &user).await.map_err(store_error)?;
        }
        let r = render_user(&user, &state.base_url(auth.idp.id));
        Ok(with_location(scim_response(StatusCode::CREATED, &Value::Object(r.clone())), &r))
    };
    let result = result.await;
    log.finish(&state, auth.idp.id, result)
}

/// `PUT /Users/{id}`: replaces every attribute.
pub(crate) async fn replace(
    State(state): State<ScimState>,
    auth: Authed,
    ResourceId(id): ResourceId,
    body: Result<ScimJson, ScimError>,
) -> Response {
    let mut log = LogEntry::new("PUT", "USER");
    log.cf_resource_id = Some(id.clone());
    let result = async {
        let ScimJson(value, text) = body?;
        log.body = Some(resource::redacted_body(&text));
        let current =
            state.store().scim_get_user(auth.idp.id, &id).await.map_err(store_error)?.ok_or_else(|| not_found(&id))?;
        let mut map = resource::object(value)?;
        let fields = resource::user_fields(&mut map)?;
        log.user_email = Some(fields.user_name.clone());
        log.idp_resource_id.clone_from(&fields.external_id);
        let user = updated(&current, map, fields);
        save(&state, &auth, &user).await
    };
    let result = result.await;
    log.finish(&state, auth.idp.id, result)
}

fn updated(
    current: &gatehouse_store::ScimUserRecord,
    map: serde_json::Map<String, Value>,
    f: resource::UserFields,
) -> gatehouse_store::ScimUserRecord {
    gatehouse_store::ScimUserRecord {
        user_name: f.user_name,
        external_id: f.external_id,
        display_name: f.display_name,
        email: f.email,
        active: f.active,
        resource: Value::Object(map),
        version: current.version + 1,
        updated_at: gatehouse_core::now_millis(),
        ..current.clone()
    }
}

/// Stores a changed user, runs deprovisioning when it is inactive, answers 200 with it.
async fn save(state: &ScimState, auth: &Authed, user: &gatehouse_store::ScimUserRecord) -> Result<Response, ScimError> {
    if !state.store().scim_update_user(user).await.map_err(store_error)? {
        return Err(not_found(&user.id));
    }
    if !user.active {
        effects::user_inactive(state.store(), &auth.idp, user).await.map_err(store_error)?;
    }
    let r = render_user(user, &state.base_url(auth.idp.id));
    Ok(with_location(scim_response(StatusCode::OK, &Value::Object(r.clone())), &r))
}

/// `PATCH /Users/{id}`: 200 with the user.
pub(crate) async fn patch(
    State(state): State<ScimState>,
    auth: Authed,
    ResourceId(id): ResourceId,
    body: Result<ScimJson, ScimError>,
) -> Response {
    let mut log = LogEntry::new("PATCH", "USER");
    log.cf_resource_id = Some(id.clone());
    let result = async {
        let ScimJson(value, text) = body?;
        log.body = Some(resource::redacted_body(&text));
        let current =
            state.store().scim_get_user(auth.idp.id, &id).await.map_err(store_error)?.ok_or_else(|| not_found(&id))?;
        log.user_email = Some(current.user_name.clone());
        log.idp_resource_id.clone_from(&current.external_id);
        let mut doc = current.resource.clone();
        if let Some(m) = doc.as_object_mut() {
            m.insert("id".into(), Value::String(current.id.clone()));
        }
        let outcome = apply_patch(&mut doc, &value, ResourceKind::User)?;
        if !outcome.changed {
            if !current.active {
                // A retried deactivation: make sure its effects happened.
                effects::user_inactive(state.store(), &auth.idp, &current).await.map_err(store_error)?;
            }
            let r = render_user(&current, &state.base_url(auth.idp.id));
            return Ok(with_location(scim_response(StatusCode::OK, &Value::Object(r.clone())), &r));
        }
        let mut map = resource::object(doc)?;
        let fields = resource::user_fields(&mut map)?;
        log.user_email = Some(fields.user_name.clone());
        let user = updated(&current, map, fields);
        save(&state, &auth, &user).await
    };
    let result = result.await;
    log.finish(&state, auth.idp.id, result)
}

/// `DELETE /Users/{id}`: 204; the user's memberships go with it.
pub(crate) async fn delete(State(state): State<ScimState>, auth: Authed, ResourceId(id): ResourceId) -> Response {
    let mut log = LogEntry::new("DELETE", "USER");
    log.cf_resource_id = Some(id.clone());
    let result = async {
        let store = state.store();
        let user = store.scim_get_user(auth.idp.id, &id).await.map_err(store_error)?.ok_or_else(|| not_found(&id))?;
        log.user_email = Some(user.user_name.clone());
        log.idp_resource_id.clone_from(&user.external_id);
        let groups = store.scim_user_groups(&user.id).await.map_err(store_error)?;
        if !store.scim_delete_user(auth.idp.id, &id).await.map_err(store_error)? {
            return Err(not_found(&id));
        }
        effects::user_inactive(store, &auth.idp, &user).await.map_err(store_error)?;
        for g in &groups {
            effects::member_changed(store, &auth.idp, g, &user, false).await.map_err(store_error)?;
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    let result = result.await;
    log.finish(&state, auth.idp.id, result)
}
