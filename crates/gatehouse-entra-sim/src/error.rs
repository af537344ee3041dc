//! The crate's error type, [`SimError`].
//!
//! Everything that can go wrong outside a single HTTP exchange ends up here: reading and
//! validating a tenant file, binding the listener, signing keys, provisioning state files.
//! Errors a client of the emulator sees on the wire are not `SimError`s: they are AADSTS
//! responses (see `aadsts.rs`), Graph error bodies (`graph.rs`) or admin JSON errors
//! (`admin.rs`), each rendered in one place.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What went wrong while loading, starting, editing or driving the emulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The tenant file could not be read.
    #[error("cannot read tenant file {path}: {source}")]
    ReadTenant {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The tenant file is not valid TOML or does not match the format.
    #[error("invalid tenant file{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    ParseTenant {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// What the parser said.
        message: String,
    },
    /// A tenant definition or an edit is inconsistent (duplicate ids, dangling references...).
    #[error("invalid tenant: {0}")]
    InvalidTenant(String),
    /// An edit named an object that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed while running.
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// Generating or using a signing key failed.
    #[error("signing key: {0}")]
    Key(String),
    /// Encoding a token failed.
    #[error("token encoding: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    /// The SCIM base URL given to the provisioning driver is unusable.
    #[error("invalid SCIM base URL {url:?}: {reason}")]
    InvalidScimUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A provisioning mode name other than `default` or `aadOptscim062020`.
    #[error("unknown provisioning mode {0:?}; expected \"default\" or \"aadOptscim062020\"")]
    UnknownMode(String),
    /// The provisioning state file next to the tenant file could not be read or written.
    #[error("provisioning state file {path}: {message}")]
    StateFile {
        /// The state file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The HTTP client used by the provisioning driver could not be built.
    #[error("HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// `reload` was asked of a tenant that was not loaded from a file.
    #[error("the tenant was not loaded from a file, so it cannot be reloaded")]
    NoTenantFile,
}
