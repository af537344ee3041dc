//! Micro-benchmark of policy evaluation: an application with 50 policies (a bypass, 48 deny
//! and allow policies on e-mails, domains and groups that do not match, and finally an allow
//! through a nested Access group with an MFA requirement — the worst case, every policy is
//! looked at) and a user in 500 groups. Prints the median and 99th percentile of nanoseconds
//! per decision over 200 batches; run with `cargo bench -p gatehouse-core --bench policy_eval`.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
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
    for i in 0..48u32 {
        let include = match i % 3 {
            0 => rule(json!({"email": {"email": format!("blocked{i}@example.com")}})),
            1 => rule(json!({"email_domain": {"domain": format!("vendor{i}.example")}})),
            _ => rule(json!({"azureAD": {"id": format!("other-group-{i}")}})),
        };
        policies.push(Policy {
            id: format!("policy-{i}"),
            name: format!("policy {i}"),
            decision: if i % 2 == 0 { PolicyDecision::Deny } else { PolicyDecision::Allow },
            include: vec![include],
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
        precedence: 60,
    });
    let compiled = CompiledPolicies::compile(&policies, &groups, &HashMap::new());
    let identity = Identity {
        email: "dave@example.com".into(),
        idp: None,
        groups: (0..500).map(|i| format!("group-{i}")).collect(),
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

    assert_eq!(policies.len(), 50);
    const BATCH: u32 = 10_000;
    for _ in 0..BATCH * 20 {
        black_box(compiled.evaluate(black_box(&facts)));
    }
    let mut per_batch: Vec<f64> = (0..200)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..BATCH {
                black_box(compiled.evaluate(black_box(&facts)));
            }
            start.elapsed().as_nanos() as f64 / f64::from(BATCH)
        })
        .collect();
    per_batch.sort_by(f64::total_cmp);
    println!(
        "policy evaluation (50 policies, nested Access group, 500 user groups): median {:.1} ns/decision, p99 {:.1} ns",
        per_batch[per_batch.len() / 2],
        per_batch[per_batch.len() * 99 / 100]
    );
}
