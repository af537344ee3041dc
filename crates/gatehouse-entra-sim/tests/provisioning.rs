//! The provisioning driver against a capturing SCIM endpoint: the request sequences of
//! Entra's provisioning service in default and `aadOptscim062020` modes, incremental cycles,
//! failures, and the CLI entry point's state file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use gatehouse_entra_sim::tenant::{GroupUpdate, UserSpec};
use gatehouse_entra_sim::{
    EntraSim, ProvisioningMode, ProvisioningOperation, ProvisioningOutcome, ProvisioningReport, RunningSim, Tenant,
};
use serde::Serialize;
use serde_json::{Value, json};

const TENANT: &str = r#"
[tenant]
id = "c0ffee00-0000-4000-8000-000000000002"

[[groups]]
id = "e0000000-0000-4000-8000-000000000001"
display_name = "Engineering"
member_groups = ["Platform"]

[[groups]]
id = "e0000000-0000-4000-8000-000000000002"
display_name = "Platform"

[[groups]]
id = "e0000000-0000-4000-8000-000000000003"
display_name = "Sales"

[[users]]
upn = "alice@contoso.onmicrosoft.com"
display_name = "Alice Kim"
mail = "alice@contoso.com"
given_name = "Alice"
surname = "Kim"
job_title = "Engineer"
department = "R&D"
employee_id = "1001"
business_phone = "+1 555 0100"
mobile_phone = "+1 555 0101"
city = "Seattle"
country = "US"
groups = ["Engineering", "Platform"]

[[users]]
upn = "bob@contoso.onmicrosoft.com"
display_name = "Bob Jones"
groups = ["Engineering", "Sales"]

[[users]]
upn = "carol@contoso.onmicrosoft.com"
display_name = "Carol Disabled"
enabled = false
groups = ["Engineering"]

[[users]]
upn = "dave@contoso.onmicrosoft.com"
display_name = "Dave Direct"
mail = "dave@contoso.com"
manager = "alice@contoso.onmicrosoft.com"

[[users]]
upn = "erin@contoso.onmicrosoft.com"
display_name = "Erin Nested"
groups = ["Platform"]

[scim]
users = ["dave@contoso.onmicrosoft.com"]
groups = ["Engineering", "Sales"]
"#;

// === a capturing SCIM endpoint ===

#[derive(Clone, Debug, Serialize)]
struct Recorded {
    method: String,
    path: String,
    query: Option<String>,
    body: Option<Value>,
}

#[derive(Debug, Default)]
struct Scim {
    requests: Vec<Recorded>,
    raw_queries: Vec<String>,
    authorization: Vec<Option<String>>,
    users: Vec<Value>,
    groups: Vec<Value>,
    created_users: u32,
    created_groups: u32,
    reject_user: Option<String>,
    groups_probe_404: bool,
}

type Shared = Arc<Mutex<Scim>>;

/// Decodes the query and hides the random value of test-connection probes.
fn readable_query(raw: &str) -> String {
    url::form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| {
            let v = match v.split_once('"') {
                Some((head, rest)) if uuid::Uuid::parse_str(rest.trim_end_matches('"')).is_ok() => {
                    format!("{head}\"<random-guid>\"")
                }
                _ => v.into_owned(),
            };
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn filter_value(raw: &str) -> Option<String> {
    let (_, filter) = url::form_urlencoded::parse(raw.as_bytes()).find(|(k, _)| k == "filter")?;
    let (_, value) = filter.split_once(" eq ")?;
    Some(value.trim_matches('"').to_owned())
}

fn list(resources: Vec<Value>) -> Response {
    let n = resources.len();
    axum::Json(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": n, "startIndex": 1, "itemsPerPage": n, "Resources": resources,
    }))
    .into_response()
}

async fn scim(State(shared): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = shared.lock().unwrap();
    let path = uri.path().trim_start_matches("/scim/v2").to_owned();
    let raw = uri.query().unwrap_or_default().to_owned();
    let body: Option<Value> = (!body.is_empty()).then(|| serde_json::from_slice(&body).unwrap());
    s.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().map(readable_query),
        body: body.clone(),
    });
    s.raw_queries.push(raw.clone());
    s.authorization.push(headers.get("authorization").map(|v| v.to_str().unwrap().to_owned()));
    match (method.as_str(), path.as_str()) {
        ("GET", "/Users") => {
            let wanted = filter_value(&raw).unwrap_or_default().to_lowercase();
            let found =
                s.users.iter().filter(|u| u["userName"].as_str().unwrap().to_lowercase() == wanted).cloned().collect();
            list(found)
        }
        ("GET", "/Groups") => {
            if s.groups_probe_404 {
                return StatusCode::NOT_FOUND.into_response();
            }
            let wanted = filter_value(&raw).unwrap_or_default().to_lowercase();
            let found = s
                .groups
                .iter()
                .filter(|g| g["displayName"].as_str().unwrap().to_lowercase() == wanted)
                .cloned()
                .collect();
            list(found)
        }
        ("POST", "/Users") => {
            let mut user = body.unwrap();
            if s.reject_user.as_deref() == user["userName"].as_str() {
                let error = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409", "scimType": "uniqueness", "detail": "userName already exists"});
                return (StatusCode::CONFLICT, axum::Json(error)).into_response();
            }
            s.created_users += 1;
            user["id"] = json!(format!("u{}", s.created_users));
            s.users.push(user.clone());
            (StatusCode::CREATED, axum::Json(user)).into_response()
        }
        ("POST", "/Groups") => {
            let mut group = body.unwrap();
            s.created_groups += 1;
            group["id"] = json!(format!("g{}", s.created_groups));
            s.groups.push(group.clone());
            (StatusCode::CREATED, axum::Json(group)).into_response()
        }
        ("PATCH", _) => StatusCode::NO_CONTENT.into_response(),
        ("DELETE", p) => {
            let id = p.rsplit('/').next().unwrap().to_owned();
            s.users.retain(|u| u["id"] != id.as_str());
            s.groups.retain(|g| g["id"] != id.as_str());
            StatusCode::NO_CONTENT.into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn capture_server() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = Router::new().fallback(scim).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/scim/v2"), shared)
}

fn take_requests(shared: &Shared) -> Vec<Recorded> {
    std::mem::take(&mut shared.lock().unwrap().requests)
}

async fn start_sim() -> RunningSim {
    EntraSim::start(Tenant::from_toml_str(TENANT).unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn id(sim: &RunningSim, upn: &str) -> uuid::Uuid {
    sim.tenant().read(|t| t.resolve_user(upn).unwrap())
}

/// The tenant edits of the incremental test: a rename, a disable, a membership removal
/// (which also takes Alice out of scope), a hard delete, and a new member.
fn edit_tenant(sim: &RunningSim) {
    let alice = id(sim, "alice@contoso.onmicrosoft.com");
    let bob = id(sim, "bob@contoso.onmicrosoft.com");
    let dave = id(sim, "dave@contoso.onmicrosoft.com");
    let erin = id(sim, "erin@contoso.onmicrosoft.com");
    sim.tenant()
        .edit(|t| {
            let sales = t.resolve_group("Sales")?;
            let engineering = t.resolve_group("Engineering")?;
            t.update_group(sales, GroupUpdate { display_name: Some("Sales EMEA".into()), ..Default::default() })?;
            t.set_user_enabled(bob, false)?;
            t.remove_member(engineering, alice)?;
            t.delete_user(dave)?;
            t.add_member(sales, erin)
        })
        .unwrap();
}

fn assert_clean(report: &ProvisioningReport) {
    assert!(report.is_success(), "{:#?}", report.failed().collect::<Vec<_>>());
}

// === tests ===

#[tokio::test]
async fn initial_cycle_default_mode_matches_entras_sequence() {
    let (url, shared) = capture_server().await;
    let sim = start_sim().await;
    let report = sim.provision(&url, "s3cr3t-token", ProvisioningMode::Default).await.unwrap();
    assert_clean(&report);
    assert!(report.initial);
    assert_eq!(report.test_connection, Some(ProvisioningOutcome::Success));
    assert_eq!(report.counts.users_created, 3, "alice, bob, dave; carol is disabled, erin only nested");
    assert_eq!(report.counts.groups_created, 2);
    assert_eq!(report.counts.members_added, 3);
    let s = shared.lock().unwrap();
    assert!(s.authorization.iter().all(|a| a.as_deref() == Some("Bearer s3cr3t-token")));
    assert_eq!(
        s.raw_queries[2], "filter=userName+eq+%22alice%40contoso.onmicrosoft.com%22",
        "URL-encoded as Entra sends it"
    );
    drop(s);
    insta::assert_json_snapshot!("initial_default", take_requests(&shared));
}

#[tokio::test]
async fn initial_cycle_flag_mode_matches_entras_sequence() {
    let (url, shared) = capture_server().await;
    let sim = start_sim().await;
    let report = sim.provision(&url, "t", ProvisioningMode::AadOptscim062020).await.unwrap();
    assert_clean(&report);
    assert_eq!(report.mode, ProvisioningMode::AadOptscim062020);
    insta::assert_json_snapshot!("initial_aadoptscim062020", take_requests(&shared));
}

#[tokio::test]
async fn incremental_cycle_default_mode_sends_only_changes() {
    let (url, shared) = capture_server().await;
    let sim = start_sim().await;
    assert_clean(&sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap());
    take_requests(&shared);

    edit_tenant(&sim);
    let report = sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap();
    assert_clean(&report);
    assert!(!report.initial && report.test_connection.is_none());
    assert_eq!(report.counts.users_disabled, 2, "bob disabled, alice out of scope");
    assert_eq!(report.counts.users_deleted, 1);
    assert_eq!(report.counts.users_created, 1, "erin, now a direct member of Sales");
    assert_eq!(report.counts.groups_updated, 1);
    insta::assert_json_snapshot!("incremental_default", take_requests(&shared));

    let report = sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap();
    assert_eq!(report.requests, 0, "nothing changed, nothing sent");
    assert_eq!(report.cycle, 3);
}

#[tokio::test]
async fn incremental_cycle_flag_mode_sends_only_changes() {
    let (url, shared) = capture_server().await;
    let sim = start_sim().await;
    assert_clean(&sim.provision(&url, "t", ProvisioningMode::AadOptscim062020).await.unwrap());
    take_requests(&shared);
    edit_tenant(&sim);
    let report = sim.provision(&url, "t", ProvisioningMode::AadOptscim062020).await.unwrap();
    assert_clean(&report);
    insta::assert_json_snapshot!("incremental_aadoptscim062020", take_requests(&shared));
}

#[tokio::test]
async fn attribute_changes_and_re_enable_are_patched() {
    let (url, shared) = capture_server().await;
    let sim = start_sim().await;
    assert_clean(&sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap());
    take_requests(&shared);
    let alice = id(&sim, "alice@contoso.onmicrosoft.com");
    let update: gatehouse_entra_sim::tenant::UserUpdate = serde_json::from_value(json!({
        "display_name": "Alice Kim-Lee", "surname": "Kim-Lee", "job_title": null, "preferred_language": "en-US"
    }))
    .unwrap();
    sim.tenant().edit(|t| t.update_user(alice, update)).unwrap();
    let report = sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap();
    assert_clean(&report);
    let requests = take_requests(&shared);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "PATCH");
    assert_eq!(requests[0].path, "/Users/u1");
    assert_eq!(
        requests[0].body.as_ref().unwrap()["Operations"],
        json!([
            {"op": "Replace", "path": "displayName", "value": "Alice Kim-Lee"},
            {"op": "Remove", "path": "title"},
            {"op": "Add", "path": "preferredLanguage", "value": "en-US"},
            {"op": "Replace", "path": "name.familyName", "value": "Kim-Lee"},
            {"op": "Replace", "path": "name.formatted", "value": "Alice Kim-Lee"},
        ])
    );

    // Disable, then re-enable: "False" then "True".
    sim.tenant().edit(|t| t.set_user_enabled(alice, false)).unwrap();
    sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap();
    sim.tenant().edit(|t| t.set_user_enabled(alice, true)).unwrap();
    let report = sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap();
    assert_eq!(report.counts.users_enabled, 1);
    let ops: Vec<Value> =
        take_requests(&shared).iter().map(|r| r.body.as_ref().unwrap()["Operations"].clone()).collect();
    assert_eq!(
        ops,
        vec![
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
            json!([{"op": "Replace", "path": "active", "value": "True"}])
        ]
    );
}

#[tokio::test]
async fn soft_delete_disables_and_unassigning_a_group_deletes_it() {
    let (url, shared) = capture_server().await;
    let sim = start_sim().await;
    assert_clean(&sim.provision(&url, "t", ProvisioningMode::AadOptscim062020).await.unwrap());
    take_requests(&shared);
    let bob = id(&sim, "bob@contoso.onmicrosoft.com");
    sim.tenant()
        .edit(|t| {
            t.soft_delete_user(bob)?;
            let sales = t.resolve_group("Sales")?;
            t.unassign_scim(sales)
        })
        .unwrap();
    let report = sim.provision(&url, "t", ProvisioningMode::AadOptscim062020).await.unwrap();
    assert_clean(&report);
    let requests = take_requests(&shared);
    let summary: Vec<(String, String)> = requests.iter().map(|r| (r.method.clone(), r.path.clone())).collect();
    assert_eq!(summary, vec![("PATCH".into(), "/Users/u2".into()), ("DELETE".into(), "/Groups/g2".into())]);
    assert_eq!(
        requests[0].body.as_ref().unwrap()["Operations"],
        json!([{"op": "replace", "path": "active", "value": false}])
    );
}

#[tokio::test]
async fn an_existing_user_is_matched_and_patched_not_created() {
    let (url, shared) = capture_server().await;
    shared.lock().unwrap().users.push(json!({
        "id": "pre-1", "userName": "Bob@contoso.onmicrosoft.com", "displayName": "Robert", "active": false,
        "externalId": "bob"
    }));
    let sim = start_sim().await;
    let report = sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap();
    assert_clean(&report);
    let requests = take_requests(&shared);
    let bob: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.path == "/Users/pre-1" || r.query.as_deref().is_some_and(|q| q.contains("bob@")))
        .collect();
    assert_eq!(bob.len(), 2, "a lookup, then a PATCH of the differences");
    assert_eq!(
        bob[1].body.as_ref().unwrap()["Operations"],
        json!([
            {"op": "Replace", "path": "userName", "value": "bob@contoso.onmicrosoft.com"},
            {"op": "Replace", "path": "active", "value": "True"},
            {"op": "Replace", "path": "displayName", "value": "Bob Jones"},
        ])
    );
    assert!(
        requests
            .iter()
            .all(|r| !(r.method == "POST" && r.body.as_ref().unwrap()["userName"] == "bob@contoso.onmicrosoft.com"))
    );
    let groups: Vec<&Recorded> = requests.iter().filter(|r| r.path.starts_with("/Groups/")).collect();
    assert!(
        groups.iter().any(|r| r.body.as_ref().unwrap().to_string().contains("pre-1")),
        "the matched id is used in memberships"
    );
}

#[tokio::test]
async fn failures_are_reported_and_retried_next_cycle() {
    let (url, shared) = capture_server().await;
    shared.lock().unwrap().reject_user = Some("bob@contoso.onmicrosoft.com".into());
    let sim = start_sim().await;
    let report = sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap();
    assert!(!report.is_success());
    assert_eq!(report.failures, 1);
    let failed: Vec<_> = report.failed().collect();
    assert_eq!(failed[0].operation, ProvisioningOperation::Create);
    assert_eq!(failed[0].status, Some(409));
    assert_eq!(failed[0].error_code.as_deref(), Some("SystemForCrossDomainIdentityManagementServiceIncompatible"));
    assert!(failed[0].reason.as_deref().unwrap().contains("409 Conflict"), "{:?}", failed[0].reason);
    assert_eq!(failed[0].source_name.as_deref(), Some("bob@contoso.onmicrosoft.com"));
    assert_eq!(report.counts.users_created, 2);
    assert_eq!(report.counts.members_added, 1, "only alice joins Engineering; bob is left out");
    let first = report.requests;

    shared.lock().unwrap().reject_user = None;
    take_requests(&shared);
    let report = sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap();
    assert_clean(&report);
    assert_eq!(report.counts.users_created, 1);
    assert_eq!(report.counts.members_added, 2, "bob joins Engineering and Sales");
    assert_eq!(sim.provisioning_log().await.len(), first + report.requests);
}

#[tokio::test]
async fn failed_test_connection_stops_the_cycle_and_is_repeated() {
    let (url, shared) = capture_server().await;
    shared.lock().unwrap().groups_probe_404 = true;
    let sim = start_sim().await;
    let report = sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap();
    assert_eq!(report.test_connection, Some(ProvisioningOutcome::Failure));
    assert_eq!(report.requests, 2, "the /Users and /Groups probes only");
    assert!(report.log[1].reason.as_deref().unwrap().contains("404"));

    shared.lock().unwrap().groups_probe_404 = false;
    let report = sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap();
    assert!(report.initial && report.test_connection == Some(ProvisioningOutcome::Success));
    assert_clean(&report);
}

#[tokio::test]
async fn unreachable_endpoint_is_a_reported_failure() {
    let sim = start_sim().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/scim", listener.local_addr().unwrap());
    drop(listener);
    let report = sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap();
    assert_eq!(report.test_connection, Some(ProvisioningOutcome::Failure));
    assert_eq!(report.log[0].status, None);
    assert!(matches!(
        sim.provision("ftp://nope", "t", ProvisioningMode::Default).await,
        Err(gatehouse_entra_sim::SimError::InvalidScimUrl { .. })
    ));
}

#[tokio::test]
async fn the_url_flag_selects_the_compliant_mode_and_is_not_sent() {
    let (url, shared) = capture_server().await;
    let sim = start_sim().await;
    let report = sim.provision(&format!("{url}?aadOptscim062020"), "t", ProvisioningMode::Default).await.unwrap();
    assert_eq!(report.mode, ProvisioningMode::AadOptscim062020);
    assert_eq!(report.target, url);
    let requests = take_requests(&shared);
    assert!(requests.iter().all(|r| !r.query.as_deref().unwrap_or_default().contains("aadOptscim")));
    let patch = requests.iter().find(|r| r.method == "PATCH").unwrap();
    assert_eq!(patch.body.as_ref().unwrap()["Operations"][0]["op"], "add");
}

#[test]
fn modes_parse_from_their_names() {
    assert_eq!("default".parse::<ProvisioningMode>().unwrap(), ProvisioningMode::Default);
    assert_eq!("aadOptscim062020".parse::<ProvisioningMode>().unwrap(), ProvisioningMode::AadOptscim062020);
    assert_eq!("AADOPTSCIM062020".parse::<ProvisioningMode>().unwrap(), ProvisioningMode::AadOptscim062020);
    assert!("strict".parse::<ProvisioningMode>().is_err());
}

#[tokio::test]
async fn provision_once_keeps_state_next_to_the_tenant_file() {
    let (url, shared) = capture_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenant.toml");
    std::fs::write(&path, TENANT).unwrap();

    let report = gatehouse_entra_sim::provision_once(&path, &url, "t", ProvisioningMode::Default).await.unwrap();
    assert_clean(&report);
    assert!(report.initial);
    let state = dir.path().join("tenant.provisioning.json");
    assert!(state.exists());
    assert!(!std::fs::read_to_string(&state).unwrap().contains("\"t\""), "the token is not stored");
    take_requests(&shared);

    // Renaming keeps the object id here because the file gives groups explicit ids.
    std::fs::write(&path, TENANT.replace("\"Sales\"", "\"Sales EMEA\"")).unwrap();
    let report = gatehouse_entra_sim::provision_once(&path, &url, "t", ProvisioningMode::Default).await.unwrap();
    assert_clean(&report);
    assert_eq!(report.cycle, 2);
    let requests = take_requests(&shared);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/Groups/g2");
    assert_eq!(
        requests[0].body.as_ref().unwrap()["Operations"],
        json!([{"op": "Replace", "path": "displayName", "value": "Sales EMEA"}])
    );
}

#[tokio::test]
async fn admin_endpoints_drive_cycles_after_reloads_and_edits() {
    let (url, shared) = capture_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenant.toml");
    std::fs::write(&path, TENANT).unwrap();
    let sim = EntraSim::start_from_file(&path, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let http = reqwest::Client::new();
    let provision = || {
        let http = http.clone();
        let admin = sim.admin_url();
        let url = url.clone();
        async move {
            let response = http
                .post(format!("{admin}/provision"))
                .json(&json!({"scim_url": url, "token": "t", "mode": "aadOptscim062020"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let report = provision().await;
    assert_eq!(report["failures"], 0);
    assert_eq!(report["mode"], "aadOptscim062020");
    let first = report["requests"].as_u64().unwrap() as usize;
    take_requests(&shared);

    // Edit the file and reload it; then edit through the admin API.
    std::fs::write(
        &path,
        TENANT.replace(
            "groups = [\"Engineering\", \"Sales\"]\n\n[[users]]\nupn = \"carol",
            "groups = [\"Engineering\"]\n\n[[users]]\nupn = \"carol",
        ),
    )
    .unwrap();
    assert_eq!(http.post(format!("{}/reload", sim.admin_url())).send().await.unwrap().status(), 204);
    let response = http
        .post(format!("{}/users", sim.admin_url()))
        .json(&json!({"upn": "frank@contoso.onmicrosoft.com", "display_name": "Frank New", "groups": ["Sales"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let report = provision().await;
    assert_eq!(report["failures"], 0);
    assert_eq!(report["counts"]["users_created"], 1);
    let requests = take_requests(&shared);
    let sales_patch = requests.iter().rfind(|r| r.path == "/Groups/g2").unwrap();
    assert_eq!(
        sales_patch.body.as_ref().unwrap()["Operations"],
        json!([
            {"op": "add", "path": "members", "value": [{"$ref": null, "value": "u4"}]},
            {"op": "remove", "path": "members[value eq \"u2\"]"},
        ])
    );

    let log: Value = http.get(format!("{}/provision/log", sim.admin_url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(log.as_array().unwrap().len(), first + requests.len());
    let state: Value =
        http.get(format!("{}/provision/state", sim.admin_url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["cycles"], 2);
    let frank = sim.tenant().read(|t| t.resolve_user("frank@contoso.onmicrosoft.com").unwrap());
    assert_eq!(state["ids"][frank.to_string()], "u4");
}

#[tokio::test]
async fn user_spec_from_rust_can_be_provisioned() {
    let (url, shared) = capture_server().await;
    let sim = start_sim().await;
    let spec: UserSpec =
        serde_json::from_value(json!({"upn": "gina@contoso.onmicrosoft.com", "display_name": "Gina"})).unwrap();
    sim.tenant()
        .edit(|t| {
            let gina = t.add_user(spec)?;
            t.assign_scim(gina)
        })
        .unwrap();
    let report = sim.provision(&url, "t", ProvisioningMode::Default).await.unwrap();
    assert_clean(&report);
    let posted: Vec<Value> = take_requests(&shared)
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/Users")
        .map(|r| r.body.unwrap())
        .collect();
    let gina = posted.iter().find(|b| b["userName"] == "gina@contoso.onmicrosoft.com").unwrap();
    assert!(gina.get("emails").is_none(), "no mail, no emails");
    assert_eq!(gina["active"], true, "a boolean on create");
    assert_eq!(gina["externalId"], "gina");
}
