//! `POST /.search` at the service root (RFC 7644 §3.4.3): one SearchRequest over Users and
//! Groups together, users first. A filter naming an attribute only one resource type has
//! (say `userName`) searches that type only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_store::ScimStore;
use serde_json::Value;

use crate::error::ScimError;
use crate::patch::ResourceKind;
use crate::query::{ReadQuery, list_response};
use crate::resource::{self, render_group, render_user};
use crate::server::{Authed, LogEntry, ScimJson, ScimState, scim_response, store_error};

/// `POST /.search`.
pub(crate) async fn search_all(
    State(state): State<ScimState>,
    auth: Authed,
    body: Result<ScimJson, ScimError>,
) -> Response {
    let mut log = LogEntry::new("POST", "CONFIG");
    let result = async {
        let ScimJson(value, text) = body?;
        log.body = Some(resource::redacted_body(&text));
        let users = ReadQuery::from_search(&value, ResourceKind::User);
        let groups = ReadQuery::from_search(&value, ResourceKind::Group);
        let (users, groups) = match (users, groups) {
            (Err(e), Err(_)) => return Err(e),
            (u, g) => (u.ok(), g.ok()),
        };
        let (start_index, count) = users.as_ref().or(groups.as_ref()).map_or((1, 0), |q| (q.start_index, q.count));
        let store = state.store();
        let base = state.base_url(auth.idp.id);
        let mut resources = Vec::new();
        let mut total = 0u64;
        let mut skip = start_index - 1;
        if let Some(q) = &users {
            let page = store.scim_list_users(auth.idp.id, q.filter.as_ref(), skip, count).await.map_err(store_error)?;
            total += page.total;
            skip = skip.saturating_sub(page.total);
            for u in &page.items {
                let mut r = render_user(u, &base);
                q.projection.apply(&mut r);
                resources.push(Value::Object(r));
            }
        }
        if let Some(q) = &groups {
            let room = u32::try_from(usize::try_from(count).unwrap_or(0).saturating_sub(resources.len())).unwrap_or(0);
            let page = store.scim_list_groups(auth.idp.id, q.filter.as_ref(), skip, room).await.map_err(store_error)?;
            total += page.total;
            for g in &page.items {
                let members = if q.projection.wants("members") {
                    Some(store.scim_group_members(&g.id).await.map_err(store_error)?)
                } else {
                    None
                };
                let mut r = render_group(g, members.as_deref(), &base);
                q.projection.apply(&mut r);
                resources.push(Value::Object(r));
            }
        }
        Ok(scim_response(StatusCode::OK, &list_response(total, start_index, resources)))
    };
    let result = result.await;
    log.finish(&state, auth.idp.id, result)
}
