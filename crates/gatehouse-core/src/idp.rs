//! Identity providers: the stored model, the write model the API accepts (Cloudflare's JSON
//! shape for `azureAD` and `oidc`), and the rules that turn one into the other.
//!
//! Secrets: `client_secret` lives only in [`IdentityProvider::client_secret`] as a
//! [`SecretString`]; the SCIM bearer secret is never stored, only its hash.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::secret::SecretString;
use crate::{IdpId, UnixMillis, ValidationErrors};

/// The IdP types this gateway signs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IdpType {
    /// Microsoft Entra ID (Azure AD), OIDC v2.0.
    #[serde(rename = "azureAD")]
    AzureAd,
    /// Any OpenID Connect provider, endpoints given explicitly.
    #[serde(rename = "oidc")]
    Oidc,
}

impl IdpType {
    /// The wire name (`azureAD`, `oidc`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AzureAd => "azureAD",
            Self::Oidc => "oidc",
        }
    }

    /// Parses a wire name; Cloudflare treats types case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("azureAD") {
            Some(Self::AzureAd)
        } else if s.eq_ignore_ascii_case("oidc") {
            Some(Self::Oidc)
        } else {
            None
        }
    }
}

/// Cloudflare IdP types that exist but this gateway does not implement.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "onetimepin",
    "saml",
    "centrify",
    "facebook",
    "github",
    "google-apps",
    "google",
    "linkedin",
    "okta",
    "onelogin",
    "pingone",
    "yandex",
];

/// The Microsoft cloud an Entra tenant lives in (reference: entra.md §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum AzureCloud {
    /// Global Azure (`login.microsoftonline.com`); Cloudflare's `"default"`.
    #[default]
    #[serde(rename = "default")]
    Global,
    /// US Government, GCC High / DoD (`login.microsoftonline.us`).
    #[serde(rename = "usgov")]
    UsGov,
    /// Azure China operated by 21Vianet (`login.chinacloudapi.cn`).
    #[serde(rename = "china")]
    China,
}

impl AzureCloud {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "default",
            Self::UsGov => "usgov",
            Self::China => "china",
        }
    }

    /// Parses the wire name (`default`, `usgov`, `china`; `global` and `azure` are aliases of
    /// `default`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "default" | "global" | "azure" | "" => Some(Self::Global),
            "usgov" | "us_gov" | "usgovernment" => Some(Self::UsGov),
            "china" => Some(Self::China),
            _ => None,
        }
    }
}

/// Microsoft's `prompt` values Cloudflare passes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// Force re-authentication.
    Login,
    /// Show the account picker.
    SelectAccount,
    /// No interaction.
    None,
}

/// What a SCIM change does to a live identity (Cloudflare's `identity_update_behavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityUpdateBehavior {
    /// Apply SCIM group changes to the identity immediately.
    Automatic,
    /// Revoke sessions on group change; identity updated at next sign-in.
    Reauth,
    /// SCIM never changes identities.
    #[default]
    NoAction,
}

/// Non-secret IdP configuration; which fields apply depends on the [`IdpType`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdpConfig {
    /// OAuth client (application) id.
    pub client_id: String,
    /// Entra tenant id (azureAD only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<Uuid>,
    /// Entra cloud (azureAD only).
    #[serde(default)]
    pub azure_cloud: AzureCloud,
    /// Read group memberships (claims / Microsoft Graph).
    #[serde(default)]
    pub support_groups: bool,
    /// Load Entra authentication contexts.
    #[serde(default)]
    pub conditional_access_enabled: bool,
    /// Use PKCE (S256) on every sign-in.
    #[serde(default)]
    pub pkce_enabled: bool,
    /// Passed to the IdP as `prompt=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Prompt>,
    /// ID-token claims copied into the identity (`oidc_fields`).
    #[serde(default)]
    pub claims: Vec<String>,
    /// Claim used as the e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_claim_name: Option<String>,
    /// Authorization endpoint (oidc only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    /// Token endpoint (oidc only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// JWKS endpoint (oidc only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certs_url: Option<String>,
    /// Requested scopes (oidc only).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// SCIM provisioning settings of an IdP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ScimSettings {
    /// Whether the SCIM endpoint accepts requests.
    pub enabled: bool,
    /// Revoke every session of a deactivated or deleted user.
    pub user_deprovision: bool,
    /// Also free the user's seat (requires `user_deprovision`).
    pub seat_deprovision: bool,
    /// Legacy: revoke sessions on group membership change.
    pub group_member_deprovision: bool,
    /// What SCIM changes do to live identities.
    pub identity_update_behavior: IdentityUpdateBehavior,
}

/// A stored identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    /// Id, also the SCIM population id.
    pub id: IdpId,
    /// Name shown on the login page.
    pub name: String,
    /// Protocol family.
    pub kind: IdpType,
    /// Non-secret configuration.
    pub config: IdpConfig,
    /// OAuth client secret (decrypted in memory, sealed at rest).
    pub client_secret: SecretString,
    /// SCIM settings.
    pub scim: ScimSettings,
    /// SHA-256 of the SCIM bearer secret, once one was generated.
    pub scim_secret_hash: Option<String>,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
}

/// The `config` object as clients send it. Every field of every supported type is listed so
/// that `null`s sent by tools that serialise a whole union (Terraform) are accepted; a
/// non-null field that does not belong to the IdP's type is an error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpConfigInput {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub directory_id: Option<String>,
    pub azure_cloud: Option<String>,
    pub support_groups: Option<bool>,
    pub conditional_access_enabled: Option<bool>,
    pub pkce_enabled: Option<bool>,
    pub prompt: Option<Prompt>,
    pub claims: Option<Vec<String>>,
    pub email_claim_name: Option<String>,
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub certs_url: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// Read-only (derived from the team domain); accepted and ignored.
    pub redirect_url: Option<String>,
}

/// The `scim_config` object as clients send it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimConfigInput {
    pub enabled: Option<bool>,
    pub user_deprovision: Option<bool>,
    pub seat_deprovision: Option<bool>,
    pub group_member_deprovision: Option<bool>,
    pub identity_update_behavior: Option<IdentityUpdateBehavior>,
    /// Read-only; accepted and ignored.
    pub secret: Option<String>,
    /// Read-only; accepted and ignored.
    pub scim_base_url: Option<String>,
}

/// An IdP as clients send it on create (POST) and replace (PUT). Read-only fields of the
/// response (`id`, `uid`, `version`, timestamps, top-level `scim_base_url`) are accepted and
/// ignored so a fetched object can be sent back unchanged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpInput {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub config: Option<IdpConfigInput>,
    pub scim_config: Option<ScimConfigInput>,
    pub id: Option<serde_json::Value>,
    pub uid: Option<serde_json::Value>,
    pub version: Option<serde_json::Value>,
    pub scim_base_url: Option<serde_json::Value>,
    pub created_at: Option<serde_json::Value>,
    pub updated_at: Option<serde_json::Value>,
}

/// A validated IdP write, ready to be stored.
#[derive(Debug, Clone)]
pub struct IdpDraft {
    /// Display name.
    pub name: String,
    /// Protocol family.
    pub kind: IdpType,
    /// Configuration.
    pub config: IdpConfig,
    /// New client secret; `None` on a replace keeps the stored one.
    pub client_secret: Option<SecretString>,
    /// SCIM settings.
    pub scim: ScimSettings,
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks an IdP endpoint URL: absolute, `https` (plain `http` only on loopback), no fragment
/// and no embedded credentials.
pub fn check_endpoint_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not a valid URL ({e})"))?;
    let host = url.host_str().unwrap_or_default().to_owned();
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&host) => {}
        "http" => {
            return Err("must use https (plain http is allowed only for loopback hosts)".into());
        }
        _ => return Err("must be an https URL".into()),
    }
    if host.is_empty() {
        return Err("must include a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if url.fragment().is_some() {
        return Err("must not contain a #fragment".into());
    }
    Ok(url)
}

fn check_claim_names(errs: &mut ValidationErrors, path: &str, names: &[String]) {
    if names.len() > 50 {
        errs.push(path, "at most 50 entries");
    }
    for (i, n) in names.iter().enumerate() {
        if n.trim().is_empty() || n.len() > 256 {
            errs.push(format!("{path}[{i}]"), "must be a non-empty claim name of at most 256 characters");
        }
    }
}

impl IdpInput {
    /// Validates a create (`existing = None`) or a full replace of `existing`.
    ///
    /// On replace, an absent or empty `client_secret` keeps the stored secret (reads never
    /// return it, so clients cannot send it back), and the type cannot change.
    pub fn validate(self, existing: Option<&IdentityProvider>) -> Result<IdpDraft, ValidationErrors> {
        let mut errs = ValidationErrors::default();

        let name = match self.name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() && n.len() <= 256 => n.to_owned(),
            Some(_) => {
                errs.push("name", "must be 1 to 256 characters");
                String::new()
            }
            None => {
                errs.push("name", "is required");
                String::new()
            }
        };

        let kind = match self.kind.as_deref() {
            None => {
                errs.push("type", "is required (azureAD or oidc)");
                None
            }
            Some(t) => match IdpType::parse(t) {
                Some(k) => Some(k),
                None if KNOWN_UNSUPPORTED.iter().any(|u| u.eq_ignore_ascii_case(t)) => {
                    errs.push(
                        "type",
                        format!("'{t}' is not supported by this gateway; supported types are azureAD and oidc"),
                    );
                    None
                }
                None => {
                    errs.push(
                        "type",
                        format!("unknown identity provider type '{t}'; supported types are azureAD and oidc"),
                    );
                    None
                }
            },
        };
        if let (Some(k), Some(old)) = (kind, existing)
            && k != old.kind
        {
            errs.push("type", "cannot change the type of an existing identity provider; create a new one");
        }

        let input = self.config.unwrap_or_default();
        let mut config = IdpConfig::default();

        match input.client_id.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => config.client_id = c.to_owned(),
            _ => errs.push("config.client_id", "is required"),
        }
        let client_secret = match input.client_secret.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Some(SecretString::new(s)),
            _ if existing.is_some() => None,
            _ => {
                errs.push("config.client_secret", "is required");
                None
            }
        };
        config.support_groups = input.support_groups.unwrap_or(false);
        config.pkce_enabled = input.pkce_enabled.unwrap_or(false);
        config.prompt = input.prompt;
        config.claims = input.claims.unwrap_or_default();
        check_claim_names(&mut errs, "config.claims", &config.claims);
        config.email_claim_name = input.email_claim_name.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());

        match kind {
            Some(IdpType::AzureAd) => {
                if !config.client_id.is_empty() && Uuid::parse_str(&config.client_id).is_err() {
                    errs.push(
                        "config.client_id",
                        "must be the Application (client) ID, a GUID like 00000000-0000-0000-0000-000000000000",
                    );
                }
                if let Some(s) = &client_secret
                    && Uuid::parse_str(s.expose()).is_ok()
                {
                    errs.push(
                        "config.client_secret",
                        "looks like the secret's ID (a GUID), not its value: in Entra ID open Certificates & secrets and copy the Value column",
                    );
                }
                match input.directory_id.as_deref().map(str::trim) {
                    None | Some("") => {
                        errs.push("config.directory_id", "is required: the Directory (tenant) ID of your Entra tenant")
                    }
                    Some(d) => match Uuid::parse_str(d) {
                        Ok(u) if d.len() == 36 => config.directory_id = Some(u),
                        _ => errs.push(
                            "config.directory_id",
                            "must be the Directory (tenant) ID, a GUID like 00000000-0000-0000-0000-000000000000",
                        ),
                    },
                }
                match input.azure_cloud.as_deref().map(AzureCloud::parse) {
                    None => {}
                    Some(Some(c)) => config.azure_cloud = c,
                    Some(None) => errs.push("config.azure_cloud", "must be one of default, usgov, china"),
                }
                config.conditional_access_enabled = input.conditional_access_enabled.unwrap_or(false);
                for (field, present) in [
                    ("auth_url", input.auth_url.is_some()),
                    ("token_url", input.token_url.is_some()),
                    ("certs_url", input.certs_url.is_some()),
                    ("scopes", input.scopes.is_some()),
                ] {
                    if present {
                        errs.push(format!("config.{field}"), "is not a field of azureAD identity providers (endpoints are derived from directory_id and azure_cloud)");
                    }
                }
            }
            Some(IdpType::Oidc) => {
                for (field, value, slot) in [
                    ("auth_url", input.auth_url, &mut config.auth_url),
                    ("token_url", input.token_url, &mut config.token_url),
                    ("certs_url", input.certs_url, &mut config.certs_url),
                ] {
                    match value.as_deref().map(str::trim) {
                        None | Some("") => {
                            errs.push(format!("config.{field}"), "is required for oidc identity providers")
                        }
                        Some(u) => match check_endpoint_url(u) {
                            Ok(_) => *slot = Some(u.to_owned()),
                            Err(e) => errs.push(format!("config.{field}"), e),
                        },
                    }
                }
                let scopes = input.scopes.unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
                if !scopes.iter().any(|s| s == "openid") {
                    errs.push("config.scopes", "must include \"openid\"");
                }
                if scopes.iter().any(|s| s.is_empty() || s.contains(char::is_whitespace)) {
                    errs.push("config.scopes", "each scope must be a single non-empty word");
                }
                config.scopes = scopes;
                for (field, present) in [
                    ("directory_id", input.directory_id.is_some()),
                    ("azure_cloud", input.azure_cloud.is_some()),
                    ("conditional_access_enabled", input.conditional_access_enabled.is_some()),
                ] {
                    if present {
                        errs.push(format!("config.{field}"), "is not a field of oidc identity providers");
                    }
                }
            }
            None => {}
        }

        let scim_in = self.scim_config.unwrap_or_default();
        let scim = ScimSettings {
            enabled: scim_in.enabled.unwrap_or(false),
            user_deprovision: scim_in.user_deprovision.unwrap_or(false),
            seat_deprovision: scim_in.seat_deprovision.unwrap_or(false),
            group_member_deprovision: scim_in.group_member_deprovision.unwrap_or(false),
            identity_update_behavior: scim_in.identity_update_behavior.unwrap_or_default(),
        };
        if scim.seat_deprovision && !scim.user_deprovision {
            errs.push("scim_config.seat_deprovision", "requires user_deprovision to be true");
        }

        match kind {
            Some(kind) => errs.into_result(IdpDraft { name, kind, config, client_secret, scim }),
            None => Err(errs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: serde_json::Value) -> IdpInput {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn paths(e: ValidationErrors) -> Vec<String> {
        e.0.into_iter().map(|f| f.path).collect()
    }

    const TENANT: &str = "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f";
    const CLIENT: &str = "c37d0163-d4a4-43a8-8b1e-1a2b3c4d5e6f";

    #[test]
    fn valid_azure() {
        let d = input(serde_json::json!({
            "name": "Entra", "type": "azureAD",
            "config": {"client_id": CLIENT, "client_secret": "abc~def", "directory_id": TENANT,
                       "support_groups": true, "azure_cloud": "usgov", "redirect_url": "ignored"},
            "scim_config": {"enabled": true, "user_deprovision": true, "identity_update_behavior": "reauth"}
        }))
        .validate(None)
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.kind, IdpType::AzureAd);
        assert_eq!(d.config.azure_cloud, AzureCloud::UsGov);
        assert!(d.config.support_groups && d.scim.enabled);
        assert_eq!(d.scim.identity_update_behavior, IdentityUpdateBehavior::Reauth);
    }

    #[test]
    fn azure_errors_name_fields() {
        let e = input(serde_json::json!({
            "name": "Entra", "type": "azureAD",
            "config": {"client_id": CLIENT, "client_secret": "0b6f6b4e-1d3c-4a3f-9e5d-6c7b8a9d0e1f",
                       "auth_url": "https://x"},
            "scim_config": {"seat_deprovision": true}
        }))
        .validate(None)
        .err()
        .unwrap_or_default();
        assert_eq!(
            paths(e),
            ["config.client_secret", "config.directory_id", "config.auth_url", "scim_config.seat_deprovision"]
        );
    }

    #[test]
    fn unknown_and_unsupported_types() {
        let e = input(serde_json::json!({"name": "x", "type": "nope", "config": {}}))
            .validate(None)
            .err()
            .unwrap_or_default();
        assert!(e.0[0].message.contains("unknown identity provider type"));
        let e = input(serde_json::json!({"name": "x", "type": "okta", "config": {}}))
            .validate(None)
            .err()
            .unwrap_or_default();
        assert!(e.0[0].message.contains("not supported"));
    }

    #[test]
    fn oidc_requires_endpoints_and_https() {
        let e = input(serde_json::json!({
            "name": "o", "type": "oidc",
            "config": {"client_id": "c", "client_secret": "s", "auth_url": "http://idp.example.com/a",
                       "token_url": "https://idp.example.com/t", "scopes": ["email"]}
        }))
        .validate(None)
        .err()
        .unwrap_or_default();
        assert_eq!(paths(e), ["config.auth_url", "config.certs_url", "config.scopes"]);
        let ok = input(serde_json::json!({
            "name": "o", "type": "OIDC",
            "config": {"client_id": "c", "client_secret": "s", "auth_url": "http://127.0.0.1:9/a",
                       "token_url": "http://idp.localhost/t", "certs_url": "https://idp.example.com/k",
                       "directory_id": null}
        }))
        .validate(None);
        assert!(ok.is_ok(), "{:?}", ok.err());
    }

    #[test]
    fn unknown_config_field_is_a_parse_error() {
        let r: Result<IdpInput, _> = serde_json::from_value(serde_json::json!({
            "name": "x", "type": "oidc", "config": {"client_idd": "c"}
        }));
        assert!(r.is_err());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,40}".prop_map(Value::String),
            Just(Value::String("8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f".into())),
            Just(Value::String("https://idp.example.com/x".into())),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("client_id".to_owned()),
                        Just("client_secret".to_owned()),
                        Just("directory_id".to_owned()),
                        Just("auth_url".to_owned()),
                        Just("scopes".to_owned()),
                        Just("claims".to_owned()),
                        Just("azure_cloud".to_owned()),
                        Just("enabled".to_owned()),
                        "[a-z_]{1,12}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON either fails to parse or validates to a result; nothing panics, and a
        /// successful validation always has a non-empty name and client id.
        #[test]
        fn arbitrary_input_never_panics(name in json_value(), kind in prop_oneof![Just(Value::from("azureAD")), Just(Value::from("oidc")), json_value()],
                                        config in json_value(), scim in json_value()) {
            let body = serde_json::json!({"name": name, "type": kind, "config": config, "scim_config": scim});
            if let Ok(input) = serde_json::from_value::<IdpInput>(body)
                && let Ok(draft) = input.validate(None)
            {
                prop_assert!(!draft.name.is_empty());
                prop_assert!(!draft.config.client_id.is_empty());
                prop_assert!(draft.client_secret.is_some());
            }
        }
    }
}
