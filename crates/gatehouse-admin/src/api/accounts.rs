//! `GET /accounts`, `GET /accounts/{id}` and `GET /user/tokens/verify`.

use axum::Extension;
use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use gatehouse_core::AccountId;
use gatehouse_store::OrgStore;
use serde_json::{Value, json};

use super::auth::ApiCaller;
use super::envelope::{ApiError, ok, ok_list};
use super::extract::{ApiQuery, PageParams, path_id};
use crate::AdminState;

async fn account_json(state: &AdminState) -> Result<Value, ApiError> {
    let org = state.store.organization().await?;
    Ok(json!({
        "id": state.account_id.to_string(),
        "name": org.name,
        "type": "standard",
        "settings": { "enforce_twofactor": false, "abuse_contact_email": null },
        "created_on": gatehouse_core::rfc3339(org.created_at),
    }))
}

/// The one account of this installation, paged like every list (SDKs page until empty).
pub(crate) async fn list(
    State(state): State<AdminState>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Response, ApiError> {
    let page = params.page()?;
    let items = if page.page == 1 { vec![account_json(&state).await?] } else { Vec::new() };
    Ok(ok_list(items, page.page, page.per_page, 1))
}

pub(crate) async fn get(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id: AccountId = path_id(&uri, &raw)?;
    if id != state.account_id {
        return Err(ApiError::not_found("account"));
    }
    Ok(ok(account_json(&state).await?))
}

/// Cloudflare's token check: the token's id and status.
pub(crate) async fn verify_token(Extension(caller): Extension<ApiCaller>) -> Response {
    ok(json!({
        "id": caller.token_id.0.simple().to_string(),
        "status": "active",
        "read_only": caller.read_only,
    }))
}
