//! Applications and their policies, with the policy builder.
//!
//! The builder posts one row per rule (`rule.section`, `rule.type` and the inputs a type
//! needs). Rows become Cloudflare's rule JSON and go through the API's own operations
//! (`add_app_policy`, `replace_app_policy`), so the rule parser that checks API writes checks
//! these too, and its message is shown beside the row it is about. A SCIM group chosen from the
//! dropdown becomes an `azureAD` rule on the group's Entra object id, pinned to the IdP that
//! provisioned it — the same rule an API client writes.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::app::{AppInput, Application, SameSite};
use gatehouse_core::policy::input::{PolicyInput, StoredPolicy};
use gatehouse_core::policy::{PolicyDecision, Rule};
use gatehouse_core::{AppId, IdpId};
use gatehouse_store::{AppStore, IdpFilter, IdpStore, Page, PolicyStore, SCIM_MAX_PAGE, ScimStore, ServiceTokenStore};
use serde_json::{Value, json};
use uuid::Uuid;

use super::form::{Form, Pairs, Query};
use super::page::{Chrome, FieldErrors, PageError, Pager, page_of, render, see_other, when};
use super::session::Dash;
use crate::AdminState;
use crate::api::apps as ops;
use crate::api::envelope::ApiError;

// === options of the builder ===

/// A choice in a dropdown.
#[derive(Debug, Clone)]
pub(crate) struct Opt {
    pub value: String,
    pub label: String,
}

/// A rule type the builder offers, with the input it needs.
pub(crate) struct RuleKind {
    pub key: &'static str,
    pub label: &'static str,
    /// `value`, `none`, `scim_group`, `access_group`, `idp`, `service_token`, `claim` or
    /// `value_idp` (a value, optionally pinned to one IdP).
    pub input: &'static str,
    pub placeholder: &'static str,
}

/// Every selector of the API the gateway evaluates, in the order administrators reach for them.
pub(crate) const RULE_KINDS: &[RuleKind] = &[
    RuleKind { key: "scim_group", label: "SCIM group", input: "scim_group", placeholder: "" },
    RuleKind {
        key: "azureAD",
        label: "Entra group (object id)",
        input: "value_idp",
        placeholder: "0a1b2c3d-0001-4e5f-8a9b-000000000001",
    },
    RuleKind { key: "email", label: "E-mail address", input: "value", placeholder: "ada@example.com" },
    RuleKind { key: "email_domain", label: "E-mail domain", input: "value", placeholder: "example.com" },
    RuleKind { key: "everyone", label: "Everyone", input: "none", placeholder: "" },
    RuleKind { key: "group", label: "Access group", input: "access_group", placeholder: "" },
    RuleKind { key: "ip", label: "IP range", input: "value", placeholder: "192.0.2.0/24" },
    RuleKind { key: "geo", label: "Country", input: "value", placeholder: "FR" },
    RuleKind { key: "login_method", label: "Signed in with (IdP)", input: "idp", placeholder: "" },
    RuleKind { key: "auth_method", label: "Authentication method (amr)", input: "value", placeholder: "mfa" },
    RuleKind { key: "oidc", label: "OIDC claim", input: "claim", placeholder: "claim value" },
    RuleKind { key: "service_token", label: "Service token", input: "service_token", placeholder: "" },
    RuleKind { key: "any_valid_service_token", label: "Any valid service token", input: "none", placeholder: "" },
];

/// The dropdowns' choices.
pub(crate) struct Options {
    pub kinds: &'static [RuleKind],
    pub scim_groups: Vec<Opt>,
    pub access_groups: Vec<Opt>,
    pub idps: Vec<Opt>,
    pub service_tokens: Vec<Opt>,
    /// The row the "Add a rule" button copies.
    pub blank: RuleRow,
}

/// SCIM groups offered in the dropdown, as `<idp id>:<Entra object id>` values: every group
/// provisioned with an `externalId` (Entra sends the group's object id there) by an IdP with
/// SCIM on. Groups without one cannot be matched against sign-in tokens and are left out.
async fn scim_groups(state: &AdminState) -> Result<Vec<Opt>, PageError> {
    let idps = state.store.list_idps(IdpFilter { scim_enabled: Some(true) }, Page::new(1, Page::MAX_PER_PAGE)).await?;
    let mut out = Vec::new();
    for idp in &idps.items {
        let groups = state.store.scim_list_groups(idp.id, None, 0, SCIM_MAX_PAGE).await?;
        for g in groups.items {
            if let Some(ext) = g.external_id.filter(|e| !e.trim().is_empty()) {
                let label =
                    if idps.items.len() > 1 { format!("{} ({})", g.display_name, idp.name) } else { g.display_name };
                out.push(Opt { value: format!("{}:{}", idp.id, ext.trim().to_ascii_lowercase()), label });
            }
        }
    }
    out.sort_by_key(|o| o.label.to_lowercase());
    Ok(out)
}

pub(crate) async fn options(state: &AdminState) -> Result<Options, PageError> {
    let all = Page::new(1, Page::MAX_PER_PAGE);
    let access_groups =
        state.store.all_groups().await?.into_iter().map(|g| Opt { value: g.id.to_string(), label: g.name }).collect();
    let idps = state
        .store
        .list_idps(IdpFilter::default(), all)
        .await?
        .items
        .into_iter()
        .map(|i| Opt { value: i.id.to_string(), label: i.name })
        .collect();
    let service_tokens = state
        .store
        .list_service_tokens(all)
        .await?
        .items
        .into_iter()
        .map(|t| Opt { value: t.id.to_string(), label: t.name })
        .collect();
    Ok(Options {
        kinds: RULE_KINDS,
        scim_groups: scim_groups(state).await?,
        access_groups,
        idps,
        service_tokens,
        blank: RuleRow::blank("include"),
    })
}

// === rule rows ===

/// One row of the builder.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleRow {
    pub section: String,
    pub kind: String,
    pub value: String,
    pub claim: String,
    pub access_group: String,
    pub scim_group: String,
    pub idp: String,
    pub service_token: String,
    pub error: Option<String>,
}

impl RuleRow {
    pub(crate) fn blank(section: &str) -> Self {
        Self { section: section.to_owned(), ..Self::default() }
    }

    /// The row showing a stored rule.
    fn of(section: &str, rule: &Rule, scim: &[Opt]) -> Self {
        let mut r = Self::blank(section);
        let idp = |i: &Option<IdpId>| i.map(|i| i.to_string()).unwrap_or_default();
        match rule {
            Rule::Email(e) => (r.kind, r.value) = ("email".into(), e.clone()),
            Rule::EmailDomain(d) => (r.kind, r.value) = ("email_domain".into(), d.clone()),
            Rule::EmailList(id) => (r.kind, r.value) = ("email_list".into(), id.to_string()),
            Rule::Everyone => r.kind = "everyone".into(),
            Rule::Group(id) => (r.kind, r.access_group) = ("group".into(), id.to_string()),
            Rule::Ip(net) => (r.kind, r.value) = ("ip".into(), net.to_string()),
            Rule::Geo(c) => (r.kind, r.value) = ("geo".into(), c.clone()),
            Rule::LoginMethod(id) => (r.kind, r.idp) = ("login_method".into(), id.to_string()),
            Rule::AuthMethod(m) => (r.kind, r.value) = ("auth_method".into(), m.clone()),
            Rule::AzureGroup { id, idp: pinned } => {
                let scim_value = scim.iter().find(|o| {
                    o.value.split_once(':').is_some_and(|(i, g)| g == id && pinned.is_none_or(|p| p.to_string() == i))
                });
                match scim_value {
                    Some(o) => (r.kind, r.scim_group) = ("scim_group".into(), o.value.clone()),
                    None => (r.kind, r.value, r.idp) = ("azureAD".into(), id.clone(), idp(pinned)),
                }
            }
            Rule::Oidc { claim_name, claim_value, idp: pinned } => {
                (r.kind, r.claim, r.value, r.idp) =
                    ("oidc".into(), claim_name.clone(), claim_value.clone(), idp(pinned));
            }
            Rule::ServiceToken(id) => (r.kind, r.service_token) = ("service_token".into(), id.to_string()),
            Rule::AnyValidServiceToken => r.kind = "any_valid_service_token".into(),
        }
        r
    }

    /// Cloudflare's rule JSON for this row; `None` for a row left blank.
    fn to_json(&self) -> Option<Value> {
        let pinned = |idp: &str| if idp.is_empty() { Value::Null } else { json!(idp) };
        let v = self.value.trim();
        Some(match self.kind.as_str() {
            "" => return None,
            "email" => json!({"email": {"email": v}}),
            "email_domain" => json!({"email_domain": {"domain": v}}),
            "email_list" => json!({"email_list": {"id": v}}),
            "ip" => json!({"ip": {"ip": v}}),
            "geo" => json!({"geo": {"country_code": v}}),
            "auth_method" => json!({"auth_method": {"auth_method": v}}),
            "group" => json!({"group": {"id": self.access_group}}),
            "login_method" => json!({"login_method": {"id": self.idp}}),
            "service_token" => json!({"service_token": {"token_id": self.service_token}}),
            "azureAD" => json!({"azureAD": {"id": v, "identity_provider_id": pinned(&self.idp)}}),
            "scim_group" => {
                let (idp, id) = self.scim_group.split_once(':').unwrap_or(("", ""));
                json!({"azureAD": {"id": id, "identity_provider_id": pinned(idp)}})
            }
            "oidc" => {
                json!({"oidc": {"claim_name": self.claim.trim(), "claim_value": v, "identity_provider_id": pinned(&self.idp)}})
            }
            other => json!({ other: {} }),
        })
    }
}

fn rows_of(f: &Pairs) -> Vec<RuleRow> {
    let col = |name: &str| f.all(name);
    let (sections, kinds, values, claims) =
        (col("rule.section"), col("rule.type"), col("rule.value"), col("rule.claim"));
    let (groups, scim, idps, tokens) =
        (col("rule.access_group"), col("rule.scim_group"), col("rule.idp"), col("rule.service_token"));
    let at = |v: &[&str], i: usize| v.get(i).map_or(String::new(), |s| s.trim().to_owned());
    (0..kinds.len())
        .map(|i| RuleRow {
            section: match at(&sections, i).as_str() {
                s @ ("require" | "exclude") => s.to_owned(),
                _ => "include".to_owned(),
            },
            kind: at(&kinds, i),
            value: at(&values, i),
            claim: at(&claims, i),
            access_group: at(&groups, i),
            scim_group: at(&scim, i),
            idp: at(&idps, i),
            service_token: at(&tokens, i),
            error: None,
        })
        .collect()
}

/// What the policy form shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyValues {
    pub name: String,
    pub decision: String,
    pub session_duration: String,
    pub rows: Vec<RuleRow>,
    /// An Access group (no action or session duration).
    pub group: bool,
}

impl PolicyValues {
    pub(crate) fn fresh() -> Self {
        Self { decision: "allow".into(), rows: vec![RuleRow::blank("include")], ..Self::default() }
    }

    /// The rows of stored rules.
    pub(crate) fn rows_of_rules(rules: &gatehouse_core::policy::input::RuleSet, scim: &[Opt]) -> Vec<RuleRow> {
        let mut rows = Vec::new();
        for (section, list) in [("include", &rules.include), ("require", &rules.require), ("exclude", &rules.exclude)] {
            rows.extend(list.iter().map(|r| RuleRow::of(section, r, scim)));
        }
        rows
    }

    fn of(p: &StoredPolicy, scim: &[Opt]) -> Self {
        let rows = Self::rows_of_rules(&p.rules, scim);
        Self {
            name: p.name.clone(),
            decision: decision_str(p.decision).to_owned(),
            session_duration: p.session_duration.map(|d| d.to_string()).unwrap_or_default(),
            rows,
            group: false,
        }
    }

    pub(crate) fn from_form(f: &Pairs) -> Self {
        Self {
            name: f.get("name").to_owned(),
            decision: f.get("decision").to_owned(),
            session_duration: f.get("session_duration").to_owned(),
            rows: rows_of(f),
            group: false,
        }
    }

    /// The API input, and for each section the rows its rules came from.
    pub(crate) fn input(&self) -> (PolicyInput, [Vec<usize>; 3]) {
        let mut lists: [Vec<Value>; 3] = Default::default();
        let mut origin: [Vec<usize>; 3] = Default::default();
        for (i, row) in self.rows.iter().enumerate() {
            let s = match row.section.as_str() {
                "require" => 1,
                "exclude" => 2,
                _ => 0,
            };
            if let Some(rule) = row.to_json() {
                lists[s].push(rule);
                origin[s].push(i);
            }
        }
        let [include, require, exclude] = lists;
        let input = PolicyInput {
            name: Some(self.name.clone()),
            decision: Some(self.decision.clone()),
            include: Some(include),
            require: Some(require),
            exclude: Some(exclude),
            session_duration: Some(self.session_duration.clone()),
            ..PolicyInput::default()
        };
        (input, origin)
    }

    /// Puts the API's validation messages beside the rows and fields they are about.
    pub(crate) fn errors_from(&mut self, e: &ApiError, origin: &[Vec<usize>; 3]) -> FieldErrors {
        let mut out = FieldErrors::default();
        let Some(v) = e.field_errors() else {
            out.general.extend(e.messages().map(str::to_owned));
            return out;
        };
        for f in &v.0 {
            // The operation names rules within the application's list: `policies[3].include[0]`.
            let path = match f.path.strip_prefix("policies[") {
                Some(rest) => rest.split_once("].").map_or(f.path.as_str(), |(_, p)| p),
                None => f.path.as_str(),
            };
            let row = ["include", "require", "exclude"].iter().enumerate().find_map(|(s, name)| {
                let idx = path.strip_prefix(name)?.strip_prefix('[')?.strip_suffix(']')?.parse::<usize>().ok()?;
                origin[s].get(idx).copied()
            });
            match row.and_then(|r| self.rows.get_mut(r)) {
                Some(r) => r.error = Some(f.message.clone()),
                None if ["name", "decision", "session_duration", "include"].contains(&path) => {
                    out.push(path, f.message.clone())
                }
                None => out.general.push(format!("{path}: {}", f.message)),
            }
        }
        if self.rows.iter().any(|r| r.error.is_some()) {
            out.general.push("Some rules are not valid; see the messages beside them.".into());
        }
        out
    }
}

pub(crate) fn decision_str(d: PolicyDecision) -> &'static str {
    match d {
        PolicyDecision::Allow => "allow",
        PolicyDecision::Deny => "deny",
        PolicyDecision::Bypass => "bypass",
        PolicyDecision::NonIdentity => "non_identity",
    }
}

/// A rule in words, for the policy list.
pub(crate) fn describe(rule: &Rule, o: &Options) -> String {
    let name_of =
        |list: &[Opt], id: &str| list.iter().find(|x| x.value == id).map_or_else(|| id.to_owned(), |x| x.label.clone());
    match rule {
        Rule::Email(e) => format!("e-mail {e}"),
        Rule::EmailDomain(d) => format!("e-mail domain {d}"),
        Rule::EmailList(id) => format!("e-mail list {id}"),
        Rule::Everyone => "everyone".into(),
        Rule::Group(id) => format!("Access group {}", name_of(&o.access_groups, &id.to_string())),
        Rule::Ip(n) => format!("IP {n}"),
        Rule::Geo(c) => format!("country {c}"),
        Rule::LoginMethod(id) => format!("signed in with {}", name_of(&o.idps, &id.to_string())),
        Rule::AuthMethod(m) => format!("authentication method {m}"),
        Rule::AzureGroup { id, .. } => {
            match o.scim_groups.iter().find(|s| s.value.split_once(':').is_some_and(|(_, g)| g == id)) {
                Some(s) => format!("SCIM group {}", s.label),
                None => format!("Entra group {id}"),
            }
        }
        Rule::Oidc { claim_name, claim_value, .. } => format!("claim {claim_name} = {claim_value}"),
        Rule::ServiceToken(id) => format!("service token {}", name_of(&o.service_tokens, &id.to_string())),
        Rule::AnyValidServiceToken => "any valid service token".into(),
    }
}

// === the list ===

struct AppRow {
    id: String,
    name: String,
    domain: String,
    policies: usize,
    created: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<AppRow>,
    pager: Pager,
}

/// `GET /apps`.
pub(crate) async fn list(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let page = page_of(&q)?;
    let found = state.store.list_apps(page).await?;
    let mut rows = Vec::with_capacity(found.items.len());
    for a in &found.items {
        rows.push(AppRow {
            id: a.id.to_string(),
            name: a.name.clone(),
            domain: a.domain.clone(),
            policies: state.store.app_policies(a.id).await?.len(),
            created: when(Some(a.created_at)),
        });
    }
    Ok(render(&ListPage {
        chrome: Chrome::new(&dash, "apps", &q),
        rows,
        pager: Pager::new("/apps", &q, page, found.total),
    }))
}

// === application settings ===

#[derive(Debug, Clone, Default)]
struct AppValues {
    name: String,
    domain: String,
    /// Further destinations, one per line.
    destinations: String,
    session_duration: String,
    allowed_idps: Vec<String>,
    auto_redirect_to_identity: bool,
    same_site: String,
    http_only: bool,
    path_cookie: bool,
    binding_cookie: bool,
    service_auth_401_redirect: bool,
    custom_deny_message: String,
}

impl AppValues {
    fn allows(&self, idp: &str) -> bool {
        self.allowed_idps.iter().any(|i| i == idp)
    }

    fn fresh() -> Self {
        Self { session_duration: "24h".into(), http_only: true, ..Self::default() }
    }

    fn of(a: &Application) -> Self {
        let s = &a.settings;
        Self {
            name: a.name.clone(),
            domain: a.domain.clone(),
            destinations: a.destinations.iter().filter(|d| **d != a.domain).cloned().collect::<Vec<_>>().join("\n"),
            session_duration: s.session_duration.to_string(),
            allowed_idps: s.allowed_idps.iter().map(ToString::to_string).collect(),
            auto_redirect_to_identity: s.auto_redirect_to_identity,
            same_site: match s.same_site_cookie_attribute {
                Some(SameSite::None) => "none",
                Some(SameSite::Lax) => "lax",
                Some(SameSite::Strict) => "strict",
                None => "",
            }
            .into(),
            http_only: s.http_only_cookie_attribute,
            path_cookie: s.path_cookie_attribute,
            binding_cookie: s.enable_binding_cookie,
            service_auth_401_redirect: s.service_auth_401_redirect,
            custom_deny_message: s.custom_deny_message.clone().unwrap_or_default(),
        }
    }

    fn from_form(f: &Pairs) -> Self {
        Self {
            name: f.get("name").to_owned(),
            domain: f.get("domain").to_owned(),
            destinations: f.get("self_hosted_domains").to_owned(),
            session_duration: f.get("session_duration").to_owned(),
            allowed_idps: f.all("allowed_idps").into_iter().map(str::to_owned).collect(),
            auto_redirect_to_identity: f.checked("auto_redirect_to_identity"),
            same_site: f.get("same_site_cookie_attribute").to_owned(),
            http_only: f.checked("http_only_cookie_attribute"),
            path_cookie: f.checked("path_cookie_attribute"),
            binding_cookie: f.checked("enable_binding_cookie"),
            service_auth_401_redirect: f.checked("service_auth_401_redirect"),
            custom_deny_message: f.get("custom_deny_message").to_owned(),
        }
    }

    fn input(&self) -> Result<AppInput, String> {
        let mut domains = vec![self.domain.clone()];
        domains.extend(self.destinations.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned));
        let body = json!({
            "type": "self_hosted",
            "name": self.name,
            "domain": self.domain,
            "self_hosted_domains": domains,
            "session_duration": self.session_duration,
            "allowed_idps": self.allowed_idps,
            "auto_redirect_to_identity": self.auto_redirect_to_identity,
            "same_site_cookie_attribute": self.same_site,
            "http_only_cookie_attribute": self.http_only,
            "path_cookie_attribute": self.path_cookie,
            "enable_binding_cookie": self.binding_cookie,
            "service_auth_401_redirect": self.service_auth_401_redirect,
            "custom_deny_message": self.custom_deny_message,
        });
        serde_json::from_value(body).map_err(|e| format!("The form could not be read: {e}"))
    }
}

fn app_field(path: &str) -> bool {
    [
        "name",
        "domain",
        "session_duration",
        "auto_redirect_to_identity",
        "same_site_cookie_attribute",
        "custom_deny_message",
    ]
    .contains(&path)
        || path.starts_with("self_hosted_domains[")
        || path.starts_with("allowed_idps[")
}

#[derive(Template)]
#[template(path = "app_new.html")]
struct NewPage {
    chrome: Chrome,
    v: AppValues,
    errors: FieldErrors,
    idps: Vec<Opt>,
}

/// `GET /apps/new`.
pub(crate) async fn new_form(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let idps = options(&state).await?.idps;
    Ok(render(&NewPage {
        chrome: Chrome::new(&dash, "apps", &q),
        v: AppValues::fresh(),
        errors: FieldErrors::default(),
        idps,
    }))
}

fn bad(r: Response) -> Response {
    let mut r = r;
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

/// `POST /apps/new`.
pub(crate) async fn create(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let v = AppValues::from_form(&f);
    let chrome = Chrome::new(&dash, "apps", &Pairs::default());
    let mut errors = FieldErrors::default();
    match v.input() {
        Ok(input) => match ops::create_app(&state, &input).await {
            Ok(app) => return Ok(see_other(&format!("/apps/{}?notice=created", app.id))),
            Err(e) if e.status().is_client_error() => errors = FieldErrors::from_api(&e, &app_field, None),
            Err(e) => return Err(e.into()),
        },
        Err(msg) => errors.general.push(msg),
    }
    let idps = options(&state).await?.idps;
    Ok(bad(render(&NewPage { chrome, v, errors, idps })))
}

// === one application ===

struct PolicyRow {
    id: String,
    name: String,
    decision: &'static str,
    precedence: u32,
    reusable: bool,
    include: Vec<String>,
    require: Vec<String>,
    exclude: Vec<String>,
}

#[derive(Template)]
#[template(path = "app.html")]
struct AppPage {
    chrome: Chrome,
    id: String,
    aud: String,
    login_url: String,
    v: AppValues,
    errors: FieldErrors,
    policies: Vec<PolicyRow>,
    idps: Vec<Opt>,
    /// Reusable policies not attached yet.
    reusable: Vec<Opt>,
    opts: Options,
    /// The "add a policy" builder.
    p: PolicyValues,
    p_errors: FieldErrors,
    p_action: String,
}

async fn load(state: &AdminState, raw: &str) -> Result<Application, PageError> {
    let id: AppId = raw.parse().map_err(|_| PageError::NotFound("application"))?;
    state.store.get_app(id).await?.ok_or(PageError::NotFound("application"))
}

#[allow(clippy::too_many_arguments)]
async fn app_page(
    state: &AdminState,
    chrome: Chrome,
    app: &Application,
    v: AppValues,
    errors: FieldErrors,
    p: PolicyValues,
    p_errors: FieldErrors,
) -> Result<AppPage, PageError> {
    let opts = options(state).await?;
    let policies: Vec<PolicyRow> = state
        .store
        .app_policies(app.id)
        .await?
        .into_iter()
        .map(|(p, n)| PolicyRow {
            id: p.id.to_string(),
            name: p.name.clone(),
            decision: decision_str(p.decision),
            precedence: n,
            reusable: p.reusable,
            include: p.rules.include.iter().map(|r| describe(r, &opts)).collect(),
            require: p.rules.require.iter().map(|r| describe(r, &opts)).collect(),
            exclude: p.rules.exclude.iter().map(|r| describe(r, &opts)).collect(),
        })
        .collect();
    let attached: Vec<String> = policies.iter().map(|p| p.id.clone()).collect();
    let reusable = state
        .store
        .list_reusable_policies(Page::new(1, Page::MAX_PER_PAGE))
        .await?
        .items
        .into_iter()
        .filter(|(p, _)| !attached.contains(&p.id.to_string()))
        .map(|(p, _)| Opt { value: p.id.to_string(), label: p.name })
        .collect();
    let base = crate::api::idps::base(state).await?;
    Ok(AppPage {
        reusable,
        chrome,
        id: app.id.to_string(),
        aud: app.aud.clone(),
        login_url: format!("{base}/cdn-cgi/access/login/{}?kid={}", app.domain, app.aud),
        v,
        errors,
        policies,
        idps: opts.idps.clone(),
        opts,
        p,
        p_errors,
        p_action: format!("/apps/{}/policies", app.id),
    })
}

/// `GET /apps/{id}`: settings, policies, and the builder for a new policy.
pub(crate) async fn show(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path(id): Path<String>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let app = load(&state, &id).await?;
    let chrome = Chrome::new(&dash, "apps", &q);
    let page = app_page(
        &state,
        chrome,
        &app,
        AppValues::of(&app),
        FieldErrors::default(),
        PolicyValues::fresh(),
        FieldErrors::default(),
    );
    Ok(render(&page.await?))
}

/// `POST /apps/{id}`: saves the settings (policies unchanged).
pub(crate) async fn update(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path(id): Path<String>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let app = load(&state, &id).await?;
    let v = AppValues::from_form(&f);
    let mut errors = FieldErrors::default();
    match v.input() {
        Ok(input) => match ops::replace_app(&state, app.clone(), &input).await {
            Ok(app) => return Ok(see_other(&format!("/apps/{}?notice=saved", app.id))),
            Err(e) if e.status().is_client_error() => errors = FieldErrors::from_api(&e, &app_field, None),
            Err(e) => return Err(e.into()),
        },
        Err(msg) => errors.general.push(msg),
    }
    let chrome = Chrome::new(&dash, "apps", &Pairs::default());
    let page = app_page(&state, chrome, &app, v, errors, PolicyValues::fresh(), FieldErrors::default());
    Ok(bad(render(&page.await?)))
}

/// `POST /apps/{id}/delete`.
pub(crate) async fn delete(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Response, PageError> {
    let app = load(&state, &id).await?;
    state.store.delete_app(app.id).await?;
    tracing::info!(app = %app.id, "application deleted from the dashboard");
    Ok(see_other("/apps?notice=deleted"))
}

/// `POST /apps/{id}/policies`: adds the policy built in the form.
pub(crate) async fn add_policy(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path(id): Path<String>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let app = load(&state, &id).await?;
    let mut p = PolicyValues::from_form(&f);
    let (input, origin) = p.input();
    match ops::add_app_policy(&state, app.id, input).await {
        Ok(_) => Ok(see_other(&format!("/apps/{}?notice=policy-added", app.id))),
        Err(e) if e.status().is_client_error() => {
            let p_errors = p.errors_from(&e, &origin);
            if p.rows.is_empty() {
                p.rows.push(RuleRow::blank("include"));
            }
            let chrome = Chrome::new(&dash, "apps", &Pairs::default());
            let page = app_page(&state, chrome, &app, AppValues::of(&app), FieldErrors::default(), p, p_errors);
            Ok(bad(render(&page.await?)))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "policy.html")]
struct PolicyPage {
    chrome: Chrome,
    app_id: String,
    app_name: String,
    opts: Options,
    p: PolicyValues,
    p_errors: FieldErrors,
    p_action: String,
}

async fn load_policy(state: &AdminState, app: &Application, raw: &str) -> Result<StoredPolicy, PageError> {
    let pid: Uuid = raw.parse().map_err(|_| PageError::NotFound("policy"))?;
    let found = state.store.app_policies(app.id).await?.into_iter().find(|(p, _)| p.id == pid);
    found.map(|(p, _)| p).ok_or(PageError::NotFound("policy"))
}

/// `GET /apps/{id}/policies/{policy}`: the builder with a stored policy.
pub(crate) async fn edit_policy(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path((id, policy)): Path<(String, String)>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let app = load(&state, &id).await?;
    let stored = load_policy(&state, &app, &policy).await?;
    let opts = options(&state).await?;
    let mut p = PolicyValues::of(&stored, &opts.scim_groups);
    p.rows.push(RuleRow::blank("include"));
    Ok(render(&PolicyPage {
        chrome: Chrome::new(&dash, "apps", &q),
        app_id: app.id.to_string(),
        app_name: app.name.clone(),
        opts,
        p,
        p_errors: FieldErrors::default(),
        p_action: format!("/apps/{}/policies/{}", app.id, stored.id),
    }))
}

/// `POST /apps/{id}/policies/{policy}`: saves a policy the application owns.
pub(crate) async fn update_policy(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path((id, policy)): Path<(String, String)>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let app = load(&state, &id).await?;
    let stored = load_policy(&state, &app, &policy).await?;
    let mut p = PolicyValues::from_form(&f);
    let (input, origin) = p.input();
    match ops::replace_app_policy(&state, app.id, stored.id, input).await {
        Ok(_) => Ok(see_other(&format!("/apps/{}?notice=policy-saved", app.id))),
        Err(e) if e.status().is_client_error() => {
            let p_errors = p.errors_from(&e, &origin);
            if p.rows.is_empty() {
                p.rows.push(RuleRow::blank("include"));
            }
            Ok(bad(render(&PolicyPage {
                chrome: Chrome::new(&dash, "apps", &Pairs::default()),
                app_id: app.id.to_string(),
                app_name: app.name.clone(),
                opts: options(&state).await?,
                p,
                p_errors,
                p_action: format!("/apps/{}/policies/{}", app.id, stored.id),
            })))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /apps/{id}/policies/attach`: attaches a reusable policy after the others.
pub(crate) async fn attach_policy(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let app = load(&state, &id).await?;
    let pid = f.get("policy_id");
    if pid.is_empty() {
        return Err(PageError::bad_request("Choose a reusable policy to attach."));
    }
    let link = PolicyInput { id: Some(pid.to_owned()), ..PolicyInput::default() };
    ops::add_app_policy(&state, app.id, link).await?;
    Ok(see_other(&format!("/apps/{}?notice=policy-added", app.id)))
}

/// `POST /apps/{id}/policies/{policy}/delete`.
pub(crate) async fn delete_policy(
    State(state): State<AdminState>,
    Path((id, policy)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let app = load(&state, &id).await?;
    let stored = load_policy(&state, &app, &policy).await?;
    ops::remove_app_policy(&state, app.id, stored.id).await?;
    Ok(see_other(&format!("/apps/{}?notice=policy-removed", app.id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::policy::input::RuleContext;

    #[test]
    fn rows_become_rules_the_api_parser_checks() {
        let f = Pairs::parse(
            b"name=Eng&decision=allow\
              &rule.section=include&rule.type=scim_group&rule.value=&rule.claim=&rule.access_group=&rule.scim_group=8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f:0a1b2c3d-0001-4e5f-8a9b-000000000001&rule.idp=&rule.service_token=\
              &rule.section=include&rule.type=ip&rule.value=300.1.1.1&rule.claim=&rule.access_group=&rule.scim_group=&rule.idp=&rule.service_token=\
              &rule.section=exclude&rule.type=&rule.value=&rule.claim=&rule.access_group=&rule.scim_group=&rule.idp=&rule.service_token=\
              &rule.section=require&rule.type=email_domain&rule.value=contoso.com&rule.claim=&rule.access_group=&rule.scim_group=&rule.idp=&rule.service_token=",
        );
        let mut p = PolicyValues::from_form(&f);
        assert_eq!(p.rows.len(), 4);
        let (input, origin) = p.input();
        assert_eq!(origin, [vec![0, 1], vec![3], vec![]]);
        let include = input.include.clone().unwrap_or_default();
        assert_eq!(
            include[0],
            json!({"azureAD": {"id": "0a1b2c3d-0001-4e5f-8a9b-000000000001", "identity_provider_id": "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f"}})
        );
        let errs = input.validate(RuleContext { geo_enabled: false, groups: &[] }).err().unwrap_or_default();
        let api: ApiError = errs.into();
        let general = p.errors_from(&api, &origin);
        assert!(p.rows[1].error.as_deref().is_some_and(|m| m.contains("IPv4 or IPv6")), "{:?}", p.rows);
        assert!(p.rows[0].error.is_none() && p.rows[3].error.is_none());
        assert!(!general.general.is_empty());
    }

    #[test]
    fn stored_rules_come_back_as_rows() {
        let idp = "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f";
        let scim =
            vec![Opt { value: format!("{idp}:0a1b2c3d-0001-4e5f-8a9b-000000000001"), label: "Engineering".into() }];
        let rule = Rule::parse(&json!({"azureAD": {"id": "0a1b2c3d-0001-4e5f-8a9b-000000000001"}}), false)
            .unwrap_or_else(|e| panic!("{e}"));
        let row = RuleRow::of("include", &rule, &scim);
        assert_eq!((row.kind.as_str(), row.scim_group.as_str()), ("scim_group", scim[0].value.as_str()));
        let row = RuleRow::of("include", &rule, &[]);
        assert_eq!((row.kind.as_str(), row.value.as_str()), ("azureAD", "0a1b2c3d-0001-4e5f-8a9b-000000000001"));
        assert_eq!(Rule::parse(&row.to_json().unwrap_or_default(), false).ok(), Some(rule));
    }
}
