//! Append-only migrations, embedded in the binary, one list per backend.
//!
//! Each migration runs in its own transaction and is recorded with a checksum; a shipped
//! migration that differs from the applied one stops start-up rather than guessing. On
//! PostgreSQL an advisory lock serialises instances that start at the same time.

use crate::{Backend, Store, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// The migrations of one backend, from the files under `migrations/<backend>/`.
macro_rules! migrations {
    ($dir:literal: $($version:literal $name:literal $file:literal),* $(,)?) => {
        &[$(Migration { version: $version, name: $name, sql: include_str!(concat!("../migrations/", $dir, "/", $file)) }),*]
    };
}

const SQLITE: &[Migration] = migrations!("sqlite":
    1 "foundation" "0001_foundation.sql",
    2 "signing_keys" "0002_signing_keys.sql",
    3 "apps" "0003_apps.sql",
    4 "users_sessions" "0004_users_sessions.sql",
    5 "policies" "0005_policies.sql",
    6 "service_tokens" "0006_service_tokens.sql",
    9 "data_plane" "0009_data_plane.sql",
    10 "failed_logins" "0010_failed_logins.sql",
    11 "scim" "0011_scim.sql",
    12 "dashboard_sessions" "0012_dashboard_sessions.sql",
);

const POSTGRES: &[Migration] = migrations!("postgres":
    1 "foundation" "0001_foundation.sql",
    2 "signing_keys" "0002_signing_keys.sql",
    3 "apps" "0003_apps.sql",
    4 "users_sessions" "0004_users_sessions.sql",
    5 "policies" "0005_policies.sql",
    6 "service_tokens" "0006_service_tokens.sql",
    9 "data_plane" "0009_data_plane.sql",
    10 "failed_logins" "0010_failed_logins.sql",
    11 "scim" "0011_scim.sql",
    12 "dashboard_sessions" "0012_dashboard_sessions.sql",
);

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// Arbitrary constant identifying Gatehouse's migration lock among advisory locks.
const PG_LOCK_ID: i64 = 0x6761_7465_686f_7573;

/// FNV-1a 64-bit: enough to notice an edited migration; no cryptography needed.
fn checksum(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Applies one migration and records it, on an open transaction of either backend.
macro_rules! apply {
    ($tx:expr, $m:expr) => {{
        sqlx::raw_sql($m.sql).execute(&mut *$tx).await.map_err(|e| failed($m, &e))?;
        sqlx::query("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)")
            .bind($m.version)
            .bind($m.name)
            .bind(checksum($m.sql))
            .bind(gatehouse_core::now_millis())
            .execute(&mut *$tx)
            .await?;
    }};
}

pub(crate) async fn run(store: &Store) -> Result<(), StoreError> {
    match &store.backend {
        Backend::Sqlite(pool) => {
            sqlx::raw_sql(CREATE_TABLE).execute(pool).await?;
            for m in SQLITE {
                let mut tx = pool.begin().await?;
                let applied: Option<(String,)> =
                    sqlx::query_as("SELECT checksum FROM schema_migrations WHERE version = $1")
                        .bind(m.version)
                        .fetch_optional(&mut *tx)
                        .await?;
                if check_applied(m, applied)? {
                    continue;
                }
                apply!(tx, m);
                tx.commit().await?;
            }
        }
        Backend::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_LOCK_ID).execute(&mut *tx).await?;
            sqlx::raw_sql(CREATE_TABLE).execute(&mut *tx).await?;
            for m in POSTGRES {
                let applied: Option<(String,)> =
                    sqlx::query_as("SELECT checksum FROM schema_migrations WHERE version = $1")
                        .bind(m.version)
                        .fetch_optional(&mut *tx)
                        .await?;
                if check_applied(m, applied)? {
                    continue;
                }
                apply!(tx, m);
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

fn failed(m: &Migration, e: &sqlx::Error) -> StoreError {
    StoreError::Migration { version: m.version, reason: format!("{} ({e})", m.name) }
}

/// `Ok(true)` when already applied unchanged; error when applied with a different text.
fn check_applied(m: &Migration, applied: Option<(String,)>) -> Result<bool, StoreError> {
    match applied {
        None => Ok(false),
        Some((sum,)) if sum == checksum(m.sql) => Ok(true),
        Some(_) => Err(StoreError::Migration {
            version: m.version,
            reason: format!("{}: applied migration differs from the shipped one", m.name),
        }),
    }
}
