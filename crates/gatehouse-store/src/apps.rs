//! Self-hosted applications. Each destination (`host[/path]`) is a primary key of its own
//! table, so the database itself refuses two applications on the same address.

use crate::BeginWrite as _;
use std::future::Future;

use gatehouse_core::AppId;
use gatehouse_core::app::{AppSettings, Application};

use crate::{Page, Paged, Store, StoreError, on_pool};

/// Storage of applications.
pub trait AppStore {
    /// Inserts an application. [`StoreError::Conflict`] when a destination is taken.
    fn insert_app(&self, app: &Application) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The application with `id`.
    fn get_app(&self, id: AppId) -> impl Future<Output = Result<Option<Application>, StoreError>> + Send;
    /// A page of applications in creation order.
    fn list_apps(&self, page: Page) -> impl Future<Output = Result<Paged<Application>, StoreError>> + Send;
    /// Every application (for the data plane's snapshot).
    fn all_apps(&self) -> impl Future<Output = Result<Vec<Application>, StoreError>> + Send;
    /// Replaces an application (not its `aud` or `created_at`); `false` when missing.
    fn replace_app(&self, app: &Application) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes an application; `false` when missing.
    fn delete_app(&self, id: AppId) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

type AppRow = (String, String, String, String, String, i64, i64);

const COLUMNS: &str = "id, name, domain, aud, settings, created_at, updated_at";

fn app_from_row(row: AppRow, destinations: Vec<String>) -> Result<Application, StoreError> {
    let (id, name, domain, aud, settings, created_at, updated_at) = row;
    let corrupt = |what: &str| StoreError::Corrupt(format!("application {id}: {what}"));
    let app_id: AppId = id.parse().map_err(|_| corrupt("bad id"))?;
    let settings: AppSettings = serde_json::from_str(&settings).map_err(|e| corrupt(&e.to_string()))?;
    Ok(Application { id: app_id, name, domain, destinations, aud, settings, created_at, updated_at })
}

fn encode(app: &Application) -> Result<String, StoreError> {
    serde_json::to_string(&app.settings).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Inserts `app`'s destinations inside an open transaction.
macro_rules! insert_destinations {
    ($tx:expr, $app:expr) => {
        for (i, d) in $app.destinations.iter().enumerate() {
            sqlx::query("INSERT INTO app_destinations (destination, app_id, position) VALUES ($1, $2, $3)")
                .bind(d)
                .bind($app.id.to_string())
                .bind(i as i64)
                .execute(&mut *$tx)
                .await
                .map_err(|e| {
                    StoreError::conflict_on_unique(e, &format!("{d} is already used by another application"))
                })?;
        }
    };
}

impl Store {
    /// The destinations of the applications in `rows`, in position order. One application
    /// reads only its own rows; several (a list page, the snapshot) read the table once.
    async fn with_destinations(&self, rows: Vec<AppRow>) -> Result<Vec<Application>, StoreError> {
        let dests: Vec<(String, String)> = match rows.as_slice() {
            [] => Vec::new(),
            [one] => on_pool!(self, p => {
                sqlx::query_as("SELECT app_id, destination FROM app_destinations WHERE app_id = $1 ORDER BY position")
                    .bind(&one.0)
                    .fetch_all(p)
                    .await
            })?,
            _ => on_pool!(self, p => {
                sqlx::query_as("SELECT app_id, destination FROM app_destinations ORDER BY app_id, position")
                    .fetch_all(p)
                    .await
            })?,
        };
        let mut by_app: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        for (app, dest) in dests {
            by_app.entry(app).or_default().push(dest);
        }
        rows.into_iter()
            .map(|r| {
                let mine = by_app.remove(&r.0).unwrap_or_default();
                app_from_row(r, mine)
            })
            .collect()
    }
}

impl AppStore for Store {
    #[tracing::instrument(skip_all, fields(app = %app.id))]
    async fn insert_app(&self, app: &Application) -> Result<(), StoreError> {
        let settings = encode(app)?;
        on_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            sqlx::query(
                "INSERT INTO apps (id, name, domain, aud, settings, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(app.id.to_string())
            .bind(&app.name)
            .bind(&app.domain)
            .bind(&app.aud)
            .bind(&settings)
            .bind(app.created_at)
            .bind(app.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_on_unique(e, "application exists"))?;
            insert_destinations!(tx, app);
            tx.commit().await?;
        });
        self.publish(crate::Change::Applications).await;
        Ok(())
    }

    async fn get_app(&self, id: AppId) -> Result<Option<Application>, StoreError> {
        let row: Option<AppRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM apps WHERE id = $1")))
                .bind(id.to_string())
                .fetch_optional(p)
                .await
        })?;
        Ok(self.with_destinations(row.into_iter().collect()).await?.pop())
    }

    async fn list_apps(&self, page: Page) -> Result<Paged<Application>, StoreError> {
        let (rows, total): (Vec<AppRow>, (i64,)) = on_pool!(self, p => {
            let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM apps ORDER BY created_at, id LIMIT $1 OFFSET $2"
            )))
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(p)
            .await?;
            let total = sqlx::query_as("SELECT COUNT(*) FROM apps").fetch_one(p).await?;
            (rows, total)
        });
        Ok(Paged { items: self.with_destinations(rows).await?, total: u64::try_from(total.0).unwrap_or(0) })
    }

    async fn all_apps(&self) -> Result<Vec<Application>, StoreError> {
        let rows: Vec<AppRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM apps ORDER BY created_at, id")))
                .fetch_all(p)
                .await
        })?;
        self.with_destinations(rows).await
    }

    #[tracing::instrument(skip_all, fields(app = %app.id))]
    async fn replace_app(&self, app: &Application) -> Result<bool, StoreError> {
        let settings = encode(app)?;
        let done = on_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let done = sqlx::query(
                "UPDATE apps SET name = $2, domain = $3, settings = $4, updated_at = $5 WHERE id = $1",
            )
            .bind(app.id.to_string())
            .bind(&app.name)
            .bind(&app.domain)
            .bind(&settings)
            .bind(app.updated_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done == 1 {
                sqlx::query("DELETE FROM app_destinations WHERE app_id = $1")
                    .bind(app.id.to_string())
                    .execute(&mut *tx)
                    .await?;
                insert_destinations!(tx, app);
                tx.commit().await?;
            }
            done
        });
        if done == 1 {
            self.publish(crate::Change::Applications).await;
        }
        Ok(done == 1)
    }

    async fn delete_app(&self, id: AppId) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            // Policies the application owned go with it; reusable ones stay.
            sqlx::query(
                "DELETE FROM policies WHERE NOT reusable AND id IN (SELECT policy_id FROM app_policies WHERE app_id = $1)",
            )
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            let done = sqlx::query("DELETE FROM apps WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            done
        });
        if done == 1 {
            self.publish(crate::Change::Applications).await;
        }
        Ok(done == 1)
    }
}
