//! Query parameters of SCIM reads: `filter` (translated from the SCIM grammar into the
//! store's [`ScimFilter`]), `startIndex`/`count` pagination (RFC 7644 §3.4.2.4) and
//! `attributes`/`excludedAttributes` projection (§3.4.2.5).
//!
//! Filters may test the attributes the store indexes — `id`, `externalId`, `userName`,
//! `displayName`, `emails` (the work address), `active`, `meta.created`,
//! `meta.lastModified` and, on groups, `members` — with names matched case-insensitively;
//! anything else is an `invalidFilter` naming the attribute rather than a silent mismatch.

use gatehouse_store::{SCIM_MAX_PAGE, ScimAttr, ScimFilter, ScimOp, ScimValue};
use serde_json::{Map, Value};

use crate::error::{ScimError, ScimType};
use crate::filter::{self, AttrPath, CompareOp, Filter};
use crate::patch::{ENTERPRISE_USER_SCHEMA, ResourceKind};

/// Page size when the client names none.
pub const DEFAULT_COUNT: u32 = 100;

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// The parsed query string of a SCIM read.
#[derive(Debug, Default)]
pub(crate) struct ReadQuery {
    pub(crate) filter: Option<ScimFilter>,
    /// 1-based.
    pub(crate) start_index: u64,
    pub(crate) count: u32,
    pub(crate) projection: Projection,
}

fn invalid_value(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidValue, detail)
}

fn invalid_filter(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidFilter, detail)
}

impl ReadQuery {
    /// Parses a raw query string. Parameter names are matched case-insensitively.
    pub(crate) fn parse(raw: Option<&str>, kind: ResourceKind) -> Result<Self, ScimError> {
        let mut q = Self { start_index: 1, count: DEFAULT_COUNT, ..Self::default() };
        let mut attributes = None;
        let mut excluded = None;
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match k.to_ascii_lowercase().as_str() {
                "filter" => {
                    if v.contains('\0') {
                        return Err(invalid_filter("the filter must not contain the NUL character"));
                    }
                    let parsed = filter::parse(&v).map_err(|e| invalid_filter(e.to_string()))?;
                    q.filter = Some(translate(&parsed, kind)?);
                }
                "startindex" => {
                    let n: i64 =
                        v.trim().parse().map_err(|_| invalid_value(format!("startIndex {v:?} is not an integer")))?;
                    // RFC 7644: a value below 1 is interpreted as 1.
                    q.start_index = u64::try_from(n.max(1)).unwrap_or(1);
                }
                "count" => {
                    let n: i64 =
                        v.trim().parse().map_err(|_| invalid_value(format!("count {v:?} is not an integer")))?;
                    // Negative is 0; above the maximum, the server returns at most its maximum.
                    q.count = u32::try_from(n.clamp(0, i64::from(SCIM_MAX_PAGE))).unwrap_or(SCIM_MAX_PAGE);
                }
                "attributes" => attributes = Some(v.into_owned()),
                "excludedattributes" => excluded = Some(v.into_owned()),
                "sortby" | "sortorder" => {}
                _ => {}
            }
        }
        q.projection = Projection::parse(attributes.as_deref(), excluded.as_deref(), kind);
        Ok(q)
    }
}

impl ReadQuery {
    /// Reads a `POST .../.search` body (RFC 7644 §3.4.3): `filter`, `startIndex`, `count`,
    /// `attributes` and `excludedAttributes` (arrays of names, or comma-separated strings).
    pub(crate) fn from_search(body: &Value, kind: ResourceKind) -> Result<Self, ScimError> {
        let Some(obj) = body.as_object() else {
            return Err(ScimError::bad_request(ScimType::InvalidSyntax, "a SearchRequest must be a JSON object"));
        };
        let get = |name: &str| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        let mut pairs: Vec<(String, String)> = Vec::new();
        for name in ["filter", "startIndex", "count"] {
            match get(name) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => pairs.push((name.to_owned(), s.clone())),
                Some(Value::Number(n)) => pairs.push((name.to_owned(), n.to_string())),
                Some(other) => return Err(invalid_value(format!("{name} must be a string or number, not {other}"))),
            }
        }
        for name in ["attributes", "excludedAttributes"] {
            match get(name) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => pairs.push((name.to_owned(), s.clone())),
                Some(Value::Array(items)) => {
                    let names: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                    let names = names.ok_or_else(|| invalid_value(format!("{name} must list strings")))?;
                    pairs.push((name.to_owned(), names.join(",")));
                }
                Some(other) => return Err(invalid_value(format!("{name} must be an array of names, not {other}"))),
            }
        }
        let raw = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        Self::parse(Some(&raw), kind)
    }
}

// === filters ===

/// Translates a parsed SCIM filter into the store's filter.
pub(crate) fn translate(f: &Filter, kind: ResourceKind) -> Result<ScimFilter, ScimError> {
    translate_in(f, kind, None)
}

fn translate_in(f: &Filter, kind: ResourceKind, within: Option<&str>) -> Result<ScimFilter, ScimError> {
    Ok(match f {
        Filter::And(a, b) => {
            ScimFilter::And(Box::new(translate_in(a, kind, within)?), Box::new(translate_in(b, kind, within)?))
        }
        Filter::Or(a, b) => {
            ScimFilter::Or(Box::new(translate_in(a, kind, within)?), Box::new(translate_in(b, kind, within)?))
        }
        Filter::Not(a) => ScimFilter::Not(Box::new(translate_in(a, kind, within)?)),
        Filter::Present(path) => match attr_of(path, kind, within)? {
            Some(attr) => ScimFilter::Present(attr),
            None => always(),
        },
        Filter::Compare { path, op, value } => match attr_of(path, kind, within)? {
            Some(attr) => ScimFilter::Compare { attr, op: op_of(*op), value: value_of(attr, value)? },
            None => always(),
        },
        Filter::ValuePath { path, filter } => {
            if within.is_some() {
                return Err(invalid_filter("value paths cannot be nested"));
            }
            let name = core_name(path, kind)?;
            let multi = match name.to_ascii_lowercase().as_str() {
                "emails" if kind == ResourceKind::User => "emails",
                "members" if kind == ResourceKind::Group => "members",
                _ => return Err(invalid_filter(format!("filtering inside {name:?} is not supported"))),
            };
            if path.sub.is_some() {
                return Err(invalid_filter("a value path cannot name a sub-attribute before '['"));
            }
            translate_in(filter, kind, Some(multi))?
        }
    })
}

/// A condition that always holds (for element tests the store does not index, such as an
/// e-mail's `type`: the stored address is the work address).
fn always() -> ScimFilter {
    ScimFilter::Present(ScimAttr::Id)
}

/// The attribute name without the core schema URN (other URNs are refused).
fn core_name(path: &AttrPath, kind: ResourceKind) -> Result<String, ScimError> {
    match &path.uri {
        None => Ok(path.name.clone()),
        Some(uri) if uri.eq_ignore_ascii_case(if kind == ResourceKind::User { CORE_USER } else { CORE_GROUP }) => {
            Ok(path.name.clone())
        }
        Some(_) => Err(invalid_filter(format!("filtering on {path} is not supported"))),
    }
}

fn attr_of(path: &AttrPath, kind: ResourceKind, within: Option<&str>) -> Result<Option<ScimAttr>, ScimError> {
    let name = core_name(path, kind)?.to_ascii_lowercase();
    let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
    let user = kind == ResourceKind::User;
    if let Some(multi) = within {
        return match (multi, name.as_str(), sub) {
            ("emails", "value", None) => Ok(Some(ScimAttr::Email)),
            ("emails", "type" | "primary" | "display", None) => Ok(None),
            ("members", "value", None) => Ok(Some(ScimAttr::Member)),
            _ => Err(invalid_filter(format!("filtering on {multi}.{path} is not supported"))),
        };
    }
    let attr = match (name.as_str(), sub.as_deref()) {
        ("id", None) => ScimAttr::Id,
        ("externalid", None) => ScimAttr::ExternalId,
        ("username", None) if user => ScimAttr::UserName,
        ("displayname", None) => ScimAttr::DisplayName,
        ("emails", None | Some("value")) if user => ScimAttr::Email,
        ("active", None) if user => ScimAttr::Active,
        ("meta", Some("created")) => ScimAttr::Created,
        ("meta", Some("lastmodified")) => ScimAttr::LastModified,
        ("members", None | Some("value")) if !user => ScimAttr::Member,
        _ => {
            return Err(invalid_filter(format!(
                "filtering on {path} is not supported; filter on id, externalId, {}displayName, meta.created or \
                 meta.lastModified",
                if user { "userName, emails, active, " } else { "members, " }
            )));
        }
    };
    Ok(Some(attr))
}

fn op_of(op: CompareOp) -> ScimOp {
    match op {
        CompareOp::Eq => ScimOp::Eq,
        CompareOp::Ne => ScimOp::Ne,
        CompareOp::Co => ScimOp::Co,
        CompareOp::Sw => ScimOp::Sw,
        CompareOp::Ew => ScimOp::Ew,
        CompareOp::Gt => ScimOp::Gt,
        CompareOp::Ge => ScimOp::Ge,
        CompareOp::Lt => ScimOp::Lt,
        CompareOp::Le => ScimOp::Le,
    }
}

fn value_of(attr: ScimAttr, v: &Value) -> Result<ScimValue, ScimError> {
    match (attr, v) {
        (_, Value::Null) => Ok(ScimValue::Null),
        (ScimAttr::Active, Value::Bool(b)) => Ok(ScimValue::Bool(*b)),
        (ScimAttr::Active, Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(ScimValue::Bool(true)),
        (ScimAttr::Active, Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(ScimValue::Bool(false)),
        (ScimAttr::Active, _) => Err(invalid_filter("active is compared with true or false")),
        (ScimAttr::Created | ScimAttr::LastModified, Value::String(s)) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| invalid_filter(format!("{s:?} is not an RFC 3339 date-time")))?;
            Ok(ScimValue::Time(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)))
        }
        (ScimAttr::Created | ScimAttr::LastModified, _) => Err(invalid_filter("meta dates are compared with strings")),
        (_, Value::String(s)) => Ok(ScimValue::Str(s.clone())),
        (_, other) => Err(invalid_filter(format!("{other} cannot be compared with a string attribute"))),
    }
}

// === projection ===

/// One attribute named in `attributes`/`excludedAttributes`: its top-level key (an
/// extension URN for extension attributes) and optionally a sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    key: String,
    sub: Option<String>,
}

/// Which attributes a response carries.
#[derive(Debug, Default)]
pub(crate) struct Projection {
    only: Option<Vec<Named>>,
    except: Vec<Named>,
}

fn parse_list(list: &str, kind: ResourceKind) -> Vec<Named> {
    let core = if kind == ResourceKind::User { CORE_USER } else { CORE_GROUP };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|item| {
            let lower = item.to_ascii_lowercase();
            let ext = ENTERPRISE_USER_SCHEMA.to_ascii_lowercase();
            let core_l = core.to_ascii_lowercase();
            if lower == ext {
                return Some(Named { key: ext, sub: None });
            }
            if let Some(rest) = lower.strip_prefix(&format!("{ext}:")) {
                let (name, _) = rest.split_once('.').unwrap_or((rest, ""));
                return Some(Named { key: ext, sub: Some(name.to_owned()) });
            }
            let rest = lower.strip_prefix(&format!("{core_l}:")).unwrap_or(&lower);
            let (key, sub) = match rest.split_once('.') {
                Some((k, s)) => (k, Some(s.to_owned())),
                None => (rest, None),
            };
            (!key.is_empty() && !key.starts_with("urn:")).then(|| Named { key: key.to_owned(), sub })
        })
        .collect()
}

impl Projection {
    pub(crate) fn parse(attributes: Option<&str>, excluded: Option<&str>, kind: ResourceKind) -> Self {
        Self {
            only: attributes.map(|a| parse_list(a, kind)).filter(|l| !l.is_empty()),
            except: excluded.map(|e| parse_list(e, kind)).unwrap_or_default(),
        }
    }

    /// Whether a group's members are wanted (they are read only then).
    pub(crate) fn wants(&self, key: &str) -> bool {
        let named = |n: &Named| n.key == key;
        if self.except.iter().any(|n| named(n) && n.sub.is_none()) {
            return false;
        }
        self.only.as_ref().is_none_or(|only| only.iter().any(named))
    }

    /// Applies the projection; `id` and `schemas` are always returned.
    pub(crate) fn apply(&self, resource: &mut Map<String, Value>) {
        let always = |k: &str| k.eq_ignore_ascii_case("id") || k.eq_ignore_ascii_case("schemas");
        if let Some(only) = &self.only {
            resource.retain(|k, v| {
                if always(k) {
                    return true;
                }
                let lk = k.to_ascii_lowercase();
                let picks: Vec<&Named> = only.iter().filter(|n| n.key == lk).collect();
                if picks.is_empty() {
                    return false;
                }
                if picks.iter().any(|n| n.sub.is_none()) {
                    return true;
                }
                keep_subs(v, &picks.iter().filter_map(|n| n.sub.as_deref()).collect::<Vec<_>>());
                true
            });
        }
        for n in &self.except {
            let key = resource.keys().find(|k| k.to_ascii_lowercase() == n.key && !always(k)).cloned();
            let Some(key) = key else { continue };
            match &n.sub {
                None => {
                    resource.remove(&key);
                }
                Some(sub) => {
                    if let Some(v) = resource.get_mut(&key) {
                        drop_sub(v, sub);
                    }
                }
            }
        }
    }
}

fn keep_subs(v: &mut Value, subs: &[&str]) {
    let keep = |m: &mut Map<String, Value>| m.retain(|k, _| subs.iter().any(|s| k.eq_ignore_ascii_case(s)));
    match v {
        Value::Object(m) => keep(m),
        Value::Array(items) => items.iter_mut().filter_map(Value::as_object_mut).for_each(keep),
        _ => {}
    }
}

fn drop_sub(v: &mut Value, sub: &str) {
    let drop = |m: &mut Map<String, Value>| m.retain(|k, _| !k.eq_ignore_ascii_case(sub));
    match v {
        Value::Object(m) => drop(m),
        Value::Array(items) => items.iter_mut().filter_map(Value::as_object_mut).for_each(drop),
        _ => {}
    }
}

/// A `ListResponse`.
pub(crate) fn list_response(total: u64, start_index: u64, resources: Vec<Value>) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(f: &str, kind: ResourceKind) -> Result<ScimFilter, ScimError> {
        translate(&filter::parse(f).unwrap_or_else(|e| panic!("{e}")), kind)
    }

    #[test]
    fn entra_filters_translate() {
        let eq = |attr, v: &str| ScimFilter::Compare { attr, op: ScimOp::Eq, value: ScimValue::Str(v.into()) };
        assert_eq!(t("userName eq \"a@b.c\"", ResourceKind::User).ok(), Some(eq(ScimAttr::UserName, "a@b.c")));
        assert_eq!(t("USERNAME Eq \"a\"", ResourceKind::User).ok(), Some(eq(ScimAttr::UserName, "a")));
        assert_eq!(
            t("id eq \"g\" and members eq \"u\"", ResourceKind::Group).ok(),
            Some(ScimFilter::And(Box::new(eq(ScimAttr::Id, "g")), Box::new(eq(ScimAttr::Member, "u"))))
        );
        assert_eq!(
            t("emails[type eq \"work\" and value eq \"x\"]", ResourceKind::User).ok(),
            Some(ScimFilter::And(Box::new(always()), Box::new(eq(ScimAttr::Email, "x"))))
        );
        assert_eq!(
            t("active eq \"False\"", ResourceKind::User).ok(),
            Some(ScimFilter::Compare { attr: ScimAttr::Active, op: ScimOp::Eq, value: ScimValue::Bool(false) })
        );
        assert!(matches!(
            t("meta.lastModified gt \"2011-05-13T04:42:34Z\"", ResourceKind::Group),
            Ok(ScimFilter::Compare { value: ScimValue::Time(1_305_261_754_000), .. })
        ));
    }

    #[test]
    fn unsupported_filters_name_the_attribute() {
        let e = t("title eq \"x\"", ResourceKind::User).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidFilter)));
        assert!(e.detail.contains("title"), "{}", e.detail);
        assert!(t("userName eq \"x\"", ResourceKind::Group).is_err());
        assert!(t("members eq \"x\"", ResourceKind::User).is_err());
        assert!(t("active eq 3", ResourceKind::User).is_err());
        assert!(t("meta.created gt \"yesterday\"", ResourceKind::User).is_err());
    }

    #[test]
    fn pagination_is_clamped_and_bad_numbers_refused() {
        let q = ReadQuery::parse(Some("startIndex=0&count=5000"), ResourceKind::User).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((q.start_index, q.count), (1, SCIM_MAX_PAGE));
        let q = ReadQuery::parse(Some("count=-3"), ResourceKind::User).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.count, 0);
        let e = ReadQuery::parse(Some("count=ten"), ResourceKind::User).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        let e =
            ReadQuery::parse(Some("filter=userName%20eq"), ResourceKind::User).err().unwrap_or_else(|| panic!("ok"));
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
    }

    #[test]
    fn projection_keeps_id_and_named_attributes() {
        let mut r = json!({
            "schemas": ["s"], "id": "1", "userName": "a", "name": {"givenName": "A", "familyName": "B"},
            "emails": [{"value": "x", "type": "work"}],
            ENTERPRISE_USER_SCHEMA: {"department": "D", "employeeNumber": "7"},
        });
        let obj = r.as_object_mut().unwrap_or_else(|| panic!("object"));
        let p = Projection::parse(
            Some(&format!("userName,name.givenName,{ENTERPRISE_USER_SCHEMA}:department")),
            None,
            ResourceKind::User,
        );
        p.apply(obj);
        assert_eq!(
            r,
            json!({"schemas": ["s"], "id": "1", "userName": "a", "name": {"givenName": "A"},
                   ENTERPRISE_USER_SCHEMA: {"department": "D"}})
        );
        let mut r = json!({"id": "1", "displayName": "G", "members": [{"value": "u"}], "externalId": "e"});
        let p = Projection::parse(None, Some("members, ExternalID"), ResourceKind::Group);
        assert!(!p.wants("members"));
        p.apply(r.as_object_mut().unwrap_or_else(|| panic!("object")));
        assert_eq!(r, json!({"id": "1", "displayName": "G"}));
        let p = Projection::parse(Some("displayName"), None, ResourceKind::Group);
        assert!(!p.wants("members") && p.wants("displayname"));
    }
}
