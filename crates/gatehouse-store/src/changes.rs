//! Change notifications. Every write that affects what the data plane serves publishes a
//! [`Change`] after it commits; each instance reloads the affected in-memory snapshot.
//!
//! In one process the bus is a broadcast channel. With PostgreSQL the change is also sent with
//! `pg_notify` inside the write's transaction and relayed by a listener task, so every
//! instance hears it; a periodic reload in the subscribers heals any missed notification.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Signing keys rotated or key settings changed.
    SigningKeys,
    /// Identity providers changed.
    IdentityProviders,
    /// The organisation changed.
    Organization,
    /// Applications changed.
    Applications,
    /// Sessions were revoked.
    Revocations,
    /// Service tokens changed.
    ServiceTokens,
    /// Users' identities changed (SCIM group changes, deactivation): cached identities are stale.
    Identities,
    /// The ingress configuration changed.
    Ingress,
}

impl Change {
    /// The notification payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SigningKeys => "signing_keys",
            Self::IdentityProviders => "identity_providers",
            Self::Organization => "organization",
            Self::Applications => "applications",
            Self::Revocations => "revocations",
            Self::ServiceTokens => "service_tokens",
            Self::Identities => "identities",
            Self::Ingress => "ingress",
        }
    }

    /// Parses a notification payload.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::SigningKeys,
            Self::IdentityProviders,
            Self::Organization,
            Self::Applications,
            Self::Revocations,
            Self::ServiceTokens,
            Self::Identities,
            Self::Ingress,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// The PostgreSQL notification channel.
pub const PG_CHANNEL: &str = "gatehouse_changes";

/// The in-process bus.
#[derive(Debug, Clone)]
pub(crate) struct ChangeBus {
    tx: broadcast::Sender<Change>,
}

impl ChangeBus {
    pub(crate) fn new() -> Self {
        Self { tx: broadcast::channel(256).0 }
    }

    pub(crate) fn publish(&self, change: Change) {
        // No subscribers is fine: nothing to refresh.
        let _ = self.tx.send(change);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}
