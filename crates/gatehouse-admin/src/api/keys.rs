//! `/accounts/{id}/access/keys`: the application-token signing key schedule, and on-demand
//! rotation. The data plane picks up a rotation through the store's change notification.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_proxy::keys;
use gatehouse_store::KeyStore;
use serde::Deserialize;
use serde_json::json;

use super::envelope::{ApiError, ErrorCode, ok};
use super::extract::ApiJson;
use crate::AdminState;

const DAY_MS: i64 = 24 * 3600 * 1000;

async fn settings(state: &AdminState) -> Result<Response, ApiError> {
    let interval = keys::rotation_interval(&state.store).await.map_err(|e| ApiError::internal(&e))?;
    let days = (interval.as_secs() / 86_400) as i64;
    let current = state.store.signing_keys().await?.into_iter().find(|k| k.retired_at.is_none());
    let last = current.as_ref().map(|k| k.created_at);
    let until = last.map_or(0, |t| {
        let next = t + days * DAY_MS;
        ((next - gatehouse_core::now_millis()).max(0) + DAY_MS - 1) / DAY_MS
    });
    Ok(ok(json!({
        "key_rotation_interval_days": days,
        "last_key_rotation_at": last.map(gatehouse_core::rfc3339),
        "days_until_next_rotation": until,
    })))
}

pub(crate) async fn get(State(state): State<AdminState>) -> Result<Response, ApiError> {
    settings(&state).await
}

/// Body of `PUT /access/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeySettings {
    key_rotation_interval_days: u32,
}

pub(crate) async fn update(
    State(state): State<AdminState>,
    ApiJson(body): ApiJson<KeySettings>,
) -> Result<Response, ApiError> {
    set_rotation_interval(&state, body.key_rotation_interval_days).await?;
    settings(&state).await
}

/// Validates and stores the scheduled rotation interval.
pub(crate) async fn set_rotation_interval(state: &AdminState, days: u32) -> Result<(), ApiError> {
    if !(21..=365).contains(&days) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "access.api.error.invalid_request: key_rotation_interval_days: must be between 21 and 365",
        ));
    }
    state.store.set_rotation_interval_days(days).await?;
    Ok(())
}

/// Rotates now; the previous key stays valid for the grace period.
pub(crate) async fn rotate(State(state): State<AdminState>) -> Result<Response, ApiError> {
    keys::rotate(&state.store, gatehouse_core::now_millis()).await.map_err(|e| ApiError::internal(&e))?;
    settings(&state).await
}
