//! Failed sign-ins: every sign-in that reached the callback and did not end signed in, with
//! who (when the IdP said), which IdP and application, why, when and from where.
//!
//! Rows are bounded so that failures, which anyone can cause, cannot fill the database: a row
//! goes at its `expires_at` (the caller decides the retention), and each insert keeps only the
//! newest rows of the same user — or of the failures whose user is unknown. Users are matched
//! by (IdP, subject), like the user registry, so failures from before a user's first
//! successful sign-in are theirs too. Nothing secret is stored: reasons are plain words.

use crate::BeginWrite as _;
use std::future::Future;

use gatehouse_core::{AppId, IdpId, UnixMillis};
use uuid::Uuid;

use crate::{Store, StoreError, on_pool};

/// One failed sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedLoginRecord {
    /// Unique id.
    pub id: Uuid,
    /// When it failed.
    pub created_at: UnixMillis,
    /// When the record is deleted.
    pub expires_at: UnixMillis,
    /// The IdP the sign-in went through.
    pub idp_id: Option<IdpId>,
    /// The IdP's stable key for the user, when the IdP identified them.
    pub subject: Option<String>,
    /// The registry's user, when known.
    pub user_id: Option<Uuid>,
    /// The user's e-mail, when known.
    pub email: Option<String>,
    /// The application signed in to (`None` for sign-ins not for an application).
    pub app_id: Option<AppId>,
    /// The application's name at the time.
    pub app_name: Option<String>,
    /// The application's audience tag.
    pub aud: Option<String>,
    /// Stable reason code (`policy_denied`, a sign-in diagnosis code such as `access_denied`).
    pub reason_code: String,
    /// Why, in plain words (never anything secret).
    pub reason: String,
    /// Client address.
    pub ip_address: String,
    /// Unique id of the request, as shown to the user.
    pub ray_id: String,
}

impl FailedLoginRecord {
    /// The key rows are grouped by: `<idp>|<subject>`, or empty when the user is unknown.
    fn subject_key(&self) -> String {
        match (&self.idp_id, &self.subject) {
            (Some(idp), Some(subject)) => key(*idp, subject),
            _ => String::new(),
        }
    }
}

fn key(idp: IdpId, subject: &str) -> String {
    format!("{idp}|{subject}")
}

/// Storage of failed sign-ins.
pub trait FailedLoginStore {
    /// Stores a failed sign-in, deletes every record expired at `r.created_at`, and keeps only
    /// the newest `keep` records of the same user (or of the failures without a known user).
    fn record_failed_login(
        &self,
        r: &FailedLoginRecord,
        keep: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The unexpired failed sign-ins of the user `subject` of `idp`, newest first, at most
    /// `limit`.
    fn failed_logins(
        &self,
        idp: IdpId,
        subject: &str,
        now: UnixMillis,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<FailedLoginRecord>, StoreError>> + Send;
    /// The newest unexpired failed sign-ins of everyone (with or without a known user), at
    /// most `limit`.
    fn recent_failed_logins(
        &self,
        now: UnixMillis,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<FailedLoginRecord>, StoreError>> + Send;
}

type Row = (
    String,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    String,
);
const COLUMNS: &str = "id, created_at, expires_at, subject_key, idp_id, user_id, email, app_id, app_name, aud, \
                       reason_code, reason, ip_address, ray_id";

fn from_row(r: Row) -> Result<FailedLoginRecord, StoreError> {
    let (id, created_at, expires_at, subject_key, idp, user, email, app, app_name, aud, code, reason, ip, ray) = r;
    let corrupt = |w: &str| StoreError::Corrupt(format!("failed login {id}: {w}"));
    let subject = subject_key.split_once('|').map(|(_, s)| s.to_owned());
    Ok(FailedLoginRecord {
        id: Uuid::parse_str(&id).map_err(|_| corrupt("id"))?,
        created_at,
        expires_at,
        idp_id: idp.map(|i| i.parse().map_err(|_| corrupt("idp id"))).transpose()?,
        subject,
        user_id: user.map(|u| Uuid::parse_str(&u).map_err(|_| corrupt("user id"))).transpose()?,
        email,
        app_id: app.map(|a| a.parse().map_err(|_| corrupt("app id"))).transpose()?,
        app_name,
        aud,
        reason_code: code,
        reason,
        ip_address: ip,
        ray_id: ray,
    })
}

impl FailedLoginStore for Store {
    #[tracing::instrument(skip_all)]
    async fn record_failed_login(&self, r: &FailedLoginRecord, keep: u32) -> Result<(), StoreError> {
        let subject_key = r.subject_key();
        on_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO failed_logins ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            )))
            .bind(r.id.to_string())
            .bind(r.created_at)
            .bind(r.expires_at)
            .bind(&subject_key)
            .bind(r.idp_id.map(|i| i.to_string()))
            .bind(r.user_id.map(|u| u.to_string()))
            .bind(&r.email)
            .bind(r.app_id.map(|a| a.to_string()))
            .bind(&r.app_name)
            .bind(&r.aud)
            .bind(&r.reason_code)
            .bind(&r.reason)
            .bind(&r.ip_address)
            .bind(&r.ray_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM failed_logins WHERE expires_at <= $1")
                .bind(r.created_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "DELETE FROM failed_logins WHERE subject_key = $1 AND id NOT IN \
                 (SELECT id FROM failed_logins WHERE subject_key = $1 ORDER BY created_at DESC, id DESC LIMIT $2)",
            )
            .bind(&subject_key)
            .bind(i64::from(keep))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?
        });
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn failed_logins(
        &self,
        idp: IdpId,
        subject: &str,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<FailedLoginRecord>, StoreError> {
        let rows: Vec<Row> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM failed_logins WHERE subject_key = $1 AND expires_at > $2 \
                 ORDER BY created_at DESC, id DESC LIMIT $3"
            )))
            .bind(key(idp, subject))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })?;
        rows.into_iter().map(from_row).collect()
    }

    async fn recent_failed_logins(&self, now: UnixMillis, limit: u32) -> Result<Vec<FailedLoginRecord>, StoreError> {
        let rows: Vec<Row> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM failed_logins WHERE expires_at > $1 ORDER BY created_at DESC, id DESC LIMIT $2"
            )))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })?;
        rows.into_iter().map(from_row).collect()
    }
}
