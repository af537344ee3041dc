//! The store's error type. Callers map it to their wire format; `Display` never contains
//! secret material (queries bind values, and sealed data is never printed).

use gatehouse_core::secret::SecretError;

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is not one we support.
    #[error("invalid store URL: {0}")]
    Url(String),
    /// The database refused or failed the operation.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed, or an applied migration differs from the one shipped.
    #[error("migration {version} failed: {reason}")]
    Migration {
        /// Migration number.
        version: i64,
        /// Why.
        reason: String,
    },
    /// A unique constraint was violated.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request cannot be answered as asked (a query beyond the store's bounds, a
    /// reference to something that does not exist); the message says why, for the client.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Stored data cannot be decoded (hand-edited or from a newer version).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The configured secret key is not the one the stored secrets were sealed with.
    #[error(
        "the configured secret key does not match the one this store's secrets were sealed with; \
         set GATEHOUSE_SECRET_KEY or secret_key_file to the original key"
    )]
    WrongSecretKey,
    /// Sealing or opening a secret failed.
    #[error("secret handling failed: {0}")]
    Secret(#[from] SecretError),
}

impl StoreError {
    /// Whether the database could not be reached (as opposed to refusing the operation):
    /// callers answer "try again" rather than "internal error".
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)))
    }

    /// Maps a unique-constraint violation to [`StoreError::Conflict`], other errors unchanged.
    pub(crate) fn conflict_on_unique(e: sqlx::Error, what: &str) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict(what.to_owned()),
            _ => Self::Database(e),
        }
    }
}
