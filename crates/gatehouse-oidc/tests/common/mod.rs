//! Shared helpers: an emulated Entra tenant on port 0, IdP configurations pointing at it,
//! a scripted browser that completes the emulator's sign-in form, and a forwarding proxy that
//! can tamper with token responses.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use gatehouse_core::IdpId;
use gatehouse_core::idp::{AzureCloud, IdentityProvider, IdpConfig, IdpType, ScimSettings};
use gatehouse_core::secret::SecretString;
use gatehouse_entra_sim::{EntraSim, RunningSim, Tenant};
use gatehouse_oidc::{
    CallbackParams, CloudOverrides, CloudUrls, ManualClock, OidcClient, OidcOptions, PendingSignIn, SignInError,
    SignedIn,
};
use uuid::Uuid;

pub const TENANT_ID: &str = "c0ffee00-0000-4000-8000-000000000001";
pub const OTHER_TENANT_ID: &str = "c0ffee00-0000-4000-8000-0000000000ff";
pub const APP: &str = "a0000000-0000-4000-8000-000000000001";
pub const OTHER_APP: &str = "a0000000-0000-4000-8000-000000000002";
pub const NO_CONSENT_APP: &str = "a0000000-0000-4000-8000-000000000003";
pub const NO_GRAPH_APP: &str = "a0000000-0000-4000-8000-000000000004";
pub const NO_CLAIMS_APP: &str = "a0000000-0000-4000-8000-000000000005";
pub const SECRET_ID: &str = "5ec00000-0000-4000-8000-000000000001";
pub const SECRET: &str = "Gh8Q~valid-secret-value";
pub const EXPIRED_SECRET: &str = "Xy8Q~expired-secret-value";
pub const OTHER_SECRET: &str = "Ot8Q~other-secret-value";
pub const REDIRECT: &str = "http://localhost:8400/cdn-cgi/access/callback";

pub const ALICE: &str = "alice@contoso.onmicrosoft.com";
pub const BOB: &str = "bob@contoso.onmicrosoft.com";
pub const FRANK: &str = "frank@contoso.onmicrosoft.com";
pub const DAVE: &str = "dave@contoso.onmicrosoft.com";
pub const PASSWORD: &str = "Passw0rd!";

pub fn tenant_toml(cloud: &str, extra_tenant_lines: &str) -> String {
    format!(
        r#"
[tenant]
id = "{TENANT_ID}"
display_name = "Contoso"
cloud = "{cloud}"
{extra_tenant_lines}

[[groups]]
display_name = "Engineering"
member_groups = ["Platform"]

[[groups]]
display_name = "Platform"

[[groups]]
display_name = "Sales"

[[groups]]
display_name = "Admins"

[[groups]]
display_name = "Support"

[[groups]]
display_name = "All Staff"
security_enabled = false
mail_enabled = true

[[users]]
upn = "{ALICE}"
display_name = "Alice Kim"
mail = "alice@contoso.com"
given_name = "Alice"
password = "{PASSWORD}"
groups = ["Platform", "All Staff"]

[[users]]
upn = "{BOB}"
display_name = "Bob Jones"
password = "{PASSWORD}"
groups = ["Sales"]

[[users]]
upn = "{FRANK}"
display_name = "Frank Three"
mail = "frank@contoso.com"
password = "{PASSWORD}"
groups = ["Sales", "Admins", "Support"]

[[users]]
upn = "{DAVE}"
display_name = "Dave Many"
mail = "dave@contoso.com"
password = "{PASSWORD}"
groups = ["Engineering"]
extra_groups = 250

[[apps]]
client_id = "{APP}"
display_name = "Gatehouse Test"
redirect_uris = ["{REDIRECT}"]
admin_consent = true
group_membership_claims = "SecurityGroup"
optional_claims = ["email", "upn", "given_name"]
graph_permissions = ["User.Read", "GroupMember.Read.All"]
[[apps.secrets]]
id = "{SECRET_ID}"
value = "{SECRET}"
expires = 2099-12-31T00:00:00Z
[[apps.secrets]]
value = "{EXPIRED_SECRET}"
expires = "2020-01-01"

[[apps]]
client_id = "{OTHER_APP}"
display_name = "Other App"
redirect_uris = ["{REDIRECT}"]
admin_consent = true
graph_permissions = ["User.Read"]
[[apps.secrets]]
value = "{OTHER_SECRET}"

[[apps]]
client_id = "{NO_CONSENT_APP}"
display_name = "Unconsented App"
redirect_uris = ["{REDIRECT}"]
graph_permissions = ["User.Read", "GroupMember.Read.All"]
[[apps.secrets]]
value = "{OTHER_SECRET}"

[[apps]]
client_id = "{NO_GRAPH_APP}"
display_name = "Profile Only App"
redirect_uris = ["{REDIRECT}"]
admin_consent = true
group_membership_claims = "SecurityGroup"
optional_claims = ["email"]
graph_permissions = ["User.Read"]
[[apps.secrets]]
value = "{OTHER_SECRET}"

[[apps]]
client_id = "{NO_CLAIMS_APP}"
display_name = "No Optional Claims"
redirect_uris = ["{REDIRECT}"]
admin_consent = true
graph_permissions = ["User.Read", "GroupMember.Read.All"]
[[apps.secrets]]
value = "{OTHER_SECRET}"
"#
    )
}

pub async fn start_with(cloud: &str, extra_tenant_lines: &str) -> RunningSim {
    let tenant = Tenant::from_toml_str(&tenant_toml(cloud, extra_tenant_lines)).expect("test tenant");
    EntraSim::start(tenant, "127.0.0.1:0".parse().unwrap()).await.expect("emulator starts")
}

pub async fn start() -> RunningSim {
    start_with("global", "").await
}

/// The emulator standing in for `cloud`.
pub fn overrides(sim: &RunningSim, cloud: AzureCloud) -> CloudOverrides {
    CloudOverrides::none().with(
        cloud,
        CloudUrls {
            login_url: sim.login_url().to_owned(),
            graph_url: sim.graph_url().to_owned(),
            issuer_url: Some(sim.issuer_url().to_owned()),
        },
    )
}

pub fn entra_idp(client_id: &str, secret: &str) -> IdentityProvider {
    IdentityProvider {
        id: IdpId::generate(),
        name: "Entra ID".into(),
        kind: IdpType::AzureAd,
        config: IdpConfig {
            client_id: client_id.into(),
            directory_id: Some(Uuid::parse_str(TENANT_ID).unwrap()),
            support_groups: true,
            pkce_enabled: true,
            ..IdpConfig::default()
        },
        client_secret: SecretString::new(secret),
        scim: ScimSettings::default(),
        scim_secret_hash: None,
        created_at: 0,
        updated_at: 0,
    }
}

pub fn generic_idp(sim: &RunningSim, client_id: &str, secret: &str) -> IdentityProvider {
    let base = format!("{}/{TENANT_ID}", sim.login_url());
    IdentityProvider {
        id: IdpId::generate(),
        name: "Generic".into(),
        kind: IdpType::Oidc,
        config: IdpConfig {
            client_id: client_id.into(),
            auth_url: Some(format!("{base}/oauth2/v2.0/authorize")),
            token_url: Some(format!("{base}/oauth2/v2.0/token")),
            certs_url: Some(format!("{base}/discovery/v2.0/keys")),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            ..IdpConfig::default()
        },
        client_secret: SecretString::new(secret),
        scim: ScimSettings::default(),
        scim_secret_hash: None,
        created_at: 0,
        updated_at: 0,
    }
}

/// A test environment: an emulator and a relying party with a manual clock.
pub struct Env {
    pub sim: RunningSim,
    pub clock: Arc<ManualClock>,
    pub client: OidcClient,
}

pub fn options(clock: &Arc<ManualClock>) -> OidcOptions {
    OidcOptions { clock: clock.clone(), ..OidcOptions::default() }
}

impl Env {
    pub async fn new() -> Self {
        Self::with(start().await, |_| {})
    }

    pub async fn with_options(f: impl FnOnce(&mut OidcOptions)) -> Self {
        Self::with(start().await, f)
    }

    pub fn with(sim: RunningSim, f: impl FnOnce(&mut OidcOptions)) -> Self {
        let clock = Arc::new(ManualClock::starting_now());
        let mut opts = options(&clock);
        f(&mut opts);
        let client = OidcClient::new(overrides(&sim, AzureCloud::Global), opts).expect("client");
        Self { sim, clock, client }
    }

    /// begin → browser sign-in as `user` → complete.
    pub async fn sign_in(&self, idp: &IdentityProvider, user: &str) -> Result<SignedIn, SignInError> {
        let (url, pending) = self.client.begin(idp, REDIRECT, None).expect("begin");
        let callback = browser_sign_in(url.as_str(), user, PASSWORD).await;
        self.client.complete(idp, &pending, callback).await
    }

    /// begin and sign in, returning the pending sign-in and the callback, without completing.
    pub async fn callback_for(&self, idp: &IdentityProvider, user: &str) -> (PendingSignIn, CallbackParams) {
        let (url, pending) = self.client.begin(idp, REDIRECT, None).expect("begin");
        (pending, browser_sign_in(url.as_str(), user, PASSWORD).await)
    }
}

/// A client that shows redirects instead of following them.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A form in an HTML page: its action and inputs.
pub fn form(html: &str, id: &str) -> Option<(String, Vec<(String, String)>)> {
    let marker = format!("id=\"{id}\"");
    let at = html.find(&marker)?;
    let start = html[..at].rfind("<form")?;
    let end = start + html[start..].find("</form>")?;
    let form = &html[start..end];
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let i = tag.find(&key)? + key.len();
        let j = i + tag[i..].find('"')?;
        Some(tag[i..j].replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&"))
    };
    let head_end = form.find('>')?;
    let action = attr(&form[..head_end], "action")?;
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(i) = rest.find("<input") {
        let tag_end = i + rest[i..].find('>')?;
        let tag = &rest[i..tag_end];
        if let Some(name) = attr(tag, "name") {
            fields.push((name, attr(tag, "value").unwrap_or_default()));
        }
        rest = &rest[tag_end..];
    }
    Some((action, fields))
}

fn origin(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    u.origin().ascii_serialization()
}

/// What a browser does: open the authorize URL, fill in the sign-in form, and return the
/// response to the credentials (a 302 to the redirect URI on success).
pub async fn browser_submit(authorize: &str, user: &str, password: &str, cookie: Option<&str>) -> reqwest::Response {
    let client = http();
    let mut request = client.get(authorize);
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    let page = request.send().await.unwrap();
    if page.status() != 200 {
        return page;
    }
    let html = page.text().await.unwrap();
    let (action, mut fields) = form(&html, "signin").unwrap_or_else(|| panic!("no sign-in form in {html}"));
    for (name, value) in fields.iter_mut() {
        match name.as_str() {
            "username" => *value = user.to_owned(),
            "password" => *value = password.to_owned(),
            _ => {}
        }
    }
    client.post(format!("{}{action}", origin(authorize))).form(&fields).send().await.unwrap()
}

/// The callback parameters of a redirect to the redirect URI.
pub fn callback_of(response: &reqwest::Response) -> CallbackParams {
    assert_eq!(response.status(), 302, "expected a redirect to the redirect URI");
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    let url = url::Url::parse(location).unwrap();
    CallbackParams::from_query(url.query().unwrap_or_default()).unwrap()
}

/// Signs in through the emulator's form and returns the callback parameters.
pub async fn browser_sign_in(authorize: &str, user: &str, password: &str) -> CallbackParams {
    callback_of(&browser_submit(authorize, user, password, None).await)
}

/// The object id of a user.
pub fn user_id(sim: &RunningSim, upn: &str) -> Uuid {
    sim.tenant().read(|t| t.user_by_upn(upn).unwrap().id)
}

/// The object id of a group by display name.
pub fn group_id(sim: &RunningSim, name: &str) -> String {
    sim.tenant().read(|t| t.resolve_group(name).unwrap()).to_string()
}

/// What the tampering proxy does to token responses.
#[derive(Clone, Debug, Default)]
pub enum Tamper {
    /// Forward unchanged.
    #[default]
    None,
    /// Change one character of the ID token's payload (the signature no longer matches).
    FlipPayload,
    /// Replace the ID token with this one.
    ReplaceIdToken(String),
}

/// A proxy in front of the emulator that forwards everything and applies [`Tamper`] to the
/// token endpoint's answers.
pub struct TamperingProxy {
    pub url: String,
    pub mode: Arc<Mutex<Tamper>>,
}

pub async fn tampering_proxy(upstream: &str) -> TamperingProxy {
    use axum::body::{Body, Bytes};
    use axum::extract::State;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::Response;

    #[derive(Clone)]
    struct St {
        upstream: String,
        mode: Arc<Mutex<Tamper>>,
        client: reqwest::Client,
    }

    async fn forward(State(st): State<St>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let path = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
        let mut request = st.client.request(method, format!("{}{path}", st.upstream));
        for name in ["authorization", "content-type", "cookie", "accept"] {
            if let Some(v) = headers.get(name) {
                request = request.header(name, v.to_str().unwrap());
            }
        }
        let upstream = request.body(body).send().await.unwrap();
        let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap();
        let mut out_headers = Vec::new();
        for name in ["location", "content-type", "set-cookie", "retry-after"] {
            for v in upstream.headers().get_all(name) {
                out_headers.push((name, v.to_str().unwrap().to_owned()));
            }
        }
        let mut bytes = upstream.bytes().await.unwrap().to_vec();
        let mode = st.mode.lock().unwrap().clone();
        if path.contains("/oauth2/v2.0/token") && status == StatusCode::OK {
            let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            match mode {
                Tamper::None => {}
                Tamper::FlipPayload => {
                    let token = json["id_token"].as_str().unwrap().to_owned();
                    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
                    use base64::Engine;
                    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                    let mut claims: serde_json::Value =
                        serde_json::from_slice(&engine.decode(&parts[1]).unwrap()).unwrap();
                    claims["name"] = serde_json::json!("Mallory");
                    parts[1] = engine.encode(serde_json::to_vec(&claims).unwrap());
                    json["id_token"] = serde_json::json!(parts.join("."));
                }
                Tamper::ReplaceIdToken(t) => json["id_token"] = serde_json::json!(t),
            }
            bytes = serde_json::to_vec(&json).unwrap();
        }
        let mut response = Response::builder().status(status);
        for (name, value) in out_headers {
            response = response.header(name, value);
        }
        response.body(Body::from(bytes)).unwrap()
    }

    let mode = Arc::new(Mutex::new(Tamper::None));
    let st = St { upstream: upstream.to_owned(), mode: mode.clone(), client: http() };
    let app = axum::Router::new().fallback(forward).with_state(st);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    TamperingProxy { url, mode }
}

/// A loopback port with nothing listening on it.
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}
