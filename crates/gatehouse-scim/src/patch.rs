//! SCIM PATCH (RFC 7644 §3.5.2) applied to a User or Group held as JSON, with the quirks of
//! Entra ID's provisioning service: capitalised `op` names (`Replace`), `active` as the
//! strings `"True"`/`"False"`, path-less operations whose keys are dotted (`name.givenName`)
//! or URN-qualified, value-filter paths that must create the element they select
//! (`emails[type eq "work"].value`), member removal listed in `value` rather than in the path,
//! and a manager given either as a bare id or as `{"value": id}`.
//!
//! [`apply_patch`] is pure and atomic: either every operation applies or the resource is left
//! as it was and a 400 [`ScimError`] says which operation failed and why. It never panics on
//! any body. Attribute names are matched case-insensitively; existing keys keep their
//! spelling and new keys take the schema's spelling when the attribute is known.
//!
//! String comparison in value filters and de-duplication of multi-valued attributes is
//! case-insensitive, as RFC 7643 declares for almost every attribute, except for the `value`
//! of `members` and `groups` (resource ids), of `x509Certificates`, and for `$ref`.
//!
//! Removing something that is already absent succeeds without change, including a filter
//! that matches nothing: Entra retries a failed operation for weeks, so a 400 for a member
//! who is already gone would only fill its provisioning logs.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimType};
use crate::filter::{AttrPath, CompareOp, Filter};
use crate::path::{self, PatchPath};

/// Schema URI a PATCH request body must list.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The enterprise User extension, stored under this key of a User.
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Most operations accepted in one request. Entra batches group members into few operations,
/// so this only stops a body built to make the server work.
pub const MAX_OPERATIONS: usize = 1000;

const CORE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const CORE_GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Which kind of resource is patched; decides the known attributes and extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// `urn:ietf:params:scim:schemas:core:2.0:User` (with the enterprise extension).
    User,
    /// `urn:ietf:params:scim:schemas:core:2.0:Group`.
    Group,
}

impl ResourceKind {
    fn core_schema(self) -> &'static str {
        match self {
            Self::User => CORE_USER_SCHEMA,
            Self::Group => CORE_GROUP_SCHEMA,
        }
    }
}

/// What a successful PATCH changed, for the effects that follow it (sessions of a disabled
/// user, group membership in access policies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchOutcome {
    /// Whether the resource differs from before.
    pub changed: bool,
    /// Whether `active` differs from before (including being set or removed).
    pub active_changed: bool,
    /// `active` after the patch; `None` when the resource has no boolean `active`.
    pub active: Option<bool>,
    /// Member ids present after the patch and not before, in resource order.
    pub members_added: Vec<String>,
    /// Member ids present before the patch and not after, in resource order.
    pub members_removed: Vec<String>,
}

/// Applies a SCIM PatchOp request `body` to `resource` (a User or Group in SCIM JSON).
///
/// On success the resource holds the result and the outcome says what changed; on error the
/// resource is untouched. Errors are 400 with `invalidSyntax` (malformed body or operation),
/// `invalidPath`, `invalidValue`, `noTarget` or `mutability` (an attempt to change `id`).
/// Writes to `meta` and `schemas`, and to attributes of extension schemas the resource does
/// not have, are ignored. A resource that is not a JSON object is a 500: it came from the
/// store, not from the client.
pub fn apply_patch(resource: &mut Value, body: &Value, kind: ResourceKind) -> Result<PatchOutcome, ScimError> {
    let ops = parse_body(body)?;
    let Value::Object(original) = &*resource else {
        return Err(ScimError { status: 500, scim_type: None, detail: "stored resource is not a JSON object".into() });
    };
    let mut work = original.clone();
    for (i, op) in ops.iter().enumerate() {
        apply_operation(&mut work, kind, op).map_err(|mut e| {
            e.detail =
                format!("Operations[{i}] ({} {}): {}", op.op.as_str(), op.raw_path.unwrap_or("without path"), e.detail);
            e
        })?;
    }
    if work != *original {
        tidy(&mut work, kind);
    }
    let outcome = outcome(original, &work);
    *resource = Value::Object(work);
    Ok(outcome)
}

// ---------------------------------------------------------------------------------------------
// Request body

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Replace => "replace",
            Self::Remove => "remove",
        }
    }
}

#[derive(Debug)]
struct Operation<'a> {
    op: Op,
    raw_path: Option<&'a str>,
    path: Option<PatchPath>,
    value: Option<&'a Value>,
}

fn invalid_syntax(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidSyntax, detail)
}

fn invalid_value(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidValue, detail)
}

fn invalid_path(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidPath, detail)
}

fn no_target(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::NoTarget, detail)
}

/// Validates the whole body before anything is applied, so a malformed last operation is an
/// `invalidSyntax`/`invalidPath` rather than whatever the earlier ones would have hit.
fn parse_body(body: &Value) -> Result<Vec<Operation<'_>>, ScimError> {
    let Value::Object(body) = body else {
        return Err(invalid_syntax("the PATCH body must be a JSON object"));
    };
    let schemas = get_ci(body, "schemas").ok_or_else(|| invalid_syntax("the PATCH body has no \"schemas\""))?;
    let listed = schemas
        .as_array()
        .is_some_and(|s| s.iter().any(|u| u.as_str().is_some_and(|u| u.trim().eq_ignore_ascii_case(PATCH_OP_SCHEMA))));
    if !listed {
        return Err(invalid_syntax(format!("\"schemas\" must be an array containing {PATCH_OP_SCHEMA:?}")));
    }
    let ops = get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_syntax("the PATCH body needs an \"Operations\" array"))?;
    if ops.is_empty() {
        return Err(invalid_syntax("\"Operations\" is empty"));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(invalid_syntax(format!("more than {MAX_OPERATIONS} operations in one request")));
    }
    ops.iter().enumerate().map(|(i, op)| parse_operation(op).map_err(|e| prefix(e, i))).collect()
}

fn prefix(mut e: ScimError, i: usize) -> ScimError {
    e.detail = format!("Operations[{i}]: {}", e.detail);
    e
}

fn parse_operation(op: &Value) -> Result<Operation<'_>, ScimError> {
    let Value::Object(op) = op else {
        return Err(invalid_syntax("an operation must be a JSON object"));
    };
    let name = get_ci(op, "op").and_then(Value::as_str).ok_or_else(|| invalid_syntax("\"op\" must be a string"))?;
    let kind = match name.trim().to_ascii_lowercase().as_str() {
        "add" => Op::Add,
        "replace" => Op::Replace,
        "remove" => Op::Remove,
        _ => return Err(invalid_syntax(format!("unknown op {name:?}; expected add, replace or remove"))),
    };
    // Some clients send `"path": ""` or `null` for a path-less operation.
    let raw_path = match get_ci(op, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(invalid_path("\"path\" must be a string")),
    };
    let path =
        raw_path.map(|p| path::parse(p).map_err(|e| invalid_path(format!("path {p:?}: {}", e.reason)))).transpose()?;
    let value = get_ci(op, "value");
    match (kind, &path, value) {
        (Op::Remove, None, _) => Err(no_target("remove needs a path")),
        (Op::Add | Op::Replace, _, None) => Err(invalid_value(format!("{} needs a value", kind.as_str()))),
        (Op::Add | Op::Replace, None, Some(v)) if !v.is_object() => {
            Err(invalid_value(format!("{} without a path needs an object value", kind.as_str())))
        }
        _ => Ok(Operation { op: kind, raw_path, path, value }),
    }
}

// ---------------------------------------------------------------------------------------------
// Schema knowledge

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Single-valued string.
    Text,
    /// Single-valued boolean; Entra sends `"True"`/`"False"`.
    Bool,
    /// Single-valued complex (`name`).
    Complex,
    /// Multi-valued complex (`emails`, `members`).
    Multi,
    /// The enterprise `manager` reference: a bare id or `{"value": id}`.
    Manager,
    /// Not in the schema and not multi-valued or complex in the resource or the value.
    Unknown,
}

#[derive(Debug)]
struct Attr {
    name: &'static str,
    shape: Shape,
    subs: &'static [&'static str],
    required: bool,
}

const fn attr(name: &'static str, shape: Shape, subs: &'static [&'static str]) -> Attr {
    Attr { name, shape, subs, required: false }
}

const NAME_SUBS: &[&str] =
    &["formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"];
const MULTI_SUBS: &[&str] = &[
    "value",
    "display",
    "type",
    "primary",
    "$ref",
    "formatted",
    "streetAddress",
    "locality",
    "region",
    "postalCode",
    "country",
];
const MANAGER_SUBS: &[&str] = &["value", "$ref", "displayName"];

const USER_ATTRS: &[Attr] = &[
    Attr { name: "userName", shape: Shape::Text, subs: &[], required: true },
    attr("name", Shape::Complex, NAME_SUBS),
    attr("displayName", Shape::Text, &[]),
    attr("nickName", Shape::Text, &[]),
    attr("profileUrl", Shape::Text, &[]),
    attr("title", Shape::Text, &[]),
    attr("userType", Shape::Text, &[]),
    attr("preferredLanguage", Shape::Text, &[]),
    attr("locale", Shape::Text, &[]),
    attr("timezone", Shape::Text, &[]),
    attr("active", Shape::Bool, &[]),
    attr("password", Shape::Text, &[]),
    attr("emails", Shape::Multi, MULTI_SUBS),
    attr("phoneNumbers", Shape::Multi, MULTI_SUBS),
    attr("ims", Shape::Multi, MULTI_SUBS),
    attr("photos", Shape::Multi, MULTI_SUBS),
    attr("addresses", Shape::Multi, MULTI_SUBS),
    attr("groups", Shape::Multi, MULTI_SUBS),
    attr("entitlements", Shape::Multi, MULTI_SUBS),
    attr("roles", Shape::Multi, MULTI_SUBS),
    attr("x509Certificates", Shape::Multi, MULTI_SUBS),
    attr("externalId", Shape::Text, &[]),
];

const GROUP_ATTRS: &[Attr] = &[
    Attr { name: "displayName", shape: Shape::Text, subs: &[], required: true },
    attr("members", Shape::Multi, MULTI_SUBS),
    attr("externalId", Shape::Text, &[]),
];

const ENTERPRISE_ATTRS: &[Attr] = &[
    attr("employeeNumber", Shape::Text, &[]),
    attr("costCenter", Shape::Text, &[]),
    attr("organization", Shape::Text, &[]),
    attr("division", Shape::Text, &[]),
    attr("department", Shape::Text, &[]),
    attr("manager", Shape::Manager, MANAGER_SUBS),
];

/// Where an attribute lives: the resource's top level or an extension object.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Root,
    Ext {
        key: String,
        enterprise: bool,
    },
    /// A schema the resource does not have: tolerated and ignored.
    Ignored,
}

fn resolve_scope(root: &Map<String, Value>, kind: ResourceKind, uri: Option<&str>) -> Scope {
    let Some(uri) = uri else { return Scope::Root };
    if uri.eq_ignore_ascii_case(kind.core_schema()) {
        return Scope::Root;
    }
    let ext = |spelling: &str, enterprise: bool| Scope::Ext {
        key: find_key(root, spelling).unwrap_or_else(|| spelling.to_owned()),
        enterprise,
    };
    if kind == ResourceKind::User && uri.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) {
        return ext(ENTERPRISE_USER_SCHEMA, true);
    }
    // Custom extensions are honoured when the resource was created with them.
    let listed = get_ci(root, "schemas")
        .and_then(Value::as_array)
        .and_then(|s| s.iter().filter_map(Value::as_str).find(|s| s.eq_ignore_ascii_case(uri)));
    match listed {
        Some(s) if !s.eq_ignore_ascii_case(CORE_USER_SCHEMA) && !s.eq_ignore_ascii_case(CORE_GROUP_SCHEMA) => {
            ext(s, false)
        }
        _ => Scope::Ignored,
    }
}

fn attr_info(kind: ResourceKind, scope: &Scope, name: &str) -> Option<&'static Attr> {
    let table = match (scope, kind) {
        (Scope::Root, ResourceKind::User) => USER_ATTRS,
        (Scope::Root, ResourceKind::Group) => GROUP_ATTRS,
        (Scope::Ext { enterprise: true, .. }, _) => ENTERPRISE_ATTRS,
        _ => return None,
    };
    table.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// The schema's spelling of `name` when it is one of `known`, else `name` as sent.
fn canon(known: &[&'static str], name: &str) -> String {
    known.iter().find(|k| k.eq_ignore_ascii_case(name)).map_or_else(|| name.to_owned(), |k| (*k).to_owned())
}

/// Whether string comparison on `sub` of elements of `attr` is case-sensitive.
fn case_exact(attr: &str, sub: &str) -> bool {
    sub == "$ref" || (sub.eq_ignore_ascii_case("value") && value_case_exact(attr))
}

fn value_case_exact(attr: &str) -> bool {
    ["members", "groups", "x509Certificates"].iter().any(|a| a.eq_ignore_ascii_case(attr))
}

// ---------------------------------------------------------------------------------------------
// JSON helpers

/// The existing key matching `name`: the exact spelling first, then any case.
fn find_key(map: &Map<String, Value>, name: &str) -> Option<String> {
    if map.contains_key(name) {
        return Some(name.to_owned());
    }
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn get_ci<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// The object under `key`, created (or replacing a non-object) when needed.
fn object_slot<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let slot = map.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// The array under `key`; a single stored value becomes a one-element array.
fn array_slot<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Vec<Value>> {
    let slot = map.entry(key.to_owned()).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        let old = slot.take();
        *slot = Value::Array(if old.is_null() { Vec::new() } else { vec![old] });
    }
    slot.as_array_mut()
}

fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        // .NET's bool.TryParse, which Microsoft's reference server uses: any case, trimmed.
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Value normalisation

fn norm_scalar(info: Option<&Attr>, name: &str, v: &Value) -> Result<Value, ScimError> {
    match info.map(|i| i.shape) {
        Some(Shape::Text) => match v {
            Value::String(s) if s.trim().is_empty() && info.is_some_and(|i| i.required) => {
                Err(invalid_value(format!("{name} must not be empty")))
            }
            Value::String(_) => Ok(v.clone()),
            _ => Err(invalid_value(format!("{name} must be a string, not {v}"))),
        },
        Some(Shape::Bool) => parse_bool(v)
            .map(Value::Bool)
            .ok_or_else(|| invalid_value(format!("{name} must be true or false, not {v}"))),
        _ => Ok(v.clone()),
    }
}

/// A sub-attribute value: `primary` becomes a boolean, `name` parts must be strings.
fn norm_sub(info: Option<&Attr>, sub: &str, v: &Value) -> Result<Value, ScimError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match info.map(|i| i.shape) {
        Some(Shape::Multi) if sub.eq_ignore_ascii_case("primary") => parse_bool(v)
            .map(Value::Bool)
            .ok_or_else(|| invalid_value(format!("primary must be true or false, not {v}"))),
        Some(Shape::Complex) if !v.is_string() => Err(invalid_value(format!("{sub} must be a string, not {v}"))),
        _ => Ok(v.clone()),
    }
}

/// An element of a multi-valued attribute: known sub-attribute spellings, no nulls (`"$ref":
/// null` from Entra means nothing), and a bare scalar of a known attribute taken as its `value`.
fn norm_element(info: Option<&Attr>, name: &str, v: &Value) -> Result<Value, ScimError> {
    let subs = info.map_or(&[][..], |i| i.subs);
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, sv) in m {
                if !sv.is_null() {
                    out.insert(canon(subs, k), norm_sub(info, k, sv)?);
                }
            }
            Ok(Value::Object(out))
        }
        Value::String(_) | Value::Number(_) | Value::Bool(_) if info.is_some() => {
            Ok(Value::Object(Map::from_iter([("value".to_owned(), v.clone())])))
        }
        Value::Array(_) | Value::Null if info.is_some() => {
            Err(invalid_value(format!("an element of {name} must be an object, not {v}")))
        }
        _ => Ok(v.clone()),
    }
}

fn elements(info: Option<&Attr>, name: &str, v: &Value) -> Result<Vec<Value>, ScimError> {
    match v {
        Value::Array(items) => items.iter().filter(|i| !i.is_null()).map(|i| norm_element(info, name, i)).collect(),
        Value::Null => Ok(Vec::new()),
        one => Ok(vec![norm_element(info, name, one)?]),
    }
}

/// The manager reference as stored (`{"value": id, ...}`), or `None` to clear it. Entra's
/// engine sends a bare id; its validator sends `{"value": id}` and clears with `{"value": ""}`.
fn manager_value(v: &Value) -> Result<Option<Value>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(_) => Ok(Some(Value::Object(Map::from_iter([("value".to_owned(), v.clone())])))),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, sv) in m {
                if !sv.is_null() {
                    out.insert(canon(MANAGER_SUBS, k), sv.clone());
                }
            }
            match out.get("value") {
                None if out.is_empty() => Ok(None),
                None => Err(invalid_value("manager needs a \"value\" (the manager's id)")),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(_)) => Ok(Some(Value::Object(out))),
                Some(other) => Err(invalid_value(format!("manager.value must be a string, not {other}"))),
            }
        }
        _ => Err(invalid_value(format!("manager must be an id or {{\"value\": id}}, not {v}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Applying operations

fn apply_operation(root: &mut Map<String, Value>, kind: ResourceKind, op: &Operation<'_>) -> Result<(), ScimError> {
    match (&op.path, op.value) {
        (Some(p), value) => apply_path(root, kind, op.op, p, value.filter(|v| op.op != Op::Remove || !v.is_null())),
        (None, Some(Value::Object(m))) => apply_object(root, kind, op.op, None, m),
        // parse_operation refuses the other combinations.
        (None, _) => Err(no_target("an operation without a path needs an object value")),
    }
}

/// A path-less add/replace: each key is an attribute path, possibly dotted or URN-qualified.
fn apply_object(
    root: &mut Map<String, Value>,
    kind: ResourceKind,
    op: Op,
    schema: Option<&str>,
    value: &Map<String, Value>,
) -> Result<(), ScimError> {
    for (key, v) in value {
        let mut p =
            path::parse(key).map_err(|e| invalid_path(format!("attribute {key:?} in the value: {}", e.reason)))?;
        if let (Some(schema), None) = (schema, &p.attr.uri) {
            p.attr.uri = Some(schema.to_owned());
        }
        apply_path(root, kind, op, &p, Some(v))?;
    }
    Ok(())
}

/// A path naming a whole schema (`urn:...:enterprise:2.0:User`) rather than an attribute.
fn schema_path(root: &Map<String, Value>, kind: ResourceKind, p: &PatchPath) -> Option<(String, Scope)> {
    let (Some(uri), None, None) = (&p.attr.uri, &p.attr.sub, &p.filter) else { return None };
    let full = format!("{uri}:{}", p.attr.name);
    match resolve_scope(root, kind, Some(&full)) {
        Scope::Ignored => None,
        scope => Some((full, scope)),
    }
}

fn apply_path(
    root: &mut Map<String, Value>,
    kind: ResourceKind,
    op: Op,
    p: &PatchPath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if let Some((full, scope)) = schema_path(root, kind, p) {
        return match (scope, op, value) {
            (Scope::Ext { key, .. }, Op::Remove, _) | (Scope::Ext { key, .. }, _, Some(Value::Null)) => {
                root.remove(&key);
                Ok(())
            }
            (Scope::Root, Op::Remove, _) => Err(no_target("the core schema cannot be removed")),
            (_, _, Some(Value::Object(m))) => apply_object(root, kind, op, Some(&full), m),
            _ => Err(invalid_value(format!("the value for {full} must be an object"))),
        };
    }
    let scope = resolve_scope(root, kind, p.attr.uri.as_deref());
    let info = attr_info(kind, &scope, &p.attr.name);
    let container = match &scope {
        Scope::Ignored => return Ok(()),
        Scope::Root => {
            if read_only(root, op, p, value)? {
                return Ok(());
            }
            root
        }
        Scope::Ext { key, .. } => {
            if op == Op::Remove && !root.contains_key(key) {
                return Ok(());
            }
            match object_slot(root, key) {
                Some(m) => m,
                None => return Ok(()),
            }
        }
    };
    let name = p.attr.name.as_str();
    let key = find_key(container, name).unwrap_or_else(|| info.map_or(name, |i| i.name).to_owned());
    let shape = info.map(|i| i.shape).unwrap_or_else(|| match container.get(&key).or(value) {
        Some(Value::Array(_)) => Shape::Multi,
        Some(Value::Object(_)) => Shape::Complex,
        _ => Shape::Unknown,
    });
    let t = Target { info, name, key: &key, shape };
    match (&p.filter, p.attr.sub.as_deref()) {
        (Some(f), _) => t.filtered(container, op, f, p.sub_after_filter.as_deref(), value),
        (None, Some(sub)) => t.sub(container, op, sub, value),
        (None, None) => t.whole(container, op, value),
    }
}

/// Handles `id`, `schemas` and `meta`; true when the operation is done with.
fn read_only(root: &Map<String, Value>, op: Op, p: &PatchPath, value: Option<&Value>) -> Result<bool, ScimError> {
    let name = p.attr.name.as_str();
    if name.eq_ignore_ascii_case("schemas") || name.eq_ignore_ascii_case("meta") {
        // Server-maintained; Entra and other clients echo them back, so ignore instead of failing.
        return Ok(true);
    }
    if !name.eq_ignore_ascii_case("id") {
        return Ok(false);
    }
    let unchanged = op != Op::Remove
        && p.attr.sub.is_none()
        && p.filter.is_none()
        && value.is_some_and(|v| get_ci(root, "id") == Some(v));
    if unchanged { Ok(true) } else { Err(ScimError::bad_request(ScimType::Mutability, "id is read-only")) }
}

/// One attribute of one container, with what the schema knows about it.
struct Target<'a> {
    info: Option<&'static Attr>,
    name: &'a str,
    key: &'a str,
    shape: Shape,
}

impl Target<'_> {
    fn subs(&self) -> &'static [&'static str] {
        self.info.map_or(&[], |i| i.subs)
    }

    fn remove(&self, c: &mut Map<String, Value>) -> Result<(), ScimError> {
        if self.info.is_some_and(|i| i.required) {
            return Err(invalid_value(format!("{} is required and cannot be removed", self.name)));
        }
        c.remove(self.key);
        Ok(())
    }

    /// `attr`: the whole attribute.
    fn whole(&self, c: &mut Map<String, Value>, op: Op, value: Option<&Value>) -> Result<(), ScimError> {
        let v = match (op, value) {
            (Op::Remove, Some(items)) if self.shape == Shape::Multi => return self.remove_listed(c, items),
            (Op::Remove, _) | (_, None | Some(Value::Null)) => return self.remove(c),
            (_, Some(v)) => v,
        };
        match self.shape {
            Shape::Text | Shape::Bool | Shape::Unknown => {
                c.insert(self.key.to_owned(), norm_scalar(self.info, self.name, v)?);
            }
            Shape::Manager => match manager_value(v)? {
                Some(m) => {
                    // Replaced whole: a new manager's id must not keep the old displayName.
                    c.insert(self.key.to_owned(), m);
                }
                None => {
                    c.remove(self.key);
                }
            },
            Shape::Complex => {
                let Value::Object(src) = v else {
                    return Err(invalid_value(format!("{} must be an object, not {v}", self.name)));
                };
                let subs = self.subs();
                let info = self.info;
                let Some(dst) = object_slot(c, self.key) else { return Ok(()) };
                // RFC 7644 §3.5.2.3: sub-attributes not in the value are left unchanged, for
                // replace as for add.
                for (k, sv) in src {
                    let sub_key = find_key(dst, k).unwrap_or_else(|| canon(subs, k));
                    match norm_sub(info, k, sv)? {
                        Value::Null => dst.remove(&sub_key),
                        nv => dst.insert(sub_key, nv),
                    };
                }
                if dst.is_empty() {
                    c.remove(self.key);
                }
            }
            Shape::Multi => {
                let items = elements(self.info, self.name, v)?;
                if op == Op::Replace {
                    c.remove(self.key);
                }
                if !items.is_empty() {
                    self.append(c, items);
                }
            }
        }
        Ok(())
    }

    /// Appends without duplicates; an element whose `value` is already present is merged into
    /// the existing one (RFC 7644 §3.5.2.1: adding a present value changes nothing).
    fn append(&self, c: &mut Map<String, Value>, items: Vec<Value>) {
        let exact = value_case_exact(self.name);
        let Some(arr) = array_slot(c, self.key) else { return };
        let mut index: HashMap<String, usize> =
            arr.iter().enumerate().filter_map(|(i, e)| elem_key(exact, e).map(|k| (k, i))).collect();
        let mut touched = Vec::new();
        for item in items {
            let at = match elem_key(exact, &item) {
                Some(k) => index.get(&k).copied().ok_or(k),
                None => arr.iter().position(|e| *e == item).ok_or_else(String::new),
            };
            match at {
                Ok(i) => {
                    if let (Some(Value::Object(dst)), Value::Object(src)) = (arr.get_mut(i), item) {
                        // The stored `value` stays as first written: it is the identity, and
                        // an address differing only in case is the same address.
                        for (k, v) in src.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case("value")) {
                            let k = find_key(dst, &k).unwrap_or(k);
                            dst.insert(k, v);
                        }
                    }
                    touched.push(i);
                }
                Err(k) => {
                    if !k.is_empty() {
                        index.insert(k, arr.len());
                    }
                    touched.push(arr.len());
                    arr.push(item);
                }
            }
        }
        enforce_primary(arr, &touched);
    }

    /// `remove` of a multi-valued attribute with a `value`: only the listed elements go
    /// (Entra's default member removal).
    fn remove_listed(&self, c: &mut Map<String, Value>, items: &Value) -> Result<(), ScimError> {
        let items = elements(self.info, self.name, items)?;
        let exact = value_case_exact(self.name);
        let keys: HashSet<String> = items.iter().filter_map(|i| elem_key(exact, i)).collect();
        // Items without a `value` are compared whole; there are normally none, and keeping
        // them apart keeps removal from a large group linear.
        let whole: Vec<&Value> = items.iter().filter(|i| elem_key(exact, i).is_none()).collect();
        let Some(Value::Array(arr)) = c.get_mut(self.key) else { return Ok(()) };
        arr.retain(|e| match elem_key(exact, e) {
            Some(k) => !keys.contains(&k),
            None => !whole.contains(&e),
        });
        if arr.is_empty() {
            c.remove(self.key);
        }
        Ok(())
    }

    /// `attr.sub` without a filter.
    fn sub(&self, c: &mut Map<String, Value>, op: Op, sub: &str, value: Option<&Value>) -> Result<(), ScimError> {
        if matches!(self.shape, Shape::Text | Shape::Bool) {
            return Err(invalid_path(format!("{} has no sub-attributes", self.name)));
        }
        let value = if op == Op::Remove { None } else { value.filter(|v| !v.is_null()) };
        if self.shape == Shape::Manager && sub.eq_ignore_ascii_case("value") {
            // A manager without an id means no manager.
            match value.map(manager_value).transpose()?.flatten() {
                Some(m) => c.insert(self.key.to_owned(), m),
                None => c.remove(self.key),
            };
            return Ok(());
        }
        let sub_canon = canon(self.subs(), sub);
        match c.get_mut(self.key) {
            Some(Value::Array(arr)) if !arr.is_empty() => {
                for e in arr.iter_mut() {
                    if let Value::Object(m) = e {
                        set_or_remove(m, &sub_canon, value.map(|v| norm_sub(self.info, sub, v)).transpose()?);
                    }
                }
                arr.retain(|e| e.as_object().is_none_or(|m| !m.is_empty()));
                if arr.is_empty() {
                    c.remove(self.key);
                }
            }
            Some(Value::Object(m)) => {
                set_or_remove(m, &sub_canon, value.map(|v| norm_sub(self.info, sub, v)).transpose()?);
                if m.is_empty() {
                    c.remove(self.key);
                }
            }
            Some(other) if !other.is_null() && !other.is_array() => {
                return Err(invalid_path(format!("{} has no sub-attributes", self.name)));
            }
            _ => {
                let Some(v) = value else { return Ok(()) };
                let elem = Map::from_iter([(sub_canon, norm_sub(self.info, sub, v)?)]);
                let new = if self.shape == Shape::Multi {
                    Value::Array(vec![Value::Object(elem)])
                } else {
                    Value::Object(elem)
                };
                c.insert(self.key.to_owned(), new);
            }
        }
        Ok(())
    }

    /// `attr[filter]` or `attr[filter].sub`.
    fn filtered(
        &self,
        c: &mut Map<String, Value>,
        op: Op,
        filter: &Filter,
        sub: Option<&str>,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        if matches!(self.shape, Shape::Text | Shape::Bool) {
            return Err(invalid_path(format!("{} is not multi-valued and cannot take a filter", self.name)));
        }
        let value = if op == Op::Remove { None } else { value.filter(|v| !v.is_null()) };
        let edit = |e: &mut Value| -> Result<bool, ScimError> { self.edit_element(e, op, filter, sub, value) };
        match c.get_mut(self.key) {
            None | Some(Value::Null) => {
                if let Some(v) = value {
                    let elem = self.create(filter, sub, v)?;
                    let new = if self.shape == Shape::Multi || self.shape == Shape::Unknown {
                        Value::Array(vec![elem])
                    } else {
                        elem
                    };
                    c.insert(self.key.to_owned(), new);
                }
            }
            Some(Value::Array(arr)) => {
                let selected: Vec<usize> = (0..arr.len()).filter(|&i| matches(self.name, &arr[i], filter)).collect();
                if selected.is_empty() {
                    if let Some(v) = value {
                        arr.push(self.create(filter, sub, v)?);
                        let last = arr.len() - 1;
                        enforce_primary(arr, &[last]);
                    }
                } else {
                    let mut keep = vec![true; arr.len()];
                    for &i in &selected {
                        keep[i] = edit(&mut arr[i])?;
                    }
                    let mut flags = keep.iter();
                    arr.retain(|_| flags.next().copied().unwrap_or(true));
                    if value.is_some() && keep.iter().all(|k| *k) {
                        enforce_primary(arr, &selected);
                    }
                }
                if arr.is_empty() {
                    c.remove(self.key);
                }
            }
            Some(obj @ Value::Object(_)) => {
                // A single-valued complex attribute (`manager[value eq "..."]`): the one value.
                if matches(self.name, obj, filter) {
                    if !edit(obj)? {
                        c.remove(self.key);
                    }
                } else if value.is_some() {
                    return Err(no_target(format!("{} does not match the filter", self.name)));
                }
            }
            Some(_) => return Err(invalid_path(format!("{} is not multi-valued and cannot take a filter", self.name))),
        }
        Ok(())
    }

    /// Applies the operation to one selected element; false when the element should go.
    fn edit_element(
        &self,
        e: &mut Value,
        op: Op,
        filter: &Filter,
        sub: Option<&str>,
        value: Option<&Value>,
    ) -> Result<bool, ScimError> {
        let Value::Object(m) = e else {
            // A scalar element (an unknown multi-valued attribute of strings) has no
            // sub-attributes: it is replaced or removed as a whole.
            return match (sub, value) {
                (None, Some(v)) => {
                    *e = v.clone();
                    Ok(true)
                }
                _ => Ok(false),
            };
        };
        match (sub, value) {
            (None, None) => Ok(false),
            (Some(s), v) => {
                let nv = v.map(|v| norm_sub(self.info, s, v)).transpose()?;
                set_or_remove(m, &canon(self.subs(), s), nv);
                Ok(!m.is_empty())
            }
            (None, Some(v)) => {
                let Value::Object(src) = norm_element(self.info, self.name, v)? else {
                    return Err(invalid_value(format!("the value for a filtered {} must be an object", self.name)));
                };
                if op == Op::Replace {
                    // RFC 7644 §3.5.2.3 replaces the selected element; keep what the filter
                    // selected it by, so `emails[type eq "work"]` stays the work address.
                    let mut seed = Map::new();
                    seed_from(filter, self.subs(), &mut seed);
                    m.clear();
                    m.extend(seed);
                }
                for (k, v) in src {
                    let k = find_key(m, &k).unwrap_or(k);
                    m.insert(k, v);
                }
                Ok(true)
            }
        }
    }

    /// The element an add/replace through a filter creates when nothing matches: what the
    /// filter's `eq` terms describe plus the value (Entra's `emails[type eq "work"].value`).
    fn create(&self, filter: &Filter, sub: Option<&str>, v: &Value) -> Result<Value, ScimError> {
        let mut elem = Map::new();
        if !seed_from(filter, self.subs(), &mut elem) {
            return Err(no_target(format!(
                "no element of {} matches, and the filter does not describe one to create (only `eq` and `and` do)",
                self.name
            )));
        }
        match sub {
            Some(s) => {
                elem.insert(canon(self.subs(), s), norm_sub(self.info, s, v)?);
            }
            None => {
                let Value::Object(src) = norm_element(self.info, self.name, v)? else {
                    return Err(invalid_value(format!("the value for a filtered {} must be an object", self.name)));
                };
                for (k, v) in src {
                    let k = find_key(&elem, &k).unwrap_or(k);
                    elem.insert(k, v);
                }
            }
        }
        let mut elem = Value::Object(elem);
        if let Value::Object(m) = &mut elem
            && let Some(k) = find_key(m, "primary")
            && let Some(b) = m.get(&k).and_then(parse_bool)
        {
            m.insert(k, Value::Bool(b));
        }
        if self.shape == Shape::Manager {
            return Ok(manager_value(&elem)?.unwrap_or(elem));
        }
        Ok(elem)
    }
}

fn set_or_remove(m: &mut Map<String, Value>, canonical: &str, v: Option<Value>) {
    let key = find_key(m, canonical).unwrap_or_else(|| canonical.to_owned());
    match v {
        Some(v) if !v.is_null() => {
            m.insert(key, v);
        }
        _ => {
            m.remove(&key);
        }
    }
}

/// The identity of an element for de-duplication: its `value`.
fn elem_key(exact: bool, e: &Value) -> Option<String> {
    let v = match e {
        Value::Object(m) => get_ci(m, "value")?,
        other => other,
    };
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    Some(if exact { s } else { s.to_lowercase() })
}

/// RFC 7644 §3.5.2: setting `primary` on one value clears it on the others.
fn enforce_primary(arr: &mut [Value], touched: &[usize]) {
    let is_primary = |e: &Value| e.as_object().and_then(|m| get_ci(m, "primary")) == Some(&Value::Bool(true));
    let Some(&winner) = touched.iter().rev().find(|&&i| arr.get(i).is_some_and(is_primary)) else { return };
    for (i, e) in arr.iter_mut().enumerate() {
        if i != winner
            && is_primary(e)
            && let Value::Object(m) = e
            && let Some(k) = find_key(m, "primary")
        {
            m.insert(k, Value::Bool(false));
        }
    }
}

/// Collects the `eq` terms of a conjunction; false when the filter is anything else.
fn seed_from(f: &Filter, subs: &[&'static str], out: &mut Map<String, Value>) -> bool {
    match f {
        Filter::Compare { path: AttrPath { uri: None, name, sub: None }, op: CompareOp::Eq, value }
            if !value.is_null() =>
        {
            out.insert(canon(subs, name), value.clone());
            true
        }
        Filter::And(a, b) => seed_from(a, subs, out) && seed_from(b, subs, out),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Filter evaluation against one element of a multi-valued attribute

fn matches(attr: &str, elem: &Value, f: &Filter) -> bool {
    // The parser bounds nesting (filter::MAX_DEPTH), so this recursion is bounded too.
    match f {
        Filter::And(a, b) => matches(attr, elem, a) && matches(attr, elem, b),
        Filter::Or(a, b) => matches(attr, elem, a) || matches(attr, elem, b),
        Filter::Not(a) => !matches(attr, elem, a),
        Filter::Present(p) => lookup(elem, p).is_some_and(|v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        }),
        Filter::Compare { path, op, value } => {
            let exact = case_exact(attr, path.sub.as_deref().unwrap_or(&path.name));
            match lookup(elem, path) {
                None | Some(Value::Null) => match op {
                    CompareOp::Eq => value.is_null(),
                    CompareOp::Ne => !value.is_null(),
                    _ => false,
                },
                Some(Value::Array(items)) => items.iter().any(|v| compare(v, *op, value, exact)),
                Some(v) => compare(v, *op, value, exact),
            }
        }
        Filter::ValuePath { path, filter } => match lookup(elem, path) {
            Some(Value::Array(items)) => items.iter().any(|v| matches(&path.name, v, filter)),
            Some(v @ Value::Object(_)) => matches(&path.name, v, filter),
            _ => false,
        },
    }
}

fn lookup<'a>(elem: &'a Value, p: &AttrPath) -> Option<&'a Value> {
    let v = match elem {
        Value::Object(m) => get_ci(m, &p.name)?,
        // An element of a multi-valued attribute of scalars is its own `value`.
        scalar if p.name.eq_ignore_ascii_case("value") => scalar,
        _ => return None,
    };
    match (&p.sub, v) {
        (None, v) => Some(v),
        (Some(s), Value::Object(m)) => get_ci(m, s),
        _ => None,
    }
}

fn compare(actual: &Value, op: CompareOp, expected: &Value, exact: bool) -> bool {
    use std::cmp::Ordering;
    let ord = |o: Option<Ordering>| match (op, o) {
        (CompareOp::Eq, Some(o)) => o.is_eq(),
        (CompareOp::Ne, o) => o.is_none_or(|o| o.is_ne()),
        (CompareOp::Gt, Some(o)) => o.is_gt(),
        (CompareOp::Ge, Some(o)) => o.is_ge(),
        (CompareOp::Lt, Some(o)) => o.is_lt(),
        (CompareOp::Le, Some(o)) => o.is_le(),
        _ => false,
    };
    match (actual, expected) {
        (Value::String(a), Value::String(b)) => {
            let (a, b) = if exact { (a.clone(), b.clone()) } else { (a.to_lowercase(), b.to_lowercase()) };
            match op {
                CompareOp::Co => a.contains(&b),
                CompareOp::Sw => a.starts_with(&b),
                CompareOp::Ew => a.ends_with(&b),
                _ => ord(Some(a.cmp(&b))),
            }
        }
        (Value::Number(a), Value::Number(b)) => ord(a.as_f64().zip(b.as_f64()).and_then(|(a, b)| a.partial_cmp(&b))),
        (Value::Bool(_) | Value::String(_), Value::Bool(_) | Value::String(_)) => {
            match (op, parse_bool(actual).zip(parse_bool(expected))) {
                (CompareOp::Eq, Some((a, b))) => a == b,
                (CompareOp::Ne, Some((a, b))) => a != b,
                (CompareOp::Ne, None) => true,
                _ => false,
            }
        }
        _ => op == CompareOp::Ne,
    }
}

// ---------------------------------------------------------------------------------------------
// Result

/// Keeps the enterprise extension and `schemas` consistent after a change: an emptied
/// extension goes, a used one is listed (RFC 7643 §3).
fn tidy(root: &mut Map<String, Value>, kind: ResourceKind) {
    if kind != ResourceKind::User {
        return;
    }
    let Some(key) = find_key(root, ENTERPRISE_USER_SCHEMA) else { return };
    let empty = match root.get(&key) {
        Some(Value::Object(m)) => m.is_empty(),
        _ => return,
    };
    if empty {
        root.remove(&key);
    }
    let Some(schema_key) = find_key(root, "schemas") else { return };
    let Some(Value::Array(schemas)) = root.get_mut(&schema_key) else { return };
    let listed = |s: &Value| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA));
    if empty {
        schemas.retain(|s| !listed(s));
    } else if !schemas.iter().any(listed) {
        schemas.push(Value::String(ENTERPRISE_USER_SCHEMA.into()));
    }
}

fn outcome(before: &Map<String, Value>, after: &Map<String, Value>) -> PatchOutcome {
    let members = |m: &Map<String, Value>| -> Vec<String> {
        get_ci(m, "members")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_object().and_then(|o| get_ci(o, "value")).and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old, new) = (members(before), members(after));
    let old_set: HashSet<&String> = old.iter().collect();
    let new_set: HashSet<&String> = new.iter().collect();
    PatchOutcome {
        changed: before != after,
        active_changed: get_ci(before, "active") != get_ci(after, "active"),
        active: get_ci(after, "active").and_then(Value::as_bool),
        members_added: new.iter().filter(|m| !old_set.contains(m)).cloned().collect(),
        members_removed: old.iter().filter(|m| !new_set.contains(m)).cloned().collect(),
    }
}

#[cfg(test)]
mod tests;
