//! Service tokens: non-human credentials presented as `CF-Access-Client-Id` and
//! `CF-Access-Client-Secret`. Secrets are stored as hashes; a rotation keeps the previous
//! secret valid for a grace period so clients can be updated without downtime.

use std::future::Future;

use gatehouse_core::UnixMillis;
use uuid::Uuid;

use crate::{Page, Paged, Store, StoreError, on_pool};

/// A stored service token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTokenRecord {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// The public client id (`<32 hex>.access`).
    pub client_id: String,
    /// SHA-256 of the current secret.
    pub secret_hash: String,
    /// Incremented on every rotation.
    pub secret_version: i64,
    /// SHA-256 of the previous secret, valid until `previous_expires_at`.
    pub previous_secret_hash: Option<String>,
    /// End of the previous secret's grace period.
    pub previous_expires_at: Option<UnixMillis>,
    /// Lifetime as written (Go duration).
    pub duration: String,
    /// Expiry.
    pub expires_at: UnixMillis,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
    /// Last successful use.
    pub last_seen_at: Option<UnixMillis>,
}

/// Storage of service tokens.
pub trait ServiceTokenStore {
    /// Inserts a token; [`StoreError::Conflict`] on a duplicate client id.
    fn insert_service_token(&self, t: &ServiceTokenRecord) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The token with `id`.
    fn get_service_token(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<ServiceTokenRecord>, StoreError>> + Send;
    /// A page of tokens.
    fn list_service_tokens(
        &self,
        page: Page,
    ) -> impl Future<Output = Result<Paged<ServiceTokenRecord>, StoreError>> + Send;
    /// Every token (for the data plane's snapshot).
    fn all_service_tokens(&self) -> impl Future<Output = Result<Vec<ServiceTokenRecord>, StoreError>> + Send;
    /// Writes every mutable field of a token; `false` when missing.
    fn update_service_token(&self, t: &ServiceTokenRecord) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes a token; `false` when missing.
    fn delete_service_token(&self, id: Uuid) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

type Row = (String, String, String, String, i64, Option<String>, Option<i64>, String, i64, i64, i64, Option<i64>);
const COLUMNS: &str = "id, name, client_id, secret_hash, secret_version, previous_secret_hash, previous_expires_at, \
                       duration, expires_at, created_at, updated_at, last_seen_at";

fn from_row(r: Row) -> Result<ServiceTokenRecord, StoreError> {
    let (
        id,
        name,
        client_id,
        secret_hash,
        secret_version,
        previous_secret_hash,
        previous_expires_at,
        duration,
        expires_at,
        created_at,
        updated_at,
        last_seen_at,
    ) = r;
    Ok(ServiceTokenRecord {
        id: Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(format!("service token id: {e}")))?,
        name,
        client_id,
        secret_hash,
        secret_version,
        previous_secret_hash,
        previous_expires_at,
        duration,
        expires_at,
        created_at,
        updated_at,
        last_seen_at,
    })
}

impl ServiceTokenStore for Store {
    #[tracing::instrument(skip_all)]
    async fn insert_service_token(&self, t: &ServiceTokenRecord) -> Result<(), StoreError> {
        on_pool!(self, p => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO service_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            )))
            .bind(t.id.to_string())
            .bind(&t.name)
            .bind(&t.client_id)
            .bind(&t.secret_hash)
            .bind(t.secret_version)
            .bind(&t.previous_secret_hash)
            .bind(t.previous_expires_at)
            .bind(&t.duration)
            .bind(t.expires_at)
            .bind(t.created_at)
            .bind(t.updated_at)
            .bind(t.last_seen_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| StoreError::conflict_on_unique(e, "service token client id exists"))?;
        self.publish(crate::Change::ServiceTokens).await;
        Ok(())
    }

    async fn get_service_token(&self, id: Uuid) -> Result<Option<ServiceTokenRecord>, StoreError> {
        let row: Option<Row> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM service_tokens WHERE id = $1")))
                .bind(id.to_string())
                .fetch_optional(p)
                .await
        })?;
        row.map(from_row).transpose()
    }

    async fn list_service_tokens(&self, page: Page) -> Result<Paged<ServiceTokenRecord>, StoreError> {
        let (rows, total): (Vec<Row>, (i64,)) = on_pool!(self, p => {
            let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM service_tokens ORDER BY created_at, id LIMIT $1 OFFSET $2"
            )))
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(p)
            .await?;
            (rows, sqlx::query_as("SELECT COUNT(*) FROM service_tokens").fetch_one(p).await?)
        });
        let items = rows.into_iter().map(from_row).collect::<Result<_, _>>()?;
        Ok(Paged { items, total: u64::try_from(total.0).unwrap_or(0) })
    }

    async fn all_service_tokens(&self) -> Result<Vec<ServiceTokenRecord>, StoreError> {
        let rows: Vec<Row> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM service_tokens ORDER BY created_at, id")))
                .fetch_all(p)
                .await
        })?;
        rows.into_iter().map(from_row).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn update_service_token(&self, t: &ServiceTokenRecord) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => {
            sqlx::query(
                "UPDATE service_tokens SET name = $2, secret_hash = $3, secret_version = $4, previous_secret_hash = $5, \
                 previous_expires_at = $6, duration = $7, expires_at = $8, updated_at = $9, last_seen_at = $10 WHERE id = $1",
            )
            .bind(t.id.to_string())
            .bind(&t.name)
            .bind(&t.secret_hash)
            .bind(t.secret_version)
            .bind(&t.previous_secret_hash)
            .bind(t.previous_expires_at)
            .bind(&t.duration)
            .bind(t.expires_at)
            .bind(t.updated_at)
            .bind(t.last_seen_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        if done == 1 {
            self.publish(crate::Change::ServiceTokens).await;
        }
        Ok(done == 1)
    }

    async fn delete_service_token(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => {
            sqlx::query("DELETE FROM service_tokens WHERE id = $1").bind(id.to_string()).execute(p).await.map(|r| r.rows_affected())
        })?;
        if done == 1 {
            self.publish(crate::Change::ServiceTokens).await;
        }
        Ok(done == 1)
    }
}
