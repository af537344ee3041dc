//! Access groups: reusable sets of rules that policies include with a `group` rule. Built
//! with the same rule rows as policies and saved through the API's operations.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::policy::input::{GroupInput, StoredGroup};
use gatehouse_store::PolicyStore;
use uuid::Uuid;

use super::apps::{Options, PolicyValues, RuleRow, describe, options};
use super::form::{Form, Pairs, Query};
use super::page::{Chrome, FieldErrors, PageError, Pager, page_of, render, see_other, when};
use super::session::Dash;
use crate::AdminState;
use crate::api::policies as ops;

struct Row {
    id: String,
    name: String,
    include: Vec<String>,
    updated: String,
}

#[derive(Template)]
#[template(path = "groups.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    pager: Pager,
}

/// `GET /groups`.
pub(crate) async fn list(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let page = page_of(&q)?;
    let found = state.store.list_groups(page).await?;
    let opts = options(&state).await?;
    let rows = found
        .items
        .iter()
        .map(|g| Row {
            id: g.id.to_string(),
            name: g.name.clone(),
            include: g.rules.include.iter().map(|r| describe(r, &opts)).collect(),
            updated: when(Some(g.updated_at)),
        })
        .collect();
    Ok(render(&ListPage {
        chrome: Chrome::new(&dash, "groups", &q),
        rows,
        pager: Pager::new("/groups", &q, page, found.total),
    }))
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    chrome: Chrome,
    id: Option<String>,
    opts: Options,
    p: PolicyValues,
    p_errors: FieldErrors,
    p_action: String,
}

fn group_input(p: &PolicyValues) -> (GroupInput, [Vec<usize>; 3]) {
    let (input, origin) = p.input();
    let g = GroupInput {
        name: input.name,
        include: input.include,
        require: input.require,
        exclude: input.exclude,
        ..GroupInput::default()
    };
    (g, origin)
}

fn fresh() -> PolicyValues {
    PolicyValues { group: true, ..PolicyValues::fresh() }
}

/// `GET /groups/new`.
pub(crate) async fn new_form(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    Ok(render(&GroupPage {
        chrome: Chrome::new(&dash, "groups", &q),
        id: None,
        opts: options(&state).await?,
        p: fresh(),
        p_errors: FieldErrors::default(),
        p_action: "/groups/new".into(),
    }))
}

async fn invalid(
    state: &AdminState,
    dash: &Dash,
    id: Option<String>,
    mut p: PolicyValues,
    e: &crate::ApiError,
    origin: &[Vec<usize>; 3],
    action: String,
) -> Result<Response, PageError> {
    let p_errors = p.errors_from(e, origin);
    if p.rows.is_empty() {
        p.rows.push(RuleRow::blank("include"));
    }
    let page = GroupPage {
        chrome: Chrome::new(dash, "groups", &Pairs::default()),
        id,
        opts: options(state).await?,
        p,
        p_errors,
        p_action: action,
    };
    let mut r = render(&page);
    *r.status_mut() = StatusCode::BAD_REQUEST;
    Ok(r)
}

/// `POST /groups/new`.
pub(crate) async fn create(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let p = PolicyValues { group: true, ..PolicyValues::from_form(&f) };
    let (input, origin) = group_input(&p);
    match ops::create_access_group(&state, &input).await {
        Ok(g) => Ok(see_other(&format!("/groups/{}?notice=created", g.id))),
        Err(e) if e.status().is_client_error() => {
            invalid(&state, &dash, None, p, &e, &origin, "/groups/new".into()).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn load(state: &AdminState, raw: &str) -> Result<StoredGroup, PageError> {
    let id: Uuid = raw.parse().map_err(|_| PageError::NotFound("Access group"))?;
    state.store.get_group(id).await?.ok_or(PageError::NotFound("Access group"))
}

/// `GET /groups/{id}`.
pub(crate) async fn show(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path(id): Path<String>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let g = load(&state, &id).await?;
    let opts = options(&state).await?;
    let mut rows = PolicyValues::rows_of_rules(&g.rules, &opts.scim_groups);
    rows.push(RuleRow::blank("include"));
    let p = PolicyValues { name: g.name.clone(), rows, ..fresh() };
    Ok(render(&GroupPage {
        chrome: Chrome::new(&dash, "groups", &q),
        id: Some(g.id.to_string()),
        opts,
        p,
        p_errors: FieldErrors::default(),
        p_action: format!("/groups/{}", g.id),
    }))
}

/// `POST /groups/{id}`.
pub(crate) async fn update(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path(id): Path<String>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let g = load(&state, &id).await?;
    let p = PolicyValues { group: true, ..PolicyValues::from_form(&f) };
    let (input, origin) = group_input(&p);
    let gid = g.id;
    match ops::replace_access_group(&state, g, &input).await {
        Ok(g) => Ok(see_other(&format!("/groups/{}?notice=saved", g.id))),
        Err(e) if e.status().is_client_error() => {
            invalid(&state, &dash, Some(gid.to_string()), p, &e, &origin, format!("/groups/{gid}")).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /groups/{id}/delete`.
pub(crate) async fn delete(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Response, PageError> {
    let g = load(&state, &id).await?;
    state.store.delete_group(g.id).await?;
    Ok(see_other("/groups?notice=deleted"))
}
