//! Microsoft Graph v1.0, the part a relying party needs for group membership (reference §2).
//!
//! ```text
//! GET  /v1.0/me | /v1.0/users/{id|upn}
//! GET  /v1.0/{me|users/{id}}/memberOf[/microsoft.graph.group]            direct
//! GET  /v1.0/{me|users/{id}}/transitiveMemberOf[/microsoft.graph.group]  nested included
//! POST /v1.0/{me|users/{id}|directoryObjects/{id}}/getMemberObjects      {"securityEnabledOnly": bool}
//! POST /v1.0/{me|users/{id}|directoryObjects/{id}}/getMemberGroups
//! GET  /oidc/userinfo
//! ```
//!
//! Every call needs a bearer access token the emulator issued for Graph (401
//! `InvalidAuthenticationToken` otherwise). Then the injected throttling may answer 429 with
//! `Retry-After`; then permissions are checked against the token's `scp` (delegated) or
//! `roles` (application): membership reads need `GroupMember.Read.All`, `Group.Read.All`
//! or `Directory.Read.All` (403 `Authorization_RequestDenied`). Lists page with `$top`
//! (default 100, max 999) and an opaque `$skiptoken` in `@odata.nextLink`, and honour
//! `$select`. Errors use Graph's `{"error":{"code","message","innerError"}}` body.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::oidc::claims::{GraphTokenClaims, pairwise_sub, v1_issuer};
use crate::oidc::scopes::GRAPH_APP_ID;
use crate::server::SimState;
use crate::tenant::{Group, Tenant, ThrottleConfig, User, UserAttr};

/// Permissions that allow reading group memberships.
const MEMBERSHIP_PERMISSIONS: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Directory.AccessAsUser.All",
];
/// Permissions that allow reading one's own profile.
const SELF_PERMISSIONS: &[&str] =
    &["User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All", "Directory.Read.All"];
/// Permissions that allow reading other users' profiles.
const USER_PERMISSIONS: &[&str] = &["User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", "Directory.Read.All"];

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 999;

/// The Graph routes.
pub(crate) fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1.0/me", get(me))
        .route("/v1.0/users/{id}", get(user))
        .route("/v1.0/me/{relation}", get(me_list).post(me_action))
        .route("/v1.0/me/{relation}/{cast}", get(me_list_cast))
        .route("/v1.0/users/{id}/{relation}", get(user_list).post(user_action))
        .route("/v1.0/users/{id}/{relation}/{cast}", get(user_list_cast))
        .route("/v1.0/directoryObjects/{id}/{action}", axum::routing::post(user_action))
        .route("/oidc/userinfo", get(userinfo))
}

// === throttling ===

/// The injected-429 state: configuration and a count of authenticated requests.
#[derive(Debug)]
pub(crate) struct Throttle {
    config: ThrottleConfig,
    remaining_next: u64,
    count: u64,
}

impl Throttle {
    pub(crate) fn new(config: ThrottleConfig) -> Self {
        Self { config, remaining_next: config.next, count: 0 }
    }

    /// Replaces the configuration and restarts the count.
    pub(crate) fn configure(&mut self, config: ThrottleConfig) {
        *self = Self::new(config);
    }

    /// The configuration as set (not the remaining `next` budget).
    pub(crate) fn config(&self) -> ThrottleConfig {
        self.config
    }

    /// Counts a request; `Some(retry_after)` when it must be throttled.
    fn check(&mut self) -> Option<u64> {
        self.count += 1;
        if self.remaining_next > 0 {
            self.remaining_next -= 1;
            return Some(self.config.retry_after_seconds);
        }
        (self.config.every_nth > 0 && self.count.is_multiple_of(self.config.every_nth))
            .then_some(self.config.retry_after_seconds)
    }
}

// === errors ===

/// A Graph error response.
#[derive(Debug)]
struct GraphError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl GraphError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    fn not_found(key: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    fn denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    fn into_response(self, st: &SimState, headers: &HeaderMap) -> Response {
        let client_request_id = client_request_id(headers);
        let date = st.clock.now();
        let date = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            date.year(),
            u8::from(date.month()),
            date.day(),
            date.hour(),
            date.minute(),
            date.second()
        );
        let request_id = Uuid::new_v4();
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": date,
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                }
            }
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        let h = response.headers_mut();
        set_ids(h, request_id, &client_request_id);
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = format!(
                "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"{GRAPH_APP_ID}\"",
                st.urls.login
            );
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                h.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if let Some(seconds) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            h.insert("x-ms-throttle-information", HeaderValue::from_static("ResourceUnitLimitExceeded"));
            if let Ok(v) = HeaderValue::from_str(&format!(
                "Tenant_Application/ReadWrite/{GRAPH_APP_ID}/{}",
                st.tenant.read(Tenant::id)
            )) {
                h.insert("x-ms-throttle-scope", v);
            }
        }
        response
    }
}

fn client_request_id(headers: &HeaderMap) -> String {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::new_v4().to_string())
}

fn set_ids(h: &mut HeaderMap, request_id: Uuid, client_request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(&request_id.to_string()) {
        h.insert("request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(client_request_id) {
        h.insert("client-request-id", v);
    }
}

fn ok_json(headers: &HeaderMap, body: Value) -> Response {
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    set_ids(response.headers_mut(), Uuid::new_v4(), &client_request_id(headers));
    response
}

// === authentication ===

/// Verifies the bearer token, then applies the injected throttling.
fn authenticate(st: &SimState, headers: &HeaderMap) -> Result<GraphTokenClaims, GraphError> {
    let unauthorized = |m: &str| GraphError::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", m);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("Access token is empty."))?;
    let (tid, issuer) = st.tenant.read(|t| (t.id(), v1_issuer(t)));
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[GRAPH_APP_ID]);
    validation.set_issuer(&[issuer]);
    // Expiry is checked against the emulator's clock, which tests can advance.
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims: GraphTokenClaims = st
        .keys()
        .verify(token, &validation)
        .ok_or_else(|| unauthorized("Access token validation failure. Invalid audience."))?;
    if claims.tid != tid {
        return Err(unauthorized("Access token validation failure. Invalid tenant."));
    }
    if claims.exp <= st.clock.unix() {
        return Err(unauthorized("Lifetime validation failed, the token is expired."));
    }
    if let Some(seconds) = st.throttle().check() {
        let mut e = GraphError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests have been made; retry after the interval given in the Retry-After header.",
        );
        e.retry_after = Some(seconds);
        return Err(e);
    }
    Ok(claims)
}

/// Whose data a call is about.
enum Target {
    Me,
    User(String),
}

/// Resolves the target user, checking `/me` needs a delegated token.
fn target_user(t: &Tenant, claims: &GraphTokenClaims, target: &Target) -> Result<User, GraphError> {
    match target {
        Target::Me => {
            if !claims.is_delegated() {
                return Err(GraphError::bad_request("/me request is only valid with delegated authentication flow."));
            }
            let oid = claims.oid.ok_or_else(|| {
                GraphError::bad_request("/me request is only valid with delegated authentication flow.")
            })?;
            t.user(oid).cloned().ok_or_else(|| GraphError::not_found(&oid.to_string()))
        }
        Target::User(key) => t.user_by_id_or_upn(key).cloned().ok_or_else(|| GraphError::not_found(key)),
    }
}

// === handlers ===

async fn me(State(st): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    profile(&st, &headers, Target::Me)
}

async fn user(State(st): State<Arc<SimState>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    profile(&st, &headers, Target::User(id))
}

fn profile(st: &SimState, headers: &HeaderMap, target: Target) -> Response {
    let result = authenticate(st, headers).and_then(|claims| {
        st.tenant.read(|t| {
            let user = target_user(t, &claims, &target)?;
            let own = claims.is_delegated() && claims.oid == Some(user.id);
            let allowed = if own { SELF_PERMISSIONS } else { USER_PERMISSIONS };
            if !claims.grants_any(allowed) {
                return Err(GraphError::denied());
            }
            let mut body = user_json(&user);
            body.insert("@odata.context".into(), json!(format!("{}/v1.0/$metadata#users/$entity", st.urls.graph)));
            Ok(Value::Object(body))
        })
    });
    match result {
        Ok(body) => ok_json(headers, body),
        Err(e) => e.into_response(st, headers),
    }
}

async fn me_list(
    State(st): State<Arc<SimState>>,
    Path(relation): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> Response {
    list(&st, &headers, &uri, q.as_deref(), Target::Me, &relation, None)
}

async fn me_list_cast(
    State(st): State<Arc<SimState>>,
    Path((relation, cast)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> Response {
    list(&st, &headers, &uri, q.as_deref(), Target::Me, &relation, Some(&cast))
}

async fn user_list(
    State(st): State<Arc<SimState>>,
    Path((id, relation)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> Response {
    list(&st, &headers, &uri, q.as_deref(), Target::User(id), &relation, None)
}

async fn user_list_cast(
    State(st): State<Arc<SimState>>,
    Path((id, relation, cast)): Path<(String, String, String)>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> Response {
    list(&st, &headers, &uri, q.as_deref(), Target::User(id), &relation, Some(&cast))
}

/// `memberOf` / `transitiveMemberOf` with `$select`, `$top`, `$skiptoken` and `$count`.
fn list(
    st: &SimState,
    headers: &HeaderMap,
    uri: &Uri,
    query: Option<&str>,
    target: Target,
    relation: &str,
    cast: Option<&str>,
) -> Response {
    let result = (|| {
        let transitive = match relation {
            "memberOf" => false,
            "transitiveMemberOf" => true,
            other => {
                return Err(GraphError::bad_request(format!("Resource not found for the segment '{other}'.")));
            }
        };
        if let Some(cast) = cast.filter(|c| *c != "microsoft.graph.group") {
            return Err(GraphError::bad_request(format!("Resource not found for the segment '{cast}'.")));
        }
        let claims = authenticate(st, headers)?;
        let query = ListQuery::parse(query.unwrap_or_default())?;
        st.tenant.read(|t| {
            let user = target_user(t, &claims, &target)?;
            if !claims.grants_any(MEMBERSHIP_PERMISSIONS) {
                return Err(GraphError::denied());
            }
            let groups = if transitive { t.transitive_groups(user.id) } else { t.direct_groups(user.id) };
            Ok(page(st, uri, &query, &groups, cast.is_some()))
        })
    })();
    match result {
        Ok(body) => ok_json(headers, body),
        Err(e) => e.into_response(st, headers),
    }
}

/// Parsed OData query options of a list call.
#[derive(Debug)]
struct ListQuery {
    pairs: Vec<(String, String)>,
    select: Option<Vec<&'static str>>,
    top: usize,
    skip: usize,
    count: bool,
}

/// Group properties the emulator returns, in Graph's order.
const GROUP_PROPERTIES: &[&str] = &[
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "creationOptions",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "theme",
    "visibility",
    "onPremisesProvisioningErrors",
];

impl ListQuery {
    fn parse(raw: &str) -> Result<Self, GraphError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
        let mut q = ListQuery { pairs: pairs.clone(), select: None, top: DEFAULT_PAGE, skip: 0, count: false };
        for (key, value) in &pairs {
            match key.to_ascii_lowercase().as_str() {
                "$select" => {
                    let mut props = Vec::new();
                    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        let prop = GROUP_PROPERTIES.iter().find(|p| p.eq_ignore_ascii_case(name)).ok_or_else(|| {
                            GraphError::new(
                                StatusCode::BAD_REQUEST,
                                "Request_BadRequest",
                                format!("Could not find a property named '{name}' on type 'microsoft.graph.directoryObject'."),
                            )
                        })?;
                        props.push(*prop);
                    }
                    q.select = Some(props);
                }
                "$top" => {
                    q.top = value.parse::<usize>().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| {
                        GraphError::new(
                            StatusCode::BAD_REQUEST,
                            "Request_UnsupportedQuery",
                            format!(
                                "Invalid page size specified: '{value}'. Must be between 1 and {MAX_PAGE} inclusive."
                            ),
                        )
                    })?;
                }
                "$skiptoken" => {
                    q.skip = decode_skiptoken(value).ok_or_else(|| {
                        GraphError::new(StatusCode::BAD_REQUEST, "Request_BadRequest", "Invalid skip token.")
                    })?;
                }
                "$count" => q.count = value.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        Ok(q)
    }
}

fn encode_skiptoken(offset: usize) -> String {
    format!("RFNwdAIAAQAAA{}", URL_SAFE_NO_PAD.encode(format!("entra-sim:{offset}")))
}

fn decode_skiptoken(token: &str) -> Option<usize> {
    let rest = token.strip_prefix("RFNwdAIAAQAAA")?;
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(rest).ok()?).ok()?;
    text.strip_prefix("entra-sim:")?.parse().ok()
}

fn page(st: &SimState, uri: &Uri, q: &ListQuery, groups: &[&Group], cast: bool) -> Value {
    let start = q.skip.min(groups.len());
    let end = start.saturating_add(q.top).min(groups.len());
    let values: Vec<Value> = groups[start..end]
        .iter()
        .map(|g| {
            let full = group_json(g);
            let mut out = Map::new();
            if !cast {
                out.insert("@odata.type".into(), json!("#microsoft.graph.group"));
            }
            match &q.select {
                Some(props) => {
                    for p in props {
                        out.insert((*p).to_owned(), full.get(*p).cloned().unwrap_or(Value::Null));
                    }
                }
                None => out.extend(full),
            }
            Value::Object(out)
        })
        .collect();
    let entity = if cast { "groups" } else { "directoryObjects" };
    let context = match &q.select {
        Some(props) => format!("{}/v1.0/$metadata#{entity}({})", st.urls.graph, props.join(",")),
        None => format!("{}/v1.0/$metadata#{entity}", st.urls.graph),
    };
    let mut body = Map::new();
    body.insert("@odata.context".into(), json!(context));
    if q.count && q.skip == 0 {
        body.insert("@odata.count".into(), json!(groups.len()));
    }
    if end < groups.len() {
        body.insert("@odata.nextLink".into(), json!(next_link(st, uri, q, end)));
    }
    body.insert("value".into(), Value::Array(values));
    Value::Object(body)
}

/// The nextLink: the same path and options, with a new `$skiptoken`.
fn next_link(st: &SimState, uri: &Uri, q: &ListQuery, offset: usize) -> String {
    let mut parts: Vec<String> = q
        .pairs
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
        .map(|(k, v)| {
            format!("{}={}", encode_key(k), url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>())
        })
        .collect();
    if !q.pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case("$top")) {
        parts.insert(0, format!("$top={}", q.top));
    }
    parts.push(format!("$skiptoken={}", encode_skiptoken(offset)));
    format!("{}{}?{}", st.urls.graph, uri.path(), parts.join("&"))
}

/// OData option names keep their `$`, as in Graph's links.
fn encode_key(key: &str) -> String {
    match key.strip_prefix('$') {
        Some(rest) => format!("${}", url::form_urlencoded::byte_serialize(rest.as_bytes()).collect::<String>()),
        None => url::form_urlencoded::byte_serialize(key.as_bytes()).collect(),
    }
}

async fn me_action(
    State(st): State<Arc<SimState>>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    member_objects(&st, &headers, Target::Me, &action, &body)
}

async fn user_action(
    State(st): State<Arc<SimState>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    member_objects(&st, &headers, Target::User(id), &action, &body)
}

/// `getMemberObjects` / `getMemberGroups`: transitive ids, no paging.
fn member_objects(st: &SimState, headers: &HeaderMap, target: Target, action: &str, body: &[u8]) -> Response {
    let result = (|| {
        if action != "getMemberObjects" && action != "getMemberGroups" {
            return Err(GraphError::bad_request(format!("Resource not found for the segment '{action}'.")));
        }
        let claims = authenticate(st, headers)?;
        let request: Value =
            serde_json::from_slice(body).map_err(|_| GraphError::bad_request("Invalid request body."))?;
        let security_only = request.get("securityEnabledOnly").and_then(Value::as_bool).ok_or_else(|| {
            GraphError::bad_request("The parameter 'securityEnabledOnly' is missing or not a boolean.")
        })?;
        st.tenant.read(|t| {
            let user = target_user(t, &claims, &target)?;
            if !claims.grants_any(MEMBERSHIP_PERMISSIONS) {
                return Err(GraphError::denied());
            }
            let ids: Vec<Uuid> = t
                .transitive_groups(user.id)
                .iter()
                .filter(|g| !security_only || g.security_enabled)
                .map(|g| g.id)
                .collect();
            Ok(json!({
                "@odata.context": format!("{}/v1.0/$metadata#Collection(Edm.String)", st.urls.graph),
                "value": ids,
            }))
        })
    })();
    match result {
        Ok(body) => ok_json(headers, body),
        Err(e) => e.into_response(st, headers),
    }
}

async fn userinfo(State(st): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    let result = authenticate(&st, &headers).and_then(|claims| {
        st.tenant.read(|t| {
            let user = target_user(t, &claims, &Target::Me)?;
            let mut body = Map::new();
            body.insert("sub".into(), json!(pairwise_sub(t.id(), claims.appid, user.id)));
            body.insert("name".into(), json!(user.display_name));
            if let Some(v) = user.attr(UserAttr::Surname) {
                body.insert("family_name".into(), json!(v));
            }
            if let Some(v) = user.attr(UserAttr::GivenName) {
                body.insert("given_name".into(), json!(v));
            }
            body.insert("picture".into(), json!(format!("{}/v1.0/me/photo/$value", st.urls.graph)));
            if let Some(mail) = user.mail() {
                body.insert("email".into(), json!(mail));
            }
            Ok(Value::Object(body))
        })
    });
    match result {
        Ok(body) => ok_json(&headers, body),
        Err(e) => e.into_response(&st, &headers),
    }
}

// === representations ===

fn user_json(user: &User) -> Map<String, Value> {
    let attr = |a: UserAttr| user.attr(a).map_or(Value::Null, |v| json!(v));
    let phones: Vec<&str> = user.attr(UserAttr::BusinessPhone).into_iter().collect();
    let mut m = Map::new();
    m.insert("businessPhones".into(), json!(phones));
    m.insert("displayName".into(), json!(user.display_name));
    m.insert("givenName".into(), attr(UserAttr::GivenName));
    m.insert("jobTitle".into(), attr(UserAttr::JobTitle));
    m.insert("mail".into(), attr(UserAttr::Mail));
    m.insert("mobilePhone".into(), attr(UserAttr::MobilePhone));
    m.insert("officeLocation".into(), attr(UserAttr::OfficeLocation));
    m.insert("preferredLanguage".into(), attr(UserAttr::PreferredLanguage));
    m.insert("surname".into(), attr(UserAttr::Surname));
    m.insert("userPrincipalName".into(), json!(user.upn));
    m.insert("id".into(), json!(user.id));
    m
}

fn group_json(g: &Group) -> Map<String, Value> {
    let created = g
        .created
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    let mut m = Map::new();
    let null = Value::Null;
    for prop in GROUP_PROPERTIES {
        let v = match *prop {
            "id" => json!(g.id),
            "createdDateTime" => json!(created),
            "creationOptions"
            | "groupTypes"
            | "proxyAddresses"
            | "resourceBehaviorOptions"
            | "resourceProvisioningOptions"
            | "onPremisesProvisioningErrors" => json!([]),
            "description" => json!(g.description),
            "displayName" => json!(g.display_name),
            "mailEnabled" => json!(g.mail_enabled),
            "mailNickname" => json!(g.mail_nickname),
            "securityEnabled" => json!(g.security_enabled),
            "securityIdentifier" => json!(security_identifier(g.id)),
            _ => null.clone(),
        };
        m.insert((*prop).to_owned(), v);
    }
    m
}

/// Entra's `securityIdentifier` for cloud groups: `S-1-12-1-` and the object id read as
/// four little-endian 32-bit numbers.
fn security_identifier(id: Uuid) -> String {
    let b = id.as_bytes();
    let part = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    format!("S-1-12-1-{}-{}-{}-{}", part(0), part(4), part(8), part(12))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn skiptokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_skiptoken(&encode_skiptoken(250)), Some(250));
        assert_eq!(decode_skiptoken("nope"), None);
    }

    #[test]
    fn throttle_next_then_every_nth() {
        let mut t = Throttle::new(ThrottleConfig { every_nth: 3, next: 1, retry_after_seconds: 7 });
        let seen: Vec<Option<u64>> = (0..6).map(|_| t.check()).collect();
        assert_eq!(seen, vec![Some(7), None, Some(7), None, None, Some(7)]);
    }

    #[test]
    fn security_identifier_has_four_parts() {
        let sid = security_identifier(Uuid::nil());
        assert_eq!(sid, "S-1-12-1-0-0-0-0");
    }

    proptest::proptest! {
        #[test]
        fn list_query_parsing_never_panics(raw in ".*") {
            let _ = ListQuery::parse(&raw);
        }
    }
}
