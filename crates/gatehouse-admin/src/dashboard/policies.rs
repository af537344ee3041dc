//! Reusable policies: account-level policies that several applications attach. Built with the
//! same rule rows as an application's own policies and saved through the API's operations.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::policy::input::StoredPolicy;
use gatehouse_store::PolicyStore;
use uuid::Uuid;

use super::apps::{Options, PolicyValues, RuleRow, decision_str, describe, options};
use super::form::{Form, Pairs, Query};
use super::page::{Chrome, FieldErrors, PageError, Pager, page_of, render, see_other};
use super::session::Dash;
use crate::AdminState;
use crate::api::policies as ops;

struct Row {
    id: String,
    name: String,
    decision: &'static str,
    apps: u64,
    include: Vec<String>,
}

#[derive(Template)]
#[template(path = "policies.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    pager: Pager,
}

/// `GET /policies`.
pub(crate) async fn list(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let page = page_of(&q)?;
    let found = state.store.list_reusable_policies(page).await?;
    let opts = options(&state).await?;
    let rows = found
        .items
        .iter()
        .map(|(p, n)| Row {
            id: p.id.to_string(),
            name: p.name.clone(),
            decision: decision_str(p.decision),
            apps: *n,
            include: p.rules.include.iter().map(|r| describe(r, &opts)).collect(),
        })
        .collect();
    Ok(render(&ListPage {
        chrome: Chrome::new(&dash, "policies", &q),
        rows,
        pager: Pager::new("/policies", &q, page, found.total),
    }))
}

#[derive(Template)]
#[template(path = "reusable_policy.html")]
struct PolicyPage {
    chrome: Chrome,
    id: Option<String>,
    apps: u64,
    opts: Options,
    p: PolicyValues,
    p_errors: FieldErrors,
    p_action: String,
}

/// `GET /policies/new`.
pub(crate) async fn new_form(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    Ok(render(&PolicyPage {
        chrome: Chrome::new(&dash, "policies", &q),
        id: None,
        apps: 0,
        opts: options(&state).await?,
        p: PolicyValues::fresh(),
        p_errors: FieldErrors::default(),
        p_action: "/policies/new".into(),
    }))
}

async fn invalid(
    state: &AdminState,
    dash: &Dash,
    existing: Option<(&StoredPolicy, u64)>,
    mut p: PolicyValues,
    e: &crate::ApiError,
    origin: &[Vec<usize>; 3],
) -> Result<Response, PageError> {
    let p_errors = p.errors_from(e, origin);
    if p.rows.is_empty() {
        p.rows.push(RuleRow::blank("include"));
    }
    let page = PolicyPage {
        chrome: Chrome::new(dash, "policies", &Pairs::default()),
        id: existing.map(|(s, _)| s.id.to_string()),
        apps: existing.map_or(0, |(_, n)| n),
        opts: options(state).await?,
        p,
        p_errors,
        p_action: existing.map_or_else(|| "/policies/new".to_owned(), |(s, _)| format!("/policies/{}", s.id)),
    };
    let mut r = render(&page);
    *r.status_mut() = StatusCode::BAD_REQUEST;
    Ok(r)
}

/// `POST /policies/new`.
pub(crate) async fn create(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let p = PolicyValues::from_form(&f);
    let (input, origin) = p.input();
    match ops::create_reusable_policy(&state, &input).await {
        Ok(policy) => Ok(see_other(&format!("/policies/{}?notice=created", policy.id))),
        Err(e) if e.status().is_client_error() => invalid(&state, &dash, None, p, &e, &origin).await,
        Err(e) => Err(e.into()),
    }
}

async fn load(state: &AdminState, raw: &str) -> Result<(StoredPolicy, u64), PageError> {
    let id: Uuid = raw.parse().map_err(|_| PageError::NotFound("policy"))?;
    state.store.get_policy(id).await?.filter(|(p, _)| p.reusable).ok_or(PageError::NotFound("policy"))
}

/// `GET /policies/{id}`.
pub(crate) async fn show(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path(id): Path<String>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let (stored, apps) = load(&state, &id).await?;
    let opts = options(&state).await?;
    let mut rows = PolicyValues::rows_of_rules(&stored.rules, &opts.scim_groups);
    rows.push(RuleRow::blank("include"));
    let p = PolicyValues {
        name: stored.name.clone(),
        decision: decision_str(stored.decision).to_owned(),
        session_duration: stored.session_duration.map(|d| d.to_string()).unwrap_or_default(),
        rows,
        group: false,
    };
    Ok(render(&PolicyPage {
        chrome: Chrome::new(&dash, "policies", &q),
        id: Some(stored.id.to_string()),
        apps,
        opts,
        p,
        p_errors: FieldErrors::default(),
        p_action: format!("/policies/{}", stored.id),
    }))
}

/// `POST /policies/{id}`: every application that attaches it uses the change.
pub(crate) async fn update(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path(id): Path<String>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let (stored, apps) = load(&state, &id).await?;
    let p = PolicyValues::from_form(&f);
    let (input, origin) = p.input();
    match ops::replace_reusable_policy(&state, &stored, &input).await {
        Ok(policy) => Ok(see_other(&format!("/policies/{}?notice=saved", policy.id))),
        Err(e) if e.status().is_client_error() => invalid(&state, &dash, Some((&stored, apps)), p, &e, &origin).await,
        Err(e) => Err(e.into()),
    }
}

/// `POST /policies/{id}/delete`: refused while an application attaches it.
pub(crate) async fn delete(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Response, PageError> {
    let (stored, apps) = load(&state, &id).await?;
    if apps > 0 {
        return Err(PageError::BadRequest(format!(
            "This policy is attached to {apps} application{}; remove it from them first.",
            if apps == 1 { "" } else { "s" }
        )));
    }
    state.store.delete_policy(stored.id).await?;
    Ok(see_other("/policies?notice=deleted"))
}
