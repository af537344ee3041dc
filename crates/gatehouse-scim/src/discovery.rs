//! Discovery (RFC 7644 §4): `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas`
//! describing what this server supports — PATCH yes, bulk, sort, ETags and password change
//! no, filters up to [`gatehouse_store::SCIM_MAX_PAGE`] results — and the User, Group and
//! enterprise User schemas with camelCase properties and no nulls (Entra's validator reads
//! them).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::error::ScimError;
use crate::patch::ENTERPRISE_USER_SCHEMA;
use crate::resource::{CORE_GROUP, CORE_USER};
use crate::server::{Authed, LogEntry, ResourceId, ScimState, scim_response};

const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

fn attr(name: &str, ty: &str, description: &str) -> Value {
    json!({
        "name": name, "type": ty, "multiValued": false, "description": description, "required": false,
        "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none",
    })
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.insert(key.into(), value);
    }
    v
}

fn multi(name: &str, description: &str, subs: &[(&str, &str)]) -> Value {
    let subs: Vec<Value> = subs
        .iter()
        .map(|(n, t)| {
            let a = attr(n, t, &format!("The {n} of the {name} entry."));
            match (*t, name) {
                // RFC 7643 §7: a reference names what it may point to.
                ("reference", "groups") => with(a, "referenceTypes", json!(["Group"])),
                ("reference", _) => with(a, "referenceTypes", json!(["User", "Group"])),
                _ => a,
            }
        })
        .collect();
    with(with(attr(name, "complex", description), "multiValued", json!(true)), "subAttributes", json!(subs))
}

fn user_schema() -> Value {
    let simple = [
        ("displayName", "The name of the user, suitable for display."),
        ("nickName", "The casual way to address the user."),
        ("profileUrl", "A URL to the user's online profile."),
        ("title", "The user's title."),
        ("userType", "The relationship between the organization and the user."),
        ("preferredLanguage", "The user's preferred written or spoken language."),
        ("locale", "The user's default location."),
        ("timezone", "The user's time zone."),
    ];
    let mut attributes = vec![
        with(
            with(
                with(
                    attr("userName", "string", "Unique identifier for the user, used to sign in."),
                    "required",
                    json!(true),
                ),
                "uniqueness",
                json!("server"),
            ),
            "caseExact",
            json!(false),
        ),
        with(
            attr("externalId", "string", "The identity provider's identifier for the user."),
            "caseExact",
            json!(true),
        ),
        with(
            attr("name", "complex", "The components of the user's name."),
            "subAttributes",
            json!(
                ["formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"]
                    .iter()
                    .map(|n| attr(n, "string", &format!("The {n} part of the name.")))
                    .collect::<Vec<_>>()
            ),
        ),
        attr("active", "boolean", "Whether the user may sign in."),
    ];
    attributes.extend(simple.iter().map(|(n, d)| attr(n, "string", d)));
    let entry = [("value", "string"), ("display", "string"), ("type", "string"), ("primary", "boolean")];
    attributes.push(multi("emails", "E-mail addresses of the user.", &entry));
    attributes.push(multi("phoneNumbers", "Phone numbers of the user.", &entry));
    attributes.push(multi("ims", "Instant messaging addresses.", &entry));
    attributes.push(multi("photos", "URLs of photos of the user.", &entry));
    attributes.push(multi(
        "addresses",
        "Physical mailing addresses.",
        &[
            ("formatted", "string"),
            ("streetAddress", "string"),
            ("locality", "string"),
            ("region", "string"),
            ("postalCode", "string"),
            ("country", "string"),
            ("type", "string"),
            ("primary", "boolean"),
        ],
    ));
    attributes.push(with(
        multi(
            "groups",
            "Groups the user is a direct member of.",
            &[("value", "string"), ("display", "string"), ("$ref", "reference")],
        ),
        "mutability",
        json!("readOnly"),
    ));
    attributes.push(multi("entitlements", "Entitlements of the user.", &entry));
    attributes.push(multi("roles", "Roles of the user.", &entry));
    attributes.push(multi("x509Certificates", "Certificates of the user.", &entry));
    schema(CORE_USER, "User", "User Account", attributes)
}

fn group_schema() -> Value {
    schema(
        CORE_GROUP,
        "Group",
        "Group",
        vec![
            with(
                with(
                    attr("displayName", "string", "The group's name; unique per identity provider."),
                    "required",
                    json!(true),
                ),
                "uniqueness",
                json!("server"),
            ),
            with(
                attr("externalId", "string", "The identity provider's id of the group (Entra: object id)."),
                "caseExact",
                json!(true),
            ),
            multi(
                "members",
                "Direct members of the group (users).",
                &[("value", "string"), ("display", "string"), ("type", "string"), ("$ref", "reference")],
            ),
        ],
    )
}

fn enterprise_schema() -> Value {
    let mut attributes: Vec<Value> = ["employeeNumber", "costCenter", "organization", "division", "department"]
        .iter()
        .map(|n| attr(n, "string", &format!("The user's {n}.")))
        .collect();
    attributes.push(with(
        attr("manager", "complex", "The user's manager."),
        "subAttributes",
        json!([attr("value", "string", "The manager's id."), attr("displayName", "string", "The manager's name.")]),
    ));
    schema(ENTERPRISE_USER_SCHEMA, "EnterpriseUser", "Enterprise User", attributes)
}

fn schema(id: &str, name: &str, description: &str, attributes: Vec<Value>) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": id, "name": name, "description": description, "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("/Schemas/{id}")},
    })
}

fn resource_type_docs(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": "/Users", "description": "User Account", "schema": CORE_USER,
            "schemaExtensions": [{"schema": ENTERPRISE_USER_SCHEMA, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups", "description": "Group", "schema": CORE_GROUP,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
        }),
    ]
}

fn list(resources: Vec<Value>) -> Value {
    json!({"schemas": [LIST], "totalResults": resources.len(), "startIndex": 1, "itemsPerPage": resources.len(), "Resources": resources})
}

fn not_found(what: &str, id: &str) -> ScimError {
    ScimError { status: 404, scim_type: None, detail: format!("no {what} {id:?}") }
}

/// `GET /ServiceProviderConfig`.
pub(crate) async fn service_provider_config(State(state): State<ScimState>, auth: Authed) -> Response {
    let base = state.base_url(auth.idp.id);
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/gatehouse-dev/gatehouse/blob/main/docs/scim.md",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": gatehouse_store::SCIM_MAX_PAGE},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "Bearer token", "primary": true,
            "description": "The identity provider's SCIM secret, sent as Authorization: Bearer <secret>.",
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    });
    LogEntry::new("GET", "CONFIG").finish(&state, auth.idp.id, Ok(scim_response(StatusCode::OK, &body)))
}

/// `GET /ResourceTypes`.
pub(crate) async fn resource_types(State(state): State<ScimState>, auth: Authed) -> Response {
    let body = list(resource_type_docs(&state.base_url(auth.idp.id)));
    LogEntry::new("GET", "CONFIG").finish(&state, auth.idp.id, Ok(scim_response(StatusCode::OK, &body)))
}

/// `GET /ResourceTypes/{id}`.
pub(crate) async fn resource_type(
    State(state): State<ScimState>,
    auth: Authed,
    ResourceId(id): ResourceId,
) -> Response {
    let found = resource_type_docs(&state.base_url(auth.idp.id))
        .into_iter()
        .find(|r| r["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(&id)));
    let result = found.map(|r| scim_response(StatusCode::OK, &r)).ok_or_else(|| not_found("resource type", &id));
    LogEntry::new("GET", "CONFIG").finish(&state, auth.idp.id, result)
}

fn all_schemas() -> Vec<Value> {
    vec![user_schema(), group_schema(), enterprise_schema()]
}

/// `GET /Schemas`.
pub(crate) async fn schemas(State(state): State<ScimState>, auth: Authed) -> Response {
    LogEntry::new("GET", "CONFIG").finish(&state, auth.idp.id, Ok(scim_response(StatusCode::OK, &list(all_schemas()))))
}

/// `GET /Schemas/{id}`.
pub(crate) async fn schema_by_id(State(state): State<ScimState>, auth: Authed, ResourceId(id): ResourceId) -> Response {
    let found = all_schemas().into_iter().find(|s| s["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(&id)));
    let result = found.map(|s| scim_response(StatusCode::OK, &s)).ok_or_else(|| not_found("schema", &id));
    LogEntry::new("GET", "CONFIG").finish(&state, auth.idp.id, result)
}
