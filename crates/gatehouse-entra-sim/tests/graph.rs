//! Microsoft Graph group calls, paging, permissions and throttling, over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use gatehouse_entra_sim::ThrottleConfig;
use serde_json::Value;

async fn access_token(sim: &gatehouse_entra_sim::RunningSim, app: &str, secret: &str, user: &str) -> String {
    tokens_for(sim, app, secret, user).await["access_token"].as_str().unwrap().to_owned()
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["value"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn member_of_is_direct_and_transitive_member_of_includes_nesting() {
    let sim = start().await;
    let token = access_token(&sim, APP, SECRET, ALICE).await;
    let base = sim.graph_base_url();
    let (platform, engineering, staff) = (
        group_id(&sim, "Platform").to_string(),
        group_id(&sim, "Engineering").to_string(),
        group_id(&sim, "All Staff").to_string(),
    );

    let response = graph_get(&format!("{base}/me/memberOf"), &token).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("request-id"));
    let direct = json_of(response).await;
    assert_eq!(direct["@odata.context"], format!("{}/v1.0/$metadata#directoryObjects", sim.graph_url()));
    let mut got = ids(&direct);
    got.sort();
    let mut want = vec![platform.clone(), staff.clone()];
    want.sort();
    assert_eq!(got, want, "direct memberships only");
    let first = &direct["value"][0];
    assert_eq!(first["@odata.type"], "#microsoft.graph.group");
    for key in [
        "displayName",
        "securityEnabled",
        "mailEnabled",
        "mailNickname",
        "groupTypes",
        "securityIdentifier",
        "createdDateTime",
    ] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
    assert!(first["securityIdentifier"].as_str().unwrap().starts_with("S-1-12-1-"));

    let transitive = json_of(graph_get(&format!("{base}/me/transitiveMemberOf"), &token).await).await;
    let got = ids(&transitive);
    assert_eq!(got.len(), 3);
    assert!(got.contains(&engineering), "Engineering contains Platform, so Alice is in it transitively");

    // The same through /users/{id} and /users/{upn}, and the OData cast.
    let by_id = json_of(graph_get(&format!("{base}/users/{}/memberOf", user_id(&sim, ALICE)), &token).await).await;
    assert_eq!(ids(&by_id).len(), 2);
    let by_upn = json_of(graph_get(&format!("{base}/users/{ALICE}/transitiveMemberOf"), &token).await).await;
    assert_eq!(ids(&by_upn).len(), 3);
    let cast = json_of(graph_get(&format!("{base}/me/transitiveMemberOf/microsoft.graph.group"), &token).await).await;
    assert_eq!(cast["@odata.context"], format!("{}/v1.0/$metadata#groups", sim.graph_url()));
    assert!(cast["value"][0].get("@odata.type").is_none());
}

#[tokio::test]
async fn select_limits_properties() {
    let sim = start().await;
    let token = access_token(&sim, APP, SECRET, ALICE).await;
    let page =
        json_of(graph_get(&format!("{}/me/memberOf?$select=id,displayName", sim.graph_base_url()), &token).await).await;
    assert_eq!(page["@odata.context"], format!("{}/v1.0/$metadata#directoryObjects(id,displayName)", sim.graph_url()));
    let item = page["value"][0].as_object().unwrap();
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["@odata.type", "displayName", "id"]);

    let response = graph_get(&format!("{}/me/memberOf?$select=shoeSize", sim.graph_base_url()), &token).await;
    assert_eq!(response.status(), 400);
    assert_eq!(json_of(response).await["error"]["code"], "Request_BadRequest");
}

#[tokio::test]
async fn paging_over_250_groups_follows_next_links() {
    let sim = start().await;
    let token = access_token(&sim, APP, SECRET, DAVE).await;
    let mut url = format!("{}/me/transitiveMemberOf?$select=id", sim.graph_base_url());
    let mut sizes = Vec::new();
    let mut all = Vec::new();
    for _ in 0..10 {
        let page = json_of(graph_get(&url, &token).await).await;
        sizes.push(page["value"].as_array().unwrap().len());
        all.extend(ids(&page));
        match page.get("@odata.nextLink").and_then(Value::as_str) {
            Some(next) => {
                assert!(next.starts_with(&format!("{}/v1.0/me/transitiveMemberOf?", sim.graph_url())));
                assert!(next.contains("$select=id") && next.contains("$skiptoken="), "{next}");
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(sizes, vec![100, 100, 50], "default page size 100");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 250, "every group exactly once");

    let page = json_of(
        graph_get(&format!("{}/users/{DAVE}/memberOf?$top=999&$count=true", sim.graph_base_url()), &token).await,
    )
    .await;
    assert_eq!(page["value"].as_array().unwrap().len(), 250);
    assert_eq!(page["@odata.count"], 250);
    assert!(page.get("@odata.nextLink").is_none());

    let page = json_of(graph_get(&format!("{}/me/memberOf?$top=7", sim.graph_base_url()), &token).await).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 7);
    assert!(page["@odata.nextLink"].as_str().unwrap().contains("$top=7"));

    let response = graph_get(&format!("{}/me/memberOf?$top=1000", sim.graph_base_url()), &token).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn get_member_objects_honours_security_enabled_only() {
    let sim = start().await;
    let token = access_token(&sim, APP, SECRET, ALICE).await;
    let post = |security: bool| {
        let url = format!("{}/me/getMemberObjects", sim.graph_base_url());
        let token = token.clone();
        async move {
            let response = client()
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({"securityEnabledOnly": security}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let security = post(true).await;
    assert_eq!(security["@odata.context"], format!("{}/v1.0/$metadata#Collection(Edm.String)", sim.graph_url()));
    assert_eq!(security["value"].as_array().unwrap().len(), 2, "Platform and Engineering");
    let all = post(false).await;
    assert_eq!(all["value"].as_array().unwrap().len(), 3, "plus the non-security All Staff");

    // The overage route the relying party takes: users/{oid}/getMemberObjects.
    let over = access_token(&sim, APP, SECRET, OVER_200).await;
    let url = format!("{}/users/{}/getMemberObjects", sim.graph_base_url(), user_id(&sim, OVER_200));
    let response = client()
        .post(url)
        .bearer_auth(&over)
        .json(&serde_json::json!({"securityEnabledOnly": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response).await["value"].as_array().unwrap().len(), 201);

    let url = format!("{}/me/getMemberObjects", sim.graph_base_url());
    let response = client().post(url).bearer_auth(&token).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn missing_or_invalid_tokens_are_401() {
    let sim = start().await;
    let url = format!("{}/me/memberOf", sim.graph_base_url());
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let body = json_of(response).await;
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(body["error"]["message"], "Access token is empty.");
    assert!(body["error"]["innerError"]["request-id"].is_string());

    let response = graph_get(&url, "not.a.jwt").await;
    assert_eq!(response.status(), 401);

    // An ID token is not a Graph access token (wrong audience).
    let id_token = tokens_for(&sim, APP, SECRET, ALICE).await["id_token"].as_str().unwrap().to_owned();
    assert_eq!(graph_get(&url, &id_token).await.status(), 401);

    // Expired by the emulator's clock.
    let token = access_token(&sim, APP, SECRET, ALICE).await;
    assert_eq!(graph_get(&url, &token).await.status(), 200);
    sim.advance_clock(std::time::Duration::from_secs(3600));
    let response = graph_get(&url, &token).await;
    assert_eq!(response.status(), 401);
    assert!(json_of(response).await["error"]["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn missing_group_permission_is_403_authorization_request_denied() {
    let sim = start().await;
    let token = access_token(&sim, NO_GRAPH_APP, OTHER_SECRET, ALICE).await;
    for url in
        [format!("{}/me/memberOf", sim.graph_base_url()), format!("{}/me/transitiveMemberOf", sim.graph_base_url())]
    {
        let response = graph_get(&url, &token).await;
        assert_eq!(response.status(), 403);
        let body = json_of(response).await;
        assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
        assert_eq!(body["error"]["message"], "Insufficient privileges to complete the operation.");
    }
    let response = client()
        .post(format!("{}/me/getMemberObjects", sim.graph_base_url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({"securityEnabledOnly": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // User.Read still reads the profile.
    let me = json_of(graph_get(&format!("{}/me", sim.graph_base_url()), &token).await).await;
    assert_eq!(me["userPrincipalName"], ALICE);
    assert_eq!(me["mail"], "alice@contoso.com");

    // Granting the permission (a new token) lifts the 403.
    sim.tenant()
        .edit(|t| {
            t.update_app(
                NO_GRAPH_APP.parse().unwrap(),
                gatehouse_entra_sim::tenant::AppUpdate {
                    graph_permissions: Some(vec!["User.Read".into(), "Directory.Read.All".into()]),
                    ..Default::default()
                },
            )
        })
        .unwrap();
    let token = access_token(&sim, NO_GRAPH_APP, OTHER_SECRET, ALICE).await;
    assert_eq!(graph_get(&format!("{}/me/memberOf", sim.graph_base_url()), &token).await.status(), 200);
}

#[tokio::test]
async fn injected_429_carries_retry_after() {
    let sim = start().await;
    let token = access_token(&sim, APP, SECRET, ALICE).await;
    let url = format!("{}/me/memberOf", sim.graph_base_url());

    // Through the admin API: the next two requests are throttled.
    let response = client()
        .put(format!("{}/graph/throttle", sim.admin_url()))
        .json(&serde_json::json!({"next": 2, "retry_after_seconds": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for _ in 0..2 {
        let response = graph_get(&url, &token).await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "3");
        assert!(response.headers().contains_key("x-ms-throttle-scope"));
        assert_eq!(json_of(response).await["error"]["code"], "TooManyRequests");
    }
    assert_eq!(graph_get(&url, &token).await.status(), 200);

    // Through the Rust API: every third request.
    sim.set_graph_throttle(ThrottleConfig { every_nth: 3, next: 0, retry_after_seconds: 1 });
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(graph_get(&url, &token).await.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 429, 200, 200, 429]);

    // Unauthenticated requests are refused before throttling.
    sim.set_graph_throttle(ThrottleConfig { every_nth: 1, next: 0, retry_after_seconds: 1 });
    assert_eq!(client().get(&url).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn throttling_from_the_tenant_file() {
    let text = format!("{}\n[graph_throttle]\nevery_nth = 2\nretry_after_seconds = 9\n", tenant_toml("global"));
    let tenant = gatehouse_entra_sim::Tenant::from_toml_str(&text).unwrap();
    let sim = gatehouse_entra_sim::EntraSim::start(tenant, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let token = access_token(&sim, APP, SECRET, ALICE).await;
    let url = format!("{}/me/memberOf", sim.graph_base_url());
    assert_eq!(graph_get(&url, &token).await.status(), 200);
    let response = graph_get(&url, &token).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "9");
}

#[tokio::test]
async fn client_credentials_token_reads_users_but_not_me() {
    let sim = start().await;
    let response = client()
        .post(token_url(&sim))
        .form(&[
            ("client_id", APP),
            ("client_secret", SECRET),
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = json_of(response).await;
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    let token = body["access_token"].as_str().unwrap().to_owned();
    let c = claims(&token);
    assert_eq!(c["idtyp"], "app");
    assert_eq!(c["roles"], serde_json::json!(["User.Read", "GroupMember.Read.All"]));

    let page = json_of(
        graph_get(&format!("{}/users/{}/transitiveMemberOf", sim.graph_base_url(), user_id(&sim, ALICE)), &token).await,
    )
    .await;
    assert_eq!(ids(&page).len(), 3);
    let response = graph_get(&format!("{}/me/memberOf", sim.graph_base_url()), &token).await;
    assert_eq!(response.status(), 400);

    let response = client()
        .post(token_url(&sim))
        .form(&[
            ("client_id", APP),
            ("client_secret", SECRET),
            ("grant_type", "client_credentials"),
            ("scope", "User.Read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(json_of(response).await["error_codes"], serde_json::json!([1002012]));
}

#[tokio::test]
async fn unknown_users_are_404() {
    let sim = start().await;
    let token = access_token(&sim, APP, SECRET, ALICE).await;
    let response =
        graph_get(&format!("{}/users/nobody@contoso.onmicrosoft.com/memberOf", sim.graph_base_url()), &token).await;
    assert_eq!(response.status(), 404);
    assert_eq!(json_of(response).await["error"]["code"], "Request_ResourceNotFound");
}
