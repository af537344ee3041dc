//! Sign-in through the gateway's own listeners, end to end over real HTTP on loopback: a
//! scripted browser with a cookie jar goes from a protected URL through team-domain login,
//! the identity provider's sign-in form, the callback and `authorized` to the origin, and the
//! application token is checked with a standard JWT library against `/cdn-cgi/access/certs`.
//!
//! Two identity providers: the Entra ID emulator (as an `azureAD` IdP, its hosts set through
//! `entra.clouds.default`), and one that is not ours — panva's certified `oidc-provider`
//! (npm), run from `tests/oidc-provider/server.mjs` as a generic `oidc` IdP. That one needs
//! Node.js and `npm ci` in `tests/oidc-provider` (the README's test command does it); without
//! them its test fails under CI and is skipped loudly elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::extract::Request;
use axum::response::IntoResponse as _;
use gatehouse::config::{CloudEndpoints, Config, IngressRule, Overrides};
use gatehouse::gateway::Gateway;
use gatehouse_core::TokenId;
use gatehouse_core::secret::{SecretKey, hash_bearer_secret};
use gatehouse_store::{ApiToken, FailedLoginStore as _, TokenStore as _};
use gatehouse_testkit::TestDb;
use serde_json::{Value, json};

const TOKEN: &str = "gth_oidc-provider-test-token";
const TEAM: &str = "http://auth.test";
const CLIENT_ID: &str = "gatehouse-test-client";
const CLIENT_SECRET: &str = "a-client-secret-of-the-test-provider";
const PASSWORD: &str = "correct horse battery staple";
const DEMO_TENANT: &str = include_str!("../../gatehouse-entra-sim/tenants/demo.toml");
const DEMO_PASSWORD: &str = "Passw0rd!";
const ENGINEERING: &str = "0a1b2c3d-0001-4e5f-8a9b-000000000001";

// ---------------------------------------------------------------------------------------------
// The provider

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc-provider")
}

/// Whether Node.js and the installed provider are there; fails under CI when not.
fn provider_available() -> bool {
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let installed = provider_dir().join("node_modules/oidc-provider/package.json").is_file();
    if node && installed {
        return true;
    }
    let why = if node {
        "tests/oidc-provider/node_modules is missing (run `npm ci` there)"
    } else {
        "Node.js (`node`) is not installed"
    };
    assert!(std::env::var_os("CI").is_none(), "the independent OIDC provider test must run under CI: {why}");
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! SKIPPING sign-in through panva's oidc-provider: {why}.\n\
         !! Run ./scripts/test (it runs npm ci) with Node.js 20 or later.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    false
}

/// A running `server.mjs`; stopped when dropped (its standard input closes too).
struct Provider {
    child: Child,
    issuer: String,
}

impl Provider {
    fn start(redirect_uri: &str) -> Self {
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(provider_dir())
            .env("OP_CLIENT_ID", CLIENT_ID)
            .env("OP_CLIENT_SECRET", CLIENT_SECRET)
            .env("OP_REDIRECT_URI", redirect_uri)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Keep reading to the end, so the provider never writes into a closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("oidc-provider did not report its issuer (exit: {:?})", child.wait().ok());
            }
        };
        let started: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        Self { child, issuer: started["issuer"].as_str().unwrap().to_owned() }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The browser

#[path = "common/browser.rs"]
mod browser;
use browser::{Browser, Landed};

/// Signs in at the independent provider's login form as `user`.
async fn at_provider(browser: &Browser, url: &str, user: &str) -> Landed {
    browser.open_and_sign_in(url, "login", &[("login", user), ("password", PASSWORD)]).await
}

// ---------------------------------------------------------------------------------------------
// The gateway and the origin

/// Answers every request with what it received.
async fn echo(req: Request) -> axum::response::Response {
    let headers: serde_json::Map<String, Value> =
        req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or("<binary>")))).collect();
    axum::Json(json!({"uri": req.uri().to_string(), "headers": headers})).into_response()
}

struct Env {
    gw: Gateway,
    http: reqwest::Client,
    account: String,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A gateway whose configuration `configure` adjusts first.
    async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin_url = format!("http://{}", origin.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(origin, axum::Router::new().fallback(echo)).await });

        let db = TestDb::sqlite();
        let dir = tempfile::tempdir().unwrap();
        let vars = [
            ("GATEHOUSE_DATA_DIR".to_owned(), dir.path().display().to_string()),
            ("GATEHOUSE_PUBLIC_URL".to_owned(), TEAM.to_owned()),
            ("GATEHOUSE_PUBLIC_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            ("GATEHOUSE_ADMIN_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            ("GATEHOUSE_STORE_URL".to_owned(), db.url().to_owned()),
        ];
        let mut config = Config::load_with_env(None, &Overrides::default(), vars).unwrap();
        let rule = |host: Option<&str>, service: &str| -> IngressRule {
            serde_json::from_value(json!({"hostname": host, "service": service})).unwrap()
        };
        config.ingress = vec![rule(Some("*.test"), &origin_url), rule(None, "http_status:404")];
        configure(&mut config);
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
        Self { gw, http: reqwest::Client::new(), account, _db: db, _dir: dir }
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

    /// The provider configured as an administrator would: endpoints from its discovery
    /// document, its `groups` claim as group membership and `department` as a custom claim.
    async fn idp_body(&self, issuer: &str, pkce: bool) -> Value {
        let discovery: Value = self
            .http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(discovery["issuer"], json!(issuer));
        json!({
            "name": "Independent OIDC", "type": "oidc",
            "config": {
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "auth_url": discovery["authorization_endpoint"], "token_url": discovery["token_endpoint"],
                "certs_url": discovery["jwks_uri"],
                "scopes": ["openid", "email", "profile", "groups"],
                "pkce_enabled": pkce, "claims": ["groups", "department"]
            }
        })
    }

    /// An application on `host` with one allow policy including `include` (Cloudflare's rule
    /// JSON); waits until the data plane serves it (a redirect to sign-in).
    async fn add_app(&self, host: &str, include: Value) -> Value {
        let body = json!({
            "type": "self_hosted", "name": host, "domain": host,
            "policies": [{"name": "allow", "decision": "allow", "include": include}]
        });
        let app = self.api(reqwest::Method::POST, "/access/apps", Some(body)).await;
        let browser = Browser::new(self.gw.public_addr);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while browser.get(&format!("http://{host}/")).await.status() != 302 {
            assert!(tokio::time::Instant::now() < deadline, "{host} not served within 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        app
    }
}

/// An `include` admitting one e-mail address.
fn email(address: &str) -> Value {
    json!([{"email": {"email": address}}])
}

/// Verifies an application token the way an origin does: RS256 with the published key of its
/// `kid`, issuer = team domain, audience = the application's.
async fn verify_with_certs(browser: &Browser, host: &str, jwt: &str, aud: &str) -> Value {
    let certs: Value = browser.get(&format!("http://{host}/cdn-cgi/access/certs")).await.json().await.unwrap();
    let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.expect("kid");
    let jwk = certs["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).expect("published key");
    assert_eq!((jwk["kty"].as_str(), jwk["alg"].as_str()), (Some("RSA"), Some("RS256")));
    let key =
        jsonwebtoken::DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[aud]);
    validation.set_issuer(&[TEAM]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation).expect("token validates").claims;
    // The published certificate of the same kid verifies it too.
    let cert = certs["public_certs"].as_array().unwrap().iter().find(|c| c["kid"] == kid.as_str()).expect("cert");
    let from_cert = jsonwebtoken::DecodingKey::from_rsa_pem(cert["cert"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(
        jsonwebtoken::decode::<Value>(jwt, &from_cert, &validation).map(|t| t.claims).ok(),
        Some(claims.clone())
    );
    // A different audience is refused by the same library.
    let mut other = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    other.set_audience(&["f".repeat(64)]);
    assert!(jsonwebtoken::decode::<Value>(jwt, &key, &other).is_err());
    claims
}

// ---------------------------------------------------------------------------------------------
// The test

#[tokio::test]
async fn sign_in_through_an_independent_oidc_provider() {
    if !provider_available() {
        return;
    }
    let provider = Provider::start(&format!("{TEAM}/cdn-cgi/access/callback"));
    let issuer = provider.issuer.clone();
    let env = Env::start().await;
    let idp =
        env.api(reqwest::Method::POST, "/access/identity_providers", Some(env.idp_body(&issuer, true).await)).await;
    let app = env.add_app("app.test", email("alice@example.org")).await;
    let aud = app["aud"].as_str().unwrap().to_owned();
    let other = env.add_app("other.test", email("mallory@example.org")).await;

    // Alice opens a protected URL, signs in at the provider and reaches the origin.
    let alice = Browser::new(env.gw.public_addr);
    let Landed { url: at, status, body, visited } = at_provider(&alice, "http://app.test/reports?q=1", "alice").await;
    assert_eq!((at.as_str(), status), ("http://app.test/reports?q=1", 200), "{body}\n{visited:#?}");
    let login = &visited[1];
    assert!(login.starts_with(&format!("{TEAM}/cdn-cgi/access/login/app.test?kid={aud}")), "{visited:#?}");
    let authorize = visited.iter().find(|u| u.starts_with(&format!("{issuer}/auth?"))).expect("to the provider");
    let q: std::collections::HashMap<_, _> = url::Url::parse(authorize).unwrap().query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256", "PKCE on: {authorize}");
    assert!(q.contains_key("code_challenge") && q.contains_key("nonce") && q.contains_key("state"), "{authorize}");
    assert_eq!(q["redirect_uri"], format!("{TEAM}/cdn-cgi/access/callback"));
    assert!(visited.iter().any(|u| u.starts_with(&format!("{TEAM}/cdn-cgi/access/callback?code="))), "{visited:#?}");
    assert!(visited.iter().any(|u| u.starts_with("http://app.test/cdn-cgi/access/authorized?code=")), "{visited:#?}");

    // The origin got the identity headers; the token validates with a standard JWT library.
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["uri"], "/reports?q=1");
    assert_eq!(seen["headers"]["cf-access-authenticated-user-email"], "alice@example.org");
    let jwt = alice.cookie("app.test", "CF_Authorization").expect("application cookie");
    assert_eq!(seen["headers"]["cf-access-jwt-assertion"], json!(jwt));
    let claims = verify_with_certs(&alice, "app.test", &jwt, &aud).await;
    assert_eq!((claims["email"].as_str(), claims["type"].as_str()), (Some("alice@example.org"), Some("app")));
    assert_eq!(claims["iss"], TEAM);
    assert!(claims["identity_nonce"].as_str().is_some_and(|n| !n.is_empty()));
    assert_eq!(claims["custom"], json!({"department": "Research"}), "configured claims travel in the token");
    let user_id = claims["sub"].as_str().unwrap().to_owned();

    // get-identity: the identity the provider gave: groups from its `groups` claim, the
    // configured custom claim in `oidc_fields`.
    let id: Value = alice.get("http://app.test/cdn-cgi/access/get-identity").await.json().await.unwrap();
    assert_eq!(id["email"], "alice@example.org");
    assert_eq!(id["name"], "Alice Example");
    assert_eq!(id["idp"], json!({"id": idp["id"], "type": "oidc"}));
    assert_eq!(id["user_uuid"], json!(user_id));
    assert_eq!(id["oidc_fields"], json!({"department": "Research"}), "{id}");
    let groups: Vec<_> = id["groups"].as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap()).collect();
    assert_eq!(groups, ["engineering", "staff"]);

    // The other application does not admit Alice: single sign-on does not apply, the provider
    // signs her in again without a form, and the gateway refuses and records why.
    let l = at_provider(&alice, "http://other.test/", "alice").await;
    assert!(l.url.starts_with(&format!("{TEAM}/cdn-cgi/access/callback?")), "{}", l.url);
    assert_eq!(l.status, 403);
    assert!(l.body.contains("Ray ID: "), "{}", l.body);
    let failed = env.api(reqwest::Method::GET, &format!("/access/users/{user_id}/failed_logins"), None).await;
    assert_eq!(failed.as_array().map(Vec::len), Some(1), "{failed}");
    let m = &failed[0]["metadata"];
    assert_eq!(
        (m["reason_code"].as_str(), m["user_email"].as_str()),
        (Some("policy_denied"), Some("alice@example.org"))
    );
    assert_eq!((m["app_name"].as_str(), m["aud"].as_str()), (Some("other.test"), other["aud"].as_str()));
    assert_eq!(m["user_uuid"], json!(user_id));

    // Logging out revokes the session: the same token no longer opens the application.
    let r = alice.get("http://app.test/cdn-cgi/access/logout").await;
    assert_eq!(r.status(), 200);
    // Revocations reach the data plane through the store's notifications: poll, bounded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = env
            .http
            .get(format!("http://{}/reports", env.gw.public_addr))
            .header("host", "app.test")
            .header("cookie", format!("CF_Authorization={jwt}"))
            .header("x-requested-with", "XMLHttpRequest")
            .send()
            .await
            .unwrap();
        if r.status() == 401 {
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(tokio::time::Instant::now() < deadline, "a logged-out token must be refused within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Cancelling at the provider is an IdP error at the callback: refused and recorded.
    let bob = Browser::new(env.gw.public_addr);
    let first = bob.get("http://app.test/").await;
    let mut visited = vec![];
    let (at, resp) = bob.follow("http://app.test/", first, &mut visited).await;
    let html = resp.text().await.unwrap();
    let abort_at = html.find("/abort\"").expect("cancel form");
    let start = html[..abort_at].rfind('"').unwrap() + 1;
    let abort = url::Url::parse(&at).unwrap().join(&html[start..abort_at + 6]).unwrap().to_string();
    let posted = bob.send(reqwest::Method::POST, &abort, None).await;
    let (at, resp) = bob.follow(&abort, posted, &mut visited).await;
    assert!(at.starts_with(&format!("{TEAM}/cdn-cgi/access/callback?error=access_denied")), "{at}");
    assert_eq!(resp.status(), 401);
    let recent = env.gw.store.recent_failed_logins(gatehouse_core::now_millis(), 10).await.unwrap();
    assert_eq!((recent[0].reason_code.as_str(), recent[0].subject.as_deref()), ("access_denied", None));

    // Mallory is refused by app.test, then admitted by other.test: her failed sign-ins,
    // recorded before she was a user, are hers.
    let mallory = Browser::new(env.gw.public_addr);
    assert_eq!(at_provider(&mallory, "http://app.test/", "mallory").await.status, 403);
    let l = at_provider(&mallory, "http://other.test/", "mallory").await;
    assert_eq!((l.url.as_str(), l.status), ("http://other.test/", 200));
    let jwt = mallory.cookie("other.test", "CF_Authorization").unwrap();
    let claims = verify_with_certs(&mallory, "other.test", &jwt, other["aud"].as_str().unwrap()).await;
    let path = format!("/access/users/{}/failed_logins", claims["sub"].as_str().unwrap());
    let failed = env.api(reqwest::Method::GET, &path, None).await;
    assert_eq!(failed.as_array().map(Vec::len), Some(1), "{failed}");
    assert_eq!(failed[0]["metadata"]["app_name"], "app.test");
    assert_eq!(failed[0]["metadata"]["reason_code"], "policy_denied");

    // The IdP test page through this provider: a fresh sign-in, and the identity received.
    let admin = Browser::new(env.gw.public_addr);
    let test_url = format!("{TEAM}/cdn-cgi/access/test-idp/{}", idp["id"].as_str().unwrap());
    let l = at_provider(&admin, &test_url, "alice").await;
    assert!(l.visited.iter().any(|u| u.starts_with(&format!("{issuer}/auth?")) && u.contains("prompt=login")));
    let page = l.body;
    assert!(page.contains("Your connection works!"), "{page}");
    assert!(page.contains("alice@example.org") && page.contains("Research") && page.contains("engineering"), "{page}");

    // PKCE is really used: with it off, this provider (which requires it) refuses.
    let path = format!("/access/identity_providers/{}", idp["id"].as_str().unwrap());
    env.api(reqwest::Method::PUT, &path, Some(env.idp_body(&issuer, false).await)).await;
    let carol = Browser::new(env.gw.public_addr);
    let l = at_provider(&carol, "http://app.test/", "alice").await;
    assert!(l.url.starts_with(&format!("{TEAM}/cdn-cgi/access/callback?error=invalid_request")), "{}", l.url);
    assert_eq!(l.status, 401);
}

/// Without Node.js too: the sign-in routes answer through the gateway's own listener (they
/// once answered 500 there, nested under its wildcard route).
#[tokio::test]
async fn sign_in_routes_answer_through_the_gateway_listener() {
    let env = Env::start().await;
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let body = json!({
        "name": "Unreachable", "type": "oidc",
        "config": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "auth_url": format!("{dead}/auth"),
                   "token_url": format!("{dead}/token"), "certs_url": format!("{dead}/jwks"), "pkce_enabled": true}
    });
    let idp = env.api(reqwest::Method::POST, "/access/identity_providers", Some(body)).await;
    let app = env.add_app("app.test", email("alice@example.org")).await;
    let browser = Browser::new(env.gw.public_addr);
    let login = format!("{TEAM}/cdn-cgi/access/login/app.test?kid={}&redirect_url=%2F", app["aud"].as_str().unwrap());
    let r = browser.get(&login).await;
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"].to_str().unwrap().starts_with(&format!("{dead}/auth?")));
    assert!(browser.cookie("auth.test", "CF_Session").is_some());
    let r = browser.get(&format!("{TEAM}/cdn-cgi/access/test-idp/{}", idp["id"].as_str().unwrap())).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("data-code=\"idp_unreachable\"") && page.contains(&format!("{dead}/auth")), "{page}");
    let r = browser.get(&format!("{TEAM}/cdn-cgi/access/test-idp/not-an-id")).await;
    assert_eq!(r.status(), 404);
}

/// Signs in at the Entra emulator's form as `upn`.
async fn at_entra(browser: &Browser, url: &str, upn: &str) -> Landed {
    browser.open_and_sign_in(url, "signin", &[("username", upn), ("password", DEMO_PASSWORD)]).await
}

/// The Entra ID emulator as an `azureAD` identity provider of the gateway (its hosts set as
/// `entra.clouds.default`): users with and without a mailbox, in nested groups and in more
/// than 200 groups, reach the origin behind group policies.
#[tokio::test]
async fn sign_in_through_the_entra_emulator_reaches_the_origin() {
    use gatehouse_entra_sim::{EntraSim, Tenant, tenant::AppUpdate};
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
    let env = Env::start_with(|c| {
        let url = |u: &str| url::Url::parse(u).unwrap();
        c.entra.clouds.insert(
            "default".into(),
            CloudEndpoints { login_url: url(sim.login_url()), graph_url: url(sim.graph_url()) },
        );
    })
    .await;
    let body = json!({
        "name": "Contoso", "type": "azureAD",
        "config": {"client_id": client_id, "client_secret": secret, "directory_id": sim.tenant_id(),
                   "support_groups": true, "pkce_enabled": true}
    });
    let idp = env.api(reqwest::Method::POST, "/access/identity_providers", Some(body)).await;
    let wiki =
        env.add_app("wiki.test", json!([{"azureAD": {"id": ENGINEERING, "identity_provider_id": idp["id"]}}])).await;
    let open = env.add_app("open.test", json!([{"everyone": {}}])).await;

    // Alice is in Platform, nested in Engineering.
    let alice = Browser::new(env.gw.public_addr);
    let l = at_entra(&alice, "http://wiki.test/docs", "alice@contoso.onmicrosoft.com").await;
    assert_eq!((l.url.as_str(), l.status), ("http://wiki.test/docs", 200), "{}\n{:#?}", l.body, l.visited);
    assert!(
        l.visited.iter().any(|u| u.contains("/oauth2/v2.0/authorize?") && u.contains("code_challenge_method=S256"))
    );
    let seen: Value = serde_json::from_str(&l.body).unwrap();
    assert_eq!(seen["headers"]["cf-access-authenticated-user-email"], "alice@contoso.com");
    let jwt = alice.cookie("wiki.test", "CF_Authorization").unwrap();
    assert_eq!(seen["headers"]["cf-access-jwt-assertion"], json!(jwt));
    let claims = verify_with_certs(&alice, "wiki.test", &jwt, wiki["aud"].as_str().unwrap()).await;
    assert_eq!(claims["email"], "alice@contoso.com");
    let id: Value = alice.get("http://wiki.test/cdn-cgi/access/get-identity").await.json().await.unwrap();
    assert_eq!(id["idp"]["type"], "azureAD");
    assert!(id["groups"].as_array().unwrap().iter().any(|g| g["id"] == ENGINEERING), "{id}");

    // Bob has no mailbox: his UPN is his e-mail. Sales is not Engineering; everyone is fine.
    let bob = Browser::new(env.gw.public_addr);
    assert_eq!(at_entra(&bob, "http://wiki.test/", "bob@contoso.onmicrosoft.com").await.status, 403);
    let l = at_entra(&bob, "http://open.test/", "bob@contoso.onmicrosoft.com").await;
    assert_eq!((l.url.as_str(), l.status), ("http://open.test/", 200), "{}", l.body);
    let seen: Value = serde_json::from_str(&l.body).unwrap();
    assert_eq!(seen["headers"]["cf-access-authenticated-user-email"], "bob@contoso.onmicrosoft.com");
    let jwt = bob.cookie("open.test", "CF_Authorization").unwrap();
    verify_with_certs(&bob, "open.test", &jwt, open["aud"].as_str().unwrap()).await;

    // Dave is in 252 groups: the token has an overage, and groups come from Graph.
    let dave = Browser::new(env.gw.public_addr);
    let l = at_entra(&dave, "http://wiki.test/", "dave@contoso.onmicrosoft.com").await;
    assert_eq!((l.url.as_str(), l.status), ("http://wiki.test/", 200), "{}", l.body);
    let id: Value = dave.get("http://wiki.test/cdn-cgi/access/get-identity").await.json().await.unwrap();
    let groups = id["groups"].as_array().unwrap();
    assert!(groups.len() >= 252, "{}", groups.len());
    assert!(groups.iter().any(|g| g["id"] == ENGINEERING && g["name"] == "Engineering"), "names from Graph");
}
