//! `GET/PUT /accounts/{id}/access/organizations`: the singleton organisation.

use axum::extract::State;
use axum::response::Response;
use gatehouse_core::org::{Organization, OrganizationInput};
use gatehouse_store::OrgStore;
use serde_json::{Value, json};

use super::envelope::{ApiError, ok};
use super::extract::ApiJson;
use super::team_base;
use crate::AdminState;

fn render(state: &AdminState, org: &Organization) -> Value {
    let base = team_base(state, org);
    let auth_domain = base.split_once("://").map_or(base.as_str(), |(_, d)| d);
    json!({
        "name": org.name,
        "auth_domain": auth_domain,
        "session_duration": org.session_duration.to_string(),
        "auto_redirect_to_identity": org.auto_redirect_to_identity,
        "is_ui_read_only": org.is_ui_read_only,
        "user_seat_expiration_inactive_time": org.user_seat_expiration_inactive_time.map(|d| d.to_string()),
        "created_at": gatehouse_core::rfc3339(org.created_at),
        "updated_at": gatehouse_core::rfc3339(org.updated_at),
    })
}

pub(crate) async fn get(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let org = state.store.organization().await?;
    Ok(ok(render(&state, &org)))
}

/// Updates the given fields; absent fields keep their values.
pub(crate) async fn update(
    State(state): State<AdminState>,
    ApiJson(input): ApiJson<OrganizationInput>,
) -> Result<Response, ApiError> {
    let org = update_organization(&state, input).await?;
    Ok(ok(render(&state, &org)))
}

/// Validates `input` against the current organisation and stores the result.
pub(crate) async fn update_organization(
    state: &AdminState,
    input: OrganizationInput,
) -> Result<Organization, ApiError> {
    let org = state.store.organization().await?;
    let org = input.apply(org, gatehouse_core::now_millis())?;
    state.store.put_organization(&org).await?;
    tracing::info!(name = %org.name, "organization updated");
    Ok(org)
}
