//! The claims of the tokens the emulator issues.
//!
//! ID tokens follow reference §1.7: v2.0 `iss` on the (per-cloud) issuer host, a pairwise
//! `sub` (stable per user and app, different across apps), `oid`/`name`/`preferred_username`
//! with the `profile` scope, `email` only when the app asks for the optional claim and the
//! user has `mail`, `upn` when asked for, and `groups` per `groupMembershipClaims` —
//! transitive object ids, or the overage pair `_claim_names`/`_claim_sources` (pointing at
//! Azure AD Graph, as Entra does) when there are more than the threshold. Access tokens are
//! v1.0 tokens for Microsoft Graph (`aud` = Graph's app id), which the emulator's Graph
//! verifies; relying parties must treat them as opaque, as with real Graph tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::scopes::GRAPH_APP_ID;
use super::store::Grant;
use crate::cloud::SimUrls;
use crate::tenant::{App, GroupMembershipClaims, OptionalClaim, Tenant, User, UserAttr};

/// The default directory role every member user holds (`wids`).
const DEFAULT_USER_ROLE: &str = "b79fbf4d-3ef9-4689-8143-76b194e85509";

/// The pairwise subject: unique per (tenant, app, user), opaque, 43 characters like Entra's.
pub(crate) fn pairwise_sub(tenant: Uuid, client: Uuid, user: Uuid) -> String {
    let input = format!("{tenant}|{client}|{user}");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// `https://{issuer host}/{tid}/v2.0`.
pub(crate) fn issuer(urls: &SimUrls, tenant: Uuid) -> String {
    format!("{}/{tenant}/v2.0", urls.issuer)
}

/// The v1.0 issuer of Graph access tokens.
pub(crate) fn v1_issuer(t: &Tenant) -> String {
    format!("https://{}/{}/", t.info().cloud.v1_issuer_host(), t.id())
}

fn insert_opt(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        map.insert(key.into(), json!(v));
    }
}

/// The group ids for the `groups` claim under the app's `groupMembershipClaims`.
pub(crate) fn group_claim_ids(t: &Tenant, app: &App, user: Uuid) -> Option<Vec<Uuid>> {
    let groups = t.transitive_groups(user);
    let ids = match app.group_membership_claims {
        GroupMembershipClaims::None | GroupMembershipClaims::DirectoryRole => return None,
        GroupMembershipClaims::SecurityGroup => groups.iter().filter(|g| g.security_enabled).map(|g| g.id).collect(),
        GroupMembershipClaims::All => groups.iter().map(|g| g.id).collect(),
        GroupMembershipClaims::ApplicationGroup => {
            groups.iter().filter(|g| app.assigned_groups.contains(&g.id)).map(|g| g.id).collect()
        }
    };
    Some(ids)
}

/// The ID token's claims.
pub(crate) fn id_token(t: &Tenant, urls: &SimUrls, app: &App, user: &User, grant: &Grant, now: i64) -> Value {
    let settings = t.info().settings;
    let lifetime = i64::try_from(settings.id_token_lifetime_secs).unwrap_or(3600);
    let mut c = Map::new();
    c.insert("aud".into(), json!(app.client_id));
    c.insert("iss".into(), json!(issuer(urls, t.id())));
    c.insert("iat".into(), json!(now));
    c.insert("nbf".into(), json!(now));
    c.insert("exp".into(), json!(now + lifetime));
    if app.optional_claims.contains(&OptionalClaim::AuthTime) {
        c.insert("auth_time".into(), json!(grant.auth_time));
    }
    if app.optional_claims.contains(&OptionalClaim::Email) {
        insert_opt(&mut c, "email", user.mail());
    }
    if app.optional_claims.contains(&OptionalClaim::FamilyName) {
        insert_opt(&mut c, "family_name", user.attr(UserAttr::Surname));
    }
    if app.optional_claims.contains(&OptionalClaim::GivenName) {
        insert_opt(&mut c, "given_name", user.attr(UserAttr::GivenName));
    }
    if let Some(ids) = group_claim_ids(t, app, user.id) {
        if ids.len() > settings.overage_threshold {
            c.insert("_claim_names".into(), json!({ "groups": "src1" }));
            let endpoint =
                format!("https://{}/{}/users/{}/getMemberObjects", t.info().cloud.legacy_graph_host(), t.id(), user.id);
            c.insert("_claim_sources".into(), json!({ "src1": { "endpoint": endpoint } }));
        } else if !ids.is_empty() {
            c.insert("groups".into(), json!(ids));
        }
    }
    if grant.scopes.profile {
        c.insert("name".into(), json!(user.display_name));
    }
    insert_opt(&mut c, "nonce", grant.nonce.as_deref());
    if grant.scopes.profile {
        c.insert("oid".into(), json!(user.id));
        c.insert("preferred_username".into(), json!(user.upn));
    }
    c.insert("rh".into(), json!(format!("0.{}", URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes()))));
    c.insert("sid".into(), json!(grant.sid));
    c.insert("sub".into(), json!(pairwise_sub(t.id(), app.client_id, user.id)));
    c.insert("tid".into(), json!(t.id()));
    if app.optional_claims.contains(&OptionalClaim::Upn) {
        c.insert("upn".into(), json!(user.upn));
    }
    c.insert("uti".into(), json!(URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())));
    c.insert("ver".into(), json!("2.0"));
    Value::Object(c)
}

/// The delegated scopes a Graph access token carries: every consented permission (Entra
/// returns all consented scopes of the resource, not only those requested) plus the
/// requested OIDC scopes.
pub(crate) fn delegated_scopes(app: &App, grant: &Grant) -> Vec<String> {
    let mut scp: Vec<String> = grant.scopes.oidc_names().into_iter().map(str::to_owned).collect();
    // `offline_access` is consented like a permission but never appears in `scp`.
    for p in app.graph_permissions.iter().filter(|p| !p.eq_ignore_ascii_case("offline_access")) {
        if !scp.iter().any(|s| s.eq_ignore_ascii_case(p)) {
            scp.push(p.clone());
        }
    }
    scp
}

/// A delegated Graph access token's claims.
pub(crate) fn graph_access_token(t: &Tenant, app: &App, user: &User, grant: &Grant, now: i64) -> Value {
    let lifetime = i64::try_from(t.info().settings.access_token_lifetime_secs).unwrap_or(3599);
    let mut c = Map::new();
    c.insert("aud".into(), json!(GRAPH_APP_ID));
    c.insert("iss".into(), json!(v1_issuer(t)));
    c.insert("iat".into(), json!(now));
    c.insert("nbf".into(), json!(now));
    c.insert("exp".into(), json!(now + lifetime));
    c.insert("acct".into(), json!(0));
    c.insert("acr".into(), json!("1"));
    c.insert("amr".into(), json!(["pwd"]));
    c.insert("app_displayname".into(), json!(app.display_name));
    c.insert("appid".into(), json!(app.client_id));
    c.insert("appidacr".into(), json!("1"));
    insert_opt(&mut c, "family_name", user.attr(UserAttr::Surname));
    insert_opt(&mut c, "given_name", user.attr(UserAttr::GivenName));
    c.insert("idtyp".into(), json!("user"));
    c.insert("name".into(), json!(user.display_name));
    c.insert("oid".into(), json!(user.id));
    c.insert("scp".into(), json!(delegated_scopes(app, grant).join(" ")));
    c.insert("sid".into(), json!(grant.sid));
    c.insert(
        "sub".into(),
        json!(pairwise_sub(t.id(), Uuid::from_u128(0x0000_0003_0000_0000_c000_0000_0000_0000), user.id)),
    );
    c.insert("tenant_region_scope".into(), json!(t.info().cloud.tenant_region_scope()));
    c.insert("tid".into(), json!(t.id()));
    c.insert("unique_name".into(), json!(user.upn));
    c.insert("upn".into(), json!(user.upn));
    c.insert("uti".into(), json!(URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())));
    c.insert("ver".into(), json!("1.0"));
    c.insert("wids".into(), json!([DEFAULT_USER_ROLE]));
    Value::Object(c)
}

/// An application (client credentials) Graph access token's claims. Application
/// permissions appear in `roles` only once admin consent is granted, as in Entra.
pub(crate) fn app_access_token(t: &Tenant, app: &App, now: i64) -> Value {
    let lifetime = i64::try_from(t.info().settings.access_token_lifetime_secs).unwrap_or(3599);
    // The app's service principal id, stable per app.
    let sp = crate::tenant::derive_uuid(&format!("{}/service-principal/{}", t.id(), app.client_id));
    let mut c = Map::new();
    c.insert("aud".into(), json!(GRAPH_APP_ID));
    c.insert("iss".into(), json!(v1_issuer(t)));
    c.insert("iat".into(), json!(now));
    c.insert("nbf".into(), json!(now));
    c.insert("exp".into(), json!(now + lifetime));
    c.insert("app_displayname".into(), json!(app.display_name));
    c.insert("appid".into(), json!(app.client_id));
    c.insert("appidacr".into(), json!("1"));
    c.insert("idtyp".into(), json!("app"));
    c.insert("oid".into(), json!(sp));
    if app.admin_consent && !app.graph_permissions.is_empty() {
        c.insert("roles".into(), json!(app.graph_permissions));
    }
    c.insert("sub".into(), json!(sp));
    c.insert("tenant_region_scope".into(), json!(t.info().cloud.tenant_region_scope()));
    c.insert("tid".into(), json!(t.id()));
    c.insert("uti".into(), json!(URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())));
    c.insert("ver".into(), json!("1.0"));
    Value::Object(c)
}

/// What Graph reads from an access token it accepted.
#[derive(Debug, Deserialize)]
pub(crate) struct GraphTokenClaims {
    pub(crate) exp: i64,
    pub(crate) tid: Uuid,
    pub(crate) appid: Uuid,
    pub(crate) idtyp: String,
    #[serde(default)]
    pub(crate) oid: Option<Uuid>,
    #[serde(default)]
    pub(crate) scp: Option<String>,
    #[serde(default)]
    pub(crate) roles: Option<Vec<String>>,
}

impl GraphTokenClaims {
    /// Delegated token (a user signed in)?
    pub(crate) fn is_delegated(&self) -> bool {
        self.idtyp == "user"
    }

    /// Whether the token grants any of the permissions.
    pub(crate) fn grants_any(&self, permissions: &[&str]) -> bool {
        let held: Vec<&str> = match (&self.scp, &self.roles) {
            (Some(scp), _) if self.is_delegated() => scp.split(' ').collect(),
            (_, Some(roles)) if !self.is_delegated() => roles.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        held.iter().any(|h| permissions.iter().any(|p| p.eq_ignore_ascii_case(h)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sub_is_stable_per_app_and_differs_across_apps() {
        let (t, a, b, u) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(pairwise_sub(t, a, u), pairwise_sub(t, a, u));
        assert_ne!(pairwise_sub(t, a, u), pairwise_sub(t, b, u));
        assert_eq!(pairwise_sub(t, a, u).len(), 43);
    }
}
