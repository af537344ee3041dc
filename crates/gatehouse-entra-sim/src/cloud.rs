//! Cloud instances and how their hosts map onto an emulator that listens on loopback.
//!
//! Real Entra ID runs in several clouds whose hosts differ (reference §1.1): the global cloud
//! (`login.microsoftonline.com`, Graph `graph.microsoft.com`), US Government
//! (`login.microsoftonline.us`, `graph.microsoft.us`) and China, where the token issuer host
//! (`login.partner.microsoftonline.cn`) differs from the endpoint host
//! (`login.chinacloudapi.cn`). The emulator serves everything from one plain-HTTP listener,
//! so it presents three base URLs — login (endpoints), issuer (`iss`), Graph — each
//! configurable in the tenant file, with defaults that keep the China quirk observable:
//! there the issuer host is a loopback alias of the endpoint host (`localhost` ⇄ `127.0.0.1`).
//! This module owns that mapping and must not know anything about tokens or requests.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::SimError;

/// A Microsoft cloud instance the emulator can present itself as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// The global (public) cloud.
    #[default]
    Global,
    /// US Government (GCC High / DoD).
    UsGovernment,
    /// China, operated by 21Vianet.
    China,
}

impl Cloud {
    /// The canonical name used in tenant files: `global`, `usgov` or `china`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGovernment => "usgov",
            Cloud::China => "china",
        }
    }

    /// Microsoft's login (authorize/token) host in this cloud.
    pub fn login_host(self) -> &'static str {
        match self {
            Cloud::Global => "login.microsoftonline.com",
            Cloud::UsGovernment => "login.microsoftonline.us",
            Cloud::China => "login.chinacloudapi.cn",
        }
    }

    /// The host Microsoft puts in the `iss` of v2.0 tokens in this cloud.
    pub fn issuer_host(self) -> &'static str {
        match self {
            Cloud::Global => "login.microsoftonline.com",
            Cloud::UsGovernment => "login.microsoftonline.us",
            Cloud::China => "login.partner.microsoftonline.cn",
        }
    }

    /// Microsoft Graph's host in this cloud.
    pub fn graph_host(self) -> &'static str {
        match self {
            Cloud::Global => "graph.microsoft.com",
            Cloud::UsGovernment => "graph.microsoft.us",
            Cloud::China => "microsoftgraph.chinacloudapi.cn",
        }
    }

    /// The discovery document's `cloud_instance_name`.
    pub fn cloud_instance_name(self) -> &'static str {
        match self {
            Cloud::Global => "microsoftonline.com",
            Cloud::UsGovernment => "microsoftonline.us",
            Cloud::China => "partner.microsoftonline.cn",
        }
    }

    /// The legacy Azure AD Graph host, which Entra still names in groups-overage claims
    /// and in the discovery document's `cloud_graph_host_name`.
    pub fn legacy_graph_host(self) -> &'static str {
        match self {
            Cloud::Global => "graph.windows.net",
            Cloud::UsGovernment => "graph.microsoftazure.us",
            Cloud::China => "graph.chinacloudapi.cn",
        }
    }

    /// The host in the `iss` of v1.0 tokens (such as Graph access tokens).
    pub(crate) fn v1_issuer_host(self) -> &'static str {
        match self {
            Cloud::Global => "sts.windows.net",
            Cloud::UsGovernment => "login.microsoftonline.us",
            Cloud::China => "sts.chinacloudapi.cn",
        }
    }

    /// The discovery document's `tenant_region_scope` for tenants of this cloud.
    pub(crate) fn tenant_region_scope(self) -> &'static str {
        match self {
            Cloud::Global => "WW",
            Cloud::UsGovernment => "USGov",
            Cloud::China => "AS",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Cloud {
    type Err = SimError;

    /// Accepts the canonical names and the usual aliases (`default`, `public`,
    /// `AzurePublic`, `us`, `AzureUSGovernment`, `cn`, `AzureChina`...), case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "global" | "default" | "public" | "azurepublic" | "azurepubliccloud" => Ok(Cloud::Global),
            "usgov" | "us" | "usgovernment" | "azureusgovernment" | "azureusgovernmentcloud" => Ok(Cloud::UsGovernment),
            "china" | "cn" | "azurechina" | "azurechinacloud" => Ok(Cloud::China),
            _ => Err(SimError::InvalidTenant(format!(
                "unknown cloud {s:?}; expected \"global\", \"usgov\" or \"china\""
            ))),
        }
    }
}

impl Serialize for Cloud {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Cloud {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Base-URL overrides from the tenant file. Each may contain `{port}`, replaced by the port
/// the emulator actually bound (useful with port 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOverrides {
    /// Where the endpoints are advertised (authorize, token, keys...). Default:
    /// `http://<listen address>`.
    pub login_url: Option<String>,
    /// The scheme and host put in `iss`. Default: the login URL, except in the China cloud
    /// where it is the login URL with its host swapped for a loopback alias.
    pub issuer_url: Option<String>,
    /// The Microsoft Graph root (Graph is served under `/v1.0` of it). Default: the login URL.
    pub graph_url: Option<String>,
}

/// The three base URLs a running emulator presents, without trailing slashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SimUrls {
    /// Root of the login endpoints, e.g. `http://127.0.0.1:41234`.
    pub login: String,
    /// Scheme and host used in token issuers, e.g. `http://localhost:41234` in China mode.
    pub issuer: String,
    /// Root of Microsoft Graph, e.g. `http://127.0.0.1:41234` (Graph paths start `/v1.0`).
    pub graph: String,
}

impl SimUrls {
    /// Resolves the overrides against the address the listener bound.
    ///
    /// # Errors
    /// [`SimError::InvalidTenant`] when an override is not an absolute `http(s)` URL without
    /// a path, query or fragment.
    pub fn resolve(cloud: Cloud, overrides: &HostOverrides, bound: SocketAddr) -> Result<Self, SimError> {
        let ip = if bound.ip().is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { bound.ip() };
        let default_login = format!("http://{}", SocketAddr::new(ip, bound.port()));
        let port = bound.port().to_string();
        let login = match &overrides.login_url {
            Some(template) => normalise("login_url", template, &port)?,
            None => default_login,
        };
        let issuer = match &overrides.issuer_url {
            Some(template) => normalise("issuer_url", template, &port)?,
            None if cloud == Cloud::China => loopback_alias(&login)?,
            None => login.clone(),
        };
        let graph = match &overrides.graph_url {
            Some(template) => normalise("graph_url", template, &port)?,
            None => login.clone(),
        };
        Ok(Self { login, issuer, graph })
    }

    /// `host[:port]` of the Graph URL, as the discovery document's `msgraph_host` carries it.
    pub fn graph_host(&self) -> String {
        host_and_port(&self.graph)
    }
}

fn normalise(key: &str, template: &str, port: &str) -> Result<String, SimError> {
    let text = template.replace("{port}", port);
    let url = url::Url::parse(&text)
        .map_err(|e| SimError::InvalidTenant(format!("tenant.{key} {text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(SimError::InvalidTenant(format!("tenant.{key} {text:?} must be an http(s) URL")));
    }
    // The emulator serves every path from its root, so a base with a path would advertise
    // URLs it cannot answer.
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(SimError::InvalidTenant(format!("tenant.{key} {text:?} must be scheme://host[:port] only")));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// The login URL with its host swapped for another loopback name, so that in China mode
/// the issuer host differs from the endpoint host yet still reaches the emulator.
fn loopback_alias(login: &str) -> Result<String, SimError> {
    let mut url = url::Url::parse(login).map_err(|e| SimError::InvalidTenant(format!("login URL: {e}")))?;
    let alias = if url.host_str() == Some("localhost") { "127.0.0.1" } else { "localhost" };
    url.set_host(Some(alias)).map_err(|e| SimError::InvalidTenant(format!("login URL: {e}")))?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn host_and_port(base: &str) -> String {
    base.split_once("://").map(|(_, rest)| rest).unwrap_or(base).to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_follow_the_listen_address() {
        let urls = SimUrls::resolve(Cloud::Global, &HostOverrides::default(), addr("127.0.0.1:4000")).unwrap();
        assert_eq!(urls.login, "http://127.0.0.1:4000");
        assert_eq!(urls.issuer, "http://127.0.0.1:4000");
        assert_eq!(urls.graph, "http://127.0.0.1:4000");
        assert_eq!(urls.graph_host(), "127.0.0.1:4000");
    }

    #[test]
    fn china_issuer_host_differs_from_the_endpoint_host() {
        let urls = SimUrls::resolve(Cloud::China, &HostOverrides::default(), addr("0.0.0.0:4000")).unwrap();
        assert_eq!(urls.login, "http://127.0.0.1:4000");
        assert_eq!(urls.issuer, "http://localhost:4000");
        let overrides = HostOverrides { login_url: Some("http://localhost:{port}".into()), ..Default::default() };
        let urls = SimUrls::resolve(Cloud::China, &overrides, addr("127.0.0.1:4001")).unwrap();
        assert_eq!(urls.issuer, "http://127.0.0.1:4001");
    }

    #[test]
    fn overrides_substitute_the_port_and_reject_paths() {
        let overrides = HostOverrides {
            issuer_url: Some("https://login.partner.microsoftonline.cn/".into()),
            graph_url: Some("http://graph.localhost:{port}".into()),
            ..Default::default()
        };
        let urls = SimUrls::resolve(Cloud::China, &overrides, addr("127.0.0.1:4002")).unwrap();
        assert_eq!(urls.issuer, "https://login.partner.microsoftonline.cn");
        assert_eq!(urls.graph, "http://graph.localhost:4002");
        let bad = HostOverrides { login_url: Some("http://x/y".into()), ..Default::default() };
        assert!(SimUrls::resolve(Cloud::Global, &bad, addr("127.0.0.1:1")).is_err());
    }

    #[test]
    fn cloud_names_and_aliases_parse() {
        assert_eq!("default".parse::<Cloud>().unwrap(), Cloud::Global);
        assert_eq!("AzureUSGovernment".parse::<Cloud>().unwrap(), Cloud::UsGovernment);
        assert_eq!("china".parse::<Cloud>().unwrap(), Cloud::China);
        assert!("mars".parse::<Cloud>().is_err());
        assert_ne!(Cloud::China.login_host(), Cloud::China.issuer_host());
    }
}
