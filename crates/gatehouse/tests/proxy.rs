//! The data plane over real sockets: a gateway started in-process in front of a test origin,
//! applications and policies created through the admin API, sessions made the way sign-in
//! makes them (user registry + session + application token signed with the gateway's keys).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use bytes::Bytes;
use gatehouse::config::{Config, IngressRule, Overrides};
use gatehouse::gateway::Gateway;
use gatehouse_core::TokenId;
use gatehouse_core::secret::{SecretKey, hash_bearer_secret};
use gatehouse_proxy::keys::KeyRing;
use gatehouse_proxy::token::{self, AccessClaims};
use gatehouse_store::{
    ApiToken, KeyStore as _, ScimStore as _, SessionKind, SessionRecord, SessionStore as _, TokenStore as _,
    UserStore as _,
};
use gatehouse_testkit::TestDb;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

const TOKEN: &str = "gth_proxy-test-token";
const TEAM: &str = "http://auth.test";
const ENGINEERING: &str = "0a1b2c3d-0001-4e5f-8a9b-000000000001";

// ---------------------------------------------------------------------------------------------
// The origin

#[derive(Clone, Default)]
struct OriginState {
    first_bytes: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    /// `/slow`: told when the request is in, answers once released.
    slow_arrived: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    slow_release: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
}

async fn echo(req: Request) -> Response {
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let list = headers.entry(k.as_str().to_owned()).or_insert_with(|| json!([]));
        if let Some(a) = list.as_array_mut() {
            a.push(json!(v.to_str().unwrap_or("<binary>")));
        }
    }
    axum::Json(json!({
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "headers": headers,
    }))
    .into_response()
}

/// Counts the body as it arrives; tells the test when the first bytes are in, so the test can
/// prove the gateway forwards before the client has finished sending.
async fn upload(State(s): State<OriginState>, req: Request) -> Response {
    let mut body = req.into_body();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return StatusCode::BAD_REQUEST.into_response() };
        if let Some(data) = frame.data_ref() {
            total += data.len();
            if total > 0
                && let Some(tx) = s.first_bytes.lock().unwrap().take()
            {
                let _ = tx.send(());
            }
        }
    }
    total.to_string().into_response()
}

/// Answers when the test says so.
async fn slow(State(s): State<OriginState>) -> Response {
    if let Some(tx) = s.slow_arrived.lock().unwrap().take() {
        let _ = tx.send(());
    }
    let release = s.slow_release.lock().unwrap().take();
    if let Some(rx) = release {
        let _ = rx.await;
    }
    "slow answer".into_response()
}

/// Never answers.
async fn hang() -> Response {
    std::future::pending::<()>().await;
    StatusCode::OK.into_response()
}

/// A WebSocket-style upgrade that echoes every byte it receives.
async fn ws(mut req: Request) -> Response {
    let key = req.headers().get("sec-websocket-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let mut io = hyper_util::rt::TokioIo::new(upgraded);
            let mut buf = [0u8; 1024];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", format!("accept-for-{key}"))
        .body(Body::empty())
        .unwrap()
}

async fn start_origin() -> (SocketAddr, OriginState) {
    let state = OriginState::default();
    let app = Router::new()
        .route("/upload", post(upload))
        .route("/hang", any(hang))
        .route("/slow", any(slow))
        .route("/ws", any(ws))
        .fallback(echo)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, state)
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------
// The gateway

struct Env {
    gw: Gateway,
    origin: OriginState,
    http: reqwest::Client,
    account: String,
    key: SecretKey,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

fn rule(host: Option<&str>, service: String) -> IngressRule {
    serde_json::from_value(json!({"hostname": host, "service": service})).unwrap()
}

async fn env_with(db: TestDb) -> Env {
    env_metrics(db, None).await
}

async fn env_metrics(db: TestDb, metrics: Option<metrics_exporter_prometheus::PrometheusHandle>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (origin_addr, origin) = start_origin().await;
    let origin_url = format!("http://{origin_addr}");
    let vars = [
        ("GATEHOUSE_DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("GATEHOUSE_PUBLIC_URL".to_owned(), TEAM.to_owned()),
        ("GATEHOUSE_PUBLIC_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_ADMIN_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_STORE_URL".to_owned(), db.url().to_owned()),
        ("GATEHOUSE_PROXY__ORIGIN_RESPONSE_TIMEOUT".to_owned(), "1s".to_owned()),
    ];
    let mut config = Config::load_with_env(None, &Overrides::default(), vars).unwrap();
    config.ingress = vec![
        rule(Some("down.test"), format!("http://127.0.0.1:{}", closed_port().await)),
        rule(Some("teapot.test"), "http_status:418".to_owned()),
        rule(Some("*.test"), origin_url),
        rule(None, "http_status:404".to_owned()),
    ];
    let key = SecretKey::generate().unwrap();
    let gw = Gateway::start(&config, key.clone(), metrics).await.unwrap();
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
    Env { gw, origin, http, account, key, _db: db, _dir: dir }
}

async fn env() -> Env {
    env_with(TestDb::sqlite()).await
}

struct Session {
    token: String,
    nonce: String,
    user: uuid::Uuid,
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

    /// Creates an application through the API and waits until the data plane serves it with
    /// its policies.
    async fn app(&self, body: Value) -> Value {
        let (s, b) = self.api(reqwest::Method::POST, "/access/apps", Some(body)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let host = b["result"]["domain"].as_str().unwrap().split('/').next().unwrap().to_owned();
        let path = b["result"]["domain"].as_str().unwrap().split_once('/').map_or(String::new(), |(_, p)| p.to_owned());
        self.until(|| async {
            // Until the application and its policies are in (an application briefly without
            // policies refuses everyone).
            let r = self.get(&host, &format!("/{path}")).send().await.unwrap();
            ![reqwest::StatusCode::NOT_FOUND, reqwest::StatusCode::FORBIDDEN].contains(&r.status())
        })
        .await;
        b["result"].clone()
    }

    fn get(&self, host: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("http://{}{path}", self.gw.public_addr)).header("host", host)
    }

    /// A signed-in user: registry entry with `groups`, a live session, an application token.
    async fn session(&self, email: &str, groups: &[&str], aud: &str) -> Session {
        let identity = json!({
            "email": email,
            "groups": groups.iter().map(|g| json!({"id": g, "name": g})).collect::<Vec<_>>(),
        });
        let now = gatehouse_core::now_millis();
        let idp = gatehouse_core::IdpId::generate();
        let user = self.gw.store.record_sign_in(idp, email, email, email, &identity, now).await.unwrap();
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
        let token = self
            .sign(&AccessClaims {
                aud: vec![aud.to_owned()],
                email: email.to_owned(),
                exp: now / 1000 + 3600,
                iat: now / 1000,
                nbf: now / 1000,
                iss: TEAM.to_owned(),
                kind: "app".into(),
                identity_nonce: nonce.clone(),
                sub: user.id.to_string(),
                custom: serde_json::Map::new(),
                country: None,
            })
            .await;
        Session { token, nonce, user: user.id }
    }

    async fn sign(&self, claims: &AccessClaims) -> String {
        let stored = self.gw.store.signing_keys().await.unwrap();
        let ring = KeyRing::from_stored(&stored, gatehouse_core::now_millis()).unwrap();
        token::sign(&ring, claims).unwrap()
    }

    /// Polls `check` until it holds (at most 5 s): for changes that reach the data plane
    /// through the store's notifications.
    async fn until<F, Fut>(&self, mut check: F)
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
}

fn engineering_app(host: &str) -> Value {
    json!({
        "type": "self_hosted", "name": host, "domain": host,
        "policies": [{"name": "Engineering", "decision": "allow", "include": [{"azureAD": {"id": ENGINEERING}}]}]
    })
}

fn cookie(token: &str) -> String {
    format!("theme=dark; CF_Authorization={token}; CF_AppSession=csrf")
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn identity_headers_reach_the_origin_and_spoofed_ones_do_not() {
    let env = env().await;
    let app = env.app(engineering_app("wiki.test")).await;
    let s = env.session("alice@example.com", &[ENGINEERING], app["aud"].as_str().unwrap()).await;

    let resp = env
        .get("wiki.test", "/page?q=1")
        .header("cookie", cookie(&s.token))
        .header("Cf-Access-Authenticated-User-Email", "ceo@example.com")
        .header("cf-access-jwt-assertion", "forged")
        .header("Cf-Access-Client-Secret", "x")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("true-client-ip", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .header("cf-connecting-ip", "6.6.6.6")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    let h = &seen["headers"];
    assert_eq!(seen["uri"], "/page?q=1");
    assert_eq!(h["cf-access-authenticated-user-email"], json!(["alice@example.com"]));
    assert_eq!(h["cf-access-jwt-assertion"], json!([s.token]));
    assert!(h.get("cf-access-client-secret").is_none(), "{h}");
    assert_eq!(h["cookie"], json!(["theme=dark"]), "gateway cookies must not reach the origin");
    assert_eq!(h["x-forwarded-for"], json!(["127.0.0.1"]));
    assert_eq!(h["cf-connecting-ip"], json!(["127.0.0.1"]));
    for spoofable in ["x-real-ip", "true-client-ip", "forwarded"] {
        assert!(h.get(spoofable).is_none(), "{spoofable} reached the origin: {h}");
    }
    assert_eq!(h["x-forwarded-host"], json!(["wiki.test"]));
    assert_eq!(h["x-forwarded-proto"], json!(["http"]));
    assert_eq!(h["host"], json!(["wiki.test"]));

    // The assertion the origin received validates against the published keys.
    let certs: Value = env.get("wiki.test", "/cdn-cgi/access/certs").send().await.unwrap().json().await.unwrap();
    let kid = jsonwebtoken::decode_header(&s.token).unwrap().kid.unwrap();
    let jwk = certs["keys"].as_array().unwrap().iter().find(|k| k["kid"] == json!(kid)).unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[app["aud"].as_str().unwrap()]);
    v.set_issuer(&[TEAM]);
    let claims = jsonwebtoken::decode::<Value>(h["cf-access-jwt-assertion"][0].as_str().unwrap(), &key, &v).unwrap();
    assert_eq!(claims.claims["email"], "alice@example.com");

    // The same token through the cf-access-token header works too.
    let resp = env.get("wiki.test", "/").header("cf-access-token", &s.token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// Sends `GET <target>` exactly as written (an HTTP library would normalise the path) and
/// returns the status and the body.
async fn raw_get(addr: SocketAddr, host: &str, target: &str, cookie: Option<&str>) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let cookie = cookie.map(|c| format!("cookie: {c}\r\n")).unwrap_or_default();
    let req = format!("GET {target} HTTP/1.1\r\nhost: {host}\r\n{cookie}connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn paths_are_matched_and_forwarded_in_one_canonical_form() {
    let env = env().await;
    // A public part under a protected application on the same host.
    let app = env.app(engineering_app("files.test")).await;
    env.app(json!({
        "type": "self_hosted", "name": "public", "domain": "files.test/public",
        "policies": [{"name": "Public", "decision": "bypass", "include": [{"everyone": {}}]}]
    }))
    .await;
    let addr = env.gw.public_addr;
    // The protected application already answers under /public (with a sign-in), so `app`'s
    // wait cannot tell when the public part is in: wait for its bypass to answer.
    env.until(|| async { raw_get(addr, "files.test", "/public/report?x=1", None).await.0 == 200 }).await;
    let (status, body) = raw_get(addr, "files.test", "/public/report?x=1", None).await;
    assert_eq!(status, 200, "{body}");
    // Dot segments that climb out of the public part must not ride on its bypass policy.
    for target in ["/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2E/admin", "/public/./../admin"] {
        let (status, body) = raw_get(addr, "files.test", target, None).await;
        assert_eq!(status, 302, "{target} must need a sign-in: {body}");
    }
    // Signed in, the origin sees the canonical path the policy was checked for.
    let s = env.session("alice@example.com", &[ENGINEERING], app["aud"].as_str().unwrap()).await;
    let c = cookie(&s.token);
    for (target, seen) in [
        ("/public/../admin?q=1", "/admin?q=1"),
        ("//admin", "/admin"),
        ("/%61dmin/./x", "/admin/x"),
        ("/public//report", "/public/report"),
    ] {
        let (status, body) = raw_get(addr, "files.test", target, Some(&c)).await;
        assert_eq!(status, 200, "{target}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{target}: {e}: {body}"));
        assert_eq!(v["uri"], seen, "{target}");
    }
    // Paths whose meaning depends on the origin are refused.
    for target in ["/public%2f..%2fadmin", "/public/..%5cadmin", "/public\\..\\admin", "/a%zz", "/a%00"] {
        let (status, body) = raw_get(addr, "files.test", target, Some(&c)).await;
        assert_eq!(status, 400, "{target}: {body}");
    }
}

#[tokio::test]
async fn no_session_redirects_to_login_and_xhr_gets_401() {
    let env = env().await;
    let app = env.app(engineering_app("wiki.test")).await;
    let aud = app["aud"].as_str().unwrap();

    let resp = env.get("wiki.test", "/docs/a?b=c").send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap();
    assert_eq!(location, format!("{TEAM}/cdn-cgi/access/login/wiki.test?kid={aud}&redirect_url=%2Fdocs%2Fa%3Fb%3Dc"));

    let resp = env.get("wiki.test", "/api").header("X-Requested-With", "XMLHttpRequest").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["cf-access-aud"], aud);

    // A tampered token, a token for another application and an expired token are no session.
    let s = env.session("alice@example.com", &[ENGINEERING], aud).await;
    let mut tampered = s.token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let other = env.session("alice@example.com", &[ENGINEERING], &"f".repeat(64)).await;
    let now = gatehouse_core::now_millis() / 1000;
    let expired = env
        .sign(&AccessClaims {
            aud: vec![aud.to_owned()],
            email: "alice@example.com".into(),
            exp: now - 3600,
            iat: now - 7200,
            nbf: now - 7200,
            iss: TEAM.into(),
            kind: "app".into(),
            identity_nonce: s.nonce.clone(),
            sub: s.user.to_string(),
            custom: serde_json::Map::new(),
            country: None,
        })
        .await;
    for bad in [tampered, other.token, expired, "not-a-jwt".to_owned()] {
        let resp = env.get("wiki.test", "/").header("cookie", cookie(&bad)).send().await.unwrap();
        assert_eq!(resp.status(), 302, "{bad}");
    }
}

#[tokio::test]
async fn a_user_outside_the_policy_is_denied_with_a_page_that_names_nothing_secret() {
    let env = env().await;
    let app = env.app(engineering_app("wiki.test")).await;
    let s = env.session("mallory@example.com", &["some-other-group"], app["aud"].as_str().unwrap()).await;
    let resp = env.get("wiki.test", "/").header("cookie", cookie(&s.token)).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let body = resp.text().await.unwrap();
    assert!(body.contains("Access denied"), "{body}");
    assert!(!body.contains(ENGINEERING) && !body.contains("127.0.0.1"), "{body}");
}

#[tokio::test]
async fn stopping_finishes_requests_in_flight_and_closes_idle_connections() {
    let env = env().await;
    let app = env.app(engineering_app("wiki.test")).await;
    let s = env.session("alice@example.com", &[ENGINEERING], app["aud"].as_str().unwrap()).await;
    let (arrived_tx, arrived) = oneshot::channel();
    let (release, release_rx) = oneshot::channel();
    *env.origin.slow_arrived.lock().unwrap() = Some(arrived_tx);
    *env.origin.slow_release.lock().unwrap() = Some(release_rx);
    // A connection that has sent nothing yet, and a request the origin is still working on.
    let mut idle = tokio::net::TcpStream::connect(env.gw.public_addr).await.unwrap();
    let in_flight = tokio::spawn(env.get("wiki.test", "/slow").header("cookie", cookie(&s.token)).send());
    arrived.await.unwrap();

    let Env { gw, _db, _dir, .. } = env;
    let stopping = tokio::spawn(gw.shutdown());
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0))), "the idle connection is closed: {read:?}");
    assert!(!stopping.is_finished(), "the stop waits for the request in flight");

    release.send(()).unwrap();
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "slow answer");
    tokio::time::timeout(Duration::from_secs(5), stopping).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_group_change_reaches_every_proxy_thread() {
    let env = env().await;
    let app = env.app(engineering_app("wiki.test")).await;
    let alice = env.session("alice@example.com", &["Platform", ENGINEERING], app["aud"].as_str().unwrap()).await;
    // Requests on several connections, so every proxy thread has seen (and cached) her.
    let fresh_connection = || reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let statuses = || async {
        let mut all = Vec::new();
        for _ in 0..8 {
            let url = format!("http://{}/", env.gw.public_addr);
            let r = fresh_connection().get(url).header("host", "wiki.test").header("cookie", cookie(&alice.token));
            all.push(r.send().await.unwrap().status().as_u16());
        }
        all
    };
    assert_eq!(statuses().await, [200; 8]);

    // Her groups change (as provisioning does): no proxy thread keeps the old ones.
    let now = gatehouse_core::now_millis();
    let identity = json!({"email": "alice@example.com", "groups": [{"id": "Platform", "name": "Platform"}]});
    assert!(env.gw.store.set_user_identity(alice.user, &identity, now).await.unwrap());
    env.until(|| async { statuses().await == [403; 8] }).await;
    for _ in 0..3 {
        assert_eq!(statuses().await, [403; 8], "a thread went back to the old groups");
    }
}

#[tokio::test]
async fn a_revoked_user_and_revoked_application_tokens_are_refused_on_the_next_request() {
    let env = env().await;
    let app = env.app(engineering_app("wiki.test")).await;
    let aud = app["aud"].as_str().unwrap();
    let alice = env.session("alice@example.com", &[ENGINEERING], aud).await;
    let erin = env.session("erin@example.com", &[ENGINEERING], aud).await;
    for s in [&alice, &erin] {
        let r = env.get("wiki.test", "/").header("cookie", cookie(&s.token)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }

    let (s, b) = env
        .api(reqwest::Method::POST, "/access/organizations/revoke_user", Some(json!({"email": "alice@example.com"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    env.until(|| async {
        env.get("wiki.test", "/").header("cookie", cookie(&alice.token)).send().await.unwrap().status() == 302
    })
    .await;
    let r = env.get("wiki.test", "/").header("cookie", cookie(&erin.token)).send().await.unwrap();
    assert_eq!(r.status(), 200, "only the revoked user is affected");

    let id = app["id"].as_str().unwrap();
    let (s, b) = env.api(reqwest::Method::POST, &format!("/access/apps/{id}/revoke_tokens"), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    env.until(|| async {
        env.get("wiki.test", "/").header("cookie", cookie(&erin.token)).send().await.unwrap().status() == 302
    })
    .await;
}

#[tokio::test]
async fn origin_failures_are_502_and_504_pages_and_fixed_statuses_are_served() {
    let env = env().await;
    for host in ["down.test", "slow.test", "teapot.test"] {
        env.app(json!({
            "type": "self_hosted", "name": host, "domain": host,
            "policies": [{"name": "Public", "decision": "bypass", "include": [{"everyone": {}}]}]
        }))
        .await;
    }
    let r = env.get("down.test", "/").send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(body.contains("Bad gateway") && !body.contains("127.0.0.1"), "{body}");
    let r = env.get("slow.test", "/hang").send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(env.get("teapot.test", "/").send().await.unwrap().status(), 418);
    assert_eq!(env.get("nowhere.example", "/").send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn bypass_sends_no_identity_and_service_tokens_get_their_own_assertion() {
    let env = env().await;
    let (s, b) = env.api(reqwest::Method::POST, "/access/service_tokens", Some(json!({"name": "ci"}))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (client_id, secret, token_id) = (
        b["result"]["client_id"].as_str().unwrap().to_owned(),
        b["result"]["client_secret"].as_str().unwrap().to_owned(),
        b["result"]["id"].as_str().unwrap().to_owned(),
    );
    let app = env
        .app(json!({
            "type": "self_hosted", "name": "api", "domain": "api.test",
            "policies": [
                {"name": "Health", "decision": "bypass", "include": [{"ip": {"ip": "10.0.0.0/8"}}]},
                {"name": "CI", "decision": "non_identity", "include": [{"service_token": {"token_id": token_id}}]},
                {"name": "Engineering", "decision": "allow", "include": [{"azureAD": {"id": ENGINEERING}}]}
            ]
        }))
        .await;
    let r = env
        .get("api.test", "/x")
        .header("CF-Access-Client-Id", &client_id)
        .header("CF-Access-Client-Secret", &secret)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text} {app}");
    let seen: Value = serde_json::from_str(&text).unwrap();
    let jwt = seen["headers"]["cf-access-jwt-assertion"][0].as_str().unwrap();
    let payload = jwt.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["common_name"], json!(client_id));
    assert_eq!(claims["aud"], json!([app["aud"]]));
    assert!(seen["headers"].get("cf-access-client-secret").is_none());
    assert!(seen["headers"].get("cf-access-authenticated-user-email").is_none());

    // A wrong secret is refused with 401, not redirected to a login page.
    let r = env
        .get("api.test", "/x")
        .header("CF-Access-Client-Id", &client_id)
        .header("CF-Access-Client-Secret", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn large_uploads_stream_to_the_origin_without_buffering() {
    let env = env().await;
    env.app(json!({
        "type": "self_hosted", "name": "files", "domain": "files.test",
        "policies": [{"name": "Public", "decision": "bypass", "include": [{"everyone": {}}]}]
    }))
    .await;
    let (first_tx, first_rx) = oneshot::channel();
    *env.origin.first_bytes.lock().unwrap() = Some(first_tx);

    const CHUNK: usize = 1024 * 1024;
    const TOTAL: usize = 50 * CHUNK;
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(1);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::channel::Channel<Bytes, std::io::Error>>();
    let req = http::Request::post(format!("http://{}/upload", env.gw.public_addr))
        .header("host", "files.test")
        .body(body)
        .unwrap();
    let pending = tokio::spawn(client.request(req));
    // Send one chunk, then wait for the origin to see bytes before sending the rest: if the
    // gateway buffered the body, the origin would see nothing until the end and this would
    // time out.
    tx.send_data(Bytes::from(vec![7u8; CHUNK])).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), first_rx).await.expect("origin saw bytes early").unwrap();
    for _ in 1..TOTAL / CHUNK {
        tx.send_data(Bytes::from(vec![7u8; CHUNK])).await.unwrap();
    }
    drop(tx);
    let resp = pending.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let count = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&count), TOTAL.to_string());
}

#[tokio::test]
async fn websocket_upgrades_are_relayed_both_ways() {
    let env = env().await;
    let app = env.app(engineering_app("chat.test")).await;
    let s = env.session("alice@example.com", &[ENGINEERING], app["aud"].as_str().unwrap()).await;
    let mut conn = tokio::net::TcpStream::connect(env.gw.public_addr).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Cookie: CF_Authorization={}\r\n\r\n",
        s.token
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("sec-websocket-accept: accept-for-dghlihnhbxbszsbub25jzq=="), "{head}");
    for msg in [&b"hello"[..], b"second frame", &[0x81, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9]] {
        conn.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut back)).await.unwrap().unwrap();
        assert_eq!(back, msg);
    }

    // Without a session the upgrade is not forwarded.
    let r = env
        .get("chat.test", "/ws")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn ingress_rules_set_through_the_api_take_effect_and_bad_ones_are_refused() {
    let env = env().await;
    let (s, b) = env.api(reqwest::Method::GET, "/cfd_tunnel", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let tunnel = b["result"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/cfd_tunnel/{tunnel}/configurations");
    let (s, b) = env.api(reqwest::Method::GET, &path, None).await;
    assert_eq!((s, b["result"]["source"].clone()), (StatusCode::OK, json!("local")), "{b}");
    assert_eq!(b["result"]["config"]["ingress"].as_array().map(Vec::len), Some(4));

    env.app(json!({
        "type": "self_hosted", "name": "moved", "domain": "moved.test",
        "policies": [{"name": "Public", "decision": "bypass", "include": [{"everyone": {}}]}]
    }))
    .await;
    assert_eq!(env.get("moved.test", "/").send().await.unwrap().status(), 200);

    let (s, b) = env
        .api(
            reqwest::Method::PUT,
            &path,
            Some(json!({"config": {"ingress": [
                {"hostname": "moved.test", "service": "http_status:410"},
                {"hostname": "x.test", "service": "http://127.0.0.1:1"}
            ]}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let msg = b["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("ingress[1]: the last rule must be a catch-all"), "{msg}");

    let (s, b) = env
        .api(
            reqwest::Method::PUT,
            &path,
            Some(json!({"config": {"ingress": [
                {"hostname": "moved.test", "service": "http_status:410"},
                {"service": "http_status:404"}
            ]}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["version"], 1);
    env.until(|| async { env.get("moved.test", "/").send().await.unwrap().status() == 410 }).await;
    let (_, b) = env.api(reqwest::Method::GET, &path, None).await;
    assert_eq!(b["result"]["source"], "cloudflare");

    let (s, _) =
        env.api(reqwest::Method::GET, &format!("/cfd_tunnel/{}/configurations", uuid::Uuid::new_v4()), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn decisions_are_logged_and_counted() {
    // The recorder `gatehouse serve` installs (this test is the only one here that does).
    let env = env_metrics(TestDb::sqlite(), gatehouse::gateway::install_metrics()).await;
    let app = env.app(engineering_app("wiki.test")).await;
    let aud = app["aud"].as_str().unwrap();
    let alice = env.session("alice@example.com", &[ENGINEERING], aud).await;
    let mallory = env.session("mallory@example.com", &[], aud).await;
    for _ in 0..3 {
        env.get("wiki.test", "/").header("cookie", cookie(&alice.token)).send().await.unwrap();
    }
    env.get("wiki.test", "/secret").header("cookie", cookie(&mallory.token)).send().await.unwrap();

    let logs = Arc::new(Mutex::new(Value::Null));
    env.until(|| {
        let (env, logs) = (&env, logs.clone());
        async move {
            let (_, b) = env.api(reqwest::Method::GET, "/access/logs/access_requests?direction=asc", None).await;
            let found =
                b["result"].as_array().is_some_and(|a| a.iter().any(|l| l["user_email"] == "mallory@example.com"));
            *logs.lock().unwrap() = b["result"].clone();
            found
        }
    })
    .await;
    let logs = logs.lock().unwrap().clone();
    let items = logs.as_array().unwrap();
    let alice_logs: Vec<_> = items.iter().filter(|l| l["user_email"] == "alice@example.com").collect();
    assert_eq!(alice_logs.len(), 1, "a session's routine requests are logged once: {logs}");
    assert_eq!(alice_logs[0]["action"], "login");
    assert_eq!(alice_logs[0]["allowed"], true);
    assert_eq!(alice_logs[0]["app_uid"], app["id"]);
    assert!(alice_logs[0]["policy_id"].is_string());
    let denied = items.iter().find(|l| l["user_email"] == "mallory@example.com").unwrap();
    assert_eq!((denied["allowed"].clone(), denied["decision"].clone()), (json!(false), json!("deny")));
    assert_eq!(denied["request"], "GET /secret");
    assert_eq!(denied["status"], 403);

    let (s, b) = env.api(reqwest::Method::GET, "/access/logs/access_requests?since=yesterday", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    // Counted by decision, with latency as a Prometheus histogram.
    let text =
        env.http.get(format!("http://{}/metrics", env.gw.admin_addr)).send().await.unwrap().text().await.unwrap();
    let value = |series: &str| -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
    };
    assert_eq!(value("gatehouse_proxy_requests_total{decision=\"allow\"}"), Some(3.0), "{text}");
    assert!(value("gatehouse_proxy_requests_total{decision=\"deny\"}").is_some_and(|n| n >= 1.0), "{text}");
    let routed = value("gatehouse_proxy_request_duration_seconds_count").unwrap_or_default();
    assert!(routed >= 4.0, "{text}");
    assert_eq!(value("gatehouse_proxy_request_duration_seconds_bucket{le=\"+Inf\"}"), Some(routed), "{text}");
}

#[tokio::test]
async fn a_revocation_on_one_instance_is_enforced_by_another_sharing_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    let one = env_with(db).await;
    // A second gateway on the same database.
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("GATEHOUSE_DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("GATEHOUSE_PUBLIC_URL".to_owned(), TEAM.to_owned()),
        ("GATEHOUSE_PUBLIC_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_ADMIN_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_STORE_URL".to_owned(), one._db.url().to_owned()),
    ];
    let (origin_addr, _) = start_origin().await;
    let mut config = Config::load_with_env(None, &Overrides::default(), vars).unwrap();
    config.ingress = vec![rule(Some("*.test"), format!("http://{origin_addr}")), rule(None, "http_status:404".into())];
    let two = Gateway::start(&config, one.key.clone(), None).await.unwrap();

    let app = one.app(engineering_app("wiki.test")).await;
    let s = one.session("alice@example.com", &[ENGINEERING], app["aud"].as_str().unwrap()).await;
    let on_two = || async {
        one.http
            .get(format!("http://{}/", two.public_addr))
            .header("host", "wiki.test")
            .header("cookie", cookie(&s.token))
            .send()
            .await
            .unwrap()
            .status()
    };
    one.until(|| async { on_two().await == 200 }).await;
    let started = tokio::time::Instant::now();
    one.gw.store.revoke_session(&s.nonce, gatehouse_core::now_millis()).await.unwrap();
    one.until(|| async { on_two().await == 302 }).await;
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    two.shutdown().await;
}
