//! Micro-benchmark of policy evaluation: an application with ten policies, Access groups and
//! a user in 252 groups. Prints nanoseconds per decision; run with
//! `cargo bench -p gatehouse-core --bench policy_eval`.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::time::Instant;

use gatehouse_core::policy::eval::{GroupRules, Identity};
use gatehouse_core::policy::{CompiledPolicies, Policy, PolicyDecision, RequestFacts, Rule};
use serde_json::json;
use uuid::Uuid;

fn rule(v: serde_json::Value) -> Rule {
    Rule::parse(&v, true).unwrap()
}

fn main() {
    let group = Uuid::new_v4();
    let groups = HashMap::from([(
        group,
        GroupRules {
            include: vec![
                rule(json!({"azureAD": {"id": "group-200"}})),
                rule(json!({"email_domain": {"domain": "partner.example"}})),
            ],
            require: vec![],
            exclude: vec![rule(json!({"email": {"email": "mallory@example.com"}}))],
        },
    )]);
    let mut policies = vec![Policy {
        id: "office-bypass".into(),
        name: "office".into(),
        decision: PolicyDecision::Bypass,
        include: vec![rule(json!({"ip": {"ip": "192.0.2.0/24"}}))],
        require: vec![],
        exclude: vec![],
        precedence: 1,
    }];
    for i in 0..8u32 {
        policies.push(Policy {
            id: format!("deny-{i}"),
            name: format!("deny {i}"),
            decision: PolicyDecision::Deny,
            include: vec![rule(json!({"email": {"email": format!("blocked{i}@example.com")}}))],
            require: vec![],
            exclude: vec![],
            precedence: 2 + i,
        });
    }
    policies.push(Policy {
        id: "engineers".into(),
        name: "engineers".into(),
        decision: PolicyDecision::Allow,
        include: vec![rule(json!({"group": {"id": group}}))],
        require: vec![rule(json!({"auth_method": {"auth_method": "mfa"}}))],
        exclude: vec![],
        precedence: 20,
    });
    let compiled = CompiledPolicies::compile(&policies, &groups, &HashMap::new());
    let identity = Identity {
        email: "dave@example.com".into(),
        idp: None,
        groups: (0..252).map(|i| format!("group-{i}")).collect::<HashSet<_>>(),
        amr: vec!["pwd".into(), "mfa".into()],
        claims: Default::default(),
    };
    let facts = RequestFacts {
        identity: Some(&identity),
        ip: "198.51.100.7".parse().unwrap(),
        country: None,
        service_token: None,
    };
    assert_eq!(compiled.evaluate(&facts).policy, Some("engineers"));

    let rounds = 2_000_000u32;
    for _ in 0..rounds / 10 {
        black_box(compiled.evaluate(black_box(&facts)));
    }
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(compiled.evaluate(black_box(&facts)));
    }
    let per = start.elapsed().as_nanos() as f64 / f64::from(rounds);
    println!("policy evaluation (10 policies, nested Access group, 252 user groups): {per:.1} ns/decision");
}
