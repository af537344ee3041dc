//! `/Groups`: list, GET (members only when wanted: Entra sends `excludedAttributes=members`),
//! POST, PUT, PATCH (204, as Entra recommends: no member list in the answer) and DELETE.
//! Members are users of the same IdP; membership changes run the identity-update effects.

use std::collections::HashSet;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_store::{MemberChange, ScimGroupRecord, ScimMember, ScimStore};
use serde_json::{Value, json};

use crate::effects;
use crate::error::ScimError;
use crate::patch::{ResourceKind, apply_patch};
use crate::query::{ReadQuery, list_response};
use crate::resource::{self, render_group};
use crate::server::{Authed, LogEntry, ResourceId, ScimJson, ScimState, scim_response, store_error};

fn not_found(id: &str) -> ScimError {
    ScimError { status: 404, scim_type: None, detail: format!("no group with id {id:?}") }
}

fn answer(status: StatusCode, g: serde_json::Map<String, Value>) -> Response {
    let mut resp = scim_response(status, &Value::Object(g.clone()));
    let meta = g.get("meta");
    for (name, key) in [(header::LOCATION, "location"), (header::ETAG, "version")] {
        if let Some(v) =
            meta.and_then(|m| m.get(key)).and_then(Value::as_str).and_then(|v| HeaderValue::from_str(v).ok())
        {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

async fn members_of(state: &ScimState, g: &ScimGroupRecord) -> Result<Vec<ScimMember>, ScimError> {
    state.store().scim_group_members(&g.id).await.map_err(store_error)
}

/// `GET /Groups`.
pub(crate) async fn list(State(state): State<ScimState>, auth: Authed, RawQuery(raw): RawQuery) -> Response {
    let result = match ReadQuery::parse(raw.as_deref(), ResourceKind::Group) {
        Ok(q) => list_with(&state, &auth, q).await,
        Err(e) => Err(e),
    };
    LogEntry::new("GET", "GROUP").finish(&state, auth.idp.id, result)
}

/// `POST /Groups/.search`.
pub(crate) async fn search(
    State(state): State<ScimState>,
    auth: Authed,
    body: Result<ScimJson, ScimError>,
) -> Response {
    let mut log = LogEntry::new("POST", "GROUP");
    let result = match body {
        Ok(ScimJson(value, text)) => {
            log.body = Some(resource::redacted_body(&text));
            match ReadQuery::from_search(&value, ResourceKind::Group) {
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
        .scim_list_groups(auth.idp.id, q.filter.as_ref(), q.start_index - 1, q.count)
        .await
        .map_err(store_error)?;
    let base = state.base_url(auth.idp.id);
    let mut resources = Vec::with_capacity(page.items.len());
    for g in &page.items {
        let members = if q.projection.wants("members") { Some(members_of(state, g).await?) } else { None };
        let mut r = render_group(g, members.as_deref(), &base);
        q.projection.apply(&mut r);
        resources.push(Value::Object(r));
    }
    Ok(scim_response(StatusCode::OK, &list_response(page.total, q.start_index, resources)))
}

/// `GET /Groups/{id}`.
pub(crate) async fn get(
    State(state): State<ScimState>,
    auth: Authed,
    ResourceId(id): ResourceId,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut log = LogEntry::new("GET", "GROUP");
    log.cf_resource_id = Some(id.clone());
    let result = async {
        let q = ReadQuery::parse(raw.as_deref(), ResourceKind::Group)?;
        let g =
            state.store().scim_get_group(auth.idp.id, &id).await.map_err(store_error)?.ok_or_else(|| not_found(&id))?;
        let members = if q.projection.wants("members") { Some(members_of(&state, &g).await?) } else { None };
        let mut r = render_group(&g, members.as_deref(), &state.base_url(auth.idp.id));
        q.projection.apply(&mut r);
        Ok(answer(StatusCode::OK, r))
    };
    log.finish(&state, auth.idp.id, result.await)
}

/// `POST /Groups`: 201, or 409 `uniqueness` when the `displayName` is taken.
pub(crate) async fn create(
    State(state): State<ScimState>,
    auth: Authed,
    body: Result<ScimJson, ScimError>,
) -> Response {
    let mut log = LogEntry::new("POST", "GROUP");
    let result = async {
        let ScimJson(value, text) = body?;
        log.body = Some(resource::redacted_body(&text));
        let mut map = resource::object(value)?;
        let fields = resource::group_fields(&mut map)?;
        log.group_name = Some(fields.display_name.clone());
        log.idp_resource_id.clone_from(&fields.external_id);
        let members = dedup(fields.members.clone().unwrap_or_default());
        let g = resource::new_group(auth.idp.id, map, &fields, gatehouse_core::now_millis());
        state.store().scim_insert_group(&g, &members).await.map_err(store_error)?;
        log.cf_resource_id = Some(g.id.clone());
        effects::membership_changed(state.store(), &auth.idp, &g, &members, &[]).await.map_err(store_error)?;
        let list = members_of(&state, &g).await?;
        Ok(answer(StatusCode::CREATED, render_group(&g, Some(&list), &state.base_url(auth.idp.id))))
    };
    let result = result.await;
    log.finish(&state, auth.idp.id, result)
}

fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|id| seen.insert(id.clone())).collect()
}

/// Stores new attributes and a membership change, then runs the effects.
async fn save(
    state: &ScimState,
    auth: &Authed,
    current: &ScimGroupRecord,
    next: &ScimGroupRecord,
    change: &MemberChange,
) -> Result<(), ScimError> {
    let store = state.store();
    if !store.scim_update_group(next, change).await.map_err(store_error)? {
        return Err(not_found(&next.id));
    }
    effects::membership_changed(store, &auth.idp, next, &change.add, &change.remove).await.map_err(store_error)?;
    if current.display_name != next.display_name {
        let members: Vec<String> = members_of(state, next).await?.into_iter().map(|m| m.user_id).collect();
        effects::group_renamed(store, &auth.idp, next, &members).await.map_err(store_error)?;
    }
    Ok(())
}

fn next_version(
    current: &ScimGroupRecord,
    map: serde_json::Map<String, Value>,
    f: &resource::GroupFields,
) -> ScimGroupRecord {
    ScimGroupRecord {
        display_name: f.display_name.clone(),
        external_id: f.external_id.clone(),
        resource: Value::Object(map),
        version: current.version + 1,
        updated_at: gatehouse_core::now_millis(),
        ..current.clone()
    }
}

/// `PUT /Groups/{id}`: replaces every attribute and the member list.
pub(crate) async fn replace(
    State(state): State<ScimState>,
    auth: Authed,
    ResourceId(id): ResourceId,
    body: Result<ScimJson, ScimError>,
) -> Response {
    let mut log = LogEntry::new("PUT", "GROUP");
    log.cf_resource_id = Some(id.clone());
    let result = async {
        let ScimJson(value, text) = body?;
        log.body = Some(resource::redacted_body(&text));
        let current =
            state.store().scim_get_group(auth.idp.id, &id).await.map_err(store_error)?.ok_or_else(|| not_found(&id))?;
        let mut map = resource::object(value)?;
        let fields = resource::group_fields(&mut map)?;
        log.group_name = Some(fields.display_name.clone());
        log.idp_resource_id.clone_from(&fields.external_id);
        let before: HashSet<String> = members_of(&state, &current).await?.into_iter().map(|m| m.user_id).collect();
        let after = dedup(fields.members.clone().unwrap_or_default());
        let after_set: HashSet<&String> = after.iter().collect();
        let change = MemberChange {
            add: after.iter().filter(|m| !before.contains(*m)).cloned().collect(),
            remove: before.iter().filter(|m| !after_set.contains(m)).cloned().collect(),
        };
        let next = next_version(&current, map, &fields);
        save(&state, &auth, &current, &next, &change).await?;
        let list = members_of(&state, &next).await?;
        Ok(answer(StatusCode::OK, render_group(&next, Some(&list), &state.base_url(auth.idp.id))))
    };
    let result = result.await;
    log.finish(&state, auth.idp.id, result)
}

/// `PATCH /Groups/{id}`: 204.
pub(crate) async fn patch(
    State(state): State<ScimState>,
    auth: Authed,
    ResourceId(id): ResourceId,
    body: Result<ScimJson, ScimError>,
) -> Response {
    let mut log = LogEntry::new("PATCH", "GROUP");
    log.cf_resource_id = Some(id.clone());
    let result = async {
        let ScimJson(value, text) = body?;
        log.body = Some(resource::redacted_body(&text));
        let current =
            state.store().scim_get_group(auth.idp.id, &id).await.map_err(store_error)?.ok_or_else(|| not_found(&id))?;
        log.group_name = Some(current.display_name.clone());
        log.idp_resource_id.clone_from(&current.external_id);
        let members = members_of(&state, &current).await?;
        let mut doc = current.resource.clone();
        if let Some(m) = doc.as_object_mut() {
            m.insert("id".into(), Value::String(current.id.clone()));
            if !members.is_empty() {
                let list: Vec<Value> = members.iter().map(|m| json!({"value": m.user_id})).collect();
                m.insert("members".into(), Value::Array(list));
            }
        }
        let outcome = apply_patch(&mut doc, &value, ResourceKind::Group)?;
        if outcome.changed {
            let mut map = resource::object(doc)?;
            let fields = resource::group_fields(&mut map)?;
            log.group_name = Some(fields.display_name.clone());
            let change = MemberChange { add: dedup(outcome.members_added), remove: outcome.members_removed };
            let next = next_version(&current, map, &fields);
            save(&state, &auth, &current, &next, &change).await?;
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    let result = result.await;
    log.finish(&state, auth.idp.id, result)
}

/// `DELETE /Groups/{id}`: 204.
pub(crate) async fn delete(State(state): State<ScimState>, auth: Authed, ResourceId(id): ResourceId) -> Response {
    let mut log = LogEntry::new("DELETE", "GROUP");
    log.cf_resource_id = Some(id.clone());
    let result = async {
        let store = state.store();
        let g = store.scim_get_group(auth.idp.id, &id).await.map_err(store_error)?.ok_or_else(|| not_found(&id))?;
        log.group_name = Some(g.display_name.clone());
        log.idp_resource_id.clone_from(&g.external_id);
        let former =
            store.scim_delete_group(auth.idp.id, &id).await.map_err(store_error)?.ok_or_else(|| not_found(&id))?;
        effects::membership_changed(store, &auth.idp, &g, &[], &former).await.map_err(store_error)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    let result = result.await;
    log.finish(&state, auth.idp.id, result)
}
