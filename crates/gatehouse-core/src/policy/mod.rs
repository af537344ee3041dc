//! Access policies with Cloudflare's semantics: rules (`include` any, `require` all,
//! `exclude` none), decisions (`allow`, `deny`, `bypass`, `non_identity`), and their
//! evaluation order. [`rule`] parses Cloudflare's rule JSON; [`eval`] compiles policies into a
//! form that evaluates a request without allocating.

pub mod eval;
pub mod input;
pub mod rule;

use serde::{Deserialize, Serialize};

pub use eval::{CompiledPolicies, Decision, Outcome, RequestFacts};
pub use rule::{Rule, RuleError};

/// What a matching policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyDecision {
    /// Let the user through.
    Allow,
    /// Refuse ("Block").
    Deny,
    /// Skip Access entirely (no identity, no logging of identity).
    Bypass,
    /// Service authentication: let non-identity credentials (service tokens, IPs) through.
    NonIdentity,
}

/// A policy attached to an application, in evaluation form.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Id (reported in decisions and logs).
    pub id: String,
    /// Name.
    pub name: String,
    /// What a match does.
    pub decision: PolicyDecision,
    /// At least one must match.
    pub include: Vec<Rule>,
    /// All must match.
    pub require: Vec<Rule>,
    /// None may match.
    pub exclude: Vec<Rule>,
    /// Order within the application (lower first).
    pub precedence: u32,
}
