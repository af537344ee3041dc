//! Users and groups as they are stored and as they are returned.
//!
//! Incoming resources are taken as sent (Entra expects values back exactly as it wrote
//! them) with what RFC 7644 and Entra's quirks require: `id`, `meta` and explicit `null`s are
//! dropped, `active` and `primary` given as `"True"`/`"False"` become booleans (the validator
//! flags a string echoed back), the core schema is listed, and the attributes the store
//! indexes are checked (`userName` / group `displayName` required strings, `externalId` a
//! string). Unknown attributes and schema URIs are kept and returned.

use gatehouse_core::IdpId;
use gatehouse_store::{ScimGroupRecord, ScimMember, ScimUserRecord};
use serde_json::{Map, Value, json};

use crate::error::{ScimError, ScimType};
use crate::patch::{ENTERPRISE_USER_SCHEMA, ResourceKind};

pub(crate) const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

fn invalid_value(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidValue, detail)
}

fn key_ci<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).map(String::as_str)
}

fn get_ci<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    key_ci(map, name).and_then(|k| map.get(k))
}

fn bool_of(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Drops nulls everywhere and turns string `primary` flags into booleans.
fn scrub(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            for (k, v) in m.iter_mut() {
                if k.eq_ignore_ascii_case("primary")
                    && let Some(b) = bool_of(v)
                {
                    *v = Value::Bool(b);
                }
                scrub(v);
            }
        }
        Value::Array(items) => {
            items.retain(|v| !v.is_null());
            items.iter_mut().for_each(scrub);
        }
        _ => {}
    }
}

/// What the store indexes of a user.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserFields {
    pub(crate) user_name: String,
    pub(crate) external_id: Option<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) active: bool,
}

/// What the store indexes of a group, and its members as sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupFields {
    pub(crate) display_name: String,
    pub(crate) external_id: Option<String>,
    /// `None` when the body has no `members`.
    pub(crate) members: Option<Vec<String>>,
}

fn optional_string(map: &Map<String, Value>, name: &str) -> Result<Option<String>, ScimError> {
    match get_ci(map, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid_value(format!("{name} must be a string, not {other}"))),
    }
}

fn required_string(map: &Map<String, Value>, name: &str) -> Result<String, ScimError> {
    match optional_string(map, name)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(invalid_value(format!("{name} is required and must be a non-empty string"))),
    }
}

/// Cleans an incoming resource (POST/PUT body, or a PATCH result) in place.
fn clean(map: &mut Map<String, Value>, kind: ResourceKind) {
    // `password` is write-only (RFC 7643 §4.1.1) and Gatehouse authenticates nobody with it:
    // it is never stored or returned.
    for k in ["id", "meta", "password"] {
        while let Some(key) = key_ci(map, k).map(str::to_owned) {
            map.remove(&key);
        }
    }
    let mut v = Value::Object(std::mem::take(map));
    scrub(&mut v);
    if let Value::Object(m) = v {
        *map = m;
    }
    let core = if kind == ResourceKind::User { CORE_USER } else { CORE_GROUP };
    let schemas_key = key_ci(map, "schemas").map_or_else(|| "schemas".to_owned(), str::to_owned);
    let mut schemas: Vec<Value> = match map.remove(&schemas_key) {
        Some(Value::Array(a)) => a.into_iter().filter(Value::is_string).collect(),
        _ => Vec::new(),
    };
    let listed = |s: &[Value], uri: &str| s.iter().any(|v| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(uri)));
    if !listed(&schemas, core) {
        schemas.insert(0, Value::String(core.into()));
    }
    if kind == ResourceKind::User
        && key_ci(map, ENTERPRISE_USER_SCHEMA).is_some()
        && !listed(&schemas, ENTERPRISE_USER_SCHEMA)
    {
        schemas.push(Value::String(ENTERPRISE_USER_SCHEMA.into()));
    }
    map.insert("schemas".into(), Value::Array(schemas));
}

/// Validates and cleans a user; returns the indexed fields. `active` defaults to true.
pub(crate) fn user_fields(map: &mut Map<String, Value>) -> Result<UserFields, ScimError> {
    clean(map, ResourceKind::User);
    let user_name = required_string(map, "userName")?;
    let external_id = optional_string(map, "externalId")?;
    let display_name = optional_string(map, "displayName")?;
    let active = match key_ci(map, "active").map(str::to_owned) {
        None => true,
        Some(key) => {
            let b = map
                .get(&key)
                .and_then(bool_of)
                .ok_or_else(|| invalid_value("active must be true or false (or \"True\"/\"False\")"))?;
            map.insert(key, Value::Bool(b));
            b
        }
    };
    let email = match get_ci(map, "emails") {
        None => None,
        Some(Value::Array(items)) => {
            let value =
                |v: &Value| v.as_object().and_then(|o| get_ci(o, "value")).and_then(Value::as_str).map(str::to_owned);
            let typed = |t: &str| {
                items.iter().find(|v| {
                    v.as_object()
                        .and_then(|o| get_ci(o, "type"))
                        .and_then(Value::as_str)
                        .is_some_and(|x| x.eq_ignore_ascii_case(t))
                })
            };
            let primary =
                items.iter().find(|v| v.as_object().and_then(|o| get_ci(o, "primary")) == Some(&Value::Bool(true)));
            typed("work").or(primary).or(items.first()).and_then(value)
        }
        Some(_) => return Err(invalid_value("emails must be an array")),
    };
    Ok(UserFields { user_name, external_id, display_name, email, active })
}

/// Validates and cleans a group; takes its `members` out (they are stored apart).
pub(crate) fn group_fields(map: &mut Map<String, Value>) -> Result<GroupFields, ScimError> {
    clean(map, ResourceKind::Group);
    let display_name = required_string(map, "displayName")?;
    let external_id = optional_string(map, "externalId")?;
    let members = match key_ci(map, "members").map(str::to_owned) {
        None => None,
        Some(key) => match map.remove(&key) {
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|m| {
                        m.as_object()
                            .and_then(|o| get_ci(o, "value"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .ok_or_else(|| invalid_value("each member needs a string \"value\" (the user's id)"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            _ => return Err(invalid_value("members must be an array")),
        },
    };
    Ok(GroupFields { display_name, external_id, members })
}

/// A request body as the provisioning log keeps it: any `password` (as a key, or as the value
/// of a PATCH operation on `password`) replaced by `[redacted]`.
pub(crate) fn redacted_body(text: &str) -> String {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                let password_op = get_ci(m, "path")
                    .and_then(Value::as_str)
                    .is_some_and(|p| p.trim().eq_ignore_ascii_case("password"));
                for (k, v) in m.iter_mut() {
                    if k.eq_ignore_ascii_case("password") || (password_op && k.eq_ignore_ascii_case("value")) {
                        *v = Value::String("[redacted]".into());
                    } else {
                        walk(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(text) {
        Ok(mut v) => {
            walk(&mut v);
            v.to_string()
        }
        Err(_) => text.to_owned(),
    }
}

/// The JSON object of a request body (the extractor guarantees an object).
pub(crate) fn object(v: Value) -> Result<Map<String, Value>, ScimError> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ScimError::bad_request(ScimType::InvalidSyntax, "the request body must be a JSON object")),
    }
}

fn meta(kind: &str, base: &str, path: &str, id: &str, created: i64, modified: i64, version: i64) -> Value {
    json!({
        "resourceType": kind,
        "created": gatehouse_core::rfc3339(created),
        "lastModified": gatehouse_core::rfc3339(modified),
        "location": format!("{base}/{path}/{id}"),
        "version": format!("W/\"{version}\""),
    })
}

/// A user as returned: `schemas`, `id`, the stored attributes, `meta`.
pub(crate) fn render_user(u: &ScimUserRecord, base: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let stored = u.resource.as_object().cloned().unwrap_or_default();
    if let Some(s) = stored.get("schemas") {
        out.insert("schemas".into(), s.clone());
    }
    out.insert("id".into(), Value::String(u.id.clone()));
    for (k, v) in stored {
        if k != "schemas" {
            out.insert(k, v);
        }
    }
    out.insert("meta".into(), meta("User", base, "Users", &u.id, u.created_at, u.updated_at, u.version));
    out
}

/// A group as returned; `members` when given.
pub(crate) fn render_group(g: &ScimGroupRecord, members: Option<&[ScimMember]>, base: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let stored = g.resource.as_object().cloned().unwrap_or_default();
    if let Some(s) = stored.get("schemas") {
        out.insert("schemas".into(), s.clone());
    }
    out.insert("id".into(), Value::String(g.id.clone()));
    for (k, v) in stored {
        if k != "schemas" {
            out.insert(k, v);
        }
    }
    if let Some(members) = members {
        let list: Vec<Value> = members
            .iter()
            .map(|m| {
                json!({
                    "value": m.user_id,
                    "display": m.display_name.clone().unwrap_or_else(|| m.user_name.clone()),
                    "type": "User",
                    "$ref": format!("{base}/Users/{}", m.user_id),
                })
            })
            .collect();
        out.insert("members".into(), Value::Array(list));
    }
    out.insert("meta".into(), meta("Group", base, "Groups", &g.id, g.created_at, g.updated_at, g.version));
    out
}

/// A new user record.
pub(crate) fn new_user(idp: IdpId, resource: Map<String, Value>, f: UserFields, now: i64) -> ScimUserRecord {
    ScimUserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        idp_id: idp,
        user_name: f.user_name,
        external_id: f.external_id,
        display_name: f.display_name,
        email: f.email,
        active: f.active,
        resource: Value::Object(resource),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// A new group record.
pub(crate) fn new_group(idp: IdpId, resource: Map<String, Value>, f: &GroupFields, now: i64) -> ScimGroupRecord {
    ScimGroupRecord {
        id: uuid::Uuid::new_v4().to_string(),
        idp_id: idp,
        display_name: f.display_name.clone(),
        external_id: f.external_id.clone(),
        resource: Value::Object(resource),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        object(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn entra_user_bodies_are_cleaned() {
        let mut m = obj(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:x:unknown"],
            "id": "client-chosen", "meta": {"resourceType": "User"},
            "userName": "Ada@Contoso.com", "active": "False", "nickName": null,
            "emails": [{"value": "home@x", "type": "home"}, {"value": "Ada@Work", "type": "work", "primary": "True"}],
            "roles": [],
            ENTERPRISE_USER_SCHEMA: {"department": "R&D", "manager": null},
        }));
        let f = user_fields(&mut m).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            f,
            UserFields {
                user_name: "Ada@Contoso.com".into(),
                external_id: None,
                display_name: None,
                email: Some("Ada@Work".into()),
                active: false
            }
        );
        assert!(!m.contains_key("id") && !m.contains_key("meta") && !m.contains_key("nickName"));
        assert_eq!(m["active"], json!(false));
        assert_eq!(m["emails"][1]["primary"], json!(true));
        assert_eq!(m[ENTERPRISE_USER_SCHEMA], json!({"department": "R&D"}));
        assert_eq!(m["schemas"], json!([CORE_USER, "urn:x:unknown", ENTERPRISE_USER_SCHEMA]));
    }

    #[test]
    fn passwords_are_neither_stored_nor_logged() {
        let mut m = obj(json!({"userName": "a", "PassWord": "hunter2"}));
        user_fields(&mut m).unwrap_or_else(|e| panic!("{e}"));
        assert!(!Value::Object(m).to_string().contains("hunter2"));
        let logged = redacted_body(
            r#"{"password": "hunter2", "Operations": [{"op": "replace", "path": "password", "value": "hunter3"},
                {"op": "replace", "value": {"password": "hunter4"}}]}"#,
        );
        assert!(!logged.contains("hunter"), "{logged}");
    }

    #[test]
    fn bad_users_and_groups_are_invalid_values() {
        for body in [
            json!({}),
            json!({"userName": ""}),
            json!({"userName": 7}),
            json!({"userName": "a", "active": "maybe"}),
            json!({"userName": "a", "externalId": 1}),
            json!({"userName": "a", "emails": "x"}),
        ] {
            let e = user_fields(&mut obj(body.clone())).err().unwrap_or_else(|| panic!("{body} accepted"));
            assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)), "{body}");
        }
        for body in [
            json!({}),
            json!({"displayName": "g", "members": [{"display": "x"}]}),
            json!({"displayName": "g", "members": {}}),
        ] {
            assert!(group_fields(&mut obj(body.clone())).is_err(), "{body}");
        }
        let mut g = obj(json!({"displayName": "G", "externalId": "e", "members": [{"value": "u1", "$ref": null}]}));
        let f = group_fields(&mut g).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.members, Some(vec!["u1".to_owned()]));
        assert!(!g.contains_key("members"));
    }
}
