//! Test support shared by Gatehouse's crates. Never shipped in the binary.
//!
//! [`TestDb`] hands each test a database of its own: a SQLite file in a temporary directory,
//! or a freshly created PostgreSQL database that is dropped afterwards. PostgreSQL tests run
//! against `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`). When
//! no server answers, they fail under CI (`CI` set) and are skipped loudly elsewhere.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Server used for PostgreSQL tests unless `TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database owned by one test; removed when dropped.
#[derive(Debug)]
pub struct TestDb {
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A SQLite database file in a fresh temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let url = format!("sqlite://{}/gatehouse.db", dir.path().display());
        Self { url, cleanup: Cleanup::Dir(dir) }
    }

    /// A freshly created, empty PostgreSQL database, or `None` (after a loud warning) when no
    /// server is reachable outside CI.
    ///
    /// # Panics
    /// Under CI when the server is unreachable: PostgreSQL tests must run there.
    pub async fn postgres() -> Option<Self> {
        let admin_url = postgres_admin_url();
        let mut conn = match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin_url)).await {
            Ok(Ok(c)) => c,
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                if std::env::var_os("CI").is_some() {
                    panic!("PostgreSQL at {admin_url} is required under CI but unreachable: {why}");
                }
                eprintln!(
                    "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                     !! SKIPPING PostgreSQL test: no server at {admin_url} ({why})\n\
                     !! Set TEST_POSTGRES_URL or start PostgreSQL to run it.\n\
                     !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
                );
                return None;
            }
        };
        let name = format!("gatehouse_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("create test database: {e}"));
        let _ = conn.close().await;
        let url = with_database(&admin_url, &name);
        Some(Self { url, cleanup: Cleanup::Postgres { admin_url, name } })
    }

    /// The store URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop may run inside or outside a runtime; a private thread and runtime work in both.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                    }
                });
            })
            .join();
        }
    }
}

/// The PostgreSQL server URL for tests.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_database_name() {
        assert_eq!(super::with_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            super::with_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
