//! Self-hosted applications: the stored model and the write model the API accepts (Cloudflare's
//! `self_hosted` shape), with the validation rules that keep routing unambiguous.

use serde::{Deserialize, Serialize};

use crate::{AppId, GoDuration, IdpId, UnixMillis, ValidationErrors};

/// The cookie `SameSite` attribute an application asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// Sent on cross-site requests (requires Secure in browsers).
    None,
    /// Sent on top-level navigations.
    Lax,
    /// Same-site only.
    Strict,
}

/// Settings of an application other than its identity and routing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSettings {
    /// Application session lifetime.
    pub session_duration: GoDuration,
    /// IdPs offered at sign-in; empty = all.
    pub allowed_idps: Vec<IdpId>,
    /// Skip the IdP chooser (requires exactly one allowed IdP).
    pub auto_redirect_to_identity: bool,
    /// `SameSite` of the application cookie; `None` = browser default (Lax).
    pub same_site_cookie_attribute: Option<SameSite>,
    /// `HttpOnly` on the application cookie.
    pub http_only_cookie_attribute: bool,
    /// Scope the cookie to the application's path.
    pub path_cookie_attribute: bool,
    /// Bind the application token to a `CF_Binding` cookie.
    pub enable_binding_cookie: bool,
    /// Answer 401 instead of redirecting when service authentication fails.
    pub service_auth_401_redirect: bool,
    /// Shown on the access-denied page.
    pub custom_deny_message: Option<String>,
}

/// A stored self-hosted application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// Id.
    pub id: AppId,
    /// Display name.
    pub name: String,
    /// Primary `host[/path]`; `*.` wildcards allowed in the host.
    pub domain: String,
    /// Every public `host[/path]` the application answers on (the primary domain first).
    pub destinations: Vec<String>,
    /// Audience tag: 64 hex characters, fixed for the application's life.
    pub aud: String,
    /// Other settings.
    pub settings: AppSettings,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
}

/// One element of `destinations` as clients send it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationInput {
    /// `public` (the only kind served by a self-hosted gateway).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `host[/path]`.
    pub uri: Option<String>,
}

/// An application as clients send it on create and replace. Read-only response fields
/// (`id`, `uid`, `aud`, timestamps) are accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct AppInput {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: Option<String>,
    pub domain: Option<String>,
    pub destinations: Option<Vec<DestinationInput>>,
    pub self_hosted_domains: Option<Vec<String>>,
    pub session_duration: Option<String>,
    pub allowed_idps: Option<Vec<String>>,
    pub auto_redirect_to_identity: Option<bool>,
    pub same_site_cookie_attribute: Option<String>,
    pub http_only_cookie_attribute: Option<bool>,
    pub path_cookie_attribute: Option<bool>,
    pub enable_binding_cookie: Option<bool>,
    pub service_auth_401_redirect: Option<bool>,
    pub custom_deny_message: Option<String>,
    pub app_launcher_visible: Option<bool>,
    pub skip_interstitial: Option<bool>,
    pub logo_url: Option<String>,
    pub tags: Option<Vec<String>>,
    pub policies: Option<Vec<crate::policy::input::PolicyInput>>,
    pub id: Option<serde_json::Value>,
    pub uid: Option<serde_json::Value>,
    pub aud: Option<serde_json::Value>,
    pub created_at: Option<serde_json::Value>,
    pub updated_at: Option<serde_json::Value>,
}

/// A validated application write.
#[derive(Debug, Clone)]
pub struct AppDraft {
    /// Name.
    pub name: String,
    /// Primary domain.
    pub domain: String,
    /// All destinations, primary first, no duplicates.
    pub destinations: Vec<String>,
    /// Settings.
    pub settings: AppSettings,
}

/// Normalises and checks one `host[/path]`: lower-case host, optional `*.` wildcard prefix,
/// optional `:port`, optional path starting with `/` (no query or fragment).
pub fn normalize_destination(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.contains("://") {
        return Err("must be host[/path] without a scheme".into());
    }
    let (host, path) = match raw.find('/') {
        Some(i) => (&raw[..i], &raw[i..]),
        None => (raw, ""),
    };
    let host = host.to_ascii_lowercase();
    let bare = host.strip_prefix("*.").unwrap_or(&host);
    if !crate::org::valid_domain(bare) {
        return Err(format!("{host:?} is not a host name"));
    }
    if path.contains(['?', '#', ' ']) || path.contains("//") {
        return Err("the path must not contain ?, #, spaces or //".into());
    }
    let path = path.trim_end_matches('/');
    Ok(format!("{host}{path}"))
}

impl AppInput {
    /// Validates a create or full replace. `known_idps` are the ids of existing IdPs.
    pub fn validate(&self, known_idps: &[IdpId]) -> Result<AppDraft, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        match self.kind.as_deref() {
            Some("self_hosted") => {}
            None => errs.push("type", "is required (self_hosted)"),
            Some(other) => {
                errs.push("type", format!("'{other}' is not supported; this gateway serves self_hosted applications"))
            }
        }
        let mut destinations: Vec<String> = Vec::new();
        let mut add = |errs: &mut ValidationErrors, path: String, raw: &str| match normalize_destination(raw) {
            Ok(d) if !destinations.contains(&d) => destinations.push(d),
            Ok(_) => {}
            Err(e) => errs.push(path, e),
        };
        if let Some(d) = &self.domain {
            add(&mut errs, "domain".into(), d);
        }
        for (i, d) in self.destinations.iter().flatten().enumerate() {
            match (d.kind.as_deref(), d.uri.as_deref()) {
                (Some("public") | None, Some(uri)) => add(&mut errs, format!("destinations[{i}].uri"), uri),
                (Some("public") | None, None) => errs.push(format!("destinations[{i}].uri"), "is required"),
                (Some(other), _) => errs.push(
                    format!("destinations[{i}].type"),
                    format!("'{other}' destinations are not supported; use public"),
                ),
            }
        }
        for (i, d) in self.self_hosted_domains.iter().flatten().enumerate() {
            add(&mut errs, format!("self_hosted_domains[{i}]"), d);
        }
        if destinations.is_empty() && errs.0.iter().all(|e| e.path != "domain") {
            errs.push("domain", "is required: the host name (and optional path) of the application");
        }
        let name = self
            .name
            .as_deref()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| destinations.first().cloned().unwrap_or_default());
        if name.len() > 350 {
            errs.push("name", "at most 350 characters");
        }
        let session_duration = match self.session_duration.as_deref() {
            None | Some("") => GoDuration::new(std::time::Duration::from_secs(24 * 3600)),
            Some(s) => match s.parse::<GoDuration>() {
                Ok(d) if d.get().as_secs() > 0 && d.get() <= crate::org::MAX_SESSION => d,
                Ok(_) => {
                    errs.push("session_duration", "must be more than 0s and at most 730h");
                    GoDuration::new(std::time::Duration::ZERO)
                }
                Err(e) => {
                    errs.push("session_duration", e.to_string());
                    GoDuration::new(std::time::Duration::ZERO)
                }
            },
        };
        let mut allowed_idps = Vec::new();
        for (i, raw) in self.allowed_idps.iter().flatten().enumerate() {
            match raw.parse::<IdpId>() {
                Ok(id) if known_idps.contains(&id) => {
                    if !allowed_idps.contains(&id) {
                        allowed_idps.push(id);
                    }
                }
                Ok(_) => errs.push(format!("allowed_idps[{i}]"), "no identity provider with this id"),
                Err(_) => errs.push(format!("allowed_idps[{i}]"), "must be an identity provider id (UUID)"),
            }
        }
        let auto_redirect_to_identity = self.auto_redirect_to_identity.unwrap_or(false);
        if auto_redirect_to_identity && allowed_idps.len() != 1 {
            errs.push("auto_redirect_to_identity", "requires exactly one entry in allowed_idps");
        }
        let same_site_cookie_attribute =
            match self.same_site_cookie_attribute.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("") => None,
                Some("none") => Some(SameSite::None),
                Some("lax") => Some(SameSite::Lax),
                Some("strict") => Some(SameSite::Strict),
                Some(_) => {
                    errs.push("same_site_cookie_attribute", "must be none, lax or strict");
                    None
                }
            };
        let settings = AppSettings {
            session_duration,
            allowed_idps,
            auto_redirect_to_identity,
            same_site_cookie_attribute,
            http_only_cookie_attribute: self.http_only_cookie_attribute.unwrap_or(true),
            path_cookie_attribute: self.path_cookie_attribute.unwrap_or(false),
            enable_binding_cookie: self.enable_binding_cookie.unwrap_or(false),
            service_auth_401_redirect: self.service_auth_401_redirect.unwrap_or(false),
            custom_deny_message: self.custom_deny_message.clone().filter(|m| !m.trim().is_empty()),
        };
        let domain = destinations.first().cloned().unwrap_or_default();
        errs.into_result(AppDraft { name, domain, destinations, settings })
    }
}

/// A fresh audience tag: 32 random bytes as 64 hex characters.
pub fn generate_aud() -> Result<String, crate::secret::SecretError> {
    let mut b = [0u8; 32];
    crate::secret::random_fill(&mut b)?;
    Ok(hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: serde_json::Value) -> AppInput {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn destinations_normalise() {
        assert_eq!(normalize_destination("Wiki.Example.com/Docs/"), Ok("wiki.example.com/Docs".into()));
        assert_eq!(normalize_destination("*.apps.example.com"), Ok("*.apps.example.com".into()));
        assert_eq!(normalize_destination("app.localhost:8080"), Ok("app.localhost:8080".into()));
        for bad in ["https://x.example.com", "", "a..b", "x.example.com/a?b", "ex ample.com", "*.", "x.example.com//a"]
        {
            assert!(normalize_destination(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validates_and_defaults() {
        let idp = IdpId::generate();
        let d = input(serde_json::json!({
            "type": "self_hosted", "domain": "wiki.example.com",
            "destinations": [{"type": "public", "uri": "wiki.example.com"}, {"uri": "docs.example.com/x"}],
            "allowed_idps": [idp.to_string()], "auto_redirect_to_identity": true, "same_site_cookie_attribute": "Lax"
        }))
        .validate(&[idp])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.destinations, ["wiki.example.com", "docs.example.com/x"]);
        assert_eq!(d.name, "wiki.example.com");
        assert_eq!(d.settings.session_duration.to_string(), "24h");
        assert!(d.settings.http_only_cookie_attribute);
        assert_eq!(d.settings.same_site_cookie_attribute, Some(SameSite::Lax));

        let e = input(serde_json::json!({"type": "saas", "auto_redirect_to_identity": true, "allowed_idps": ["nope"], "session_duration": "1y"}))
            .validate(&[idp])
            .err()
            .unwrap_or_default();
        let paths: Vec<_> = e.0.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["type", "domain", "session_duration", "allowed_idps[0]", "auto_redirect_to_identity"]);
    }
}
