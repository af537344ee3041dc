//! Users: the registry of people who signed in or were provisioned (seats, last login), their
//! active sessions, the identity last seen, and revoking every session of a user at once.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use gatehouse_core::now_millis;
use gatehouse_store::{IdpStore, ScimStore, SessionKind, SessionStore, UserRecord, UserStore};
use uuid::Uuid;

use super::form::{Form, Query};
use super::page::{Chrome, PageError, Pager, page_of, render, see_other, when};
use super::session::Dash;
use crate::AdminState;

struct Row {
    id: String,
    email: String,
    name: String,
    seat: bool,
    last_login: String,
    sessions: usize,
}

#[derive(Template)]
#[template(path = "users.html")]
struct ListPage {
    chrome: Chrome,
    search: String,
    rows: Vec<Row>,
    pager: Pager,
    /// Nested-group drift warnings of every IdP.
    drift: u64,
}

/// `GET /users?search=`.
pub(crate) async fn list(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let page = page_of(&q)?;
    let search = q.get("search").to_owned();
    if search.len() > 256 {
        return Err(PageError::bad_request("The search is longer than 256 characters."));
    }
    let found = state.store.list_users(Some(search.as_str()).filter(|s| !s.is_empty()), page).await?;
    let now = now_millis();
    let mut rows = Vec::with_capacity(found.items.len());
    for u in &found.items {
        rows.push(Row {
            id: u.id.to_string(),
            email: u.email.clone(),
            name: u.name.clone(),
            seat: u.access_seat,
            last_login: when(u.last_login_at),
            sessions: state.store.active_sessions(u.id, now).await?.len(),
        });
    }
    let drift = state.store.scim_drift(None, gatehouse_store::Page::new(1, 1)).await?.total;
    Ok(render(&ListPage {
        chrome: Chrome::new(&dash, "users", &q),
        search,
        rows,
        pager: Pager::new("/users", &q, page, found.total),
        drift,
    }))
}

struct SessionRow {
    kind: &'static str,
    started: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    chrome: Chrome,
    id: String,
    email: String,
    name: String,
    seat: bool,
    idp: String,
    created: String,
    last_login: String,
    groups: Vec<String>,
    sessions: Vec<SessionRow>,
    identity: String,
}

async fn load(state: &AdminState, raw: &str) -> Result<UserRecord, PageError> {
    let id: Uuid = raw.parse().map_err(|_| PageError::NotFound("user"))?;
    state.store.get_user(id).await?.ok_or(PageError::NotFound("user"))
}

/// `GET /users/{id}`.
pub(crate) async fn show(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path(id): Path<String>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let u = load(&state, &id).await?;
    let sessions = state
        .store
        .active_sessions(u.id, now_millis())
        .await?
        .iter()
        .map(|s| SessionRow {
            kind: match s.kind {
                SessionKind::Org => "team domain",
                SessionKind::App => "application",
            },
            started: when(Some(s.created_at)),
            expires: when(Some(s.expires_at)),
        })
        .collect();
    let groups = u
        .identity
        .get("groups")
        .and_then(|g| g.as_array())
        .map(|a| {
            a.iter()
                .map(|g| match (g.get("name").and_then(|n| n.as_str()), g.get("id").and_then(|n| n.as_str())) {
                    (Some(n), Some(i)) if n != i => format!("{n} ({i})"),
                    (_, Some(i)) => i.to_owned(),
                    (Some(n), None) => n.to_owned(),
                    _ => g.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let idp = match state.store.get_idp(u.idp_id).await? {
        Some(i) => i.name,
        None => u.idp_id.to_string(),
    };
    Ok(render(&UserPage {
        chrome: Chrome::new(&dash, "users", &q),
        id: u.id.to_string(),
        email: u.email.clone(),
        name: u.name.clone(),
        seat: u.access_seat,
        idp,
        created: when(Some(u.created_at)),
        last_login: when(u.last_login_at),
        groups,
        sessions,
        identity: serde_json::to_string_pretty(&u.identity).unwrap_or_default(),
    }))
}

/// `POST /users/{id}/seat`: gives or takes the user's Access seat (as `PATCH /access/seats`).
pub(crate) async fn seat(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let u = load(&state, &id).await?;
    let seat = match f.get("access_seat") {
        "true" => true,
        "false" => false,
        other => return Err(PageError::BadRequest(format!("access_seat must be true or false, not {other:?}"))),
    };
    if !state.store.set_access_seat(u.id, seat, now_millis()).await? {
        return Err(PageError::NotFound("user"));
    }
    tracing::info!(user = %u.id, seat, "user seat changed from the dashboard");
    Ok(see_other(&format!("/users/{}?notice=saved", u.id)))
}

/// `POST /users/{id}/revoke`: ends every session of the user; the data plane refuses their
/// tokens from the next request on, on every instance.
pub(crate) async fn revoke(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Response, PageError> {
    let u = load(&state, &id).await?;
    let n = state.store.revoke_user_sessions(u.id, now_millis()).await?;
    tracing::info!(user = %u.id, sessions = n, "user sessions revoked from the dashboard");
    Ok(see_other(&format!("/users/{}?notice=revoked", u.id)))
}
