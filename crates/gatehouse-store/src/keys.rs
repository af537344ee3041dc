//! Application-token signing keys. Private keys are sealed with the installation key, bound
//! to their `kid`; the public half (JWK and certificate) is stored in the clear.

use crate::BeginWrite as _;
use std::future::Future;

use gatehouse_core::UnixMillis;

use crate::{Store, StoreError, on_pool};

/// A stored signing key, private half decrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Key id (64 hex characters).
    pub kid: String,
    /// PKCS#8 DER of the private key.
    pub private_pkcs8: Vec<u8>,
    /// The public key as a JWK (JSON object text).
    pub public_jwk: String,
    /// Self-signed X.509 certificate of the public key (PEM).
    pub cert_pem: String,
    /// Creation time.
    pub created_at: UnixMillis,
    /// When a newer key replaced it; `None` for the current key.
    pub retired_at: Option<UnixMillis>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Storage of signing keys.
pub trait KeyStore {
    /// Every stored key, newest first.
    fn signing_keys(&self) -> impl Future<Output = Result<Vec<StoredKey>, StoreError>> + Send;
    /// Makes `key` the current key and retires the previous current key at `key.created_at`,
    /// atomically. Keys retired before `forget_before` are deleted in the same step.
    fn rotate_signing_key(
        &self,
        key: &StoredKey,
        forget_before: UnixMillis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The scheduled rotation interval in days, if one was set.
    fn rotation_interval_days(&self) -> impl Future<Output = Result<Option<u32>, StoreError>> + Send;
    /// Sets the scheduled rotation interval in days.
    fn set_rotation_interval_days(&self, days: u32) -> impl Future<Output = Result<(), StoreError>> + Send;
}

const ROTATION_KEY: &str = "key_rotation_interval_days";

type KeyRow = (String, Vec<u8>, String, String, i64, Option<i64>);

impl KeyStore for Store {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<KeyRow> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT kid, private_key, public_jwk, cert_pem, created_at, retired_at FROM signing_keys \
                 ORDER BY created_at DESC, kid",
            )
            .fetch_all(p)
            .await
        })?;
        rows.into_iter()
            .map(|(kid, sealed, public_jwk, cert_pem, created_at, retired_at)| {
                let private_pkcs8 = self.key().open(&sealed, kid.as_bytes()).map_err(|_| StoreError::WrongSecretKey)?;
                Ok(StoredKey { kid, private_pkcs8, public_jwk, cert_pem, created_at, retired_at })
            })
            .collect()
    }

    async fn rotation_interval_days(&self) -> Result<Option<u32>, StoreError> {
        let v = self.meta_get(ROTATION_KEY).await?;
        v.map(|d| d.parse().map_err(|_| StoreError::Corrupt(format!("{ROTATION_KEY} = {d:?}")))).transpose()
    }

    async fn set_rotation_interval_days(&self, days: u32) -> Result<(), StoreError> {
        on_pool!(self, p => {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind(ROTATION_KEY)
                .bind(days.to_string())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        self.publish(crate::Change::SigningKeys).await;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(kid = %key.kid))]
    async fn rotate_signing_key(&self, key: &StoredKey, forget_before: UnixMillis) -> Result<(), StoreError> {
        let sealed = self.key().seal(&key.private_pkcs8, key.kid.as_bytes())?;
        on_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
                .bind(forget_before)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
                .bind(key.created_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO signing_keys (kid, private_key, public_jwk, cert_pem, created_at, retired_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL)",
            )
            .bind(&key.kid)
            .bind(&sealed)
            .bind(&key.public_jwk)
            .bind(&key.cert_pem)
            .bind(key.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_on_unique(e, "signing key exists"))?;
            tx.commit().await?;
        });
        self.publish(crate::Change::SigningKeys).await;
        Ok(())
    }
}
