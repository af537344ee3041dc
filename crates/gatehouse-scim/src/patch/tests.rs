//! Tests for the PATCH engine: one or more per rule, with request bodies shaped like the ones
//! Entra's provisioning service and its SCIM Validator send.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "u-1",
        "userName": "ada@contoso.com",
        "active": true,
        "displayName": "Ada",
        "name": {"givenName": "Ada", "familyName": "Byron"},
        "emails": [{"type": "work", "value": "ada@contoso.com", "primary": true}],
        "meta": {"resourceType": "User", "version": "W/\"1\""},
    })
}

fn group(members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g-1",
        "displayName": "Engineering",
        "members": members,
    })
}

fn body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
}

fn ok(resource: &mut Value, ops: Value, kind: ResourceKind) -> PatchOutcome {
    apply_patch(resource, &body(ops.clone()), kind).unwrap_or_else(|e| panic!("{ops}: {e}"))
}

/// Applies `ops` to `resource` expecting a 400 of `scim_type`, and checks nothing changed.
fn fails(resource: &Value, ops: Value, kind: ResourceKind, scim_type: ScimType) -> ScimError {
    let mut r = resource.clone();
    let e = apply_patch(&mut r, &body(ops.clone()), kind).err().unwrap_or_else(|| panic!("{ops} accepted: {r}"));
    assert_eq!((e.status, e.scim_type), (400, Some(scim_type)), "{ops}: {e}");
    assert_eq!(&r, resource, "{ops} changed the resource although it failed");
    e
}

fn member_ids(g: &Value) -> Vec<&str> {
    g["members"].as_array().map(|a| a.iter().filter_map(|m| m["value"].as_str()).collect()).unwrap_or_default()
}

// --- Request body --------------------------------------------------------------------------

#[test]
fn malformed_bodies_are_invalid_syntax() {
    let ops = json!([{"op": "replace", "path": "displayName", "value": "x"}]);
    let too_many: Vec<Value> =
        (0..=MAX_OPERATIONS).map(|_| json!({"op": "add", "path": "title", "value": "x"})).collect();
    for (b, words) in [
        (json!([]), "JSON object"),
        (json!({"Operations": ops}), "no \"schemas\""),
        (json!({"schemas": PATCH_OP_SCHEMA, "Operations": ops}), "array containing"),
        (json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": ops}), "array containing"),
        (json!({"schemas": [PATCH_OP_SCHEMA]}), "Operations"),
        (json!({"schemas": [PATCH_OP_SCHEMA], "Operations": {"op": "add"}}), "Operations"),
        (json!({"schemas": [PATCH_OP_SCHEMA], "Operations": []}), "empty"),
        (json!({"schemas": [PATCH_OP_SCHEMA], "Operations": too_many}), "more than 1000"),
        (body(json!(["add"])), "JSON object"),
        (body(json!([{"path": "title", "value": "x"}])), "\"op\""),
        (body(json!([{"op": 1, "path": "title", "value": "x"}])), "\"op\""),
        (body(json!([{"op": "patch", "path": "title", "value": "x"}])), "unknown op"),
    ] {
        let mut r = user();
        let e = apply_patch(&mut r, &b, ResourceKind::User).err().unwrap_or_else(|| panic!("{b} accepted"));
        assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidSyntax)), "{b}: {e}");
        assert!(e.detail.contains(words), "{b}: {e}");
        assert_eq!(r, user());
    }
}

#[test]
fn tolerates_extra_schemas_and_lowercase_operations_key() {
    let mut r = user();
    let b = json!({
        "schemas": ["urn:example:unknown", "URN:IETF:PARAMS:SCIM:API:MESSAGES:2.0:PATCHOP"],
        "operations": [{"op": "replace", "path": "title", "value": "Countess"}],
    });
    assert!(apply_patch(&mut r, &b, ResourceKind::User).is_ok_and(|o| o.changed));
    assert_eq!(r["title"], "Countess");
}

#[test]
fn op_names_are_case_insensitive() {
    let mut r = user();
    ok(
        &mut r,
        json!([
            {"op": "Add", "path": "nickName", "value": "Babs"},
            {"op": "REPLACE", "path": "title", "value": "Countess"},
            {"op": "Remove", "path": "displayName"},
        ]),
        ResourceKind::User,
    );
    assert_eq!(
        (r["nickName"].as_str(), r["title"].as_str(), r.get("displayName")),
        (Some("Babs"), Some("Countess"), None)
    );
}

#[test]
fn path_problems_and_missing_values() {
    let r = user();
    for (ops, t, words) in [
        (json!([{"op": "Remove"}]), ScimType::NoTarget, "remove needs a path"),
        (json!([{"op": "remove", "path": ""}]), ScimType::NoTarget, "remove needs a path"),
        (json!([{"op": "replace", "path": "emails[type eq]", "value": "x"}]), ScimType::InvalidPath, "emails[type eq]"),
        (json!([{"op": "replace", "path": "a..b", "value": "x"}]), ScimType::InvalidPath, "a..b"),
        (json!([{"op": "replace", "path": 7, "value": "x"}]), ScimType::InvalidPath, "must be a string"),
        (json!([{"op": "Add", "path": "nickName"}]), ScimType::InvalidValue, "add needs a value"),
        (json!([{"op": "replace"}]), ScimType::InvalidValue, "replace needs a value"),
        (json!([{"op": "replace", "value": "x"}]), ScimType::InvalidValue, "object value"),
        (json!([{"op": "replace", "value": {"bad key": "x"}}]), ScimType::InvalidPath, "bad key"),
        (
            json!([{"op": "replace", "path": "userName.first", "value": "x"}]),
            ScimType::InvalidPath,
            "no sub-attributes",
        ),
        (json!([{"op": "replace", "path": "title[value eq \"x\"]", "value": "y"}]), ScimType::InvalidPath, "filter"),
    ] {
        let e = fails(&r, ops.clone(), ResourceKind::User, t);
        assert!(e.detail.contains(words), "{ops}: {e}");
    }
}

#[test]
fn a_failing_operation_leaves_the_resource_untouched() {
    let e = fails(
        &user(),
        json!([
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "replace", "path": "active", "value": "maybe"},
        ]),
        ResourceKind::User,
        ScimType::InvalidValue,
    );
    assert!(e.detail.starts_with("Operations[1] (replace active):"), "{e}");
    assert_eq!(
        e.to_json(),
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": "400",
            "scimType": "invalidValue",
            "detail": e.detail,
        })
    );
}

// --- Entra user bodies -----------------------------------------------------------------------

#[test]
fn entra_default_mode_replace_per_path() {
    let mut r = user();
    let out = ok(
        &mut r,
        json!([
            {"op": "Replace", "path": "displayName", "value": "Ada Lovelace"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ada.lovelace@contoso.com"},
            {"op": "Replace", "path": "name.givenName", "value": "Augusta Ada"},
            {"op": "Replace", "path": "name.familyName", "value": "Lovelace"},
            {"op": "Add", "path": "externalId", "value": "ada"},
            {"op": "Add", "path": format!("{ENT}:employeeNumber"), "value": "1815"},
        ]),
        ResourceKind::User,
    );
    assert!(out.changed && !out.active_changed);
    assert_eq!(r["displayName"], "Ada Lovelace");
    assert_eq!(r["emails"], json!([{"type": "work", "value": "ada.lovelace@contoso.com", "primary": true}]));
    assert_eq!(r["name"], json!({"givenName": "Augusta Ada", "familyName": "Lovelace"}));
    assert_eq!(r["externalId"], "ada");
    assert_eq!(r[ENT], json!({"employeeNumber": "1815"}));
    assert_eq!(r["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENT]));
    assert_eq!(r["meta"], user()["meta"]);
}

#[test]
fn flag_mode_pathless_replace_with_dotted_and_urn_keys() {
    let mut r = user();
    ok(
        &mut r,
        json!([{"op": "replace", "value": {
            "displayName": "Ada Lovelace",
            "name.givenName": "Augusta",
            "name.familyName": "Lovelace",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "1815",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Analytical Engines",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "u-babbage",
        }}]),
        ResourceKind::User,
    );
    assert_eq!(r["name"], json!({"givenName": "Augusta", "familyName": "Lovelace"}));
    assert_eq!(
        r[ENT],
        json!({"employeeNumber": "1815", "department": "Analytical Engines", "manager": {"value": "u-babbage"}})
    );
    // The RFC's own form: the extension as one object.
    ok(&mut r, json!([{"op": "add", "value": {ENT: {"costCenter": "C1", "department": "Maths"}}}]), ResourceKind::User);
    assert_eq!(r[ENT]["costCenter"], "C1");
    assert_eq!(r[ENT]["department"], "Maths");
    assert_eq!(r[ENT]["employeeNumber"], "1815");
}

#[test]
fn validator_pathless_replace_of_user_name() {
    let mut r = user();
    ok(&mut r, json!([{"op": "replace", "value": {"userName": "ada.lovelace@contoso.com"}}]), ResourceKind::User);
    assert_eq!(r["userName"], "ada.lovelace@contoso.com");
}

#[test]
fn active_accepts_booleans_and_entra_strings() {
    for (value, want) in [
        (json!("False"), false),
        (json!("false"), false),
        (json!("FALSE"), false),
        (json!(false), false),
        (json!("True"), true),
        (json!(" true "), true),
        (json!(true), true),
    ] {
        let mut r = user();
        r["active"] = json!(!want);
        let out = ok(&mut r, json!([{"op": "Replace", "path": "active", "value": value}]), ResourceKind::User);
        assert_eq!(r["active"], json!(want), "{value}");
        assert_eq!((out.active_changed, out.active, out.changed), (true, Some(want), true), "{value}");
    }
    // Path-less, with a URN-qualified core name.
    let mut r = user();
    let out = ok(
        &mut r,
        json!([{"op": "replace", "value": {"urn:ietf:params:scim:schemas:core:2.0:User:active": "False"}}]),
        ResourceKind::User,
    );
    assert_eq!((r["active"].clone(), out.active), (json!(false), Some(false)));
    for bad in [json!("yes"), json!(""), json!(0), json!({"value": true}), json!([true])] {
        let e = fails(
            &user(),
            json!([{"op": "replace", "path": "active", "value": bad}]),
            ResourceKind::User,
            ScimType::InvalidValue,
        );
        assert!(e.detail.contains("true or false"), "{e}");
    }
}

#[test]
fn unchanged_active_is_reported_unchanged() {
    let mut r = user();
    let out = ok(&mut r, json!([{"op": "Replace", "path": "active", "value": "True"}]), ResourceKind::User);
    assert_eq!(out, PatchOutcome { changed: false, active_changed: false, active: Some(true), ..Default::default() });
}

#[test]
fn attribute_names_are_case_insensitive() {
    let mut r = user();
    r["DISPLAYNAME"] = r["displayName"].take();
    r.as_object_mut().map(|m| m.remove("displayName"));
    ok(
        &mut r,
        json!([
            {"op": "replace", "path": "displayname", "value": "Ada L"},
            {"op": "add", "path": "NICKNAME", "value": "Babs"},
            {"op": "replace", "path": "NAME.GIVENNAME", "value": "Augusta"},
            {"op": "add", "path": "Name.MiddleName", "value": "King"},
            {"op": "replace", "path": "EMAILS[TYPE eq \"work\"].VALUE", "value": "a@contoso.com"},
            {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:DEPARTMENT", "value": "R&D"},
        ]),
        ResourceKind::User,
    );
    assert_eq!(r["DISPLAYNAME"], "Ada L", "existing spelling kept");
    assert!(r.get("displayname").is_none());
    assert_eq!(r["nickName"], "Babs", "schema spelling for a new key");
    assert_eq!(r["name"], json!({"givenName": "Augusta", "familyName": "Byron", "middleName": "King"}));
    assert_eq!(r["emails"][0]["value"], "a@contoso.com");
    assert_eq!(r[ENT], json!({"department": "R&D"}));
}

#[test]
fn unknown_attributes_are_stored_as_sent() {
    let mut r = user();
    ok(&mut r, json!([{"op": "add", "path": "favouriteEngine", "value": "Analytical"}]), ResourceKind::User);
    assert_eq!(r["favouriteEngine"], "Analytical");
}

#[test]
fn known_string_attributes_reject_other_types() {
    for (path, value) in [("displayName", json!(5)), ("userName", json!("")), ("name.givenName", json!(["Ada"]))] {
        fails(
            &user(),
            json!([{"op": "replace", "path": path, "value": value}]),
            ResourceKind::User,
            ScimType::InvalidValue,
        );
    }
    fails(&user(), json!([{"op": "remove", "path": "userName"}]), ResourceKind::User, ScimType::InvalidValue);
    fails(
        &group(&[]),
        json!([{"op": "replace", "path": "displayName", "value": null}]),
        ResourceKind::Group,
        ScimType::InvalidValue,
    );
}

// --- Value-filter paths ----------------------------------------------------------------------

#[test]
fn value_filter_paths_create_missing_elements() {
    let mut r =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "u-2", "userName": "b@contoso.com"});
    ok(
        &mut r,
        json!([
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "b@contoso.com"},
            {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
            {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Redmond"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"},
            {"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 555 0101"},
        ]),
        ResourceKind::User,
    );
    assert_eq!(r["emails"], json!([{"type": "work", "value": "b@contoso.com"}]));
    assert_eq!(r["addresses"], json!([{"type": "work", "streetAddress": "1 Main St", "locality": "Redmond"}]));
    assert_eq!(
        r["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555 0100"}, {"type": "work", "value": "+1 555 0101"}])
    );
    // replace creates too (the validator's "Add Attributes" / Entra's Replace on a new address).
    ok(
        &mut r,
        json!([{"op": "replace", "path": "addresses[type eq \"home\"].country", "value": "GB"}]),
        ResourceKind::User,
    );
    assert_eq!(r["addresses"][1], json!({"type": "home", "country": "GB"}));
    // Only eq/and filters describe an element; anything else has nothing to create.
    fails(
        &r,
        json!([{"op": "add", "path": "emails[type co \"oth\"].value", "value": "x@y"}]),
        ResourceKind::User,
        ScimType::NoTarget,
    );
}

#[test]
fn value_filter_matching_is_case_insensitive_except_member_ids() {
    let mut r = user();
    ok(
        &mut r,
        json!([{"op": "replace", "path": "emails[Type EQ \"WORK\"].value", "value": "new@contoso.com"}]),
        ResourceKind::User,
    );
    assert_eq!(r["emails"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["emails"][0]["value"], "new@contoso.com");

    let mut g = group(&["abc", "ABC"]);
    ok(&mut g, json!([{"op": "remove", "path": "members[value eq \"ABC\"]"}]), ResourceKind::Group);
    assert_eq!(member_ids(&g), ["abc"]);
}

#[test]
fn value_filter_remove_removes_elements_or_sub_attributes() {
    let mut r = user();
    r["phoneNumbers"] = json!([{"type": "work", "value": "1"}, {"type": "mobile", "value": "2", "display": "2"}]);
    ok(
        &mut r,
        json!([
            {"op": "remove", "path": "phoneNumbers[type eq \"work\"]"},
            {"op": "remove", "path": "phoneNumbers[type eq \"mobile\"].display"},
            {"op": "remove", "path": "phoneNumbers[type eq \"fax\"]"},
        ]),
        ResourceKind::User,
    );
    assert_eq!(r["phoneNumbers"], json!([{"type": "mobile", "value": "2"}]));
    ok(
        &mut r,
        json!([{"op": "remove", "path": "phoneNumbers[type eq \"mobile\" and value eq \"2\"]"}]),
        ResourceKind::User,
    );
    assert!(r.get("phoneNumbers").is_none(), "an emptied multi-valued attribute is unassigned");
}

#[test]
fn value_filter_without_sub_attribute() {
    let mut r = user();
    ok(
        &mut r,
        json!([{"op": "add", "path": "emails[type eq \"work\"]", "value": {"display": "Ada (work)"}}]),
        ResourceKind::User,
    );
    assert_eq!(
        r["emails"][0],
        json!({"type": "work", "value": "ada@contoso.com", "primary": true, "display": "Ada (work)"})
    );
    // replace swaps the element but keeps what selected it.
    ok(
        &mut r,
        json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"value": "w@contoso.com"}}]),
        ResourceKind::User,
    );
    assert_eq!(r["emails"], json!([{"type": "work", "value": "w@contoso.com"}]));
}

#[test]
fn multi_valued_add_appends_without_duplicates() {
    let mut r = user();
    ok(
        &mut r,
        json!([{"op": "add", "path": "emails", "value": [
            {"type": "home", "value": "ada@home.example"},
            {"value": "ADA@contoso.com", "display": "Ada"},
        ]}]),
        ResourceKind::User,
    );
    assert_eq!(
        r["emails"],
        json!([
            {"type": "work", "value": "ada@contoso.com", "primary": true, "display": "Ada"},
            {"type": "home", "value": "ada@home.example"},
        ])
    );
    let before = r.clone();
    let out = ok(
        &mut r,
        json!([{"op": "add", "path": "emails", "value": {"value": "ada@home.example"}}]),
        ResourceKind::User,
    );
    assert!(!out.changed);
    assert_eq!(r, before);
}

#[test]
fn multi_valued_replace_replaces_all() {
    let mut r = user();
    ok(
        &mut r,
        json!([{"op": "replace", "path": "emails", "value": [{"type": "other", "value": "o@example.com"}]}]),
        ResourceKind::User,
    );
    assert_eq!(r["emails"], json!([{"type": "other", "value": "o@example.com"}]));
    ok(&mut r, json!([{"op": "replace", "path": "emails", "value": []}]), ResourceKind::User);
    assert!(r.get("emails").is_none());
}

#[test]
fn primary_strings_become_booleans_and_stay_unique() {
    let mut r = user();
    ok(
        &mut r,
        json!([{"op": "add", "path": "emails", "value": [{"type": "home", "value": "h@example.com", "primary": "True"}]}]),
        ResourceKind::User,
    );
    assert_eq!(r["emails"][0]["primary"], false);
    assert_eq!(r["emails"][1]["primary"], true);
    fails(
        &user(),
        json!([{"op": "add", "path": "emails[type eq \"work\"].primary", "value": "sometimes"}]),
        ResourceKind::User,
        ScimType::InvalidValue,
    );
}

#[test]
fn entra_roles_patch() {
    let mut r = user();
    let role = "{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"25\",\"displayName\":\"Role1234\"}";
    ok(&mut r, json!([{"op": "Add", "path": "roles", "value": [{"value": role}]}]), ResourceKind::User);
    assert_eq!(r["roles"], json!([{"value": role}]));
    ok(
        &mut r,
        json!([{"op": "replace", "path": "roles", "value": [{"value": "Admin", "primary": "True", "type": "WindowsAzureActiveDirectoryRole"}]}]),
        ResourceKind::User,
    );
    assert_eq!(r["roles"], json!([{"value": "Admin", "primary": true, "type": "WindowsAzureActiveDirectoryRole"}]));
}

// --- Groups ----------------------------------------------------------------------------------

#[test]
fn entra_adds_members_with_ref_null() {
    let mut g = group(&["u-1"]);
    let out = ok(
        &mut g,
        json!([{"op": "Add", "path": "members", "value": [
            {"$ref": null, "value": "u-2"},
            {"$ref": null, "value": "u-3"},
            {"$ref": null, "value": "u-1"},
        ]}]),
        ResourceKind::Group,
    );
    assert_eq!(member_ids(&g), ["u-1", "u-2", "u-3"]);
    assert_eq!(g["members"][1], json!({"value": "u-2"}), "\"$ref\": null is not stored");
    assert_eq!((out.members_added, out.members_removed), (vec!["u-2".to_owned(), "u-3".to_owned()], vec![]));
    // To an empty group (Entra creates groups without members, then adds them).
    let mut g = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g-2", "displayName": "New"});
    ok(&mut g, json!([{"op": "Add", "path": "members", "value": [{"value": "u-9"}]}]), ResourceKind::Group);
    assert_eq!(member_ids(&g), ["u-9"]);
}

#[test]
fn entra_default_mode_removes_only_listed_members() {
    let mut g = group(&["u-1", "u1091", "u-3"]);
    let out =
        ok(&mut g, json!([{"op": "Remove", "path": "members", "value": [{"value": "u1091"}]}]), ResourceKind::Group);
    assert_eq!(member_ids(&g), ["u-1", "u-3"]);
    assert_eq!(out.members_removed, ["u1091"]);
    assert!(out.members_added.is_empty());
}

#[test]
fn flag_mode_removes_member_by_filter() {
    let mut g = group(&["7f4b0000-0000-0000-0000-000000000001", "u-2"]);
    let out = ok(
        &mut g,
        json!([{"op": "remove", "path": "members[value eq \"7f4b0000-0000-0000-0000-000000000001\"]"}]),
        ResourceKind::Group,
    );
    assert_eq!(member_ids(&g), ["u-2"]);
    assert_eq!(out.members_removed, ["7f4b0000-0000-0000-0000-000000000001"]);
    // Already gone: success, nothing changed.
    let out = ok(&mut g, json!([{"op": "remove", "path": "members[value eq \"gone\"]"}]), ResourceKind::Group);
    assert!(!out.changed);
}

#[test]
fn remove_members_without_value_removes_all() {
    let mut g = group(&["u-1", "u-2"]);
    let out = ok(&mut g, json!([{"op": "remove", "path": "members"}]), ResourceKind::Group);
    assert!(g.get("members").is_none());
    assert_eq!(out.members_removed, ["u-1", "u-2"]);
}

#[test]
fn validator_replaces_all_members_and_mixes_add_and_remove() {
    let mut g = group(&["u-1", "u-2"]);
    let out = ok(
        &mut g,
        json!([{"op": "replace", "path": "members", "value": [{"value": "u-2"}, {"value": "u-3"}]}]),
        ResourceKind::Group,
    );
    assert_eq!(member_ids(&g), ["u-2", "u-3"]);
    assert_eq!((out.members_added, out.members_removed), (vec!["u-3".to_owned()], vec!["u-1".to_owned()]));
    let out = ok(
        &mut g,
        json!([
            {"op": "add", "path": "members", "value": [{"value": "u-4"}]},
            {"op": "remove", "path": "members[value eq \"u-2\"]"},
        ]),
        ResourceKind::Group,
    );
    assert_eq!(member_ids(&g), ["u-3", "u-4"]);
    assert_eq!((out.members_added, out.members_removed), (vec!["u-4".to_owned()], vec!["u-2".to_owned()]));
}

#[test]
fn group_pathless_replace_of_attributes() {
    let mut g = group(&["u-1"]);
    let out = ok(
        &mut g,
        json!([{"op": "replace", "value": {"externalId": "0a1b", "displayName": "Eng", "meta": {"version": "x"}}}]),
        ResourceKind::Group,
    );
    assert_eq!((g["externalId"].as_str(), g["displayName"].as_str()), (Some("0a1b"), Some("Eng")));
    assert!(g.get("meta").is_none(), "meta in a value is ignored");
    assert!(out.members_added.is_empty() && out.members_removed.is_empty());
}

#[test]
fn member_ids_are_compared_exactly_when_adding() {
    let mut g = group(&["abc"]);
    ok(&mut g, json!([{"op": "add", "path": "members", "value": [{"value": "ABC"}, "def"]}]), ResourceKind::Group);
    assert_eq!(member_ids(&g), ["abc", "ABC", "def"]);
}

// --- Manager ---------------------------------------------------------------------------------

#[test]
fn manager_as_id_or_object() {
    let path = format!("{ENT}:manager");
    for value in [json!("u-mgr"), json!({"value": "u-mgr"}), json!({"Value": "u-mgr", "$ref": null})] {
        let mut r = user();
        ok(&mut r, json!([{"op": "add", "path": path, "value": value}]), ResourceKind::User);
        assert_eq!(r[ENT]["manager"], json!({"value": "u-mgr"}), "{value}");
        assert!(r["schemas"].as_array().is_some_and(|s| s.contains(&json!(ENT))));
    }
    // A new manager replaces the old reference whole.
    let mut r = user();
    r[ENT] = json!({"manager": {"value": "old", "displayName": "Old Boss"}});
    ok(&mut r, json!([{"op": "replace", "path": path, "value": {"value": "new"}}]), ResourceKind::User);
    assert_eq!(r[ENT]["manager"], json!({"value": "new"}));
    ok(&mut r, json!([{"op": "replace", "path": format!("{path}.value"), "value": "newer"}]), ResourceKind::User);
    assert_eq!(r[ENT]["manager"], json!({"value": "newer"}));
    for bad in [json!(5), json!({"displayName": "No Id"}), json!({"value": 5}), json!(["u"])] {
        fails(&user(), json!([{"op": "add", "path": path, "value": bad}]), ResourceKind::User, ScimType::InvalidValue);
    }
}

#[test]
fn manager_removal_forms() {
    let path = format!("{ENT}:manager");
    for ops in [
        json!([{"op": "remove", "path": path}]),
        json!([{"op": "Remove", "path": path, "value": [{"value": "u-mgr"}]}]),
        json!([{"op": "replace", "path": path, "value": null}]),
        json!([{"op": "replace", "path": path, "value": ""}]),
        json!([{"op": "replace", "path": path, "value": {"value": ""}}]),
        json!([{"op": "replace", "value": {path.clone(): {"value": ""}}}]),
        json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq \"u-mgr\"]"}]),
        json!([{"op": "remove", "path": format!("{path}.value")}]),
    ] {
        let mut r = user();
        r[ENT] = json!({"department": "R&D", "manager": {"value": "u-mgr"}});
        ok(&mut r, ops.clone(), ResourceKind::User);
        assert_eq!(r[ENT], json!({"department": "R&D"}), "{ops}");
    }
}

#[test]
fn emptied_enterprise_extension_is_dropped_from_schemas() {
    let mut r = user();
    ok(&mut r, json!([{"op": "add", "path": format!("{ENT}:manager"), "value": "m"}]), ResourceKind::User);
    assert!(r["schemas"].as_array().is_some_and(|s| s.len() == 2));
    ok(&mut r, json!([{"op": "remove", "path": format!("{ENT}:manager")}]), ResourceKind::User);
    assert!(r.get(ENT).is_none());
    assert_eq!(r["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User"]));
    // The whole extension by its URN.
    r[ENT] = json!({"department": "x"});
    ok(&mut r, json!([{"op": "remove", "path": ENT}]), ResourceKind::User);
    assert!(r.get(ENT).is_none());
}

// --- Nulls, read-only attributes, unknown schemas ---------------------------------------------

#[test]
fn explicit_null_removes_the_attribute() {
    let mut r = user();
    r["nickName"] = json!("Babs");
    ok(
        &mut r,
        json!([
            {"op": "Replace", "path": "nickName", "value": null},
            {"op": "replace", "path": "name.familyName", "value": null},
            {"op": "add", "value": {"displayName": null, "title": null}},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": null},
        ]),
        ResourceKind::User,
    );
    assert!(r.get("nickName").is_none() && r.get("displayName").is_none() && r.get("title").is_none());
    assert_eq!(r["name"], json!({"givenName": "Ada"}));
    assert_eq!(r["emails"], json!([{"type": "work", "primary": true}]));
    ok(&mut r, json!([{"op": "replace", "path": "name", "value": {"givenName": null}}]), ResourceKind::User);
    assert!(r.get("name").is_none(), "an emptied complex attribute is unassigned");
}

#[test]
fn meta_and_schemas_are_ignored_and_id_is_read_only() {
    let mut r = user();
    let out = ok(
        &mut r,
        json!([
            {"op": "replace", "path": "meta", "value": {"version": "W/\"9\""}},
            {"op": "replace", "path": "schemas", "value": ["urn:x"]},
            {"op": "add", "value": {"meta": {"created": "2020"}, "schemas": [], "id": "u-1"}},
            {"op": "replace", "path": "id", "value": "u-1"},
        ]),
        ResourceKind::User,
    );
    assert!(!out.changed);
    assert_eq!(r, user());
    for ops in [
        json!([{"op": "replace", "path": "id", "value": "u-2"}]),
        json!([{"op": "replace", "value": {"ID": "u-2"}}]),
        json!([{"op": "remove", "path": "id"}]),
    ] {
        let e = fails(&user(), ops, ResourceKind::User, ScimType::Mutability);
        assert!(e.detail.contains("id is read-only"), "{e}");
    }
}

#[test]
fn schema_uri_qualified_attributes_for_other_schemas_are_ignored() {
    let mut r = user();
    let out = ok(
        &mut r,
        json!([
            {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User:badge", "value": "42"},
            {"op": "replace", "value": {"urn:ietf:params:scim:schemas:extension:Contoso:2.0:User:floor": "3"}},
            {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User:badge"},
        ]),
        ResourceKind::User,
    );
    assert!(!out.changed);
    let mut g = group(&[]);
    let out =
        ok(&mut g, json!([{"op": "add", "path": format!("{ENT}:department"), "value": "R&D"}]), ResourceKind::Group);
    assert!(!out.changed);
}

#[test]
fn custom_extension_listed_in_schemas_is_patched() {
    let custom = "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User";
    let mut r = user();
    r["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", custom]);
    ok(&mut r, json!([{"op": "add", "path": format!("{custom}:badge"), "value": "42"}]), ResourceKind::User);
    assert_eq!(r[custom], json!({"badge": "42"}));
}

// --- Property tests -----------------------------------------------------------------------------

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![
            Just("True".to_owned()),
            Just("".to_owned()),
            Just("work".to_owned()),
            Just("u-1".to_owned()),
            "\\PC{0,12}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("value".to_owned()),
        Just("type".to_owned()),
        Just("primary".to_owned()),
        Just("displayName".to_owned()),
        Just("name.givenName".to_owned()),
        Just("active".to_owned()),
        Just("id".to_owned()),
        Just(format!("{ENT}:manager")),
        Just(ENT.to_owned()),
        "[a-zA-Z$][a-zA-Z0-9.:]{0,10}",
    ]
}

fn arb_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("members".to_owned()),
        Just("members[value eq \"u-1\"]".to_owned()),
        Just("emails[type eq \"work\"].value".to_owned()),
        Just("emails[type eq \"work\" or primary eq true]".to_owned()),
        Just("addresses[type eq \"work\"].streetAddress".to_owned()),
        Just("name.givenName".to_owned()),
        Just("name[givenName pr]".to_owned()),
        Just("active".to_owned()),
        Just("userName".to_owned()),
        Just("id".to_owned()),
        Just(format!("{ENT}:manager")),
        Just(format!("{ENT}:manager.value")),
        Just(format!("{ENT}:manager[value eq \"m\"]")),
        Just(ENT.to_owned()),
        "[a-zA-Z]{1,8}(\\.[a-zA-Z]{1,8})?(\\[[a-z]{1,5} (eq|co|pr|gt) \"[a-z]{0,3}\"\\])?",
        "\\PC{0,30}",
    ]
}

fn arb_op() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("add"), Just("Replace"), Just("REMOVE"), Just("remove"), Just("move")],
        prop::option::of(arb_path()),
        prop::option::of(arb_json()),
    )
        .prop_map(|(op, path, value)| {
            let mut o = json!({"op": op});
            if let Some(p) = path {
                o["path"] = json!(p);
            }
            if let Some(v) = value {
                o["value"] = v;
            }
            o
        })
}

fn fixture(i: usize) -> (Value, ResourceKind) {
    match i % 3 {
        0 => (user(), ResourceKind::User),
        1 => (group(&["u-1", "u-2"]), ResourceKind::Group),
        _ => {
            let mut r = user();
            r[ENT] = json!({"manager": {"value": "m"}, "department": "R&D"});
            r["addresses"] = json!([{"type": "work", "streetAddress": "1 Main St"}, "stray"]);
            (r, ResourceKind::User)
        }
    }
}

fn check(resource: &Value, kind: ResourceKind, b: &Value) -> Result<(), TestCaseError> {
    let mut r = resource.clone();
    match apply_patch(&mut r, b, kind) {
        Ok(out) => {
            prop_assert!(r.is_object());
            prop_assert_eq!(out.changed, &r != resource);
        }
        Err(e) => {
            prop_assert_eq!(e.status, 400);
            prop_assert!(e.scim_type.is_some());
            prop_assert_eq!(&r, resource);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_bodies(b in arb_json(), i in 0usize..3) {
        let (r, kind) = fixture(i);
        check(&r, kind, &b)?;
    }

    #[test]
    fn never_panics_on_arbitrary_operations(ops in prop::collection::vec(arb_op(), 1..6), i in 0usize..3) {
        let (r, kind) = fixture(i);
        check(&r, kind, &body(Value::Array(ops)))?;
    }

    #[test]
    fn adding_members_is_idempotent_and_remove_undoes_it(ids in prop::collection::vec("[a-zA-Z0-9-]{1,8}", 0..8)) {
        let mut g = group(&["base"]);
        let value: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
        let add = body(json!([{"op": "Add", "path": "members", "value": value}]));
        let remove = body(json!([{"op": "Remove", "path": "members", "value": value}]));
        prop_assert!(apply_patch(&mut g, &add, ResourceKind::Group).is_ok());
        let once = g.clone();
        let again = apply_patch(&mut g, &add, ResourceKind::Group);
        prop_assert!(again.is_ok_and(|o| !o.changed));
        prop_assert_eq!(&g, &once);
        prop_assert!(apply_patch(&mut g, &remove, ResourceKind::Group).is_ok());
        let mut left = member_ids(&g);
        if ids.iter().any(|i| i == "base") {
            left.push("base");
        }
        prop_assert_eq!(left, vec!["base"]);
    }
}
