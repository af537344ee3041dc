//! `/accounts/{id}/access/identity_providers`: create, list, get, replace, delete, and the
//! SCIM secret refresh.
//!
//! Secrets: `client_secret` is never rendered. The SCIM secret is generated when SCIM is
//! first enabled (or on refresh), returned in that one response, and stored only as a hash.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::idp::{IdentityProvider, IdpInput, IdpType};
use gatehouse_core::secret::{SecretString, generate_bearer_secret, hash_bearer_secret};
use gatehouse_core::{IdpId, now_millis};
use gatehouse_store::{IdpFilter, IdpStore, OrgStore};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::envelope::{ApiError, ErrorCode, ok, ok_list};
use super::extract::{ApiJson, ApiQuery, PageParams, path_id};
use super::team_base;
use crate::AdminState;

/// Prefix of SCIM bearer secrets, so a leaked one is recognisable in scanners and logs.
const SCIM_SECRET_PREFIX: &str = "ghscim_";

/// Renders an IdP in Cloudflare's shape. `scim_secret` is included only when just generated.
fn render(base: &str, idp: &IdentityProvider, scim_secret: Option<&SecretString>) -> Value {
    let c = &idp.config;
    let mut config = Map::new();
    config.insert("client_id".into(), json!(c.client_id));
    match idp.kind {
        IdpType::AzureAd => {
            config.insert("directory_id".into(), json!(c.directory_id.map(|d| d.to_string())));
            config.insert("azure_cloud".into(), json!(c.azure_cloud.as_str()));
            config.insert("conditional_access_enabled".into(), json!(c.conditional_access_enabled));
        }
        IdpType::Oidc => {
            config.insert("auth_url".into(), json!(c.auth_url));
            config.insert("token_url".into(), json!(c.token_url));
            config.insert("certs_url".into(), json!(c.certs_url));
            config.insert("scopes".into(), json!(c.scopes));
        }
    }
    config.insert("support_groups".into(), json!(c.support_groups));
    config.insert("pkce_enabled".into(), json!(c.pkce_enabled));
    config.insert("claims".into(), json!(c.claims));
    if let Some(p) = c.prompt {
        config.insert("prompt".into(), json!(p));
    }
    if let Some(e) = &c.email_claim_name {
        config.insert("email_claim_name".into(), json!(e));
    }
    config.insert("redirect_url".into(), json!(redirect_url(base)));

    let s = &idp.scim;
    let mut scim = json!({
        "enabled": s.enabled,
        "user_deprovision": s.user_deprovision,
        "seat_deprovision": s.seat_deprovision,
        "group_member_deprovision": s.group_member_deprovision,
        "identity_update_behavior": s.identity_update_behavior,
        "scim_base_url": scim_base_url(base, idp.id),
    });
    if let (Some(secret), Some(obj)) = (scim_secret, scim.as_object_mut()) {
        obj.insert("secret".into(), json!(secret.expose()));
    }
    json!({
        "id": idp.id.to_string(),
        "uid": idp.id.to_string(),
        "name": idp.name,
        "type": idp.kind.as_str(),
        "config": config,
        "scim_config": scim,
        "created_at": gatehouse_core::rfc3339(idp.created_at),
        "updated_at": gatehouse_core::rfc3339(idp.updated_at),
    })
}

pub(crate) async fn base(state: &AdminState) -> Result<String, ApiError> {
    let org = state.store.organization().await?;
    Ok(team_base(state, &org))
}

fn new_scim_secret() -> Result<(SecretString, String), ApiError> {
    let secret = generate_bearer_secret(SCIM_SECRET_PREFIX).map_err(|e| ApiError::internal(&e))?;
    let hash = hash_bearer_secret(secret.expose());
    Ok((secret, hash))
}

async fn load(state: &AdminState, uri: &OriginalUri, raw_id: &str) -> Result<IdentityProvider, ApiError> {
    let id: IdpId = path_id(uri, raw_id)?;
    state.store.get_idp(id).await?.ok_or_else(|| ApiError::not_found("identity provider"))
}

pub(crate) async fn create(
    State(state): State<AdminState>,
    ApiJson(input): ApiJson<IdpInput>,
) -> Result<Response, ApiError> {
    let (idp, scim_secret) = create_idp(&state, input).await?;
    Ok(ok(render(&base(&state).await?, &idp, scim_secret.as_ref())))
}

/// Validates and stores a new identity provider; returns it with its SCIM secret when SCIM
/// is enabled (the one time that secret exists in the clear).
pub(crate) async fn create_idp(
    state: &AdminState,
    input: IdpInput,
) -> Result<(IdentityProvider, Option<SecretString>), ApiError> {
    let draft = input.validate(None)?;
    let now = now_millis();
    let (scim_secret, scim_secret_hash) = if draft.scim.enabled {
        let (s, h) = new_scim_secret()?;
        (Some(s), Some(h))
    } else {
        (None, None)
    };
    let idp = IdentityProvider {
        id: IdpId::generate(),
        name: draft.name,
        kind: draft.kind,
        config: draft.config,
        client_secret: draft.client_secret.unwrap_or_default(),
        scim: draft.scim,
        scim_secret_hash,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_idp(&idp).await?;
    tracing::info!(idp = %idp.id, kind = idp.kind.as_str(), scim = idp.scim.enabled, "identity provider created");
    Ok((idp, scim_secret))
}

/// Query of the list endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    page: Option<u32>,
    per_page: Option<u32>,
    scim_enabled: Option<String>,
}

pub(crate) async fn list(
    State(state): State<AdminState>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let page = PageParams { page: q.page, per_page: q.per_page }.page()?;
    let scim_enabled = match q.scim_enabled.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                format!("scim_enabled must be true or false, not {other:?}"),
            ));
        }
    };
    let found = state.store.list_idps(IdpFilter { scim_enabled }, page).await?;
    let base = base(&state).await?;
    let items: Vec<Value> = found.items.iter().map(|i| render(&base, i, None)).collect();
    Ok(ok_list(items, page.page, page.per_page, found.total))
}

pub(crate) async fn get(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let idp = load(&state, &uri, &id).await?;
    Ok(ok(render(&base(&state).await?, &idp, None)))
}

/// Full replace. An omitted `client_secret` keeps the stored one; enabling SCIM for the
/// first time generates its secret.
pub(crate) async fn replace(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
    ApiJson(input): ApiJson<IdpInput>,
) -> Result<Response, ApiError> {
    let existing = load(&state, &uri, &id).await?;
    let (idp, scim_secret) = replace_idp(&state, existing, input).await?;
    Ok(ok(render(&base(&state).await?, &idp, scim_secret.as_ref())))
}

/// Validates and stores a full replace of `existing`; returns the stored IdP and the SCIM
/// secret when this replace enabled SCIM for the first time.
pub(crate) async fn replace_idp(
    state: &AdminState,
    existing: IdentityProvider,
    input: IdpInput,
) -> Result<(IdentityProvider, Option<SecretString>), ApiError> {
    let draft = input.validate(Some(&existing))?;
    let mut scim_secret = None;
    let mut scim_secret_hash = existing.scim_secret_hash.clone();
    if draft.scim.enabled && scim_secret_hash.is_none() {
        let (s, h) = new_scim_secret()?;
        scim_secret = Some(s);
        scim_secret_hash = Some(h);
    }
    let idp = IdentityProvider {
        id: existing.id,
        name: draft.name,
        kind: draft.kind,
        config: draft.config,
        client_secret: draft.client_secret.unwrap_or(existing.client_secret),
        scim: draft.scim,
        scim_secret_hash,
        created_at: existing.created_at,
        updated_at: now_millis(),
    };
    if !state.store.replace_idp(&idp).await? {
        return Err(ApiError::not_found("identity provider"));
    }
    tracing::info!(idp = %idp.id, scim = idp.scim.enabled, "identity provider replaced");
    Ok((idp, scim_secret))
}

pub(crate) async fn delete(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id: IdpId = path_id(&uri, &id)?;
    if !state.store.delete_idp(id).await? {
        return Err(ApiError::not_found("identity provider"));
    }
    tracing::info!(idp = %id, "identity provider deleted");
    Ok(ok(json!({ "id": id.to_string() })))
}

/// Issues a new SCIM secret; the old one stops working immediately.
pub(crate) async fn refresh_scim_secret(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let idp = load(&state, &uri, &id).await?;
    let (idp, secret) = refresh_idp_scim_secret(&state, idp).await?;
    Ok(ok(render(&base(&state).await?, &idp, Some(&secret))))
}

/// Replaces the SCIM secret of `idp`; returns the IdP and the new secret, shown once.
pub(crate) async fn refresh_idp_scim_secret(
    state: &AdminState,
    mut idp: IdentityProvider,
) -> Result<(IdentityProvider, SecretString), ApiError> {
    let (secret, hash) = new_scim_secret()?;
    idp.scim_secret_hash = Some(hash);
    idp.updated_at = now_millis();
    if !state.store.replace_idp(&idp).await? {
        return Err(ApiError::not_found("identity provider"));
    }
    tracing::info!(idp = %idp.id, "SCIM secret refreshed");
    Ok((idp, secret))
}

/// The redirect URI to register with the IdP.
pub(crate) fn redirect_url(base: &str) -> String {
    format!("{base}/cdn-cgi/access/callback")
}

/// The SCIM base URL of an IdP, to give to Entra's provisioning.
pub(crate) fn scim_base_url(base: &str, id: IdpId) -> String {
    format!("{base}/populations/{id}/scim/v2")
}
