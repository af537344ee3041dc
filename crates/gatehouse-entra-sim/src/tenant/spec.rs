//! The declarative shapes of tenant objects: what a tenant file (TOML) and the admin API
//! (JSON) say a user, group, app registration or setting should be.
//!
//! These types only describe; turning them into a consistent [`Tenant`](super::Tenant)
//! (resolving references, deriving ids, checking uniqueness) is `mod.rs`'s job. Unknown keys
//! are rejected everywhere so a typo in a tenant file is an error, not a silent default.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cloud::Cloud;
use crate::secret::Secret;

/// A whole tenant file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// The `[tenant]` section.
    pub tenant: TenantSection,
    /// Optional injected Graph throttling (`[graph_throttle]`).
    #[serde(default)]
    pub graph_throttle: ThrottleConfig,
    /// `[[users]]`.
    #[serde(default)]
    pub users: Vec<UserSpec>,
    /// `[[groups]]`.
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    /// `[[apps]]` (app registrations).
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    /// `[scim]`: the provisioning enterprise app's assignments.
    #[serde(default)]
    pub scim: ScimSpec,
}

/// The `[tenant]` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSection {
    /// The tenant (directory) id.
    pub id: Uuid,
    /// The organisation's display name, used in error messages. Default: `Contoso`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The initial domain, accepted as `{tenant}` in URLs. Default: `contoso.onmicrosoft.com`.
    #[serde(default)]
    pub domain: Option<String>,
    /// `global`, `usgov` or `china`. Default: `global`.
    #[serde(default)]
    pub cloud: Cloud,
    /// Base URL override for the endpoints (`{port}` allowed).
    #[serde(default)]
    pub login_url: Option<String>,
    /// Base URL override for `iss` (`{port}` allowed).
    #[serde(default)]
    pub issuer_url: Option<String>,
    /// Base URL override for Microsoft Graph (`{port}` allowed).
    #[serde(default)]
    pub graph_url: Option<String>,
    /// Groups above this count turn the `groups` claim into an overage. Default 200.
    #[serde(default)]
    pub overage_threshold: Option<usize>,
    /// Authorization code lifetime. Default 600 s.
    #[serde(default)]
    pub code_lifetime_seconds: Option<u64>,
    /// ID token lifetime. Default 3600 s.
    #[serde(default)]
    pub id_token_lifetime_seconds: Option<u64>,
    /// Access token lifetime. Default 3599 s.
    #[serde(default)]
    pub access_token_lifetime_seconds: Option<u64>,
    /// Refresh token inactivity lifetime. Default 90 days.
    #[serde(default)]
    pub refresh_token_lifetime_seconds: Option<u64>,
    /// How long a browser sign-in (the `ESTSAUTH` cookie) lasts. Default 24 h.
    #[serde(default)]
    pub session_lifetime_seconds: Option<u64>,
}

/// Injected HTTP 429 responses on Microsoft Graph.
///
/// `next` answers the next N authenticated Graph requests with 429; `every_nth` answers every
/// Nth authenticated request with 429 (0 disables). Both carry `Retry-After:
/// retry_after_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Throttle every Nth request (0 = never).
    #[serde(default)]
    pub every_nth: u64,
    /// Throttle the next N requests.
    #[serde(default)]
    pub next: u64,
    /// The `Retry-After` value in seconds.
    #[serde(default = "default_retry_after")]
    pub retry_after_seconds: u64,
}

fn default_retry_after() -> u64 {
    5
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self { every_nth: 0, next: 0, retry_after_seconds: default_retry_after() }
    }
}

/// Optional directory attributes of a user, named as in the tenant file. They feed the
/// provisioning driver's default attribute mappings (reference §3.5) and some claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserAttr {
    /// `mail` — emitted as the `email` claim when the app asks for it.
    Mail,
    /// `givenName`.
    GivenName,
    /// `surname`.
    Surname,
    /// `jobTitle`.
    JobTitle,
    /// `department`.
    Department,
    /// `employeeId`.
    EmployeeId,
    /// `mailNickname` (default: the UPN's local part).
    MailNickname,
    /// `preferredLanguage`.
    PreferredLanguage,
    /// `physicalDeliveryOfficeName`.
    OfficeLocation,
    /// `streetAddress`.
    StreetAddress,
    /// `city`.
    City,
    /// `state`.
    State,
    /// `postalCode`.
    PostalCode,
    /// `country`.
    Country,
    /// `telephoneNumber`.
    BusinessPhone,
    /// `mobile`.
    MobilePhone,
    /// `facsimileTelephoneNumber`.
    Fax,
}

/// A user as declared in a tenant file or created through the admin API.
#[derive(Clone, Debug, Deserialize)]
pub struct UserSpec {
    /// Object id; derived from the tenant id and UPN when absent.
    #[serde(default)]
    pub id: Option<Uuid>,
    /// `userPrincipalName`, the sign-in name.
    pub upn: String,
    /// `displayName`.
    pub display_name: String,
    /// Password for the sign-in page. A user without one cannot sign in.
    #[serde(default)]
    pub password: Option<Secret>,
    /// `accountEnabled`. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Manager, by object id or UPN.
    #[serde(default)]
    pub manager: Option<String>,
    /// Direct group memberships, by group object id or display name.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Creates this many synthetic security groups with the user as their only member.
    #[serde(default)]
    pub extra_groups: usize,
    /// Every other key: optional attributes (`mail`, `given_name`, `surname`...).
    #[serde(flatten)]
    pub attributes: BTreeMap<UserAttr, String>,
}

/// A partial update of a user (admin API `PATCH`). Absent keys are left alone; for
/// attributes, `null` clears the value.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct UserUpdate {
    /// New UPN.
    #[serde(default)]
    pub upn: Option<String>,
    /// New display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// New password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Enable or disable the account.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// New manager (object id or UPN), or `null` to clear.
    #[serde(default, deserialize_with = "present")]
    pub manager: Option<Option<String>>,
    /// Attribute changes; `null` clears.
    #[serde(flatten)]
    pub attributes: BTreeMap<UserAttr, Option<String>>,
}

/// A group as declared in a tenant file or created through the admin API.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Object id; derived from the tenant id and display name when absent.
    #[serde(default)]
    pub id: Option<Uuid>,
    /// `displayName`.
    pub display_name: String,
    /// `description`.
    #[serde(default)]
    pub description: Option<String>,
    /// `securityEnabled`. Default true.
    #[serde(default = "yes")]
    pub security_enabled: bool,
    /// `mailEnabled`. Default false.
    #[serde(default)]
    pub mail_enabled: bool,
    /// `mailNickname`. Default: derived from the display name.
    #[serde(default)]
    pub mail_nickname: Option<String>,
    /// Groups nested in this one, by object id or display name.
    #[serde(default)]
    pub member_groups: Vec<String>,
}

/// A partial update of a group (admin API `PATCH`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupUpdate {
    /// New display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// New description (`null` clears).
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Option<String>>,
    /// New `securityEnabled`.
    #[serde(default)]
    pub security_enabled: Option<bool>,
}

/// The app manifest's `groupMembershipClaims`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupMembershipClaims {
    /// No `groups` claim.
    #[default]
    None,
    /// Security groups the user is a member of, transitively.
    SecurityGroup,
    /// Every group (security and not), transitively.
    All,
    /// Directory roles only; the emulator models none, so no `groups` claim.
    DirectoryRole,
    /// Groups assigned to the application (`assigned_groups`) that the user belongs to.
    ApplicationGroup,
}

/// Optional ID-token claims an app registration can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionalClaim {
    /// `email`, emitted when the user has `mail`.
    Email,
    /// `upn`.
    Upn,
    /// `given_name`.
    GivenName,
    /// `family_name`.
    FamilyName,
    /// `auth_time`: when the user last entered credentials.
    AuthTime,
}

/// An app registration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// Application (client) id; derived from the tenant id and display name when absent.
    #[serde(default)]
    pub client_id: Option<Uuid>,
    /// The app's display name (shown in errors and on the sign-in page).
    pub display_name: String,
    /// Registered web redirect URIs, compared exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Client secrets.
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
    /// Whether an administrator granted consent for the app's permissions.
    #[serde(default)]
    pub admin_consent: bool,
    /// `groupMembershipClaims`.
    #[serde(default)]
    pub group_membership_claims: GroupMembershipClaims,
    /// Optional claims of the ID token.
    #[serde(default)]
    pub optional_claims: Vec<OptionalClaim>,
    /// Microsoft Graph permissions (delegated, and application for client credentials),
    /// e.g. `User.Read`, `GroupMember.Read.All`, `Directory.Read.All`.
    #[serde(default)]
    pub graph_permissions: Vec<String>,
    /// Whether the app may redeem codes without a secret (public client flows).
    #[serde(default)]
    pub public_client: bool,
    /// Groups assigned to the app, for `groupMembershipClaims = "ApplicationGroup"`.
    #[serde(default)]
    pub assigned_groups: Vec<String>,
}

/// A partial update of an app registration (admin API `PATCH`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppUpdate {
    /// Replace the redirect URIs.
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    /// Grant or revoke admin consent.
    #[serde(default)]
    pub admin_consent: Option<bool>,
    /// Change `groupMembershipClaims`.
    #[serde(default)]
    pub group_membership_claims: Option<GroupMembershipClaims>,
    /// Replace the optional claims.
    #[serde(default)]
    pub optional_claims: Option<Vec<OptionalClaim>>,
    /// Replace the Graph permissions.
    #[serde(default)]
    pub graph_permissions: Option<Vec<String>>,
}

/// A client secret: a secret **ID** (the credential's key id, visible in the portal) and a
/// distinct secret **value** (what a client must send).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// The secret ID; derived when absent.
    #[serde(default)]
    pub id: Option<Uuid>,
    /// The secret value.
    pub value: Secret,
    /// Expiry (TOML datetime, RFC 3339 string or `YYYY-MM-DD`). Absent: never expires.
    #[serde(default)]
    pub expires: Option<DateTimeSpec>,
    /// The secret's description.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// The `[scim]` section: users and groups assigned to the provisioning enterprise app.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimSpec {
    /// Assigned users, by object id or UPN.
    #[serde(default)]
    pub users: Vec<String>,
    /// Assigned groups, by object id or display name. Only their direct user members are
    /// in scope, as in Entra.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A point in time written as a TOML datetime, an RFC 3339 string, or a date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTimeSpec(pub OffsetDateTime);

impl<'de> Deserialize<'de> for DateTimeSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Toml(toml::value::Datetime),
            Text(String),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Toml(dt) => dt.to_string(),
            Raw::Text(s) => s,
        };
        parse_datetime(&text).map(DateTimeSpec).map_err(serde::de::Error::custom)
    }
}

/// Parses `2030-01-01T00:00:00Z`, `2030-01-01T00:00:00` (taken as UTC) or `2030-01-01`.
pub(crate) fn parse_datetime(text: &str) -> Result<OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    if let Ok(dt) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(dt);
    }
    let naive = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    if let Ok(dt) = time::PrimitiveDateTime::parse(text, naive) {
        return Ok(dt.assume_utc());
    }
    let date = format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(text, date) {
        return Ok(d.midnight().assume_utc());
    }
    Err(format!("{text:?} is not a date-time (expected RFC 3339 or YYYY-MM-DD)"))
}

fn yes() -> bool {
    true
}

/// Distinguishes an absent key (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_in_three_forms() {
        assert_eq!(parse_datetime("2030-01-02").unwrap().day(), 2);
        assert_eq!(parse_datetime("2030-01-02T03:04:05Z").unwrap().hour(), 3);
        assert_eq!(parse_datetime("2030-01-02T03:04:05").unwrap().minute(), 4);
        assert!(parse_datetime("soon").is_err());
    }

    #[test]
    fn unknown_user_keys_are_rejected() {
        let err = toml::from_str::<UserSpec>("upn = \"a@b\"\ndisplay_name = \"A\"\nnmae = \"x\"").unwrap_err();
        assert!(err.to_string().contains("nmae"), "{err}");
        let ok: UserSpec = toml::from_str("upn = \"a@b\"\ndisplay_name = \"A\"\nmail = \"a@c\"").unwrap();
        assert_eq!(ok.attributes.get(&UserAttr::Mail).map(String::as_str), Some("a@c"));
    }

    #[test]
    fn update_distinguishes_null_from_absent() {
        let u: UserUpdate = serde_json::from_str(r#"{"mail": null, "manager": null}"#).unwrap();
        assert_eq!(u.attributes.get(&UserAttr::Mail), Some(&None));
        assert_eq!(u.manager, Some(None));
        let u: UserUpdate = serde_json::from_str(r#"{"display_name": "X"}"#).unwrap();
        assert!(u.manager.is_none() && u.attributes.is_empty());
    }
}
