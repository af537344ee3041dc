//! Bearer-token authentication of the admin API.
//!
//! Tokens are looked up by their SHA-256 and then compared in constant time; the token itself
//! is never logged or stored. Read-only tokens may only use safe methods.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use gatehouse_core::TokenId;
use gatehouse_core::secret::{hash_bearer_secret, verify_bearer_secret};
use gatehouse_store::TokenStore;

use super::envelope::{ApiError, ErrorCode};
use crate::AdminState;

/// The authenticated caller, available to handlers as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct ApiCaller {
    /// The token used.
    pub token_id: TokenId,
    /// Whether the token may only read.
    pub read_only: bool,
}

/// Record a token's use at most this often, so reads do not turn into writes.
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// Longest bearer value worth hashing; anything longer is not one of our tokens.
const MAX_TOKEN_LEN: usize = 512;

fn presented_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        if headers.contains_key("x-auth-key") || headers.contains_key("x-auth-email") {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidHeaders,
                "Global API keys (X-Auth-Email/X-Auth-Key) are not supported; send an API token as 'Authorization: Bearer <token>' (create one with 'gatehouse api-token create')",
            ));
        }
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::MissingAuth,
            "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
        ));
    };
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidHeaders,
            "Invalid request headers: invalid format for Authorization header, expected 'Bearer <token>'",
        )
    };
    let value = value.to_str().map_err(|_| invalid())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(invalid)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(invalid());
    }
    Ok(token)
}

/// Middleware: authenticates the caller and enforces read-only tokens.
pub async fn require_token(
    State(state): State<AdminState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = presented_token(req.headers())?;
    if token.len() > MAX_TOKEN_LEN {
        return Err(ApiError::forbidden());
    }
    let found = state.store.find_token_by_hash(&hash_bearer_secret(token)).await?;
    let Some(stored) = found.filter(|t| verify_bearer_secret(token, &t.secret_hash)) else {
        tracing::info!("admin API request with an unknown token refused");
        return Err(ApiError::forbidden());
    };
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if stored.read_only && !safe {
        tracing::info!(token = %stored.id, method = %req.method(), "read-only token refused on a write");
        return Err(ApiError::forbidden());
    }
    let now = gatehouse_core::now_millis();
    if stored.last_used_at.is_none_or(|t| now - t > TOUCH_INTERVAL_MS)
        && let Err(e) = state.store.touch_token(stored.id, now).await
    {
        tracing::warn!(error = %e, "could not record API token use");
    }
    req.extensions_mut().insert(ApiCaller { token_id: stored.id, read_only: stored.read_only });
    Ok(next.run(req).await)
}
