//! The organisation: the installation's single Zero Trust organisation (team name, auth
//! domain, global session duration), as Cloudflare's `access/organizations` models it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{GoDuration, UnixMillis, ValidationErrors};

/// Shortest and longest global session Cloudflare allows (15 minutes to one month).
pub const MIN_SESSION: Duration = Duration::from_secs(15 * 60);
/// See [`MIN_SESSION`].
pub const MAX_SESSION: Duration = Duration::from_secs(730 * 3600);

/// The stored organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Team name shown on login pages.
    pub name: String,
    /// Explicit team domain (`host[:port]`); `None` means "derived from `public_url`".
    pub auth_domain: Option<String>,
    /// Global (team-domain) session lifetime.
    pub session_duration: GoDuration,
    /// Skip the IdP chooser when only one IdP is offered.
    pub auto_redirect_to_identity: bool,
    /// Whether the dashboard is read-only (changes through the API only).
    pub is_ui_read_only: bool,
    /// Seats of users inactive this long are freed; `None` disables expiry.
    pub user_seat_expiration_inactive_time: Option<GoDuration>,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
}

impl Organization {
    /// The organisation a new installation starts with.
    pub fn initial(now: UnixMillis) -> Self {
        Self {
            name: "Gatehouse".to_owned(),
            auth_domain: None,
            session_duration: GoDuration::new(Duration::from_secs(24 * 3600)),
            auto_redirect_to_identity: false,
            is_ui_read_only: false,
            user_seat_expiration_inactive_time: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The writable fields of an organisation, as the API accepts them. Absent fields keep their
/// current value; read-only fields are accepted and ignored so a GET body can be PUT back.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationInput {
    /// See [`Organization::name`].
    pub name: Option<String>,
    /// See [`Organization::auth_domain`].
    pub auth_domain: Option<String>,
    /// See [`Organization::session_duration`].
    pub session_duration: Option<String>,
    /// See [`Organization::auto_redirect_to_identity`].
    pub auto_redirect_to_identity: Option<bool>,
    /// See [`Organization::is_ui_read_only`].
    pub is_ui_read_only: Option<bool>,
    /// See [`Organization::user_seat_expiration_inactive_time`].
    pub user_seat_expiration_inactive_time: Option<String>,
    /// Accepted for compatibility; no effect.
    pub ui_read_only_toggle_reason: Option<String>,
    /// Read-only.
    pub created_at: Option<serde_json::Value>,
    /// Read-only.
    pub updated_at: Option<serde_json::Value>,
}

/// Whether `s` is a plausible `host[:port]` for a team domain.
pub fn valid_domain(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    let labels_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    port_ok && labels_ok
}

impl OrganizationInput {
    /// Applies this input to `org`, validating every field.
    pub fn apply(self, mut org: Organization, now: UnixMillis) -> Result<Organization, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        if let Some(name) = self.name {
            let name = name.trim();
            if name.is_empty() || name.len() > 200 {
                errs.push("name", "must be 1 to 200 characters");
            } else {
                org.name = name.to_owned();
            }
        }
        if let Some(domain) = self.auth_domain {
            let domain = domain.trim().to_ascii_lowercase();
            if domain.is_empty() {
                org.auth_domain = None;
            } else if valid_domain(&domain) {
                org.auth_domain = Some(domain);
            } else {
                errs.push("auth_domain", "must be a host name, optionally with :port (e.g. auth.example.com)");
            }
        }
        if let Some(d) = self.session_duration {
            match d.parse::<GoDuration>() {
                Ok(g) if (MIN_SESSION..=MAX_SESSION).contains(&g.get()) => org.session_duration = g,
                Ok(_) => errs.push("session_duration", "must be between 15m and 730h"),
                Err(e) => errs.push("session_duration", e.to_string()),
            }
        }
        if let Some(b) = self.auto_redirect_to_identity {
            org.auto_redirect_to_identity = b;
        }
        if let Some(b) = self.is_ui_read_only {
            org.is_ui_read_only = b;
        }
        if let Some(d) = self.user_seat_expiration_inactive_time {
            if d.is_empty() {
                org.user_seat_expiration_inactive_time = None;
            } else {
                match d.parse::<GoDuration>() {
                    Ok(g) if g.get() >= Duration::from_secs(730 * 3600) => {
                        org.user_seat_expiration_inactive_time = Some(g);
                    }
                    Ok(_) => errs.push("user_seat_expiration_inactive_time", "must be at least 730h"),
                    Err(e) => errs.push("user_seat_expiration_inactive_time", e.to_string()),
                }
            }
        }
        org.updated_at = now;
        errs.into_result(org)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_and_validates() {
        let org = Organization::initial(1);
        let input = OrganizationInput {
            name: Some("Acme".into()),
            auth_domain: Some("Auth.Example.com:8443".into()),
            session_duration: Some("12h".into()),
            ..Default::default()
        };
        let org = input.apply(org, 2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(org.name, "Acme");
        assert_eq!(org.auth_domain.as_deref(), Some("auth.example.com:8443"));
        assert_eq!(org.session_duration.to_string(), "12h");

        let bad = OrganizationInput {
            auth_domain: Some("https://x".into()),
            session_duration: Some("1m".into()),
            ..Default::default()
        };
        let errs = bad.apply(org, 3).err().unwrap_or_default();
        let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["auth_domain", "session_duration"]);
    }
}
