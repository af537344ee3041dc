//! SCIM deprovisioning at sign-in, end to end: a user provisioned over SCIM signs in through
//! the Entra emulator with a scripted browser, is deactivated over SCIM (their next request
//! is sent back to sign in), cannot sign in again while deactivated, and can once
//! reactivated. A sign-in that shows a provisioned group reached only through nesting is
//! reported as drift, and the registry identity carries the SCIM group's name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Mutex;
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

// === a browser (as in tests/signin.rs) ===

struct Cookie {
    host: String,
    path: String,
    name: String,
    value: String,
}

/// A browser with a cookie jar (host-only cookies, path-matched) that follows no redirect by
/// itself. Names under `.test` resolve to the gateway's public listener.
struct Browser {
    http: reqwest::Client,
    gateway: SocketAddr,
    jar: Mutex<Vec<Cookie>>,
}

fn path_matches(cookie_path: &str, path: &str) -> bool {
    path == cookie_path
        || (path.starts_with(cookie_path) && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
}

impl Browser {
    fn new(gateway: SocketAddr) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, gateway, jar: Mutex::new(Vec::new()) }
    }

    fn store_cookies(&self, url: &url::Url, resp: &reqwest::Response) {
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut jar = self.jar.lock().unwrap();
        for raw in resp.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let mut parts = raw.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|kv| kv.split_once('=')) else { continue };
            let default_path = match url.path().rfind('/') {
                Some(0) | None => "/".to_owned(),
                Some(i) => url.path()[..i].to_owned(),
            };
            let (mut path, mut delete) = (default_path, false);
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                match k.to_ascii_lowercase().as_str() {
                    "path" if v.starts_with('/') => path = v.to_owned(),
                    "max-age" => delete |= v.parse::<i64>().is_ok_and(|n| n <= 0),
                    "expires" => delete |= v.contains("1970"),
                    _ => {}
                }
            }
            jar.retain(|c| !(c.host == host && c.name == name && c.path == path));
            if !delete && !value.is_empty() {
                jar.push(Cookie { host: host.clone(), path, name: name.to_owned(), value: value.to_owned() });
            }
        }
    }

    async fn send(&self, method: reqwest::Method, url: &str, form: Option<&[(&str, &str)]>) -> reqwest::Response {
        let url = url::Url::parse(url).unwrap_or_else(|e| panic!("{e}: {url}"));
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut target = url.clone();
        let mut host_header = None;
        if host.ends_with(".test") {
            target.set_ip_host(self.gateway.ip()).unwrap();
            target.set_port(Some(self.gateway.port())).unwrap();
            host_header = Some(match url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            });
        }
        let cookies: Vec<String> = self
            .jar
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.host == host && path_matches(&c.path, url.path()))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        let mut req = self.http.request(method, target);
        if let Some(h) = host_header {
            req = req.header("host", h);
        }
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        if let Some(f) = form {
            req = req.form(f);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        self.store_cookies(&url, &resp);
        resp
    }

    async fn get(&self, url: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, url, None).await
    }

    /// Follows redirects from `resp` (at `at`) until a non-redirect, recording every URL.
    async fn follow(
        &self,
        at: &str,
        mut resp: reqwest::Response,
        visited: &mut Vec<String>,
    ) -> (String, reqwest::Response) {
        let mut current = at.to_owned();
        for _ in 0..20 {
            if !resp.status().is_redirection() {
                return (current, resp);
            }
            let location = resp.headers()["location"].to_str().unwrap().to_owned();
            current = url::Url::parse(&current).unwrap().join(&location).unwrap().to_string();
            visited.push(current.clone());
            resp = self.get(&current).await;
        }
        panic!("too many redirects: {visited:?}");
    }

    /// Opens `url` and, when a page with the form `form` is reached, fills in `fields` (plus
    /// the form's hidden inputs) and submits it; returns the final URL and response, and
    /// every URL passed through.
    async fn open_and_sign_in(&self, url: &str, form: &str, fields: &[(&str, &str)]) -> Landed {
        let mut visited = vec![url.to_owned()];
        let first = self.get(url).await;
        let (at, resp) = self.follow(url, first, &mut visited).await;
        let status = resp.status().as_u16();
        let html = resp.text().await.unwrap();
        let Some(form_at) = html.find(&format!("id=\"{form}\"")) else {
            // No sign-in form: the IdP remembered the user, or the gateway answered itself.
            return Landed { url: at, status, body: html, visited };
        };
        let start = html[..form_at].rfind("<form").unwrap();
        let end = start + html[start..].find("</form>").unwrap();
        let form_html = &html[start..end];
        let attr = |tag: &str, name: &str| -> Option<String> {
            let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
            Some(tag[at..at + tag[at..].find('"')?].replace("&amp;", "&"))
        };
        let action = url::Url::parse(&at).unwrap().join(&attr(form_html, "action").unwrap()).unwrap().to_string();
        let mut values: Vec<(String, String)> = form_html
            .split("<input")
            .skip(1)
            .filter(|tag| tag.contains("type=\"hidden\""))
            .filter_map(|tag| Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default())))
            .collect();
        values.extend(fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let pairs: Vec<(&str, &str)> = values.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        visited.push(action.clone());
        let posted = self.send(reqwest::Method::POST, &action, Some(&pairs)).await;
        let (at, resp) = self.follow(&action, posted, &mut visited).await;
        let status = resp.status().as_u16();
        Landed { url: at, status, body: resp.text().await.unwrap(), visited }
    }
}

/// Where a browser ended up: the last URL, its status and body, and every URL on the way.
struct Landed {
    url: String,
    status: u16,
    body: String,
    visited: Vec<String>,
}

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
