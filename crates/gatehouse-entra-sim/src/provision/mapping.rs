//! The default attribute mappings of a non-gallery SCIM app (reference §3.5) and the
//! request bodies Entra builds from them (reference §3.2, §3.6).
//!
//! A user is reduced to a [`UserImage`]: `active` plus the mapped SCIM attributes by path,
//! in Entra's mapping order. Create bodies, matching an existing resource, and PATCH
//! operations are all derived from images, so "what changed" is a comparison of two images.
//! Attributes whose source is empty are omitted, never sent as null. The two PATCH dialects
//! live here: default mode (capitalised ops, one op per path, `"False"`/`"True"` strings for
//! `active`, member removal with a value array) and `aadOptscim062020` (lowercase ops, one
//! path-less `replace` for plain attributes with dotted or URN-qualified keys, boolean
//! `active`, member removal by `members[value eq "..."]`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::ProvisioningMode;
use crate::tenant::{Group, User, UserAttr};

/// The enterprise extension schema URN.
pub(crate) const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The extra schema URI Entra puts on group creation.
const ADSCIM_GROUP_SCHEMA: &str = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A mapped SCIM user attribute, in Entra's default mapping order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Attr {
    UserName,
    DisplayName,
    Title,
    WorkEmail,
    PreferredLanguage,
    GivenName,
    FamilyName,
    Formatted,
    AddressFormatted,
    StreetAddress,
    Locality,
    Region,
    PostalCode,
    Country,
    WorkPhone,
    MobilePhone,
    Fax,
    ExternalId,
    EmployeeNumber,
    Department,
    Manager,
}

impl Attr {
    /// The SCIM path Entra uses for the attribute.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Attr::UserName => "userName",
            Attr::DisplayName => "displayName",
            Attr::Title => "title",
            Attr::WorkEmail => "emails[type eq \"work\"].value",
            Attr::PreferredLanguage => "preferredLanguage",
            Attr::GivenName => "name.givenName",
            Attr::FamilyName => "name.familyName",
            Attr::Formatted => "name.formatted",
            Attr::AddressFormatted => "addresses[type eq \"work\"].formatted",
            Attr::StreetAddress => "addresses[type eq \"work\"].streetAddress",
            Attr::Locality => "addresses[type eq \"work\"].locality",
            Attr::Region => "addresses[type eq \"work\"].region",
            Attr::PostalCode => "addresses[type eq \"work\"].postalCode",
            Attr::Country => "addresses[type eq \"work\"].country",
            Attr::WorkPhone => "phoneNumbers[type eq \"work\"].value",
            Attr::MobilePhone => "phoneNumbers[type eq \"mobile\"].value",
            Attr::Fax => "phoneNumbers[type eq \"fax\"].value",
            Attr::ExternalId => "externalId",
            Attr::EmployeeNumber => "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            Attr::Department => "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            Attr::Manager => "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        }
    }

    /// Value-filter paths always get their own op, in both modes.
    fn filtered(self) -> bool {
        self.path().contains('[')
    }

    const ALL: [Attr; 21] = [
        Attr::UserName,
        Attr::DisplayName,
        Attr::Title,
        Attr::WorkEmail,
        Attr::PreferredLanguage,
        Attr::GivenName,
        Attr::FamilyName,
        Attr::Formatted,
        Attr::AddressFormatted,
        Attr::StreetAddress,
        Attr::Locality,
        Attr::Region,
        Attr::PostalCode,
        Attr::Country,
        Attr::WorkPhone,
        Attr::MobilePhone,
        Attr::Fax,
        Attr::ExternalId,
        Attr::EmployeeNumber,
        Attr::Department,
        Attr::Manager,
    ];
}

/// What the target holds (or should hold) for one user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserImage {
    pub(crate) active: bool,
    pub(crate) attrs: BTreeMap<Attr, String>,
}

/// The image the default mappings produce for an Entra user.
pub(crate) fn desired(user: &User, manager: Option<&str>, active: bool) -> UserImage {
    let mut attrs = BTreeMap::new();
    let mut put = |attr: Attr, value: Option<&str>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            attrs.insert(attr, v.to_owned());
        }
    };
    put(Attr::UserName, Some(&user.upn));
    put(Attr::DisplayName, Some(&user.display_name));
    put(Attr::Title, user.attr(UserAttr::JobTitle));
    put(Attr::WorkEmail, user.mail());
    put(Attr::PreferredLanguage, user.attr(UserAttr::PreferredLanguage));
    put(Attr::GivenName, user.attr(UserAttr::GivenName));
    put(Attr::FamilyName, user.attr(UserAttr::Surname));
    // Join(" ", [givenName], [surname]) over the values present.
    let formatted: Vec<&str> =
        [user.attr(UserAttr::GivenName), user.attr(UserAttr::Surname)].into_iter().flatten().collect();
    put(Attr::Formatted, Some(&formatted.join(" ")));
    put(Attr::AddressFormatted, user.attr(UserAttr::OfficeLocation));
    put(Attr::StreetAddress, user.attr(UserAttr::StreetAddress));
    put(Attr::Locality, user.attr(UserAttr::City));
    put(Attr::Region, user.attr(UserAttr::State));
    put(Attr::PostalCode, user.attr(UserAttr::PostalCode));
    put(Attr::Country, user.attr(UserAttr::Country));
    put(Attr::WorkPhone, user.attr(UserAttr::BusinessPhone));
    put(Attr::MobilePhone, user.attr(UserAttr::MobilePhone));
    put(Attr::Fax, user.attr(UserAttr::Fax));
    put(Attr::ExternalId, Some(user.mail_nickname()));
    put(Attr::EmployeeNumber, user.attr(UserAttr::EmployeeId));
    put(Attr::Department, user.attr(UserAttr::Department));
    put(Attr::Manager, manager);
    UserImage { active, attrs }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn typed<'a>(v: &'a Value, list: &str, kind: &str) -> Option<&'a Value> {
    v.get(list)?.as_array()?.iter().find(|item| str_at(item, "type") == Some(kind))
}

/// Reads what an existing SCIM resource (found by the matching filter) holds.
pub(crate) fn from_resource(res: &Value) -> UserImage {
    let mut attrs = BTreeMap::new();
    let mut put = |attr: Attr, value: Option<&str>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            attrs.insert(attr, v.to_owned());
        }
    };
    let name = res.get("name").cloned().unwrap_or(Value::Null);
    let address = typed(res, "addresses", "work").cloned().unwrap_or(Value::Null);
    let ext = res.get(ENTERPRISE).cloned().unwrap_or(Value::Null);
    put(Attr::UserName, str_at(res, "userName"));
    put(Attr::DisplayName, str_at(res, "displayName"));
    put(Attr::Title, str_at(res, "title"));
    put(Attr::WorkEmail, typed(res, "emails", "work").and_then(|e| str_at(e, "value")));
    put(Attr::PreferredLanguage, str_at(res, "preferredLanguage"));
    put(Attr::GivenName, str_at(&name, "givenName"));
    put(Attr::FamilyName, str_at(&name, "familyName"));
    put(Attr::Formatted, str_at(&name, "formatted"));
    put(Attr::AddressFormatted, str_at(&address, "formatted"));
    put(Attr::StreetAddress, str_at(&address, "streetAddress"));
    put(Attr::Locality, str_at(&address, "locality"));
    put(Attr::Region, str_at(&address, "region"));
    put(Attr::PostalCode, str_at(&address, "postalCode"));
    put(Attr::Country, str_at(&address, "country"));
    put(Attr::WorkPhone, typed(res, "phoneNumbers", "work").and_then(|p| str_at(p, "value")));
    put(Attr::MobilePhone, typed(res, "phoneNumbers", "mobile").and_then(|p| str_at(p, "value")));
    put(Attr::Fax, typed(res, "phoneNumbers", "fax").and_then(|p| str_at(p, "value")));
    put(Attr::ExternalId, str_at(res, "externalId"));
    put(Attr::EmployeeNumber, str_at(&ext, "employeeNumber"));
    put(Attr::Department, str_at(&ext, "department"));
    let manager = ext.get("manager").and_then(|m| m.as_str().or_else(|| str_at(m, "value")));
    put(Attr::Manager, manager);
    let active = match res.get("active") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => true,
    };
    UserImage { active, attrs }
}

/// The `POST /Users` body: boolean `active`, nested complex attributes, `meta` and
/// `roles: []` as Entra sends them; the manager is not sent on creation.
pub(crate) fn create_user_body(image: &UserImage) -> Value {
    let a = |attr: Attr| image.attrs.get(&attr).map(String::as_str);
    let mut body = Map::new();
    body.insert("schemas".into(), json!([USER_SCHEMA, ENTERPRISE]));
    if let Some(v) = a(Attr::ExternalId) {
        body.insert("externalId".into(), json!(v));
    }
    if let Some(v) = a(Attr::UserName) {
        body.insert("userName".into(), json!(v));
    }
    body.insert("active".into(), json!(image.active));
    if let Some(v) = a(Attr::DisplayName) {
        body.insert("displayName".into(), json!(v));
    }
    if let Some(v) = a(Attr::Title) {
        body.insert("title".into(), json!(v));
    }
    if let Some(v) = a(Attr::WorkEmail) {
        body.insert("emails".into(), json!([{ "primary": true, "type": "work", "value": v }]));
    }
    if let Some(v) = a(Attr::PreferredLanguage) {
        body.insert("preferredLanguage".into(), json!(v));
    }
    body.insert("meta".into(), json!({ "resourceType": "User" }));
    let mut name = Map::new();
    for (attr, key) in
        [(Attr::Formatted, "formatted"), (Attr::FamilyName, "familyName"), (Attr::GivenName, "givenName")]
    {
        if let Some(v) = a(attr) {
            name.insert(key.into(), json!(v));
        }
    }
    if !name.is_empty() {
        body.insert("name".into(), Value::Object(name));
    }
    let mut address = Map::new();
    for (attr, key) in [
        (Attr::AddressFormatted, "formatted"),
        (Attr::StreetAddress, "streetAddress"),
        (Attr::Locality, "locality"),
        (Attr::Region, "region"),
        (Attr::PostalCode, "postalCode"),
        (Attr::Country, "country"),
    ] {
        if let Some(v) = a(attr) {
            address.insert(key.into(), json!(v));
        }
    }
    if !address.is_empty() {
        address.insert("type".into(), json!("work"));
        body.insert("addresses".into(), json!([Value::Object(address)]));
    }
    let phones: Vec<Value> = [(Attr::WorkPhone, "work"), (Attr::MobilePhone, "mobile"), (Attr::Fax, "fax")]
        .into_iter()
        .filter_map(|(attr, kind)| a(attr).map(|v| json!({ "type": kind, "value": v })))
        .collect();
    if !phones.is_empty() {
        body.insert("phoneNumbers".into(), Value::Array(phones));
    }
    let mut ext = Map::new();
    for (attr, key) in [(Attr::EmployeeNumber, "employeeNumber"), (Attr::Department, "department")] {
        if let Some(v) = a(attr) {
            ext.insert(key.into(), json!(v));
        }
    }
    if !ext.is_empty() {
        body.insert(ENTERPRISE.into(), Value::Object(ext));
    }
    body.insert("roles".into(), json!([]));
    Value::Object(body)
}

/// The `POST /Groups` body: no members (they are added by PATCH afterwards).
pub(crate) fn create_group_body(group: &Group) -> Value {
    json!({
        "schemas": [GROUP_SCHEMA, ADSCIM_GROUP_SCHEMA],
        "externalId": group.id,
        "displayName": group.display_name,
        "meta": { "resourceType": "Group" },
    })
}

fn op(kind: &str, mode: ProvisioningMode) -> String {
    match mode {
        ProvisioningMode::Default => kind.to_owned(),
        ProvisioningMode::AadOptscim062020 => kind.to_ascii_lowercase(),
    }
}

fn active_value(active: bool, mode: ProvisioningMode) -> Value {
    match mode {
        // Entra's default mapping is Switch([IsSoftDeleted], , "False", "True", "True", "False"):
        // a string, sent as is.
        ProvisioningMode::Default => json!(if active { "True" } else { "False" }),
        ProvisioningMode::AadOptscim062020 => json!(active),
    }
}

/// The PATCH operations that turn `old` into `new`: `Add` where the target had no value,
/// `Replace` where it had another, `Remove` where the source value disappeared.
pub(crate) fn user_patch_ops(old: &UserImage, new: &UserImage, mode: ProvisioningMode) -> Vec<Value> {
    let mut ops = Vec::new();
    // Path-less replace collected in flag mode, placed where its first member would be.
    let mut pathless: Option<(usize, Map<String, Value>)> = None;
    let mut push_attr = |ops: &mut Vec<Value>, attr: Attr| match (old.attrs.get(&attr), new.attrs.get(&attr)) {
        (None, Some(v)) => ops.push(json!({ "op": op("Add", mode), "path": attr.path(), "value": v })),
        (Some(a), Some(b)) if a != b => {
            if mode == ProvisioningMode::AadOptscim062020 && !attr.filtered() {
                let (_, map) = pathless.get_or_insert_with(|| (ops.len(), Map::new()));
                map.insert(attr.path().to_owned(), json!(b));
            } else {
                ops.push(json!({ "op": op("Replace", mode), "path": attr.path(), "value": b }));
            }
        }
        (Some(_), None) => ops.push(json!({ "op": op("Remove", mode), "path": attr.path() })),
        _ => {}
    };
    // Mapping order: userName, active, then the rest.
    push_attr(&mut ops, Attr::UserName);
    if old.active != new.active {
        ops.push(json!({ "op": op("Replace", mode), "path": "active", "value": active_value(new.active, mode) }));
    }
    for attr in Attr::ALL.into_iter().skip(1) {
        push_attr(&mut ops, attr);
    }
    if let Some((at, map)) = pathless {
        ops.insert(at, json!({ "op": op("Replace", mode), "value": Value::Object(map) }));
    }
    ops
}

/// Operations renaming a group (or fixing its `externalId`).
pub(crate) fn group_replace_ops(attribute: &str, value: &str, mode: ProvisioningMode) -> Vec<Value> {
    match mode {
        ProvisioningMode::Default => {
            vec![json!({ "op": "Replace", "path": attribute, "value": value })]
        }
        ProvisioningMode::AadOptscim062020 => {
            vec![json!({ "op": "replace", "value": { attribute: value } })]
        }
    }
}

/// Operations adding and removing group members (SCIM ids).
pub(crate) fn member_ops(adds: &[String], removes: &[String], mode: ProvisioningMode) -> Vec<Value> {
    let mut ops = Vec::new();
    if !adds.is_empty() {
        let values: Vec<Value> = adds.iter().map(|id| json!({ "$ref": null, "value": id })).collect();
        ops.push(json!({ "op": op("Add", mode), "path": "members", "value": values }));
    }
    if !removes.is_empty() {
        match mode {
            ProvisioningMode::Default => {
                let values: Vec<Value> = removes.iter().map(|id| json!({ "value": id })).collect();
                ops.push(json!({ "op": "Remove", "path": "members", "value": values }));
            }
            ProvisioningMode::AadOptscim062020 => {
                for id in removes {
                    ops.push(json!({ "op": "remove", "path": format!("members[value eq \"{id}\"]") }));
                }
            }
        }
    }
    ops
}

/// A PatchOp message.
pub(crate) fn patch_body(ops: Vec<Value>) -> Value {
    json!({ "schemas": [PATCH_SCHEMA], "Operations": ops })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn image(pairs: &[(Attr, &str)], active: bool) -> UserImage {
        UserImage { active, attrs: pairs.iter().map(|(a, v)| (*a, (*v).to_owned())).collect() }
    }

    #[test]
    fn default_mode_sends_one_capitalised_op_per_path_and_string_active() {
        let old = image(&[(Attr::UserName, "a@x"), (Attr::DisplayName, "A"), (Attr::Title, "T")], true);
        let new = image(&[(Attr::UserName, "a@x"), (Attr::DisplayName, "B"), (Attr::WorkEmail, "a@y")], false);
        let ops = user_patch_ops(&old, &new, ProvisioningMode::Default);
        assert_eq!(
            Value::Array(ops),
            json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Replace", "path": "displayName", "value": "B"},
                {"op": "Remove", "path": "title"},
                {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@y"},
            ])
        );
    }

    #[test]
    fn flag_mode_groups_plain_replaces_into_one_pathless_op() {
        let old = image(
            &[(Attr::DisplayName, "A"), (Attr::GivenName, "G"), (Attr::WorkEmail, "a@x"), (Attr::EmployeeNumber, "1")],
            true,
        );
        let new = image(
            &[(Attr::DisplayName, "B"), (Attr::GivenName, "H"), (Attr::WorkEmail, "b@x"), (Attr::EmployeeNumber, "2")],
            false,
        );
        let ops = user_patch_ops(&old, &new, ProvisioningMode::AadOptscim062020);
        assert_eq!(
            Value::Array(ops),
            json!([
                {"op": "replace", "path": "active", "value": false},
                {"op": "replace", "value": {
                    "displayName": "B",
                    "name.givenName": "H",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "2"
                }},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@x"},
            ])
        );
    }

    #[test]
    fn member_removal_differs_by_mode() {
        let d = member_ops(&[], &["u1".into(), "u2".into()], ProvisioningMode::Default);
        assert_eq!(d, vec![json!({"op": "Remove", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]})]);
        let f = member_ops(&[], &["u1".into()], ProvisioningMode::AadOptscim062020);
        assert_eq!(f, vec![json!({"op": "remove", "path": "members[value eq \"u1\"]"})]);
    }

    #[test]
    fn resources_read_back_into_images() {
        let res = json!({
            "userName": "a@x", "active": "False", "name": {"givenName": "A"},
            "emails": [{"type": "work", "value": "a@y"}],
            ENTERPRISE: {"manager": {"value": "m1"}}
        });
        let img = from_resource(&res);
        assert!(!img.active);
        assert_eq!(img.attrs.get(&Attr::WorkEmail).map(String::as_str), Some("a@y"));
        assert_eq!(img.attrs.get(&Attr::Manager).map(String::as_str), Some("m1"));
    }
}
