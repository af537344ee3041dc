//! In-memory state of sign-ins: pending sign-in pages, browser sessions, authorization codes
//! and refresh tokens.
//!
//! Everything here is short-lived and lost on restart, as a real tenant's would be from the
//! client's point of view after a key or session reset. Entries are purged lazily when they
//! expire. The store holds no passwords or secrets, only opaque handles and ids.

use std::collections::HashMap;

use uuid::Uuid;

use super::authorize::AuthorizeRequest;
use super::scopes::ScopeSet;

/// How long an unanswered sign-in page stays usable.
pub(crate) const FLOW_LIFETIME_SECS: i64 = 30 * 60;
/// Redeemed or expired codes are remembered this long after expiry, to tell "already
/// redeemed" and "expired" apart from "unknown".
const CODE_MEMORY_SECS: i64 = 24 * 3600;

/// A sign-in page waiting for credentials.
#[derive(Clone, Debug)]
pub(crate) struct PendingFlow {
    pub(crate) request: AuthorizeRequest,
    pub(crate) expires: i64,
}

/// A signed-in browser (the `ESTSAUTH` cookie).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Session {
    pub(crate) user_id: Uuid,
    pub(crate) auth_time: i64,
    pub(crate) sid: Uuid,
    pub(crate) expires: i64,
}

/// What a code or refresh token stands for.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) client_id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) scopes: ScopeSet,
    pub(crate) nonce: Option<String>,
    pub(crate) auth_time: i64,
    pub(crate) sid: Uuid,
}

/// PKCE parameters of an authorization request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pkce {
    pub(crate) challenge: String,
    pub(crate) s256: bool,
}

/// An issued authorization code.
#[derive(Clone, Debug)]
pub(crate) struct AuthCode {
    pub(crate) grant: Grant,
    pub(crate) redirect_uri: String,
    pub(crate) redirect_uri_sent: bool,
    pub(crate) pkce: Option<Pkce>,
    pub(crate) expires: i64,
    pub(crate) redeemed: bool,
}

/// An issued refresh token.
#[derive(Clone, Debug)]
pub(crate) struct RefreshGrant {
    pub(crate) grant: Grant,
    pub(crate) last_used: i64,
}

/// All sign-in state. Its `Debug` shows only counts: the keys are bearer credentials.
#[derive(Default)]
pub(crate) struct AuthStore {
    pub(crate) flows: HashMap<String, PendingFlow>,
    pub(crate) sessions: HashMap<String, Session>,
    pub(crate) codes: HashMap<String, AuthCode>,
    pub(crate) refresh_tokens: HashMap<String, RefreshGrant>,
    inserts: u64,
}

impl std::fmt::Debug for AuthStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthStore")
            .field("flows", &self.flows.len())
            .field("sessions", &self.sessions.len())
            .field("codes", &self.codes.len())
            .field("refresh_tokens", &self.refresh_tokens.len())
            .finish()
    }
}

impl AuthStore {
    /// Call after every insert; purges expired entries every so often.
    pub(crate) fn inserted(&mut self, now: i64, refresh_lifetime: i64) {
        self.inserts += 1;
        if !self.inserts.is_multiple_of(256) {
            return;
        }
        self.flows.retain(|_, f| f.expires > now);
        self.sessions.retain(|_, s| s.expires > now);
        self.codes.retain(|_, c| c.expires + CODE_MEMORY_SECS > now);
        self.refresh_tokens.retain(|_, r| r.last_used + refresh_lifetime > now);
    }
}

/// An unguessable opaque handle (about 244 bits from two v4 UUIDs), with a prefix in the
/// style of Entra's codes and refresh tokens.
pub(crate) fn opaque(prefix: &str) -> String {
    use base64::Engine;
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
