//! Policy evaluation. [`CompiledPolicies::compile`] resolves Access groups and lists once, when
//! the application's snapshot is built; [`CompiledPolicies::evaluate`] then decides a request
//! with lookups only — no allocation, no I/O.
//!
//! Order (Cloudflare's): `bypass` and `non_identity` policies first, by precedence; then
//! `allow` and `deny` by precedence, first match wins; nothing matched is a deny. A policy
//! matches when at least one `include` rule, every `require` rule and no `exclude` rule
//! matches. A rule that cannot be resolved (a deleted group or list) never matches: fail closed.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Policy, PolicyDecision, Rule};
use crate::IdpId;

/// Groups nested deeper than this are treated as never matching (and cycles are cut).
const MAX_GROUP_DEPTH: usize = 8;

/// A set of group ids, hashed with foldhash (seeded per process): looked up on every request
/// a group rule decides, and a few times cheaper than SipHash on a 36-character id.
pub type GroupSet = HashSet<String, foldhash::fast::RandomState>;

/// Who the request is, as far as policies care. Group ids and e-mail are lower case.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// E-mail (lower case).
    pub email: String,
    /// The IdP the user signed in with.
    pub idp: Option<IdpId>,
    /// Group object ids, including groups reached through nesting (lower case).
    pub groups: GroupSet,
    /// Authentication methods (`amr`).
    pub amr: Vec<String>,
    /// Custom ID-token claims (`oidc_fields`).
    pub claims: Map<String, Value>,
}

/// Everything a decision may look at.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The signed-in user, if any.
    pub identity: Option<&'a Identity>,
    /// The client address.
    pub ip: IpAddr,
    /// The client's country, when a country source is configured.
    pub country: Option<&'a str>,
    /// The id of a valid service token the request presented.
    pub service_token: Option<Uuid>,
}

/// The decision kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let through without identity (bypass).
    Bypass,
    /// Let through on service authentication (non_identity policy).
    ServiceAuth,
    /// Let the user through.
    Allow,
    /// Refuse.
    Deny,
    /// No identity yet and identity policies exist: sign in first.
    NeedLogin,
}

/// A decision and the policy that made it (none for the default deny and for "sign in").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome<'a> {
    /// What to do.
    pub decision: Decision,
    /// Id of the deciding policy.
    pub policy: Option<&'a str>,
}

#[derive(Debug, Clone)]
enum CRule {
    Email(Box<str>),
    EmailDomain(Box<str>),
    EmailSet(usize),
    Everyone,
    Group(usize),
    Ip(IpNet),
    Geo(Box<str>),
    LoginMethod(IdpId),
    AuthMethod(Box<str>),
    AzureGroup(Box<str>, Option<IdpId>),
    Oidc(Box<str>, Box<str>, Option<IdpId>),
    ServiceToken(Uuid),
    AnyServiceToken,
    Never,
}

#[derive(Debug, Clone, Default)]
struct CRules {
    include: Vec<CRule>,
    require: Vec<CRule>,
    exclude: Vec<CRule>,
}

#[derive(Debug, Clone)]
struct CPolicy {
    id: Box<str>,
    decision: PolicyDecision,
    rules: CRules,
}

/// An Access group's rules, as stored.
#[derive(Debug, Clone, Default)]
pub struct GroupRules {
    /// Any must match.
    pub include: Vec<Rule>,
    /// All must match.
    pub require: Vec<Rule>,
    /// None may match.
    pub exclude: Vec<Rule>,
}

/// The policies of one application, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub struct CompiledPolicies {
    first: Vec<CPolicy>,
    ordered: Vec<CPolicy>,
    groups: Vec<CRules>,
    email_sets: Vec<HashSet<Box<str>>>,
}

struct Compiler<'a> {
    groups_src: &'a HashMap<Uuid, GroupRules>,
    lists_src: &'a HashMap<Uuid, Vec<String>>,
    groups: Vec<CRules>,
    group_index: HashMap<Uuid, usize>,
    email_sets: Vec<HashSet<Box<str>>>,
    list_index: HashMap<Uuid, usize>,
}

impl Compiler<'_> {
    fn rules(&mut self, include: &[Rule], require: &[Rule], exclude: &[Rule], stack: &mut Vec<Uuid>) -> CRules {
        CRules {
            include: include.iter().map(|r| self.rule(r, stack)).collect(),
            require: require.iter().map(|r| self.rule(r, stack)).collect(),
            exclude: exclude.iter().map(|r| self.rule(r, stack)).collect(),
        }
    }

    fn rule(&mut self, r: &Rule, stack: &mut Vec<Uuid>) -> CRule {
        match r {
            Rule::Email(e) => CRule::Email(e.to_ascii_lowercase().into()),
            Rule::EmailDomain(d) => CRule::EmailDomain(d.to_ascii_lowercase().into()),
            Rule::EmailList(id) => {
                if let Some(i) = self.list_index.get(id) {
                    return CRule::EmailSet(*i);
                }
                let Some(list) = self.lists_src.get(id) else { return CRule::Never };
                self.email_sets.push(list.iter().map(|e| e.to_ascii_lowercase().into_boxed_str()).collect());
                self.list_index.insert(*id, self.email_sets.len() - 1);
                CRule::EmailSet(self.email_sets.len() - 1)
            }
            Rule::Everyone => CRule::Everyone,
            Rule::Group(id) => {
                if let Some(i) = self.group_index.get(id) {
                    return CRule::Group(*i);
                }
                let Some(src) = self.groups_src.get(id) else { return CRule::Never };
                if stack.contains(id) || stack.len() >= MAX_GROUP_DEPTH {
                    return CRule::Never;
                }
                stack.push(*id);
                let compiled = self.rules(&src.include, &src.require, &src.exclude, stack);
                stack.pop();
                self.groups.push(compiled);
                self.group_index.insert(*id, self.groups.len() - 1);
                CRule::Group(self.groups.len() - 1)
            }
            Rule::Ip(net) => CRule::Ip(*net),
            Rule::Geo(c) => CRule::Geo(c.to_ascii_uppercase().into()),
            Rule::LoginMethod(id) => CRule::LoginMethod(*id),
            Rule::AuthMethod(m) => CRule::AuthMethod(m.to_ascii_lowercase().into()),
            Rule::AzureGroup { id, idp } => CRule::AzureGroup(id.to_ascii_lowercase().into(), *idp),
            Rule::Oidc { claim_name, claim_value, idp } => {
                CRule::Oidc(claim_name.as_str().into(), claim_value.as_str().into(), *idp)
            }
            Rule::ServiceToken(id) => CRule::ServiceToken(*id),
            Rule::AnyValidServiceToken => CRule::AnyServiceToken,
        }
    }
}

impl CompiledPolicies {
    /// Compiles an application's policies with the Access groups and e-mail lists they may
    /// reference. Missing groups or lists compile to rules that never match.
    pub fn compile(
        policies: &[Policy],
        groups: &HashMap<Uuid, GroupRules>,
        lists: &HashMap<Uuid, Vec<String>>,
    ) -> Self {
        let mut c = Compiler {
            groups_src: groups,
            lists_src: lists,
            groups: Vec::new(),
            group_index: HashMap::new(),
            email_sets: Vec::new(),
            list_index: HashMap::new(),
        };
        let mut sorted: Vec<&Policy> = policies.iter().collect();
        sorted.sort_by_key(|p| p.precedence);
        let (mut first, mut ordered) = (Vec::new(), Vec::new());
        for p in sorted {
            let compiled = CPolicy {
                id: p.id.as_str().into(),
                decision: p.decision,
                rules: c.rules(&p.include, &p.require, &p.exclude, &mut Vec::new()),
            };
            match p.decision {
                PolicyDecision::Bypass | PolicyDecision::NonIdentity => first.push(compiled),
                PolicyDecision::Allow | PolicyDecision::Deny => ordered.push(compiled),
            }
        }
        Self { first, ordered, groups: c.groups, email_sets: c.email_sets }
    }

    /// Whether any allow/deny policy exists (so an anonymous request should sign in).
    pub fn has_identity_policies(&self) -> bool {
        !self.ordered.is_empty()
    }

    /// Decides a request.
    pub fn evaluate<'s>(&'s self, facts: &RequestFacts<'_>) -> Outcome<'s> {
        // Bypass and service-auth policies never look at identity.
        let anonymous = RequestFacts { identity: None, ..*facts };
        for p in &self.first {
            if self.matches(&p.rules, &anonymous, 0) {
                let decision =
                    if p.decision == PolicyDecision::Bypass { Decision::Bypass } else { Decision::ServiceAuth };
                return Outcome { decision, policy: Some(&p.id) };
            }
        }
        if facts.identity.is_none() {
            let decision = if self.ordered.is_empty() { Decision::Deny } else { Decision::NeedLogin };
            return Outcome { decision, policy: None };
        }
        for p in &self.ordered {
            if self.matches(&p.rules, facts, 0) {
                let decision = if p.decision == PolicyDecision::Allow { Decision::Allow } else { Decision::Deny };
                return Outcome { decision, policy: Some(&p.id) };
            }
        }
        Outcome { decision: Decision::Deny, policy: None }
    }

    fn matches(&self, rules: &CRules, f: &RequestFacts<'_>, depth: usize) -> bool {
        !rules.include.is_empty()
            && rules.include.iter().any(|r| self.rule(r, f, depth))
            && rules.require.iter().all(|r| self.rule(r, f, depth))
            && !rules.exclude.iter().any(|r| self.rule(r, f, depth))
    }

    fn rule(&self, r: &CRule, f: &RequestFacts<'_>, depth: usize) -> bool {
        let id = f.identity;
        let idp_ok = |pinned: &Option<IdpId>| pinned.is_none_or(|p| id.and_then(|i| i.idp) == Some(p));
        match r {
            CRule::Everyone => true,
            CRule::Never => false,
            CRule::Ip(net) => net.contains(&f.ip),
            CRule::Geo(c) => f.country.is_some_and(|fc| fc.eq_ignore_ascii_case(c)),
            CRule::ServiceToken(t) => f.service_token == Some(*t),
            CRule::AnyServiceToken => f.service_token.is_some(),
            CRule::Group(i) => {
                depth < MAX_GROUP_DEPTH && self.groups.get(*i).is_some_and(|g| self.matches(g, f, depth + 1))
            }
            CRule::Email(e) => id.is_some_and(|i| i.email == **e),
            CRule::EmailDomain(d) => {
                id.is_some_and(|i| i.email.rsplit_once('@').is_some_and(|(_, domain)| domain == &**d))
            }
            CRule::EmailSet(s) => {
                id.is_some_and(|i| self.email_sets.get(*s).is_some_and(|set| set.contains(i.email.as_str())))
            }
            CRule::LoginMethod(p) => id.is_some_and(|i| i.idp == Some(*p)),
            CRule::AuthMethod(m) => id.is_some_and(|i| i.amr.iter().any(|a| a.eq_ignore_ascii_case(m))),
            CRule::AzureGroup(g, pinned) => id.is_some_and(|i| i.groups.contains(&**g)) && idp_ok(pinned),
            CRule::Oidc(name, value, pinned) => {
                id.is_some_and(|i| match i.claims.get(&**name) {
                    Some(Value::String(s)) => s == &**value,
                    Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(value)),
                    Some(Value::Bool(b)) => value.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
                    Some(Value::Number(n)) => n.to_string() == **value,
                    _ => false,
                }) && idp_ok(pinned)
            }
        }
    }
}
