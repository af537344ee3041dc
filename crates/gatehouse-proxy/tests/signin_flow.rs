//! The sign-in flow end to end over real HTTP on loopback: a scripted browser (explicit
//! cookies, no automatic redirects) signs in to an application through the Entra ID emulator,
//! and the resulting application token validates against `/cdn-cgi/access/certs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_core::app::{AppSettings, Application};
use gatehouse_core::idp::{IdentityProvider, IdpConfig, IdpType, ScimSettings};
use gatehouse_core::policy::PolicyDecision;
use gatehouse_core::policy::Rule;
use gatehouse_core::policy::input::{RuleSet, StoredPolicy};
use gatehouse_core::secret::{SecretKey, SecretString};
use gatehouse_core::{AppId, IdpId};
use gatehouse_entra_sim::{EntraSim, RunningSim, Tenant};
use gatehouse_oidc::{CloudOverrides, CloudUrls, OidcClient, OidcOptions};
use gatehouse_proxy::keys::{self, KeyRingHandle};
use gatehouse_proxy::routes::{self, RoutesHandle};
use gatehouse_proxy::signin::{SignInState, TeamDomain};
use gatehouse_store::{AppPolicies, AppStore, IdpStore, PolicyStore, Store};
use gatehouse_testkit::TestDb;

const TENANT: &str = include_str!("../../gatehouse-entra-sim/tenants/demo.toml");
const PASSWORD: &str = "Passw0rd!";

struct Env {
    port: u16,
    aud: String,
    keys: KeyRingHandle,
    http: reqwest::Client,
    sim: RunningSim,
    store: Store,
    idp: IdentityProvider,
    _db: TestDb,
}

async fn env() -> Env {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let port = addr.port();
    let team = format!("http://auth.localhost:{port}");

    let sim = EntraSim::start(Tenant::from_toml_str(TENANT).unwrap(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (client_id, secret) = sim
        .tenant()
        .read(|t| t.apps().next().map(|a| (a.client_id, a.secrets[0].value().expose().to_owned())))
        .unwrap();
    sim.tenant()
        .edit(|t| {
            t.update_app(
                client_id,
                gatehouse_entra_sim::tenant::AppUpdate {
                    redirect_uris: Some(vec![format!("{team}/cdn-cgi/access/callback")]),
                    ..Default::default()
                },
            )
        })
        .unwrap();
    let engineering =
        sim.tenant().read(|t| t.groups().find(|g| g.display_name == "Engineering").map(|g| g.id)).unwrap();

    let db = TestDb::sqlite();
    let store = Store::connect(db.url(), SecretKey::generate().unwrap()).await.unwrap();
    let idp = IdentityProvider {
        id: IdpId::generate(),
        name: "Entra".into(),
        kind: IdpType::AzureAd,
        config: IdpConfig {
            client_id: client_id.to_string(),
            directory_id: Some(sim.tenant_id()),
            support_groups: true,
            pkce_enabled: true,
            ..IdpConfig::default()
        },
        client_secret: SecretString::new(secret),
        scim: ScimSettings::default(),
        scim_secret_hash: None,
        created_at: 0,
        updated_at: 0,
    };
    store.insert_idp(&idp).await.unwrap();
    let app = Application {
        id: AppId::generate(),
        name: "Wiki".into(),
        domain: format!("app.localhost:{port}"),
        destinations: vec![format!("app.localhost:{port}")],
        aud: gatehouse_core::app::generate_aud().unwrap(),
        settings: AppSettings {
            session_duration: "8h".parse().unwrap(),
            allowed_idps: vec![],
            auto_redirect_to_identity: false,
            same_site_cookie_attribute: None,
            http_only_cookie_attribute: true,
            path_cookie_attribute: false,
            enable_binding_cookie: false,
            service_auth_401_redirect: false,
            custom_deny_message: None,
        },
        created_at: 0,
        updated_at: 0,
    };
    store.insert_app(&app).await.unwrap();
    let policy = StoredPolicy {
        id: uuid::Uuid::new_v4(),
        name: "Engineering".into(),
        decision: PolicyDecision::Allow,
        rules: RuleSet {
            include: vec![Rule::AzureGroup { id: engineering.to_string(), idp: None }],
            ..RuleSet::default()
        },
        session_duration: None,
        reusable: false,
        created_at: 0,
        updated_at: 0,
    };
    store
        .set_app_policies(app.id, &AppPolicies { owned: vec![policy.clone()], links: vec![(policy.id, 1)] })
        .await
        .unwrap();

    // US Government stands for an unreachable IdP: nothing listens at its hosts.
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let overrides = CloudOverrides::none()
        .with(
            gatehouse_core::idp::AzureCloud::Global,
            CloudUrls {
                login_url: sim.login_url().to_owned(),
                graph_url: sim.graph_url().to_owned(),
                issuer_url: None,
            },
        )
        .with(
            gatehouse_core::idp::AzureCloud::UsGov,
            CloudUrls { login_url: dead.clone(), graph_url: dead, issuer_url: None },
        );
    let ring = keys::load_or_rotate(&store, keys::DEFAULT_ROTATION, gatehouse_core::now_millis()).await.unwrap();
    let keys = KeyRingHandle::new(ring);
    let state = SignInState {
        store: store.clone(),
        oidc: Arc::new(OidcClient::new(overrides, OidcOptions::default()).unwrap()),
        keys: keys.clone(),
        routes: RoutesHandle::new(routes::load(&store).await.unwrap()),
        team: TeamDomain::from_url(&url::Url::parse(&team).unwrap()),
    };
    let router = gatehouse_proxy::public::router(state);
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("auth.localhost", addr)
        .resolve("app.localhost", addr)
        .build()
        .unwrap();
    Env { port, aud: app.aud, keys, http, sim, store, idp, _db: db }
}

fn location(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 302, "expected a redirect");
    r.headers()["location"].to_str().unwrap().to_owned()
}

fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let (kv, _) = v.split_once(';').unwrap_or((v, ""));
        kv.strip_prefix(&format!("{name}=")).map(str::to_owned)
    })
}

/// Fills in the emulator's sign-in form (id `signin`) and returns its redirect.
async fn sign_in_at_idp(http: &reqwest::Client, authorize: &str, user: &str) -> reqwest::Response {
    let html = http.get(authorize).send().await.unwrap().text().await.unwrap();
    let form_at = html.find("id=\"signin\"").expect("sign-in form");
    let form_start = html[..form_at].rfind("<form").unwrap();
    let action_at = form_start + html[form_start..].find("action=\"").unwrap() + 8;
    let action = &html[action_at..action_at + html[action_at..].find('"').unwrap()];
    let flow_at = html.find("name=\"flow\" value=\"").unwrap() + 19;
    let flow = &html[flow_at..flow_at + html[flow_at..].find('"').unwrap()];
    let base = url::Url::parse(authorize).unwrap();
    let action = base.join(&action.replace("&amp;", "&")).unwrap();
    http.post(action)
        .form(&[("flow", flow.replace("&amp;", "&")), ("username", user.to_owned()), ("password", PASSWORD.to_owned())])
        .send()
        .await
        .unwrap()
}

/// Runs the flow up to the callback; returns the callback response and the session cookie.
async fn to_callback(env: &Env, user: &str, redirect_url: &str) -> reqwest::Response {
    let login = format!(
        "http://auth.localhost:{p}/cdn-cgi/access/login/app.localhost:{p}?kid={}&redirect_url={}",
        env.aud,
        url::form_urlencoded::byte_serialize(redirect_url.as_bytes()).collect::<String>(),
        p = env.port
    );
    let r = env.http.get(&login).send().await.unwrap();
    let authorize = location(&r);
    let session = set_cookie(&r, "CF_Session").expect("CF_Session cookie");
    let r = sign_in_at_idp(&env.http, &authorize, user).await;
    let callback = location(&r);
    assert!(
        callback.starts_with(&format!("http://auth.localhost:{}/cdn-cgi/access/callback?", env.port)),
        "{callback}"
    );
    let resp = env.http.get(&callback).header("cookie", format!("CF_Session={session}")).send().await.unwrap();
    // The same callback again (a replay) is refused.
    let replay = env.http.get(&callback).header("cookie", format!("CF_Session={session}")).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    resp
}

#[tokio::test]
async fn member_of_a_nested_group_signs_in_and_gets_a_valid_app_token() {
    let env = env().await;
    // Alice is in Platform, which is nested in Engineering: the policy on Engineering admits her.
    let r = to_callback(&env, "alice@contoso.onmicrosoft.com", "/docs/page?x=1").await;
    let authorized = location(&r);
    assert!(set_cookie(&r, "CF_Authorization").is_some(), "team-domain session cookie");
    assert!(
        authorized.starts_with(&format!("http://app.localhost:{}/cdn-cgi/access/authorized?code=", env.port)),
        "{authorized}"
    );

    let r = env.http.get(&authorized).send().await.unwrap();
    assert_eq!(location(&r), "/docs/page?x=1");
    let jwt = set_cookie(&r, "CF_Authorization").expect("application cookie");
    let all: Vec<_> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(
        all.iter().any(|c| c.starts_with("CF_Authorization=") && c.contains("HttpOnly") && c.contains("SameSite=Lax")),
        "{all:?}"
    );

    let claims = gatehouse_proxy::token::verify(
        &env.keys.load(),
        &jwt,
        &format!("http://auth.localhost:{}", env.port),
        &env.aud,
    )
    .unwrap();
    assert_eq!((claims.email.as_str(), claims.kind.as_str()), ("alice@contoso.com", "app"));
    // The same key is published for origins.
    let certs: serde_json::Value = env
        .http
        .get(format!("http://app.localhost:{}/cdn-cgi/access/certs", env.port))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(&jwt).unwrap().kid.unwrap();
    assert!(certs["keys"].as_array().unwrap().iter().any(|k| k["kid"] == kid.as_str()));

    // The one-time code cannot be used twice.
    let again = env.http.get(&authorized).send().await.unwrap();
    assert_eq!(again.status(), 400);
}

#[tokio::test]
async fn outsiders_are_denied_and_redirects_stay_on_the_host() {
    let env = env().await;
    // Bob (Sales) is not in Engineering.
    let r = to_callback(&env, "bob@contoso.onmicrosoft.com", "/").await;
    assert_eq!(r.status(), 403);
    assert!(set_cookie(&r, "CF_Authorization").is_none());

    // An open-redirect attempt ends on the application's own root.
    let r = to_callback(&env, "erin@contoso.onmicrosoft.com", "//evil.example/steal").await;
    let authorized = location(&r);
    let r = env.http.get(&authorized).send().await.unwrap();
    assert_eq!(location(&r), "/");
}

#[tokio::test]
async fn bad_starts_and_callbacks_are_refused_plainly() {
    let env = env().await;
    let p = env.port;
    let get = |u: String| {
        let http = env.http.clone();
        async move { http.get(u).send().await.unwrap() }
    };
    assert_eq!(
        get(format!("http://auth.localhost:{p}/cdn-cgi/access/login/app.localhost:{p}?kid=unknown")).await.status(),
        400
    );
    assert_eq!(
        get(format!("http://auth.localhost:{p}/cdn-cgi/access/login/other.localhost:{p}?kid={}", env.aud))
            .await
            .status(),
        400
    );
    // Login is only on the team domain.
    assert_eq!(
        get(format!("http://app.localhost:{p}/cdn-cgi/access/login/app.localhost:{p}?kid={}", env.aud)).await.status(),
        404
    );
    // A callback without the browser's session cookie is refused.
    assert_eq!(get(format!("http://auth.localhost:{p}/cdn-cgi/access/callback?code=x&state=y")).await.status(), 400);
    assert_eq!(get(format!("http://app.localhost:{p}/cdn-cgi/access/authorized?code=nope")).await.status(), 400);
}

#[tokio::test]
async fn identity_single_sign_on_and_logout_everywhere() {
    let env = env().await;
    let p = env.port;
    let r = to_callback(&env, "alice@contoso.onmicrosoft.com", "/").await;
    let team_cookie = set_cookie(&r, "CF_Authorization").unwrap();
    let r = env.http.get(location(&r)).send().await.unwrap();
    let app_cookie = set_cookie(&r, "CF_Authorization").unwrap();

    // get-identity on the application host: the full identity, as bare JSON.
    let identity = |host: &'static str, cookie: String| {
        let http = env.http.clone();
        async move {
            http.get(format!("http://{host}:{p}/cdn-cgi/access/get-identity"))
                .header("cookie", format!("CF_Authorization={cookie}"))
                .send()
                .await
                .unwrap()
        }
    };
    let r = identity("app.localhost", app_cookie.clone()).await;
    assert_eq!(r.status(), 200);
    let id: serde_json::Value = r.json().await.unwrap();
    assert_eq!(id["email"], "alice@contoso.com");
    assert!(id["groups"].as_array().is_some_and(|g| g.len() >= 2), "{id}");
    assert_eq!(id["idp"]["type"], "azureAD");
    assert!(id["user_uuid"].is_string() && id["account_id"].is_string());
    // A team-domain token is not an application token.
    assert_eq!(identity("app.localhost", team_cookie.clone()).await.status(), 401);
    assert_eq!(identity("auth.localhost", team_cookie.clone()).await.status(), 200);

    // Single sign-on: with the team-domain session, login goes straight back to the app.
    let login =
        format!("http://auth.localhost:{p}/cdn-cgi/access/login/app.localhost:{p}?kid={}&redirect_url=/again", env.aud);
    let r = env.http.get(&login).header("cookie", format!("CF_Authorization={team_cookie}")).send().await.unwrap();
    let next = location(&r);
    assert!(next.starts_with(&format!("http://app.localhost:{p}/cdn-cgi/access/authorized?code=")), "{next}");
    let r = env.http.get(&next).send().await.unwrap();
    assert_eq!(location(&r), "/again");

    // Logging out on the application revokes the session everywhere.
    let r = env
        .http
        .get(format!("http://app.localhost:{p}/cdn-cgi/access/logout"))
        .header("cookie", format!("CF_Authorization={app_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("CF_Authorization=;")));
    assert_eq!(identity("app.localhost", app_cookie).await.status(), 401);
    assert_eq!(identity("auth.localhost", team_cookie.clone()).await.status(), 401);
    let r = env.http.get(&login).header("cookie", format!("CF_Authorization={team_cookie}")).send().await.unwrap();
    assert!(!location(&r).contains("/cdn-cgi/access/authorized"), "a revoked session gives no single sign-on");
}

/// Runs `/cdn-cgi/access/test-idp/<id>` as `user` and returns the result page.
async fn test_idp(env: &Env, user: &str) -> String {
    let start = env
        .http
        .get(format!("http://auth.localhost:{}/cdn-cgi/access/test-idp/{}", env.port, env.idp.id))
        .send()
        .await
        .unwrap();
    if start.status() != 302 {
        return start.text().await.unwrap();
    }
    let authorize = location(&start);
    assert!(authorize.contains("prompt=login"), "the test forces a fresh sign-in: {authorize}");
    let session = set_cookie(&start, "CF_Session").unwrap();
    let r = sign_in_at_idp(&env.http, &authorize, user).await;
    let callback = location(&r);
    env.http
        .get(&callback)
        .header("cookie", format!("CF_Session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn diagnosis_code(page: &str) -> Option<&str> {
    let at = page.find("data-code=\"")? + 11;
    Some(&page[at..at + page[at..].find('"')?])
}

#[tokio::test]
async fn idp_test_shows_the_identity_or_the_diagnosis() {
    let env = env().await;
    let page = test_idp(&env, "alice@contoso.onmicrosoft.com").await;
    assert!(page.contains("Your connection works!"), "{page}");
    assert!(page.contains("alice@contoso.com") && page.contains("E-mail taken from claim"), "{page}");

    // The secret's ID pasted instead of its value.
    let secret_id = env.sim.tenant().read(|t| t.apps().next().map(|a| a.secrets[0].id)).unwrap();
    let mut wrong = env.idp.clone();
    wrong.client_secret = SecretString::new(secret_id.to_string());
    env.store.replace_idp(&wrong).await.unwrap();
    let page = test_idp(&env, "alice@contoso.onmicrosoft.com").await;
    assert_eq!(diagnosis_code(&page), Some("client_secret_is_secret_id"), "{page}");
    env.store.replace_idp(&env.idp).await.unwrap();

    // Admin consent not granted.
    let client_id = env.sim.tenant().read(|t| t.apps().next().map(|a| a.client_id)).unwrap();
    let edit = |update: gatehouse_entra_sim::tenant::AppUpdate| {
        env.sim.tenant().edit(|t| t.update_app(client_id, update)).unwrap()
    };
    edit(gatehouse_entra_sim::tenant::AppUpdate { admin_consent: Some(false), ..Default::default() });
    let page = test_idp(&env, "alice@contoso.onmicrosoft.com").await;
    assert_eq!(diagnosis_code(&page), Some("consent_required"), "{page}");
    edit(gatehouse_entra_sim::tenant::AppUpdate { admin_consent: Some(true), ..Default::default() });

    // Redirect URI not registered: diagnosed before anyone signs in, naming the URI.
    edit(gatehouse_entra_sim::tenant::AppUpdate {
        redirect_uris: Some(vec!["https://elsewhere.example/cb".into()]),
        ..Default::default()
    });
    let page = test_idp(&env, "alice@contoso.onmicrosoft.com").await;
    assert_eq!(diagnosis_code(&page), Some("redirect_uri_mismatch"), "{page}");
    assert!(page.contains(&format!("http://auth.localhost:{}/cdn-cgi/access/callback", env.port)), "{page}");

    // Unknown IdP id.
    let r = env
        .http
        .get(format!("http://auth.localhost:{}/cdn-cgi/access/test-idp/{}", env.port, IdpId::generate()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn overage_user_signs_in_through_graph_and_bad_cookies_are_refused() {
    let env = env().await;
    let p = env.port;
    // Dave is in 252 groups: the ID token carries an overage and groups come from Graph.
    let r = to_callback(&env, "dave@contoso.onmicrosoft.com", "/").await;
    let r = env.http.get(location(&r)).send().await.unwrap();
    let jwt = set_cookie(&r, "CF_Authorization").expect("Dave is in Engineering directly");
    let get_identity = |cookie: String| {
        let http = env.http.clone();
        async move {
            http.get(format!("http://app.localhost:{p}/cdn-cgi/access/get-identity"))
                .header("cookie", format!("CF_Authorization={cookie}"))
                .send()
                .await
                .unwrap()
        }
    };
    let id: serde_json::Value = get_identity(jwt.clone()).await.json().await.unwrap();
    assert!(id["groups"].as_array().is_some_and(|g| g.len() >= 252), "all groups, through Graph paging");
    assert!(id["groups"].as_array().unwrap().iter().any(|g| g["name"] == "Engineering"), "names recorded from Graph");

    // Tampered payload, truncated signature, garbage: all refused.
    let mut parts: Vec<&str> = jwt.split('.').collect();
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"email":"mallory@example.com"}"#,
    );
    parts[1] = &forged;
    assert_eq!(get_identity(parts.join(".")).await.status(), 401);
    assert_eq!(get_identity(jwt[..jwt.len() - 4].to_owned()).await.status(), 401);
    assert_eq!(get_identity("not-a-token".into()).await.status(), 401);
    // A valid token for another application (another aud) is refused on this one.
    let mut other =
        gatehouse_proxy::token::verify(&env.keys.load(), &jwt, &format!("http://auth.localhost:{p}"), &env.aud)
            .unwrap();
    other.aud = vec!["f".repeat(64)];
    let foreign = gatehouse_proxy::token::sign(&env.keys.load(), &other).unwrap();
    assert_eq!(get_identity(foreign).await.status(), 401);
    // An expired token is refused.
    let mut old =
        gatehouse_proxy::token::verify(&env.keys.load(), &jwt, &format!("http://auth.localhost:{p}"), &env.aud)
            .unwrap();
    old.exp = old.iat - 3600;
    old.nbf = old.iat - 7200;
    let expired = gatehouse_proxy::token::sign(&env.keys.load(), &old).unwrap();
    assert_eq!(get_identity(expired).await.status(), 401);
}

/// The diagnosis section of a test-idp result page: its code, and the page for the words.
fn assert_diagnosis(page: &str, code: &str, words: &[&str]) {
    assert_eq!(diagnosis_code(page), Some(code), "{page}");
    assert!(page.contains("How to fix it"), "{page}");
    for w in words {
        assert!(page.contains(w), "the page should say {w:?}:\n{page}");
    }
}

#[tokio::test]
async fn idp_test_diagnoses_an_expired_secret() {
    let env = env().await;
    let client_id = env.sim.tenant().read(|t| t.apps().next().map(|a| a.client_id)).unwrap();
    // A new secret that has already expired, made through the emulator's admin API.
    let created: serde_json::Value = env
        .http
        .post(format!("{}/apps/{client_id}/secrets", env.sim.admin_url()))
        .json(&serde_json::json!({"expires": "2020-01-01"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let value = created["value"].as_str().unwrap().to_owned();
    let mut idp = env.idp.clone();
    idp.client_secret = SecretString::new(value);
    env.store.replace_idp(&idp).await.unwrap();
    let page = test_idp(&env, "alice@contoso.onmicrosoft.com").await;
    assert_diagnosis(
        &page,
        "client_secret_expired",
        &["The Application Secret has expired", "create a new client secret"],
    );
    assert!(page.contains("AADSTS7000222"), "Entra's own message is shown: {page}");
}

#[tokio::test]
async fn idp_test_diagnoses_a_missing_graph_permission() {
    let env = env().await;
    let client_id = env.sim.tenant().read(|t| t.apps().next().map(|a| a.client_id)).unwrap();
    env.sim
        .tenant()
        .edit(|t| {
            t.update_app(
                client_id,
                gatehouse_entra_sim::tenant::AppUpdate {
                    graph_permissions: Some(vec![
                        "openid".into(),
                        "profile".into(),
                        "email".into(),
                        "User.Read".into(),
                    ]),
                    ..Default::default()
                },
            )
        })
        .unwrap();
    // Dave's 252 groups do not fit in the token: they must be read from Microsoft Graph.
    let page = test_idp(&env, "dave@contoso.onmicrosoft.com").await;
    assert_diagnosis(&page, "graph_permission_missing", &["may not read group memberships", "GroupMember.Read.All"]);
}

#[tokio::test]
async fn idp_test_diagnoses_a_wrong_directory_id() {
    let env = env().await;
    let mut idp = env.idp.clone();
    let wrong = uuid::Uuid::new_v4();
    idp.config.directory_id = Some(wrong);
    env.store.replace_idp(&idp).await.unwrap();
    // Entra shows this on its own page; the test finds it before anyone signs in.
    let page = test_idp(&env, "alice@contoso.onmicrosoft.com").await;
    assert_diagnosis(&page, "tenant_not_found", &["does not exist in this cloud", "Directory (tenant) ID"]);
    assert!(page.contains(&wrong.to_string()), "the configured directory id is shown: {page}");
}

#[tokio::test]
async fn idp_test_diagnoses_clock_skew() {
    let env = env().await;
    // The IdP's clock runs ten minutes ahead of the gateway's: its tokens are not valid yet.
    env.sim.advance_clock(std::time::Duration::from_secs(600));
    let page = test_idp(&env, "alice@contoso.onmicrosoft.com").await;
    assert_diagnosis(&page, "clock_skew", &["clocks of the gateway and the identity provider disagree", "NTP"]);
}

#[tokio::test]
async fn idp_test_diagnoses_an_unreachable_idp() {
    let env = env().await;
    let mut idp = env.idp.clone();
    idp.config.azure_cloud = gatehouse_core::idp::AzureCloud::UsGov;
    env.store.replace_idp(&idp).await.unwrap();
    let page = test_idp(&env, "alice@contoso.onmicrosoft.com").await;
    assert_diagnosis(
        &page,
        "idp_unreachable",
        &["cannot be reached", "connection was refused", "/oauth2/v2.0/authorize"],
    );
}

#[tokio::test]
async fn failed_sign_ins_are_recorded_with_the_reason() {
    use gatehouse_store::FailedLoginStore as _;
    let env = env().await;
    let now = || gatehouse_core::now_millis();
    // Denied by the application's policies: the IdP named the user, so the record is theirs.
    let r = to_callback(&env, "bob@contoso.onmicrosoft.com", "/").await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    let ray_at = page.find("Ray ID: ").expect("the denial page shows its Ray ID") + 8;
    let ray = &page[ray_at..ray_at + 16];
    let tid = env.sim.tenant_id();
    let bob = env.sim.tenant().read(|t| t.user_by_upn("bob@contoso.onmicrosoft.com").map(|u| u.id)).unwrap();
    let got = env.store.failed_logins(env.idp.id, &format!("entra:{tid}:{bob}"), now(), 10).await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    let f = &got[0];
    assert_eq!(f.reason_code, "policy_denied");
    assert_eq!(f.ray_id, ray);
    assert_eq!(f.email.as_deref(), Some("bob@contoso.onmicrosoft.com"), "Bob has no mail: the UPN is his e-mail");
    assert_eq!((f.app_name.as_deref(), f.aud.as_deref()), (Some("Wiki"), Some(env.aud.as_str())));
    assert_eq!((f.idp_id, f.ip_address.as_str()), (Some(env.idp.id), "127.0.0.1"));
    assert!(f.expires_at - f.created_at >= 30 * 24 * 3_600_000, "kept for 30 days");

    // The IdP refuses (consent revoked): recorded without a user, with the diagnosis.
    let client_id = env.sim.tenant().read(|t| t.apps().next().map(|a| a.client_id)).unwrap();
    let edit = |consent: bool| {
        env.sim
            .tenant()
            .edit(|t| {
                t.update_app(
                    client_id,
                    gatehouse_entra_sim::tenant::AppUpdate { admin_consent: Some(consent), ..Default::default() },
                )
            })
            .unwrap()
    };
    edit(false);
    let r = to_callback(&env, "alice@contoso.onmicrosoft.com", "/").await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("Ray ID: "));
    let recent = env.store.recent_failed_logins(now(), 10).await.unwrap();
    assert_eq!(recent[0].reason_code, "consent_required", "{recent:?}");
    assert_eq!((recent[0].subject.as_deref(), recent[0].email.as_deref()), (None, None));
    assert!(recent[0].reason.contains("Admin consent has not been granted"), "{}", recent[0].reason);
    edit(true);

    // The ID token fails validation (the IdP's clock is ahead): recorded as clock skew.
    env.sim.advance_clock(std::time::Duration::from_secs(600));
    let r = to_callback(&env, "alice@contoso.onmicrosoft.com", "/").await;
    assert_eq!(r.status(), 401);
    let recent = env.store.recent_failed_logins(now(), 10).await.unwrap();
    assert_eq!(recent[0].reason_code, "clock_skew", "{recent:?}");
    assert_eq!(recent.len(), 3);

    // IdP tests are diagnostics, not sign-ins: not recorded.
    let _ = test_idp(&env, "alice@contoso.onmicrosoft.com").await;
    assert_eq!(env.store.recent_failed_logins(now(), 10).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_callback_is_bound_to_the_browser_that_started_the_sign_in() {
    use gatehouse_store::FailedLoginStore as _;
    let env = env().await;
    let p = env.port;
    let login = format!("http://auth.localhost:{p}/cdn-cgi/access/login/app.localhost:{p}?kid={}", env.aud);
    // The attacker starts a sign-in and gets a genuine callback URL for it...
    let r = env.http.get(&login).send().await.unwrap();
    let (authorize, attacker) = (location(&r), set_cookie(&r, "CF_Session").unwrap());
    let callback = location(&sign_in_at_idp(&env.http, &authorize, "erin@contoso.onmicrosoft.com").await);
    // ...and slips it to a victim whose browser has a sign-in of its own in progress.
    let r = env.http.get(&login).send().await.unwrap();
    let victim = set_cookie(&r, "CF_Session").unwrap();
    let r = env.http.get(&callback).header("cookie", format!("CF_Session={victim}")).send().await.unwrap();
    assert_eq!(r.status(), 401, "the state belongs to another browser's sign-in");
    assert!(set_cookie(&r, "CF_Authorization").is_none());
    let recent = env.store.recent_failed_logins(gatehouse_core::now_millis(), 10).await.unwrap();
    assert_eq!(recent[0].reason_code, "state_mismatch", "{recent:?}");
    // The browser that started it still completes it.
    let r = env.http.get(&callback).header("cookie", format!("CF_Session={attacker}")).send().await.unwrap();
    assert!(location(&r).contains("/cdn-cgi/access/authorized?code="));
}

#[tokio::test]
async fn a_user_deactivated_by_scim_is_refused_at_sign_in_and_recorded() {
    use gatehouse_store::{FailedLoginStore as _, ScimStore as _, ScimUserRecord};
    let env = env().await;
    let mut idp = env.idp.clone();
    idp.scim = ScimSettings { enabled: true, user_deprovision: true, ..ScimSettings::default() };
    env.store.replace_idp(&idp).await.unwrap();
    // Entra's provisioning service deactivated Erin (externalId = her object id).
    let erin = env.sim.tenant().read(|t| t.user_by_upn("erin@contoso.onmicrosoft.com").map(|u| u.id)).unwrap();
    env.store
        .scim_insert_user(&ScimUserRecord {
            id: uuid::Uuid::new_v4().to_string(),
            idp_id: idp.id,
            user_name: "erin@contoso.onmicrosoft.com".into(),
            external_id: Some(erin.to_string()),
            display_name: Some("Erin Engineer".into()),
            email: Some("erin@contoso.com".into()),
            active: false,
            resource: serde_json::json!({}),
            version: 1,
            created_at: 1,
            updated_at: 1,
        })
        .await
        .unwrap();
    let r = to_callback(&env, "erin@contoso.onmicrosoft.com", "/").await;
    assert_eq!(r.status(), 403, "Erin's policies would admit her; the deactivation refuses her");
    assert!(set_cookie(&r, "CF_Authorization").is_none());
    let page = r.text().await.unwrap();
    assert!(page.contains("deactivated") && page.contains("Ray ID: "), "{page}");
    let subject = format!("entra:{}:{erin}", env.sim.tenant_id());
    let got = env.store.failed_logins(idp.id, &subject, gatehouse_core::now_millis(), 10).await.unwrap();
    assert_eq!(got.iter().map(|f| f.reason_code.as_str()).collect::<Vec<_>>(), ["scim_deactivated"], "{got:?}");
    assert_eq!(got[0].email.as_deref(), Some("erin@contoso.com"));
}
