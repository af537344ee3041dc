//! What the data plane writes and reads besides applications: access decisions (written in
//! batches by a background task, never on the request path), the ingress configuration set
//! through the API, and per-application token revocations.

use crate::BeginWrite as _;
use std::future::Future;

use gatehouse_core::{AppId, UnixMillis};
use uuid::Uuid;

use crate::{Page, Paged, Store, StoreError, on_pool};

/// One access decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogRecord {
    /// Unique id of the request.
    pub ray_id: String,
    /// When the decision was made.
    pub created_at: UnixMillis,
    /// The application, when one matched.
    pub app_id: Option<AppId>,
    /// The host (and path prefix) the request was for.
    pub app_domain: String,
    /// Who: the user's e-mail, a service token's client id, or empty.
    pub user_email: String,
    /// The user's id, when signed in.
    pub user_id: Option<Uuid>,
    /// Client address.
    pub ip_address: String,
    /// `login` for a first sight of a session, else `request`.
    pub action: String,
    /// Whether the request went through.
    pub allowed: bool,
    /// `allow`, `bypass`, `non_identity`, `deny`, `login_required`, `not_found`.
    pub decision: String,
    /// The deciding policy.
    pub policy_id: Option<String>,
    /// Why, in words (never anything secret).
    pub reason: String,
    /// How the request authenticated: `sso` (session token), `service_token`, `none`.
    pub connection: String,
    /// Method and path, e.g. `GET /reports` (no query string).
    pub request: String,
    /// Status sent to the client.
    pub status: u16,
    /// Time spent in the gateway until response headers, in microseconds.
    pub latency_us: u64,
}

/// Filters of the access log listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessLogFilter {
    /// Only at or after this instant.
    pub since: Option<UnixMillis>,
    /// Only before this instant.
    pub until: Option<UnixMillis>,
    /// Only this user's e-mail (case-insensitive).
    pub email: Option<String>,
    /// Only allowed (`true`) or refused (`false`) requests.
    pub allowed: Option<bool>,
    /// Only this application.
    pub app_id: Option<AppId>,
    /// Newest first when `true` (the default order), oldest first when `false`.
    pub newest_first: bool,
}

/// The ingress configuration stored through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredIngress {
    /// Incremented on every write.
    pub version: i64,
    /// The `config` object as written (`{"ingress": [...], ...}`).
    pub config: serde_json::Value,
    /// Last write.
    pub updated_at: UnixMillis,
}

/// Storage of the data plane's records.
pub trait DataPlaneStore {
    /// Appends access decisions (one transaction).
    fn insert_access_logs(&self, logs: &[AccessLogRecord]) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A page of access decisions.
    fn list_access_logs(
        &self,
        filter: &AccessLogFilter,
        page: Page,
    ) -> impl Future<Output = Result<Paged<AccessLogRecord>, StoreError>> + Send;
    /// Deletes decisions older than `before`; returns how many.
    fn prune_access_logs(&self, before: UnixMillis) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// This installation's tunnel id (created on first use).
    fn tunnel_id(&self) -> impl Future<Output = Result<Uuid, StoreError>> + Send;
    /// The ingress configuration set through the API, if any.
    fn ingress(&self) -> impl Future<Output = Result<Option<StoredIngress>, StoreError>> + Send;
    /// Replaces the ingress configuration; returns the stored version.
    fn put_ingress(
        &self,
        config: &serde_json::Value,
        now: UnixMillis,
    ) -> impl Future<Output = Result<StoredIngress, StoreError>> + Send;
    /// Revokes every token of `app` issued before `now`.
    fn revoke_app_tokens(&self, app: AppId, now: UnixMillis) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every application's "tokens issued before this are revoked" instant.
    fn app_token_revocations(&self) -> impl Future<Output = Result<Vec<(AppId, UnixMillis)>, StoreError>> + Send;
}

type LogRow = (
    String,
    i64,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
    String,
    bool,
    String,
    Option<String>,
    String,
    String,
    String,
    i64,
    i64,
);
const LOG_COLUMNS: &str = "ray_id, created_at, app_id, app_domain, user_email, user_id, ip_address, action, allowed, \
                           decision, policy_id, reason, connection, request, status, latency_us";

fn log_from_row(r: LogRow) -> Result<AccessLogRecord, StoreError> {
    let (
        ray_id,
        created_at,
        app_id,
        app_domain,
        user_email,
        user_id,
        ip_address,
        action,
        allowed,
        decision,
        policy_id,
        reason,
        connection,
        request,
        status,
        latency_us,
    ) = r;
    let corrupt = |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("access log {what}: {e}"));
    Ok(AccessLogRecord {
        ray_id,
        created_at,
        app_id: app_id.map(|a| a.parse::<AppId>().map_err(|e| corrupt("app id", &e))).transpose()?,
        app_domain,
        user_email,
        user_id: user_id.map(|u| Uuid::parse_str(&u).map_err(|e| corrupt("user id", &e))).transpose()?,
        ip_address,
        action,
        allowed,
        decision,
        policy_id,
        reason,
        connection,
        request,
        status: u16::try_from(status).map_err(|e| corrupt("status", &e))?,
        latency_us: u64::try_from(latency_us).unwrap_or(0),
    })
}

/// The WHERE clause and its text parameters, in `$n` order after `first`.
fn log_where(f: &AccessLogFilter) -> (String, Vec<LogParam>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    let next = |clause: &str, p: LogParam, params: &mut Vec<LogParam>| {
        params.push(p);
        clause.replace('?', &format!("${}", params.len()))
    };
    if let Some(s) = f.since {
        clauses.push(next("created_at >= ?", LogParam::Int(s), &mut params));
    }
    if let Some(u) = f.until {
        clauses.push(next("created_at < ?", LogParam::Int(u), &mut params));
    }
    if let Some(e) = &f.email {
        clauses.push(next("user_email = ?", LogParam::Text(e.to_ascii_lowercase()), &mut params));
    }
    if let Some(a) = f.allowed {
        clauses.push(next("allowed = ?", LogParam::Bool(a), &mut params));
    }
    if let Some(app) = f.app_id {
        clauses.push(next("app_id = ?", LogParam::Text(app.to_string()), &mut params));
    }
    let sql = if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
    (sql, params)
}

#[derive(Debug, Clone)]
enum LogParam {
    Int(i64),
    Text(String),
    Bool(bool),
}

macro_rules! bind_params {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                LogParam::Int(i) => q.bind(*i),
                LogParam::Text(t) => q.bind(t.clone()),
                LogParam::Bool(b) => q.bind(*b),
            };
        }
        q
    }};
}

const INGRESS_VERSION: &str = "SELECT version, config, updated_at FROM ingress_config WHERE id = 1";

impl DataPlaneStore for Store {
    async fn insert_access_logs(&self, logs: &[AccessLogRecord]) -> Result<(), StoreError> {
        if logs.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO access_logs ({LOG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             $14, $15, $16) ON CONFLICT (ray_id) DO NOTHING"
        );
        on_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            for l in logs {
                sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&l.ray_id)
                    .bind(l.created_at)
                    .bind(l.app_id.map(|a| a.to_string()))
                    .bind(&l.app_domain)
                    .bind(l.user_email.to_ascii_lowercase())
                    .bind(l.user_id.map(|u| u.to_string()))
                    .bind(&l.ip_address)
                    .bind(&l.action)
                    .bind(l.allowed)
                    .bind(&l.decision)
                    .bind(&l.policy_id)
                    .bind(&l.reason)
                    .bind(&l.connection)
                    .bind(&l.request)
                    .bind(i64::from(l.status))
                    .bind(i64::try_from(l.latency_us).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    async fn list_access_logs(
        &self,
        filter: &AccessLogFilter,
        page: Page,
    ) -> Result<Paged<AccessLogRecord>, StoreError> {
        let (wh, params) = log_where(filter);
        let order = if filter.newest_first { "DESC" } else { "ASC" };
        let n = params.len();
        let select = format!(
            "SELECT {LOG_COLUMNS} FROM access_logs{wh} ORDER BY created_at {order}, ray_id {order} LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let count = format!("SELECT COUNT(*) FROM access_logs{wh}");
        let (rows, total): (Vec<LogRow>, (i64,)) = on_pool!(self, p => {
            let q = bind_params!(sqlx::query_as(sqlx::AssertSqlSafe(select.as_str())), &params);
            let rows = q.bind(page.limit()).bind(page.offset()).fetch_all(p).await?;
            let c = bind_params!(sqlx::query_as(sqlx::AssertSqlSafe(count.as_str())), &params);
            (rows, c.fetch_one(p).await?)
        });
        let items = rows.into_iter().map(log_from_row).collect::<Result<_, _>>()?;
        Ok(Paged { items, total: u64::try_from(total.0).unwrap_or(0) })
    }

    async fn prune_access_logs(&self, before: UnixMillis) -> Result<u64, StoreError> {
        Ok(on_pool!(self, p => {
            sqlx::query("DELETE FROM access_logs WHERE created_at < $1").bind(before).execute(p).await.map(|r| r.rows_affected())
        })?)
    }

    async fn tunnel_id(&self) -> Result<Uuid, StoreError> {
        let id = self.meta_get_or_insert("tunnel_id", &Uuid::new_v4().to_string()).await?;
        Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(format!("tunnel id: {e}")))
    }

    async fn ingress(&self) -> Result<Option<StoredIngress>, StoreError> {
        let row: Option<(i64, String, i64)> =
            on_pool!(self, p => { sqlx::query_as(INGRESS_VERSION).fetch_optional(p).await })?;
        row.map(|(version, config, updated_at)| {
            let config =
                serde_json::from_str(&config).map_err(|e| StoreError::Corrupt(format!("ingress config: {e}")))?;
            Ok(StoredIngress { version, config, updated_at })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn put_ingress(&self, config: &serde_json::Value, now: UnixMillis) -> Result<StoredIngress, StoreError> {
        let text = config.to_string();
        let (version,): (i64,) = on_pool!(self, p => {
            sqlx::query_as(
                "INSERT INTO ingress_config (id, version, config, updated_at) VALUES (1, 1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET version = ingress_config.version + 1, config = $1, updated_at = $2 \
                 RETURNING version",
            )
            .bind(&text)
            .bind(now)
            .fetch_one(p)
            .await
        })?;
        self.publish(crate::Change::Ingress).await;
        Ok(StoredIngress { version, config: config.clone(), updated_at: now })
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_app_tokens(&self, app: AppId, now: UnixMillis) -> Result<(), StoreError> {
        on_pool!(self, p => {
            sqlx::query(
                "INSERT INTO app_token_revocations (app_id, revoked_at) VALUES ($1, $2) \
                 ON CONFLICT (app_id) DO UPDATE SET revoked_at = $2",
            )
            .bind(app.to_string())
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.publish(crate::Change::Revocations).await;
        Ok(())
    }

    async fn app_token_revocations(&self) -> Result<Vec<(AppId, UnixMillis)>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, p => {
            sqlx::query_as("SELECT app_id, revoked_at FROM app_token_revocations").fetch_all(p).await
        })?;
        rows.into_iter()
            .map(|(a, at)| {
                a.parse::<AppId>().map(|a| (a, at)).map_err(|e| StoreError::Corrupt(format!("revoked app id: {e}")))
            })
            .collect()
    }
}
