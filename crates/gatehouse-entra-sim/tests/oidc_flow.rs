//! The authorization code flow and the ID token's claims, over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use serde_json::Value;

fn id_claims(tokens: &Value) -> Value {
    claims(tokens["id_token"].as_str().unwrap())
}

#[tokio::test]
async fn user_with_mail_gets_entras_claims_and_transitive_security_groups() {
    let sim = start().await;
    let tokens = tokens_for(&sim, APP, SECRET, ALICE).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].is_u64() && tokens["ext_expires_in"].is_u64());
    assert!(tokens["refresh_token"].is_string(), "offline_access was requested");
    let jwt = tokens["id_token"].as_str().unwrap();
    let head = header(jwt);
    assert_eq!(head["alg"], "RS256");
    assert_eq!(head["typ"], "JWT");
    assert!(head["kid"].is_string() && head.get("x5t").is_none(), "v2 tokens carry kid only");

    let c = verify(&sim, jwt).await;
    let alice = user_id(&sim, ALICE).to_string();
    assert_eq!(c["iss"], format!("{}/{TENANT_ID}/v2.0", sim.login_url()));
    assert_eq!(c["aud"], APP);
    assert_eq!(c["tid"], TENANT_ID);
    assert_eq!(c["oid"], alice);
    assert_eq!(c["ver"], "2.0");
    assert_eq!(c["nonce"], "n0nce");
    assert_eq!(c["name"], "Alice Kim");
    assert_eq!(c["preferred_username"], ALICE);
    assert_eq!(c["email"], "alice@contoso.com");
    assert_eq!(c["upn"], ALICE);
    let sub = c["sub"].as_str().unwrap();
    assert_eq!(sub.len(), 43);
    assert_ne!(sub, alice, "sub is pairwise, not the object id");
    let (iat, nbf, exp) = (c["iat"].as_i64().unwrap(), c["nbf"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert_eq!(iat, nbf);
    assert_eq!(exp - iat, 3600);

    let mut groups: Vec<String> =
        c["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().to_owned()).collect();
    groups.sort();
    let mut expected = vec![group_id(&sim, "Platform").to_string(), group_id(&sim, "Engineering").to_string()];
    expected.sort();
    assert_eq!(groups, expected, "transitive security groups; the non-security 'All Staff' is left out");
    assert!(c.get("_claim_names").is_none());
}

#[tokio::test]
async fn user_without_mail_gets_no_email_claim() {
    let sim = start().await;
    let c = id_claims(&tokens_for(&sim, APP, SECRET, BOB).await);
    assert!(c.get("email").is_none(), "{c}");
    assert_eq!(c["preferred_username"], BOB);
    assert_eq!(c["upn"], BOB);
    assert_eq!(c["groups"], serde_json::json!([group_id(&sim, "Sales").to_string()]));
}

#[tokio::test]
async fn email_and_groups_need_the_apps_configuration() {
    let sim = start().await;
    // "Other App" has no optional claims and no groupMembershipClaims.
    let c = id_claims(&tokens_for(&sim, OTHER_APP, OTHER_SECRET, ALICE).await);
    assert!(c.get("email").is_none() && c.get("upn").is_none() && c.get("groups").is_none(), "{c}");
    assert_eq!(c["aud"], OTHER_APP);
}

#[tokio::test]
async fn sub_is_stable_per_app_and_differs_across_apps() {
    let sim = start().await;
    let first = id_claims(&tokens_for(&sim, APP, SECRET, ALICE).await);
    let again = id_claims(&tokens_for(&sim, APP, SECRET, ALICE).await);
    let other = id_claims(&tokens_for(&sim, OTHER_APP, OTHER_SECRET, ALICE).await);
    assert_eq!(first["sub"], again["sub"]);
    assert_ne!(first["sub"], other["sub"]);
    assert_eq!(first["oid"], other["oid"], "oid is the same across apps");
}

#[tokio::test]
async fn overage_starts_above_200_groups() {
    let sim = start().await;
    let at = id_claims(&tokens_for(&sim, APP, SECRET, AT_200).await);
    assert_eq!(at["groups"].as_array().unwrap().len(), 200, "exactly 200 groups still fit in the token");
    assert!(at.get("_claim_names").is_none());

    let over = id_claims(&tokens_for(&sim, APP, SECRET, OVER_200).await);
    assert!(over.get("groups").is_none(), "no groups claim on overage");
    assert_eq!(over["_claim_names"], serde_json::json!({"groups": "src1"}));
    let oid = user_id(&sim, OVER_200);
    assert_eq!(
        over["_claim_sources"]["src1"]["endpoint"],
        format!("https://graph.windows.net/{TENANT_ID}/users/{oid}/getMemberObjects")
    );
}

#[tokio::test]
async fn overage_threshold_is_configurable() {
    let text = tenant_toml("global").replace("cloud = \"global\"", "cloud = \"global\"\noverage_threshold = 1");
    let tenant = gatehouse_entra_sim::Tenant::from_toml_str(&text).unwrap();
    let sim = gatehouse_entra_sim::EntraSim::start(tenant, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let bob = id_claims(&tokens_for(&sim, APP, SECRET, BOB).await);
    assert_eq!(bob["groups"].as_array().unwrap().len(), 1, "one group is at the threshold");
    let alice = id_claims(&tokens_for(&sim, APP, SECRET, ALICE).await);
    assert!(alice.get("groups").is_none() && alice["_claim_names"]["groups"] == "src1");
}

#[tokio::test]
async fn pkce_s256_and_plain() {
    let sim = start().await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(digest.as_ref());
    let s256 = [("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];
    let code = code_for(&sim, APP, ALICE, &s256).await;
    let (status, body) = redeem(&sim, APP, SECRET, &code, &[("code_verifier", verifier)]).await;
    assert_eq!(status, 200, "{body}");

    let code = code_for(&sim, APP, ALICE, &s256).await;
    let (status, body) =
        redeem(&sim, APP, SECRET, &code, &[("code_verifier", "wrong-verifier-wrong-verifier-wrong-verifier")]).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"], serde_json::json!([501481]));

    let code = code_for(&sim, APP, ALICE, &s256).await;
    let (status, body) = redeem(&sim, APP, SECRET, &code, &[]).await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(501481)), "a missing verifier fails too");

    // Without a method, the challenge is plain.
    let code = code_for(&sim, APP, ALICE, &[("code_challenge", "plain-challenge-value")]).await;
    let (status, body) = redeem(&sim, APP, SECRET, &code, &[("code_verifier", "plain-challenge-value")]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn form_post_response_mode_posts_code_and_state() {
    let sim = start().await;
    let mut browser = Browser::default();
    let url = authorize_url(&sim, APP, &[("response_mode", "form_post")]);
    let response = browser.sign_in(&sim, &url, ALICE, PASSWORD).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let (action, fields) = form(&html, "dummy")
        .or_else(|| {
            // The form_post page's form has a name, not an id.
            let html = html.replace("name=\"hiddenform\"", "id=\"dummy\"");
            form(&html, "dummy")
        })
        .unwrap();
    assert_eq!(action, REDIRECT);
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"code") && names.contains(&"state") && names.contains(&"session_state"), "{names:?}");
    let code = &fields.iter().find(|(n, _)| n == "code").unwrap().1;
    let (status, _) = redeem(&sim, APP, SECRET, code, &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn session_cookie_gives_sso_and_prompt_values_behave_like_entra() {
    let sim = start().await;
    let mut browser = Browser::default();

    // prompt=none without a session: login_required, back to the client.
    let response = browser.get(&authorize_url(&sim, APP, &[("prompt", "none")])).await;
    let params = location_params(&response);
    assert_eq!(params["error"], "login_required");
    assert!(params["error_description"].starts_with("AADSTS50058:"));
    assert_eq!(params["state"], "st4te");

    // Sign in once; the cookie is remembered.
    let response = browser.sign_in(&sim, &authorize_url(&sim, APP, &[]), ALICE, PASSWORD).await;
    assert!(location_params(&response).contains_key("code"));
    assert!(browser.cookie.is_some());

    // prompt=none and no prompt: a code straight away.
    for extra in [vec![("prompt", "none")], vec![]] {
        let response = browser.get(&authorize_url(&sim, OTHER_APP, &extra)).await;
        assert!(location_params(&response).contains_key("code"), "{extra:?}");
    }

    // prompt=login forces the form even with a session.
    let response = browser.get(&authorize_url(&sim, APP, &[("prompt", "login")])).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(form(&html, "signin").is_some());
    assert!(form(&html, "continue").is_none());

    // prompt=select_account offers the signed-in account.
    let response = browser.get(&authorize_url(&sim, APP, &[("prompt", "select_account")])).await;
    let html = response.text().await.unwrap();
    assert!(html.contains(ALICE));
    let (action, fields) = form(&html, "continue").unwrap();
    let response = browser.post_form(&format!("{}{action}", sim.login_url()), &fields).await;
    assert!(location_params(&response).contains_key("code"));

    // prompt=consent shows the permissions requested.
    let response = browser.get(&authorize_url(&sim, APP, &[("prompt", "consent")])).await;
    let html = response.text().await.unwrap();
    assert!(html.contains("Permissions requested") && html.contains("GroupMember.Read.All"));

    // max_age=0 forces credentials again.
    let response = browser.get(&authorize_url(&sim, APP, &[("max_age", "0")])).await;
    assert_eq!(response.status(), 200);

    // Logout ends the session.
    let logout = format!(
        "{}/{TENANT_ID}/oauth2/v2.0/logout?post_logout_redirect_uri={}&state=bye",
        sim.login_url(),
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let response = browser.get(&logout).await;
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], format!("{REDIRECT}?state=bye"));
    assert!(browser.cookie.is_none());
    let response = browser.get(&authorize_url(&sim, APP, &[("prompt", "none")])).await;
    assert_eq!(location_params(&response)["error"], "login_required");
}

#[tokio::test]
async fn logout_to_an_unregistered_uri_shows_the_signed_out_page() {
    let sim = start().await;
    let url = format!(
        "{}/{TENANT_ID}/oauth2/v2.0/logout?post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F",
        sim.login_url()
    );
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("You signed out of your account"));
}

#[tokio::test]
async fn client_secret_basic_is_accepted() {
    let sim = start().await;
    let code = code_for(&sim, APP, ALICE, &[]).await;
    let basic = STANDARD
        .encode(format!("{APP}:{}", url::form_urlencoded::byte_serialize(SECRET.as_bytes()).collect::<String>()));
    let response = client()
        .post(token_url(&sim))
        .header("authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store, no-cache");
    let body: Value = response.json().await.unwrap();
    assert!(body["id_token"].is_string());
}

#[tokio::test]
async fn refresh_tokens_need_offline_access_and_rotate() {
    let sim = start().await;
    let code = code_for(&sim, APP, ALICE, &[("scope", "openid profile")]).await;
    let (_, body) = redeem(&sim, APP, SECRET, &code, &[]).await;
    assert!(body.get("refresh_token").is_none(), "no offline_access, no refresh token");
    assert!(body["id_token"].is_string());

    let tokens = tokens_for(&sim, APP, SECRET, ALICE).await;
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String| {
        let url = token_url(&sim);
        async move {
            let response = client()
                .post(url)
                .form(&[
                    ("client_id", APP),
                    ("client_secret", SECRET),
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                ])
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, renewed) = refresh(first.clone()).await;
    assert_eq!(status, 200, "{renewed}");
    let second = renewed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second, "a new refresh token each time");
    let c = claims(renewed["id_token"].as_str().unwrap());
    assert_eq!(c["oid"], user_id(&sim, ALICE).to_string());
    assert!(c.get("nonce").is_none());
    let (status, _) = refresh(first).await;
    assert_eq!(status, 200, "the old refresh token is not revoked");

    // Inactivity beyond the lifetime (90 days) expires it.
    sim.advance_clock(std::time::Duration::from_secs(91 * 24 * 3600));
    let (status, body) = refresh(second).await;
    assert_eq!(status, 400);
    assert_eq!(body["error_codes"], serde_json::json!([700082]));
}

#[tokio::test]
async fn code_flow_without_openid_returns_no_id_token() {
    let sim = start().await;
    let code = code_for(&sim, APP, ALICE, &[("scope", "https://graph.microsoft.com/User.Read")]).await;
    let (status, body) = redeem(&sim, APP, SECRET, &code, &[]).await;
    assert_eq!(status, 200);
    assert!(body.get("id_token").is_none());
    assert!(body["access_token"].is_string());
    assert!(body["scope"].as_str().unwrap().contains("https://graph.microsoft.com/GroupMember.Read.All"));
}

#[tokio::test]
async fn access_token_is_for_graph_with_consented_scopes() {
    let sim = start().await;
    let tokens = tokens_for(&sim, APP, SECRET, ALICE).await;
    let access = verify(&sim, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(access["aud"], "00000003-0000-0000-c000-000000000000");
    assert_eq!(access["iss"], format!("https://sts.windows.net/{TENANT_ID}/"));
    assert_eq!(access["ver"], "1.0");
    assert_eq!(access["appid"], APP);
    assert_eq!(access["idtyp"], "user");
    let scp: Vec<&str> = access["scp"].as_str().unwrap().split(' ').collect();
    assert!(scp.contains(&"GroupMember.Read.All") && scp.contains(&"User.Read") && scp.contains(&"openid"), "{scp:?}");
}

#[tokio::test]
async fn authorize_accepts_post_and_a_missing_redirect_uri() {
    let sim = start().await;
    let mut browser = Browser::default();
    let url = authorize_url(&sim, APP, &[]);
    let url = url.replace(
        &format!("redirect_uri={}&", url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()),
        "",
    );
    assert!(!url.contains("redirect_uri"));
    let response = browser.sign_in(&sim, &url, ALICE, PASSWORD).await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "Entra picks the first registered URI: {location}");

    let form_body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("client_id", APP), ("response_type", "code"), ("redirect_uri", REDIRECT), ("scope", "openid")])
        .finish();
    let response = client()
        .post(format!("{}/{TENANT_ID}/oauth2/v2.0/authorize", sim.login_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(form(&response.text().await.unwrap(), "signin").is_some());
}

#[tokio::test]
async fn userinfo_answers_with_a_graph_token() {
    let sim = start().await;
    let tokens = tokens_for(&sim, APP, SECRET, ALICE).await;
    let id = claims(tokens["id_token"].as_str().unwrap());
    let response =
        graph_get(&format!("{}/oidc/userinfo", sim.graph_url()), tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), 200);
    let info: Value = response.json().await.unwrap();
    assert_eq!(info["sub"], id["sub"]);
    assert_eq!(info["email"], "alice@contoso.com");
}
