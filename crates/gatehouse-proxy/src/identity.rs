//! The policy identity of a user, as the user registry recorded it at the last sign-in (and
//! as SCIM updates keep it).

use gatehouse_core::policy::eval::Identity;
use gatehouse_store::UserRecord;

/// Builds the identity policies are evaluated against from a registry record.
pub fn from_registry(user: &UserRecord) -> Identity {
    let v = &user.identity;
    Identity {
        email: user.email.to_ascii_lowercase(),
        idp: Some(user.idp_id),
        groups: v["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["id"].as_str().map(str::to_ascii_lowercase))
            .collect(),
        amr: v["amr"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_owned)).collect(),
        claims: v["oidc_fields"].as_object().cloned().unwrap_or_default(),
    }
}
