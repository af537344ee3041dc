//! Rule selectors in Cloudflare's JSON shape: one key per rule object, e.g.
//! `{"email": {"email": "a@example.com"}}`. Parsing validates values (CIDRs, country codes,
//! ids) so a bad rule is refused when written, naming the rule, never at request time.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;
use uuid::Uuid;

use crate::IdpId;

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Exact e-mail address (case-insensitive).
    Email(String),
    /// E-mail domain (case-insensitive, exact domain).
    EmailDomain(String),
    /// Any address in a list.
    EmailList(Uuid),
    /// Everyone (who authenticated, or every request in a bypass policy).
    Everyone,
    /// Members of an Access group.
    Group(Uuid),
    /// Client address in a CIDR range.
    Ip(IpNet),
    /// Client country (ISO 3166-1 alpha-2, upper case).
    Geo(String),
    /// Signed in through this IdP.
    LoginMethod(IdpId),
    /// Authentication method (RFC 8176 `amr` value).
    AuthMethod(String),
    /// Member (direct or nested) of an Entra group, by object id; optionally from one IdP.
    AzureGroup {
        /// Group object id (lower case).
        id: String,
        /// The IdP the group belongs to, if pinned.
        idp: Option<IdpId>,
    },
    /// An ID-token claim with this value (multi-valued claims match any value).
    Oidc {
        /// Claim name.
        claim_name: String,
        /// Exact value.
        claim_value: String,
        /// The IdP, if pinned.
        idp: Option<IdpId>,
    },
    /// Presented this service token.
    ServiceToken(Uuid),
    /// Presented any valid service token.
    AnyValidServiceToken,
}

/// A rule that cannot be accepted; the message names the selector and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

fn field<'a>(obj: &'a Value, selector: &str, name: &str) -> Result<&'a str, RuleError> {
    obj.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RuleError(format!("'{selector}' needs a non-empty string '{name}'")))
}

fn uuid_field(obj: &Value, selector: &str, name: &str) -> Result<Uuid, RuleError> {
    let s = field(obj, selector, name)?;
    Uuid::parse_str(s).map_err(|_| RuleError(format!("'{selector}.{name}' must be a UUID, not {s:?}")))
}

fn optional_idp(obj: &Value, selector: &str) -> Result<Option<IdpId>, RuleError> {
    match obj.get("identity_provider_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(_) => uuid_field(obj, selector, "identity_provider_id").map(|u| Some(IdpId(u))),
    }
}

/// Selectors Cloudflare has that this gateway does not evaluate.
const UNSUPPORTED: &[&str] = &[
    "ip_list",
    "okta",
    "gsuite",
    "github-organization",
    "saml",
    "auth_context",
    "certificate",
    "common_name",
    "device_posture",
    "external_evaluation",
    "linked_app_token",
    "login_method_group",
];

impl Rule {
    /// Parses one rule object. `geo_enabled` says whether a country source is configured;
    /// without one a `geo` rule could never match and is refused.
    pub fn parse(v: &Value, geo_enabled: bool) -> Result<Self, RuleError> {
        let obj = v
            .as_object()
            .ok_or_else(|| RuleError("a rule must be an object like {\"email\": {\"email\": \"...\"}}".into()))?;
        if obj.len() != 1 {
            return Err(RuleError(format!("a rule must have exactly one selector, found {}", obj.len())));
        }
        let Some((selector, inner)) = obj.iter().next() else {
            return Err(RuleError("empty rule".into()));
        };
        if !inner.is_object() {
            return Err(RuleError(format!("'{selector}' must be an object")));
        }
        let s = selector.as_str();
        Ok(match s {
            "email" => {
                let e = field(inner, s, "email")?.to_ascii_lowercase();
                if !e.contains('@') {
                    return Err(RuleError(format!("'email.email' must be an e-mail address, not {e:?}")));
                }
                Self::Email(e)
            }
            "email_domain" => {
                let d = field(inner, s, "domain")?.trim_start_matches('@').to_ascii_lowercase();
                if !crate::org::valid_domain(&d) {
                    return Err(RuleError(format!("'email_domain.domain' must be a domain, not {d:?}")));
                }
                Self::EmailDomain(d)
            }
            "email_list" => Self::EmailList(uuid_field(inner, s, "id")?),
            "everyone" => Self::Everyone,
            "group" => Self::Group(uuid_field(inner, s, "id")?),
            "ip" => {
                let raw = field(inner, s, "ip")?;
                let net = raw
                    .parse::<IpNet>()
                    .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| RuleError(format!("'ip.ip' must be an IPv4 or IPv6 address or CIDR, not {raw:?}")))?;
                Self::Ip(net.trunc())
            }
            "geo" => {
                if !geo_enabled {
                    return Err(RuleError(
                        "'geo' rules need a country source; none is configured, so the rule could never match".into(),
                    ));
                }
                let c = field(inner, s, "country_code")?.to_ascii_uppercase();
                if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(RuleError(format!("'geo.country_code' must be a two-letter country code, not {c:?}")));
                }
                Self::Geo(c)
            }
            "login_method" => Self::LoginMethod(IdpId(uuid_field(inner, s, "id")?)),
            "auth_method" => Self::AuthMethod(field(inner, s, "auth_method")?.to_ascii_lowercase()),
            "azureAD" => {
                let id = field(inner, s, "id")?.to_ascii_lowercase();
                Self::AzureGroup { id, idp: optional_idp(inner, s)? }
            }
            "oidc" => Self::Oidc {
                claim_name: field(inner, s, "claim_name")?.to_owned(),
                claim_value: field(inner, s, "claim_value")?.to_owned(),
                idp: optional_idp(inner, s)?,
            },
            "service_token" => Self::ServiceToken(uuid_field(inner, s, "token_id")?),
            "any_valid_service_token" => Self::AnyValidServiceToken,
            other if UNSUPPORTED.contains(&other) => {
                return Err(RuleError(format!("the '{other}' selector is not supported by this gateway")));
            }
            other => return Err(RuleError(format!("unknown rule type: '{other}'"))),
        })
    }

    /// Back to Cloudflare's JSON shape.
    pub fn to_json(&self) -> Value {
        use serde_json::json;
        let idp = |i: &Option<IdpId>| i.map(|i| i.to_string());
        match self {
            Self::Email(e) => json!({"email": {"email": e}}),
            Self::EmailDomain(d) => json!({"email_domain": {"domain": d}}),
            Self::EmailList(id) => json!({"email_list": {"id": id}}),
            Self::Everyone => json!({"everyone": {}}),
            Self::Group(id) => json!({"group": {"id": id}}),
            Self::Ip(net) => json!({"ip": {"ip": net.to_string()}}),
            Self::Geo(c) => json!({"geo": {"country_code": c}}),
            Self::LoginMethod(id) => json!({"login_method": {"id": id.to_string()}}),
            Self::AuthMethod(m) => json!({"auth_method": {"auth_method": m}}),
            Self::AzureGroup { id, idp: i } => json!({"azureAD": {"id": id, "identity_provider_id": idp(i)}}),
            Self::Oidc { claim_name, claim_value, idp: i } => {
                json!({"oidc": {"claim_name": claim_name, "claim_value": claim_value, "identity_provider_id": idp(i)}})
            }
            Self::ServiceToken(id) => json!({"service_token": {"token_id": id}}),
            Self::AnyValidServiceToken => json!({"any_valid_service_token": {}}),
        }
    }

    /// Whether the rule looks at the user's identity (and so needs a sign-in).
    pub fn needs_identity(&self) -> bool {
        !matches!(
            self,
            Self::Everyone | Self::Ip(_) | Self::Geo(_) | Self::ServiceToken(_) | Self::AnyValidServiceToken
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn parses_and_round_trips_every_selector() {
        let idp = "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f";
        let rules = [
            json!({"email": {"email": "Ada@Example.com"}}),
            json!({"email_domain": {"domain": "example.com"}}),
            json!({"email_list": {"id": idp}}),
            json!({"everyone": {}}),
            json!({"group": {"id": idp}}),
            json!({"ip": {"ip": "192.0.2.7/24"}}),
            json!({"ip": {"ip": "2001:db8::1"}}),
            json!({"geo": {"country_code": "fr"}}),
            json!({"login_method": {"id": idp}}),
            json!({"auth_method": {"auth_method": "mfa"}}),
            json!({"azureAD": {"id": "0A1B2C3D-0001-4E5F-8A9B-000000000001", "identity_provider_id": idp}}),
            json!({"oidc": {"claim_name": "department", "claim_value": "R&D"}}),
            json!({"service_token": {"token_id": idp}}),
            json!({"any_valid_service_token": {}}),
        ];
        for r in rules {
            let parsed = Rule::parse(&r, true).unwrap_or_else(|e| panic!("{r}: {e}"));
            assert_eq!(Rule::parse(&parsed.to_json(), true), Ok(parsed.clone()), "{r}");
        }
        assert_eq!(
            Rule::parse(&json!({"ip": {"ip": "192.0.2.7/24"}}), true).map(|r| r.to_json()),
            Ok(json!({"ip": {"ip": "192.0.2.0/24"}}))
        );
    }

    #[test]
    fn refuses_bad_rules_with_a_reason() {
        for (r, words) in [
            (json!({"nope": {}}), "unknown rule type: 'nope'"),
            (json!({"okta": {"name": "x"}}), "not supported"),
            (json!({"ip": {"ip": "300.1.1.1"}}), "IPv4 or IPv6"),
            (json!({"email": {"email": "nobody"}}), "e-mail address"),
            (json!({"email": {}}), "non-empty string 'email'"),
            (json!({"group": {"id": "x"}}), "UUID"),
            (json!({"geo": {"country_code": "USA"}}), "two-letter"),
            (json!({"email": {"email": "a@b.c"}, "everyone": {}}), "exactly one selector"),
            (json!("everyone"), "must be an object"),
            (json!({"everyone": true}), "must be an object"),
        ] {
            let e = Rule::parse(&r, true).err().map(|e| e.0).unwrap_or_default();
            assert!(e.contains(words), "{r}: {e}");
        }
        let geo = Rule::parse(&json!({"geo": {"country_code": "US"}}), false).err().map(|e| e.0).unwrap_or_default();
        assert!(geo.contains("country source"), "{geo}");
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(key in "[a-zA-Z_-]{0,20}", name in "[a-z_]{0,12}", value in "\\PC{0,30}") {
            let _ = Rule::parse(&json!({ key: { name: value } }), true);
        }
    }
}
