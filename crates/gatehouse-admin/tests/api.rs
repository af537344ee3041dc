//! The admin API through `oneshot()`: envelope, authentication, identity providers,
//! organisation, and how every kind of bad input is answered.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use gatehouse_admin::{AdminState, MAX_BODY_BYTES, router};
use gatehouse_core::TokenId;
use gatehouse_core::secret::{SecretKey, hash_bearer_secret};
use gatehouse_store::{ApiToken, IdpStore, OrgStore, Store, TokenStore};
use gatehouse_testkit::TestDb;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const RW: &str = "gth_read-write-token";
const RO: &str = "gth_read-only-token";
const TENANT: &str = "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f";
const CLIENT: &str = "c37d0163-d4a4-43a8-8b1e-1a2b3c4d5e6f";

struct Api {
    app: Router,
    store: Store,
    account: String,
    _db: TestDb,
}

async fn api() -> Api {
    let db = TestDb::sqlite();
    let key = SecretKey::generate().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::connect(db.url(), key).await.unwrap_or_else(|e| panic!("{e}"));
    for (secret, read_only) in [(RW, false), (RO, true)] {
        let t = ApiToken {
            id: TokenId::generate(),
            name: "test".into(),
            secret_hash: hash_bearer_secret(secret),
            read_only,
            created_at: 0,
            last_used_at: None,
        };
        store.insert_token(&t).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let account_id = store.account_id().await.unwrap_or_else(|e| panic!("{e}"));
    let state = AdminState {
        store: store.clone(),
        account_id,
        public_url: url::Url::parse("https://auth.example.com").unwrap_or_else(|e| panic!("{e}")),
        metrics: None,
        ingress_file: std::sync::Arc::default(),
    };
    Api { app: router(state), store, account: account_id.to_string(), _db: db }
}

impl Api {
    fn path(&self, rest: &str) -> String {
        format!("/client/v4/accounts/{}/access{rest}", self.account)
    }

    async fn raw(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.app.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, body)
    }

    async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.raw(req.unwrap_or_else(|e| panic!("{e}"))).await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, Some(RW), None).await
    }

    async fn send(&self, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(method, uri, Some(RW), Some(body)).await
    }
}

fn azure(name: &str, scim: bool) -> Value {
    json!({
        "name": name,
        "type": "azureAD",
        "config": {
            "client_id": CLIENT,
            "client_secret": "Qx8~verysecretvalue",
            "directory_id": TENANT,
            "support_groups": true,
            "claims": ["employeeId"],
            "email_claim_name": "upn"
        },
        "scim_config": { "enabled": scim, "user_deprovision": true, "identity_update_behavior": "automatic" }
    })
}

fn error_codes(body: &Value) -> Vec<u64> {
    assert_eq!(body["success"], json!(false), "{body}");
    assert_eq!(body["result"], Value::Null);
    assert!(body["messages"].is_array());
    body["errors"].as_array().map(|a| a.iter().filter_map(|e| e["code"].as_u64()).collect()).unwrap_or_default()
}

fn first_message(body: &Value) -> String {
    body["errors"][0]["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn missing_malformed_unknown_and_read_only_tokens() {
    let api = api().await;
    let uri = api.path("/identity_providers");

    let (s, b) = api.call(Method::GET, &uri, None, None).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![9106]));
    assert_eq!(first_message(&b), "Missing X-Auth-Key, X-Auth-Email or Authorization headers");

    let req = Request::get(&uri).header(header::AUTHORIZATION, "Basic abc").body(Body::empty());
    let (s, b) = api.raw(req.unwrap_or_else(|e| panic!("{e}"))).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![6003]));

    let req = Request::get(&uri).header("X-Auth-Key", "k").header("X-Auth-Email", "a@b.c").body(Body::empty());
    let (s, b) = api.raw(req.unwrap_or_else(|e| panic!("{e}"))).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![6003]));
    assert!(first_message(&b).contains("api-token create"));

    let (s, b) = api.call(Method::GET, &uri, Some("gth_wrong"), None).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::FORBIDDEN, vec![10000]));
    assert_eq!(first_message(&b), "Authentication error");

    let long = "x".repeat(10_000);
    let (s, _) = api.call(Method::GET, &uri, Some(&long), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, b) = api.call(Method::GET, &uri, Some(RO), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = api.call(Method::POST, &uri, Some(RO), Some(azure("ro", false))).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::FORBIDDEN, vec![10000]));
    assert_eq!(
        api.store.list_idps(Default::default(), gatehouse_store::Page::new(1, 10)).await.map(|p| p.total).ok(),
        Some(0)
    );

    // Unknown routes need a token too, and then answer 404 in the envelope.
    let (s, b) = api.call(Method::GET, "/client/v4/nope", None, None).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![9106]));
    let (s, b) = api.get("/client/v4/nope").await;
    assert_eq!((s, error_codes(&b)), (StatusCode::NOT_FOUND, vec![7003]));
}

#[tokio::test]
async fn accounts_and_token_verify() {
    let api = api().await;
    let (s, b) = api.get("/client/v4/accounts").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["success"], json!(true));
    assert_eq!(b["result"][0]["id"], json!(api.account));
    assert_eq!(b["result_info"]["total_count"], json!(1));
    // Page 2 is empty: SDKs page until they see an empty page.
    let (s, b) = api.get("/client/v4/accounts?page=2").await;
    assert_eq!((s, b["result"].clone()), (StatusCode::OK, json!([])));
    let (s, b) = api.get(&format!("/client/v4/accounts/{}", api.account)).await;
    assert_eq!((s, b["result"]["id"].clone()), (StatusCode::OK, json!(api.account)));
    let (s, b) = api.get(&format!("/client/v4/accounts/{}", "0".repeat(32))).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::NOT_FOUND, vec![12135]));

    let (s, b) = api.get("/client/v4/user/tokens/verify").await;
    assert_eq!((s, b["result"]["status"].clone()), (StatusCode::OK, json!("active")));
    assert_eq!(b["result"]["read_only"], json!(false));
    let (_, b) = api.call(Method::GET, "/client/v4/user/tokens/verify", Some(RO), None).await;
    assert_eq!(b["result"]["read_only"], json!(true));
}

#[tokio::test]
async fn wrong_and_malformed_account_ids() {
    let api = api().await;
    let (s, b) = api.get(&format!("/client/v4/accounts/{}/access/identity_providers", "a".repeat(32))).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::NOT_FOUND, vec![7003]));
    let (s, b) = api.get("/client/v4/accounts/not-an-account/access/identity_providers").await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![7003]));
    assert!(first_message(&b).contains("perhaps your object identifier is invalid"));
    let (s, b) = api.get(&format!("/client/v4/zones/{}/access/identity_providers", "a".repeat(32))).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![7003]));
}

#[tokio::test]
async fn idp_lifecycle_and_scim_secret_shown_once() {
    let api = api().await;
    let base = api.path("/identity_providers");
    let (s, b) = api.send(Method::POST, &base, azure("Entra ID", true)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let idp = &b["result"];
    let id = idp["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(idp["uid"], json!(id));
    assert_eq!(idp["type"], json!("azureAD"));
    assert_eq!(idp["config"]["directory_id"], json!(TENANT));
    assert_eq!(idp["config"]["support_groups"], json!(true));
    assert_eq!(idp["config"]["azure_cloud"], json!("default"));
    assert_eq!(idp["config"]["redirect_url"], json!("https://auth.example.com/cdn-cgi/access/callback"));
    assert!(idp["config"].get("client_secret").is_none(), "client secret returned: {idp}");
    assert_eq!(
        idp["scim_config"]["scim_base_url"],
        json!(format!("https://auth.example.com/populations/{id}/scim/v2"))
    );
    let secret = idp["scim_config"]["secret"].as_str().unwrap_or_default().to_owned();
    assert!(secret.starts_with("ghscim_") && secret.len() > 40, "{secret}");
    // Only the hash is stored.
    let stored = api.store.get_idp(id.parse().unwrap_or_else(|e| panic!("{e:?}"))).await.ok().flatten();
    let stored = stored.unwrap_or_else(|| panic!("not stored"));
    assert_eq!(stored.scim_secret_hash, Some(hash_bearer_secret(&secret)));
    assert_eq!(stored.client_secret.expose(), "Qx8~verysecretvalue");

    // Reads never show secrets.
    let (s, b) = api.get(&format!("{base}/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b["result"]["scim_config"].get("secret").is_none(), "{b}");
    assert!(!b.to_string().contains("verysecretvalue"));

    // PUT without client_secret keeps it; SCIM already enabled, so no new secret.
    let mut put = b["result"].clone();
    put["name"] = json!("Entra ID (prod)");
    put["config"]["prompt"] = json!("login");
    let (s, b) = api.send(Method::PUT, &format!("{base}/{id}"), put).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["name"], json!("Entra ID (prod)"));
    assert_eq!(b["result"]["config"]["prompt"], json!("login"));
    assert!(b["result"]["scim_config"].get("secret").is_none());
    let stored = api.store.get_idp(stored.id).await.ok().flatten().unwrap_or_else(|| panic!("gone"));
    assert_eq!(stored.client_secret.expose(), "Qx8~verysecretvalue");
    assert_eq!(stored.scim_secret_hash, Some(hash_bearer_secret(&secret)));

    // Refresh issues a new secret, once.
    let (s, b) = api.call(Method::POST, &format!("{base}/{id}/refresh_scim_secret"), Some(RW), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let fresh = b["result"]["scim_config"]["secret"].as_str().unwrap_or_default().to_owned();
    assert!(fresh.starts_with("ghscim_") && fresh != secret);

    let (s, b) = api.call(Method::DELETE, &format!("{base}/{id}"), Some(RW), None).await;
    assert_eq!((s, b["result"]["id"].clone()), (StatusCode::OK, json!(id)));
    let (s, b) = api.get(&format!("{base}/{id}")).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::NOT_FOUND, vec![12135]));
    let (s, b) = api.call(Method::DELETE, &format!("{base}/{id}"), Some(RW), None).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::NOT_FOUND, vec![12135]));
}

#[tokio::test]
async fn scim_secret_generated_when_first_enabled_by_put() {
    let api = api().await;
    let base = api.path("/identity_providers");
    let (_, b) = api.send(Method::POST, &base, azure("later", false)).await;
    assert!(b["result"]["scim_config"].get("secret").is_none());
    let id = b["result"]["id"].as_str().unwrap_or_default().to_owned();
    let (s, b) = api.send(Method::PUT, &format!("{base}/{id}"), azure("later", true)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["result"]["scim_config"]["secret"].as_str().is_some_and(|s| s.starts_with("ghscim_")));
    let (_, b) = api.send(Method::PUT, &format!("{base}/{id}"), azure("later", true)).await;
    assert!(b["result"]["scim_config"].get("secret").is_none());
}

#[tokio::test]
async fn list_pages_and_scim_filter() {
    let api = api().await;
    let base = api.path("/identity_providers");
    for i in 0..5 {
        let (s, b) = api.send(Method::POST, &base, azure(&format!("idp{i}"), i < 2)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let oidc = json!({"name": "Other", "type": "oidc", "config": {
        "client_id": "abc", "client_secret": "s3cr3t", "auth_url": "https://idp.example.com/auth",
        "token_url": "https://idp.example.com/token", "certs_url": "https://idp.example.com/keys"}});
    let (s, b) = api.send(Method::POST, &base, oidc).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["config"]["scopes"], json!(["openid", "email", "profile"]));

    let (_, b) = api.get(&format!("{base}?page=2&per_page=4")).await;
    assert_eq!(b["result"].as_array().map(Vec::len), Some(2));
    assert_eq!(b["result_info"], json!({"page": 2, "per_page": 4, "count": 2, "total_count": 6, "total_pages": 2}));
    let (_, b) = api.get(&format!("{base}?scim_enabled=true")).await;
    let names: Vec<_> = b["result"].as_array().into_iter().flatten().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(names, ["idp0", "idp1"]);
    let (_, b) = api.get(&format!("{base}?page=9")).await;
    assert_eq!(b["result"], json!([]));

    for bad in ["page=0", "per_page=0", "per_page=5000", "page=x", "scim_enabled=maybe", "page=-1"] {
        let (s, b) = api.get(&format!("{base}?{bad}")).await;
        assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![9210]), "{bad}");
    }
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let api = api().await;
    let base = api.path("/identity_providers");
    let cases = [
        (json!({"name": "x", "type": "carrier-pigeon", "config": {}}), "type", "unknown identity provider type"),
        (json!({"name": "x", "type": "saml", "config": {}}), "type", "not supported"),
        (
            json!({"name": "x", "type": "azureAD", "config": {"client_id": CLIENT, "client_secret": "v"}}),
            "config.directory_id",
            "is required",
        ),
        (
            json!({"name": "x", "type": "azureAD", "config": {"client_id": CLIENT, "client_secret": "v", "directory_id": "contoso"}}),
            "config.directory_id",
            "GUID",
        ),
        (
            json!({"name": "x", "type": "azureAD", "config": {"client_id": "app", "client_secret": "v", "directory_id": TENANT}}),
            "config.client_id",
            "GUID",
        ),
        (
            json!({"name": "x", "type": "azureAD", "config": {"client_id": CLIENT, "client_secret": "0b6f6b4e-1d3c-4a3f-9e5d-6c7b8a9d0e1f", "directory_id": TENANT}}),
            "config.client_secret",
            "secret's ID",
        ),
        (
            json!({"name": "x", "type": "azureAD", "config": {"client_id": CLIENT, "client_secret": "v", "directory_id": TENANT, "azure_cloud": "mars"}}),
            "config.azure_cloud",
            "default, usgov, china",
        ),
        (json!({"name": "", "type": "oidc", "config": {}}), "name", "1 to 256"),
        (json!({"type": "oidc", "config": {}}), "name", "is required"),
        (
            json!({"name": "x", "type": "oidc", "config": {"client_id": "c", "client_secret": "s", "auth_url": "ftp://x", "token_url": "https://t", "certs_url": "https://c"}}),
            "config.auth_url",
            "https",
        ),
        (
            json!({"name": "x", "type": "azureAD", "config": {"client_id": CLIENT, "client_secret": "v", "directory_id": TENANT}, "scim_config": {"seat_deprovision": true}}),
            "scim_config.seat_deprovision",
            "user_deprovision",
        ),
    ];
    for (body, path, words) in cases {
        let (s, b) = api.send(Method::POST, &base, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {b}");
        assert!(error_codes(&b).iter().all(|c| *c == 12130), "{b}");
        let hit = b["errors"].as_array().into_iter().flatten().any(|e| {
            let m = e["message"].as_str().unwrap_or_default();
            m.contains(&format!("{path}: ")) && m.contains(words)
        });
        assert!(hit, "expected {path} / {words:?} in {b}");
    }
    assert_eq!(
        api.store.list_idps(Default::default(), gatehouse_store::Page::new(1, 10)).await.map(|p| p.total).ok(),
        Some(0)
    );

    // Type cannot change on PUT.
    let (_, b) = api.send(Method::POST, &base, azure("a", false)).await;
    let id = b["result"]["id"].as_str().unwrap_or_default().to_owned();
    let oidc = json!({"name": "x", "type": "oidc", "config": {"client_id": "c", "auth_url": "https://a", "token_url": "https://t", "certs_url": "https://c"}});
    let (s, b) = api.send(Method::PUT, &format!("{base}/{id}"), oidc).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.to_string().contains("cannot change the type"), "{b}");
}

#[tokio::test]
async fn malformed_bodies_get_enveloped_4xx() {
    let api = api().await;
    let base = api.path("/identity_providers");
    let post = |body: Body, ctype: Option<&str>| {
        let mut r = Request::post(&base).header(header::AUTHORIZATION, format!("Bearer {RW}"));
        if let Some(c) = ctype {
            r = r.header(header::CONTENT_TYPE, c);
        }
        r.body(body).unwrap_or_else(|e| panic!("{e}"))
    };
    let json_ct = Some("application/json");

    let (s, b) = api.raw(post(Body::from("{\"name\": "), json_ct)).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![9207]));
    assert!(first_message(&b).contains("not valid JSON"), "{b}");

    let wrong_type = json!({"name": "x", "type": "azureAD", "config": {"support_groups": "yes"}});
    let (s, b) = api.raw(post(Body::from(wrong_type.to_string()), json_ct)).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![9207]));
    assert!(first_message(&b).contains("config.support_groups"), "{b}");

    let unknown = json!({"name": "x", "type": "azureAD", "config": {"client_idd": "c"}});
    let (s, b) = api.raw(post(Body::from(unknown.to_string()), json_ct)).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![9207]));
    assert!(first_message(&b).contains("client_idd"), "{b}");

    let (s, b) = api.raw(post(Body::from("[1,2]"), json_ct)).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![9207]));

    let (s, b) = api.raw(post(Body::from(azure("x", false).to_string()), None)).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::UNSUPPORTED_MEDIA_TYPE, vec![9209]));

    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(MAX_BODY_BYTES + 10));
    let (s, b) = api.raw(post(Body::from(big), json_ct)).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::PAYLOAD_TOO_LARGE, vec![9208]));

    let (s, b) = api.raw(post(Body::from(vec![0xff, 0xfe, 0x00]), json_ct)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    error_codes(&b);

    assert_eq!(
        api.store.list_idps(Default::default(), gatehouse_store::Page::new(1, 10)).await.map(|p| p.total).ok(),
        Some(0)
    );
}

#[tokio::test]
async fn bad_ids_and_methods() {
    let api = api().await;
    let base = api.path("/identity_providers");
    for bad in ["not-a-uuid", "12345", "8ce83790a2934d7b9f1e1a2b3c4d5e6f"] {
        let (s, b) = api.get(&format!("{base}/{bad}")).await;
        assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![7003]), "{bad}");
    }
    let (s, b) = api.get(&format!("{base}/{}", uuid_like())).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::NOT_FOUND, vec![12135]));
    let (s, b) = api.send(Method::PUT, &format!("{base}/{}", uuid_like()), azure("x", false)).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::NOT_FOUND, vec![12135]));
    let (s, b) = api.send(Method::PATCH, &base, json!({})).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::METHOD_NOT_ALLOWED, vec![10405]));
}

fn uuid_like() -> String {
    "0b6f6b4e-1d3c-4a3f-9e5d-6c7b8a9d0e1f".to_owned()
}

#[tokio::test]
async fn organization_get_and_put() {
    let api = api().await;
    let uri = api.path("/organizations");
    let (s, b) = api.get(&uri).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["result"]["auth_domain"], json!("auth.example.com"));
    assert_eq!(b["result"]["session_duration"], json!("24h"));

    let (s, b) = api
        .send(Method::PUT, &uri, json!({"name": "Acme", "auth_domain": "login.acme.test", "session_duration": "8h"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["name"], json!("Acme"));
    assert_eq!(api.store.organization().await.ok().map(|o| o.session_duration.to_string()), Some("8h".into()));

    // The IdP URLs follow the auth domain.
    let (_, b) = api.send(Method::POST, &api.path("/identity_providers"), azure("x", false)).await;
    assert_eq!(b["result"]["config"]["redirect_url"], json!("https://login.acme.test/cdn-cgi/access/callback"));

    let (s, b) = api.send(Method::PUT, &uri, json!({"session_duration": "5m"})).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![12130]));
    let (s, b) = api.send(Method::PUT, &uri, json!({"session_duration": "forever"})).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![12130]));
    let (s, b) = api.send(Method::PUT, &uri, json!({"unknown": 1})).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![9207]));
    let (s, b) = api.call(Method::PUT, &uri, Some(RO), Some(json!({"name": "ro"}))).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::FORBIDDEN, vec![10000]));
}

#[tokio::test]
async fn health_endpoints() {
    let api = api().await;
    let (s, b) = api.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((s, b), (StatusCode::OK, json!("ok\n")));
    let (s, _) = api.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    api.store.close().await;
    let (s, _) = api.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn signing_key_schedule_and_rotation() {
    let api = api().await;
    let uri = api.path("/keys");
    let (s, b) = api.get(&uri).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["key_rotation_interval_days"], json!(42));
    assert_eq!(b["result"]["last_key_rotation_at"], Value::Null);

    let (s, b) = api.call(Method::POST, &format!("{uri}/rotate"), Some(RW), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["result"]["last_key_rotation_at"].is_string());
    assert_eq!(b["result"]["days_until_next_rotation"], json!(42));
    let (_, _) = api.call(Method::POST, &format!("{uri}/rotate"), Some(RW), None).await;
    use gatehouse_store::KeyStore as _;
    let keys = api.store.signing_keys().await.unwrap_or_default();
    assert_eq!(keys.iter().filter(|k| k.retired_at.is_none()).count(), 1);
    assert_eq!(keys.len(), 2);

    let (s, b) = api.send(Method::PUT, &uri, json!({"key_rotation_interval_days": 30})).await;
    assert_eq!((s, b["result"]["key_rotation_interval_days"].clone()), (StatusCode::OK, json!(30)));
    for bad in [json!({"key_rotation_interval_days": 1}), json!({"key_rotation_interval_days": "x"}), json!({})] {
        let (s, b) = api.send(Method::PUT, &uri, bad.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad} -> {b}");
    }
    let (s, b) = api.call(Method::POST, &format!("{uri}/rotate"), Some(RO), None).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::FORBIDDEN, vec![10000]));
}

#[tokio::test]
async fn apps_policies_and_groups() {
    let api = api().await;
    let (s, b) = api
        .send(
            Method::POST,
            &api.path("/groups"),
            json!({"name": "Engineers", "include": [{"azureAD": {"id": "0A1B2C3D-0001-4E5F-8A9B-000000000001"}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let group = b["result"]["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(b["result"]["include"][0]["azureAD"]["id"], json!("0a1b2c3d-0001-4e5f-8a9b-000000000001"));

    let (s, b) = api
        .send(Method::POST, &api.path("/policies"), json!({"name": "Engineers only", "decision": "allow", "include": [{"group": {"id": group}}], "session_duration": "8h"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let shared = b["result"]["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!((b["result"]["reusable"].clone(), b["result"]["app_count"].clone()), (json!(true), json!(0)));

    let app_body = json!({
        "type": "self_hosted", "name": "Wiki", "domain": "wiki.example.com",
        "session_duration": "12h",
        "policies": [
            {"name": "Block contractors", "decision": "deny", "include": [{"email_domain": {"domain": "contractor.example"}}], "precedence": 1},
            {"id": shared, "precedence": 2}
        ]
    });
    let (s, b) = api.send(Method::POST, &api.path("/apps"), app_body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let app = b["result"].clone();
    let app_id = app["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(app["aud"].as_str().map(str::len), Some(64));
    assert_eq!(app["destinations"], json!([{"type": "public", "uri": "wiki.example.com"}]));
    let names: Vec<_> = app["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["name"].clone(), p["precedence"].clone()))
        .collect();
    assert_eq!(names, [(json!("Block contractors"), json!(1)), (json!("Engineers only"), json!(2))]);

    // PUT without policies keeps them; the aud never changes.
    let mut put = app.clone();
    put.as_object_mut().map(|o| o.remove("policies"));
    put["name"] = json!("Team wiki");
    let (s, b) = api.send(Method::PUT, &api.path(&format!("/apps/{app_id}")), put).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!((b["result"]["name"].clone(), b["result"]["aud"].clone()), (json!("Team wiki"), app["aud"].clone()));
    assert_eq!(b["result"]["policies"].as_array().map(Vec::len), Some(2));

    // App-scoped policy endpoints.
    let pol_path = api.path(&format!("/apps/{app_id}/policies"));
    let (s, b) = api
        .send(
            Method::POST,
            &pol_path,
            json!({"name": "Office", "decision": "bypass", "include": [{"ip": {"ip": "192.0.2.0/24"}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["result"]["precedence"], json!(3));
    let office = b["result"]["id"].as_str().unwrap_or_default().to_owned();
    let (_, b) = api.get(&pol_path).await;
    assert_eq!(b["result"].as_array().map(Vec::len), Some(3));
    let (s, b) = api
        .send(
            Method::PUT,
            &format!("{pol_path}/{office}"),
            json!({"name": "Office v2", "decision": "bypass", "include": [{"ip": {"ip": "198.51.100.0/24"}}]}),
        )
        .await;
    assert_eq!((s, b["result"]["name"].clone()), (StatusCode::OK, json!("Office v2")), "{b}");
    let (s, b) = api
        .send(
            Method::PUT,
            &format!("{pol_path}/{shared}"),
            json!({"name": "x", "decision": "allow", "include": [{"everyone": {}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "reusable policies change through /policies: {b}");
    let (s, _) = api.call(Method::DELETE, &format!("{pol_path}/{office}"), Some(RW), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api.get(&format!("{pol_path}/{office}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // In-use objects cannot be deleted; conflicts are 409.
    let (s, b) = api.call(Method::DELETE, &api.path(&format!("/policies/{shared}")), Some(RW), None).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::CONFLICT, vec![12136]));
    let (s, b) = api.call(Method::DELETE, &api.path(&format!("/groups/{group}")), Some(RW), None).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::CONFLICT, vec![12136]));
    let (_, b) = api.get(&api.path(&format!("/policies/{shared}"))).await;
    assert_eq!(b["result"]["app_count"], json!(1));
    let (s, b) =
        api.send(Method::POST, &api.path("/apps"), json!({"type": "self_hosted", "domain": "WIKI.example.com"})).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::CONFLICT, vec![12136]), "same destination");

    // Deleting the app frees the reusable policy, then the group.
    let (s, _) = api.call(Method::DELETE, &api.path(&format!("/apps/{app_id}")), Some(RW), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api.call(Method::DELETE, &api.path(&format!("/policies/{shared}")), Some(RW), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api.call(Method::DELETE, &api.path(&format!("/groups/{group}")), Some(RW), None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn invalid_apps_and_rules_name_the_problem() {
    let api = api().await;
    let cases = [
        (
            json!({"type": "self_hosted", "domain": "a.example.com", "policies": [{"name": "p", "decision": "allow", "include": [{"emial": {"email": "x"}}]}]}),
            "policies[0].include[0]",
            "unknown rule type: 'emial'",
        ),
        (
            json!({"type": "self_hosted", "domain": "a.example.com", "policies": [{"name": "p", "decision": "allow", "include": [{"geo": {"country_code": "FR"}}]}]}),
            "policies[0].include[0]",
            "country source",
        ),
        (
            json!({"type": "self_hosted", "domain": "a.example.com", "policies": [{"name": "p", "decision": "bypass", "include": [{"email": {"email": "a@b.c"}}]}]}),
            "policies[0].decision",
            "identity rules",
        ),
        (
            json!({"type": "self_hosted", "domain": "a.example.com", "policies": [{"name": "p", "decision": "allow", "include": [{"group": {"id": "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f"}}]}]}),
            "policies[0].include[0]",
            "no Access group",
        ),
        (
            json!({"type": "self_hosted", "domain": "a.example.com", "policies": [{"id": "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f", "precedence": 1}]}),
            "policies[0].id",
            "no reusable policy",
        ),
        (
            json!({"type": "self_hosted", "domain": "a.example.com", "allowed_idps": ["8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f"]}),
            "allowed_idps[0]",
            "no identity provider",
        ),
        (json!({"type": "saas", "domain": "a.example.com"}), "type", "self_hosted"),
        (json!({"type": "self_hosted", "domain": "https://a.example.com"}), "domain", "without a scheme"),
    ];
    for (body, path, words) in cases {
        let (s, b) = api.send(Method::POST, &api.path("/apps"), body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {b}");
        let hit = b["errors"].as_array().into_iter().flatten().any(|e| {
            let m = e["message"].as_str().unwrap_or_default();
            m.contains(&format!("{path}: ")) && m.contains(words)
        });
        assert!(hit, "expected {path} / {words:?} in {b}");
    }
    let dup = json!({"type": "self_hosted", "domain": "a.example.com", "policies": [
        {"name": "p", "decision": "allow", "include": [{"everyone": {}}], "precedence": 1},
        {"name": "q", "decision": "allow", "include": [{"everyone": {}}], "precedence": 1}]});
    let (s, b) = api.send(Method::POST, &api.path("/apps"), dup).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::BAD_REQUEST, vec![12130]));
    let (_, b) = api.get(&api.path("/apps")).await;
    assert_eq!(b["result"], json!([]), "nothing half-created");
}

#[tokio::test]
async fn service_tokens_secret_shown_once_and_rotation() {
    let api = api().await;
    let base = api.path("/service_tokens");
    let (s, b) = api.send(Method::POST, &base, json!({"name": "ci", "duration": "720h"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let t = b["result"].clone();
    let id = t["id"].as_str().unwrap_or_default().to_owned();
    let client_id = t["client_id"].as_str().unwrap_or_default().to_owned();
    let secret = t["client_secret"].as_str().unwrap_or_default().to_owned();
    assert!(client_id.ends_with(".access") && client_id.len() == 39, "{client_id}");
    assert_eq!(secret.len(), 64);
    use gatehouse_store::ServiceTokenStore as _;
    let stored = api.store.get_service_token(id.parse().unwrap_or_default()).await.ok().flatten();
    assert_eq!(stored.map(|s| s.secret_hash), Some(hash_bearer_secret(&secret)));

    let (_, b) = api.get(&format!("{base}/{id}")).await;
    assert!(b["result"].get("client_secret").is_none(), "{b}");
    let (_, b) = api.get(&base).await;
    assert!(!b.to_string().contains(&secret));

    let later = "2999-01-01T00:00:00Z";
    let (s, b) = api
        .send(Method::POST, &format!("{base}/{id}/rotate"), json!({"previous_client_secret_expires_at": later}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let fresh = b["result"]["client_secret"].as_str().unwrap_or_default().to_owned();
    assert!(fresh.len() == 64 && fresh != secret);
    assert_eq!(b["result"]["client_secret_version"], json!(2));
    assert_eq!(b["result"]["previous_client_secret_expires_at"], json!(later));
    let (s, b) = api.call(Method::POST, &format!("{base}/{id}/rotate"), Some(RW), None).await;
    assert_eq!((s, b["result"]["previous_client_secret_expires_at"].clone()), (StatusCode::OK, Value::Null));
    let (s, _) = api
        .send(
            Method::POST,
            &format!("{base}/{id}/rotate"),
            json!({"previous_client_secret_expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api.call(Method::POST, &format!("{base}/{id}/refresh"), Some(RW), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = api.send(Method::PUT, &format!("{base}/{id}"), json!({"name": "ci-2"})).await;
    assert_eq!((s, b["result"]["name"].clone()), (StatusCode::OK, json!("ci-2")));
    for bad in [
        json!({"name": ""}),
        json!({"name": "x", "duration": "soon"}),
        json!({"name": "x", "duration": "1s"}),
        json!({"name": "x", "secret": "y"}),
    ] {
        let (s, b) = api.send(Method::POST, &base, bad.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad} -> {b}");
    }
    let (s, _) = api.call(Method::DELETE, &format!("{base}/{id}"), Some(RW), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api.get(&format!("{base}/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn user_registry_and_revoke_user() {
    use gatehouse_store::{SessionKind, SessionRecord, SessionStore as _, UserStore as _};
    let api = api().await;
    let idp = gatehouse_core::IdpId::generate();
    let now = gatehouse_core::now_millis();
    let ada = api
        .store
        .record_sign_in(
            idp,
            "tid:ada",
            "ada@example.com",
            "Ada",
            &json!({"email": "ada@example.com", "groups": []}),
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bob = api
        .store
        .record_sign_in(idp, "tid:bob", "bob@example.com", "Bob", &json!({}), now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (nonce, user) in [("a1", ada.id), ("a2", ada.id), ("b1", bob.id)] {
        let s = SessionRecord {
            nonce: nonce.into(),
            user_id: user,
            kind: SessionKind::Org,
            app_id: None,
            created_at: now,
            expires_at: now + 3_600_000,
            revoked_at: None,
        };
        api.store.insert_session(&s).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let (s, b) = api.get(&api.path("/users")).await;
    assert_eq!((s, b["result_info"]["total_count"].clone()), (StatusCode::OK, json!(2)));
    assert!(b["result"][0]["last_successful_login"].is_string());
    let (_, b) = api.get(&api.path("/users?search=ADA")).await;
    assert_eq!(b["result"].as_array().map(Vec::len), Some(1));
    let (s, b) = api.get(&api.path(&format!("/users/{}/active_sessions", ada.id))).await;
    assert_eq!((s, b["result"].as_array().map(Vec::len)), (StatusCode::OK, Some(2)));
    let (_, b) = api.get(&api.path(&format!("/users/{}/last_seen_identity", ada.id))).await;
    assert_eq!(b["result"]["email"], json!("ada@example.com"));
    assert_eq!(b["result"]["user_uuid"], json!(ada.id));

    let revoke = api.path("/organizations/revoke_user");
    let (s, b) = api.call(Method::POST, &revoke, Some(RO), Some(json!({"email": "ada@example.com"}))).await;
    assert_eq!((s, error_codes(&b)), (StatusCode::FORBIDDEN, vec![10000]));
    let (s, b) = api.send(Method::POST, &revoke, json!({"email": "Ada@Example.com"})).await;
    assert_eq!((s, b["result"].clone()), (StatusCode::OK, json!(true)), "{b}");
    let (_, b) = api.get(&api.path(&format!("/users/{}/active_sessions", ada.id))).await;
    assert_eq!(b["result"], json!([]));
    let (_, b) = api.get(&api.path(&format!("/users/{}/active_sessions", bob.id))).await;
    assert_eq!(b["result"].as_array().map(Vec::len), Some(1), "other users keep their sessions");
    let (s, _) = api.send(Method::POST, &revoke, json!({"user_uid": bob.id})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api.store.revoked_nonces(now).await.map(|v| v.len()).ok(), Some(3));
    let (s, _) = api.send(Method::POST, &revoke, json!({"email": "nobody@example.com"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api.send(Method::POST, &revoke, json!({})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api.send(Method::POST, &revoke, json!({"user_uid": "nope"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api.get(&api.path(&format!("/users/{}", uuid_like()))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn user_failed_logins_in_cloudflare_shape() {
    use gatehouse_store::{FailedLoginRecord, FailedLoginStore as _, UserStore as _};
    let api = api().await;
    let idp = gatehouse_core::IdpId::generate();
    let now = gatehouse_core::now_millis();
    let failure = |subject: Option<&str>, at: i64, code: &str| FailedLoginRecord {
        id: uuid::Uuid::new_v4(),
        created_at: at,
        expires_at: at + 30 * 24 * 3_600_000,
        idp_id: Some(idp),
        subject: subject.map(str::to_owned),
        user_id: None,
        email: subject.map(|_| "ada@example.com".to_owned()),
        app_id: Some(gatehouse_core::AppId::generate()),
        app_name: Some("Wiki".into()),
        aud: Some("ab".repeat(32)),
        reason_code: code.into(),
        reason: format!("reason {code}"),
        ip_address: "192.0.2.1".into(),
        ray_id: format!("{at:016x}"),
    };
    // A failure before the user's first successful sign-in is theirs too (same IdP subject).
    for f in [failure(Some("tid:ada"), now - 2000, "policy_denied"), failure(None, now - 1500, "access_denied")] {
        api.store.record_failed_login(&f, 100).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let ada = api
        .store
        .record_sign_in(idp, "tid:ada", "ada@example.com", "Ada", &json!({}), now - 1000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bob = api
        .store
        .record_sign_in(idp, "tid:bob", "bob@example.com", "Bob", &json!({}), now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    api.store
        .record_failed_login(&failure(Some("tid:ada"), now - 500, "nonce_mismatch"), 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let (s, b) = api.get(&api.path(&format!("/users/{}/failed_logins", ada.id))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["success"], json!(true));
    let items = b["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{b}");
    assert_eq!(b["result_info"]["total_count"], json!(2));
    let newest = &items[0];
    assert_eq!(newest["expiration"], json!((now - 500 + 30 * 24 * 3_600_000) / 1000));
    let m = &newest["metadata"];
    assert_eq!(m["reason_code"], json!("nonce_mismatch"));
    assert_eq!(m["reason"], json!("reason nonce_mismatch"));
    assert_eq!(m["app_name"], json!("Wiki"));
    assert_eq!(m["aud"], json!("ab".repeat(32)));
    assert_eq!(m["user_email"], json!("ada@example.com"));
    assert_eq!(m["user_uuid"], json!(ada.id));
    assert_eq!(m["ip"], json!("192.0.2.1"));
    assert_eq!(m["idp_id"], json!(idp.to_string()));
    assert_eq!(m["ray_id"], json!(format!("{:016x}", now - 500)));
    assert!(m["datetime"].as_str().is_some_and(|d| d.ends_with('Z')), "{m}");
    assert_eq!(items[1]["metadata"]["reason_code"], json!("policy_denied"));

    let (s, b) = api.get(&api.path(&format!("/users/{}/failed_logins", bob.id))).await;
    assert_eq!((s, b["result"].clone()), (StatusCode::OK, json!([])));
    let (s, b) = api.get(&api.path(&format!("/users/{}/failed_logins", uuid_like()))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = api.get(&api.path("/users/not-a-uuid/failed_logins")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _) = api.call(Method::GET, &api.path(&format!("/users/{}/failed_logins", ada.id)), Some(RO), None).await;
    assert_eq!(s, StatusCode::OK, "read-only tokens may read");
}
