//! Parsing the `scope` parameter the way Entra's v2.0 endpoint reads it.
//!
//! OIDC scopes (`openid`, `profile`, `email`, `offline_access`) are kept apart from resource
//! scopes. Resource scopes may name Microsoft Graph fully (`https://graph.microsoft.com/X`,
//! the cloud's Graph host, the emulator's Graph URL, or Graph's app id `00000003-...`) or
//! bare (`User.Read`, which Entra reads as Graph's). `.default` asks for every consented
//! permission and cannot be combined with named ones. Other resources are unknown to the
//! emulated tenant.

use std::collections::BTreeSet;

use crate::aadsts::Aadsts;

/// Microsoft Graph's application id, the `aud` of Graph access tokens.
pub(crate) const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// Scopes requested in an authorization request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScopeSet {
    pub(crate) openid: bool,
    pub(crate) profile: bool,
    pub(crate) email: bool,
    pub(crate) offline_access: bool,
    /// `.default` for Graph.
    pub(crate) graph_default: bool,
    /// Named Graph permissions.
    pub(crate) graph: BTreeSet<String>,
}

impl ScopeSet {
    /// Parses a space-separated scope list. `graph_prefixes` are the accepted Graph
    /// resource prefixes, each ending in `/`.
    pub(crate) fn parse(scope: &str, graph_prefixes: &[String], tenant_name: &str) -> Result<Self, Aadsts> {
        let mut set = ScopeSet::default();
        for item in scope.split_whitespace() {
            match item.to_ascii_lowercase().as_str() {
                "openid" => set.openid = true,
                "profile" => set.profile = true,
                "email" => set.email = true,
                "offline_access" => set.offline_access = true,
                _ => {
                    let name = graph_scope_name(item, graph_prefixes).ok_or_else(|| {
                        let resource = item.rsplit_once('/').map(|(r, _)| r).unwrap_or(item).to_owned();
                        Aadsts::UnknownResource { resource, tenant_name: tenant_name.to_owned() }
                    })?;
                    if name.eq_ignore_ascii_case(".default") {
                        set.graph_default = true;
                    } else if name.is_empty() || name.starts_with('.') {
                        return Err(Aadsts::InvalidScope { scope: item.to_owned() });
                    } else {
                        set.graph.insert(name.to_owned());
                    }
                }
            }
        }
        if set.graph_default && !set.graph.is_empty() {
            return Err(Aadsts::InvalidScope { scope: scope.to_owned() });
        }
        Ok(set)
    }

    /// The OIDC scopes that go into `scp` and the token response's `scope`.
    pub(crate) fn oidc_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.openid {
            names.push("openid");
        }
        if self.profile {
            names.push("profile");
        }
        if self.email {
            names.push("email");
        }
        names
    }
}

/// The permission name of a Graph scope, or `None` for another resource.
fn graph_scope_name<'a>(item: &'a str, prefixes: &[String]) -> Option<&'a str> {
    for prefix in prefixes {
        if item.len() >= prefix.len() && item[..prefix.len()].eq_ignore_ascii_case(prefix) {
            return Some(&item[prefix.len()..]);
        }
    }
    // A bare permission name means Graph; anything that looks like a resource URI does not.
    (!item.contains('/') && !item.contains(':')).then_some(item)
}

/// The Graph resource prefixes accepted for a cloud and an emulator Graph URL.
pub(crate) fn graph_prefixes(cloud_graph_host: &str, graph_url: &str) -> Vec<String> {
    vec![
        format!("https://{cloud_graph_host}/"),
        "https://graph.microsoft.com/".to_owned(),
        format!("{graph_url}/"),
        format!("{GRAPH_APP_ID}/"),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn prefixes() -> Vec<String> {
        graph_prefixes("graph.microsoft.com", "http://127.0.0.1:1")
    }

    #[test]
    fn oidc_and_graph_scopes_are_separated() {
        let s = ScopeSet::parse(
            "openid profile offline_access https://graph.microsoft.com/GroupMember.Read.All User.Read",
            &prefixes(),
            "t",
        )
        .unwrap();
        assert!(s.openid && s.profile && s.offline_access && !s.email);
        assert_eq!(s.graph.iter().cloned().collect::<Vec<_>>(), vec!["GroupMember.Read.All", "User.Read"]);
    }

    #[test]
    fn default_scope_rules() {
        let s = ScopeSet::parse("openid http://127.0.0.1:1/.default", &prefixes(), "t").unwrap();
        assert!(s.graph_default);
        assert!(matches!(
            ScopeSet::parse("https://graph.microsoft.com/.default User.Read", &prefixes(), "t"),
            Err(Aadsts::InvalidScope { .. })
        ));
        assert!(matches!(ScopeSet::parse("api://other/read", &prefixes(), "t"), Err(Aadsts::UnknownResource { .. })));
    }
}
