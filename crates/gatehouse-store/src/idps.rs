//! Identity providers: stored with their non-secret config as JSON, the client secret sealed
//! with the installation key (bound to the IdP id), and the SCIM secret as a hash only.

use std::future::Future;

use gatehouse_core::IdpId;
use gatehouse_core::idp::{IdentityProvider, IdpConfig, IdpType, ScimSettings};
use gatehouse_core::secret::SecretString;

use crate::{Page, Paged, Store, StoreError, on_pool};

/// Which IdPs a list returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdpFilter {
    /// Only IdPs whose SCIM endpoint is (or is not) enabled.
    pub scim_enabled: Option<bool>,
}

/// Storage of identity providers.
pub trait IdpStore {
    /// Inserts a new IdP. [`StoreError::Conflict`] if the id exists.
    fn insert_idp(&self, idp: &IdentityProvider) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The IdP with `id`, if any.
    fn get_idp(&self, id: IdpId) -> impl Future<Output = Result<Option<IdentityProvider>, StoreError>> + Send;
    /// A page of IdPs in creation order.
    fn list_idps(
        &self,
        filter: IdpFilter,
        page: Page,
    ) -> impl Future<Output = Result<Paged<IdentityProvider>, StoreError>> + Send;
    /// Replaces every field of an existing IdP (except `created_at`); `false` if missing.
    fn replace_idp(&self, idp: &IdentityProvider) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes an IdP; `false` if missing.
    fn delete_idp(&self, id: IdpId) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

type IdpRow = (String, String, String, String, Vec<u8>, String, Option<String>, i64, i64);

const COLUMNS: &str = "id, name, kind, config, client_secret, scim_config, scim_secret_hash, created_at, updated_at";

impl Store {
    fn idp_from_row(&self, row: IdpRow) -> Result<IdentityProvider, StoreError> {
        let (id, name, kind, config, sealed, scim, scim_secret_hash, created_at, updated_at) = row;
        let corrupt = |what: &str| StoreError::Corrupt(format!("identity provider {id}: {what}"));
        let idp_id: IdpId = id.parse().map_err(|_| corrupt("bad id"))?;
        let kind = IdpType::parse(&kind).ok_or_else(|| corrupt("unknown type"))?;
        let config: IdpConfig = serde_json::from_str(&config).map_err(|e| corrupt(&format!("config: {e}")))?;
        let scim: ScimSettings = serde_json::from_str(&scim).map_err(|e| corrupt(&format!("scim_config: {e}")))?;
        let secret = self.key().open(&sealed, id.as_bytes()).map_err(|_| StoreError::WrongSecretKey)?;
        let secret = String::from_utf8(secret).map_err(|_| corrupt("client secret is not UTF-8"))?;
        Ok(IdentityProvider {
            id: idp_id,
            name,
            kind,
            config,
            client_secret: SecretString::new(secret),
            scim,
            scim_secret_hash,
            created_at,
            updated_at,
        })
    }

    fn encode_idp(&self, idp: &IdentityProvider) -> Result<(String, String, Vec<u8>), StoreError> {
        let config = serde_json::to_string(&idp.config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let scim = serde_json::to_string(&idp.scim).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let id = idp.id.to_string();
        let sealed = self.key().seal(idp.client_secret.expose().as_bytes(), id.as_bytes())?;
        Ok((config, scim, sealed))
    }
}

impl IdpStore for Store {
    #[tracing::instrument(skip_all, fields(idp = %idp.id))]
    async fn insert_idp(&self, idp: &IdentityProvider) -> Result<(), StoreError> {
        let (config, scim, sealed) = self.encode_idp(idp)?;
        on_pool!(self, p => {
            sqlx::query(
                "INSERT INTO identity_providers (id, name, kind, config, client_secret, scim_enabled, \
                 scim_config, scim_secret_hash, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(idp.id.to_string())
            .bind(&idp.name)
            .bind(idp.kind.as_str())
            .bind(&config)
            .bind(&sealed)
            .bind(idp.scim.enabled)
            .bind(&scim)
            .bind(&idp.scim_secret_hash)
            .bind(idp.created_at)
            .bind(idp.updated_at)
            .execute(p).await.map(|r| r.rows_affected())
        })
        .map_err(|e| StoreError::conflict_on_unique(e, "identity provider id exists"))?;
        self.publish(crate::Change::IdentityProviders).await;
        Ok(())
    }

    async fn get_idp(&self, id: IdpId) -> Result<Option<IdentityProvider>, StoreError> {
        let row: Option<IdpRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM identity_providers WHERE id = $1")))
                .bind(id.to_string())
                .fetch_optional(p)
                .await
        })?;
        row.map(|r| self.idp_from_row(r)).transpose()
    }

    async fn list_idps(&self, filter: IdpFilter, page: Page) -> Result<Paged<IdentityProvider>, StoreError> {
        let (rows, total): (Vec<IdpRow>, (i64,)) = on_pool!(self, p => {
            let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM identity_providers WHERE ($1 IS NULL OR scim_enabled = $1) \
                 ORDER BY created_at, id LIMIT $2 OFFSET $3"
            )))
            .bind(filter.scim_enabled)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(p)
            .await?;
            let total = sqlx::query_as(
                "SELECT COUNT(*) FROM identity_providers WHERE ($1 IS NULL OR scim_enabled = $1)",
            )
            .bind(filter.scim_enabled)
            .fetch_one(p)
            .await?;
            (rows, total)
        });
        let items = rows.into_iter().map(|r| self.idp_from_row(r)).collect::<Result<_, _>>()?;
        Ok(Paged { items, total: u64::try_from(total.0).unwrap_or(0) })
    }

    #[tracing::instrument(skip_all, fields(idp = %idp.id))]
    async fn replace_idp(&self, idp: &IdentityProvider) -> Result<bool, StoreError> {
        let (config, scim, sealed) = self.encode_idp(idp)?;
        let done = on_pool!(self, p => {
            sqlx::query(
                "UPDATE identity_providers SET name = $2, kind = $3, config = $4, client_secret = $5, \
                 scim_enabled = $6, scim_config = $7, scim_secret_hash = $8, updated_at = $9 WHERE id = $1",
            )
            .bind(idp.id.to_string())
            .bind(&idp.name)
            .bind(idp.kind.as_str())
            .bind(&config)
            .bind(&sealed)
            .bind(idp.scim.enabled)
            .bind(&scim)
            .bind(&idp.scim_secret_hash)
            .bind(idp.updated_at)
            .execute(p).await.map(|r| r.rows_affected())
        })?;
        if done == 1 {
            self.publish(crate::Change::IdentityProviders).await;
        }
        Ok(done == 1)
    }

    async fn delete_idp(&self, id: IdpId) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => {
            sqlx::query("DELETE FROM identity_providers WHERE id = $1").bind(id.to_string()).execute(p).await.map(|r| r.rows_affected())
        })?;
        if done == 1 {
            self.publish(crate::Change::IdentityProviders).await;
        }
        Ok(done == 1)
    }
}
