//! SCIM provisioning storage: users and groups per identity provider, their direct
//! memberships, the provisioning log, and nested-group drift noticed at sign-in.
//!
//! A resource is stored as its full SCIM JSON (without `id` and `meta`, which the store
//! owns) next to the columns queries need: `userName` and group `displayName` in lower case
//! (unique per IdP, so uniqueness is case-insensitive as Entra expects), `externalId`,
//! `active` and the work e-mail. Lists take a [`ScimFilter`], a small AST over those columns
//! that is turned into SQL with every value bound as a parameter; its size and the page size
//! are bounded. Memberships live in their own table so a member PATCH touches only the rows
//! it changes.
//!
//! This module stores and loads; what a deactivation or a membership change does to sessions
//! and identities is decided by the SCIM service, which calls the registry methods here.

use crate::BeginWrite as _;
use std::collections::HashMap;
use std::future::Future;

use gatehouse_core::{IdpId, UnixMillis};
use serde_json::Value;
use uuid::Uuid;

use crate::{Paged, Store, StoreError, on_pool};

/// Most resources one list returns.
pub const SCIM_MAX_PAGE: u32 = 1000;
/// Most comparisons one filter may hold.
pub const SCIM_MAX_FILTER_TERMS: usize = 64;
/// Deepest nesting of a filter.
pub const SCIM_MAX_FILTER_DEPTH: usize = 32;

/// A provisioned user.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUserRecord {
    /// SCIM id (assigned by Gatehouse).
    pub id: String,
    /// The IdP (SCIM population) it belongs to.
    pub idp_id: IdpId,
    /// `userName` as sent.
    pub user_name: String,
    /// `externalId` as sent.
    pub external_id: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// The work (or primary, or first) e-mail address.
    pub email: Option<String>,
    /// `active`.
    pub active: bool,
    /// The resource's JSON without `id` and `meta`.
    pub resource: Value,
    /// Incremented on every change (`meta.version`).
    pub version: i64,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
}

/// A provisioned group (members are kept separately).
#[derive(Debug, Clone, PartialEq)]
pub struct ScimGroupRecord {
    /// SCIM id.
    pub id: String,
    /// The IdP it belongs to.
    pub idp_id: IdpId,
    /// `displayName` (unique per IdP, case-insensitively).
    pub display_name: String,
    /// `externalId`: for Entra, the group's object id.
    pub external_id: Option<String>,
    /// The resource's JSON without `id`, `meta` and `members`.
    pub resource: Value,
    /// Incremented on every change.
    pub version: i64,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
}

/// A direct member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimMember {
    /// The member's SCIM user id.
    pub user_id: String,
    /// Its `userName`.
    pub user_name: String,
    /// Its `displayName`.
    pub display_name: Option<String>,
}

/// A membership change of one group, applied atomically with the group's new attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberChange {
    /// User ids to add (each must be a user of the same IdP).
    pub add: Vec<String>,
    /// User ids to remove (absent ones are ignored).
    pub remove: Vec<String>,
}

/// The attributes a [`ScimFilter`] can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimAttr {
    /// `id` (case-exact).
    Id,
    /// `externalId` (case-exact).
    ExternalId,
    /// `userName` (users only; case-insensitive).
    UserName,
    /// `displayName` (case-insensitive).
    DisplayName,
    /// `emails.value`, the work e-mail (users only; case-insensitive).
    Email,
    /// `active` (users only; boolean).
    Active,
    /// `meta.created` (Unix milliseconds).
    Created,
    /// `meta.lastModified` (Unix milliseconds).
    LastModified,
    /// `members.value` (groups only): a direct member's id.
    Member,
}

/// Comparison operators of [`ScimFilter::Compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains.
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Greater than (times only).
    Gt,
    /// Greater or equal (times only).
    Ge,
    /// Less than (times only).
    Lt,
    /// Less or equal (times only).
    Le,
}

/// A value compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScimValue {
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// A time in Unix milliseconds.
    Time(UnixMillis),
    /// `null`.
    Null,
}

/// A query over SCIM resources, translated from a SCIM filter by the SCIM service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScimFilter {
    /// `attr op value`.
    Compare {
        /// Attribute.
        attr: ScimAttr,
        /// Operator.
        op: ScimOp,
        /// Value.
        value: ScimValue,
    },
    /// `attr pr`.
    Present(ScimAttr),
    /// Both.
    And(Box<ScimFilter>, Box<ScimFilter>),
    /// Either.
    Or(Box<ScimFilter>, Box<ScimFilter>),
    /// Not.
    Not(Box<ScimFilter>),
}

/// A bound SQL parameter.
#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    Int(i64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Users,
    Groups,
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

/// Compiles a filter to a SQL condition whose placeholders start at `$first`.
fn compile(f: &ScimFilter, table: Table, first: usize) -> Result<(String, Vec<Bind>), StoreError> {
    let mut binds = Vec::new();
    let mut terms = 0;
    let sql = compile_node(f, table, first, 0, false, &mut terms, &mut binds)?;
    Ok((sql, binds))
}

/// `under_not`: inside a `NOT`, where a comparison with a NULL column must count as false
/// (not unknown) for the negation to hold. Elsewhere comparisons stay bare, so the
/// `(idp_id, user_name_lower)` and `(idp_id, display_lower)` indexes serve Entra's lookups.
fn compile_node(
    f: &ScimFilter,
    table: Table,
    first: usize,
    depth: usize,
    under_not: bool,
    terms: &mut usize,
    binds: &mut Vec<Bind>,
) -> Result<String, StoreError> {
    if depth > SCIM_MAX_FILTER_DEPTH {
        return Err(invalid(format!("the filter is nested more than {SCIM_MAX_FILTER_DEPTH} levels")));
    }
    match f {
        ScimFilter::And(a, b) | ScimFilter::Or(a, b) => {
            let joiner = if matches!(f, ScimFilter::And(..)) { "AND" } else { "OR" };
            let a = compile_node(a, table, first, depth + 1, under_not, terms, binds)?;
            let b = compile_node(b, table, first, depth + 1, under_not, terms, binds)?;
            Ok(format!("({a} {joiner} {b})"))
        }
        ScimFilter::Not(a) => Ok(format!("(NOT {})", compile_node(a, table, first, depth + 1, true, terms, binds)?)),
        ScimFilter::Present(attr) => {
            *terms += 1;
            check_terms(*terms)?;
            let (col, _) = column(*attr, table)?;
            Ok(match attr {
                ScimAttr::Member => member_exists(None),
                ScimAttr::Active | ScimAttr::Created | ScimAttr::LastModified | ScimAttr::Id => "(1 = 1)".into(),
                _ => format!("COALESCE(({col} IS NOT NULL AND {col} <> ''), FALSE)"),
            })
        }
        ScimFilter::Compare { attr, op, value } => {
            *terms += 1;
            check_terms(*terms)?;
            let sql = compare(*attr, *op, value, table, first, binds)?;
            Ok(if under_not { format!("COALESCE(({sql}), FALSE)") } else { sql })
        }
    }
}

fn check_terms(n: usize) -> Result<(), StoreError> {
    if n > SCIM_MAX_FILTER_TERMS {
        return Err(invalid(format!("the filter has more than {SCIM_MAX_FILTER_TERMS} comparisons")));
    }
    Ok(())
}

fn member_exists(param: Option<&str>) -> String {
    match param {
        Some(p) => {
            format!("EXISTS (SELECT 1 FROM scim_members m WHERE m.group_id = scim_groups.id AND m.user_id = {p})")
        }
        None => "EXISTS (SELECT 1 FROM scim_members m WHERE m.group_id = scim_groups.id)".into(),
    }
}

/// The column for an attribute and whether its strings are stored in lower case.
fn column(attr: ScimAttr, table: Table) -> Result<(&'static str, bool), StoreError> {
    let users = table == Table::Users;
    Ok(match attr {
        ScimAttr::Id => ("id", false),
        ScimAttr::ExternalId => ("external_id", false),
        ScimAttr::UserName if users => ("user_name_lower", true),
        ScimAttr::DisplayName => ("display_lower", true),
        ScimAttr::Email if users => ("email_lower", true),
        ScimAttr::Active if users => ("active", false),
        ScimAttr::Created => ("created_at", false),
        ScimAttr::LastModified => ("updated_at", false),
        ScimAttr::Member if !users => ("", false),
        other => {
            let what = if users { "users" } else { "groups" };
            return Err(invalid(format!("{other:?} cannot be filtered on for {what}")));
        }
    })
}

fn compare(
    attr: ScimAttr,
    op: ScimOp,
    value: &ScimValue,
    table: Table,
    first: usize,
    binds: &mut Vec<Bind>,
) -> Result<String, StoreError> {
    let (col, lower) = column(attr, table)?;
    let mut param = |b: Bind| {
        binds.push(b);
        format!("${}", first + binds.len() - 1)
    };
    let sql = match (attr, value) {
        (ScimAttr::Member, ScimValue::Str(s)) if op == ScimOp::Eq => member_exists(Some(&param(Bind::Text(s.clone())))),
        (ScimAttr::Member, _) => return Err(invalid("members can only be compared with eq and a string id")),
        (_, ScimValue::Null) => match op {
            ScimOp::Eq => format!("{col} IS NULL"),
            ScimOp::Ne => format!("{col} IS NOT NULL"),
            _ => return Err(invalid("null can only be compared with eq or ne")),
        },
        (ScimAttr::Active, ScimValue::Bool(b)) => match op {
            ScimOp::Eq => format!("{col} = {}", param(Bind::Bool(*b))),
            ScimOp::Ne => format!("{col} <> {}", param(Bind::Bool(*b))),
            _ => return Err(invalid("active can only be compared with eq or ne")),
        },
        (ScimAttr::Created | ScimAttr::LastModified, ScimValue::Time(t)) => {
            let sym = match op {
                ScimOp::Eq => "=",
                ScimOp::Ne => "<>",
                ScimOp::Gt => ">",
                ScimOp::Ge => ">=",
                ScimOp::Lt => "<",
                ScimOp::Le => "<=",
                _ => return Err(invalid("times can only be compared with eq, ne, gt, ge, lt or le")),
            };
            format!("{col} {sym} {}", param(Bind::Int(*t)))
        }
        (ScimAttr::Created | ScimAttr::LastModified | ScimAttr::Active, _) => {
            return Err(invalid(format!("{attr:?} needs a value of its own type")));
        }
        (_, ScimValue::Str(s)) => {
            let v = if lower { s.to_lowercase() } else { s.clone() };
            let p = param(Bind::Text(v));
            // substr/length/replace rather than LIKE: the same case-exact meaning on both
            // backends (SQLite's LIKE ignores ASCII case), and no wildcard escaping.
            match op {
                ScimOp::Eq => format!("{col} = {p}"),
                ScimOp::Ne => format!("({col} IS NULL OR {col} <> {p})"),
                ScimOp::Sw => format!("substr({col}, 1, length({p})) = {p}"),
                ScimOp::Ew => {
                    format!("(length({col}) >= length({p}) AND substr({col}, length({col}) - length({p}) + 1) = {p})")
                }
                ScimOp::Co => format!("({p} = '' OR replace({col}, {p}, '') <> {col})"),
                _ => return Err(invalid("strings can be compared with eq, ne, co, sw and ew")),
            }
        }
        (_, _) => return Err(invalid(format!("{attr:?} is compared with strings"))),
    };
    Ok(format!("({sql})"))
}

/// Binds a dynamic parameter list onto a query of either backend.
macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                Bind::Text(s) => q.bind(s.clone()),
                Bind::Int(i) => q.bind(*i),
                Bind::Bool(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// One SCIM request, as the provisioning log keeps it (Cloudflare's fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimLogRecord {
    /// Unique id.
    pub id: String,
    /// The IdP whose endpoint was called.
    pub idp_id: IdpId,
    /// When.
    pub logged_at: UnixMillis,
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub request_method: String,
    /// `USER`, `GROUP` or `CONFIG` (discovery endpoints).
    pub resource_type: String,
    /// Gatehouse's id of the resource.
    pub cf_resource_id: Option<String>,
    /// The IdP's id of the resource (`externalId`).
    pub idp_resource_id: Option<String>,
    /// The user's e-mail (`userName`), for users.
    pub resource_user_email: Option<String>,
    /// The group's name, for groups.
    pub resource_group_name: Option<String>,
    /// `SUCCESS` or `FAILURE`.
    pub status: String,
    /// Why it failed.
    pub error_description: Option<String>,
    /// The request body as sent (JSON text).
    pub request_body: Option<String>,
}

/// Which log entries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScimLogFilter {
    /// Only these IdPs (empty: all).
    pub idp_ids: Vec<IdpId>,
    /// Only these methods (upper case; empty: all).
    pub methods: Vec<String>,
    /// Only these resource types (empty: all).
    pub resource_types: Vec<String>,
    /// Only these outcomes (empty: all).
    pub statuses: Vec<String>,
    /// Gatehouse's resource id.
    pub cf_resource_id: Option<String>,
    /// The IdP's resource id.
    pub idp_resource_id: Option<String>,
    /// The user's e-mail (case-insensitive).
    pub resource_user_email: Option<String>,
    /// The group's name (case-insensitive).
    pub resource_group_name: Option<String>,
    /// Not before (inclusive).
    pub since: Option<UnixMillis>,
    /// Not after (inclusive).
    pub until: Option<UnixMillis>,
    /// Oldest first.
    pub ascending: bool,
}

/// A user who, at sign-in, was in a provisioned group only through nesting: the token said
/// member, SCIM has no direct membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimDriftRecord {
    /// The IdP.
    pub idp_id: IdpId,
    /// The SCIM user.
    pub scim_user_id: String,
    /// Its `userName`.
    pub user_name: String,
    /// The SCIM group.
    pub group_id: String,
    /// Its name.
    pub group_name: String,
    /// Its `externalId` (Entra object id).
    pub group_external_id: Option<String>,
    /// When the sign-in showed it.
    pub detected_at: UnixMillis,
}

/// What SCIM says about a user who is signing in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScimSignIn {
    /// SCIM has deactivated the user (`active: false`).
    pub deactivated: bool,
    /// Provisioned group names by lower-case `externalId`, for the token's groups.
    pub group_names: HashMap<String, String>,
    /// Groups the user reaches only through nesting (SCIM group ids).
    pub drift: Vec<String>,
}

/// Storage of SCIM resources, the provisioning log and drift.
pub trait ScimStore {
    /// Stores a new user. [`StoreError::Conflict`] when the IdP has a user with the same
    /// `userName` (ignoring case).
    fn scim_insert_user(&self, u: &ScimUserRecord) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The user `id` of `idp`.
    fn scim_get_user(
        &self,
        idp: IdpId,
        id: &str,
    ) -> impl Future<Output = Result<Option<ScimUserRecord>, StoreError>> + Send;
    /// Replaces a user's attributes (`idp`, `id` and `created_at` stay); `false` if missing.
    /// [`StoreError::Conflict`] on a `userName` clash.
    fn scim_update_user(&self, u: &ScimUserRecord) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes a user and its memberships; `false` if missing.
    fn scim_delete_user(&self, idp: IdpId, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Users of `idp` matching `filter`, in creation order, from `offset`, at most `limit`
    /// ([`SCIM_MAX_PAGE`]). [`StoreError::Invalid`] for a filter beyond the bounds.
    fn scim_list_users(
        &self,
        idp: IdpId,
        filter: Option<&ScimFilter>,
        offset: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Paged<ScimUserRecord>, StoreError>> + Send;
    /// Stores a new group with its members. [`StoreError::Conflict`] on a `displayName`
    /// clash, [`StoreError::Invalid`] when a member is not a user of the IdP.
    fn scim_insert_group(
        &self,
        g: &ScimGroupRecord,
        members: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The group `id` of `idp`.
    fn scim_get_group(
        &self,
        idp: IdpId,
        id: &str,
    ) -> impl Future<Output = Result<Option<ScimGroupRecord>, StoreError>> + Send;
    /// The direct members of a group, by `userName`.
    fn scim_group_members(&self, group: &str) -> impl Future<Output = Result<Vec<ScimMember>, StoreError>> + Send;
    /// Replaces a group's attributes and applies a membership change, atomically; `false` if
    /// missing. Errors as [`ScimStore::scim_insert_group`].
    fn scim_update_group(
        &self,
        g: &ScimGroupRecord,
        members: &MemberChange,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes a group; its former member ids, or `None` if missing.
    fn scim_delete_group(
        &self,
        idp: IdpId,
        id: &str,
    ) -> impl Future<Output = Result<Option<Vec<String>>, StoreError>> + Send;
    /// Groups of `idp` matching `filter`, like [`ScimStore::scim_list_users`].
    fn scim_list_groups(
        &self,
        idp: IdpId,
        filter: Option<&ScimFilter>,
        offset: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Paged<ScimGroupRecord>, StoreError>> + Send;
    /// The groups a user is a direct member of.
    fn scim_user_groups(&self, user: &str) -> impl Future<Output = Result<Vec<ScimGroupRecord>, StoreError>> + Send;
    /// Registry users (sign-in identities of the same IdP) that are this SCIM user: same
    /// e-mail as its `userName` or work e-mail, or its `externalId` as the Entra object id.
    fn scim_linked_users(
        &self,
        u: &ScimUserRecord,
    ) -> impl Future<Output = Result<Vec<crate::UserRecord>, StoreError>> + Send;
    /// At sign-in: whether SCIM deactivated the user with this subject and e-mail, the names
    /// of provisioned groups among `groups` (object ids), and — recorded for the admin API —
    /// the provisioned groups among `groups` that the SCIM user is not a direct member of.
    fn scim_sign_in(
        &self,
        idp: IdpId,
        subject: &str,
        email: &str,
        groups: &[String],
        now: UnixMillis,
    ) -> impl Future<Output = Result<ScimSignIn, StoreError>> + Send;
    /// Whether any registry user signed in through `idp` (when none did, provisioning has no
    /// live identity to update).
    fn scim_idp_has_sign_ins(&self, idp: IdpId) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Nested-group drift, newest first, optionally for one IdP.
    fn scim_drift(
        &self,
        idp: Option<IdpId>,
        page: crate::Page,
    ) -> impl Future<Output = Result<Paged<ScimDriftRecord>, StoreError>> + Send;
    /// Appends provisioning log entries in one transaction.
    fn scim_log_append(&self, entries: &[ScimLogRecord]) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A page of the provisioning log.
    fn scim_logs(
        &self,
        filter: &ScimLogFilter,
        page: crate::Page,
    ) -> impl Future<Output = Result<Paged<ScimLogRecord>, StoreError>> + Send;
    /// Sets a registry user's seat; `false` if the user is unknown.
    fn set_access_seat(
        &self,
        user: Uuid,
        seat: bool,
        now: UnixMillis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Replaces a registry user's identity (the groups the data plane evaluates) and tells
    /// every instance that cached identities are stale.
    fn set_user_identity(
        &self,
        user: Uuid,
        identity: &Value,
        now: UnixMillis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

type ScimUserRow =
    (String, String, String, Option<String>, Option<String>, Option<String>, bool, String, i64, i64, i64);
const USER_COLUMNS: &str =
    "id, idp_id, user_name, external_id, display_name, email_lower, active, resource, version, created_at, updated_at";

fn user_from_row(r: ScimUserRow) -> Result<ScimUserRecord, StoreError> {
    let (id, idp, user_name, external_id, display_name, email, active, resource, version, created_at, updated_at) = r;
    let corrupt = |w: &str| StoreError::Corrupt(format!("SCIM user {id}: {w}"));
    Ok(ScimUserRecord {
        idp_id: idp.parse().map_err(|_| corrupt("idp id"))?,
        resource: serde_json::from_str(&resource).map_err(|e| corrupt(&e.to_string()))?,
        id,
        user_name,
        external_id,
        display_name,
        email,
        active,
        version,
        created_at,
        updated_at,
    })
}

type ScimGroupRow = (String, String, String, Option<String>, String, i64, i64, i64);
const GROUP_COLUMNS: &str = "id, idp_id, display_name, external_id, resource, version, created_at, updated_at";

fn group_from_row(r: ScimGroupRow) -> Result<ScimGroupRecord, StoreError> {
    let (id, idp, display_name, external_id, resource, version, created_at, updated_at) = r;
    let corrupt = |w: &str| StoreError::Corrupt(format!("SCIM group {id}: {w}"));
    Ok(ScimGroupRecord {
        idp_id: idp.parse().map_err(|_| corrupt("idp id"))?,
        resource: serde_json::from_str(&resource).map_err(|e| corrupt(&e.to_string()))?,
        id,
        display_name,
        external_id,
        version,
        created_at,
        updated_at,
    })
}

type LogRow = (
    String,
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);
const LOG_COLUMNS: &str = "id, idp_id, logged_at, request_method, resource_type, cf_resource_id, idp_resource_id, \
     resource_user_email, resource_group_name, status, error_description, request_body";

fn log_from_row(r: LogRow) -> Result<ScimLogRecord, StoreError> {
    let (id, idp, logged_at, method, rtype, cf, idp_res, email, group, status, error, body) = r;
    Ok(ScimLogRecord {
        idp_id: idp.parse().map_err(|_| StoreError::Corrupt(format!("SCIM log {id}: idp id")))?,
        id,
        logged_at,
        request_method: method,
        resource_type: rtype,
        cf_resource_id: cf,
        idp_resource_id: idp_res,
        resource_user_email: email,
        resource_group_name: group,
        status,
        error_description: error,
        request_body: body,
    })
}

fn lower(s: Option<&str>) -> Option<String> {
    s.map(str::to_lowercase)
}

fn json_text(v: &Value) -> String {
    v.to_string()
}

fn limit_of(limit: u32) -> i64 {
    i64::from(limit.min(SCIM_MAX_PAGE))
}

fn offset_of(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}

/// The Entra object id in a registry subject `entra:{tid}:{oid}`.
fn object_id(subject: &str) -> Option<&str> {
    subject.strip_prefix("entra:").and_then(|r| r.rsplit_once(':')).map(|(_, oid)| oid)
}

impl ScimStore for Store {
    #[tracing::instrument(skip_all, fields(idp = %u.idp_id))]
    async fn scim_insert_user(&self, u: &ScimUserRecord) -> Result<(), StoreError> {
        on_pool!(self, p => {
            sqlx::query(
                "INSERT INTO scim_users (id, idp_id, user_name, user_name_lower, external_id, display_name, \
                 display_lower, email_lower, active, resource, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&u.id)
            .bind(u.idp_id.to_string())
            .bind(&u.user_name)
            .bind(u.user_name.to_lowercase())
            .bind(&u.external_id)
            .bind(&u.display_name)
            .bind(lower(u.display_name.as_deref()))
            .bind(lower(u.email.as_deref()))
            .bind(u.active)
            .bind(json_text(&u.resource))
            .bind(u.version)
            .bind(u.created_at)
            .bind(u.updated_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| StoreError::conflict_on_unique(e, "userName is already in use"))?;
        Ok(())
    }

    async fn scim_get_user(&self, idp: IdpId, id: &str) -> Result<Option<ScimUserRecord>, StoreError> {
        let row: Option<ScimUserRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS} FROM scim_users WHERE id = $1 AND idp_id = $2"
            )))
            .bind(id)
            .bind(idp.to_string())
            .fetch_optional(p)
            .await
        })?;
        row.map(user_from_row).transpose()
    }

    #[tracing::instrument(skip_all, fields(idp = %u.idp_id))]
    async fn scim_update_user(&self, u: &ScimUserRecord) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => {
            sqlx::query(
                "UPDATE scim_users SET user_name = $3, user_name_lower = $4, external_id = $5, display_name = $6, \
                 display_lower = $7, email_lower = $8, active = $9, resource = $10, version = $11, updated_at = $12 \
                 WHERE id = $1 AND idp_id = $2",
            )
            .bind(&u.id)
            .bind(u.idp_id.to_string())
            .bind(&u.user_name)
            .bind(u.user_name.to_lowercase())
            .bind(&u.external_id)
            .bind(&u.display_name)
            .bind(lower(u.display_name.as_deref()))
            .bind(lower(u.email.as_deref()))
            .bind(u.active)
            .bind(json_text(&u.resource))
            .bind(u.version)
            .bind(u.updated_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| StoreError::conflict_on_unique(e, "userName is already in use"))?;
        Ok(done == 1)
    }

    async fn scim_delete_user(&self, idp: IdpId, id: &str) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => {
            sqlx::query("DELETE FROM scim_users WHERE id = $1 AND idp_id = $2")
                .bind(id)
                .bind(idp.to_string())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    async fn scim_list_users(
        &self,
        idp: IdpId,
        filter: Option<&ScimFilter>,
        offset: u64,
        limit: u32,
    ) -> Result<Paged<ScimUserRecord>, StoreError> {
        let (cond, binds) = match filter {
            Some(f) => compile(f, Table::Users, 2)?,
            None => ("(1 = 1)".to_owned(), Vec::new()),
        };
        let n = binds.len();
        let list_sql = format!(
            "SELECT {USER_COLUMNS} FROM scim_users WHERE idp_id = $1 AND {cond} ORDER BY created_at, id LIMIT ${} OFFSET ${}",
            n + 2,
            n + 3
        );
        let count_sql = format!("SELECT COUNT(*) FROM scim_users WHERE idp_id = $1 AND {cond}");
        let idp = idp.to_string();
        let (rows, total): (Vec<ScimUserRow>, (i64,)) = on_pool!(self, p => {
            let rows: Vec<ScimUserRow> = if limit == 0 {
                Vec::new()
            } else {
                let q = sqlx::query_as(sqlx::AssertSqlSafe(list_sql.clone())).bind(&idp);
                bind_all!(q, &binds).bind(limit_of(limit)).bind(offset_of(offset)).fetch_all(p).await?
            };
            // A first page that is not full is everything (Entra's lookups by userName and
            // displayName): no second query needed.
            let total = if offset == 0 && limit > 0 && (rows.len() as u64) < u64::from(limit.min(SCIM_MAX_PAGE)) {
                (i64::try_from(rows.len()).unwrap_or(i64::MAX),)
            } else {
                let q = sqlx::query_as(sqlx::AssertSqlSafe(count_sql.clone())).bind(&idp);
                bind_all!(q, &binds).fetch_one(p).await?
            };
            (rows, total)
        });
        let items = rows.into_iter().map(user_from_row).collect::<Result<_, _>>()?;
        Ok(Paged { items, total: u64::try_from(total.0).unwrap_or(0) })
    }

    #[tracing::instrument(skip_all, fields(idp = %g.idp_id))]
    async fn scim_insert_group(&self, g: &ScimGroupRecord, members: &[String]) -> Result<(), StoreError> {
        let idp = g.idp_id.to_string();
        on_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            sqlx::query(
                "INSERT INTO scim_groups (id, idp_id, display_name, display_lower, external_id, resource, version, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&g.id)
            .bind(&idp)
            .bind(&g.display_name)
            .bind(g.display_name.to_lowercase())
            .bind(&g.external_id)
            .bind(json_text(&g.resource))
            .bind(g.version)
            .bind(g.created_at)
            .bind(g.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_on_unique(e, "displayName is already in use"))?;
            for m in members {
                let added = sqlx::query(
                    "INSERT INTO scim_members (group_id, user_id) SELECT $1, id FROM scim_users \
                     WHERE id = $2 AND idp_id = $3 ON CONFLICT DO NOTHING",
                )
                .bind(&g.id)
                .bind(m)
                .bind(&idp)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if added == 0 {
                    let exists: Option<(i64,)> = sqlx::query_as(
                        "SELECT CAST(1 AS BIGINT) FROM scim_members WHERE group_id = $1 AND user_id = $2",
                    )
                    .bind(&g.id)
                    .bind(m)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if exists.is_none() {
                        return Err(invalid(format!("member {m:?} is not a user of this identity provider")));
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn scim_get_group(&self, idp: IdpId, id: &str) -> Result<Option<ScimGroupRecord>, StoreError> {
        let row: Option<ScimGroupRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {GROUP_COLUMNS} FROM scim_groups WHERE id = $1 AND idp_id = $2"
            )))
            .bind(id)
            .bind(idp.to_string())
            .fetch_optional(p)
            .await
        })?;
        row.map(group_from_row).transpose()
    }

    async fn scim_group_members(&self, group: &str) -> Result<Vec<ScimMember>, StoreError> {
        let rows: Vec<(String, String, Option<String>)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT u.id, u.user_name, u.display_name FROM scim_members m JOIN scim_users u ON u.id = m.user_id \
                 WHERE m.group_id = $1 ORDER BY u.user_name_lower, u.id",
            )
            .bind(group)
            .fetch_all(p)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(user_id, user_name, display_name)| ScimMember { user_id, user_name, display_name })
            .collect())
    }

    #[tracing::instrument(skip_all, fields(idp = %g.idp_id))]
    async fn scim_update_group(&self, g: &ScimGroupRecord, members: &MemberChange) -> Result<bool, StoreError> {
        let idp = g.idp_id.to_string();
        let done = on_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let done = sqlx::query(
                "UPDATE scim_groups SET display_name = $3, display_lower = $4, external_id = $5, resource = $6, \
                 version = $7, updated_at = $8 WHERE id = $1 AND idp_id = $2",
            )
            .bind(&g.id)
            .bind(&idp)
            .bind(&g.display_name)
            .bind(g.display_name.to_lowercase())
            .bind(&g.external_id)
            .bind(json_text(&g.resource))
            .bind(g.version)
            .bind(g.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_on_unique(e, "displayName is already in use"))?
            .rows_affected();
            if done == 1 {
                for m in &members.remove {
                    sqlx::query("DELETE FROM scim_members WHERE group_id = $1 AND user_id = $2")
                        .bind(&g.id)
                        .bind(m)
                        .execute(&mut *tx)
                        .await?;
                }
                for m in &members.add {
                    // One statement per member: it inserts only a user of the same IdP.
                    let added = sqlx::query(
                        "INSERT INTO scim_members (group_id, user_id) SELECT $1, id FROM scim_users \
                         WHERE id = $2 AND idp_id = $3 ON CONFLICT DO NOTHING",
                    )
                    .bind(&g.id)
                    .bind(m)
                    .bind(&idp)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if added == 0 {
                        let known: Option<(String,)> =
                            sqlx::query_as("SELECT id FROM scim_users WHERE id = $1 AND idp_id = $2")
                                .bind(m)
                                .bind(&idp)
                                .fetch_optional(&mut *tx)
                                .await?;
                        if known.is_none() {
                            return Err(invalid(format!("member {m:?} is not a user of this identity provider")));
                        }
                    }
                }
                tx.commit().await?;
            }
            done
        });
        Ok(done == 1)
    }

    async fn scim_delete_group(&self, idp: IdpId, id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let idp = idp.to_string();
        on_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            // Write first, so SQLite takes the write lock before reading (a read-then-write
            // transaction can fail with SQLITE_BUSY when another writer commits in between).
            sqlx::query("UPDATE scim_groups SET version = version WHERE id = $1 AND idp_id = $2")
                .bind(id)
                .bind(&idp)
                .execute(&mut *tx)
                .await?;
            let members: Vec<(String,)> = sqlx::query_as(
                "SELECT m.user_id FROM scim_members m JOIN scim_groups g ON g.id = m.group_id \
                 WHERE g.id = $1 AND g.idp_id = $2",
            )
            .bind(id)
            .bind(&idp)
            .fetch_all(&mut *tx)
            .await?;
            let done = sqlx::query("DELETE FROM scim_groups WHERE id = $1 AND idp_id = $2")
                .bind(id)
                .bind(&idp)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok((done == 1).then(|| members.into_iter().map(|m| m.0).collect()))
        })
    }

    async fn scim_list_groups(
        &self,
        idp: IdpId,
        filter: Option<&ScimFilter>,
        offset: u64,
        limit: u32,
    ) -> Result<Paged<ScimGroupRecord>, StoreError> {
        let (cond, binds) = match filter {
            Some(f) => compile(f, Table::Groups, 2)?,
            None => ("(1 = 1)".to_owned(), Vec::new()),
        };
        let n = binds.len();
        let list_sql = format!(
            "SELECT {GROUP_COLUMNS} FROM scim_groups WHERE idp_id = $1 AND {cond} ORDER BY created_at, id LIMIT ${} OFFSET ${}",
            n + 2,
            n + 3
        );
        let count_sql = format!("SELECT COUNT(*) FROM scim_groups WHERE idp_id = $1 AND {cond}");
        let idp = idp.to_string();
        let (rows, total): (Vec<ScimGroupRow>, (i64,)) = on_pool!(self, p => {
            let rows: Vec<ScimGroupRow> = if limit == 0 {
                Vec::new()
            } else {
                let q = sqlx::query_as(sqlx::AssertSqlSafe(list_sql.clone())).bind(&idp);
                bind_all!(q, &binds).bind(limit_of(limit)).bind(offset_of(offset)).fetch_all(p).await?
            };
            // A first page that is not full is everything (Entra's lookups by userName and
            // displayName): no second query needed.
            let total = if offset == 0 && limit > 0 && (rows.len() as u64) < u64::from(limit.min(SCIM_MAX_PAGE)) {
                (i64::try_from(rows.len()).unwrap_or(i64::MAX),)
            } else {
                let q = sqlx::query_as(sqlx::AssertSqlSafe(count_sql.clone())).bind(&idp);
                bind_all!(q, &binds).fetch_one(p).await?
            };
            (rows, total)
        });
        let items = rows.into_iter().map(group_from_row).collect::<Result<_, _>>()?;
        Ok(Paged { items, total: u64::try_from(total.0).unwrap_or(0) })
    }

    async fn scim_user_groups(&self, user: &str) -> Result<Vec<ScimGroupRecord>, StoreError> {
        let rows: Vec<ScimGroupRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM scim_groups g JOIN scim_members m ON m.group_id = g.id WHERE m.user_id = $1 \
                 ORDER BY g.display_lower, g.id",
                GROUP_COLUMNS.split(", ").map(|c| format!("g.{c}")).collect::<Vec<_>>().join(", ")
            )))
            .bind(user)
            .fetch_all(p)
            .await
        })?;
        rows.into_iter().map(group_from_row).collect()
    }

    async fn scim_linked_users(&self, u: &ScimUserRecord) -> Result<Vec<crate::UserRecord>, StoreError> {
        let name = u.user_name.to_lowercase();
        let email = u.email.as_deref().map(str::to_lowercase).unwrap_or_else(|| name.clone());
        let suffix = u.external_id.as_deref().map(|e| format!(":{}", e.to_lowercase()));
        let ids: Vec<(String,)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT id FROM users WHERE idp_id = $1 AND (LOWER(email) = $2 OR LOWER(email) = $3 OR \
                 ($4 IS NOT NULL AND subject LIKE 'entra:%' AND length(subject) > length($4) AND \
                 LOWER(substr(subject, length(subject) - length($4) + 1)) = $4)) ORDER BY created_at, id",
            )
            .bind(u.idp_id.to_string())
            .bind(&name)
            .bind(&email)
            .bind(&suffix)
            .fetch_all(p)
            .await
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for (id,) in ids {
            let id = Uuid::parse_str(&id).map_err(|_| StoreError::Corrupt(format!("user {id}: id")))?;
            if let Some(user) = crate::UserStore::get_user(self, id).await? {
                out.push(user);
            }
        }
        Ok(out)
    }

    #[tracing::instrument(skip_all, fields(idp = %idp))]
    async fn scim_sign_in(
        &self,
        idp: IdpId,
        subject: &str,
        email: &str,
        groups: &[String],
        now: UnixMillis,
    ) -> Result<ScimSignIn, StoreError> {
        let idp_s = idp.to_string();
        let email = email.to_lowercase();
        let oid = object_id(subject).map(str::to_lowercase);
        let users: Vec<(String, bool)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT id, active FROM scim_users WHERE idp_id = $1 AND (user_name_lower = $2 OR email_lower = $2 \
                 OR ($3 IS NOT NULL AND LOWER(external_id) = $3)) ORDER BY created_at, id",
            )
            .bind(&idp_s)
            .bind(&email)
            .bind(&oid)
            .fetch_all(p)
            .await
        })?;
        let provisioned: Vec<(String, String, Option<String>)> = on_pool!(self, p => {
            sqlx::query_as("SELECT id, display_name, external_id FROM scim_groups WHERE idp_id = $1 AND external_id IS NOT NULL")
                .bind(&idp_s)
                .fetch_all(p)
                .await
        })?;
        let wanted: std::collections::HashSet<String> = groups.iter().map(|g| g.to_lowercase()).collect();
        let mut out = ScimSignIn { deactivated: users.iter().any(|(_, active)| !active), ..ScimSignIn::default() };
        let in_token: Vec<&(String, String, Option<String>)> = provisioned
            .iter()
            .filter(|(_, _, ext)| ext.as_deref().is_some_and(|e| wanted.contains(&e.to_lowercase())))
            .collect();
        for (_, name, ext) in &in_token {
            if let Some(ext) = ext {
                out.group_names.insert(ext.to_lowercase(), name.clone());
            }
        }
        for (user, _) in &users {
            let direct: Vec<(String,)> = on_pool!(self, p => {
                sqlx::query_as("SELECT group_id FROM scim_members WHERE user_id = $1")
                    .bind(user)
                    .fetch_all(p)
                    .await
            })?;
            let direct: std::collections::HashSet<String> = direct.into_iter().map(|d| d.0).collect();
            let drift: Vec<String> =
                in_token.iter().filter(|(id, _, _)| !direct.contains(id)).map(|(id, _, _)| id.clone()).collect();
            on_pool!(self, p => {
                let mut tx = p.begin_write().await?;
                sqlx::query("DELETE FROM scim_drift WHERE scim_user_id = $1").bind(user).execute(&mut *tx).await?;
                for g in &drift {
                    sqlx::query(
                        "INSERT INTO scim_drift (idp_id, scim_user_id, group_id, detected_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&idp_s)
                    .bind(user)
                    .bind(g)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            });
            out.drift.extend(drift);
        }
        Ok(out)
    }

    async fn scim_idp_has_sign_ins(&self, idp: IdpId) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = on_pool!(self, p => {
            sqlx::query_as("SELECT CAST(1 AS BIGINT) FROM users WHERE idp_id = $1 LIMIT 1").bind(idp.to_string()).fetch_optional(p).await
        })?;
        Ok(row.is_some())
    }

    async fn scim_drift(&self, idp: Option<IdpId>, page: crate::Page) -> Result<Paged<ScimDriftRecord>, StoreError> {
        let idp = idp.map(|i| i.to_string());
        type Row = (String, String, String, String, String, Option<String>, i64);
        let (rows, total): (Vec<Row>, (i64,)) = on_pool!(self, p => {
            let rows = sqlx::query_as(
                "SELECT d.idp_id, d.scim_user_id, u.user_name, d.group_id, g.display_name, g.external_id, d.detected_at \
                 FROM scim_drift d JOIN scim_users u ON u.id = d.scim_user_id JOIN scim_groups g ON g.id = d.group_id \
                 WHERE ($1 IS NULL OR d.idp_id = $1) ORDER BY d.detected_at DESC, d.scim_user_id, d.group_id \
                 LIMIT $2 OFFSET $3",
            )
            .bind(&idp)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(p)
            .await?;
            let total = sqlx::query_as("SELECT COUNT(*) FROM scim_drift WHERE ($1 IS NULL OR idp_id = $1)")
                .bind(&idp)
                .fetch_one(p)
                .await?;
            (rows, total)
        });
        let items = rows
            .into_iter()
            .map(|(idp, scim_user_id, user_name, group_id, group_name, group_external_id, detected_at)| {
                Ok(ScimDriftRecord {
                    idp_id: idp.parse().map_err(|_| StoreError::Corrupt("SCIM drift: idp id".into()))?,
                    scim_user_id,
                    user_name,
                    group_id,
                    group_name,
                    group_external_id,
                    detected_at,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Paged { items, total: u64::try_from(total.0).unwrap_or(0) })
    }

    async fn scim_log_append(&self, entries: &[ScimLogRecord]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        on_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            for e in entries {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO scim_log ({LOG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                )))
                .bind(&e.id)
                .bind(e.idp_id.to_string())
                .bind(e.logged_at)
                .bind(&e.request_method)
                .bind(&e.resource_type)
                .bind(&e.cf_resource_id)
                .bind(&e.idp_resource_id)
                .bind(&e.resource_user_email)
                .bind(&e.resource_group_name)
                .bind(&e.status)
                .bind(&e.error_description)
                .bind(&e.request_body)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn scim_logs(&self, f: &ScimLogFilter, page: crate::Page) -> Result<Paged<ScimLogRecord>, StoreError> {
        let mut binds: Vec<Bind> = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        let mut any_of = |col: &str, values: Vec<String>, binds: &mut Vec<Bind>| {
            if values.is_empty() {
                return;
            }
            let ps: Vec<String> = values
                .into_iter()
                .map(|v| {
                    binds.push(Bind::Text(v));
                    format!("${}", binds.len())
                })
                .collect();
            conds.push(format!("{col} IN ({})", ps.join(", ")));
        };
        any_of("idp_id", f.idp_ids.iter().map(ToString::to_string).collect(), &mut binds);
        any_of("request_method", f.methods.clone(), &mut binds);
        any_of("resource_type", f.resource_types.clone(), &mut binds);
        any_of("status", f.statuses.clone(), &mut binds);
        any_of("cf_resource_id", f.cf_resource_id.iter().cloned().collect(), &mut binds);
        any_of("idp_resource_id", f.idp_resource_id.iter().cloned().collect(), &mut binds);
        any_of("LOWER(resource_user_email)", lower(f.resource_user_email.as_deref()).into_iter().collect(), &mut binds);
        any_of("LOWER(resource_group_name)", lower(f.resource_group_name.as_deref()).into_iter().collect(), &mut binds);
        if let Some(since) = f.since {
            binds.push(Bind::Int(since));
            conds.push(format!("logged_at >= ${}", binds.len()));
        }
        if let Some(until) = f.until {
            binds.push(Bind::Int(until));
            conds.push(format!("logged_at <= ${}", binds.len()));
        }
        let cond = if conds.is_empty() { "1 = 1".to_owned() } else { conds.join(" AND ") };
        let dir = if f.ascending { "ASC" } else { "DESC" };
        let n = binds.len();
        let list_sql = format!(
            "SELECT {LOG_COLUMNS} FROM scim_log WHERE {cond} ORDER BY logged_at {dir}, id {dir} LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let count_sql = format!("SELECT COUNT(*) FROM scim_log WHERE {cond}");
        let (rows, total): (Vec<LogRow>, (i64,)) = on_pool!(self, p => {
            let q = sqlx::query_as(sqlx::AssertSqlSafe(list_sql.clone()));
            let rows = bind_all!(q, &binds).bind(page.limit()).bind(page.offset()).fetch_all(p).await?;
            let q = sqlx::query_as(sqlx::AssertSqlSafe(count_sql.clone()));
            let total = bind_all!(q, &binds).fetch_one(p).await?;
            (rows, total)
        });
        let items = rows.into_iter().map(log_from_row).collect::<Result<_, _>>()?;
        Ok(Paged { items, total: u64::try_from(total.0).unwrap_or(0) })
    }

    async fn set_access_seat(&self, user: Uuid, seat: bool, now: UnixMillis) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => {
            sqlx::query("UPDATE users SET access_seat = $2, updated_at = $3 WHERE id = $1")
                .bind(user.to_string())
                .bind(seat)
                .bind(now)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    async fn set_user_identity(&self, user: Uuid, identity: &Value, now: UnixMillis) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => {
            sqlx::query("UPDATE users SET identity = $2, updated_at = $3 WHERE id = $1")
                .bind(user.to_string())
                .bind(json_text(identity))
                .bind(now)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        if done == 1 {
            self.publish(crate::Change::Identities).await;
        }
        Ok(done == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(attr: ScimAttr, op: ScimOp, v: &str) -> ScimFilter {
        ScimFilter::Compare { attr, op, value: ScimValue::Str(v.into()) }
    }

    #[test]
    fn values_are_bound_never_inlined() {
        let f = ScimFilter::Or(
            Box::new(cmp(ScimAttr::UserName, ScimOp::Eq, "x' OR 1=1 --")),
            Box::new(cmp(ScimAttr::ExternalId, ScimOp::Co, "A")),
        );
        let (sql, binds) = compile(&f, Table::Users, 2).unwrap_or_else(|e| panic!("{e}"));
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert!(sql.contains("$2") && sql.contains("$3"), "{sql}");
        assert!(matches!(&binds[0], Bind::Text(s) if s == "x' or 1=1 --"));
        assert!(matches!(&binds[1], Bind::Text(s) if s == "A"));
    }

    #[test]
    fn bounds_and_types_are_enforced() {
        let mut f = cmp(ScimAttr::UserName, ScimOp::Eq, "a");
        for _ in 0..SCIM_MAX_FILTER_TERMS {
            f = ScimFilter::And(Box::new(f), Box::new(cmp(ScimAttr::UserName, ScimOp::Eq, "a")));
        }
        assert!(matches!(compile(&f, Table::Users, 2), Err(StoreError::Invalid(_))));
        let mut deep = cmp(ScimAttr::UserName, ScimOp::Eq, "a");
        for _ in 0..=SCIM_MAX_FILTER_DEPTH {
            deep = ScimFilter::Not(Box::new(deep));
        }
        assert!(matches!(compile(&deep, Table::Users, 2), Err(StoreError::Invalid(_))));
        assert!(compile(&cmp(ScimAttr::UserName, ScimOp::Gt, "a"), Table::Users, 2).is_err());
        assert!(compile(&cmp(ScimAttr::Member, ScimOp::Eq, "a"), Table::Users, 2).is_err());
        assert!(compile(&cmp(ScimAttr::Member, ScimOp::Eq, "a"), Table::Groups, 2).is_ok());
        assert!(compile(&cmp(ScimAttr::Active, ScimOp::Eq, "true"), Table::Users, 2).is_err());
    }

    #[test]
    fn object_id_is_taken_from_entra_subjects_only() {
        assert_eq!(object_id("entra:t:o"), Some("o"));
        assert_eq!(object_id("oidc:https://x#s"), None);
    }
}
