//! Service tokens: non-human credentials (`CF-Access-Client-Id` and `CF-Access-Client-Secret`)
//! for `service_token` rules. The secret is shown once, on the page that created it.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_store::ServiceTokenStore;
use uuid::Uuid;

use super::form::{Form, Pairs, Query};
use super::page::{Chrome, FieldErrors, PageError, Pager, page_of, render, see_other, when};
use super::session::Dash;
use crate::AdminState;
use crate::api::service_tokens::{self as ops, TokenInput};

struct Row {
    id: String,
    name: String,
    client_id: String,
    expires: String,
    last_seen: String,
}

/// A token just created: its secret, shown this once.
struct Created {
    name: String,
    client_id: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    pager: Pager,
    name: String,
    duration: String,
    errors: FieldErrors,
    created: Option<Created>,
}

async fn page(
    state: &AdminState,
    chrome: Chrome,
    q: &Pairs,
    (name, duration, errors, created): (String, String, FieldErrors, Option<Created>),
) -> Result<ListPage, PageError> {
    let page = page_of(q)?;
    let found = state.store.list_service_tokens(page).await?;
    let rows = found
        .items
        .iter()
        .map(|t| Row {
            id: t.id.to_string(),
            name: t.name.clone(),
            client_id: t.client_id.clone(),
            expires: when(Some(t.expires_at)),
            last_seen: when(t.last_seen_at),
        })
        .collect();
    Ok(ListPage {
        chrome,
        rows,
        pager: Pager::new("/service-tokens", q, page, found.total),
        name,
        duration,
        errors,
        created,
    })
}

/// `GET /service-tokens`.
pub(crate) async fn list(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let chrome = Chrome::new(&dash, "tokens", &q);
    let fresh = (String::new(), "8760h".to_owned(), FieldErrors::default(), None);
    Ok(render(&page(&state, chrome, &q, fresh).await?))
}

/// `POST /service-tokens`: creates a token and shows its secret once.
pub(crate) async fn create(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let (name, duration) = (f.get("name").to_owned(), f.get("duration").to_owned());
    let input = TokenInput::new(Some(name.clone()), f.opt("duration"));
    let chrome = Chrome::new(&dash, "tokens", &Pairs::default());
    let none = Pairs::default();
    match ops::create_service_token(&state, &input).await {
        Ok((t, secret)) => {
            let created =
                Created { name: t.name.clone(), client_id: t.client_id.clone(), secret: secret.expose().to_owned() };
            let fresh = (String::new(), "8760h".to_owned(), FieldErrors::default(), Some(created));
            Ok(render(&page(&state, chrome, &none, fresh).await?))
        }
        Err(e) if e.status().is_client_error() => {
            let errors = FieldErrors::from_api(&e, &|_| false, None);
            let mut r = render(&page(&state, chrome, &none, (name, duration, errors, None)).await?);
            *r.status_mut() = StatusCode::BAD_REQUEST;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /service-tokens/{id}/rotate`: a new secret, shown once; the previous one stops
/// working at once, or after `keep_hours` hours.
pub(crate) async fn rotate(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path(id): Path<String>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let id: Uuid = id.parse().map_err(|_| PageError::NotFound("service token"))?;
    let t = state.store.get_service_token(id).await?.ok_or(PageError::NotFound("service token"))?;
    let previous_until = match f.get("keep_hours") {
        "" | "0" => None,
        raw => match raw.parse::<i64>() {
            Ok(h) if (1..=8760).contains(&h) => Some(gatehouse_core::now_millis() + h * 3_600_000),
            _ => {
                return Err(PageError::BadRequest(format!(
                    "Keep the previous secret for a whole number of hours from 0 to 8760, not {raw:?}."
                )));
            }
        },
    };
    let (t, secret) = ops::rotate_service_token(&state, t, previous_until).await?;
    let created = Created { name: t.name.clone(), client_id: t.client_id.clone(), secret: secret.expose().to_owned() };
    let chrome = Chrome::new(&dash, "tokens", &Pairs::default());
    let fresh = (String::new(), "8760h".to_owned(), FieldErrors::default(), Some(created));
    Ok(render(&page(&state, chrome, &Pairs::default(), fresh).await?))
}

/// `POST /service-tokens/{id}/delete`.
pub(crate) async fn delete(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Response, PageError> {
    let id: Uuid = id.parse().map_err(|_| PageError::NotFound("service token"))?;
    if !state.store.delete_service_token(id).await? {
        return Err(PageError::NotFound("service token"));
    }
    tracing::info!(token = %id, "service token deleted from the dashboard");
    Ok(see_other("/service-tokens?notice=deleted"))
}
