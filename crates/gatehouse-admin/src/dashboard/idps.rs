//! Identity providers: list, add (Microsoft Entra ID with its setup steps beside the form, or
//! generic OpenID Connect), edit, test (the public `test-idp` flow), SCIM settings and the
//! SCIM endpoint, and regenerating the SCIM secret, which is shown once.
//!
//! Forms are turned into the API's [`IdpInput`] and go through the same operations as
//! `POST`/`PUT /access/identity_providers`; input names are the API's field paths, so each
//! validation message lands beside its field.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::IdpId;
use gatehouse_core::idp::{IdentityProvider, IdentityUpdateBehavior, IdpInput, IdpType, Prompt};
use gatehouse_store::{IdpFilter, IdpStore, Page, SCIM_MAX_PAGE, ScimDriftRecord, ScimStore};
use serde_json::{Map, Value, json};

use super::form::{Form, Pairs, Query, split_list};
use super::page::{Chrome, FieldErrors, PageError, Pager, page_of, render, see_other, when};
use super::session::Dash;
use crate::AdminState;
use crate::api::idps as ops;

/// One row of the list.
struct Row {
    id: String,
    name: String,
    kind: &'static str,
    scim: bool,
    created: String,
}

#[derive(Template)]
#[template(path = "idps.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    pager: Pager,
}

/// `GET /idps`.
pub(crate) async fn list(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let page = page_of(&q)?;
    let found = state.store.list_idps(IdpFilter::default(), page).await?;
    let rows = found
        .items
        .iter()
        .map(|i| Row {
            id: i.id.to_string(),
            name: i.name.clone(),
            kind: kind_label(i.kind),
            scim: i.scim.enabled,
            created: when(Some(i.created_at)),
        })
        .collect();
    Ok(render(&ListPage {
        chrome: Chrome::new(&dash, "idps", &q),
        rows,
        pager: Pager::new("/idps", &q, page, found.total),
    }))
}

fn kind_label(k: IdpType) -> &'static str {
    match k {
        IdpType::AzureAd => "Microsoft Entra ID",
        IdpType::Oidc => "OpenID Connect",
    }
}

/// What the form shows: the user's input (kept on error) or the stored values.
#[derive(Debug, Clone, Default)]
struct Values {
    name: String,
    client_id: String,
    directory_id: String,
    azure_cloud: String,
    auth_url: String,
    token_url: String,
    certs_url: String,
    scopes: String,
    claims: String,
    email_claim_name: String,
    prompt: String,
    support_groups: bool,
    pkce_enabled: bool,
    conditional_access_enabled: bool,
    scim_enabled: bool,
    user_deprovision: bool,
    seat_deprovision: bool,
    group_member_deprovision: bool,
    identity_update_behavior: String,
}

impl Values {
    fn defaults(kind: IdpType) -> Self {
        Self {
            azure_cloud: "default".into(),
            scopes: "openid email profile".into(),
            support_groups: kind == IdpType::AzureAd,
            pkce_enabled: true,
            identity_update_behavior: "no_action".into(),
            ..Self::default()
        }
    }

    fn of(idp: &IdentityProvider) -> Self {
        let c = &idp.config;
        Self {
            name: idp.name.clone(),
            client_id: c.client_id.clone(),
            directory_id: c.directory_id.map(|d| d.to_string()).unwrap_or_default(),
            azure_cloud: c.azure_cloud.as_str().to_owned(),
            auth_url: c.auth_url.clone().unwrap_or_default(),
            token_url: c.token_url.clone().unwrap_or_default(),
            certs_url: c.certs_url.clone().unwrap_or_default(),
            scopes: c.scopes.join(" "),
            claims: c.claims.join(", "),
            email_claim_name: c.email_claim_name.clone().unwrap_or_default(),
            prompt: match c.prompt {
                Some(Prompt::Login) => "login",
                Some(Prompt::SelectAccount) => "select_account",
                Some(Prompt::None) => "none",
                None => "",
            }
            .to_owned(),
            support_groups: c.support_groups,
            pkce_enabled: c.pkce_enabled,
            conditional_access_enabled: c.conditional_access_enabled,
            scim_enabled: idp.scim.enabled,
            user_deprovision: idp.scim.user_deprovision,
            seat_deprovision: idp.scim.seat_deprovision,
            group_member_deprovision: idp.scim.group_member_deprovision,
            identity_update_behavior: match idp.scim.identity_update_behavior {
                IdentityUpdateBehavior::Automatic => "automatic",
                IdentityUpdateBehavior::Reauth => "reauth",
                IdentityUpdateBehavior::NoAction => "no_action",
            }
            .to_owned(),
        }
    }

    fn from_form(f: &Pairs) -> Self {
        Self {
            name: f.get("name").to_owned(),
            client_id: f.get("config.client_id").to_owned(),
            directory_id: f.get("config.directory_id").to_owned(),
            azure_cloud: f.get("config.azure_cloud").to_owned(),
            auth_url: f.get("config.auth_url").to_owned(),
            token_url: f.get("config.token_url").to_owned(),
            certs_url: f.get("config.certs_url").to_owned(),
            scopes: f.get("config.scopes").to_owned(),
            claims: f.get("config.claims").to_owned(),
            email_claim_name: f.get("config.email_claim_name").to_owned(),
            prompt: f.get("config.prompt").to_owned(),
            support_groups: f.checked("config.support_groups"),
            pkce_enabled: f.checked("config.pkce_enabled"),
            conditional_access_enabled: f.checked("config.conditional_access_enabled"),
            scim_enabled: f.checked("scim_config.enabled"),
            user_deprovision: f.checked("scim_config.user_deprovision"),
            seat_deprovision: f.checked("scim_config.seat_deprovision"),
            group_member_deprovision: f.checked("scim_config.group_member_deprovision"),
            identity_update_behavior: f.get("scim_config.identity_update_behavior").to_owned(),
        }
    }
}

/// The API input of a submitted form. The client secret is read from the form directly and
/// never kept in [`Values`], so it is never rendered back.
fn input_of(kind: IdpType, v: &Values, f: &Pairs) -> Result<IdpInput, String> {
    let mut config = Map::new();
    let mut put = |k: &str, val: Value| {
        config.insert(k.to_owned(), val);
    };
    put("client_id", json!(v.client_id));
    if let Some(s) = f.opt("config.client_secret") {
        put("client_secret", json!(s));
    }
    put("support_groups", json!(v.support_groups));
    put("pkce_enabled", json!(v.pkce_enabled));
    put("claims", json!(split_list(&v.claims)));
    if !v.email_claim_name.is_empty() {
        put("email_claim_name", json!(v.email_claim_name));
    }
    if !v.prompt.is_empty() {
        put("prompt", json!(v.prompt));
    }
    match kind {
        IdpType::AzureAd => {
            put("directory_id", json!(v.directory_id));
            put("azure_cloud", json!(if v.azure_cloud.is_empty() { "default" } else { &v.azure_cloud }));
            put("conditional_access_enabled", json!(v.conditional_access_enabled));
        }
        IdpType::Oidc => {
            put("auth_url", json!(v.auth_url));
            put("token_url", json!(v.token_url));
            put("certs_url", json!(v.certs_url));
            if !v.scopes.is_empty() {
                put("scopes", json!(split_list(&v.scopes)));
            }
        }
    }
    let mut scim = json!({
        "enabled": v.scim_enabled,
        "user_deprovision": v.user_deprovision,
        "seat_deprovision": v.seat_deprovision,
        "group_member_deprovision": v.group_member_deprovision,
    });
    if !v.identity_update_behavior.is_empty()
        && let Some(o) = scim.as_object_mut()
    {
        o.insert("identity_update_behavior".into(), json!(v.identity_update_behavior));
    }
    let body = json!({"name": v.name, "type": kind.as_str(), "config": config, "scim_config": scim});
    serde_json::from_value(body).map_err(|e| format!("The form could not be read: {e}"))
}

const FIELDS: &[&str] = &[
    "name",
    "type",
    "config.client_id",
    "config.client_secret",
    "config.directory_id",
    "config.azure_cloud",
    "config.auth_url",
    "config.token_url",
    "config.certs_url",
    "config.scopes",
    "config.claims",
    "config.email_claim_name",
    "config.prompt",
    "scim_config.seat_deprovision",
];

fn known(path: &str) -> bool {
    FIELDS.contains(&path) || path.starts_with("config.claims[")
}

#[derive(Template)]
#[template(path = "idp_form.html")]
struct FormPage {
    chrome: Chrome,
    /// `azureAD` or `oidc`.
    kind: &'static str,
    kind_label: &'static str,
    /// Set when editing an existing IdP.
    id: Option<String>,
    v: Values,
    errors: FieldErrors,
    /// The redirect URI to register with the IdP.
    redirect_url: String,
    /// SCIM base URL, once the IdP exists.
    scim_url: Option<String>,
    /// Whether a SCIM secret was ever issued.
    has_scim_secret: bool,
    /// A secret to show once (just created or regenerated).
    scim_secret: Option<String>,
    /// The public test flow of this IdP.
    test_url: Option<String>,
    /// Latest nested-group drift warnings, and how many there are.
    drift: Vec<DriftRow>,
    drift_total: u64,
    /// How many users and groups the IdP provisioned over SCIM.
    scim_users: u64,
    scim_groups: u64,
}

/// A user who reached a provisioned group only through nesting.
struct DriftRow {
    user: String,
    group: String,
    group_id: String,
    at: String,
}

fn drift_row(d: ScimDriftRecord) -> DriftRow {
    DriftRow {
        user: d.user_name,
        group: d.group_name,
        group_id: d.group_external_id.unwrap_or_default(),
        at: when(Some(d.detected_at)),
    }
}

async fn form_page(
    state: &AdminState,
    chrome: Chrome,
    kind: IdpType,
    existing: Option<&IdentityProvider>,
    v: Values,
    errors: FieldErrors,
    scim_secret: Option<String>,
) -> Result<FormPage, PageError> {
    let base = ops::base(state).await?;
    let (drift, drift_total, scim_users, scim_groups) = match existing {
        Some(i) => {
            let found = state.store.scim_drift(Some(i.id), Page::new(1, 5)).await?;
            let users = state.store.scim_list_users(i.id, None, 0, 1).await?.total;
            let groups = state.store.scim_list_groups(i.id, None, 0, 1).await?.total;
            (found.items.into_iter().map(drift_row).collect(), found.total, users, groups)
        }
        None => (Vec::new(), 0, 0, 0),
    };
    Ok(FormPage {
        scim_users,
        scim_groups,
        drift,
        drift_total,
        chrome,
        kind: kind.as_str(),
        kind_label: kind_label(kind),
        id: existing.map(|i| i.id.to_string()),
        v,
        errors,
        redirect_url: ops::redirect_url(&base),
        scim_url: existing.map(|i| ops::scim_base_url(&base, i.id)),
        has_scim_secret: existing.is_some_and(|i| i.scim_secret_hash.is_some()),
        scim_secret,
        test_url: existing.map(|i| format!("{base}/cdn-cgi/access/test-idp/{}", i.id)),
    })
}

fn kind_param(raw: &str) -> Result<IdpType, PageError> {
    match raw {
        "" | "azureAD" => Ok(IdpType::AzureAd),
        "oidc" => Ok(IdpType::Oidc),
        other => Err(PageError::BadRequest(format!("unknown identity provider type {other:?}; use azureAD or oidc"))),
    }
}

/// `GET /idps/new?type=azureAD|oidc`.
pub(crate) async fn new_form(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let kind = kind_param(q.get("type"))?;
    let chrome = Chrome::new(&dash, "idps", &q);
    Ok(render(&form_page(&state, chrome, kind, None, Values::defaults(kind), FieldErrors::default(), None).await?))
}

fn invalid(mut page: FormPage) -> Response {
    page.chrome.notice = None;
    let mut r = render(&page);
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

/// `POST /idps/new?type=...`.
pub(crate) async fn create(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
    Form(f): Form,
) -> Result<Response, PageError> {
    let kind = kind_param(q.get("type"))?;
    let v = Values::from_form(&f);
    let chrome = Chrome::new(&dash, "idps", &Pairs::default());
    let input = match input_of(kind, &v, &f) {
        Ok(i) => i,
        Err(msg) => {
            let mut errors = FieldErrors::default();
            errors.general.push(msg);
            return Ok(invalid(form_page(&state, chrome, kind, None, v, errors, None).await?));
        }
    };
    match ops::create_idp(&state, input).await {
        Ok((idp, Some(secret))) => {
            let secret = Some(secret.expose().to_owned());
            let page = form_page(&state, chrome, kind, Some(&idp), Values::of(&idp), FieldErrors::default(), secret);
            Ok(render(&page.await?))
        }
        Ok((idp, None)) => Ok(see_other(&format!("/idps/{}?notice=created", idp.id))),
        Err(e) if e.status() == StatusCode::BAD_REQUEST => {
            let errors = FieldErrors::from_api(&e, &known, None);
            Ok(invalid(form_page(&state, chrome, kind, None, v, errors, None).await?))
        }
        Err(e) => Err(e.into()),
    }
}

async fn load(state: &AdminState, raw: &str) -> Result<IdentityProvider, PageError> {
    let id: IdpId = raw.parse().map_err(|_| PageError::NotFound("identity provider"))?;
    state.store.get_idp(id).await?.ok_or(PageError::NotFound("identity provider"))
}

/// `GET /idps/{id}`: the edit form, SCIM endpoint and test link.
pub(crate) async fn show(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path(id): Path<String>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let idp = load(&state, &id).await?;
    let chrome = Chrome::new(&dash, "idps", &q);
    let page = form_page(&state, chrome, idp.kind, Some(&idp), Values::of(&idp), FieldErrors::default(), None);
    Ok(render(&page.await?))
}

/// `POST /idps/{id}`: full replace (an empty client secret keeps the stored one).
pub(crate) async fn update(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path(id): Path<String>,
    Form(f): Form,
) -> Result<Response, PageError> {
    let existing = load(&state, &id).await?;
    let kind = existing.kind;
    let v = Values::from_form(&f);
    let chrome = Chrome::new(&dash, "idps", &Pairs::default());
    let input = match input_of(kind, &v, &f) {
        Ok(i) => i,
        Err(msg) => {
            let mut errors = FieldErrors::default();
            errors.general.push(msg);
            return Ok(invalid(form_page(&state, chrome, kind, Some(&existing), v, errors, None).await?));
        }
    };
    match ops::replace_idp(&state, existing.clone(), input).await {
        Ok((idp, Some(secret))) => {
            let page = form_page(
                &state,
                chrome,
                kind,
                Some(&idp),
                Values::of(&idp),
                FieldErrors::default(),
                Some(secret.expose().to_owned()),
            );
            Ok(render(&page.await?))
        }
        Ok((idp, None)) => Ok(see_other(&format!("/idps/{}?notice=saved", idp.id))),
        Err(e) if e.status() == StatusCode::BAD_REQUEST => {
            let errors = FieldErrors::from_api(&e, &known, None);
            Ok(invalid(form_page(&state, chrome, kind, Some(&existing), v, errors, None).await?))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /idps/{id}/scim-secret`: a new SCIM secret, shown on this response only.
pub(crate) async fn regenerate_scim_secret(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let idp = load(&state, &id).await?;
    let (idp, secret) = ops::refresh_idp_scim_secret(&state, idp).await?;
    let chrome = Chrome::new(&dash, "idps", &Pairs::default());
    let page = form_page(
        &state,
        chrome,
        idp.kind,
        Some(&idp),
        Values::of(&idp),
        FieldErrors::default(),
        Some(secret.expose().to_owned()),
    );
    Ok(render(&page.await?))
}

#[derive(Template)]
#[template(path = "drift.html")]
struct DriftPage {
    chrome: Chrome,
    id: String,
    name: String,
    rows: Vec<DriftRow>,
    pager: Pager,
}

/// `GET /idps/{id}/drift`: every nested-group drift warning of the IdP.
pub(crate) async fn drift(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path(id): Path<String>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let idp = load(&state, &id).await?;
    let page = page_of(&q)?;
    let found = state.store.scim_drift(Some(idp.id), page).await?;
    Ok(render(&DriftPage {
        chrome: Chrome::new(&dash, "idps", &q),
        id: idp.id.to_string(),
        name: idp.name.clone(),
        rows: found.items.into_iter().map(drift_row).collect(),
        pager: Pager::new(&format!("/idps/{}/drift", idp.id), &q, page, found.total),
    }))
}

/// One provisioned user or group.
struct ScimRow {
    name: String,
    detail: String,
    external_id: String,
    active: bool,
    updated: String,
}

#[derive(Template)]
#[template(path = "scim_resources.html")]
struct ScimResourcesPage {
    chrome: Chrome,
    id: String,
    name: String,
    /// `users` or `groups`.
    kind: &'static str,
    rows: Vec<ScimRow>,
    pager: Pager,
}

/// `GET /idps/{id}/scim/{users|groups}`: what the IdP provisioned over SCIM.
pub(crate) async fn scim_resources(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Path((id, kind)): Path<(String, String)>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let idp = load(&state, &id).await?;
    let page = page_of(&q)?;
    let per_page = page.per_page.min(SCIM_MAX_PAGE);
    let offset = u64::from(page.page - 1) * u64::from(per_page);
    let (kind, rows, total) = match kind.as_str() {
        "users" => {
            let found = state.store.scim_list_users(idp.id, None, offset, per_page).await?;
            let rows = found
                .items
                .into_iter()
                .map(|u| ScimRow {
                    name: u.user_name,
                    detail: u.display_name.unwrap_or_default(),
                    external_id: u.external_id.unwrap_or_default(),
                    active: u.active,
                    updated: when(Some(u.updated_at)),
                })
                .collect();
            ("users", rows, found.total)
        }
        "groups" => {
            let found = state.store.scim_list_groups(idp.id, None, offset, per_page).await?;
            let mut rows = Vec::with_capacity(found.items.len());
            for g in found.items {
                let members = state.store.scim_group_members(&g.id).await?.len();
                rows.push(ScimRow {
                    name: g.display_name,
                    detail: format!("{members} direct member{}", if members == 1 { "" } else { "s" }),
                    external_id: g.external_id.unwrap_or_default(),
                    active: true,
                    updated: when(Some(g.updated_at)),
                });
            }
            ("groups", rows, found.total)
        }
        _ => return Err(PageError::NotFound("page")),
    };
    Ok(render(&ScimResourcesPage {
        chrome: Chrome::new(&dash, "idps", &q),
        id: idp.id.to_string(),
        name: idp.name.clone(),
        kind,
        rows,
        pager: Pager::new(&format!("/idps/{}/scim/{kind}", idp.id), &q, Page::new(page.page, per_page), total),
    }))
}

/// `POST /idps/{id}/delete`.
pub(crate) async fn delete(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Response, PageError> {
    let idp = load(&state, &id).await?;
    if !state.store.delete_idp(idp.id).await? {
        return Err(PageError::NotFound("identity provider"));
    }
    tracing::info!(idp = %idp.id, "identity provider deleted from the dashboard");
    Ok(see_other("/idps?notice=deleted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_becomes_the_api_input_and_validation_names_its_fields() {
        let f = Pairs::parse(
            b"name=Entra&config.client_id=not-a-guid&config.client_secret=8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f\
              &config.directory_id=&config.azure_cloud=default&config.support_groups=on&scim_config.enabled=on\
              &scim_config.seat_deprovision=on&scim_config.identity_update_behavior=automatic",
        );
        let v = Values::from_form(&f);
        let input = input_of(IdpType::AzureAd, &v, &f).unwrap_or_else(|e| panic!("{e}"));
        let errs = input.validate(None).err().unwrap_or_default();
        let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"config.client_id"), "{paths:?}");
        assert!(paths.contains(&"config.client_secret"), "{paths:?}");
        assert!(paths.contains(&"config.directory_id"), "{paths:?}");
        assert!(paths.contains(&"scim_config.seat_deprovision"), "{paths:?}");
        assert!(paths.iter().all(|p| known(p)), "{paths:?}");
    }
}
