//! [`SignInError`]: every way a sign-in can fail, with the context its diagnosis needs.
//!
//! Each variant keeps what an administrator must see to fix the cause — the redirect URI
//! that was sent, the client and directory ids, the IdP's AADSTS message and trace ids, the
//! URL that could not be reached — and nothing secret: no codes, tokens or client secrets.
//! [`SignInError::diagnosis`] turns it into plain words ([`crate::diagnose`]).

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::endpoints::EndpointError;
use crate::graph::GraphError;
use crate::http::FetchError;
use crate::id_token::IdTokenError;
use crate::token::{CallbackError, OAuthError};

/// The IdP settings a failure happened with, for the diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorContext {
    /// The configured client (application) id.
    pub client_id: String,
    /// The configured directory (tenant) id (Entra).
    pub directory_id: Option<Uuid>,
    /// The redirect URI the sign-in used, the one to register at the IdP.
    pub redirect_uri: String,
}

/// A failed sign-in.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The IdP's configuration does not give usable endpoints.
    #[error("the identity provider's configuration is not usable: {0}")]
    Config(#[from] EndpointError),
    /// The redirect URI given to `begin` is not usable.
    #[error("the redirect URI {uri:?} is not usable: {reason}")]
    RedirectUri {
        /// The URI.
        uri: String,
        /// Why.
        reason: String,
    },
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
    /// The pending sign-in belongs to another IdP.
    #[error("the sign-in was started with another identity provider")]
    IdpMismatch,
    /// The callback has no `state`.
    #[error("the callback has no state parameter")]
    MissingState,
    /// The callback's `state` is not the pending sign-in's.
    #[error("the callback's state does not match the sign-in in progress")]
    StateMismatch,
    /// The pending sign-in was already used.
    #[error("this sign-in was already completed (its state was used before)")]
    StateReplayed,
    /// The pending sign-in is too old.
    #[error("the sign-in was started {age_secs} s ago; at most {max_secs} s are allowed")]
    SignInExpired {
        /// Its age.
        age_secs: i64,
        /// The limit.
        max_secs: i64,
    },
    /// The callback's parameters are ambiguous.
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// The callback has neither `code` nor `error`.
    #[error("the callback has neither a code nor an error")]
    MissingCode,
    /// The IdP reported an error: to the redirect URI, or on its own error page
    /// ([`crate::OidcClient::preflight`]).
    #[error("the identity provider reported an error: {}", .error.summary())]
    Authorization {
        /// The error.
        error: Box<OAuthError>,
        /// The settings used.
        context: Box<ErrorContext>,
    },
    /// The token endpoint refused the code or the client's credentials.
    #[error("the token endpoint refused the request (HTTP {status}): {}", .error.summary())]
    TokenRejected {
        /// The HTTP status.
        status: u16,
        /// The error body.
        error: Box<OAuthError>,
        /// The settings used.
        context: Box<ErrorContext>,
        /// Whether the configured client secret has the shape of a secret *ID* (a GUID).
        secret_looks_like_id: bool,
    },
    /// An endpoint could not be reached or answered something unusable.
    #[error(transparent)]
    Fetch(FetchError),
    /// The token response has no ID token.
    #[error("the token response has no ID token")]
    NoIdToken,
    /// The ID token was rejected.
    #[error("the ID token was rejected: {0}")]
    IdToken(#[from] IdTokenError),
    /// Groups could not be read from Microsoft Graph.
    #[error("reading group memberships failed: {0}")]
    Graph(#[from] GraphError),
    /// The ID token has no usable e-mail claim.
    #[error("the ID token has no e-mail address (tried {})", .tried.join(", "))]
    NoEmail {
        /// The claims tried, in order.
        tried: Vec<String>,
        /// The validated ID token's claims, for the IdP test page.
        claims: Box<Map<String, Value>>,
    },
}

impl SignInError {
    /// The transport or response failure inside this error, wherever it happened.
    pub fn fetch_error(&self) -> Option<&FetchError> {
        match self {
            SignInError::Fetch(f) => Some(f),
            SignInError::IdToken(IdTokenError::Keys(f)) => Some(f),
            SignInError::Graph(GraphError::Fetch(f)) => Some(f),
            _ => None,
        }
    }

    /// The AADSTS code the IdP reported, if any.
    pub fn aadsts(&self) -> Option<u32> {
        match self {
            SignInError::Authorization { error, .. } | SignInError::TokenRejected { error, .. } => error.aadsts(),
            _ => None,
        }
    }
}
