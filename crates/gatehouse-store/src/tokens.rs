//! Admin API tokens. Only the SHA-256 of a token is stored; lookups are by that hash, so the
//! database never sees a usable token.

use std::future::Future;

use gatehouse_core::{TokenId, UnixMillis};

use crate::{Store, StoreError, on_pool};

/// A stored API token (its hash, never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Token id.
    pub id: TokenId,
    /// Human label.
    pub name: String,
    /// Hex SHA-256 of the bearer token.
    pub secret_hash: String,
    /// Refused on writes when true.
    pub read_only: bool,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last successful use, if any.
    pub last_used_at: Option<UnixMillis>,
}

/// Storage of admin API tokens.
pub trait TokenStore {
    /// Stores a new token.
    fn insert_token(&self, token: &ApiToken) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The token whose hash is `secret_hash`, if any.
    fn find_token_by_hash(
        &self,
        secret_hash: &str,
    ) -> impl Future<Output = Result<Option<ApiToken>, StoreError>> + Send;
    /// Records a use of the token.
    fn touch_token(&self, id: TokenId, at: UnixMillis) -> impl Future<Output = Result<(), StoreError>> + Send;
}

type TokenRow = (String, String, String, bool, i64, Option<i64>);

fn token_from_row(row: TokenRow) -> Result<ApiToken, StoreError> {
    let (id, name, secret_hash, read_only, created_at, last_used_at) = row;
    let id = id.parse().map_err(|_| StoreError::Corrupt(format!("api token id {id}")))?;
    Ok(ApiToken { id, name, secret_hash, read_only, created_at, last_used_at })
}

impl TokenStore for Store {
    #[tracing::instrument(skip_all)]
    async fn insert_token(&self, t: &ApiToken) -> Result<(), StoreError> {
        on_pool!(self, p => {
            sqlx::query(
                "INSERT INTO api_tokens (id, name, secret_hash, read_only, created_at, last_used_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(t.id.to_string())
            .bind(&t.name)
            .bind(&t.secret_hash)
            .bind(t.read_only)
            .bind(t.created_at)
            .bind(t.last_used_at)
            .execute(p).await.map(|r| r.rows_affected())
        })
        .map_err(|e| StoreError::conflict_on_unique(e, "api token exists"))?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn find_token_by_hash(&self, secret_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let row: Option<TokenRow> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT id, name, secret_hash, read_only, created_at, last_used_at FROM api_tokens \
                 WHERE secret_hash = $1",
            )
            .bind(secret_hash)
            .fetch_optional(p)
            .await
        })?;
        row.map(token_from_row).transpose()
    }

    async fn touch_token(&self, id: TokenId, at: UnixMillis) -> Result<(), StoreError> {
        on_pool!(self, p => {
            sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                .bind(id.to_string())
                .bind(at)
                .execute(p).await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}
