//! `/accounts/{id}/access/apps` (self-hosted applications) and their policies
//! (`/apps/{id}/policies`). An application's `policies` mix links to reusable policies
//! (`{"id", "precedence"}`) and policies it owns (full objects).

use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use gatehouse_core::app::{AppInput, Application, generate_aud};
use gatehouse_core::policy::input::{PolicyInput, RuleContext};
use gatehouse_core::{AppId, IdpId, ValidationErrors, now_millis};
use gatehouse_store::{AppPolicies, AppStore, IdpFilter, IdpStore, Page, PolicyStore};
use serde_json::{Value, json};
use uuid::Uuid;

use super::envelope::{ApiError, ok, ok_list};
use super::extract::{ApiJson, ApiQuery, PageParams, path_id};
use super::policies::{GEO_ENABLED, bad_precedence, build_policy, group_ids, render_policy};
use crate::AdminState;

async fn render(state: &AdminState, app: &Application) -> Result<Value, ApiError> {
    let policies = state.store.app_policies(app.id).await?;
    let s = &app.settings;
    Ok(json!({
        "id": app.id.to_string(),
        "uid": app.id.to_string(),
        "type": "self_hosted",
        "name": app.name,
        "domain": app.domain,
        "destinations": app.destinations.iter().map(|d| json!({"type": "public", "uri": d})).collect::<Vec<_>>(),
        "self_hosted_domains": app.destinations,
        "aud": app.aud,
        "session_duration": s.session_duration.to_string(),
        "allowed_idps": s.allowed_idps.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "auto_redirect_to_identity": s.auto_redirect_to_identity,
        "same_site_cookie_attribute": s.same_site_cookie_attribute,
        "http_only_cookie_attribute": s.http_only_cookie_attribute,
        "path_cookie_attribute": s.path_cookie_attribute,
        "enable_binding_cookie": s.enable_binding_cookie,
        "service_auth_401_redirect": s.service_auth_401_redirect,
        "custom_deny_message": s.custom_deny_message,
        "policies": policies.iter().map(|(p, n)| render_policy(p, Some(*n), None)).collect::<Vec<_>>(),
        "created_at": gatehouse_core::rfc3339(app.created_at),
        "updated_at": gatehouse_core::rfc3339(app.updated_at),
    }))
}

async fn idp_ids(state: &AdminState) -> Result<Vec<IdpId>, ApiError> {
    let all = state.store.list_idps(IdpFilter::default(), Page::new(1, Page::MAX_PER_PAGE)).await?;
    Ok(all.items.into_iter().map(|i| i.id).collect())
}

fn prefixed(errs: ValidationErrors, prefix: &str) -> ValidationErrors {
    ValidationErrors(
        errs.0
            .into_iter()
            .map(|mut e| {
                e.path = format!("{prefix}.{}", e.path);
                e
            })
            .collect(),
    )
}

/// Turns an application's `policies` into what the store attaches. `owned_now` are the ids of
/// policies the application owns today (their ids may be sent back to update them).
async fn resolve_policies(
    state: &AdminState,
    inputs: &[PolicyInput],
    owned_now: &[Uuid],
) -> Result<AppPolicies, ApiError> {
    let groups = group_ids(state).await?;
    let ctx = RuleContext { geo_enabled: GEO_ENABLED, groups: &groups };
    let mut out = AppPolicies::default();
    let mut errs = ValidationErrors::default();
    for (i, input) in inputs.iter().enumerate() {
        let path = format!("policies[{i}]");
        let precedence = match input.precedence {
            None => u32::try_from(i + 1).unwrap_or(u32::MAX),
            Some(n) if n >= 1 => u32::try_from(n).map_err(|_| bad_precedence(&path))?,
            Some(_) => return Err(bad_precedence(&path)),
        };
        if out.links.iter().any(|(_, p)| *p == precedence) {
            return Err(bad_precedence(&path));
        }
        let given_id = input.id.as_deref().map(|s| Uuid::parse_str(s).map_err(|_| s.to_owned()));
        if input.is_link() {
            let id = match given_id {
                Some(Ok(id)) => id,
                _ => {
                    errs.push(format!("{path}.id"), "must be the id of a reusable policy");
                    continue;
                }
            };
            match state.store.get_policy(id).await? {
                Some((p, _)) if p.reusable || owned_now.contains(&p.id) => out.links.push((id, precedence)),
                _ => errs.push(format!("{path}.id"), format!("no reusable policy with id {id}")),
            }
            continue;
        }
        let id = match given_id {
            Some(Ok(id)) if owned_now.contains(&id) => id,
            _ => Uuid::new_v4(),
        };
        match build_policy(input, ctx, id, false, now_millis()) {
            Ok(p) => {
                out.links.push((p.id, precedence));
                out.owned.push(p);
            }
            Err(e) => errs.0.extend(prefixed(e, &path).0),
        }
    }
    errs.into_result(out).map_err(ApiError::from)
}

pub(crate) async fn list(
    State(state): State<AdminState>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Response, ApiError> {
    let page = params.page()?;
    let found = state.store.list_apps(page).await?;
    let mut items = Vec::with_capacity(found.items.len());
    for app in &found.items {
        items.push(render(&state, app).await?);
    }
    Ok(ok_list(items, page.page, page.per_page, found.total))
}

pub(crate) async fn create(
    State(state): State<AdminState>,
    ApiJson(input): ApiJson<AppInput>,
) -> Result<Response, ApiError> {
    let app = create_app(&state, &input).await?;
    Ok(ok(render(&state, &app).await?))
}

/// Validates and stores a new application with the policies of `input`.
pub(crate) async fn create_app(state: &AdminState, input: &AppInput) -> Result<Application, ApiError> {
    let draft = input.validate(&idp_ids(state).await?)?;
    let policies = resolve_policies(state, input.policies.as_deref().unwrap_or_default(), &[]).await?;
    let now = now_millis();
    let app = Application {
        id: AppId::generate(),
        name: draft.name,
        domain: draft.domain,
        destinations: draft.destinations,
        aud: generate_aud().map_err(|e| ApiError::internal(&e))?,
        settings: draft.settings,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_app(&app).await?;
    if let Err(e) = state.store.set_app_policies(app.id, &policies).await {
        // Leave nothing half-made behind.
        let _ = state.store.delete_app(app.id).await;
        return Err(e.into());
    }
    tracing::info!(app = %app.id, domain = %app.domain, "application created");
    Ok(app)
}

async fn load(state: &AdminState, uri: &OriginalUri, raw: &str) -> Result<Application, ApiError> {
    let id: AppId = path_id(uri, raw)?;
    state.store.get_app(id).await?.ok_or_else(|| ApiError::not_found("application"))
}

pub(crate) async fn get(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let app = load(&state, &uri, &id).await?;
    Ok(ok(render(&state, &app).await?))
}

async fn owned_ids(state: &AdminState, app: AppId) -> Result<Vec<Uuid>, ApiError> {
    Ok(state.store.app_policies(app).await?.into_iter().filter(|(p, _)| !p.reusable).map(|(p, _)| p.id).collect())
}

/// Full replace; `policies` absent keeps the attached policies.
pub(crate) async fn replace(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
    ApiJson(input): ApiJson<AppInput>,
) -> Result<Response, ApiError> {
    let old = load(&state, &uri, &id).await?;
    let app = replace_app(&state, old, &input).await?;
    Ok(ok(render(&state, &app).await?))
}

/// Validates and stores a full replace of `old`; `input.policies` absent keeps the attached
/// policies.
pub(crate) async fn replace_app(
    state: &AdminState,
    old: Application,
    input: &AppInput,
) -> Result<Application, ApiError> {
    let draft = input.validate(&idp_ids(state).await?)?;
    let policies = match &input.policies {
        Some(p) => Some(resolve_policies(state, p, &owned_ids(state, old.id).await?).await?),
        None => None,
    };
    let app = Application {
        name: draft.name,
        domain: draft.domain,
        destinations: draft.destinations,
        settings: draft.settings,
        updated_at: now_millis(),
        ..old
    };
    if !state.store.replace_app(&app).await? {
        return Err(ApiError::not_found("application"));
    }
    if let Some(p) = policies {
        state.store.set_app_policies(app.id, &p).await?;
    }
    Ok(app)
}

pub(crate) async fn delete(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let app = load(&state, &uri, &id).await?;
    state.store.delete_app(app.id).await?;
    tracing::info!(app = %app.id, "application deleted");
    Ok(ok(json!({"id": app.id.to_string()})))
}

// === application-scoped policies ===

pub(crate) async fn list_policies(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let app = load(&state, &uri, &id).await?;
    let policies = state.store.app_policies(app.id).await?;
    let n = policies.len() as u64;
    let items = policies.iter().map(|(p, prec)| render_policy(p, Some(*prec), None)).collect();
    Ok(ok_list(items, 1, u32::try_from(n.max(1)).unwrap_or(u32::MAX), n))
}

/// Adds a policy (owned, or a link to a reusable one) to the application.
pub(crate) async fn create_policy(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
    ApiJson(input): ApiJson<PolicyInput>,
) -> Result<Response, ApiError> {
    let app = load(&state, &uri, &id).await?;
    let (p, n) = add_app_policy(&state, app.id, input).await?;
    Ok(ok(render_policy(&p, Some(n), None)))
}

/// Validates `input` and attaches it to the application (after its other policies unless
/// `input.precedence` says otherwise); returns the stored policy and its precedence.
pub(crate) async fn add_app_policy(
    state: &AdminState,
    app: AppId,
    mut input: PolicyInput,
) -> Result<(gatehouse_core::policy::input::StoredPolicy, u32), ApiError> {
    let current = state.store.app_policies(app).await?;
    let next = current.iter().map(|(_, n)| *n).max().unwrap_or(0) + 1;
    input.precedence = Some(input.precedence.unwrap_or(i64::from(next)));
    let mut inputs: Vec<PolicyInput> = current
        .iter()
        .map(|(p, n)| PolicyInput {
            id: Some(p.id.to_string()),
            precedence: Some(i64::from(*n)),
            ..PolicyInput::default()
        })
        .collect();
    if input.is_link() || input.id.is_none() {
        inputs.push(input);
    } else {
        // An id on a full policy is ignored on create.
        inputs.push(PolicyInput { id: None, ..input });
    }
    let owned: Vec<Uuid> = current.iter().filter(|(p, _)| !p.reusable).map(|(p, _)| p.id).collect();
    let resolved = resolve_policies(state, &inputs, &owned).await?;
    let added = resolved.links.last().map(|(id, _)| *id);
    state.store.set_app_policies(app, &resolved).await?;
    let policies = state.store.app_policies(app).await?;
    policies.into_iter().find(|(p, _)| Some(p.id) == added).ok_or_else(|| ApiError::not_found("policy"))
}

async fn app_policy(
    state: &AdminState,
    uri: &OriginalUri,
    app: &str,
    policy: &str,
) -> Result<(Application, Vec<(gatehouse_core::policy::input::StoredPolicy, u32)>, Uuid), ApiError> {
    let app = load(state, uri, app).await?;
    let pid: Uuid = path_id(uri, policy)?;
    let policies = state.store.app_policies(app.id).await?;
    if !policies.iter().any(|(p, _)| p.id == pid) {
        return Err(ApiError::not_found("policy"));
    }
    Ok((app, policies, pid))
}

pub(crate) async fn get_policy(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, app, policy)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (_, policies, pid) = app_policy(&state, &uri, &app, &policy).await?;
    let (p, n) = policies.iter().find(|(p, _)| p.id == pid).ok_or_else(|| ApiError::not_found("policy"))?;
    Ok(ok(render_policy(p, Some(*n), None)))
}

pub(crate) async fn replace_policy(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, app, policy)): Path<(String, String, String)>,
    ApiJson(input): ApiJson<PolicyInput>,
) -> Result<Response, ApiError> {
    let (app, _, pid) = app_policy(&state, &uri, &app, &policy).await?;
    let (p, n) = replace_app_policy(&state, app.id, pid, input).await?;
    Ok(ok(render_policy(&p, Some(n), None)))
}

/// Validates `input` and replaces the application's own policy `pid` with it (reusable
/// policies are changed through `/access/policies`).
pub(crate) async fn replace_app_policy(
    state: &AdminState,
    app: AppId,
    pid: Uuid,
    input: PolicyInput,
) -> Result<(gatehouse_core::policy::input::StoredPolicy, u32), ApiError> {
    let policies = state.store.app_policies(app).await?;
    if !policies.iter().any(|(p, _)| p.id == pid) {
        return Err(ApiError::not_found("policy"));
    }
    let owned: Vec<Uuid> = policies.iter().filter(|(p, _)| !p.reusable).map(|(p, _)| p.id).collect();
    if !owned.contains(&pid) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            super::envelope::ErrorCode::InvalidRequest,
            "access.api.error.invalid_request: this is a reusable policy; change it through /access/policies",
        ));
    }
    let inputs: Vec<PolicyInput> = policies
        .iter()
        .map(|(p, n)| {
            if p.id == pid {
                PolicyInput {
                    id: Some(pid.to_string()),
                    precedence: Some(input.precedence.unwrap_or(i64::from(*n))),
                    ..input.clone()
                }
            } else {
                PolicyInput { id: Some(p.id.to_string()), precedence: Some(i64::from(*n)), ..PolicyInput::default() }
            }
        })
        .collect();
    let resolved = resolve_policies(state, &inputs, &owned).await?;
    state.store.set_app_policies(app, &resolved).await?;
    let policies = state.store.app_policies(app).await?;
    policies.into_iter().find(|(p, _)| p.id == pid).ok_or_else(|| ApiError::not_found("policy"))
}

/// Detaches a policy from the application (deleting it when the application owned it).
pub(crate) async fn delete_policy(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, app, policy)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (app, _, pid) = app_policy(&state, &uri, &app, &policy).await?;
    remove_app_policy(&state, app.id, pid).await?;
    Ok(ok(json!({"id": pid})))
}

/// Detaches policy `pid` from the application, deleting it when the application owned it.
pub(crate) async fn remove_app_policy(state: &AdminState, app: AppId, pid: Uuid) -> Result<(), ApiError> {
    let policies = state.store.app_policies(app).await?;
    if !policies.iter().any(|(p, _)| p.id == pid) {
        return Err(ApiError::not_found("policy"));
    }
    let links = policies.iter().filter(|(p, _)| p.id != pid).map(|(p, n)| (p.id, *n)).collect();
    state.store.set_app_policies(app, &AppPolicies { owned: Vec::new(), links }).await?;
    Ok(())
}
