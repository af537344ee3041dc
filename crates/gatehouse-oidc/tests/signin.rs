//! Successful sign-ins against the Entra ID emulator over real HTTP: e-mail resolution,
//! groups from the claim and from Graph (overage, paging, nesting), PKCE, prompt, client
//! authentication methods, sovereign-cloud issuers, key rotation and generic OIDC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use gatehouse_core::idp::{AzureCloud, Prompt};
use gatehouse_oidc::{
    ClientAuthMethod, CloudOverrides, CloudUrls, GroupsSource, IdTokenError, ManualClock, OidcClient, SignInError,
    UserKey,
};
use uuid::Uuid;

fn ids(groups: &[gatehouse_oidc::Group]) -> BTreeSet<String> {
    groups.iter().map(|g| g.id.clone()).collect()
}

#[tokio::test]
async fn user_with_mail_signs_in_with_nested_groups_from_the_claim() {
    let env = Env::new().await;
    let mut idp = entra_idp(APP, SECRET);
    idp.config.claims = vec!["given_name".into(), "oid".into(), "not_in_token".into()];
    let (url, pending) = env.client.begin(&idp, REDIRECT, None).unwrap();
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["response_mode"], "query");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["scope"], "openid profile email https://graph.microsoft.com/.default");
    assert!(query["state"].len() >= 43 && query["nonce"].len() >= 43, "at least 256 random bits each");
    assert!(!query.contains_key("prompt"));

    let callback = browser_sign_in(url.as_str(), ALICE, PASSWORD).await;
    let signed_in = env.client.complete(&idp, &pending, callback).await.unwrap();
    let id = &signed_in.identity;
    assert_eq!(id.user_key, UserKey::Entra { tid: Uuid::parse_str(TENANT_ID).unwrap(), oid: user_id(&env.sim, ALICE) });
    assert_eq!(id.email, "alice@contoso.com");
    assert_eq!((id.email_claim.as_str(), signed_in.email_claim.as_str()), ("email", "email"));
    assert_eq!(id.name.as_deref(), Some("Alice Kim"));
    assert_eq!(id.groups_source, GroupsSource::Claim);
    // Platform directly, Engineering through nesting; All Staff is not a security group.
    assert_eq!(ids(&id.groups), BTreeSet::from([group_id(&env.sim, "Platform"), group_id(&env.sim, "Engineering")]));
    assert!(id.groups.iter().all(|g| g.name.is_none()), "the claim carries ids only");
    assert_eq!(id.oidc_fields.len(), 2);
    assert_eq!(id.oidc_fields["given_name"], "Alice");
    assert_eq!(id.oidc_fields["oid"], user_id(&env.sim, ALICE).to_string());
    assert!(id.amr.is_empty(), "v2 Entra ID tokens carry no amr");
    assert_eq!(signed_in.claims["aud"], APP);
    assert_eq!(signed_in.issuer, format!("{}/{TENANT_ID}/v2.0", env.sim.issuer_url()));
}

#[tokio::test]
async fn user_without_mail_gets_the_upn_as_email() {
    let env = Env::new().await;
    let mut idp = entra_idp(APP, SECRET);
    idp.config.support_groups = false;
    let s = env.sign_in(&idp, BOB).await.unwrap();
    assert_eq!(s.identity.email, BOB);
    assert_eq!(s.email_claim, "upn");
    assert!(s.claims.get("email").is_none());
    assert_eq!(s.identity.groups_source, GroupsSource::None);
    assert!(s.identity.groups.is_empty());
}

#[tokio::test]
async fn email_falls_back_to_preferred_username_and_honours_the_configured_claim() {
    let env = Env::new().await;
    // This app has no optional claims: no email, no upn.
    let mut idp = entra_idp(NO_CLAIMS_APP, OTHER_SECRET);
    idp.config.support_groups = false;
    let s = env.sign_in(&idp, ALICE).await.unwrap();
    assert_eq!((s.identity.email.as_str(), s.email_claim.as_str()), (ALICE, "preferred_username"));

    let mut idp = entra_idp(APP, SECRET);
    idp.config.support_groups = false;
    idp.config.email_claim_name = Some("upn".into());
    let s = env.sign_in(&idp, ALICE).await.unwrap();
    assert_eq!((s.identity.email.as_str(), s.email_claim.as_str()), (ALICE, "upn"));
}

#[tokio::test]
async fn three_groups_come_from_the_claim() {
    let env = Env::new().await;
    let s = env.sign_in(&entra_idp(APP, SECRET), FRANK).await.unwrap();
    assert_eq!(s.identity.groups_source, GroupsSource::Claim);
    assert_eq!(
        ids(&s.identity.groups),
        BTreeSet::from([group_id(&env.sim, "Sales"), group_id(&env.sim, "Admins"), group_id(&env.sim, "Support")])
    );
}

#[tokio::test]
async fn overage_reads_every_group_with_names_from_graph_across_pages() {
    let env = Env::with_options(|o| o.graph.page_size = 100).await;
    let s = env.sign_in(&entra_idp(APP, SECRET), DAVE).await.unwrap();
    assert!(s.claims.get("groups").is_none() && s.claims["_claim_names"]["groups"] == "src1", "an overage token");
    assert_eq!(s.identity.groups_source, GroupsSource::Graph);
    let dave = user_id(&env.sim, DAVE);
    let expected: BTreeSet<(String, String)> = env
        .sim
        .tenant()
        .read(|t| t.transitive_groups(dave).iter().map(|g| (g.id.to_string(), g.display_name.clone())).collect());
    assert_eq!(expected.len(), 251, "Engineering and 250 more: three pages of 100");
    let got: BTreeSet<(String, String)> =
        s.identity.groups.iter().map(|g| (g.id.clone(), g.name.clone().expect("a display name"))).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn graph_page_limit_refuses_a_partial_list() {
    let env = Env::with_options(|o| {
        o.graph.page_size = 10;
        o.graph.max_pages = 5;
    })
    .await;
    let err = env.sign_in(&entra_idp(APP, SECRET), DAVE).await.unwrap_err();
    assert!(matches!(err, SignInError::Graph(gatehouse_oidc::GraphError::TooManyPages { max_pages: 5 })), "{err}");
    assert_eq!(err.diagnosis().code, "too_many_groups");
}

#[tokio::test]
async fn nested_resolution_reads_transitive_groups_with_names_from_graph() {
    let env = Env::with_options(|o| o.graph.resolve_nested = true).await;
    let s = env.sign_in(&entra_idp(APP, SECRET), ALICE).await.unwrap();
    assert_eq!(s.identity.groups_source, GroupsSource::Graph);
    let names: BTreeSet<String> = s.identity.groups.iter().filter_map(|g| g.name.clone()).collect();
    // The member of Platform is reported in its parent Engineering, and Graph also lists
    // the distribution list the claim leaves out.
    assert_eq!(names, BTreeSet::from(["Platform".into(), "Engineering".into(), "All Staff".into()]));
    let engineering = s.identity.groups.iter().find(|g| g.name.as_deref() == Some("Engineering")).unwrap();
    assert_eq!(engineering.id, group_id(&env.sim, "Engineering"));
}

#[tokio::test]
async fn groups_claim_not_configured_falls_back_to_graph() {
    let env = Env::new().await;
    let s = env.sign_in(&entra_idp(NO_CLAIMS_APP, OTHER_SECRET), FRANK).await.unwrap();
    assert!(s.claims.get("groups").is_none());
    assert_eq!(s.identity.groups_source, GroupsSource::Graph);
    assert_eq!(s.identity.groups.len(), 3);
}

#[tokio::test]
async fn pkce_off_sends_no_challenge() {
    let env = Env::new().await;
    let mut idp = entra_idp(APP, SECRET);
    idp.config.pkce_enabled = false;
    let (url, pending) = env.client.begin(&idp, REDIRECT, None).unwrap();
    assert!(!url.as_str().contains("code_challenge"));
    assert!(pending.pkce_verifier.is_none());
    let callback = browser_sign_in(url.as_str(), ALICE, PASSWORD).await;
    env.client.complete(&idp, &pending, callback).await.unwrap();
}

#[tokio::test]
async fn prompt_login_is_passed_through_and_forces_the_form_despite_a_session() {
    let env = Env::new().await;
    let mut idp = entra_idp(APP, SECRET);
    idp.config.prompt = Some(Prompt::SelectAccount);

    // Sign in once to get the emulator's session cookie.
    let (url, _) = env.client.begin(&idp, REDIRECT, None).unwrap();
    assert!(url.as_str().contains("prompt=select_account"), "the configured prompt");
    let mut noprompt = entra_idp(APP, SECRET);
    noprompt.id = idp.id;
    let (url, _) = env.client.begin(&noprompt, REDIRECT, None).unwrap();
    let response = browser_submit(url.as_str(), ALICE, PASSWORD, None).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();

    // Without a prompt the session signs in silently...
    let (url, _) = env.client.begin(&noprompt, REDIRECT, None).unwrap();
    let silent = http().get(url.as_str()).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(silent.status(), 302, "SSO without a prompt");

    // ...and the override prompt=login shows the credentials form again.
    let (url, pending) = env.client.begin(&idp, REDIRECT, Some(Prompt::Login)).unwrap();
    assert!(url.as_str().contains("prompt=login") && !url.as_str().contains("select_account"));
    let page = http().get(url.as_str()).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(form(&page.text().await.unwrap(), "signin").is_some());
    let callback = callback_of(&browser_submit(url.as_str(), ALICE, PASSWORD, Some(&cookie)).await);
    env.client.complete(&idp, &pending, callback).await.unwrap();
}

#[tokio::test]
async fn client_secret_basic_and_post_both_work() {
    let sim = start().await;
    for method in [ClientAuthMethod::ClientSecretBasic, ClientAuthMethod::ClientSecretPost] {
        let clock = Arc::new(ManualClock::starting_now());
        let opts = gatehouse_oidc::OidcOptions { client_auth: method, ..options(&clock) };
        let client = OidcClient::new(overrides(&sim, AzureCloud::Global), opts).unwrap();
        let idp = entra_idp(APP, SECRET);
        let (url, pending) = client.begin(&idp, REDIRECT, None).unwrap();
        let callback = browser_sign_in(url.as_str(), FRANK, PASSWORD).await;
        let s = client.complete(&idp, &pending, callback).await.unwrap_or_else(|e| panic!("{method:?}: {e}"));
        assert_eq!(s.identity.email, "frank@contoso.com");
    }
}

#[tokio::test]
async fn china_cloud_tokens_carry_the_partner_issuer_host() {
    let sim = start_with("china", "").await;
    assert_ne!(sim.issuer_url(), sim.login_url(), "the emulator keeps China's issuer/endpoint split");
    let mut idp = entra_idp(APP, SECRET);
    idp.config.azure_cloud = AzureCloud::China;

    let env = Env::with(sim, |_| {});
    let client = OidcClient::new(overrides(&env.sim, AzureCloud::China), options(&env.clock)).unwrap();
    let (url, pending) = client.begin(&idp, REDIRECT, None).unwrap();
    assert!(url.as_str().contains("microsoftgraph.chinacloudapi.cn%2F.default"), "China's Graph resource: {url}");
    let callback = browser_sign_in(url.as_str(), ALICE, PASSWORD).await;
    let s = client.complete(&idp, &pending, callback).await.unwrap();
    assert_eq!(s.issuer, format!("{}/{TENANT_ID}/v2.0", env.sim.issuer_url()));

    // A relying party that assumes the issuer host is the endpoint host fails, as with Entra.
    let naive = CloudOverrides::none().with(
        AzureCloud::China,
        CloudUrls { login_url: env.sim.login_url().into(), graph_url: env.sim.graph_url().into(), issuer_url: None },
    );
    let client = OidcClient::new(naive, options(&env.clock)).unwrap();
    let (url, pending) = client.begin(&idp, REDIRECT, None).unwrap();
    let callback = browser_sign_in(url.as_str(), ALICE, PASSWORD).await;
    let err = client.complete(&idp, &pending, callback).await.unwrap_err();
    assert!(matches!(err, SignInError::IdToken(IdTokenError::IssuerMismatch { .. })), "{err}");
    assert_eq!(err.diagnosis().code, "issuer_mismatch");
}

#[tokio::test]
async fn rotated_keys_are_refetched_and_refetching_is_rate_limited() {
    let env = Env::with_options(|o| o.jwks_min_refetch_interval = Duration::from_secs(60)).await;
    let idp = entra_idp(APP, SECRET);
    env.sign_in(&idp, ALICE).await.unwrap();

    // A new signing key, once the last fetch is older than the interval: refetched.
    env.clock.advance(Duration::from_secs(61));
    let new_kid = env.sim.rotate_keys().unwrap();
    let s = env.sign_in(&idp, ALICE).await.unwrap();
    assert_eq!(s.identity.email, "alice@contoso.com");

    // Another rotation right away: the refetch is refused by the rate limit.
    let newer_kid = env.sim.rotate_keys().unwrap();
    assert_ne!(new_kid, newer_kid);
    let err = env.sign_in(&idp, ALICE).await.unwrap_err();
    match &err {
        SignInError::IdToken(IdTokenError::UnknownKey { kid, refetch_rate_limited: true, .. }) => {
            assert_eq!(kid.as_deref(), Some(newer_kid.as_str()));
        }
        other => panic!("expected a rate-limited unknown key, got {other}"),
    }
    assert_eq!(err.diagnosis().code, "unknown_signing_key");

    // After the interval the key is fetched and the sign-in succeeds.
    env.clock.advance(Duration::from_secs(61));
    env.sign_in(&idp, ALICE).await.unwrap();
}

#[tokio::test]
async fn generic_oidc_provider_signs_in_with_explicit_urls() {
    let env = Env::new().await;
    let mut idp = generic_idp(&env.sim, APP, SECRET);
    idp.config.claims = vec!["groups".into(), "tid".into()];
    let (url, pending) = env.client.begin(&idp, REDIRECT, None).unwrap();
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["scope"], "openid email profile");
    let callback = browser_sign_in(url.as_str(), FRANK, PASSWORD).await;
    let s = env.client.complete(&idp, &pending, callback).await.unwrap();
    let sub = s.claims["sub"].as_str().unwrap().to_owned();
    assert_eq!(s.identity.user_key, UserKey::Oidc { iss: env.sim.issuer(), sub });
    assert_eq!(s.identity.email, "frank@contoso.com");
    assert_eq!(s.identity.groups_source, GroupsSource::Claim);
    assert_eq!(s.identity.groups.len(), 3);
    assert_eq!(s.identity.oidc_fields["tid"], TENANT_ID);
    assert!(!s.identity.oidc_fields.contains_key("groups"), "groups is membership, not a field");
}

#[tokio::test]
async fn preflight_passes_for_a_correct_configuration() {
    let env = Env::new().await;
    env.client.preflight(&entra_idp(APP, SECRET), REDIRECT).await.unwrap();
    env.client.preflight(&generic_idp(&env.sim, APP, SECRET), REDIRECT).await.unwrap();
}
