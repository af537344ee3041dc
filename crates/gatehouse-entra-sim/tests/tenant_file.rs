//! The tenant file format: the shipped demo tenant, validation errors, and the admin API's
//! tenant edits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::{Browser, PASSWORD, authorize_url, client, location_params};
use gatehouse_entra_sim::tenant::GroupMembershipClaims;
use gatehouse_entra_sim::{EntraSim, SimError, Tenant};
use serde_json::{Value, json};

fn demo_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tenants/demo.toml")
}

#[test]
fn demo_tenant_has_what_the_demo_needs() {
    let t = Tenant::load(&demo_path()).expect("demo.toml is valid");
    assert_eq!(t.info().cloud, gatehouse_entra_sim::Cloud::Global);

    let users: Vec<_> = t.users().collect();
    assert!(users.len() >= 4);
    assert!(users.iter().any(|u| u.mail().is_none() && u.can_sign_in()), "a user without mail");
    assert!(users.iter().any(|u| !u.enabled), "a disabled user");
    assert!(users.iter().any(|u| t.transitive_groups(u.id).len() > 200), "a user in more than 200 groups");

    let engineering = t.resolve_group("Engineering").unwrap();
    let platform = t.resolve_group("Platform").unwrap();
    assert!(t.group(engineering).unwrap().member_groups.contains(&platform), "Engineering ⊃ Platform");
    let alice = t.resolve_user("alice@contoso.onmicrosoft.com").unwrap();
    assert!(t.transitive_groups(alice).iter().any(|g| g.id == engineering));
    assert!(!t.direct_groups(alice).iter().any(|g| g.id == engineering));

    let app = t.apps().find(|a| a.display_name == "Gatehouse").expect("the gateway's app registration");
    assert_eq!(app.redirect_uris, vec!["http://auth.localhost:8080/cdn-cgi/access/callback".to_owned()]);
    assert!(app.admin_consent);
    assert_eq!(app.group_membership_claims, GroupMembershipClaims::SecurityGroup);
    assert!(app.has_graph_permission("GroupMember.Read.All"));
    assert_eq!(app.secrets.len(), 1);
    let secret = &app.secrets[0];
    assert_ne!(secret.hint(), secret.id.to_string()[..3], "the secret ID and value differ");
    assert!(secret.expires.is_some());

    let scim = t.scim_assignments();
    assert!(!scim.groups.is_empty() && !scim.users.is_empty());
}

#[tokio::test]
async fn demo_tenant_serves_a_sign_in_for_the_gateway() {
    let sim = EntraSim::start_from_file(&demo_path(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", "6c0d9a3e-7b2f-4d1a-9e8c-5f4a3b2c1d0e"),
            ("response_type", "code"),
            ("redirect_uri", "http://auth.localhost:8080/cdn-cgi/access/callback"),
            ("scope", "openid profile email offline_access"),
            ("state", "st4te"),
        ])
        .finish();
    let url = format!("{}/{}/oauth2/v2.0/authorize?{query}", sim.login_url(), sim.tenant_id());
    let response = Browser::default().sign_in(&sim, &url, "dave@contoso.onmicrosoft.com", PASSWORD).await;
    let params = location_params(&response);
    let form_body = [
        ("client_id", "6c0d9a3e-7b2f-4d1a-9e8c-5f4a3b2c1d0e"),
        ("client_secret", "Gh8Q~gatehouse-demo-secret-value-do-not-use"),
        ("grant_type", "authorization_code"),
        ("code", params["code"].as_str()),
        ("redirect_uri", "http://auth.localhost:8080/cdn-cgi/access/callback"),
    ];
    let tokens: Value = client()
        .post(format!("{}/{}/oauth2/v2.0/token", sim.login_url(), sim.tenant_id()))
        .form(&form_body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = common::claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["_claim_names"]["groups"], "src1", "Dave's groups overflow the token");
}

#[test]
fn the_documented_sample_tenant_parses() {
    let doc_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/entra-sim.md");
    let doc = std::fs::read_to_string(doc_path).unwrap();
    let start = doc.find("```toml\n").expect("a TOML sample") + "```toml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let t = Tenant::from_toml_str(&doc[start..end]).expect("the documented sample is valid");
    let engineering = t.resolve_group("Engineering").unwrap();
    let alice = t.resolve_user("alice@contoso.onmicrosoft.com").unwrap();
    assert!(t.transitive_groups(alice).iter().any(|g| g.id == engineering));
    assert_eq!(t.apps().next().unwrap().secrets.len(), 1);
}

#[test]
fn invalid_files_are_explained() {
    let err = Tenant::from_toml_str("[tenant]\nid = \"not-a-guid\"\n").unwrap_err();
    assert!(matches!(err, SimError::ParseTenant { .. }), "{err}");
    let base = "[tenant]\nid = \"c0ffee00-0000-4000-8000-000000000009\"\n";
    let err = Tenant::from_toml_str(&format!(
        "{base}[[users]]\nupn = \"a@b\"\ndisplay_name = \"A\"\ngroups = [\"Ghosts\"]\n"
    ))
    .unwrap_err();
    assert_eq!(err.to_string(), "not found: group \"Ghosts\"");
    let err =
        Tenant::from_toml_str(&format!("{base}[[apps]]\ndisplay_name = \"X\"\nredirect_uris = [\"not a url\"]\n"))
            .unwrap_err();
    assert!(err.to_string().contains("redirect URI"), "{err}");
    let err = Tenant::from_toml_str(&format!(
        "{base}[[apps]]\ndisplay_name = \"X\"\n[[apps.secrets]]\nid = \"c0ffee00-0000-4000-8000-00000000000a\"\nvalue = \"c0ffee00-0000-4000-8000-00000000000a\"\n"
    ))
    .unwrap_err();
    assert!(err.to_string().contains("must differ from the secret ID"), "{err}");
    let err = Tenant::from_toml_str(&format!("{base}cloud = \"mars\"\n")).unwrap_err();
    assert!(err.to_string().contains("unknown cloud"), "{err}");
    let err = Tenant::load(std::path::Path::new("/nonexistent/tenant.toml")).unwrap_err();
    assert!(matches!(err, SimError::ReadTenant { .. }));
}

#[tokio::test]
async fn admin_api_edits_the_running_tenant() {
    let sim = common::start().await;
    let admin = sim.admin_url();
    let http = client();

    let response = http
        .post(format!("{admin}/users"))
        .json(&json!({"upn": "new@contoso.onmicrosoft.com", "display_name": "New Hire", "password": "pw-1", "groups": ["Sales"], "mail": "new@contoso.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = Browser::default()
        .sign_in(&sim, &authorize_url(&sim, common::APP, &[]), "new@contoso.onmicrosoft.com", "pw-1")
        .await;
    assert!(location_params(&response).contains_key("code"), "the new user can sign in");

    // Disable through PATCH: the user can no longer sign in.
    let response = http
        .patch(format!("{admin}/users/new@contoso.onmicrosoft.com"))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = Browser::default()
        .sign_in(&sim, &authorize_url(&sim, common::APP, &[]), "new@contoso.onmicrosoft.com", "pw-1")
        .await;
    assert!(response.text().await.unwrap().contains("AADSTS50057"));

    // Group edits, membership, assignments.
    let response = http.post(format!("{admin}/groups")).json(&json!({"display_name": "Interns"})).send().await.unwrap();
    assert_eq!(response.status(), 201);
    for (method, path) in [
        ("PUT", "groups/Interns/members/bob@contoso.onmicrosoft.com"),
        ("PUT", "groups/Engineering/members/Interns"),
        ("PUT", "scim/assignments/Interns"),
        ("DELETE", "groups/Interns/members/bob@contoso.onmicrosoft.com"),
        ("PUT", "groups/Interns/members/bob@contoso.onmicrosoft.com"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = http.request(method, format!("{admin}/{path}")).send().await.unwrap();
        assert_eq!(response.status(), 204, "{path}");
    }
    let response = http
        .patch(format!("{admin}/groups/Interns"))
        .json(&json!({"display_name": "Interns 2026"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let bob = common::user_id(&sim, common::BOB);
    let names: Vec<String> =
        sim.tenant().read(|t| t.transitive_groups(bob).iter().map(|g| g.display_name.clone()).collect());
    assert!(names.contains(&"Interns 2026".into()) && names.contains(&"Engineering".into()), "{names:?}");

    // Errors are JSON with meaningful statuses.
    let response = http.delete(format!("{admin}/users/ghost@contoso.onmicrosoft.com")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("ghost"));
    let response = http
        .post(format!("{admin}/users"))
        .json(&json!({"upn": "x@y", "display_name": "X", "colour": "red"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = http.post(format!("{admin}/reload")).send().await.unwrap();
    assert_eq!(response.status(), 409, "not started from a file");

    // A new secret is shown once; the summary never shows values.
    let response = http
        .post(format!("{admin}/apps/{}/secrets", common::APP))
        .json(&json!({"expires": "2030-01-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let secret: Value = response.json().await.unwrap();
    let value = secret["value"].as_str().unwrap().to_owned();
    assert_ne!(value, secret["id"].as_str().unwrap());
    let summary = http.get(format!("{admin}/tenant")).send().await.unwrap().text().await.unwrap();
    assert!(!summary.contains(&value) && !summary.contains(common::SECRET) && !summary.contains(PASSWORD));
    assert!(summary.contains(common::SECRET_ID));
    let code = common::code_for(&sim, common::APP, common::ALICE, &[]).await;
    let (status, _) = common::redeem(&sim, common::APP, &value, &code, &[]).await;
    assert_eq!(status, 200, "the new secret works");

    // Revoking consent through the API.
    let response = http
        .patch(format!("{admin}/apps/{}", common::APP))
        .json(&json!({"admin_consent": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let mut browser = Browser::default();
    let response = browser.sign_in(&sim, &authorize_url(&sim, common::APP, &[]), common::ALICE, PASSWORD).await;
    assert_eq!(location_params(&response)["error"], "consent_required");

    // Signing everyone out.
    assert!(browser.cookie.is_some());
    assert_eq!(http.delete(format!("{admin}/sessions")).send().await.unwrap().status(), 204);
    let response = browser.get(&authorize_url(&sim, common::OTHER_APP, &[("prompt", "none")])).await;
    assert_eq!(location_params(&response)["error"], "login_required");
}

#[tokio::test]
async fn reload_picks_up_file_edits_and_refuses_a_new_tenant_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, common::tenant_toml("global")).unwrap();
    let sim = EntraSim::start_from_file(&path, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    std::fs::write(
        &path,
        common::tenant_toml("global").replace("display_name = \"Bob Jones\"", "display_name = \"Robert Jones\""),
    )
    .unwrap();
    assert_eq!(client().post(format!("{}/reload", sim.admin_url())).send().await.unwrap().status(), 204);
    let name = sim.tenant().read(|t| t.user_by_upn(common::BOB).unwrap().display_name.clone());
    assert_eq!(name, "Robert Jones");

    std::fs::write(
        &path,
        common::tenant_toml("global").replace(common::TENANT_ID, "c0ffee00-0000-4000-8000-0000000000ff"),
    )
    .unwrap();
    let response = client().post(format!("{}/reload", sim.admin_url())).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(sim.tenant().reload().is_err());

    std::fs::write(&path, "not toml [").unwrap();
    assert_eq!(client().post(format!("{}/reload", sim.admin_url())).send().await.unwrap().status(), 400);
    assert_eq!(sim.tenant().read(|t| t.id().to_string()), common::TENANT_ID, "the running tenant is unchanged");
}

#[tokio::test]
async fn index_page_and_shutdown() {
    let sim = common::start().await;
    let html = client().get(format!("{}/", sim.login_url())).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(&sim.discovery_url()));
    let addr = sim.local_addr();
    sim.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed");
}

#[tokio::test]
async fn serve_and_provision_once_report_a_missing_tenant_file() {
    let missing = std::path::Path::new("/nonexistent/tenant.toml");
    let err = gatehouse_entra_sim::serve(missing, "127.0.0.1:0".parse().unwrap()).await.unwrap_err();
    assert!(matches!(err, SimError::ReadTenant { .. }), "{err}");
    let err = gatehouse_entra_sim::provision_once(
        missing,
        "http://127.0.0.1:1/scim",
        "t",
        gatehouse_entra_sim::ProvisioningMode::Default,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SimError::ReadTenant { .. }), "{err}");
}
