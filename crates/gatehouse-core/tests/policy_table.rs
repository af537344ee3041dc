//! Policy semantics, table-driven: ordering, include/require/exclude, every selector, Access
//! groups (nested, cyclic, missing), nested Entra groups through the identity, service tokens
//! and bypass. Each row: policies, the request, the expected decision and deciding policy.

use std::collections::HashMap;
use std::net::IpAddr;

use gatehouse_core::IdpId;
use gatehouse_core::policy::eval::{GroupRules, Identity};
use gatehouse_core::policy::{CompiledPolicies, Decision, Policy, PolicyDecision, RequestFacts, Rule};
use serde_json::{Value, json};
use uuid::Uuid;

const IDP_A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const IDP_B: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const ENG: &str = "0a1b2c3d-0001-4e5f-8a9b-000000000001";
const PLATFORM: &str = "0a1b2c3d-0002-4e5f-8a9b-000000000002";
const SALES: &str = "0a1b2c3d-0003-4e5f-8a9b-000000000003";
const G_ENG: &str = "11111111-0000-4000-8000-000000000001";
const G_NESTED: &str = "11111111-0000-4000-8000-000000000002";
const G_CYCLE1: &str = "11111111-0000-4000-8000-000000000003";
const G_CYCLE2: &str = "11111111-0000-4000-8000-000000000004";
const G_TOKENS: &str = "11111111-0000-4000-8000-000000000005";
const G_MISSING: &str = "11111111-0000-4000-8000-0000000000ff";
const L_ADA: &str = "22222222-0000-4000-8000-000000000001";
const L_MISSING: &str = "22222222-0000-4000-8000-0000000000ff";
const T1: &str = "33333333-0000-4000-8000-000000000001";
const T2: &str = "33333333-0000-4000-8000-000000000002";
const OFFICE: &str = "192.0.2.10";
const HOME: &str = "198.51.100.5";
const OFFICE6: &str = "2001:db8::5";

fn rules(v: &Value) -> Vec<Rule> {
    v.as_array().into_iter().flatten().map(|r| Rule::parse(r, true).unwrap_or_else(|e| panic!("{r}: {e}"))).collect()
}

/// `(id, decision, precedence, include, require, exclude)`.
fn pol(id: &str, decision: PolicyDecision, precedence: u32, include: Value, require: Value, exclude: Value) -> Policy {
    Policy {
        id: id.to_owned(),
        name: id.to_owned(),
        decision,
        include: rules(&include),
        require: rules(&require),
        exclude: rules(&exclude),
        precedence,
    }
}

fn allow(id: &str, p: u32, include: Value) -> Policy {
    pol(id, PolicyDecision::Allow, p, include, json!([]), json!([]))
}

fn deny(id: &str, p: u32, include: Value) -> Policy {
    pol(id, PolicyDecision::Deny, p, include, json!([]), json!([]))
}

fn group_rules(include: Value, exclude: Value) -> GroupRules {
    GroupRules { include: rules(&include), require: Vec::new(), exclude: rules(&exclude) }
}

fn groups() -> HashMap<Uuid, GroupRules> {
    let u = |s: &str| Uuid::parse_str(s).unwrap_or_else(|e| panic!("{e}"));
    HashMap::from([
        (u(G_ENG), group_rules(json!([{"azureAD": {"id": ENG}}]), json!([]))),
        (
            u(G_NESTED),
            group_rules(
                json!([{"group": {"id": G_ENG}}, {"email": {"email": "bob@contoso.com"}}]),
                json!([{"email": {"email": "bob@contoso.com"}}]),
            ),
        ),
        (u(G_CYCLE1), group_rules(json!([{"group": {"id": G_CYCLE2}}]), json!([]))),
        (u(G_CYCLE2), group_rules(json!([{"group": {"id": G_CYCLE1}}]), json!([]))),
        (u(G_TOKENS), group_rules(json!([{"service_token": {"token_id": T1}}]), json!([]))),
    ])
}

fn lists() -> HashMap<Uuid, Vec<String>> {
    HashMap::from([(Uuid::parse_str(L_ADA).unwrap_or_default(), vec!["Ada@Example.com".to_owned()])])
}

fn idp(s: &str) -> IdpId {
    s.parse().unwrap_or_else(|e| panic!("{e:?}"))
}

fn ada() -> Identity {
    Identity {
        email: "ada@example.com".into(),
        idp: Some(idp(IDP_A)),
        // Ada is directly in Platform; Platform is nested in Engineering.
        groups: [PLATFORM.to_owned(), ENG.to_owned()].into_iter().collect(),
        amr: vec!["pwd".into(), "mfa".into()],
        claims: json!({"department": "R&D", "roles": ["admin", "dev"], "level": 3, "contractor": false})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

fn bob() -> Identity {
    Identity {
        email: "bob@contoso.com".into(),
        idp: Some(idp(IDP_B)),
        groups: [SALES.to_owned()].into_iter().collect(),
        amr: vec!["pwd".into()],
        claims: Default::default(),
    }
}

fn carol() -> Identity {
    Identity { email: "carol@example.com".into(), idp: Some(idp(IDP_A)), ..Identity::default() }
}

/// Who, from where, in which country, with which service token.
struct Req {
    who: Option<Identity>,
    ip: &'static str,
    country: Option<&'static str>,
    token: Option<&'static str>,
}

fn req(who: Option<Identity>) -> Req {
    Req { who, ip: HOME, country: None, token: None }
}

fn from(mut r: Req, ip: &'static str) -> Req {
    r.ip = ip;
    r
}

fn country(mut r: Req, c: &'static str) -> Req {
    r.country = Some(c);
    r
}

fn token(mut r: Req, t: &'static str) -> Req {
    r.token = Some(t);
    r
}

fn check(name: &str, policies: Vec<Policy>, r: Req, want: Decision, want_policy: Option<&str>) {
    let compiled = CompiledPolicies::compile(&policies, &groups(), &lists());
    let facts = RequestFacts {
        identity: r.who.as_ref(),
        ip: r.ip.parse::<IpAddr>().unwrap_or_else(|e| panic!("{e}")),
        country: r.country,
        service_token: r.token.map(|t| Uuid::parse_str(t).unwrap_or_default()),
    };
    let got = compiled.evaluate(&facts);
    assert_eq!((got.decision, got.policy), (want, want_policy), "case: {name}");
}

#[test]
fn policy_semantics_table() {
    use Decision::*;
    use PolicyDecision as P;
    let everyone = || json!([{"everyone": {}}]);
    let email = |e: &str| json!([{"email": {"email": e}}]);
    let az = |g: &str| json!([{"azureAD": {"id": g}}]);
    let oidc = |n: &str, v: &str| json!([{"oidc": {"claim_name": n, "claim_value": v}}]);
    let office = || json!([{"ip": {"ip": "192.0.2.0/24"}}]);
    let group = |g: &str| json!([{"group": {"id": g}}]);

    let mut n = 0;
    let mut case = |name: &str, policies: Vec<Policy>, r: Req, want: Decision, policy: Option<&str>| {
        n += 1;
        check(name, policies, r, want, policy);
    };

    // Defaults.
    case("no policies, signed in", vec![], req(Some(ada())), Deny, None);
    case("no policies, anonymous", vec![], req(None), Deny, None);
    case("allow everyone", vec![allow("p1", 1, everyone())], req(Some(ada())), Allow, Some("p1"));
    case("anonymous must sign in", vec![allow("p1", 1, everyone())], req(None), NeedLogin, None);
    // email, email_domain, email_list.
    case("email match", vec![allow("p1", 1, email("ada@example.com"))], req(Some(ada())), Allow, Some("p1"));
    case("email other user", vec![allow("p1", 1, email("ada@example.com"))], req(Some(bob())), Deny, None);
    case("email case-insensitive", vec![allow("p1", 1, email("ADA@Example.COM"))], req(Some(ada())), Allow, Some("p1"));
    let domain = |d: &str| json!([{"email_domain": {"domain": d}}]);
    case("domain match", vec![allow("p1", 1, domain("example.com"))], req(Some(ada())), Allow, Some("p1"));
    case("domain other", vec![allow("p1", 1, domain("example.com"))], req(Some(bob())), Deny, None);
    case("domain exact, not suffix", vec![allow("p1", 1, domain("sub.example.com"))], req(Some(ada())), Deny, None);
    case("domain is not a substring", vec![allow("p1", 1, domain("ample.com"))], req(Some(ada())), Deny, None);
    let list = |l: &str| json!([{"email_list": {"id": l}}]);
    case("list member", vec![allow("p1", 1, list(L_ADA))], req(Some(ada())), Allow, Some("p1"));
    case("list non-member", vec![allow("p1", 1, list(L_ADA))], req(Some(bob())), Deny, None);
    case("missing list fails closed", vec![allow("p1", 1, list(L_MISSING))], req(Some(ada())), Deny, None);
    // Access groups.
    case("access group", vec![allow("p1", 1, group(G_ENG))], req(Some(ada())), Allow, Some("p1"));
    case("access group non-member", vec![allow("p1", 1, group(G_ENG))], req(Some(bob())), Deny, None);
    case("nested access group", vec![allow("p1", 1, group(G_NESTED))], req(Some(ada())), Allow, Some("p1"));
    case("nested group's exclude", vec![allow("p1", 1, group(G_NESTED))], req(Some(bob())), Deny, None);
    case("cyclic groups never match", vec![allow("p1", 1, group(G_CYCLE1))], req(Some(ada())), Deny, None);
    case("missing group fails closed", vec![allow("p1", 1, group(G_MISSING))], req(Some(ada())), Deny, None);
    // ip.
    case("ip in range", vec![allow("p1", 1, office())], from(req(Some(ada())), OFFICE), Allow, Some("p1"));
    case("ip outside", vec![allow("p1", 1, office())], req(Some(ada())), Deny, None);
    case(
        "ipv6 range",
        vec![allow("p1", 1, json!([{"ip": {"ip": "2001:db8::/32"}}]))],
        from(req(Some(ada())), OFFICE6),
        Allow,
        Some("p1"),
    );
    case("ipv4 rule vs ipv6 client", vec![allow("p1", 1, office())], from(req(Some(ada())), OFFICE6), Deny, None);
    case("single address", vec![allow("p1", 1, json!([{"ip": {"ip": HOME}}]))], req(Some(ada())), Allow, Some("p1"));
    // geo.
    let geo = || json!([{"geo": {"country_code": "FR"}}]);
    case("geo match", vec![allow("p1", 1, geo())], country(req(Some(ada())), "FR"), Allow, Some("p1"));
    case("geo unknown country", vec![allow("p1", 1, geo())], req(Some(ada())), Deny, None);
    case("geo other country", vec![allow("p1", 1, geo())], country(req(Some(ada())), "DE"), Deny, None);
    // login_method, auth_method.
    let login = |i: &str| json!([{"login_method": {"id": i}}]);
    case("login method", vec![allow("p1", 1, login(IDP_A))], req(Some(ada())), Allow, Some("p1"));
    case("other login method", vec![allow("p1", 1, login(IDP_A))], req(Some(bob())), Deny, None);
    let mfa = || json!([{"auth_method": {"auth_method": "mfa"}}]);
    case("auth method", vec![allow("p1", 1, mfa())], req(Some(ada())), Allow, Some("p1"));
    case("auth method missing", vec![allow("p1", 1, mfa())], req(Some(bob())), Deny, None);
    // azureAD groups, nested through the identity.
    case("entra group (nested parent)", vec![allow("p1", 1, az(ENG))], req(Some(ada())), Allow, Some("p1"));
    case("entra group direct", vec![allow("p1", 1, az(PLATFORM))], req(Some(ada())), Allow, Some("p1"));
    case(
        "entra group upper-case id",
        vec![allow("p1", 1, az(&ENG.to_uppercase()))],
        req(Some(ada())),
        Allow,
        Some("p1"),
    );
    case("entra group non-member", vec![allow("p1", 1, az(ENG))], req(Some(bob())), Deny, None);
    let az_pinned = |g: &str, i: &str| json!([{"azureAD": {"id": g, "identity_provider_id": i}}]);
    case("entra group pinned idp", vec![allow("p1", 1, az_pinned(ENG, IDP_A))], req(Some(ada())), Allow, Some("p1"));
    case("entra group other idp", vec![allow("p1", 1, az_pinned(ENG, IDP_B))], req(Some(ada())), Deny, None);
    // oidc claims.
    case("claim string", vec![allow("p1", 1, oidc("department", "R&D"))], req(Some(ada())), Allow, Some("p1"));
    case("claim other value", vec![allow("p1", 1, oidc("department", "Sales"))], req(Some(ada())), Deny, None);
    case("claim multi-valued", vec![allow("p1", 1, oidc("roles", "dev"))], req(Some(ada())), Allow, Some("p1"));
    case("claim no partial match", vec![allow("p1", 1, oidc("roles", "de"))], req(Some(ada())), Deny, None);
    case("claim boolean", vec![allow("p1", 1, oidc("contractor", "false"))], req(Some(ada())), Allow, Some("p1"));
    case("claim number", vec![allow("p1", 1, oidc("level", "3"))], req(Some(ada())), Allow, Some("p1"));
    case("claim missing", vec![allow("p1", 1, oidc("department", "R&D"))], req(Some(bob())), Deny, None);
    // Service tokens and service auth.
    let st = |t: &str| json!([{"service_token": {"token_id": t}}]);
    let svc = |id: &str, p: u32, inc: Value| pol(id, P::NonIdentity, p, inc, json!([]), json!([]));
    case("service token", vec![svc("s1", 1, st(T1))], token(req(None), T1), ServiceAuth, Some("s1"));
    case("other service token", vec![svc("s1", 1, st(T1))], token(req(None), T2), Deny, None);
    case(
        "any valid service token",
        vec![svc("s1", 1, json!([{"any_valid_service_token": {}}]))],
        token(req(None), T2),
        ServiceAuth,
        Some("s1"),
    );
    case("no token falls to login", vec![svc("s1", 1, st(T1)), allow("p1", 2, everyone())], req(None), NeedLogin, None);
    case("token in allow policy needs identity", vec![allow("p1", 1, st(T1))], token(req(None), T1), NeedLogin, None);
    case("service auth by ip", vec![svc("s1", 1, office())], from(req(None), OFFICE), ServiceAuth, Some("s1"));
    case(
        "service token through a group",
        vec![svc("s1", 1, group(G_TOKENS))],
        token(req(None), T1),
        ServiceAuth,
        Some("s1"),
    );
    // Bypass.
    let bypass = |id: &str, p: u32, inc: Value| pol(id, P::Bypass, p, inc, json!([]), json!([]));
    case("bypass office", vec![bypass("b1", 1, office())], from(req(None), OFFICE), Bypass, Some("b1"));
    case("bypass everyone", vec![bypass("b1", 1, everyone())], req(None), Bypass, Some("b1"));
    case(
        "bypass ignores identity rules",
        vec![bypass("b1", 1, email("ada@example.com")), allow("p1", 2, everyone())],
        req(Some(ada())),
        Allow,
        Some("p1"),
    );
    case(
        "bypass before an earlier deny",
        vec![deny("d1", 1, everyone()), bypass("b1", 5, office())],
        from(req(Some(ada())), OFFICE),
        Bypass,
        Some("b1"),
    );
    // Precedence.
    let bob_first = || vec![deny("d1", 1, email("bob@contoso.com")), allow("p2", 2, everyone())];
    case("deny first matches", bob_first(), req(Some(bob())), Deny, Some("d1"));
    case("deny first, others allowed", bob_first(), req(Some(ada())), Allow, Some("p2"));
    case(
        "allow first wins",
        vec![allow("p1", 1, everyone()), deny("d2", 2, email("bob@contoso.com"))],
        req(Some(bob())),
        Allow,
        Some("p1"),
    );
    case(
        "precedence, not input order",
        vec![allow("p2", 2, everyone()), deny("d1", 1, email("bob@contoso.com"))],
        req(Some(bob())),
        Deny,
        Some("d1"),
    );
    case(
        "non-matching deny then allow",
        vec![deny("d1", 1, email("carol@example.com")), allow("p2", 2, everyone())],
        req(Some(ada())),
        Allow,
        Some("p2"),
    );
    case("deny policy reported", vec![deny("d1", 1, domain("contoso.com"))], req(Some(bob())), Deny, Some("d1"));
    // include / require / exclude.
    let req_office = pol("p1", P::Allow, 1, everyone(), office(), json!([]));
    case("require met", vec![req_office.clone()], from(req(Some(ada())), OFFICE), Allow, Some("p1"));
    case("require unmet", vec![req_office], req(Some(ada())), Deny, None);
    let two_requires = json!([{"ip": {"ip": "192.0.2.0/24"}}, {"auth_method": {"auth_method": "mfa"}}]);
    let strict = pol("p1", P::Allow, 1, everyone(), two_requires, json!([]));
    case("every require must hold", vec![strict.clone()], from(req(Some(bob())), OFFICE), Deny, None);
    case("all requires hold", vec![strict], from(req(Some(ada())), OFFICE), Allow, Some("p1"));
    let excl = pol("p1", P::Allow, 1, domain("example.com"), json!([]), email("ada@example.com"));
    case("exclude matches", vec![excl.clone()], req(Some(ada())), Deny, None);
    case("exclude does not match", vec![excl], req(Some(carol())), Allow, Some("p1"));
    let any = json!([{"email": {"email": "bob@contoso.com"}}, {"email": {"email": "ada@example.com"}}]);
    case("any include suffices", vec![allow("p1", 1, any)], req(Some(bob())), Allow, Some("p1"));
    case("empty include never matches", vec![allow("p1", 1, json!([]))], req(Some(ada())), Deny, None);
    case(
        "exclude everyone",
        vec![pol("p1", P::Allow, 1, everyone(), json!([]), everyone())],
        req(Some(ada())),
        Deny,
        None,
    );

    assert!(n >= 60, "only {n} cases");
}
