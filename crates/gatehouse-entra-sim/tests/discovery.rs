//! Discovery documents, signing keys and cloud host mapping, over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;

async fn get_json(url: &str) -> (reqwest::header::HeaderMap, u16, Value) {
    let response = client().get(url).send().await.unwrap();
    let headers = response.headers().clone();
    let status = response.status().as_u16();
    (headers, status, response.json().await.unwrap())
}

#[tokio::test]
async fn tenant_discovery_has_entras_fields_and_concrete_issuer() {
    let sim = start().await;
    let base = sim.login_url().to_owned();
    let (headers, status, doc) = get_json(&sim.discovery_url()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "max-age=86400, private");
    assert_eq!(headers["access-control-allow-origin"], "*");

    let mut keys: Vec<&str> = doc.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = vec![
        "token_endpoint",
        "token_endpoint_auth_methods_supported",
        "jwks_uri",
        "response_modes_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "response_types_supported",
        "scopes_supported",
        "issuer",
        "request_uri_parameter_supported",
        "userinfo_endpoint",
        "authorization_endpoint",
        "device_authorization_endpoint",
        "http_logout_supported",
        "frontchannel_logout_supported",
        "end_session_endpoint",
        "claims_supported",
        "kerberos_endpoint",
        "tenant_region_scope",
        "cloud_instance_name",
        "cloud_graph_host_name",
        "msgraph_host",
        "rbac_url",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected, "the captured key set of Entra's discovery document");

    assert_eq!(doc["issuer"], format!("{base}/{TENANT_ID}/v2.0"));
    assert_eq!(doc["issuer"], sim.issuer());
    assert_eq!(doc["authorization_endpoint"], format!("{base}/{TENANT_ID}/oauth2/v2.0/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{base}/{TENANT_ID}/oauth2/v2.0/token"));
    assert_eq!(doc["jwks_uri"], format!("{base}/{TENANT_ID}/discovery/v2.0/keys"));
    assert_eq!(doc["end_session_endpoint"], format!("{base}/{TENANT_ID}/oauth2/v2.0/logout"));
    assert_eq!(doc["userinfo_endpoint"], format!("{}/oidc/userinfo", sim.graph_url()));
    assert_eq!(doc["subject_types_supported"], serde_json::json!(["pairwise"]));
    assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_post", "private_key_jwt", "client_secret_basic"])
    );
    assert!(doc.get("code_challenge_methods_supported").is_none(), "Entra does not advertise PKCE methods");
    assert_eq!(doc["cloud_instance_name"], "microsoftonline.com");
    assert_eq!(doc["cloud_graph_host_name"], "graph.windows.net");
    assert_eq!(doc["msgraph_host"], sim.graph_url().trim_start_matches("http://"));
    assert_eq!(doc["tenant_region_scope"], "WW");
    assert_eq!(doc["request_uri_parameter_supported"], false);
}

#[tokio::test]
async fn domain_authority_advertises_the_tenant_guid() {
    let sim = start().await;
    let url = format!("{}/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration", sim.login_url());
    let (_, status, doc) = get_json(&url).await;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"], sim.issuer());
    assert!(doc["token_endpoint"].as_str().unwrap().contains(TENANT_ID));
}

#[tokio::test]
async fn common_and_organizations_use_the_tenantid_template() {
    let sim = start().await;
    for alias in ["common", "organizations"] {
        let url = format!("{}/{alias}/v2.0/.well-known/openid-configuration", sim.login_url());
        let (_, status, doc) = get_json(&url).await;
        assert_eq!(status, 200);
        assert_eq!(doc["issuer"], format!("{}/{{tenantid}}/v2.0", sim.issuer_url()));
        assert_eq!(doc["token_endpoint"], format!("{}/{alias}/oauth2/v2.0/token", sim.login_url()));
        assert_eq!(doc["tenant_region_scope"], Value::Null);
    }
}

#[tokio::test]
async fn unknown_tenant_is_aadsts90002() {
    let sim = start().await;
    let url = format!("{}/00000000-0000-4000-8000-00000000dead/v2.0/.well-known/openid-configuration", sim.login_url());
    let (_, status, body) = get_json(&url).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_tenant");
    assert_eq!(body["error_codes"], serde_json::json!([90002]));
    assert!(body["error_description"].as_str().unwrap().starts_with("AADSTS90002: Tenant '00000000-"));
}

#[tokio::test]
async fn keys_carry_kid_x5t_x5c_and_template_issuer_and_rotate_keeping_old_ones() {
    let sim = start().await;
    let keys_url = format!("{}/{TENANT_ID}/discovery/v2.0/keys", sim.login_url());
    let (_, status, jwks) = get_json(&keys_url).await;
    assert_eq!(status, 200);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["e"], "AQAB");
    assert_eq!(key["kid"], key["x5t"]);
    assert_eq!(key["issuer"], format!("{}/{{tenantid}}/v2.0", sim.issuer_url()));
    assert_eq!(key["x5c"].as_array().unwrap().len(), 1);
    let old_kid = key["kid"].as_str().unwrap().to_owned();

    // A token signed before the rotation...
    let before = tokens_for(&sim, APP, SECRET, ALICE).await["id_token"].as_str().unwrap().to_owned();
    assert_eq!(header(&before)["kid"], old_kid.as_str());

    let new_kid = sim.rotate_keys().unwrap();
    assert_ne!(new_kid, old_kid);
    let (_, _, jwks) = get_json(&keys_url).await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, vec![new_kid.as_str(), old_kid.as_str()], "the old key stays published");

    // ...still verifies, and new tokens use the new key.
    verify(&sim, &before).await;
    let after = tokens_for(&sim, APP, SECRET, ALICE).await["id_token"].as_str().unwrap().to_owned();
    assert_eq!(header(&after)["kid"], new_kid.as_str());
    verify(&sim, &after).await;

    // The same keys on the common authority and v1 metadata.
    let (_, status, common) = get_json(&format!("{}/common/discovery/v2.0/keys", sim.login_url())).await;
    assert_eq!(status, 200);
    assert_eq!(common["keys"].as_array().unwrap().len(), 2);
    let (_, status, v1) = get_json(&format!("{}/{TENANT_ID}/discovery/keys", sim.login_url())).await;
    assert_eq!(status, 200);
    assert_eq!(v1["keys"][0]["issuer"], "https://sts.windows.net/{tenantid}/");
}

#[tokio::test]
async fn admin_rotation_can_retire_old_keys() {
    let sim = start().await;
    let before = tokens_for(&sim, APP, SECRET, ALICE).await["id_token"].as_str().unwrap().to_owned();
    let response = client()
        .post(format!("{}/keys/rotate", sim.admin_url()))
        .json(&serde_json::json!({"keep_previous": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["published"].as_array().unwrap().len(), 1);
    assert_ne!(header(&before)["kid"], body["kid"], "the token's kid is no longer published");
    assert_eq!(sim.published_kids(), vec![body["kid"].as_str().unwrap().to_owned()]);
}

#[tokio::test]
async fn china_issuer_host_differs_from_the_endpoint_host() {
    let sim = start_cloud("china").await;
    assert_ne!(sim.issuer_url(), sim.login_url());
    let (_, status, doc) = get_json(&sim.discovery_url()).await;
    assert_eq!(status, 200);
    let port = sim.local_addr().port();
    assert_eq!(doc["issuer"], format!("http://localhost:{port}/{TENANT_ID}/v2.0"));
    assert_eq!(doc["token_endpoint"], format!("http://127.0.0.1:{port}/{TENANT_ID}/oauth2/v2.0/token"));
    assert_eq!(doc["cloud_instance_name"], "partner.microsoftonline.cn");
    assert_eq!(doc["cloud_graph_host_name"], "graph.chinacloudapi.cn");

    let tokens = tokens_for(&sim, APP, SECRET, ALICE).await;
    let id = verify(&sim, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(id["iss"], doc["issuer"], "tokens carry the issuer host, not the endpoint host");
    assert!(sim.issuer().starts_with("http://localhost:"));
}

#[tokio::test]
async fn us_government_cloud_names() {
    let sim = start_cloud("usgov").await;
    let (_, _, doc) = get_json(&sim.discovery_url()).await;
    assert_eq!(doc["cloud_instance_name"], "microsoftonline.us");
    assert_eq!(doc["tenant_region_scope"], "USGov");
    assert_eq!(doc["issuer"], sim.issuer());
    // Graph scopes may name the cloud's Graph host.
    let code = code_for(&sim, APP, ALICE, &[("scope", "openid https://graph.microsoft.us/User.Read")]).await;
    let (status, body) = redeem(&sim, APP, SECRET, &code, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["scope"].as_str().unwrap().contains("https://graph.microsoft.us/User.Read"));
}

#[tokio::test]
async fn issuer_and_graph_urls_can_be_overridden() {
    let text = tenant_toml("china").replace(
        "cloud = \"china\"",
        "cloud = \"china\"\nissuer_url = \"https://login.partner.microsoftonline.cn\"\ngraph_url = \"http://localhost:{port}\"",
    );
    let tenant = gatehouse_entra_sim::Tenant::from_toml_str(&text).unwrap();
    let sim = gatehouse_entra_sim::EntraSim::start(tenant, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert_eq!(sim.issuer(), format!("https://login.partner.microsoftonline.cn/{TENANT_ID}/v2.0"));
    assert_eq!(sim.graph_url(), format!("http://localhost:{}", sim.local_addr().port()));
    let (_, _, doc) = get_json(&sim.discovery_url()).await;
    assert_eq!(doc["issuer"], sim.issuer());
    assert_eq!(doc["msgraph_host"], format!("localhost:{}", sim.local_addr().port()));
}
