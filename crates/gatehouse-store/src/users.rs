//! The user registry, sign-in sessions and pending sign-ins.
//!
//! Users are keyed by (IdP, subject) — Entra's tenant+object id, or an OIDC issuer+sub —
//! never by e-mail alone. Sessions are revoked by marking them, not deleting them, so every
//! instance can learn the revocation and refuse the session's tokens. Pending sign-ins are
//! single use: taking one deletes it in the same statement.

use std::future::Future;

use gatehouse_core::{AppId, IdpId, UnixMillis};
use uuid::Uuid;

use crate::{Page, Paged, Store, StoreError, on_pool};

/// A user of the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// Stable user id (the tokens' `sub`).
    pub id: Uuid,
    /// The IdP the user signs in with.
    pub idp_id: IdpId,
    /// The IdP's stable key for the user.
    pub subject: String,
    /// E-mail (lower case).
    pub email: String,
    /// Display name.
    pub name: String,
    /// The identity seen at the last sign-in (get-identity shape).
    pub identity: serde_json::Value,
    /// Whether the user holds a seat.
    pub access_seat: bool,
    /// First seen.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
    /// Last successful sign-in.
    pub last_login_at: Option<UnixMillis>,
}

/// Session kinds: the team-domain (organisation) session, or one application's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// Team-domain session giving single sign-on.
    Org,
    /// An application's session.
    App,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Org => "org",
            Self::App => "app",
        }
    }
}

/// A sign-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The token's `identity_nonce`.
    pub nonce: String,
    /// Whose.
    pub user_id: Uuid,
    /// Which kind.
    pub kind: SessionKind,
    /// The application, for application sessions.
    pub app_id: Option<AppId>,
    /// Start.
    pub created_at: UnixMillis,
    /// End.
    pub expires_at: UnixMillis,
    /// When revoked, if it was.
    pub revoked_at: Option<UnixMillis>,
}

/// Storage of users.
pub trait UserStore {
    /// Records a successful sign-in: creates the user on first sight, else updates e-mail,
    /// name, identity and last login. Returns the stored user.
    fn record_sign_in(
        &self,
        idp: IdpId,
        subject: &str,
        email: &str,
        name: &str,
        identity: &serde_json::Value,
        now: UnixMillis,
    ) -> impl Future<Output = Result<UserRecord, StoreError>> + Send;
    /// The user with `id`.
    fn get_user(&self, id: Uuid) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send;
    /// A page of users, optionally only those whose e-mail or name contains `search`.
    fn list_users(
        &self,
        search: Option<&str>,
        page: Page,
    ) -> impl Future<Output = Result<Paged<UserRecord>, StoreError>> + Send;
}

/// Storage of sessions.
pub trait SessionStore {
    /// Stores a new session.
    fn insert_session(&self, s: &SessionRecord) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The user's sessions that are neither expired nor revoked at `now`.
    fn active_sessions(
        &self,
        user: Uuid,
        now: UnixMillis,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, StoreError>> + Send;
    /// The session with `nonce`, if it exists and is neither expired nor revoked at `now`.
    fn live_session(
        &self,
        nonce: &str,
        now: UnixMillis,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;
    /// Revokes one session; `false` when unknown or already revoked.
    fn revoke_session(&self, nonce: &str, now: UnixMillis) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Revokes every live session of a user; returns how many.
    fn revoke_user_sessions(&self, user: Uuid, now: UnixMillis)
    -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Nonces of revoked sessions that have not expired yet (what the data plane must refuse).
    fn revoked_nonces(&self, now: UnixMillis) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// Storage of pending sign-ins (state → what the callback needs).
pub trait PendingStore {
    /// Stores a pending sign-in under its `state`.
    fn put_pending(
        &self,
        state: &str,
        data: &str,
        expires_at: UnixMillis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Takes (and deletes) the pending sign-in for `state` unless it expired: single use.
    fn take_pending(
        &self,
        state: &str,
        now: UnixMillis,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

type UserRow = (String, String, String, String, String, String, bool, i64, i64, Option<i64>);
const USER_COLUMNS: &str =
    "id, idp_id, subject, email, name, identity, access_seat, created_at, updated_at, last_login_at";

fn user_from_row(r: UserRow) -> Result<UserRecord, StoreError> {
    let (id, idp, subject, email, name, identity, access_seat, created_at, updated_at, last_login_at) = r;
    let corrupt = |w: &str| StoreError::Corrupt(format!("user {id}: {w}"));
    Ok(UserRecord {
        id: Uuid::parse_str(&id).map_err(|_| corrupt("id"))?,
        idp_id: idp.parse().map_err(|_| corrupt("idp id"))?,
        subject,
        email,
        name,
        identity: serde_json::from_str(&identity).map_err(|e| corrupt(&e.to_string()))?,
        access_seat,
        created_at,
        updated_at,
        last_login_at,
    })
}

type SessionRow = (String, String, String, Option<String>, i64, i64, Option<i64>);
const SESSION_COLUMNS: &str = "nonce, user_id, kind, app_id, created_at, expires_at, revoked_at";

fn session_from_row(r: SessionRow) -> Result<SessionRecord, StoreError> {
    let (nonce, user, kind, app, created_at, expires_at, revoked_at) = r;
    let corrupt = |w: &str| StoreError::Corrupt(format!("session: {w}"));
    Ok(SessionRecord {
        user_id: Uuid::parse_str(&user).map_err(|_| corrupt("user id"))?,
        kind: match kind.as_str() {
            "org" => SessionKind::Org,
            "app" => SessionKind::App,
            _ => return Err(corrupt("kind")),
        },
        app_id: app.map(|a| a.parse().map_err(|_| corrupt("app id"))).transpose()?,
        nonce,
        created_at,
        expires_at,
        revoked_at,
    })
}

impl UserStore for Store {
    #[tracing::instrument(skip_all, fields(idp = %idp))]
    async fn record_sign_in(
        &self,
        idp: IdpId,
        subject: &str,
        email: &str,
        name: &str,
        identity: &serde_json::Value,
        now: UnixMillis,
    ) -> Result<UserRecord, StoreError> {
        let identity = identity.to_string();
        let row: UserRow = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "INSERT INTO users (id, idp_id, subject, email, name, identity, access_seat, created_at, updated_at, last_login_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $7, $7) \
                 ON CONFLICT (idp_id, subject) DO UPDATE SET email = excluded.email, name = excluded.name, \
                 identity = excluded.identity, access_seat = TRUE, updated_at = excluded.updated_at, \
                 last_login_at = excluded.last_login_at \
                 RETURNING {USER_COLUMNS}"
            )))
            .bind(Uuid::new_v4().to_string())
            .bind(idp.to_string())
            .bind(subject)
            .bind(email)
            .bind(name)
            .bind(&identity)
            .bind(now)
            .fetch_one(p)
            .await
        })?;
        user_from_row(row)
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")))
                .bind(id.to_string())
                .fetch_optional(p)
                .await
        })?;
        row.map(user_from_row).transpose()
    }

    async fn list_users(&self, search: Option<&str>, page: Page) -> Result<Paged<UserRecord>, StoreError> {
        // LIKE wildcards in the search are escaped, so a search is always a plain substring.
        let pattern = search.map(|s| {
            let escaped = s.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        let filter = "($1 IS NULL OR LOWER(email) LIKE $1 ESCAPE '\\' OR LOWER(name) LIKE $1 ESCAPE '\\')";
        let (rows, total): (Vec<UserRow>, (i64,)) = on_pool!(self, p => {
            let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS} FROM users WHERE {filter} ORDER BY created_at, id LIMIT $2 OFFSET $3"
            )))
            .bind(&pattern)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(p)
            .await?;
            let total = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM users WHERE {filter}")))
                .bind(&pattern)
                .fetch_one(p)
                .await?;
            (rows, total)
        });
        let items = rows.into_iter().map(user_from_row).collect::<Result<_, _>>()?;
        Ok(Paged { items, total: u64::try_from(total.0).unwrap_or(0) })
    }
}

impl SessionStore for Store {
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        on_pool!(self, p => {
            sqlx::query(
                "INSERT INTO sessions (nonce, user_id, kind, app_id, created_at, expires_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&s.nonce)
            .bind(s.user_id.to_string())
            .bind(s.kind.as_str())
            .bind(s.app_id.map(|a| a.to_string()))
            .bind(s.created_at)
            .bind(s.expires_at)
            .bind(s.revoked_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| StoreError::conflict_on_unique(e, "session exists"))?;
        Ok(())
    }

    async fn active_sessions(&self, user: Uuid, now: UnixMillis) -> Result<Vec<SessionRecord>, StoreError> {
        let rows: Vec<SessionRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
                 ORDER BY created_at, nonce"
            )))
            .bind(user.to_string())
            .bind(now)
            .fetch_all(p)
            .await
        })?;
        rows.into_iter().map(session_from_row).collect()
    }

    async fn live_session(&self, nonce: &str, now: UnixMillis) -> Result<Option<SessionRecord>, StoreError> {
        let row: Option<SessionRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE nonce = $1 AND revoked_at IS NULL AND expires_at > $2"
            )))
            .bind(nonce)
            .bind(now)
            .fetch_optional(p)
            .await
        })?;
        row.map(session_from_row).transpose()
    }

    async fn revoke_session(&self, nonce: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => {
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE nonce = $1 AND revoked_at IS NULL")
                .bind(nonce)
                .bind(now)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        if done > 0 {
            self.publish(crate::Change::Revocations).await;
        }
        Ok(done > 0)
    }

    async fn revoke_user_sessions(&self, user: Uuid, now: UnixMillis) -> Result<u64, StoreError> {
        let done = on_pool!(self, p => {
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2")
                .bind(user.to_string())
                .bind(now)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        if done > 0 {
            self.publish(crate::Change::Revocations).await;
        }
        Ok(done)
    }

    async fn revoked_nonces(&self, now: UnixMillis) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_pool!(self, p => {
            sqlx::query_as("SELECT nonce FROM sessions WHERE revoked_at IS NOT NULL AND expires_at > $1 ORDER BY nonce")
                .bind(now)
                .fetch_all(p)
                .await
        })?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

impl PendingStore for Store {
    async fn put_pending(&self, state: &str, data: &str, expires_at: UnixMillis) -> Result<(), StoreError> {
        on_pool!(self, p => {
            sqlx::query("INSERT INTO pending_signins (state, data, expires_at) VALUES ($1, $2, $3)")
                .bind(state)
                .bind(data)
                .bind(expires_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| StoreError::conflict_on_unique(e, "state exists"))?;
        Ok(())
    }

    async fn take_pending(&self, state: &str, now: UnixMillis) -> Result<Option<String>, StoreError> {
        let row: Option<(String, i64)> = on_pool!(self, p => {
            sqlx::query_as("DELETE FROM pending_signins WHERE state = $1 RETURNING data, expires_at")
                .bind(state)
                .fetch_optional(p)
                .await
        })?;
        // Expired entries are deleted too: a late callback cannot reuse them.
        on_pool!(self, p => {
            sqlx::query("DELETE FROM pending_signins WHERE expires_at <= $1").bind(now).execute(p).await.map(|r| r.rows_affected())
        })?;
        Ok(row.filter(|(_, exp)| *exp > now).map(|(d, _)| d))
    }
}
