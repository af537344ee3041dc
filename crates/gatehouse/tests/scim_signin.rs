//! SCIM deprovisioning at sign-in, end to end: a user provisioned over SCIM signs in through
//! the Entra emulator with a scripted browser, is deactivated over SCIM (their next request
//! is sent back to sign in), cannot sign in again while deactivated, and can once
//! reactivated. A sign-in that shows a provisioned group reached only through nesting is
//! reported as drift, and the registry identity carries the SCIM group's name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use gatehouse::config::{CloudEndpoints, Config, IngressRule, Overrides};
use gatehouse::gateway::Gateway;
use gatehouse_core::TokenId;
use gatehouse_core::secret::{SecretKey, hash_bearer_secret};
use gatehouse_entra_sim::tenant::AppUpdate;
use gatehouse_entra_sim::{EntraSim, Tenant};
use gatehouse_store::{ApiToken, TokenStore as _};
use serde_json::{Value, json};

const TOKEN: &str = "gth_scim-signin-test-token";
const TEAM: &str = "http://auth.test";
const DEMO_TENANT: &str = include_str!("../../gatehouse-entra-sim/tenants/demo.toml");
const DEMO_PASSWORD: &str = "Passw0rd!";
const ENGINEERING: &str = "0a1b2c3d-0001-4e5f-8a9b-000000000001";

// === a browser (tests/common/browser.rs) ===

#[path = "common/browser.rs"]
mod browser;
use browser::{Browser, Landed};

async fn at_entra(browser: &Browser, url: &str, upn: &str) -> Landed {
    browser.open_and_sign_in(url, "signin", &[("username", upn), ("password", DEMO_PASSWORD)]).await
}

// === the gateway, the emulator and the SCIM client ===

struct Env {
    gw: Gateway,
    http: reqwest::Client,
    account: String,
    scim: String,
    secret: String,
    idp: String,
    _sim: gatehouse_entra_sim::RunningSim,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start(scim_config: Value) -> Self {
        let sim =
            EntraSim::start(Tenant::from_toml_str(DEMO_TENANT).unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (client_id, secret) = sim
            .tenant()
            .read(|t| t.apps().next().map(|a| (a.client_id, a.secrets[0].value().expose().to_owned())))
            .unwrap();
        let callback = format!("{TEAM}/cdn-cgi/access/callback");
        sim.tenant()
            .edit(|t| t.update_app(client_id, AppUpdate { redirect_uris: Some(vec![callback]), ..Default::default() }))
            .unwrap();
        let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin_url = format!("http://{}", origin.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(origin, axum::Router::new().fallback(|| async { "origin" })).await });
        let dir = tempfile::tempdir().unwrap();
        let vars = [
            ("GATEHOUSE_DATA_DIR".to_owned(), dir.path().display().to_string()),
            ("GATEHOUSE_PUBLIC_URL".to_owned(), TEAM.to_owned()),
            ("GATEHOUSE_PUBLIC_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            ("GATEHOUSE_ADMIN_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ];
        let mut config = Config::load_with_env(None, &Overrides::default(), vars).unwrap();
        let rule = |host: Option<&str>, service: &str| -> IngressRule {
            serde_json::from_value(json!({"hostname": host, "service": service})).unwrap()
        };
        config.ingress = vec![rule(Some("*.test"), &origin_url), rule(None, "http_status:404")];
        let url = |u: &str| url::Url::parse(u).unwrap();
        config.entra.clouds.insert(
            "default".into(),
            CloudEndpoints { login_url: url(sim.login_url()), graph_url: url(sim.graph_url()) },
        );
        let gw = Gateway::start(&config, SecretKey::generate().unwrap(), None).await.unwrap();
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
        let account = gatehouse_store::OrgStore::account_id(&gw.store).await.unwrap().to_string();
        let mut env = Self {
            scim: String::new(),
            secret: String::new(),
            idp: String::new(),
            gw,
            http: reqwest::Client::new(),
            account,
            _sim: sim,
            _dir: dir,
        };
        let idp = env
            .api(
                reqwest::Method::POST,
                "/access/identity_providers",
                Some(json!({
                    "name": "Contoso", "type": "azureAD",
                    "config": {"client_id": client_id, "client_secret": secret,
                               "directory_id": env._sim.tenant_id(), "support_groups": true},
                    "scim_config": scim_config,
                })),
            )
            .await;
        env.idp = idp["id"].as_str().unwrap().to_owned();
        env.secret = idp["scim_config"]["secret"].as_str().unwrap().to_owned();
        env.scim = format!("http://{}/populations/{}/scim/v2", env.gw.public_addr, env.idp);
        env
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("http://{}/client/v4/accounts/{}{path}", self.gw.admin_addr, self.account);
        let mut req = self.http.request(method, url).bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body["result"].clone()
    }

    /// A SCIM request on the team domain (`Host: auth.test`).
    async fn scim(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.scim))
            .header("host", "auth.test")
            .bearer_auth(&self.secret)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn add_app(&self, host: &str, include: Value) {
        let body = json!({
            "type": "self_hosted", "name": host, "domain": host,
            "policies": [{"name": "allow", "decision": "allow", "include": include}]
        });
        self.api(reqwest::Method::POST, "/access/apps", Some(body)).await;
        let browser = Browser::new(self.gw.public_addr);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while browser.get(&format!("http://{host}/")).await.status() != 302 {
            assert!(tokio::time::Instant::now() < deadline, "{host} not served within 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn set_active(active: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "Replace", "path": "active", "value": active}]})
}

#[tokio::test]
async fn a_user_deactivated_over_scim_is_signed_out_and_cannot_sign_in_until_reactivated() {
    let env = Env::start(json!({"enabled": true, "user_deprovision": true, "seat_deprovision": true})).await;
    env.add_app("wiki.test", json!([{"azureAD": {"id": ENGINEERING}}])).await;
    // Provisioned as Entra would: userName = UPN, work e-mail = mail.
    let (s, alice) = env
        .scim(
            reqwest::Method::POST,
            "/Users",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice@contoso.onmicrosoft.com",
                   "active": true, "externalId": "alice", "emails": [{"primary": true, "type": "work", "value": "alice@contoso.com"}]}),
        )
        .await;
    assert_eq!(s, 201, "{alice}");
    let id = alice["id"].as_str().unwrap();
    // Engineering is provisioned, without Alice as a direct member (she is in Platform).
    let (s, g) = env
        .scim(reqwest::Method::POST, "/Groups", json!({"displayName": "Engineering", "externalId": ENGINEERING}))
        .await;
    assert_eq!(s, 201, "{g}");

    let browser = Browser::new(env.gw.public_addr);
    let l = at_entra(&browser, "http://wiki.test/", "alice@contoso.onmicrosoft.com").await;
    assert_eq!((l.url.as_str(), l.status), ("http://wiki.test/", 200), "{}\n{:#?}", l.body, l.visited);
    // The sign-in saw Engineering (through Platform) with no direct SCIM membership: drift.
    let drift =
        env.api(reqwest::Method::GET, &format!("/access/identity_providers/{}/scim/drift", env.idp), None).await;
    assert_eq!(drift.as_array().unwrap().len(), 1, "{drift}");
    assert_eq!(drift[0]["group_name"], "Engineering");
    assert_eq!(drift[0]["user_name"], "alice@contoso.onmicrosoft.com");
    let users = env.api(reqwest::Method::GET, "/access/users?email=alice@contoso.com", None).await;
    let user_id = users[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(users[0]["access_seat"], true);
    let identity = env.api(reqwest::Method::GET, &format!("/access/users/{user_id}/last_seen_identity"), None).await;
    assert!(
        identity["groups"].as_array().unwrap().iter().any(|g| g["id"] == ENGINEERING && g["name"] == "Engineering"),
        "{identity}"
    );

    // Deactivated: the next request goes back to sign-in, and signing in is refused.
    let (s, b) = env.scim(reqwest::Method::PATCH, &format!("/Users/{id}"), set_active("False")).await;
    assert_eq!((s, &b["active"]), (200, &json!(false)), "{b}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while browser.get("http://wiki.test/").await.status() != 302 {
        assert!(tokio::time::Instant::now() < deadline, "the session was not revoked within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let l = at_entra(&browser, "http://wiki.test/", "alice@contoso.onmicrosoft.com").await;
    assert_eq!(l.status, 403, "{}", l.body);
    assert!(l.body.contains("deactivated"), "{}", l.body);
    let users = env.api(reqwest::Method::GET, "/access/users?email=alice@contoso.com", None).await;
    assert_eq!(users[0]["access_seat"], false, "seat_deprovision freed the seat");
    let failed = env.api(reqwest::Method::GET, &format!("/access/users/{user_id}/failed_logins"), None).await;
    assert!(failed.to_string().contains("scim_deactivated"), "{failed}");

    // Reactivated: she signs in again.
    let (s, _) = env.scim(reqwest::Method::PATCH, &format!("/Users/{id}"), set_active("True")).await;
    assert_eq!(s, 200);
    let fresh = Browser::new(env.gw.public_addr);
    let l = at_entra(&fresh, "http://wiki.test/", "alice@contoso.onmicrosoft.com").await;
    assert_eq!((l.url.as_str(), l.status), ("http://wiki.test/", 200), "{}", l.body);
}
