//! Signing keys (rotation schedule, rotate now) and the organisation's settings.

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::org::{Organization, OrganizationInput};
use gatehouse_proxy::keys;
use gatehouse_store::{KeyStore, OrgStore};

use super::form::{Form, Pairs, Query};
use super::page::{Chrome, FieldErrors, PageError, render, see_other, when};
use super::session::Dash;
use crate::AdminState;

struct KeyRow {
    kid: String,
    created: String,
    state: String,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyRow>,
    interval: String,
    errors: FieldErrors,
    certs_url: String,
}

async fn keys_page(
    state: &AdminState,
    chrome: Chrome,
    interval: Option<String>,
    errors: FieldErrors,
) -> Result<KeysPage, PageError> {
    let days = keys::rotation_interval(&state.store).await.map_err(|e| PageError::internal(&e))?.as_secs() / 86_400;
    let keys = state
        .store
        .signing_keys()
        .await?
        .into_iter()
        .map(|k| KeyRow {
            kid: k.kid,
            created: when(Some(k.created_at)),
            state: match k.retired_at {
                None => "signing".to_owned(),
                Some(t) => format!("replaced {}; still accepted for 7 days", when(Some(t))),
            },
        })
        .collect();
    let base = crate::api::idps::base(state).await?;
    Ok(KeysPage {
        chrome,
        keys,
        interval: interval.unwrap_or_else(|| days.to_string()),
        errors,
        certs_url: format!("{base}/cdn-cgi/access/certs"),
    })
}

/// `GET /keys`.
pub(crate) async fn keys(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    Ok(render(&keys_page(&state, Chrome::new(&dash, "keys", &q), None, FieldErrors::default()).await?))
}

/// `POST /keys`: the rotation interval in days.
pub(crate) async fn update_interval(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let raw = f.get("key_rotation_interval_days").to_owned();
    let result = match raw.parse::<u32>() {
        Ok(days) => crate::api::keys::set_rotation_interval(&state, days).await.map_err(|e| {
            if e.status().is_client_error() { Ok("must be between 21 and 365 days".to_owned()) } else { Err(e) }
        }),
        Err(_) => Err(Ok("must be a whole number of days (21 to 365)".to_owned())),
    };
    match result {
        Ok(()) => Ok(see_other("/keys?notice=saved")),
        Err(Ok(msg)) => {
            let mut errors = FieldErrors::default();
            errors.push("key_rotation_interval_days", msg);
            let chrome = Chrome::new(&dash, "keys", &Pairs::default());
            let mut r = render(&keys_page(&state, chrome, Some(raw), errors).await?);
            *r.status_mut() = StatusCode::BAD_REQUEST;
            Ok(r)
        }
        Err(Err(e)) => Err(e.into()),
    }
}

/// `POST /keys/rotate`: a new key now; the previous one stays valid for the grace period.
pub(crate) async fn rotate(State(state): State<AdminState>) -> Result<Response, PageError> {
    keys::rotate(&state.store, gatehouse_core::now_millis()).await.map_err(|e| PageError::internal(&e))?;
    tracing::info!("signing key rotated from the dashboard");
    Ok(see_other("/keys?notice=rotated"))
}

#[derive(Debug, Clone, Default)]
struct OrgValues {
    name: String,
    auth_domain: String,
    session_duration: String,
    auto_redirect_to_identity: bool,
    is_ui_read_only: bool,
    user_seat_expiration_inactive_time: String,
}

impl OrgValues {
    fn of(o: &Organization) -> Self {
        Self {
            name: o.name.clone(),
            auth_domain: o.auth_domain.clone().unwrap_or_default(),
            session_duration: o.session_duration.to_string(),
            auto_redirect_to_identity: o.auto_redirect_to_identity,
            is_ui_read_only: o.is_ui_read_only,
            user_seat_expiration_inactive_time: o
                .user_seat_expiration_inactive_time
                .map(|d| d.to_string())
                .unwrap_or_default(),
        }
    }

    fn from_form(f: &Pairs) -> Self {
        Self {
            name: f.get("name").to_owned(),
            auth_domain: f.get("auth_domain").to_owned(),
            session_duration: f.get("session_duration").to_owned(),
            auto_redirect_to_identity: f.checked("auto_redirect_to_identity"),
            is_ui_read_only: f.checked("is_ui_read_only"),
            user_seat_expiration_inactive_time: f.get("user_seat_expiration_inactive_time").to_owned(),
        }
    }
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    v: OrgValues,
    errors: FieldErrors,
    default_domain: String,
    account_id: String,
}

fn settings_page(state: &AdminState, chrome: Chrome, v: OrgValues, errors: FieldErrors) -> SettingsPage {
    SettingsPage {
        chrome,
        v,
        errors,
        default_domain: state.public_url.host_str().map_or_else(String::new, |h| match state.public_url.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_owned(),
        }),
        account_id: state.account_id.to_string(),
    }
}

/// `GET /settings`: the organisation.
pub(crate) async fn settings(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let org = state.store.organization().await?;
    let chrome = Chrome::new(&dash, "settings", &q);
    Ok(render(&settings_page(&state, chrome, OrgValues::of(&org), FieldErrors::default())))
}

/// `POST /settings`: validated by the same rules as `PUT /access/organizations`.
pub(crate) async fn update_settings(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let v = OrgValues::from_form(&f);
    // While the dashboard is read-only, the only change it takes is turning that off.
    if state.store.organization().await?.is_ui_read_only {
        let input = OrganizationInput { is_ui_read_only: Some(v.is_ui_read_only), ..OrganizationInput::default() };
        return match crate::api::organizations::update_organization(&state, input).await {
            Ok(_) => Ok(see_other("/settings?notice=saved")),
            Err(e) => Err(e.into()),
        };
    }
    let input = OrganizationInput {
        name: Some(v.name.clone()),
        auth_domain: Some(v.auth_domain.clone()),
        session_duration: Some(v.session_duration.clone()),
        auto_redirect_to_identity: Some(v.auto_redirect_to_identity),
        is_ui_read_only: Some(v.is_ui_read_only),
        user_seat_expiration_inactive_time: Some(v.user_seat_expiration_inactive_time.clone()),
        ..OrganizationInput::default()
    };
    match crate::api::organizations::update_organization(&state, input).await {
        Ok(_) => Ok(see_other("/settings?notice=saved")),
        Err(e) if e.status().is_client_error() => {
            let known = |p: &str| {
                ["name", "auth_domain", "session_duration", "user_seat_expiration_inactive_time"].contains(&p)
            };
            let errors = FieldErrors::from_api(&e, &known, None);
            let chrome = Chrome::new(&dash, "settings", &Pairs::default());
            let mut r = render(&settings_page(&state, chrome, v, errors));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}
