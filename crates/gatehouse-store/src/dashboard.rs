//! Sessions of the web dashboard. A session is opened by signing in with an admin API token
//! and is stored under the SHA-256 of its random cookie value, never the value itself; it
//! remembers which token opened it and whether that token may only read.

use std::future::Future;

use gatehouse_core::{TokenId, UnixMillis};

use crate::{Store, StoreError, on_pool};

/// A stored dashboard session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSession {
    /// Hex SHA-256 of the cookie value.
    pub id_hash: String,
    /// The API token that opened it.
    pub token_id: TokenId,
    /// Opened with a read-only token: may view, not change.
    pub read_only: bool,
    /// Sign-in time.
    pub created_at: UnixMillis,
    /// End of the session.
    pub expires_at: UnixMillis,
}

/// Storage of dashboard sessions.
pub trait DashboardSessionStore {
    /// Stores a new session.
    fn insert_dashboard_session(&self, s: &DashboardSession) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The session stored under `id_hash`, if it has not expired at `now`.
    fn dashboard_session(
        &self,
        id_hash: &str,
        now: UnixMillis,
    ) -> impl Future<Output = Result<Option<DashboardSession>, StoreError>> + Send;
    /// Ends a session (sign-out); `false` when there was none.
    fn delete_dashboard_session(&self, id_hash: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes sessions expired before `now`; returns how many.
    fn prune_dashboard_sessions(&self, now: UnixMillis) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

type Row = (String, String, bool, i64, i64);

impl DashboardSessionStore for Store {
    #[tracing::instrument(skip_all)]
    async fn insert_dashboard_session(&self, s: &DashboardSession) -> Result<(), StoreError> {
        on_pool!(self, p => {
            sqlx::query(
                "INSERT INTO dashboard_sessions (id_hash, token_id, read_only, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&s.id_hash)
            .bind(s.token_id.to_string())
            .bind(s.read_only)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(p).await.map(|r| r.rows_affected())
        })
        .map_err(|e| StoreError::conflict_on_unique(e, "dashboard session exists"))?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn dashboard_session(&self, id_hash: &str, now: UnixMillis) -> Result<Option<DashboardSession>, StoreError> {
        let row: Option<Row> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT id_hash, token_id, read_only, created_at, expires_at FROM dashboard_sessions \
                 WHERE id_hash = $1 AND expires_at > $2",
            )
            .bind(id_hash)
            .bind(now)
            .fetch_optional(p)
            .await
        })?;
        row.map(|(id_hash, token_id, read_only, created_at, expires_at)| {
            let token_id =
                token_id.parse().map_err(|_| StoreError::Corrupt(format!("dashboard session token {token_id}")))?;
            Ok(DashboardSession { id_hash, token_id, read_only, created_at, expires_at })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn delete_dashboard_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => {
            sqlx::query("DELETE FROM dashboard_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(p).await.map(|r| r.rows_affected())
        })?;
        Ok(n > 0)
    }

    async fn prune_dashboard_sessions(&self, now: UnixMillis) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => {
            sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(p).await.map(|r| r.rows_affected())
        })?;
        Ok(n)
    }
}
