//! The SCIM endpoint over real sockets: the Entra emulator's provisioning driver runs
//! initial and incremental cycles against an in-process gateway in both of Entra's modes;
//! deprovisioning through SCIM stops a signed-in user's next proxied request on the same
//! instance and on a second instance sharing PostgreSQL; malformed and hostile requests get
//! SCIM 4xx errors, never a 5xx.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::any;
use gatehouse::config::{Config, IngressRule, Overrides};
use gatehouse::gateway::Gateway;
use gatehouse_core::TokenId;
use gatehouse_core::secret::{SecretKey, hash_bearer_secret};
use gatehouse_entra_sim::tenant::{GroupUpdate, UserUpdate};
use gatehouse_entra_sim::{ProvisioningMode, ProvisioningState, Tenant};
use gatehouse_proxy::keys::KeyRing;
use gatehouse_proxy::token::{self, AccessClaims};
use gatehouse_store::{
    ApiToken, KeyStore as _, ScimStore as _, SessionKind, SessionRecord, SessionStore as _, TokenStore as _,
    UserStore as _,
};
use gatehouse_testkit::TestDb;
use serde_json::{Value, json};

const TOKEN: &str = "gth_scim-test-token";
/// The team domain: the SCIM endpoint is reached at the listener's address, whose host name
/// this is (the port is not compared).
const TEAM: &str = "http://127.0.0.1";
const TENANT_ID: &str = "c0ffee00-0000-4000-8000-000000000006";
const ENGINEERING: &str = "e0000000-0000-4000-8000-000000000001";
const PLATFORM: &str = "e0000000-0000-4000-8000-000000000002";

const TENANT: &str = r#"
[tenant]
id = "c0ffee00-0000-4000-8000-000000000006"

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
id = "a0000000-0000-4000-8000-000000000001"
upn = "alice@contoso.onmicrosoft.com"
display_name = "Alice Kim"
mail = "alice@contoso.com"
given_name = "Alice"
surname = "Kim"
job_title = "Engineer"
department = "R&D"
employee_id = "1001"
business_phone = "+1 555 0100"
city = "Seattle"
groups = ["Engineering", "Platform"]

[[users]]
id = "a0000000-0000-4000-8000-000000000002"
upn = "bob@contoso.onmicrosoft.com"
display_name = "Bob Jones"
groups = ["Engineering", "Sales"]

[[users]]
id = "a0000000-0000-4000-8000-000000000003"
upn = "carol@contoso.onmicrosoft.com"
display_name = "Carol Disabled"
enabled = false
groups = ["Engineering"]

[[users]]
id = "a0000000-0000-4000-8000-000000000004"
upn = "dave@contoso.onmicrosoft.com"
display_name = "Dave Direct"
mail = "dave@contoso.com"
manager = "alice@contoso.onmicrosoft.com"

[[users]]
id = "a0000000-0000-4000-8000-000000000005"
upn = "erin@contoso.onmicrosoft.com"
display_name = "Erin Nested"
groups = ["Platform"]

[scim]
users = ["dave@contoso.onmicrosoft.com"]
groups = ["Engineering", "Sales"]
"#;

fn uuid(s: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(s).unwrap()
}

// === the environment ===

struct Env {
    gw: Gateway,
    http: reqwest::Client,
    account: String,
    key: SecretKey,
    idp: String,
    secret: String,
    db: TestDb,
    _dir: tempfile::TempDir,
}

async fn start_origin() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, Router::new().fallback(any(|| async { "origin" }))).await });
    addr
}

async fn gateway(db_url: &str, key: SecretKey) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("GATEHOUSE_DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("GATEHOUSE_PUBLIC_URL".to_owned(), TEAM.to_owned()),
        ("GATEHOUSE_PUBLIC_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_ADMIN_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_STORE_URL".to_owned(), db_url.to_owned()),
    ];
    let mut config = Config::load_with_env(None, &Overrides::default(), vars).unwrap();
    let origin = start_origin().await;
    let rule = |host: Option<&str>, service: String| -> IngressRule {
        serde_json::from_value(json!({"hostname": host, "service": service})).unwrap()
    };
    config.ingress = vec![rule(Some("*.test"), format!("http://{origin}")), rule(None, "http_status:404".into())];
    (Gateway::start(&config, key, None).await.unwrap(), dir)
}

async fn env_with(db: TestDb, scim_config: Value) -> Env {
    let key = SecretKey::generate().unwrap();
    let (gw, dir) = gateway(db.url(), key.clone()).await;
    gw.store
        .insert_token(&ApiToken {
            id: TokenId::generate(),
            name: "test".into(),
            secret_hash: hash_bearer_secret(TOKEN),
            read_only: false,
            created_at: 0,
            last_used_at: None,
        })
        .await
        .unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let account = gatehouse_store::OrgStore::account_id(&gw.store).await.unwrap().to_string();
    let mut env = Env { gw, http, account, key, idp: String::new(), secret: String::new(), db, _dir: dir };
    let (s, b) = env
        .api(
            reqwest::Method::POST,
            "/access/identity_providers",
            Some(json!({
                "name": "Entra ID", "type": "azureAD",
                "config": {"client_id": "c37d0163-d4a4-43a8-8b1e-1a2b3c4d5e6f", "client_secret": "s3cret",
                           "directory_id": TENANT_ID, "support_groups": true},
                "scim_config": scim_config,
            })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    env.idp = b["result"]["id"].as_str().unwrap().to_owned();
    env.secret = b["result"]["scim_config"]["secret"].as_str().unwrap().to_owned();
    env
}

fn deprovisioning() -> Value {
    json!({"enabled": true, "user_deprovision": true, "seat_deprovision": true, "identity_update_behavior": "automatic"})
}

async fn env() -> Env {
    env_with(TestDb::sqlite(), deprovisioning()).await
}

impl Env {
    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("http://{}/client/v4/accounts/{}{path}", self.gw.admin_addr, self.account);
        let mut req = self.http.request(method, url).bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn scim_url(&self) -> String {
        format!("http://{}/populations/{}/scim/v2", self.gw.public_addr, self.idp)
    }

    /// A SCIM request with the IdP's secret; returns status, content type and JSON body.
    async fn scim(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> (u16, String, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.scim_url())).bearer_auth(&self.secret);
        if let Some(b) = body {
            req = req.header("content-type", "application/scim+json").body(b.to_owned());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let text = resp.text().await.unwrap();
        (status, ct, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn scim_get(&self, path: &str) -> Value {
        let (s, _, b) = self.scim(reqwest::Method::GET, path, None).await;
        assert_eq!(s, 200, "GET {path}: {b}");
        b
    }

    async fn cycle(&self, tenant: &Tenant, state: &mut ProvisioningState, mode: ProvisioningMode) {
        let report =
            gatehouse_entra_sim::provision::run(tenant, state, &self.scim_url(), &self.secret, mode).await.unwrap();
        let failed: Vec<_> = report.failed().collect();
        assert!(failed.is_empty(), "{}: {failed:#?}", report.summary());
        assert!(report.is_success());
    }

    /// A user signed in through the SCIM IdP: registry entry, live session, application token.
    async fn session(&self, oid: &str, email: &str, groups: &[&str], aud: &str) -> (String, uuid::Uuid) {
        let identity = json!({
            "email": email,
            "groups": groups.iter().map(|g| json!({"id": g})).collect::<Vec<_>>(),
        });
        let now = gatehouse_core::now_millis();
        let idp = self.idp.parse().unwrap();
        let subject = format!("entra:{TENANT_ID}:{oid}");
        let user = self.gw.store.record_sign_in(idp, &subject, email, email, &identity, now).await.unwrap();
        let nonce = format!("nonce-{}", uuid::Uuid::new_v4());
        self.gw
            .store
            .insert_session(&SessionRecord {
                nonce: nonce.clone(),
                user_id: user.id,
                kind: SessionKind::Org,
                app_id: None,
                created_at: now,
                expires_at: now + 3_600_000,
                revoked_at: None,
            })
            .await
            .unwrap();
        let stored = self.gw.store.signing_keys().await.unwrap();
        let ring = KeyRing::from_stored(&stored, now).unwrap();
        let claims = AccessClaims {
            aud: vec![aud.to_owned()],
            email: email.to_owned(),
            exp: now / 1000 + 3600,
            iat: now / 1000,
            nbf: now / 1000,
            iss: TEAM.to_owned(),
            kind: "app".into(),
            identity_nonce: nonce,
            sub: user.id.to_string(),
            custom: serde_json::Map::new(),
            country: None,
        };
        (token::sign(&ring, &claims).unwrap(), user.id)
    }

    /// Creates an application open to a group and waits until the data plane serves it.
    async fn app(&self, host: &str, group: &str) -> String {
        let body = json!({
            "type": "self_hosted", "name": host, "domain": host,
            "policies": [{"name": "members", "decision": "allow", "include": [{"azureAD": {"id": group}}]}]
        });
        let (s, b) = self.api(reqwest::Method::POST, "/access/apps", Some(body)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        until(|| async { ![404, 403].contains(&self.proxied(self.gw.public_addr, host, "none").await) }).await;
        b["result"]["aud"].as_str().unwrap().to_owned()
    }

    async fn proxied(&self, at: SocketAddr, host: &str, token: &str) -> u16 {
        self.http
            .get(format!("http://{at}/"))
            .header("host", host)
            .header("cookie", format!("CF_Authorization={token}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// Polls `check` until it holds, at most 5 s.
async fn until<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "condition not reached within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn names(list: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> =
        list["Resources"].as_array().unwrap().iter().map(|r| r[key].as_str().unwrap().to_owned()).collect();
    v.sort();
    v
}

async fn user_by_name(env: &Env, upn: &str) -> Value {
    let q = format!("/Users?filter={}", urlencode(&format!("userName eq \"{upn}\"")));
    let list = env.scim_get(&q).await;
    assert_eq!(list["totalResults"], 1, "{upn}: {list}");
    list["Resources"][0].clone()
}

async fn group_by_name(env: &Env, name: &str) -> Option<Value> {
    let q = format!("/Groups?filter={}", urlencode(&format!("displayName eq \"{name}\"")));
    let list = env.scim_get(&q).await;
    let id = list["Resources"].get(0).map(|g| g["id"].as_str().unwrap().to_owned())?;
    Some(env.scim_get(&format!("/Groups/{id}")).await)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn member_names(group: &Value) -> Vec<String> {
    let mut v: Vec<String> = group["members"]
        .as_array()
        .map(|m| m.iter().map(|m| m["display"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

// === the provisioning driver against the real endpoint ===

async fn driver_cycles_land(mode: ProvisioningMode) {
    let env = env().await;
    let mut tenant = Tenant::from_toml_str(TENANT).unwrap();
    let mut state = ProvisioningState::default();
    env.cycle(&tenant, &mut state, mode).await;

    // Assigned users and direct members of assigned groups; not the disabled one, not the
    // member only through nesting.
    let users = env.scim_get("/Users").await;
    assert_eq!(
        names(&users, "userName"),
        ["alice@contoso.onmicrosoft.com", "bob@contoso.onmicrosoft.com", "dave@contoso.onmicrosoft.com"]
    );
    let alice = user_by_name(&env, "ALICE@contoso.onmicrosoft.com").await;
    assert_eq!(alice["active"], true);
    assert_eq!(alice["emails"][0]["value"], "alice@contoso.com");
    assert_eq!(alice["name"]["givenName"], "Alice");
    let dave = user_by_name(&env, "dave@contoso.onmicrosoft.com").await;
    let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    assert_eq!(dave[ext]["manager"]["value"], alice["id"], "{dave}");
    let bob = user_by_name(&env, "bob@contoso.onmicrosoft.com").await;
    let eng = group_by_name(&env, "Engineering").await.unwrap();
    assert_eq!(eng["externalId"], ENGINEERING, "the group's externalId is its Entra object id");
    assert_eq!(member_names(&eng), ["Alice Kim", "Bob Jones"]);
    let sales = group_by_name(&env, "Sales").await.unwrap();
    assert_eq!(member_names(&sales), ["Bob Jones"]);
    assert!(group_by_name(&env, "Platform").await.is_none(), "Platform is not assigned");

    // A second cycle with no change sends nothing but still succeeds.
    env.cycle(&tenant, &mut state, mode).await;

    // Renames, membership changes, a disable, deletes.
    let alice_id = uuid("a0000000-0000-4000-8000-000000000001");
    let bob_id = uuid("a0000000-0000-4000-8000-000000000002");
    let dave_id = uuid("a0000000-0000-4000-8000-000000000004");
    let erin_id = uuid("a0000000-0000-4000-8000-000000000005");
    let eng_id = uuid(ENGINEERING);
    let sales_id = uuid("e0000000-0000-4000-8000-000000000003");
    tenant
        .update_user(
            bob_id,
            UserUpdate {
                display_name: Some("Robert Jones".into()),
                upn: Some("robert@contoso.onmicrosoft.com".into()),
                ..UserUpdate::default()
            },
        )
        .unwrap();
    tenant
        .update_group(eng_id, GroupUpdate { display_name: Some("Engineering Org".into()), ..GroupUpdate::default() })
        .unwrap();
    tenant.add_member(eng_id, erin_id).unwrap();
    tenant.remove_member(sales_id, bob_id).unwrap();
    tenant.set_user_enabled(alice_id, false).unwrap();
    tenant.delete_user(dave_id).unwrap();
    env.cycle(&tenant, &mut state, mode).await;

    let users = env.scim_get("/Users").await;
    assert_eq!(
        names(&users, "userName"),
        ["alice@contoso.onmicrosoft.com", "erin@contoso.onmicrosoft.com", "robert@contoso.onmicrosoft.com"],
        "dave deleted, erin now a direct member, bob renamed"
    );
    let alice = user_by_name(&env, "alice@contoso.onmicrosoft.com").await;
    assert_eq!(alice["active"], false, "disabled users stay, inactive");
    let robert = user_by_name(&env, "robert@contoso.onmicrosoft.com").await;
    assert_eq!(robert["displayName"], "Robert Jones");
    assert_eq!(robert["id"], bob["id"], "a rename keeps the resource");
    let (s, _, b) = env.scim(reqwest::Method::GET, &format!("/Users/{}", dave["id"].as_str().unwrap()), None).await;
    assert_eq!(s, 404, "{b}");
    assert!(group_by_name(&env, "Engineering").await.is_none(), "Engineering renamed");
    let eng = group_by_name(&env, "engineering org").await.unwrap();
    assert_eq!(eng["externalId"], ENGINEERING);
    assert_eq!(
        member_names(&eng),
        ["Alice Kim", "Erin Nested", "Robert Jones"],
        "erin added; disabled alice keeps her membership"
    );
    let sales = group_by_name(&env, "Sales").await.unwrap();
    assert!(member_names(&sales).is_empty(), "bob removed: {sales}");

    // Group deletion.
    tenant.delete_group(sales_id).unwrap();
    env.cycle(&tenant, &mut state, mode).await;
    assert!(group_by_name(&env, "Sales").await.is_none(), "Sales deleted");
    assert_eq!(env.scim_get("/Groups").await["totalResults"], 1);

    // Every write is in the SCIM provisioning log (written in the background), none failed.
    let writes = state.log().iter().filter(|e| e.method != "GET").count();
    let path =
        format!("/access/logs/scim/updates?idp_id={}&request_method=POST,PATCH,DELETE,PUT&per_page=1000", env.idp);
    until(|| async {
        env.api(reqwest::Method::GET, &path, None).await.1["result"].as_array().unwrap().len() == writes
    })
    .await;
    let (s, b) = env.api(reqwest::Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let entries = b["result"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["status"] == "SUCCESS"), "{b}");
    assert!(entries.iter().any(|e| e["request_method"] == "DELETE" && e["resource_type"] == "GROUP"));
    let created = entries.iter().find(|e| e["request_method"] == "POST" && e["resource_type"] == "USER").unwrap();
    assert!(created["resource_user_email"].as_str().unwrap().ends_with("@contoso.onmicrosoft.com"));
    assert!(created["request_body"].as_str().unwrap().contains("userName"));
    // Reads are logged too.
    let reads = format!("/access/logs/scim/updates?idp_id={}&request_method=GET&status=FAILURE", env.idp);
    until(|| async { env.api(reqwest::Method::GET, &reads, None).await.1["result_info"]["total_count"] == 1 }).await;
}

#[tokio::test]
async fn the_provisioning_driver_lands_everything_in_default_mode() {
    driver_cycles_land(ProvisioningMode::Default).await;
}

#[tokio::test]
async fn the_provisioning_driver_lands_everything_with_aad_opt_scim_062020() {
    driver_cycles_land(ProvisioningMode::AadOptscim062020).await;
}

// === deprovisioning ===

#[tokio::test]
async fn deprovisioning_through_scim_stops_the_next_request_and_frees_the_seat() {
    let env = env().await;
    let mut tenant = Tenant::from_toml_str(TENANT).unwrap();
    let mut state = ProvisioningState::default();
    env.cycle(&tenant, &mut state, ProvisioningMode::Default).await;
    let aud = env.app("wiki.test", ENGINEERING).await;
    let (alice, alice_user) =
        env.session("a0000000-0000-4000-8000-000000000001", "alice@contoso.com", &[ENGINEERING], &aud).await;
    let (bob, _) =
        env.session("a0000000-0000-4000-8000-000000000002", "bob@contoso.onmicrosoft.com", &[ENGINEERING], &aud).await;
    assert_eq!(env.proxied(env.gw.public_addr, "wiki.test", &alice).await, 200);
    assert_eq!(env.proxied(env.gw.public_addr, "wiki.test", &bob).await, 200);

    tenant.set_user_enabled(uuid("a0000000-0000-4000-8000-000000000001"), false).unwrap();
    env.cycle(&tenant, &mut state, ProvisioningMode::Default).await;
    until(|| async { env.proxied(env.gw.public_addr, "wiki.test", &alice).await == 302 }).await;
    assert_eq!(env.proxied(env.gw.public_addr, "wiki.test", &bob).await, 200, "only alice is deprovisioned");
    let registry = env.gw.store.get_user(alice_user).await.unwrap().unwrap();
    assert!(!registry.access_seat, "seat_deprovision frees the seat");
    assert!(env.gw.store.active_sessions(alice_user, gatehouse_core::now_millis()).await.unwrap().is_empty());
    // While deactivated, sign-in is refused (the callback asks the store this).
    let idp = env.idp.parse().unwrap();
    let subject = format!("entra:{TENANT_ID}:a0000000-0000-4000-8000-000000000001");
    let check = env.gw.store.scim_sign_in(idp, &subject, "alice@contoso.com", &[], 0).await.unwrap();
    assert!(check.deactivated);

    // A hard delete deprovisions too.
    tenant.delete_user(uuid("a0000000-0000-4000-8000-000000000002")).unwrap();
    env.cycle(&tenant, &mut state, ProvisioningMode::Default).await;
    until(|| async { env.proxied(env.gw.public_addr, "wiki.test", &bob).await == 302 }).await;
}

#[tokio::test]
async fn scim_group_changes_update_the_live_identity_when_automatic() {
    let env = env().await;
    let mut tenant = Tenant::from_toml_str(TENANT).unwrap();
    let mut state = ProvisioningState::default();
    // Platform assigned too, so it is a provisioned group.
    tenant.assign_scim(uuid(PLATFORM)).unwrap();
    env.cycle(&tenant, &mut state, ProvisioningMode::AadOptscim062020).await;
    let aud = env.app("platform.test", PLATFORM).await;
    // Bob signed in without Platform in his token.
    let (bob, bob_user) =
        env.session("a0000000-0000-4000-8000-000000000002", "bob@contoso.onmicrosoft.com", &[ENGINEERING], &aud).await;
    assert_eq!(env.proxied(env.gw.public_addr, "platform.test", &bob).await, 403);
    tenant.add_member(uuid(PLATFORM), uuid("a0000000-0000-4000-8000-000000000002")).unwrap();
    env.cycle(&tenant, &mut state, ProvisioningMode::AadOptscim062020).await;
    until(|| async { env.proxied(env.gw.public_addr, "platform.test", &bob).await == 200 }).await;
    let identity = env.gw.store.get_user(bob_user).await.unwrap().unwrap().identity;
    assert!(
        identity["groups"].as_array().unwrap().iter().any(|g| g["id"] == PLATFORM && g["name"] == "Platform"),
        "the identity carries the SCIM group with its name: {identity}"
    );
    tenant.remove_member(uuid(PLATFORM), uuid("a0000000-0000-4000-8000-000000000002")).unwrap();
    env.cycle(&tenant, &mut state, ProvisioningMode::AadOptscim062020).await;
    until(|| async { env.proxied(env.gw.public_addr, "platform.test", &bob).await == 403 }).await;
}

#[tokio::test]
async fn reauth_revokes_sessions_on_group_change() {
    let scim = json!({"enabled": true, "identity_update_behavior": "reauth"});
    let env = env_with(TestDb::sqlite(), scim).await;
    let mut tenant = Tenant::from_toml_str(TENANT).unwrap();
    let mut state = ProvisioningState::default();
    env.cycle(&tenant, &mut state, ProvisioningMode::Default).await;
    let aud = env.app("wiki.test", ENGINEERING).await;
    let (bob, _) =
        env.session("a0000000-0000-4000-8000-000000000002", "bob@contoso.onmicrosoft.com", &[ENGINEERING], &aud).await;
    assert_eq!(env.proxied(env.gw.public_addr, "wiki.test", &bob).await, 200);
    tenant
        .remove_member(uuid("e0000000-0000-4000-8000-000000000003"), uuid("a0000000-0000-4000-8000-000000000002"))
        .unwrap();
    env.cycle(&tenant, &mut state, ProvisioningMode::Default).await;
    until(|| async { env.proxied(env.gw.public_addr, "wiki.test", &bob).await == 302 }).await;
}

#[tokio::test]
async fn deprovisioning_on_one_instance_is_enforced_by_another_sharing_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    let env = env_with(db, deprovisioning()).await;
    let (two, _dir) = gateway(env.db.url(), env.key.clone()).await;
    let mut tenant = Tenant::from_toml_str(TENANT).unwrap();
    let mut state = ProvisioningState::default();
    env.cycle(&tenant, &mut state, ProvisioningMode::AadOptscim062020).await;
    let aud = env.app("wiki.test", ENGINEERING).await;
    let (alice, _) =
        env.session("a0000000-0000-4000-8000-000000000001", "alice@contoso.com", &[ENGINEERING], &aud).await;
    until(|| async { env.proxied(two.public_addr, "wiki.test", &alice).await == 200 }).await;

    tenant.set_user_enabled(uuid("a0000000-0000-4000-8000-000000000001"), false).unwrap();
    let started = tokio::time::Instant::now();
    env.cycle(&tenant, &mut state, ProvisioningMode::AadOptscim062020).await;
    until(|| async { env.proxied(two.public_addr, "wiki.test", &alice).await == 302 }).await;
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    until(|| async { env.proxied(env.gw.public_addr, "wiki.test", &alice).await == 302 }).await;
    two.shutdown().await;
}

// === drift and the admin read views ===

#[tokio::test]
async fn nested_only_membership_at_sign_in_is_reported_as_drift() {
    let env = env().await;
    let mut tenant = Tenant::from_toml_str(TENANT).unwrap();
    let mut state = ProvisioningState::default();
    tenant.assign_scim(uuid("a0000000-0000-4000-8000-000000000005")).unwrap();
    env.cycle(&tenant, &mut state, ProvisioningMode::Default).await;
    // Erin's token lists Engineering (through Platform) and Platform; SCIM has her in neither
    // group directly, and only Engineering is provisioned.
    let idp = env.idp.parse().unwrap();
    let subject = format!("entra:{TENANT_ID}:a0000000-0000-4000-8000-000000000005");
    let seen = env
        .gw
        .store
        .scim_sign_in(idp, &subject, "erin@contoso.onmicrosoft.com", &[ENGINEERING.into(), PLATFORM.into()], 1)
        .await
        .unwrap();
    assert_eq!(seen.group_names.get(ENGINEERING).map(String::as_str), Some("Engineering"));
    let (s, b) =
        env.api(reqwest::Method::GET, &format!("/access/identity_providers/{}/scim/drift", env.idp), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let items = b["result"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{b}");
    assert_eq!(items[0]["user_name"], "erin@contoso.onmicrosoft.com");
    assert_eq!(items[0]["group_name"], "Engineering");
    assert_eq!(items[0]["group_idp_resource_id"], ENGINEERING);

    let (s, b) = env
        .api(
            reqwest::Method::GET,
            &format!("/access/identity_providers/{}/scim/users?username=erin@contoso.onmicrosoft.com", env.idp),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["result"][0]["active"], true);
    let (s, b) = env
        .api(
            reqwest::Method::GET,
            &format!("/access/identity_providers/{}/scim/groups?idp_resource_id={ENGINEERING}", env.idp),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"][0]["displayName"], "Engineering", "{b}");
    assert_eq!(b["result_info"]["total_count"], 1);
}

// === malformed and hostile input ===

#[tokio::test]
async fn malformed_requests_get_scim_errors_never_a_5xx() {
    let env = env().await;
    let post = |body: &'static str| {
        let env = &env;
        async move { env.scim(reqwest::Method::POST, "/Users", Some(body)).await }
    };
    let (s, ct, b) = post(r#"{"userName": "ada@contoso.com", "active": "True", "emails": [{"value": "ada@contoso.com", "type": "work", "primary": "True"}]}"#).await;
    assert_eq!(s, 201, "{b}");
    assert!(ct.starts_with("application/scim+json"), "{ct}");
    assert_eq!(b["active"], true);
    assert_eq!(b["emails"][0]["primary"], true);
    let id = b["id"].as_str().unwrap().to_owned();

    let expect = |(s, _, b): (u16, String, Value), status: u16, scim_type: Option<&str>| {
        assert_eq!(s, status, "{b}");
        assert_eq!(b["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{b}");
        assert_eq!(b["status"], status.to_string());
        if let Some(t) = scim_type {
            assert_eq!(b["scimType"], t, "{b}");
        }
    };
    expect(post(r#"{"userName": "ADA@contoso.com"}"#).await, 409, Some("uniqueness"));
    expect(post(r#"{"userName": "#).await, 400, Some("invalidSyntax"));
    expect(post("[1, 2]").await, 400, Some("invalidSyntax"));
    expect(post(r#"{"displayName": "no user name"}"#).await, 400, Some("invalidValue"));
    expect(post(r#"{"userName": "x@y", "active": "maybe"}"#).await, 400, Some("invalidValue"));
    // NUL cannot be stored (PostgreSQL refuses it in text) and is never meaningful.
    expect(post(r#"{"userName": "nul\u0000@contoso.com"}"#).await, 400, Some("invalidValue"));
    expect(
        env.scim(reqwest::Method::GET, "/Users?filter=userName%20eq%20%22a%00b%22", None).await,
        400,
        Some("invalidFilter"),
    );
    let patch = |body: String| {
        let (env, id) = (&env, id.clone());
        async move { env.scim(reqwest::Method::PATCH, &format!("/Users/{id}"), Some(&body)).await }
    };
    let op =
        |op: &str| format!(r#"{{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{op}]}}"#);
    expect(patch(op(r#"{"op": "Replace", "path": "emails[type eq", "value": "x"}"#)).await, 400, Some("invalidPath"));
    expect(patch(op(r#"{"op": "Replace", "path": "active", "value": "perhaps"}"#)).await, 400, Some("invalidValue"));
    expect(patch(op(r#"{"op": "Replace", "path": "userName", "value": ""}"#)).await, 400, Some("invalidValue"));
    expect(patch(op(r#"{"op": "Explode", "path": "active"}"#)).await, 400, Some("invalidSyntax"));
    expect(patch(r#"{"Operations": []}"#.into()).await, 400, Some("invalidSyntax"));
    let (s, _, b) = patch(op(r#"{"op": "Replace", "path": "active", "value": "False"}"#)).await;
    assert_eq!((s, &b["active"]), (200, &json!(false)), "{b}");
    expect(env.scim(reqwest::Method::GET, "/Users?filter=userName%20eq", None).await, 400, Some("invalidFilter"));
    expect(
        env.scim(reqwest::Method::GET, "/Users?filter=title%20eq%20%22x%22", None).await,
        400,
        Some("invalidFilter"),
    );
    expect(env.scim(reqwest::Method::GET, "/Users?count=many", None).await, 400, Some("invalidValue"));
    expect(env.scim(reqwest::Method::GET, "/Users/no-such-id", None).await, 404, None);
    expect(env.scim(reqwest::Method::DELETE, "/Users/no-such-id", None).await, 404, None);
    expect(env.scim(reqwest::Method::GET, "/Bulk", None).await, 404, None);
    let huge = format!(r#"{{"userName": "big@x", "title": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let (s, _, _) = env.scim(reqwest::Method::POST, "/Users", Some(&huge)).await;
    assert_eq!(s, 413);

    // Groups: 204 on PATCH, unknown members refused, names unique ignoring case.
    let (s, _, g) =
        env.scim(reqwest::Method::POST, "/Groups", Some(r#"{"displayName": "Ops", "externalId": "x-1"}"#)).await;
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_str().unwrap();
    expect(
        env.scim(reqwest::Method::POST, "/Groups", Some(r#"{"displayName": "OPS"}"#)).await,
        409,
        Some("uniqueness"),
    );
    let add = |member: &str| {
        op(&format!(r#"{{"op": "Add", "path": "members", "value": [{{"value": "{member}", "$ref": null}}]}}"#))
    };
    let (s, _, _) = env.scim(reqwest::Method::PATCH, &format!("/Groups/{gid}"), Some(&add(&id))).await;
    assert_eq!(s, 204);
    expect(
        env.scim(reqwest::Method::PATCH, &format!("/Groups/{gid}"), Some(&add("ghost"))).await,
        400,
        Some("invalidValue"),
    );
    let g = env.scim_get(&format!("/Groups/{gid}")).await;
    assert_eq!(g["members"][0]["value"], id.as_str());
    let g = env.scim_get(&format!("/Groups/{gid}?excludedAttributes=members")).await;
    assert!(g.get("members").is_none(), "{g}");
    let list = env
        .scim_get(&format!("/Groups?filter={}", urlencode(&format!("id eq \"{gid}\" and members eq \"{id}\""))))
        .await;
    assert_eq!(list["totalResults"], 1, "the membership probe: {list}");
}

#[tokio::test]
async fn authentication_is_required_and_failures_are_rate_limited() {
    let env = env().await;
    let url = format!("{}/Users", env.scim_url());
    let status = |req: reqwest::RequestBuilder| async move { req.send().await.unwrap().status().as_u16() };
    assert_eq!(status(env.http.get(&url)).await, 401);
    assert_eq!(status(env.http.get(&url).bearer_auth("ghscim_wrong")).await, 401);
    assert_eq!(status(env.http.get(&url).bearer_auth(&env.secret)).await, 200);
    // Another host than the team domain does not serve SCIM.
    assert_eq!(status(env.http.get(&url).header("host", "wiki.test").bearer_auth(&env.secret)).await, 404);
    // An unknown IdP and a malformed id look the same as a wrong secret.
    let other = format!("http://{}/populations/{}/scim/v2/Users", env.gw.public_addr, uuid::Uuid::new_v4());
    assert_eq!(status(env.http.get(&other).bearer_auth(&env.secret)).await, 401);
    let bad = format!("http://{}/populations/not-an-id/scim/v2/Users", env.gw.public_addr);
    assert_eq!(status(env.http.get(&bad).bearer_auth(&env.secret)).await, 401);
    // Failures from one address are limited, but the right secret still gets through.
    let mut last = 0;
    for _ in 0..gatehouse_scim::MAX_FAILED_AUTH + 1 {
        last = status(env.http.get(&url).bearer_auth("ghscim_guess")).await;
    }
    assert_eq!(last, 429);
    assert_eq!(status(env.http.get(&url).bearer_auth(&env.secret)).await, 200);
    assert_eq!(status(env.http.get(&url).bearer_auth("ghscim_guess")).await, 429);
    // Disabling SCIM closes the endpoint.
    let (s, b) = env.api(reqwest::Method::GET, &format!("/access/identity_providers/{}", env.idp), None).await;
    assert_eq!(s, StatusCode::OK);
    let mut idp = b["result"].clone();
    idp["scim_config"]["enabled"] = json!(false);
    let (s, b) = env.api(reqwest::Method::PUT, &format!("/access/identity_providers/{}", env.idp), Some(idp)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_ne!(status(env.http.get(&url).bearer_auth(&env.secret)).await, 200);
}

#[tokio::test]
async fn discovery_endpoints_describe_the_server() {
    let env = env().await;
    let spc = env.scim_get("/ServiceProviderConfig").await;
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], false);
    let types = env.scim_get("/ResourceTypes").await;
    assert_eq!(types["Resources"][0]["endpoint"], "/Users");
    let schemas = env.scim_get("/Schemas").await;
    let ids: Vec<&str> = schemas["Resources"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ]
    );
    assert!(!schemas.to_string().contains("null"), "no nulls in schemas");
    let user = env.scim_get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").await;
    assert_eq!(user["name"], "User");
}

/// JSON built from the words SCIM bodies are made of, nested, with hostile strings mixed in.
fn scim_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let words = prop::sample::select(vec![
        "schemas",
        "Operations",
        "op",
        "path",
        "value",
        "userName",
        "displayName",
        "members",
        "active",
        "emails",
        "externalId",
        "id",
        "meta",
        "name.givenName",
        "Add",
        "Replace",
        "Remove",
        "remove",
        "True",
        "False",
        "urn:ietf:params:scim:api:messages:2.0:PatchOp",
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "emails[type eq \"work\"].value",
        "members[value eq \"x\"]",
        "members[",
        "]",
        "\u{0}",
        "é\u{301}",
        "𝔘",
        "' OR 1=1 --",
        "%_",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        words.clone().prop_map(|w| Value::String(w.to_owned())),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((words.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

#[tokio::test]
async fn arbitrary_bodies_never_get_a_5xx() {
    use proptest::strategy::{Strategy as _, ValueTree as _};
    let env = env().await;
    let (s, _, user) = env.scim(reqwest::Method::POST, "/Users", Some(r#"{"userName": "target@x"}"#)).await;
    assert_eq!(s, 201);
    let (s, _, group) = env.scim(reqwest::Method::POST, "/Groups", Some(r#"{"displayName": "Target"}"#)).await;
    assert_eq!(s, 201);
    let (uid, gid) = (user["id"].as_str().unwrap(), group["id"].as_str().unwrap());
    let targets = [
        (reqwest::Method::POST, "/Users".to_owned()),
        (reqwest::Method::POST, "/Groups".to_owned()),
        (reqwest::Method::PATCH, format!("/Users/{uid}")),
        (reqwest::Method::PATCH, format!("/Groups/{gid}")),
        (reqwest::Method::PUT, format!("/Users/{uid}")),
        (reqwest::Method::PUT, format!("/Groups/{gid}")),
        (reqwest::Method::POST, "/Users/.search".to_owned()),
    ];
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = scim_json();
    for i in 0..700 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        // Half of the bodies are PatchOp-shaped, so they get past the first checks.
        let body = if i % 2 == 0 {
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [body]})
        } else {
            body
        };
        let (method, path) = &targets[i % targets.len()];
        let text = body.to_string();
        let (s, ct, answer) = env.scim(method.clone(), path, Some(&text)).await;
        assert!(s < 500, "{method} {path} with {text} answered {s}: {answer}");
        if s >= 400 {
            assert!(ct.starts_with("application/scim+json"), "{ct}");
            assert_eq!(answer["status"], s.to_string(), "{answer}");
        }
    }
    // Filters too.
    let filters = proptest::string::string_regex(r#"[a-zA-Z\[\]()". :=\-0-9]{0,40}"#).unwrap();
    for _ in 0..300 {
        let f = filters.new_tree(&mut runner).unwrap().current();
        for resource in ["Users", "Groups"] {
            let (s, _, answer) =
                env.scim(reqwest::Method::GET, &format!("/{resource}?filter={}", urlencode(&f)), None).await;
            assert!(s == 200 || s == 400, "filter {f:?} on {resource} answered {s}: {answer}");
        }
    }
}

#[tokio::test]
async fn seats_are_set_and_freed_through_the_api() {
    let env = env().await;
    let aud = env.app("wiki.test", ENGINEERING).await;
    let (_, user) = env.session("a0000000-0000-4000-8000-000000000009", "zoe@contoso.com", &[ENGINEERING], &aud).await;
    let body = json!([{"seat_uid": user.to_string(), "access_seat": false, "gateway_seat": false}]);
    let (s, b) = env.api(reqwest::Method::PATCH, "/access/seats", Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"][0]["access_seat"], false);
    assert!(!env.gw.store.get_user(user).await.unwrap().unwrap().access_seat);
    let unknown = json!([{"seat_uid": uuid::Uuid::new_v4().to_string(), "access_seat": true, "gateway_seat": false}]);
    let (s, _) = env.api(reqwest::Method::PATCH, "/access/seats", Some(unknown)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = env.api(reqwest::Method::PATCH, "/access/seats", Some(json!([{"seat_uid": "x"}]))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn no_action_leaves_sessions_and_identities_alone() {
    let scim = json!({"enabled": true, "identity_update_behavior": "no_action"});
    let env = env_with(TestDb::sqlite(), scim).await;
    let mut tenant = Tenant::from_toml_str(TENANT).unwrap();
    tenant.assign_scim(uuid(PLATFORM)).unwrap();
    let mut state = ProvisioningState::default();
    env.cycle(&tenant, &mut state, ProvisioningMode::Default).await;
    let aud = env.app("wiki.test", ENGINEERING).await;
    let (bob, bob_user) =
        env.session("a0000000-0000-4000-8000-000000000002", "bob@contoso.onmicrosoft.com", &[ENGINEERING], &aud).await;
    let before = env.gw.store.get_user(bob_user).await.unwrap().unwrap().identity;
    tenant.add_member(uuid(PLATFORM), uuid("a0000000-0000-4000-8000-000000000002")).unwrap();
    tenant
        .remove_member(uuid("e0000000-0000-4000-8000-000000000003"), uuid("a0000000-0000-4000-8000-000000000002"))
        .unwrap();
    env.cycle(&tenant, &mut state, ProvisioningMode::Default).await;
    assert_eq!(env.gw.store.get_user(bob_user).await.unwrap().unwrap().identity, before, "identity untouched");
    assert_eq!(env.proxied(env.gw.public_addr, "wiki.test", &bob).await, 200, "session kept");
    // Without user_deprovision, a disable keeps the session too (until it expires).
    tenant.set_user_enabled(uuid("a0000000-0000-4000-8000-000000000002"), false).unwrap();
    env.cycle(&tenant, &mut state, ProvisioningMode::Default).await;
    assert_eq!(env.proxied(env.gw.public_addr, "wiki.test", &bob).await, 200);
}
