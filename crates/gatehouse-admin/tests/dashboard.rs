//! The dashboard through `oneshot()`: sign-in with an API token, the session cookie's
//! attributes, CSRF and Origin checks on every change, read-only sessions, and forms that
//! keep the input and name the field on a validation error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use gatehouse_admin::{AdminState, SESSION_COOKIE, router};
use gatehouse_core::TokenId;
use gatehouse_core::secret::{SecretKey, hash_bearer_secret};
use gatehouse_store::{ApiToken, DashboardSessionStore, IdpFilter, IdpStore, OrgStore, Page, Store, TokenStore};
use gatehouse_testkit::TestDb;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

const RW: &str = "gth_dashboard-read-write";
const RO: &str = "gth_dashboard-read-only";
const HOST: &str = "127.0.0.1:9090";
const ORIGIN: &str = "http://127.0.0.1:9090";

struct Dash {
    app: Router,
    store: Store,
    _db: TestDb,
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn dash() -> Dash {
    let db = TestDb::sqlite();
    let store = Store::connect(db.url(), SecretKey::generate().unwrap()).await.unwrap();
    for (secret, read_only) in [(RW, false), (RO, true)] {
        let t = ApiToken {
            id: TokenId::generate(),
            name: "test".into(),
            secret_hash: hash_bearer_secret(secret),
            read_only,
            created_at: 0,
            last_used_at: None,
        };
        store.insert_token(&t).await.unwrap();
    }
    let state = AdminState {
        store: store.clone(),
        account_id: store.account_id().await.unwrap(),
        public_url: url::Url::parse("http://auth.localhost:8080").unwrap(),
        metrics: None,
        ingress_file: std::sync::Arc::default(),
    };
    Dash { app: router(state), store, _db: db }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The value of `name="..." value="..."` of the first hidden input called `name`.
fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker).unwrap_or_else(|| panic!("no {name} in {body}")) + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

fn set_cookie<'a>(r: &'a Resp, name: &str) -> &'a str {
    r.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set: {:?}", r.headers))
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap().split_once('=').unwrap().1
}

impl Dash {
    async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Resp { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Resp {
        let mut req = Request::builder().uri(path).header(header::HOST, HOST);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, cookie: Option<&str>, origin: Option<&str>, body: String) -> Resp {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, HOST)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    /// Signs in with `token`; returns the `Cookie` header value and the CSRF token.
    async fn sign_in(&self, token: &str) -> (String, String) {
        let page = self.get("/login?next=/apps", None).await;
        assert_eq!(page.status, StatusCode::OK);
        let login_cookie = cookie_value(set_cookie(&page, "gatehouse_dashboard_login")).to_owned();
        let nonce = hidden(&page.body, "_login");
        let resp = self
            .post(
                "/login",
                Some(&format!("gatehouse_dashboard_login={login_cookie}")),
                Some(ORIGIN),
                form(&[("_login", &nonce), ("next", "/apps"), ("token", token)]),
            )
            .await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.body);
        assert_eq!(resp.headers[header::LOCATION], "/apps");
        let session = set_cookie(&resp, SESSION_COOKIE).to_owned();
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(session.contains(attr), "{attr} missing in {session}");
        }
        assert!(!session.contains("Secure"), "plain http must not get a Secure cookie: {session}");
        let cookie = format!("{SESSION_COOKIE}={}", cookie_value(&session));
        let home = self.get("/idps", Some(&cookie)).await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.body);
        (cookie, hidden(&home.body, "_csrf"))
    }
}

#[tokio::test]
async fn pages_need_a_session_and_sign_in_takes_a_valid_token() {
    let d = dash().await;
    let r = d.get("/no-such-page", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("No such page."), "{}", r.body);
    let r = d.get("/client/v4/no-such-route", None).await;
    assert!(r.body.contains("\"success\":false"), "the API keeps its own envelope: {}", r.body);
    let r = d.get("/apps?page=2", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/login?next=%2Fapps%3Fpage%3D2");

    // A wrong token: refused, and the token is not echoed back.
    let page = d.get("/login", None).await;
    let login_cookie =
        format!("gatehouse_dashboard_login={}", cookie_value(set_cookie(&page, "gatehouse_dashboard_login")));
    let nonce = hidden(&page.body, "_login");
    let wrong = "gth_not-a-real-token";
    let r = d.post("/login", Some(&login_cookie), Some(ORIGIN), form(&[("_login", &nonce), ("token", wrong)])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("That token is not valid") && !r.body.contains(wrong), "{}", r.body);

    // Without the login form's cookie, or from another origin: refused.
    let r = d.post("/login", None, Some(ORIGIN), form(&[("_login", &nonce), ("token", RW)])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = d
        .post("/login", Some(&login_cookie), Some("http://evil.example"), form(&[("_login", &nonce), ("token", RW)]))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // A valid token opens a session; the store keeps only the cookie's hash.
    let (cookie, csrf) = d.sign_in(RW).await;
    let value = cookie.split_once('=').unwrap().1;
    assert!(
        d.store.dashboard_session(&hash_bearer_secret(value), gatehouse_core::now_millis()).await.unwrap().is_some()
    );
    assert!(d.store.dashboard_session(value, gatehouse_core::now_millis()).await.unwrap().is_none());

    // Sign-out ends it everywhere: the same cookie no longer works.
    let r = d.post("/logout", Some(&cookie), Some(ORIGIN), form(&[("_csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(set_cookie(&r, SESSION_COOKIE).contains("Max-Age=0"));
    assert_eq!(d.get("/idps", Some(&cookie)).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_change_needs_the_csrf_token_and_the_dashboard_origin() {
    let d = dash().await;
    let (cookie, csrf) = d.sign_in(RW).await;
    let body = |csrf: &str| {
        form(&[
            ("_csrf", csrf),
            ("name", "Entra"),
            ("config.client_id", "c37d0163-d4a4-43a8-8b1e-1a2b3c4d5e6f"),
            ("config.client_secret", "a~secret-value"),
            ("config.directory_id", "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f"),
        ])
    };
    let count = || async { d.store.list_idps(IdpFilter::default(), Page::new(1, 10)).await.unwrap().total };
    let r = d.post("/idps/new?type=azureAD", Some(&cookie), Some(ORIGIN), body("wrong")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("security token"), "{}", r.body);
    let r = d.post("/idps/new?type=azureAD", Some(&cookie), Some(ORIGIN), body("")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = d.post("/idps/new?type=azureAD", Some(&cookie), Some("http://evil.example"), body(&csrf)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = d.post("/idps/new?type=azureAD", Some(&cookie), None, body(&csrf)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(count().await, 0, "nothing may be created by a refused request");

    // Another session's token does not work either.
    let (_, other_csrf) = d.sign_in(RW).await;
    assert_ne!(other_csrf, csrf);
    let r = d.post("/idps/new?type=azureAD", Some(&cookie), Some(ORIGIN), body(&other_csrf)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = d.post("/idps/new?type=azureAD", Some(&cookie), Some(ORIGIN), body(&csrf)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(count().await, 1);
    let page = d.get(r.headers[header::LOCATION].to_str().unwrap(), Some(&cookie)).await;
    assert!(page.body.contains("http://auth.localhost:8080/cdn-cgi/access/callback"), "redirect URI shown");
    assert!(page.body.contains("/cdn-cgi/access/test-idp/"), "test link shown");
    assert!(!page.body.contains("a~secret-value"), "the client secret is never shown");
}

#[tokio::test]
async fn read_only_tokens_can_look_but_not_change() {
    let d = dash().await;
    let (cookie, csrf) = d.sign_in(RO).await;
    let page = d.get("/idps", Some(&cookie)).await;
    assert!(page.body.contains("read-only"));
    let r = d.post("/keys/rotate", Some(&cookie), Some(ORIGIN), form(&[("_csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("read-only API token"), "{}", r.body);
    // Signing out is not a change.
    let r = d.post("/logout", Some(&cookie), Some(ORIGIN), form(&[("_csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn invalid_forms_keep_the_input_and_name_the_field() {
    let d = dash().await;
    let (cookie, csrf) = d.sign_in(RW).await;
    let r = d
        .post(
            "/idps/new?type=azureAD",
            Some(&cookie),
            Some(ORIGIN),
            form(&[
                ("_csrf", &csrf),
                ("name", "My <Entra>"),
                ("config.client_id", "not-a-guid"),
                ("config.client_secret", "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f"),
                ("config.directory_id", "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f"),
                ("scim_config.enabled", "on"),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("value=\"My &#60;Entra&#62;\"") || r.body.contains("value=\"My &lt;Entra&gt;\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("must be the Application (client) ID"), "{}", r.body);
    assert!(
        r.body.contains("looks like the secret&#39;s ID") || r.body.contains("looks like the secret's ID"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f\" name=\"config.client_secret"));

    // SCIM on: the secret is shown on the response that created it, and never again.
    let r = d
        .post(
            "/idps/new?type=azureAD",
            Some(&cookie),
            Some(ORIGIN),
            form(&[
                ("_csrf", &csrf),
                ("name", "Entra"),
                ("config.client_id", "c37d0163-d4a4-43a8-8b1e-1a2b3c4d5e6f"),
                ("config.client_secret", "a~secret-value"),
                ("config.directory_id", "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f"),
                ("scim_config.enabled", "on"),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let secret =
        r.body.split("id=\"scim-secret\" class=\"copyable\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert!(secret.starts_with("ghscim_"), "{secret}");
    let idp = d.store.list_idps(IdpFilter::default(), Page::new(1, 10)).await.unwrap().items.remove(0);
    assert!(gatehouse_core::secret::verify_bearer_secret(&secret, idp.scim_secret_hash.as_deref().unwrap()));
    let again = d.get(&format!("/idps/{}", idp.id), Some(&cookie)).await;
    assert!(!again.body.contains(&secret));
    assert!(again.body.contains(&format!("/populations/{}/scim/v2", idp.id)));

    // The policy builder: a bad rule is refused by the API's rule parser, beside its row.
    let r = d.post("/apps/new", Some(&cookie), Some(ORIGIN), form(&[("_csrf", &csrf), ("domain", "https://x")])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("must be host[/path] without a scheme"), "{}", r.body);
    let r = d
        .post(
            "/apps/new",
            Some(&cookie),
            Some(ORIGIN),
            form(&[
                ("_csrf", &csrf),
                ("domain", "wiki.localhost"),
                ("session_duration", "24h"),
                ("http_only_cookie_attribute", "on"),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let app = r.headers[header::LOCATION].to_str().unwrap().split('?').next().unwrap().to_owned();
    let row = |kind: &str, value: &str| {
        [
            ("rule.section", "include".to_owned()),
            ("rule.type", kind.to_owned()),
            ("rule.value", value.to_owned()),
            ("rule.claim", String::new()),
            ("rule.access_group", String::new()),
            ("rule.scim_group", String::new()),
            ("rule.idp", String::new()),
            ("rule.service_token", String::new()),
        ]
    };
    let mut pairs: Vec<(&str, String)> =
        vec![("_csrf", csrf.clone()), ("name", "Engineering".into()), ("decision", "allow".into())];
    pairs.extend(row("azureAD", "0a1b2c3d-0001-4e5f-8a9b-000000000001"));
    pairs.extend(row("ip", "300.1.1.1"));
    let body = |p: &[(&str, String)]| form(&p.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    let r = d.post(&format!("{app}/policies"), Some(&cookie), Some(ORIGIN), body(&pairs)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("&#39;ip.ip&#39; must be an IPv4 or IPv6 address")
            || r.body.contains("'ip.ip' must be an IPv4"),
        "{}",
        r.body
    );
    assert!(r.body.contains("value=\"0a1b2c3d-0001-4e5f-8a9b-000000000001\""), "input kept");
    pairs.truncate(pairs.len() - 8);
    let r = d.post(&format!("{app}/policies"), Some(&cookie), Some(ORIGIN), body(&pairs)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = d.get(&app, Some(&cookie)).await;
    assert!(page.body.contains("Entra group 0a1b2c3d-0001-4e5f-8a9b-000000000001"), "{}", page.body);
}

#[tokio::test]
async fn a_user_is_revoked_and_their_seat_taken_from_the_users_page() {
    use gatehouse_store::{SessionKind, SessionRecord, SessionStore, UserStore};
    let d = dash().await;
    let now = gatehouse_core::now_millis();
    let identity = serde_json::json!({"email": "ada@example.com", "groups": []});
    let idp = gatehouse_core::IdpId::generate();
    let user = d.store.record_sign_in(idp, "sub-ada", "ada@example.com", "Ada", &identity, now).await.unwrap();
    d.store
        .insert_session(&SessionRecord {
            nonce: "nonce-ada".into(),
            user_id: user.id,
            kind: SessionKind::Org,
            app_id: None,
            created_at: now,
            expires_at: now + 3_600_000,
            revoked_at: None,
        })
        .await
        .unwrap();
    let (cookie, csrf) = d.sign_in(RW).await;
    let list = d.get("/users?search=ada", Some(&cookie)).await;
    assert!(
        list.body.contains("ada@example.com") && list.body.contains(&format!("/users/{}", user.id)),
        "{}",
        list.body
    );
    let none = d.get("/users?search=nobody", Some(&cookie)).await;
    assert!(!none.body.contains("ada@example.com"));
    let page = d.get(&format!("/users/{}", user.id), Some(&cookie)).await;
    assert!(page.body.contains("id=\"sessions\""), "{}", page.body);

    let r = d.post(&format!("/users/{}/revoke", user.id), Some(&cookie), Some(ORIGIN), form(&[("_csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(d.store.live_session("nonce-ada", gatehouse_core::now_millis()).await.unwrap().is_none(), "revoked");
    assert!(d.store.revoked_nonces(gatehouse_core::now_millis()).await.unwrap().contains(&"nonce-ada".to_owned()));
    let page = d.get(&format!("/users/{}", user.id), Some(&cookie)).await;
    assert!(page.body.contains("id=\"no-sessions\""));

    let seat = |v: &'static str| form(&[("_csrf", &csrf), ("access_seat", v)]);
    let r = d.post(&format!("/users/{}/seat", user.id), Some(&cookie), Some(ORIGIN), seat("false")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!d.store.get_user(user.id).await.unwrap().unwrap().access_seat);
    let r = d.post(&format!("/users/{}/seat", user.id), Some(&cookie), Some(ORIGIN), seat("maybe")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("access_seat must be true or false"));
}

#[tokio::test]
async fn reusable_policies_are_built_and_attached_to_applications() {
    use gatehouse_store::{AppStore, PolicyStore};
    let d = dash().await;
    let (cookie, csrf) = d.sign_in(RW).await;
    let rule = |kind: &str, value: &str| {
        vec![
            ("rule.section", "include".to_owned()),
            ("rule.type", kind.to_owned()),
            ("rule.value", value.to_owned()),
            ("rule.claim", String::new()),
            ("rule.access_group", String::new()),
            ("rule.scim_group", String::new()),
            ("rule.idp", String::new()),
            ("rule.service_token", String::new()),
        ]
    };
    let body = |p: &[(&str, String)]| form(&p.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    let mut pairs = vec![("_csrf", csrf.clone()), ("name", "Contractors".to_owned()), ("decision", "allow".to_owned())];
    pairs.extend(rule("email_domain", "not a domain"));
    let r = d.post("/policies/new", Some(&cookie), Some(ORIGIN), body(&pairs)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("must be a domain"), "{}", r.body);
    let mut pairs = vec![("_csrf", csrf.clone()), ("name", "Contractors".to_owned()), ("decision", "allow".to_owned())];
    pairs.extend(rule("email_domain", "contractors.example"));
    let r = d.post("/policies/new", Some(&cookie), Some(ORIGIN), body(&pairs)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let policy = r.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .trim_start_matches("/policies/")
        .to_owned();

    let r = d
        .post("/apps/new", Some(&cookie), Some(ORIGIN), form(&[("_csrf", &csrf), ("domain", "intranet.localhost")]))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let app_path = r.headers[header::LOCATION].to_str().unwrap().split('?').next().unwrap().to_owned();
    let page = d.get(&app_path, Some(&cookie)).await;
    assert!(page.body.contains("Attach a reusable policy") && page.body.contains("Contractors"));
    let r = d
        .post(
            &format!("{app_path}/policies/attach"),
            Some(&cookie),
            Some(ORIGIN),
            form(&[("_csrf", &csrf), ("policy_id", &policy)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let app = d.store.all_apps().await.unwrap().remove(0);
    let attached = d.store.app_policies(app.id).await.unwrap();
    assert_eq!(attached.len(), 1);
    assert!(attached[0].0.reusable && attached[0].0.id.to_string() == policy);
    let page = d.get(&app_path, Some(&cookie)).await;
    assert!(page.body.contains("e-mail domain contractors.example") && page.body.contains("reusable"), "{}", page.body);

    let r = d.post(&format!("/policies/{policy}/delete"), Some(&cookie), Some(ORIGIN), form(&[("_csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("attached to 1 application"), "{}", r.body);
}

#[tokio::test]
async fn service_token_secrets_are_shown_once_and_rotated() {
    use gatehouse_store::ServiceTokenStore;
    let d = dash().await;
    let (cookie, csrf) = d.sign_in(RW).await;
    let r = d
        .post(
            "/service-tokens",
            Some(&cookie),
            Some(ORIGIN),
            form(&[("_csrf", &csrf), ("name", "ci"), ("duration", "1s")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("must be at least 1m") && r.body.contains("value=\"ci\""), "{}", r.body);
    let r = d
        .post(
            "/service-tokens",
            Some(&cookie),
            Some(ORIGIN),
            form(&[("_csrf", &csrf), ("name", "ci"), ("duration", "24h")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let secret_of = |body: &str| {
        body.split("id=\"client-secret\" class=\"copyable\">").nth(1).unwrap().split('<').next().unwrap().to_owned()
    };
    let first = secret_of(&r.body);
    let t = d.store.list_service_tokens(Page::new(1, 10)).await.unwrap().items.remove(0);
    assert!(gatehouse_core::secret::verify_bearer_secret(&first, &t.secret_hash));
    let list = d.get("/service-tokens", Some(&cookie)).await;
    assert!(list.body.contains(&t.client_id) && !list.body.contains(&first), "shown once");

    let rotate = |keep: &'static str| form(&[("_csrf", &csrf), ("keep_hours", keep)]);
    let r = d.post(&format!("/service-tokens/{}/rotate", t.id), Some(&cookie), Some(ORIGIN), rotate("lots")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = d.post(&format!("/service-tokens/{}/rotate", t.id), Some(&cookie), Some(ORIGIN), rotate("2")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let second = secret_of(&r.body);
    let t2 = d.store.get_service_token(t.id).await.unwrap().unwrap();
    assert_eq!(t2.secret_version, 2);
    assert!(gatehouse_core::secret::verify_bearer_secret(&second, &t2.secret_hash));
    assert!(gatehouse_core::secret::verify_bearer_secret(&first, t2.previous_secret_hash.as_deref().unwrap()));
    assert!(t2.previous_expires_at.unwrap() > gatehouse_core::now_millis() + 3_500_000);
}

#[tokio::test]
async fn a_read_only_dashboard_only_takes_turning_read_only_off() {
    let d = dash().await;
    let mut org = d.store.organization().await.unwrap();
    let name = org.name.clone();
    org.is_ui_read_only = true;
    d.store.put_organization(&org).await.unwrap();
    let (cookie, csrf) = d.sign_in(RW).await;
    // Other changes are refused while read-only.
    let r = d.post("/keys/rotate", Some(&cookie), Some(ORIGIN), form(&[("_csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // The settings form may only turn read-only off: a new name sent with it is ignored.
    let r = d
        .post(
            "/settings",
            Some(&cookie),
            Some(ORIGIN),
            form(&[("_csrf", &csrf), ("name", "Renamed while read-only"), ("session_duration", "1h")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let after = d.store.organization().await.unwrap();
    assert!(!after.is_ui_read_only);
    assert_eq!(after.name, name);
}
