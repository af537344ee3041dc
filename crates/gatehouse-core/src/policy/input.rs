//! Policies and Access groups as clients write them (Cloudflare's JSON), validated into the
//! stored form. Rules are checked one by one so an error names the rule (`include[2]`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{PolicyDecision, Rule};
use crate::{GoDuration, UnixMillis, ValidationErrors};

/// A stored policy (reusable, or owned by one application).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPolicy {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Decision.
    pub decision: PolicyDecision,
    /// Rules.
    pub rules: RuleSet,
    /// Session lifetime for users admitted by this policy.
    pub session_duration: Option<GoDuration>,
    /// Reusable (account-level) rather than owned by one application.
    pub reusable: bool,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
}

/// A stored Access group.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredGroup {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Rules.
    pub rules: RuleSet,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
}

/// `include`, `require` and `exclude`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    /// Any must match.
    pub include: Vec<Rule>,
    /// All must match.
    pub require: Vec<Rule>,
    /// None may match.
    pub exclude: Vec<Rule>,
}

impl RuleSet {
    /// The rules as stored and rendered: `{"include": [...], "require": [...], "exclude": [...]}`.
    pub fn to_json(&self) -> Value {
        let list = |rules: &[Rule]| Value::Array(rules.iter().map(Rule::to_json).collect());
        serde_json::json!({"include": list(&self.include), "require": list(&self.require), "exclude": list(&self.exclude)})
    }

    /// Reads the stored form back (rules were validated when written).
    pub fn from_json(v: &Value) -> Result<Self, super::RuleError> {
        let list = |key: &str| -> Result<Vec<Rule>, super::RuleError> {
            v.get(key).and_then(Value::as_array).into_iter().flatten().map(|r| Rule::parse(r, true)).collect()
        };
        Ok(Self { include: list("include")?, require: list("require")?, exclude: list("exclude")? })
    }

    /// Every Access group id referenced.
    pub fn group_refs(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.include.iter().chain(&self.require).chain(&self.exclude).filter_map(|r| match r {
            Rule::Group(id) => Some(*id),
            _ => None,
        })
    }
}

/// A policy as clients send it (also the element of an application's `policies`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct PolicyInput {
    pub id: Option<String>,
    pub name: Option<String>,
    pub decision: Option<String>,
    pub include: Option<Vec<Value>>,
    pub require: Option<Vec<Value>>,
    pub exclude: Option<Vec<Value>>,
    pub session_duration: Option<String>,
    pub precedence: Option<i64>,
    pub approval_required: Option<bool>,
    pub purpose_justification_required: Option<bool>,
    pub isolation_required: Option<bool>,
    pub approval_groups: Option<Vec<Value>>,
    pub purpose_justification_prompt: Option<String>,
    pub app_count: Option<Value>,
    pub reusable: Option<Value>,
    pub uid: Option<Value>,
    pub created_at: Option<Value>,
    pub updated_at: Option<Value>,
}

/// An Access group as clients send it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct GroupInput {
    pub name: Option<String>,
    pub include: Option<Vec<Value>>,
    pub require: Option<Vec<Value>>,
    pub exclude: Option<Vec<Value>>,
    pub is_default: Option<Value>,
    pub id: Option<Value>,
    pub uid: Option<Value>,
    pub created_at: Option<Value>,
    pub updated_at: Option<Value>,
}

/// A validated policy write.
#[derive(Debug, Clone)]
pub struct PolicyDraft {
    /// Name.
    pub name: String,
    /// Decision.
    pub decision: PolicyDecision,
    /// Rules.
    pub rules: RuleSet,
    /// Session lifetime.
    pub session_duration: Option<GoDuration>,
}

/// What rule parsing needs to know about the installation.
#[derive(Debug, Clone, Copy)]
pub struct RuleContext<'a> {
    /// A country source is configured (else `geo` rules are refused).
    pub geo_enabled: bool,
    /// Ids of existing Access groups (references to others are refused).
    pub groups: &'a [Uuid],
}

fn parse_rules(errs: &mut ValidationErrors, key: &str, raw: Option<&[Value]>, ctx: RuleContext<'_>) -> Vec<Rule> {
    let mut out = Vec::new();
    for (i, v) in raw.unwrap_or_default().iter().enumerate() {
        match Rule::parse(v, ctx.geo_enabled) {
            Ok(Rule::Group(id)) if !ctx.groups.contains(&id) => {
                errs.push(
                    format!("{key}[{i}]"),
                    format!("invalid '{key}' configuration: no Access group with id {id}"),
                );
            }
            Ok(r) => out.push(r),
            Err(e) => errs.push(format!("{key}[{i}]"), format!("invalid '{key}' configuration: {e}")),
        }
    }
    out
}

fn rule_set(
    errs: &mut ValidationErrors,
    include: Option<&[Value]>,
    require: Option<&[Value]>,
    exclude: Option<&[Value]>,
    ctx: RuleContext<'_>,
) -> RuleSet {
    if include.is_none_or(<[Value]>::is_empty) {
        errs.push("include", "at least one include rule is required");
    }
    RuleSet {
        include: parse_rules(errs, "include", include, ctx),
        require: parse_rules(errs, "require", require, ctx),
        exclude: parse_rules(errs, "exclude", exclude, ctx),
    }
}

fn name(errs: &mut ValidationErrors, name: Option<&str>) -> String {
    match name.map(str::trim) {
        Some(n) if !n.is_empty() && n.len() <= 350 => n.to_owned(),
        _ => {
            errs.push("name", "is required (1 to 350 characters)");
            String::new()
        }
    }
}

impl PolicyInput {
    /// Whether this element only links an existing reusable policy (`{"id", "precedence"}`).
    pub fn is_link(&self) -> bool {
        self.id.is_some() && self.name.is_none() && self.decision.is_none() && self.include.is_none()
    }

    /// Validates the policy's own fields.
    pub fn validate(&self, ctx: RuleContext<'_>) -> Result<PolicyDraft, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = name(&mut errs, self.name.as_deref());
        let decision = match self.decision.as_deref() {
            Some("allow") => PolicyDecision::Allow,
            Some("deny") => PolicyDecision::Deny,
            Some("bypass") => PolicyDecision::Bypass,
            Some("non_identity") => PolicyDecision::NonIdentity,
            None => {
                errs.push("decision", "is required: allow, deny, bypass or non_identity");
                PolicyDecision::Deny
            }
            Some(other) => {
                errs.push("decision", format!("'{other}' is not one of allow, deny, bypass, non_identity"));
                PolicyDecision::Deny
            }
        };
        let rules = rule_set(&mut errs, self.include.as_deref(), self.require.as_deref(), self.exclude.as_deref(), ctx);
        if matches!(decision, PolicyDecision::Bypass | PolicyDecision::NonIdentity) {
            let all = rules.include.iter().chain(&rules.require).chain(&rules.exclude);
            if all.into_iter().any(Rule::needs_identity) {
                errs.push(
                    "decision",
                    "bypass and non_identity policies cannot use identity rules (use ip, geo, everyone or service tokens)",
                );
            }
        }
        for (flag, on) in [
            ("approval_required", self.approval_required),
            ("purpose_justification_required", self.purpose_justification_required),
            ("isolation_required", self.isolation_required),
        ] {
            if on == Some(true) {
                errs.push(flag, "is not supported by this gateway");
            }
        }
        let session_duration = match self.session_duration.as_deref() {
            None | Some("") => None,
            Some(s) => match s.parse::<GoDuration>() {
                Ok(d) if d.get() <= crate::org::MAX_SESSION => Some(d),
                Ok(_) => {
                    errs.push("session_duration", "at most 730h");
                    None
                }
                Err(e) => {
                    errs.push("session_duration", e.to_string());
                    None
                }
            },
        };
        errs.into_result(PolicyDraft { name, decision, rules, session_duration })
    }
}

impl GroupInput {
    /// Validates an Access group.
    pub fn validate(&self, ctx: RuleContext<'_>) -> Result<(String, RuleSet), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = name(&mut errs, self.name.as_deref());
        let rules = rule_set(&mut errs, self.include.as_deref(), self.require.as_deref(), self.exclude.as_deref(), ctx);
        errs.into_result((name, rules))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: Value) -> PolicyInput {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    const CTX: RuleContext<'static> = RuleContext { geo_enabled: false, groups: &[] };

    #[test]
    fn policy_validation_names_rules() {
        let d = input(json!({"name": "Engineers", "decision": "allow", "include": [{"azureAD": {"id": "G"}}], "session_duration": "8h"}))
            .validate(CTX)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.rules.to_json()["include"][0], json!({"azureAD": {"id": "g", "identity_provider_id": null}}));
        let e = input(json!({"name": "x", "decision": "allow", "include": [{"everyone": {}}, {"nope": {}}],
                             "exclude": [{"group": {"id": "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f"}}]}))
        .validate(CTX)
        .err()
        .unwrap_or_default();
        let paths: Vec<_> = e.0.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["include[1]", "exclude[0]"]);
        assert!(e.0[0].message.contains("unknown rule type: 'nope'"));
        let e = input(json!({"name": "b", "decision": "bypass", "include": [{"email": {"email": "a@b.c"}}]}))
            .validate(CTX)
            .err()
            .unwrap_or_default();
        assert!(e.to_string().contains("cannot use identity rules"));
        let e = input(json!({"decision": "maybe", "include": []})).validate(CTX).err().unwrap_or_default();
        let paths: Vec<_> = e.0.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["name", "decision", "include"]);
        assert!(input(json!({"id": "x", "precedence": 1})).is_link());
    }
}
