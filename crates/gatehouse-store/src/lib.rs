//! Gatehouse's storage: the capability traits the rest of the gateway programs against
//! ([`IdpStore`], [`TokenStore`], [`OrgStore`]) and one implementation, [`Store`], backed by
//! embedded SQLite (the default) or PostgreSQL (for several instances).
//!
//! Both backends run the same SQL text (`$n` placeholders work in both) through [`on_pool!`],
//! so behaviour cannot drift between them; only migrations and connection setup differ.
//! This crate stores and loads; it holds no business rules. It seals IdP client secrets with
//! the installation's [`SecretKey`] on the way in and opens them on the way out, so no caller
//! ever handles ciphertext and no plaintext secret reaches the database.

mod apps;
mod changes;
mod dashboard;
mod dataplane;
mod error;
mod failed_logins;
mod idps;
mod keys;
mod migrate;
mod org;
mod page;
mod policies;
mod scim;
mod service_tokens;
mod tokens;
mod users;

use std::str::FromStr;
use std::time::Duration;

use gatehouse_core::secret::SecretKey;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use apps::AppStore;
pub use changes::{Change, PG_CHANNEL};
pub use dashboard::{DashboardSession, DashboardSessionStore};
pub use dataplane::{AccessLogFilter, AccessLogRecord, DataPlaneStore, StoredIngress};
pub use error::StoreError;
pub use failed_logins::{FailedLoginRecord, FailedLoginStore};
pub use idps::{IdpFilter, IdpStore};
pub use keys::{KeyStore, StoredKey};
pub use org::OrgStore;
pub use page::{Page, Paged};
pub use policies::{AppPolicies, PolicyStore};
pub use scim::{
    MemberChange, SCIM_MAX_FILTER_DEPTH, SCIM_MAX_FILTER_TERMS, SCIM_MAX_PAGE, ScimAttr, ScimDriftRecord, ScimFilter,
    ScimGroupRecord, ScimLogFilter, ScimLogRecord, ScimMember, ScimOp, ScimSignIn, ScimStore, ScimUserRecord,
    ScimValue,
};
pub use service_tokens::{ServiceTokenRecord, ServiceTokenStore};
pub use tokens::{ApiToken, TokenStore};
pub use users::{PendingStore, SessionKind, SessionRecord, SessionStore, UserRecord, UserStore};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend is active.
/// The body is compiled once per backend, so the same SQL serves both.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite($pool) => $body,
            $crate::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Beginning a transaction that writes. SQLite takes the write lock at the start
/// (`BEGIN IMMEDIATE`): a transaction that reads before it writes then waits for another
/// writer, within the busy timeout, instead of failing with "database is locked" when its
/// read snapshot is already stale at its first write. PostgreSQL begins as usual.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for sqlx::PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send {
        self.begin()
    }
}

/// The gateway's store: a connection pool plus the key that seals secrets at rest.
/// Cloning is cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    key: SecretKey,
    bus: changes::ChangeBus,
    /// Identifies this instance's own notifications, which the relay skips.
    instance: String,
}

/// Meta key under which a sealed canary proves the configured secret key is the one the
/// stored secrets were sealed with.
const KEY_CHECK: &str = "secret_key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"gatehouse secret key check";

impl Store {
    /// Connects to `url` (`sqlite://PATH`, `sqlite::memory:`, or `postgres://...`), applies
    /// pending migrations and verifies that `key` opens the secrets already stored.
    ///
    /// SQLite runs in WAL mode with `synchronous=FULL` and foreign keys on: a write is on
    /// disk when the call that made it returns, so a `kill -9` loses no acknowledged write.
    ///
    /// # Errors
    /// [`StoreError::Url`] for an unsupported URL, [`StoreError::Database`] when the database
    /// is unreachable, [`StoreError::Migration`] when a migration fails or an applied one was
    /// changed, [`StoreError::WrongSecretKey`] when `key` is not the installation's key.
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &str, key: SecretKey) -> Result<Self, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Url(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new().max_connections(8).min_connections(1).connect_with(opts).await?;
            Backend::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::Url(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            Backend::Postgres(pool)
        } else {
            return Err(StoreError::Url("store URL must start with sqlite: or postgres:".to_owned()));
        };
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let store = Self { backend, key, bus: changes::ChangeBus::new(), instance };
        migrate::run(&store).await?;
        store.check_key().await?;
        if let Backend::Postgres(pool) = &store.backend {
            store.relay_notifications(pool.clone()).await?;
        }
        Ok(store)
    }

    /// Which backend this store uses.
    pub fn backend_kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Round-trips a trivial query; used by `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Closes every pooled connection; pending writes are already durable.
    pub async fn close(&self) {
        on_pool!(self, p => p.close().await);
    }

    /// Subscribes to changes committed by this or (with PostgreSQL) any other instance.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.bus.subscribe()
    }

    /// Announces a committed change: in process, and to other instances through PostgreSQL.
    pub(crate) async fn publish(&self, change: Change) {
        self.bus.publish(change);
        if let Backend::Postgres(pool) = &self.backend
            && let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(PG_CHANNEL)
                .bind(format!("{}:{}", change.as_str(), self.instance))
                .execute(pool)
                .await
        {
            // Other instances still converge through their periodic reload.
            tracing::warn!(error = %e, "could not notify other instances of a change");
        }
    }

    /// Relays PostgreSQL notifications from other instances onto the in-process bus.
    async fn relay_notifications(&self, pool: PgPool) -> Result<(), StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
        listener.listen(PG_CHANNEL).await?;
        let bus = self.bus.clone();
        let own = format!(":{}", self.instance);
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(n) => {
                        let payload = n.payload();
                        if payload.ends_with(&own) {
                            continue;
                        }
                        if let Some(change) = Change::parse(payload.split(':').next().unwrap_or_default()) {
                            bus.publish(change);
                        }
                    }
                    // recv reconnects by itself; a closed pool ends the relay.
                    Err(sqlx::Error::PoolClosed) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "change notification listener failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(())
    }

    pub(crate) fn key(&self) -> &SecretKey {
        &self.key
    }

    /// Reads a metadata value.
    pub(crate) async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = on_pool!(self, p => {
            sqlx::query_as("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(p).await
        })?;
        Ok(row.map(|r| r.0))
    }

    /// Stores `value` under `key` unless a value is already there; returns the stored value.
    /// Safe when several instances start at once: the first writer wins for everyone.
    pub(crate) async fn meta_get_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        on_pool!(self, p => {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(p).await.map(|r| r.rows_affected())
        })?;
        self.meta_get(key).await?.ok_or_else(|| StoreError::Corrupt(format!("meta key {key} vanished")))
    }

    async fn check_key(&self) -> Result<(), StoreError> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let fresh = b64.encode(self.key.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK.as_bytes())?);
        let stored = self.meta_get_or_insert(KEY_CHECK, &fresh).await?;
        let sealed = b64.decode(stored).map_err(|_| StoreError::WrongSecretKey)?;
        match self.key.open(&sealed, KEY_CHECK.as_bytes()) {
            Ok(p) if p == KEY_CHECK_PLAINTEXT => Ok(()),
            _ => Err(StoreError::WrongSecretKey),
        }
    }
}
