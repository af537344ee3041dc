//! Every AADSTS case the relying party must diagnose, in the form Entra returns it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;

/// Checks the token endpoint's error shape and returns the description.
fn assert_token_error(status: u16, body: &Value, want_status: u16, error: &str, code: u64) -> String {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], serde_json::json!([code]));
    let description = body["error_description"].as_str().unwrap().to_owned();
    assert!(description.starts_with(&format!("AADSTS{code}: ")), "{description}");
    assert!(description.contains("\r\nTrace ID: ") && description.contains("\r\nCorrelation ID: "));
    let timestamp = body["timestamp"].as_str().unwrap();
    assert_eq!(timestamp.len(), "2016-01-09 02:02:12Z".len(), "{timestamp}");
    assert!(timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b' ');
    assert!(uuid::Uuid::parse_str(body["trace_id"].as_str().unwrap()).is_ok());
    assert!(uuid::Uuid::parse_str(body["correlation_id"].as_str().unwrap()).is_ok());
    description
}

#[tokio::test]
async fn aadsts50011_redirect_uri_mismatch_shows_the_uri_on_an_error_page() {
    let sim = start().await;
    let wrong = "http://auth.localhost:8080/cdn-cgi/access/callback?x=<b>";
    let response = client().get(authorize_url(&sim, APP, &[("redirect_uri", wrong)])).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none(), "never redirected to an unregistered URI");
    let html = response.text().await.unwrap();
    assert!(html.contains("AADSTS50011: The redirect URI"), "{html}");
    assert!(
        html.contains("http://auth.localhost:8080/cdn-cgi/access/callback?x=&lt;b&gt;"),
        "the mismatched URI, escaped"
    );
    assert!(html.contains(APP));
    assert!(html.contains("Sorry, but we\u{2019}re having trouble signing you in."));
}

#[tokio::test]
async fn aadsts7000215_invalid_secret_value() {
    let sim = start().await;
    let code = code_for(&sim, APP, ALICE, &[]).await;
    let (status, body) = redeem(&sim, APP, "not-the-secret", &code, &[]).await;
    let d = assert_token_error(status, &body, 401, "invalid_client", 7000215);
    assert!(d.contains("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"));
    assert!(!d.contains("The value sent is the secret ID"));
}

#[tokio::test]
async fn aadsts7000215_secret_id_sent_instead_of_value_is_named() {
    let sim = start().await;
    let code = code_for(&sim, APP, ALICE, &[]).await;
    let (status, body) = redeem(&sim, APP, SECRET_ID, &code, &[]).await;
    let d = assert_token_error(status, &body, 401, "invalid_client", 7000215);
    assert!(d.contains(&format!("The value sent is the secret ID '{SECRET_ID}'")), "{d}");
    // The code was not consumed by a failed client authentication.
    let (status, _) = redeem(&sim, APP, SECRET, &code, &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn aadsts7000222_expired_secret() {
    let sim = start().await;
    let code = code_for(&sim, APP, ALICE, &[]).await;
    let (status, body) = redeem(&sim, APP, EXPIRED_SECRET, &code, &[]).await;
    let d = assert_token_error(status, &body, 401, "invalid_client", 7000222);
    assert!(d.contains(&format!("The provided client secret keys for app '{APP}' are expired.")));
}

#[tokio::test]
async fn aadsts7000222_when_the_clock_passes_the_expiry() {
    let sim = start().await;
    let code = code_for(&sim, APP, ALICE, &[]).await;
    // 80 years on, the valid secret has expired too.
    sim.advance_clock(std::time::Duration::from_secs(80 * 366 * 24 * 3600));
    let (status, body) = redeem(&sim, APP, SECRET, &code, &[]).await;
    assert_token_error(status, &body, 401, "invalid_client", 7000222);
}

#[tokio::test]
async fn aadsts7000218_missing_secret() {
    let sim = start().await;
    let code = code_for(&sim, APP, ALICE, &[]).await;
    let response = client()
        .post(token_url(&sim))
        .form(&[
            ("client_id", APP),
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_token_error(status, &response.json().await.unwrap(), 401, "invalid_client", 7000218);
}

#[tokio::test]
async fn aadsts65001_consent_not_granted() {
    let sim = start().await;
    let mut browser = Browser::default();
    let response = browser.sign_in(&sim, &authorize_url(&sim, NO_CONSENT_APP, &[]), ALICE, PASSWORD).await;
    let params = location_params(&response);
    assert_eq!(params["error"], "consent_required");
    assert!(params["error_description"].starts_with(&format!(
        "AADSTS65001: The user or administrator has not consented to use the application with ID '{NO_CONSENT_APP}' named 'Unconsented App'."
    )));
    assert_eq!(params["state"], "st4te");
    assert!(!params.contains_key("code"));

    // Asking for a Graph permission the app was not granted is the same error.
    let response = browser
        .get(&authorize_url(&sim, OTHER_APP, &[("scope", "openid https://graph.microsoft.com/Directory.Read.All")]))
        .await;
    assert_eq!(location_params(&response)["error"], "consent_required");

    // Consent revoked between authorize and token: invalid_grant with the same code.
    let code = code_for(&sim, APP, ALICE, &[]).await;
    sim.tenant()
        .edit(|t| {
            t.update_app(
                APP.parse().unwrap(),
                gatehouse_entra_sim::tenant::AppUpdate { admin_consent: Some(false), ..Default::default() },
            )
        })
        .unwrap();
    let (status, body) = redeem(&sim, APP, SECRET, &code, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(body["error_codes"], serde_json::json!([65001]));
}

#[tokio::test]
async fn aadsts700016_unknown_client() {
    let sim = start().await;
    let unknown = "a0000000-0000-4000-8000-0000000000ff";
    let (status, body) = redeem(&sim, unknown, SECRET, "whatever", &[]).await;
    let d = assert_token_error(status, &body, 400, "unauthorized_client", 700016);
    assert!(d.contains(&format!("Application with identifier '{unknown}' was not found in the directory 'Contoso'.")));

    let response = client().get(authorize_url(&sim, unknown, &[])).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("AADSTS700016"));
}

#[tokio::test]
async fn aadsts50126_bad_password_and_50034_unknown_user_rerender_the_form() {
    let sim = start().await;
    let mut browser = Browser::default();
    let response = browser.sign_in(&sim, &authorize_url(&sim, APP, &[]), ALICE, "wrong").await;
    assert_eq!(response.status(), 400);
    let html = response.text().await.unwrap();
    assert!(html.contains("Your account or password is incorrect."));
    assert!(html.contains("AADSTS50126: Error validating credentials due to invalid username or password."));
    assert!(browser.cookie.is_none());

    // The same page can be retried with the right password.
    let (action, mut fields) = form(&html, "signin").unwrap();
    for (name, value) in fields.iter_mut() {
        match name.as_str() {
            "username" => *value = ALICE.into(),
            "password" => *value = PASSWORD.into(),
            _ => {}
        }
    }
    let response = browser.post_form(&format!("{}{action}", sim.login_url()), &fields).await;
    assert!(location_params(&response).contains_key("code"));

    let response = Browser::default()
        .sign_in(&sim, &authorize_url(&sim, APP, &[]), "nobody@contoso.onmicrosoft.com", PASSWORD)
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("AADSTS50034"));
}

#[tokio::test]
async fn aadsts54005_code_reuse() {
    let sim = start().await;
    let code = code_for(&sim, APP, ALICE, &[]).await;
    let (status, _) = redeem(&sim, APP, SECRET, &code, &[]).await;
    assert_eq!(status, 200);
    let (status, body) = redeem(&sim, APP, SECRET, &code, &[]).await;
    let d = assert_token_error(status, &body, 400, "invalid_grant", 54005);
    assert!(d.contains("OAuth2 Authorization code was already redeemed"));
}

#[tokio::test]
async fn concurrent_redemptions_of_one_code_succeed_once() {
    let sim = start().await;
    let code = code_for(&sim, APP, ALICE, &[]).await;
    let (a, b) = tokio::join!(redeem(&sim, APP, SECRET, &code, &[]), redeem(&sim, APP, SECRET, &code, &[]));
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400]);
    let failed = if a.0 == 400 { a.1 } else { b.1 };
    assert_eq!(failed["error_codes"], serde_json::json!([54005]));
}

#[tokio::test]
async fn aadsts70008_code_expiry() {
    let sim = start().await;
    let code = code_for(&sim, APP, ALICE, &[]).await;
    sim.advance_clock(std::time::Duration::from_secs(601));
    let (status, body) = redeem(&sim, APP, SECRET, &code, &[]).await;
    let d = assert_token_error(status, &body, 400, "invalid_grant", 70008);
    assert!(d.contains("has expired due to inactivity"));
}

#[tokio::test]
async fn aadsts70008_through_the_admin_clock() {
    let sim = start().await;
    let code = code_for(&sim, APP, ALICE, &[]).await;
    let response = client()
        .post(format!("{}/clock/advance", sim.admin_url()))
        .json(&serde_json::json!({"seconds": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, body) = redeem(&sim, APP, SECRET, &code, &[]).await;
    assert_token_error(status, &body, 400, "invalid_grant", 70008);
}

#[tokio::test]
async fn aadsts50057_disabled_user_cannot_sign_in() {
    let sim = start().await;
    let response = Browser::default().sign_in(&sim, &authorize_url(&sim, APP, &[]), CAROL, PASSWORD).await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    let html = response.text().await.unwrap();
    assert!(html.contains("AADSTS50057: The user account is disabled."));

    // Disabled after the code was issued: the token endpoint refuses too.
    let code = code_for(&sim, APP, BOB, &[]).await;
    let bob = user_id(&sim, BOB);
    sim.tenant().edit(|t| t.set_user_enabled(bob, false)).unwrap();
    let (status, body) = redeem(&sim, APP, SECRET, &code, &[]).await;
    assert_token_error(status, &body, 400, "invalid_grant", 50057);
}

#[tokio::test]
async fn other_token_errors_keep_entras_shape() {
    let sim = start().await;
    let response = client()
        .post(token_url(&sim))
        .header("client-request-id", "11111111-2222-4333-8444-555555555555")
        .form(&[("client_secret", SECRET), ("grant_type", "authorization_code")])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_token_error(status, &body, 400, "invalid_request", 900144);
    assert_eq!(body["correlation_id"], "11111111-2222-4333-8444-555555555555", "Entra echoes client-request-id");

    let (status, body) = redeem(&sim, APP, SECRET, "garbage", &[]).await;
    assert_token_error(status, &body, 400, "invalid_grant", 9002313);

    let code = code_for(&sim, APP, ALICE, &[]).await;
    let (status, body) = redeem(&sim, OTHER_APP, OTHER_SECRET, &code, &[]).await;
    assert_token_error(status, &body, 400, "invalid_grant", 70000);

    let response = client()
        .post(token_url(&sim))
        .form(&[("client_id", APP), ("client_secret", SECRET), ("grant_type", "password")])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_token_error(status, &response.json().await.unwrap(), 400, "unsupported_grant_type", 70003);

    let code = code_for(&sim, APP, ALICE, &[]).await;
    let mut form = vec![("client_id", APP), ("client_secret", SECRET), ("grant_type", "authorization_code")];
    form.extend([("code", code.as_str()), ("redirect_uri", "http://localhost:8400/other")]);
    let response = client().post(token_url(&sim)).form(&form).send().await.unwrap();
    let status = response.status().as_u16();
    assert_token_error(status, &response.json().await.unwrap(), 400, "invalid_grant", 500112);
}

#[tokio::test]
async fn authorize_errors_after_the_redirect_uri_go_back_to_the_client() {
    let sim = start().await;
    let response = client().get(authorize_url(&sim, APP, &[("response_type", "id_token")])).send().await.unwrap();
    let params = location_params(&response);
    assert_eq!(params["error"], "unsupported_response_type");
    assert!(params["error_description"].starts_with("AADSTS700054:"));

    let response =
        client().get(authorize_url(&sim, APP, &[("scope", "openid api://someone-else/read")])).send().await.unwrap();
    let params = location_params(&response);
    assert_eq!(params["error"], "invalid_resource");
    assert!(params["error_description"].starts_with("AADSTS500011:"));

    let response = client().get(authorize_url(&sim, APP, &[("prompt", "sometimes")])).send().await.unwrap();
    assert_eq!(location_params(&response)["error"], "invalid_request");

    // Errors honour the response mode.
    let response = client()
        .get(authorize_url(&sim, APP, &[("response_type", "token"), ("response_mode", "form_post")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("name=\"error\" value=\"unsupported_response_type\""), "{html}");
}
