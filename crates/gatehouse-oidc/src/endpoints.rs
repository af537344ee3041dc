//! Where an identity provider lives: authorize, token and JWKS URLs, the issuer rule, and
//! (Entra only) Microsoft Graph.
//!
//! `azureAD` endpoints derive from `directory_id` and `azure_cloud` with Microsoft's real
//! hosts per cloud — in China the token issuer host (`login.partner.microsoftonline.cn`)
//! differs from the endpoint host (`login.chinacloudapi.cn`). [`CloudOverrides`] replaces a
//! cloud's hosts so a local emulator can stand in. `oidc` endpoints come from the IdP's
//! `auth_url`, `token_url` and `certs_url`; there is no issuer to pin, so the token's `iss`
//! is accepted when it is a stable https (or loopback) URL and recorded.
//!
//! This module only computes URLs; it must not perform I/O.

use gatehouse_core::idp::{AzureCloud, IdentityProvider, IdpType, check_endpoint_url};
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

/// Microsoft's hosts of one cloud (reference: entra.md §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudHosts {
    /// Host of the authorize, token and keys endpoints.
    pub login: &'static str,
    /// Host in the `iss` of v2.0 ID tokens.
    pub issuer: &'static str,
    /// Microsoft Graph's host.
    pub graph: &'static str,
}

/// Microsoft's hosts for `cloud`.
pub fn cloud_hosts(cloud: AzureCloud) -> CloudHosts {
    match cloud {
        AzureCloud::Global => CloudHosts {
            login: "login.microsoftonline.com",
            issuer: "login.microsoftonline.com",
            graph: "graph.microsoft.com",
        },
        AzureCloud::UsGov => CloudHosts {
            login: "login.microsoftonline.us",
            issuer: "login.microsoftonline.us",
            graph: "graph.microsoft.us",
        },
        AzureCloud::China => CloudHosts {
            login: "login.chinacloudapi.cn",
            issuer: "login.partner.microsoftonline.cn",
            graph: "microsoftgraph.chinacloudapi.cn",
        },
    }
}

/// Replacement base URLs for one cloud, each `scheme://host[:port]` (https, or plain http on
/// a loopback host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudUrls {
    /// Replaces `https://{login host}` for the authorize, token and keys endpoints.
    pub login_url: String,
    /// Replaces `https://{graph host}`; Graph calls go to `{graph_url}/v1.0/...`.
    pub graph_url: String,
    /// Replaces `https://{issuer host}` in the expected `iss`; defaults to `login_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_url: Option<String>,
}

/// Per-cloud host replacements, so an emulator can stand in for Microsoft. Clouds without an
/// entry use Microsoft's hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudOverrides {
    /// The global cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<CloudUrls>,
    /// US Government.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usgov: Option<CloudUrls>,
    /// China.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub china: Option<CloudUrls>,
}

impl CloudOverrides {
    /// No replacements: Microsoft's hosts everywhere.
    pub fn none() -> Self {
        Self::default()
    }

    /// These overrides with `cloud` replaced by `urls`.
    pub fn with(mut self, cloud: AzureCloud, urls: CloudUrls) -> Self {
        match cloud {
            AzureCloud::Global => self.global = Some(urls),
            AzureCloud::UsGov => self.usgov = Some(urls),
            AzureCloud::China => self.china = Some(urls),
        }
        self
    }

    /// The replacement for `cloud`, if any.
    pub fn get(&self, cloud: AzureCloud) -> Option<&CloudUrls> {
        match cloud {
            AzureCloud::Global => self.global.as_ref(),
            AzureCloud::UsGov => self.usgov.as_ref(),
            AzureCloud::China => self.china.as_ref(),
        }
    }
}

/// How the `iss` of an ID token is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerPolicy {
    /// Entra: exactly this issuer, `https://{issuer host}/{tid}/v2.0`.
    Exact(String),
    /// Generic OIDC (no issuer is configured): any stable `https` URL, or `http` on a
    /// loopback host, without query, fragment or credentials. Users are keyed by `iss`+`sub`.
    AnyStable,
}

/// The endpoints of one identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The authorization endpoint.
    pub authorize: Url,
    /// The token endpoint.
    pub token: Url,
    /// The JWKS (signing keys) endpoint.
    pub jwks: Url,
    /// How `iss` is checked.
    pub issuer: IssuerPolicy,
    /// Entra only: the tenant id every token's `tid` must equal.
    pub tenant_id: Option<Uuid>,
    /// Entra only: Microsoft Graph's root (`https://graph.microsoft.com` or the override).
    pub graph: Option<Url>,
    /// Entra only: Microsoft Graph's resource identifier used in scopes — always Microsoft's
    /// real Graph host of the cloud, even when [`CloudOverrides`] redirect the calls.
    pub graph_resource: Option<String>,
}

/// An IdP whose configuration does not yield usable endpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// `azureAD` without `directory_id`.
    #[error("the identity provider has no directory_id (the Directory (tenant) ID of the Entra tenant)")]
    MissingDirectoryId,
    /// `oidc` without one of its URLs.
    #[error("the identity provider has no {field}")]
    MissingUrl {
        /// The config field.
        field: &'static str,
    },
    /// A URL that is not absolute https (or loopback http), or that cannot be joined.
    #[error("{field} {url:?} is not usable: {reason}")]
    BadUrl {
        /// The config field or override.
        field: &'static str,
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
}

fn base_url(field: &'static str, text: &str) -> Result<String, EndpointError> {
    let url = check_endpoint_url(text.trim()).map_err(|reason| EndpointError::BadUrl {
        field,
        url: text.to_owned(),
        reason,
    })?;
    if url.query().is_some() {
        return Err(EndpointError::BadUrl { field, url: text.to_owned(), reason: "must not contain a query".into() });
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn parse(field: &'static str, text: &str) -> Result<Url, EndpointError> {
    Url::parse(text).map_err(|e| EndpointError::BadUrl { field, url: text.to_owned(), reason: e.to_string() })
}

impl Endpoints {
    /// The endpoints of `idp`, with `overrides` applied to Entra's hosts.
    ///
    /// # Errors
    /// [`EndpointError`] when the configuration lacks what its type needs or a URL is not
    /// https (plain http is accepted only for loopback hosts).
    pub fn for_idp(idp: &IdentityProvider, overrides: &CloudOverrides) -> Result<Self, EndpointError> {
        match idp.kind {
            IdpType::AzureAd => Self::entra(idp, overrides),
            IdpType::Oidc => Self::generic(idp),
        }
    }

    fn entra(idp: &IdentityProvider, overrides: &CloudOverrides) -> Result<Self, EndpointError> {
        let tid = idp.config.directory_id.ok_or(EndpointError::MissingDirectoryId)?;
        let cloud = idp.config.azure_cloud;
        let hosts = cloud_hosts(cloud);
        let (login, issuer, graph) = match overrides.get(cloud) {
            Some(o) => {
                let login = base_url("login_url", &o.login_url)?;
                let issuer = match &o.issuer_url {
                    Some(i) => base_url("issuer_url", i)?,
                    None => login.clone(),
                };
                (login, issuer, base_url("graph_url", &o.graph_url)?)
            }
            None => (
                format!("https://{}", hosts.login),
                format!("https://{}", hosts.issuer),
                format!("https://{}", hosts.graph),
            ),
        };
        let tid_text = tid.hyphenated().to_string();
        Ok(Self {
            authorize: parse("login_url", &format!("{login}/{tid_text}/oauth2/v2.0/authorize"))?,
            token: parse("login_url", &format!("{login}/{tid_text}/oauth2/v2.0/token"))?,
            jwks: parse("login_url", &format!("{login}/{tid_text}/discovery/v2.0/keys"))?,
            issuer: IssuerPolicy::Exact(format!("{issuer}/{tid_text}/v2.0")),
            tenant_id: Some(tid),
            graph: Some(parse("graph_url", &graph)?),
            graph_resource: Some(format!("https://{}", hosts.graph)),
        })
    }

    fn generic(idp: &IdentityProvider) -> Result<Self, EndpointError> {
        let url = |field: &'static str, value: &Option<String>| -> Result<Url, EndpointError> {
            let text = value.as_deref().map(str::trim).filter(|s| !s.is_empty());
            let text = text.ok_or(EndpointError::MissingUrl { field })?;
            check_endpoint_url(text).map_err(|reason| EndpointError::BadUrl { field, url: text.to_owned(), reason })
        };
        Ok(Self {
            authorize: url("auth_url", &idp.config.auth_url)?,
            token: url("token_url", &idp.config.token_url)?,
            jwks: url("certs_url", &idp.config.certs_url)?,
            issuer: IssuerPolicy::AnyStable,
            tenant_id: None,
            graph: None,
            graph_resource: None,
        })
    }
}

/// Whether `iss` is acceptable as a generic OIDC issuer: an absolute `https` URL, or `http`
/// on a loopback host, with a host, and without query, fragment or credentials.
pub fn is_stable_issuer(iss: &str) -> bool {
    if iss.is_empty() || iss.len() > 2048 || iss.trim() != iss {
        return false;
    }
    match check_endpoint_url(iss) {
        Ok(url) => url.query().is_none(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use gatehouse_core::idp::IdpConfig;
    use gatehouse_core::secret::SecretString;
    use gatehouse_core::{IdpId, idp::ScimSettings};

    use super::*;

    const TID: &str = "3f5c2a4e-9b1d-4c7e-8a2f-6d0e1b9c7a51";

    fn idp(kind: IdpType, config: IdpConfig) -> IdentityProvider {
        IdentityProvider {
            id: IdpId::generate(),
            name: "x".into(),
            kind,
            config,
            client_secret: SecretString::new("s"),
            scim: ScimSettings::default(),
            scim_secret_hash: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn entra(cloud: AzureCloud) -> IdentityProvider {
        let directory_id = Uuid::parse_str(TID).ok();
        idp(IdpType::AzureAd, IdpConfig { directory_id, azure_cloud: cloud, ..IdpConfig::default() })
    }

    #[test]
    fn microsofts_hosts_per_cloud() {
        let e =
            Endpoints::for_idp(&entra(AzureCloud::Global), &CloudOverrides::none()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.authorize.as_str(), format!("https://login.microsoftonline.com/{TID}/oauth2/v2.0/authorize"));
        assert_eq!(e.token.as_str(), format!("https://login.microsoftonline.com/{TID}/oauth2/v2.0/token"));
        assert_eq!(e.jwks.as_str(), format!("https://login.microsoftonline.com/{TID}/discovery/v2.0/keys"));
        assert_eq!(e.issuer, IssuerPolicy::Exact(format!("https://login.microsoftonline.com/{TID}/v2.0")));
        assert_eq!(e.graph.as_ref().map(Url::as_str), Some("https://graph.microsoft.com/"));

        let us =
            Endpoints::for_idp(&entra(AzureCloud::UsGov), &CloudOverrides::none()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(us.token.host_str(), Some("login.microsoftonline.us"));
        assert_eq!(us.graph_resource.as_deref(), Some("https://graph.microsoft.us"));

        let cn =
            Endpoints::for_idp(&entra(AzureCloud::China), &CloudOverrides::none()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cn.authorize.host_str(), Some("login.chinacloudapi.cn"));
        assert_eq!(cn.issuer, IssuerPolicy::Exact(format!("https://login.partner.microsoftonline.cn/{TID}/v2.0")));
        assert_eq!(cn.graph.as_ref().and_then(Url::host_str), Some("microsoftgraph.chinacloudapi.cn"));
    }

    #[test]
    fn overrides_replace_one_cloud_and_keep_the_graph_resource() {
        let o = CloudOverrides::none().with(
            AzureCloud::China,
            CloudUrls {
                login_url: "http://127.0.0.1:4000/".into(),
                graph_url: "http://127.0.0.1:4000".into(),
                issuer_url: Some("http://localhost:4000".into()),
            },
        );
        let cn = Endpoints::for_idp(&entra(AzureCloud::China), &o).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cn.token.as_str(), format!("http://127.0.0.1:4000/{TID}/oauth2/v2.0/token"));
        assert_eq!(cn.issuer, IssuerPolicy::Exact(format!("http://localhost:4000/{TID}/v2.0")));
        assert_eq!(cn.graph_resource.as_deref(), Some("https://microsoftgraph.chinacloudapi.cn"));
        let global = Endpoints::for_idp(&entra(AzureCloud::Global), &o).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(global.token.host_str(), Some("login.microsoftonline.com"));

        let bad = CloudOverrides::none().with(
            AzureCloud::Global,
            CloudUrls { login_url: "http://example.com".into(), graph_url: "https://g".into(), issuer_url: None },
        );
        assert!(matches!(
            Endpoints::for_idp(&entra(AzureCloud::Global), &bad),
            Err(EndpointError::BadUrl { field: "login_url", .. })
        ));
    }

    #[test]
    fn generic_oidc_uses_the_configured_urls() {
        let config = IdpConfig {
            auth_url: Some("https://idp.example.com/authorize".into()),
            token_url: Some("https://idp.example.com/token".into()),
            certs_url: None,
            ..IdpConfig::default()
        };
        assert_eq!(
            Endpoints::for_idp(&idp(IdpType::Oidc, config.clone()), &CloudOverrides::none()),
            Err(EndpointError::MissingUrl { field: "certs_url" })
        );
        let config = IdpConfig { certs_url: Some("https://idp.example.com/keys".into()), ..config };
        let e =
            Endpoints::for_idp(&idp(IdpType::Oidc, config), &CloudOverrides::none()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.issuer, IssuerPolicy::AnyStable);
        assert!(e.graph.is_none() && e.tenant_id.is_none());
        assert_eq!(
            Endpoints::for_idp(&entra(AzureCloud::Global), &CloudOverrides::none()).map(|e| e.tenant_id.is_some()),
            Ok(true)
        );
        let no_tid = idp(IdpType::AzureAd, IdpConfig::default());
        assert_eq!(Endpoints::for_idp(&no_tid, &CloudOverrides::none()), Err(EndpointError::MissingDirectoryId));
    }

    #[test]
    fn stable_issuers() {
        assert!(is_stable_issuer("https://accounts.example.com"));
        assert!(is_stable_issuer("http://127.0.0.1:8080/tenant/v2.0"));
        assert!(!is_stable_issuer("http://idp.example.com"));
        assert!(!is_stable_issuer("https://idp.example.com/?tenant=x"));
        assert!(!is_stable_issuer("https://idp.example.com/#x"));
        assert!(!is_stable_issuer("https://user:pw@idp.example.com"));
        assert!(!is_stable_issuer("idp.example.com"));
        assert!(!is_stable_issuer(""));
    }
}
