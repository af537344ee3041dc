//! `/accounts/{id}/access/service_tokens`: create (secret shown once), list, get, update,
//! delete, `refresh` (extend the expiry) and `rotate` (new secret; the previous one may stay
//! valid until a given time).

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::secret::{SecretString, hash_bearer_secret, random_fill};
use gatehouse_core::{GoDuration, now_millis};
use gatehouse_store::{ServiceTokenRecord, ServiceTokenStore};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::envelope::{ApiError, ErrorCode, ok, ok_list};
use super::extract::{ApiJson, ApiQuery, PageParams, path_id};
use crate::AdminState;

const DEFAULT_DURATION: &str = "8760h";

fn render(t: &ServiceTokenRecord, secret: Option<&SecretString>) -> Value {
    let mut v = json!({
        "id": t.id, "name": t.name, "client_id": t.client_id,
        "duration": t.duration,
        "expires_at": gatehouse_core::rfc3339(t.expires_at),
        "client_secret_version": t.secret_version,
        "previous_client_secret_expires_at": t.previous_expires_at.map(gatehouse_core::rfc3339),
        "last_seen_at": t.last_seen_at.map(gatehouse_core::rfc3339),
        "created_at": gatehouse_core::rfc3339(t.created_at),
        "updated_at": gatehouse_core::rfc3339(t.updated_at),
    });
    if let (Some(s), Some(obj)) = (secret, v.as_object_mut()) {
        obj.insert("client_secret".into(), json!(s.expose()));
    }
    v
}

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut b = vec![0u8; bytes];
    random_fill(&mut b).map_err(|e| ApiError::internal(&e))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn invalid(path: &str, msg: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRequest,
        format!("access.api.error.invalid_request: {path}: {msg}"),
    )
}

fn duration_ms(raw: &str) -> Result<i64, ApiError> {
    let d: GoDuration =
        raw.parse().map_err(|e: gatehouse_core::duration::DurationError| invalid("duration", &e.to_string()))?;
    if d.get().as_secs() < 60 {
        return Err(invalid("duration", "must be at least 1m"));
    }
    i64::try_from(d.get().as_millis()).map_err(|_| invalid("duration", "too large"))
}

/// Body of create and update.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenInput {
    name: Option<String>,
    duration: Option<String>,
    /// Read-only; accepted so a fetched token can be sent back.
    #[allow(dead_code)]
    client_secret_version: Option<Value>,
    /// Read-only; accepted so a fetched token can be sent back.
    #[allow(dead_code)]
    previous_client_secret_expires_at: Option<Value>,
}

impl TokenInput {
    /// The input of a create with these fields.
    pub(crate) fn new(name: Option<String>, duration: Option<String>) -> Self {
        Self { name, duration, ..Self::default() }
    }
}

fn name(input: &TokenInput) -> Result<String, ApiError> {
    match input.name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() && n.len() <= 200 => Ok(n.to_owned()),
        _ => Err(invalid("name", "is required (1 to 200 characters)")),
    }
}

pub(crate) async fn create(
    State(state): State<AdminState>,
    ApiJson(input): ApiJson<TokenInput>,
) -> Result<Response, ApiError> {
    let (t, secret) = create_service_token(&state, &input).await?;
    Ok(ok(render(&t, Some(&secret))))
}

/// Validates and stores a new service token; returns it with its secret, shown once.
pub(crate) async fn create_service_token(
    state: &AdminState,
    input: &TokenInput,
) -> Result<(ServiceTokenRecord, SecretString), ApiError> {
    let name = name(input)?;
    let duration = input.duration.clone().unwrap_or_else(|| DEFAULT_DURATION.to_owned());
    let ttl = duration_ms(&duration)?;
    let secret = SecretString::new(random_hex(32)?);
    let now = now_millis();
    let t = ServiceTokenRecord {
        id: Uuid::new_v4(),
        name,
        client_id: format!("{}.access", random_hex(16)?),
        secret_hash: hash_bearer_secret(secret.expose()),
        secret_version: 1,
        previous_secret_hash: None,
        previous_expires_at: None,
        duration,
        expires_at: now.saturating_add(ttl),
        created_at: now,
        updated_at: now,
        last_seen_at: None,
    };
    state.store.insert_service_token(&t).await?;
    tracing::info!(token = %t.id, "service token created");
    Ok((t, secret))
}

pub(crate) async fn list(
    State(state): State<AdminState>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Response, ApiError> {
    let page = params.page()?;
    let found = state.store.list_service_tokens(page).await?;
    Ok(ok_list(found.items.iter().map(|t| render(t, None)).collect(), page.page, page.per_page, found.total))
}

async fn load(state: &AdminState, uri: &OriginalUri, raw: &str) -> Result<ServiceTokenRecord, ApiError> {
    let id: Uuid = path_id(uri, raw)?;
    state.store.get_service_token(id).await?.ok_or_else(|| ApiError::not_found("service token"))
}

pub(crate) async fn get(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(render(&load(&state, &uri, &id).await?, None)))
}

/// Renames and/or changes the lifetime (the expiry restarts from now).
pub(crate) async fn update(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
    ApiJson(input): ApiJson<TokenInput>,
) -> Result<Response, ApiError> {
    let mut t = load(&state, &uri, &id).await?;
    let now = now_millis();
    if input.name.is_some() {
        t.name = name(&input)?;
    }
    if let Some(d) = &input.duration {
        t.expires_at = now.saturating_add(duration_ms(d)?);
        t.duration.clone_from(d);
    }
    t.updated_at = now;
    state.store.update_service_token(&t).await?;
    Ok(ok(render(&t, None)))
}

pub(crate) async fn delete(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let t = load(&state, &uri, &id).await?;
    state.store.delete_service_token(t.id).await?;
    tracing::info!(token = %t.id, "service token deleted");
    Ok(ok(render(&t, None)))
}

/// Extends the expiry by the token's duration, from now.
pub(crate) async fn refresh(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mut t = load(&state, &uri, &id).await?;
    let now = now_millis();
    t.expires_at = now.saturating_add(duration_ms(&t.duration)?);
    t.updated_at = now;
    state.store.update_service_token(&t).await?;
    Ok(ok(render(&t, None)))
}

/// Body of rotate.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateInput {
    previous_client_secret_expires_at: Option<String>,
}

/// Issues a new secret, shown once. The previous secret stays valid until
/// `previous_client_secret_expires_at` (RFC 3339) if given, else stops working at once.
pub(crate) async fn rotate(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let t = load(&state, &uri, &id).await?;
    // The body is optional: SDKs send none or `{}`.
    let input: RotateInput = if body.iter().all(u8::is_ascii_whitespace) {
        RotateInput::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidBody, format!("Request body is invalid: {e}"))
        })?
    };
    let now = now_millis();
    let previous_until = match input.previous_client_secret_expires_at.as_deref() {
        None => None,
        Some(s) => {
            let at = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| invalid("previous_client_secret_expires_at", "must be an RFC 3339 time"))?;
            let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
            if ms <= now {
                return Err(invalid("previous_client_secret_expires_at", "must be in the future"));
            }
            Some(ms)
        }
    };
    let (t, secret) = rotate_service_token(&state, t, previous_until).await?;
    Ok(ok(render(&t, Some(&secret))))
}

/// Issues a new secret for `t`, shown once; the previous one stays valid until
/// `previous_until` (already checked to be in the future), else stops working at once.
pub(crate) async fn rotate_service_token(
    state: &AdminState,
    mut t: ServiceTokenRecord,
    previous_until: Option<i64>,
) -> Result<(ServiceTokenRecord, SecretString), ApiError> {
    let secret = SecretString::new(random_hex(32)?);
    t.previous_secret_hash = previous_until.map(|_| t.secret_hash.clone());
    t.previous_expires_at = previous_until;
    t.secret_hash = hash_bearer_secret(secret.expose());
    t.secret_version += 1;
    t.updated_at = now_millis();
    state.store.update_service_token(&t).await?;
    tracing::info!(token = %t.id, version = t.secret_version, "service token rotated");
    Ok((t, secret))
}
