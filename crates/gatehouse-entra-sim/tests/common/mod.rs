//! Shared helpers for the emulator's integration tests: a test tenant, an HTTP client that
//! follows no redirects and keeps the session cookie by hand, and a scripted sign-in.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_entra_sim::{EntraSim, RunningSim, Tenant};
use serde_json::Value;

pub const TENANT_ID: &str = "c0ffee00-0000-4000-8000-000000000001";
pub const APP: &str = "a0000000-0000-4000-8000-000000000001";
pub const OTHER_APP: &str = "a0000000-0000-4000-8000-000000000002";
pub const NO_CONSENT_APP: &str = "a0000000-0000-4000-8000-000000000003";
pub const NO_GRAPH_APP: &str = "a0000000-0000-4000-8000-000000000004";
pub const SECRET_ID: &str = "5ec00000-0000-4000-8000-000000000001";
pub const SECRET: &str = "Gh8Q~valid-secret-value";
pub const EXPIRED_SECRET_ID: &str = "5ec00000-0000-4000-8000-000000000002";
pub const EXPIRED_SECRET: &str = "Xy8Q~expired-secret-value";
pub const OTHER_SECRET: &str = "Ot8Q~other-secret-value";
pub const REDIRECT: &str = "http://localhost:8400/callback";

pub const ALICE: &str = "alice@contoso.onmicrosoft.com";
pub const BOB: &str = "bob@contoso.onmicrosoft.com";
pub const CAROL: &str = "carol@contoso.onmicrosoft.com";
pub const DAVE: &str = "dave@contoso.onmicrosoft.com";
pub const AT_200: &str = "exact200@contoso.onmicrosoft.com";
pub const OVER_200: &str = "over200@contoso.onmicrosoft.com";
pub const PASSWORD: &str = "Passw0rd!";

/// The tenant most tests use. `{cloud}` is replaced by the cloud name.
pub fn tenant_toml(cloud: &str) -> String {
    format!(
        r#"
[tenant]
id = "{TENANT_ID}"
display_name = "Contoso"
domain = "contoso.onmicrosoft.com"
cloud = "{cloud}"

[[groups]]
display_name = "Engineering"
member_groups = ["Platform"]

[[groups]]
display_name = "Platform"

[[groups]]
display_name = "Sales"

[[groups]]
display_name = "All Staff"
security_enabled = false
mail_enabled = true

[[users]]
upn = "{ALICE}"
display_name = "Alice Kim"
mail = "alice@contoso.com"
given_name = "Alice"
surname = "Kim"
password = "{PASSWORD}"
groups = ["Platform", "All Staff"]

[[users]]
upn = "{BOB}"
display_name = "Bob Jones"
password = "{PASSWORD}"
groups = ["Sales"]

[[users]]
upn = "{CAROL}"
display_name = "Carol Disabled"
mail = "carol@contoso.com"
password = "{PASSWORD}"
enabled = false

[[users]]
upn = "{DAVE}"
display_name = "Dave Many"
password = "{PASSWORD}"
extra_groups = 250

[[users]]
upn = "{AT_200}"
display_name = "Exactly Two Hundred"
password = "{PASSWORD}"
extra_groups = 200

[[users]]
upn = "{OVER_200}"
display_name = "Two Hundred And One"
password = "{PASSWORD}"
extra_groups = 201

[[apps]]
client_id = "{APP}"
display_name = "Gatehouse Test"
redirect_uris = ["{REDIRECT}", "http://localhost:8400/other"]
admin_consent = true
group_membership_claims = "SecurityGroup"
optional_claims = ["email", "upn"]
graph_permissions = ["User.Read", "GroupMember.Read.All"]
[[apps.secrets]]
id = "{SECRET_ID}"
value = "{SECRET}"
expires = 2099-12-31T00:00:00Z
[[apps.secrets]]
id = "{EXPIRED_SECRET_ID}"
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
graph_permissions = ["User.Read", "Directory.Read.All"]
[[apps.secrets]]
value = "{OTHER_SECRET}"

[[apps]]
client_id = "{NO_GRAPH_APP}"
display_name = "Profile Only App"
redirect_uris = ["{REDIRECT}"]
admin_consent = true
graph_permissions = ["User.Read"]
[[apps.secrets]]
value = "{OTHER_SECRET}"
"#
    )
}

pub async fn start() -> RunningSim {
    start_cloud("global").await
}

pub async fn start_cloud(cloud: &str) -> RunningSim {
    let tenant = Tenant::from_toml_str(&tenant_toml(cloud)).expect("test tenant");
    EntraSim::start(tenant, "127.0.0.1:0".parse().unwrap()).await.expect("emulator starts")
}

/// A client that shows redirects instead of following them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The authorize URL for `client_id` with the usual parameters plus `extra`.
pub fn authorize_url(sim: &RunningSim, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut params: Vec<(&str, &str)> = vec![
        ("client_id", client_id),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile email offline_access"),
        ("state", "st4te"),
        ("nonce", "n0nce"),
    ];
    for (k, v) in extra {
        params.retain(|(key, _)| key != k);
        params.push((k, v));
    }
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    format!("{}/{TENANT_ID}/oauth2/v2.0/authorize?{query}", sim.login_url())
}

/// A form in an HTML page: its action and hidden/text inputs.
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
        Some(unescape(&tag[i..j]))
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

pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// What a browser holds: the session cookie, if any.
#[derive(Clone, Debug, Default)]
pub struct Browser {
    pub cookie: Option<String>,
}

impl Browser {
    pub fn remember(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            if let Some(v) = pair.strip_prefix("ESTSAUTH=") {
                self.cookie = (!v.is_empty()).then(|| v.to_owned());
            }
        }
    }

    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        let mut request = client().get(url);
        if let Some(c) = &self.cookie {
            request = request.header("cookie", format!("ESTSAUTH={c}"));
        }
        let response = request.send().await.unwrap();
        self.remember(&response);
        response
    }

    pub async fn post_form(&mut self, url: &str, fields: &[(String, String)]) -> reqwest::Response {
        let mut request = client().post(url).form(fields);
        if let Some(c) = &self.cookie {
            request = request.header("cookie", format!("ESTSAUTH={c}"));
        }
        let response = request.send().await.unwrap();
        self.remember(&response);
        response
    }

    /// Opens the authorize URL and, when the sign-in page shows, submits the credentials.
    pub async fn sign_in(
        &mut self,
        sim: &RunningSim,
        authorize: &str,
        user: &str,
        password: &str,
    ) -> reqwest::Response {
        let page = self.get(authorize).await;
        if page.status() != 200 {
            return page;
        }
        let html = page.text().await.unwrap();
        let (action, mut fields) = form(&html, "signin").expect("a sign-in form");
        for (name, value) in fields.iter_mut() {
            match name.as_str() {
                "username" => *value = user.to_owned(),
                "password" => *value = password.to_owned(),
                _ => {}
            }
        }
        self.post_form(&format!("{}{action}", sim.login_url()), &fields).await
    }
}

/// The query parameters of a redirect's `Location`.
pub fn location_params(response: &reqwest::Response) -> HashMap<String, String> {
    assert_eq!(response.status(), 302, "expected a redirect");
    let location = response.headers()["location"].to_str().unwrap();
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

/// Signs `user` in to `client_id` and returns the authorization code.
pub async fn code_for(sim: &RunningSim, client_id: &str, user: &str, extra: &[(&str, &str)]) -> String {
    let mut browser = Browser::default();
    let response = browser.sign_in(sim, &authorize_url(sim, client_id, extra), user, PASSWORD).await;
    let params = location_params(&response);
    assert_eq!(params.get("state").map(String::as_str), Some("st4te"));
    params.get("code").cloned().unwrap_or_else(|| panic!("no code: {params:?}"))
}

pub fn token_url(sim: &RunningSim) -> String {
    format!("{}/{TENANT_ID}/oauth2/v2.0/token", sim.login_url())
}

/// Redeems a code with `client_secret_post`.
pub async fn redeem(
    sim: &RunningSim,
    client_id: &str,
    secret: &str,
    code: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form: Vec<(&str, &str)> = vec![
        ("client_id", client_id),
        ("client_secret", secret),
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    form.extend_from_slice(extra);
    let response = client().post(token_url(sim)).form(&form).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Signs in and returns the token response.
pub async fn tokens_for(sim: &RunningSim, client_id: &str, secret: &str, user: &str) -> Value {
    let code = code_for(sim, client_id, user, &[]).await;
    let (status, body) = redeem(sim, client_id, secret, &code, &[]).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A JWT's payload, not verified.
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A JWT's header.
pub fn header(jwt: &str) -> Value {
    let head = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
}

/// Verifies a JWT's signature against the emulator's published keys and returns its claims.
pub async fn verify(sim: &RunningSim, jwt: &str) -> Value {
    let jwks: Value = client()
        .get(format!("{}/{TENANT_ID}/discovery/v2.0/keys", sim.login_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = header(jwt)["kid"].as_str().unwrap().to_owned();
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("kid is published");
    let decoding =
        jsonwebtoken::DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(jwt, &decoding, &validation).expect("signature verifies").claims
}

/// A Graph GET with a bearer token.
pub async fn graph_get(url: &str, token: &str) -> reqwest::Response {
    client().get(url).bearer_auth(token).send().await.unwrap()
}

/// The object id of a user.
pub fn user_id(sim: &RunningSim, upn: &str) -> uuid::Uuid {
    sim.tenant().read(|t| t.user_by_upn(upn).unwrap().id)
}

/// The object id of a group by display name.
pub fn group_id(sim: &RunningSim, name: &str) -> uuid::Uuid {
    sim.tenant().read(|t| t.resolve_group(name).unwrap())
}
