//! The signed-in identity built from a validated ID token (and, for Entra, Graph's groups).
//!
//! - **User key**: Entra users are keyed by (`tid`, `oid`) — `oid` is the directory object
//!   id, stable across apps; generic OIDC users by (`iss`, `sub`). Never by e-mail.
//! - **E-mail**: the configured `email_claim_name`, then `email`, then `upn`, then
//!   `preferred_username`; the last two only when they look like an address. Which claim was
//!   used is recorded, because Entra users without a mailbox have no `email` claim.
//! - **Groups**: `{id, name}`; names are known only when they came from Graph.
//! - **`oidc_fields`**: the claims listed in the IdP's `claims`, copied as they are; a claim
//!   named `groups` is read as group membership instead (generic OIDC).
//!
//! This module trusts its input: it must only ever see claims that
//! [`crate::id_token`] validated.

use gatehouse_core::IdpId;
use gatehouse_core::idp::{IdentityProvider, IdpType};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::graph::{GroupsClaim, groups_claim};

/// A group the user is in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Group {
    /// The group's id (Entra: the object id).
    pub id: String,
    /// Its display name, when known (Entra: from Microsoft Graph).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The stable key of a user at an IdP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UserKey {
    /// Entra ID: tenant id and object id.
    Entra {
        /// `tid`.
        tid: Uuid,
        /// `oid`.
        oid: Uuid,
    },
    /// Generic OIDC: issuer and subject.
    Oidc {
        /// `iss`.
        iss: String,
        /// `sub`.
        sub: String,
    },
}

impl UserKey {
    /// One string form, unique across IdP types: `entra:{tid}:{oid}` or `oidc:{iss}#{sub}`.
    pub fn as_string(&self) -> String {
        match self {
            UserKey::Entra { tid, oid } => format!("entra:{tid}:{oid}"),
            UserKey::Oidc { iss, sub } => format!("oidc:{iss}#{sub}"),
        }
    }
}

/// Where the groups came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupsSource {
    /// Groups are not read for this IdP (`support_groups` off, or no groups claim).
    None,
    /// The ID token's `groups` claim.
    Claim,
    /// Microsoft Graph (`transitiveMemberOf`).
    Graph,
}

/// The identity of a signed-in user, as the gateway stores it in the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The IdP that signed the user in.
    pub idp_id: IdpId,
    /// Its type.
    pub idp_type: IdpType,
    /// The stable user key.
    pub user_key: UserKey,
    /// The e-mail address.
    pub email: String,
    /// The claim the e-mail address was taken from.
    pub email_claim: String,
    /// The display name (`name`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Group memberships.
    pub groups: Vec<Group>,
    /// Where the groups came from.
    pub groups_source: GroupsSource,
    /// The configured `claims`, copied from the ID token.
    pub oidc_fields: Map<String, Value>,
    /// `amr`, when the token has it (v2 Entra tokens normally do not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

/// The e-mail address and the claim it came from, or the claims tried.
pub(crate) fn resolve_email(
    claims: &Map<String, Value>,
    configured: Option<&str>,
) -> Result<(String, String), Vec<String>> {
    let mut order: Vec<(&str, bool)> = Vec::new();
    if let Some(name) = configured.map(str::trim).filter(|n| !n.is_empty()) {
        order.push((name, false));
    }
    for (name, needs_at) in [("email", false), ("upn", true), ("preferred_username", true)] {
        if !order.iter().any(|(n, _)| *n == name) {
            order.push((name, needs_at));
        }
    }
    for (name, needs_at) in &order {
        let value = match claims.get(*name) {
            Some(Value::String(s)) => s.trim(),
            Some(Value::Array(items)) => items.iter().find_map(Value::as_str).map(str::trim).unwrap_or_default(),
            _ => "",
        };
        if value.is_empty() || value.len() > 320 || value.chars().any(char::is_control) {
            continue;
        }
        if *needs_at && !value.contains('@') {
            continue;
        }
        return Ok((value.to_owned(), (*name).to_owned()));
    }
    Err(order.into_iter().map(|(n, _)| n.to_owned()).collect())
}

/// The configured claims present in the token. A claim named `groups` is group membership,
/// not a field, as in Cloudflare Access.
pub(crate) fn oidc_fields(claims: &Map<String, Value>, wanted: &[String]) -> Map<String, Value> {
    wanted
        .iter()
        .filter(|name| !name.eq_ignore_ascii_case("groups"))
        .filter_map(|name| claims.get(name).map(|v| (name.clone(), v.clone())))
        .collect()
}

/// `amr`, string values only.
pub(crate) fn amr(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("amr") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).take(32).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// The user key, or the claim that is missing.
pub(crate) fn user_key(
    idp: &IdentityProvider,
    claims: &Map<String, Value>,
    issuer: &str,
    subject: &str,
) -> Result<UserKey, &'static str> {
    match idp.kind {
        IdpType::AzureAd => {
            let uuid = |name| claims.get(name).and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok());
            Ok(UserKey::Entra { tid: uuid("tid").ok_or("tid")?, oid: uuid("oid").ok_or("oid")? })
        }
        IdpType::Oidc => Ok(UserKey::Oidc { iss: issuer.to_owned(), sub: subject.to_owned() }),
    }
}

/// Groups named by a generic OIDC provider in a claim listed in `claims` as `groups`.
pub(crate) fn generic_groups(idp: &IdentityProvider, claims: &Map<String, Value>) -> Option<Vec<Group>> {
    let name = idp.config.claims.iter().find(|c| c.eq_ignore_ascii_case("groups"))?;
    let mut one = Map::new();
    one.insert("groups".into(), claims.get(name)?.clone());
    match groups_claim(&one) {
        GroupsClaim::Listed(ids) => Some(ids.into_iter().map(|id| Group { id, name: None }).collect()),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn email_resolution_order() {
        let c = map(json!({"email": "a@x", "upn": "u@x", "preferred_username": "p@x", "mail2": "m@x"}));
        assert_eq!(resolve_email(&c, None), Ok(("a@x".into(), "email".into())));
        assert_eq!(resolve_email(&c, Some("mail2")), Ok(("m@x".into(), "mail2".into())));
        assert_eq!(resolve_email(&c, Some("absent")), Ok(("a@x".into(), "email".into())));
        let no_mail = map(json!({"upn": "u@x", "preferred_username": "p@x"}));
        assert_eq!(resolve_email(&no_mail, None), Ok(("u@x".into(), "upn".into())));
        let only_pref = map(json!({"preferred_username": "p@x"}));
        assert_eq!(resolve_email(&only_pref, None), Ok(("p@x".into(), "preferred_username".into())));
        let phone = map(json!({"preferred_username": "+15551234"}));
        assert_eq!(resolve_email(&phone, None), Err(vec!["email".into(), "upn".into(), "preferred_username".into()]));
    }

    #[test]
    fn user_keys_are_distinct_per_type() {
        let a = UserKey::Entra { tid: Uuid::nil(), oid: Uuid::nil() }.as_string();
        let b = UserKey::Oidc { iss: "https://i".into(), sub: "s".into() }.as_string();
        assert_ne!(a, b);
        assert!(a.starts_with("entra:") && b.starts_with("oidc:"));
    }
}
