//! The installation's account id and its organisation (singletons).

use std::future::Future;

use gatehouse_core::org::Organization;
use gatehouse_core::{AccountId, now_millis};

use crate::{Store, StoreError, on_pool};

/// Storage of the account and organisation singletons.
pub trait OrgStore {
    /// The installation's account id, created on first call (race-free across instances).
    fn account_id(&self) -> impl Future<Output = Result<AccountId, StoreError>> + Send;
    /// The organisation, created with defaults on first call.
    fn organization(&self) -> impl Future<Output = Result<Organization, StoreError>> + Send;
    /// Stores the organisation.
    fn put_organization(&self, org: &Organization) -> impl Future<Output = Result<(), StoreError>> + Send;
}

fn encode(org: &Organization) -> Result<String, StoreError> {
    serde_json::to_string(org).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl OrgStore for Store {
    async fn account_id(&self) -> Result<AccountId, StoreError> {
        let id = self.meta_get_or_insert("account_id", &AccountId::generate().to_string()).await?;
        id.parse().map_err(|_| StoreError::Corrupt(format!("account id {id:?}")))
    }

    async fn organization(&self) -> Result<Organization, StoreError> {
        let initial = encode(&Organization::initial(now_millis()))?;
        let row: (String,) = on_pool!(self, p => {
            sqlx::query("INSERT INTO organization (id, data) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
                .bind(&initial)
                .execute(p).await?;
            sqlx::query_as("SELECT data FROM organization WHERE id = 1").fetch_one(p).await?
        });
        serde_json::from_str(&row.0).map_err(|e| StoreError::Corrupt(format!("organization: {e}")))
    }

    async fn put_organization(&self, org: &Organization) -> Result<(), StoreError> {
        let data = encode(org)?;
        on_pool!(self, p => {
            sqlx::query(
                "INSERT INTO organization (id, data) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            )
            .bind(&data)
            .execute(p).await.map(|r| r.rows_affected())
        })?;
        self.publish(crate::Change::Organization).await;
        Ok(())
    }
}
