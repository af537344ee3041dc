//! Reusable policies (`/access/policies`), Access groups (`/access/groups`), and the shared
//! rendering and validation of policies used by the application endpoints.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::now_millis;
use gatehouse_core::policy::input::{GroupInput, PolicyInput, RuleContext, StoredGroup, StoredPolicy};
use gatehouse_store::PolicyStore;
use serde_json::{Value, json};
use uuid::Uuid;

use super::envelope::{ApiError, ErrorCode, ok, ok_list};
use super::extract::{ApiJson, ApiQuery, PageParams, path_id};
use crate::AdminState;

/// Renders a policy in Cloudflare's shape. `precedence` in an application's context,
/// `app_count` for reusable policies.
pub(crate) fn render_policy(p: &StoredPolicy, precedence: Option<u32>, app_count: Option<u64>) -> Value {
    let rules = p.rules.to_json();
    let mut v = json!({
        "id": p.id,
        "uid": p.id,
        "name": p.name,
        "decision": match p.decision {
            gatehouse_core::policy::PolicyDecision::Allow => "allow",
            gatehouse_core::policy::PolicyDecision::Deny => "deny",
            gatehouse_core::policy::PolicyDecision::Bypass => "bypass",
            gatehouse_core::policy::PolicyDecision::NonIdentity => "non_identity",
        },
        "include": rules["include"],
        "require": rules["require"],
        "exclude": rules["exclude"],
        "session_duration": p.session_duration.map(|d| d.to_string()),
        "reusable": p.reusable,
        "approval_required": false,
        "purpose_justification_required": false,
        "isolation_required": false,
        "created_at": gatehouse_core::rfc3339(p.created_at),
        "updated_at": gatehouse_core::rfc3339(p.updated_at),
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(n) = precedence {
            obj.insert("precedence".into(), json!(n));
        }
        if let Some(n) = app_count {
            obj.insert("app_count".into(), json!(n));
        }
    }
    v
}

fn render_group(g: &StoredGroup) -> Value {
    let rules = g.rules.to_json();
    json!({
        "id": g.id, "uid": g.id, "name": g.name,
        "include": rules["include"], "require": rules["require"], "exclude": rules["exclude"],
        "is_default": false,
        "created_at": gatehouse_core::rfc3339(g.created_at),
        "updated_at": gatehouse_core::rfc3339(g.updated_at),
    })
}

/// The ids of existing Access groups, for validating `group` rules.
pub(crate) async fn group_ids(state: &AdminState) -> Result<Vec<Uuid>, ApiError> {
    Ok(state.store.all_groups().await?.into_iter().map(|g| g.id).collect())
}

/// Builds a policy from validated input.
pub(crate) fn build_policy(
    input: &PolicyInput,
    ctx: RuleContext<'_>,
    id: Uuid,
    reusable: bool,
    created_at: i64,
) -> Result<StoredPolicy, gatehouse_core::ValidationErrors> {
    let d = input.validate(ctx)?;
    Ok(StoredPolicy {
        id,
        name: d.name,
        decision: d.decision,
        rules: d.rules,
        session_duration: d.session_duration,
        reusable,
        created_at,
        updated_at: now_millis(),
    })
}

/// Whether `geo` rules may be written: only with a country source, which this installation
/// does not configure.
pub(crate) const GEO_ENABLED: bool = false;

pub(crate) async fn list(
    State(state): State<AdminState>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Response, ApiError> {
    let page = params.page()?;
    let found = state.store.list_reusable_policies(page).await?;
    let items: Vec<Value> = found.items.iter().map(|(p, n)| render_policy(p, None, Some(*n))).collect();
    Ok(ok_list(items, page.page, page.per_page, found.total))
}

pub(crate) async fn create(
    State(state): State<AdminState>,
    ApiJson(input): ApiJson<PolicyInput>,
) -> Result<Response, ApiError> {
    let policy = create_reusable_policy(&state, &input).await?;
    Ok(ok(render_policy(&policy, None, Some(0))))
}

/// Validates and stores a new reusable policy.
pub(crate) async fn create_reusable_policy(state: &AdminState, input: &PolicyInput) -> Result<StoredPolicy, ApiError> {
    let groups = group_ids(state).await?;
    let ctx = RuleContext { geo_enabled: GEO_ENABLED, groups: &groups };
    let policy = build_policy(input, ctx, Uuid::new_v4(), true, now_millis())?;
    state.store.insert_policy(&policy).await?;
    Ok(policy)
}

async fn load_policy(state: &AdminState, uri: &OriginalUri, raw: &str) -> Result<(StoredPolicy, u64), ApiError> {
    let id: Uuid = path_id(uri, raw)?;
    state.store.get_policy(id).await?.filter(|(p, _)| p.reusable).ok_or_else(|| ApiError::not_found("policy"))
}

pub(crate) async fn get(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (p, n) = load_policy(&state, &uri, &id).await?;
    Ok(ok(render_policy(&p, None, Some(n))))
}

pub(crate) async fn replace(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
    ApiJson(input): ApiJson<PolicyInput>,
) -> Result<Response, ApiError> {
    let (old, n) = load_policy(&state, &uri, &id).await?;
    let policy = replace_reusable_policy(&state, &old, &input).await?;
    Ok(ok(render_policy(&policy, None, Some(n))))
}

/// Validates and stores a full replace of the reusable policy `old`.
pub(crate) async fn replace_reusable_policy(
    state: &AdminState,
    old: &StoredPolicy,
    input: &PolicyInput,
) -> Result<StoredPolicy, ApiError> {
    let groups = group_ids(state).await?;
    let ctx = RuleContext { geo_enabled: GEO_ENABLED, groups: &groups };
    let policy = build_policy(input, ctx, old.id, true, old.created_at)?;
    state.store.replace_policy(&policy).await?;
    Ok(policy)
}

pub(crate) async fn delete(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (p, _) = load_policy(&state, &uri, &id).await?;
    state.store.delete_policy(p.id).await?;
    Ok(ok(json!({"id": p.id})))
}

pub(crate) async fn list_groups(
    State(state): State<AdminState>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Response, ApiError> {
    let page = params.page()?;
    let found = state.store.list_groups(page).await?;
    Ok(ok_list(found.items.iter().map(render_group).collect(), page.page, page.per_page, found.total))
}

pub(crate) async fn create_group(
    State(state): State<AdminState>,
    ApiJson(input): ApiJson<GroupInput>,
) -> Result<Response, ApiError> {
    Ok(ok(render_group(&create_access_group(&state, &input).await?)))
}

/// Validates and stores a new Access group.
pub(crate) async fn create_access_group(state: &AdminState, input: &GroupInput) -> Result<StoredGroup, ApiError> {
    let groups = group_ids(state).await?;
    let (name, rules) = input.validate(RuleContext { geo_enabled: GEO_ENABLED, groups: &groups })?;
    let now = now_millis();
    let g = StoredGroup { id: Uuid::new_v4(), name, rules, created_at: now, updated_at: now };
    state.store.insert_group(&g).await?;
    Ok(g)
}

async fn load_group(state: &AdminState, uri: &OriginalUri, raw: &str) -> Result<StoredGroup, ApiError> {
    let id: Uuid = path_id(uri, raw)?;
    state.store.get_group(id).await?.ok_or_else(|| ApiError::not_found("group"))
}

pub(crate) async fn get_group(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(ok(render_group(&load_group(&state, &uri, &id).await?)))
}

pub(crate) async fn replace_group(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
    ApiJson(input): ApiJson<GroupInput>,
) -> Result<Response, ApiError> {
    let old = load_group(&state, &uri, &id).await?;
    Ok(ok(render_group(&replace_access_group(&state, old, &input).await?)))
}

/// Validates and stores a full replace of the Access group `old`.
pub(crate) async fn replace_access_group(
    state: &AdminState,
    old: StoredGroup,
    input: &GroupInput,
) -> Result<StoredGroup, ApiError> {
    // A group may not reference itself.
    let groups: Vec<Uuid> = group_ids(state).await?.into_iter().filter(|g| *g != old.id).collect();
    let (name, rules) = input.validate(RuleContext { geo_enabled: GEO_ENABLED, groups: &groups })?;
    let g = StoredGroup { id: old.id, name, rules, created_at: old.created_at, updated_at: now_millis() };
    state.store.replace_group(&g).await?;
    Ok(g)
}

pub(crate) async fn delete_group(
    State(state): State<AdminState>,
    uri: OriginalUri,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let g = load_group(&state, &uri, &id).await?;
    state.store.delete_group(g.id).await?;
    Ok(ok(json!({"id": g.id})))
}

/// 400 for a bad `precedence`.
pub(crate) fn bad_precedence(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRequest,
        format!(
            "access.api.error.invalid_request: {path}: precedence must be a whole number from 1, unique within the application"
        ),
    )
}
