//! Failed sign-ins and their diagnoses, over real HTTP against the Entra ID emulator: forged
//! and misdirected tokens, state and nonce misuse, clocks, and each common Entra setup
//! mistake as Entra reports it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use gatehouse_core::idp::AzureCloud;
use gatehouse_entra_sim::ThrottleConfig;
use gatehouse_entra_sim::tenant::AppUpdate;
use gatehouse_oidc::{
    CallbackParams, CloudOverrides, CloudUrls, Diagnosis, GraphError, IdTokenError, ManualClock, OidcClient,
    SignInError, UnreachableKind,
};
use uuid::Uuid;

fn assert_diagnosis(err: &SignInError, code: &str) -> Diagnosis {
    let d = err.diagnosis();
    assert_eq!(d.code, code, "{err}\n{d:#?}");
    assert!(!d.title.is_empty() && !d.explanation.is_empty() && !d.fix.is_empty());
    d
}

fn app(id: &str) -> Uuid {
    Uuid::parse_str(id).unwrap()
}

// === forged and misdirected tokens ===

#[tokio::test]
async fn tampered_id_token_fails_signature_verification() {
    let sim = start().await;
    let proxy = tampering_proxy(sim.login_url()).await;
    let clock = Arc::new(ManualClock::starting_now());
    let through_proxy = CloudOverrides::none().with(
        AzureCloud::Global,
        CloudUrls {
            login_url: proxy.url.clone(),
            graph_url: sim.graph_url().into(),
            issuer_url: Some(sim.issuer_url().into()),
        },
    );
    let client = OidcClient::new(through_proxy, options(&clock)).unwrap();
    let idp = entra_idp(APP, SECRET);

    // Untouched, the proxy is transparent.
    let (url, pending) = client.begin(&idp, REDIRECT, None).unwrap();
    client.complete(&idp, &pending, browser_sign_in(url.as_str(), ALICE, PASSWORD).await).await.unwrap();

    *proxy.mode.lock().unwrap() = Tamper::FlipPayload;
    let (url, pending) = client.begin(&idp, REDIRECT, None).unwrap();
    let err = client.complete(&idp, &pending, browser_sign_in(url.as_str(), ALICE, PASSWORD).await).await.unwrap_err();
    assert!(matches!(err, SignInError::IdToken(IdTokenError::BadSignature { .. })), "{err}");
    assert_diagnosis(&err, "invalid_signature");
}

#[tokio::test]
async fn genuine_token_issued_to_another_client_is_refused() {
    let sim = start().await;
    let proxy = tampering_proxy(sim.login_url()).await;
    let clock = Arc::new(ManualClock::starting_now());
    let through_proxy = CloudOverrides::none().with(
        AzureCloud::Global,
        CloudUrls {
            login_url: proxy.url.clone(),
            graph_url: sim.graph_url().into(),
            issuer_url: Some(sim.issuer_url().into()),
        },
    );
    let client = OidcClient::new(through_proxy, options(&clock)).unwrap();
    let idp = entra_idp(APP, SECRET);
    let (url, pending) = client.begin(&idp, REDIRECT, None).unwrap();

    // An attacker signs in to another app of the tenant with the victim's nonce and
    // substitutes that (validly signed) ID token.
    let mut other = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .map(|(k, v)| if k == "client_id" { (k, OTHER_APP.to_owned()) } else { (k, v) })
        .filter(|(k, _)| k != "scope")
        .collect();
    other.query_pairs_mut().clear().extend_pairs(pairs).append_pair("scope", "openid profile email");
    let cb = browser_sign_in(other.as_str(), ALICE, PASSWORD).await;
    let response: serde_json::Value = http()
        .post(format!("{}/{TENANT_ID}/oauth2/v2.0/token", sim.login_url()))
        .form(&[
            ("client_id", OTHER_APP),
            ("client_secret", OTHER_SECRET),
            ("grant_type", "authorization_code"),
            ("code", cb.code.as_deref().unwrap()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", pending.pkce_verifier.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    *proxy.mode.lock().unwrap() = Tamper::ReplaceIdToken(response["id_token"].as_str().unwrap().to_owned());

    let err = client.complete(&idp, &pending, browser_sign_in(url.as_str(), ALICE, PASSWORD).await).await.unwrap_err();
    match &err {
        SignInError::IdToken(IdTokenError::AudienceMismatch { expected, actual }) => {
            assert_eq!(expected, APP);
            assert_eq!(actual, &vec![OTHER_APP.to_owned()]);
        }
        other => panic!("expected an audience mismatch, got {other}"),
    }
    assert_diagnosis(&err, "audience_mismatch");
}

#[tokio::test]
async fn token_from_another_tenant_than_the_directory_id_is_refused() {
    // The emulated tenant answers to OTHER_TENANT_ID as to a domain name: the IdP configured
    // with that directory id reaches the tenant, whose tokens carry the real `tid`.
    let sim = start_with("global", &format!("domain = \"{OTHER_TENANT_ID}\"")).await;
    let env = Env::with(sim, |_| {});
    let mut idp = entra_idp(APP, SECRET);
    idp.config.directory_id = Some(Uuid::parse_str(OTHER_TENANT_ID).unwrap());
    let err = env.sign_in(&idp, ALICE).await.unwrap_err();
    match &err {
        SignInError::IdToken(IdTokenError::TenantMismatch { expected, actual }) => {
            assert_eq!(expected.to_string(), OTHER_TENANT_ID);
            assert_eq!(actual, TENANT_ID);
        }
        other => panic!("expected a tenant mismatch, got {other}"),
    }
    let d = assert_diagnosis(&err, "tenant_mismatch");
    assert!(d.explanation.contains(TENANT_ID) && d.explanation.contains(OTHER_TENANT_ID));
}

#[tokio::test]
async fn wrong_or_missing_nonce_is_refused() {
    let env = Env::new().await;
    let idp = entra_idp(APP, SECRET);
    for (replacement, expected) in
        [(Some("another-nonce"), IdTokenError::NonceMismatch), (None, IdTokenError::NonceMissing)]
    {
        let (url, pending) = env.client.begin(&idp, REDIRECT, None).unwrap();
        let mut forged = url.clone();
        let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().filter(|(k, _)| k != "nonce").collect();
        if let Some(n) = replacement {
            pairs.push(("nonce".into(), n.into()));
        }
        forged.query_pairs_mut().clear().extend_pairs(pairs);
        let callback = browser_sign_in(forged.as_str(), ALICE, PASSWORD).await;
        let err = env.client.complete(&idp, &pending, callback).await.unwrap_err();
        assert!(matches!(&err, SignInError::IdToken(e) if *e == expected), "{err}");
        assert_diagnosis(&err, "nonce_mismatch");
    }
}

// === state ===

#[tokio::test]
async fn mismatched_missing_and_replayed_state_are_refused() {
    let env = Env::new().await;
    let idp = entra_idp(APP, SECRET);

    let (pending, callback) = env.callback_for(&idp, ALICE).await;
    let forged = CallbackParams { state: Some("x".repeat(pending.state.len())), ..callback.clone() };
    let err = env.client.complete(&idp, &pending, forged).await.unwrap_err();
    assert!(matches!(err, SignInError::StateMismatch));
    assert_diagnosis(&err, "state_mismatch");
    let err =
        env.client.complete(&idp, &pending, CallbackParams { state: None, ..callback.clone() }).await.unwrap_err();
    assert!(matches!(err, SignInError::MissingState));

    // A refused forgery does not burn the real sign-in...
    env.client.complete(&idp, &pending, callback.clone()).await.unwrap();
    // ...but a completed one cannot be completed again.
    let err = env.client.complete(&idp, &pending, callback).await.unwrap_err();
    assert!(matches!(err, SignInError::StateReplayed), "{err}");
    assert_diagnosis(&err, "state_replayed");

    // A pending sign-in of another IdP is refused too.
    let (pending, callback) = env.callback_for(&idp, ALICE).await;
    let err = env.client.complete(&entra_idp(APP, SECRET), &pending, callback).await.unwrap_err();
    assert!(matches!(err, SignInError::IdpMismatch));
}

#[tokio::test]
async fn stale_pending_sign_in_is_refused() {
    let env = Env::new().await;
    let idp = entra_idp(APP, SECRET);
    let (pending, callback) = env.callback_for(&idp, ALICE).await;
    env.clock.advance(Duration::from_secs(16 * 60));
    let err = env.client.complete(&idp, &pending, callback).await.unwrap_err();
    assert!(matches!(err, SignInError::SignInExpired { .. }), "{err}");
    assert_diagnosis(&err, "sign_in_expired");
}

// === clocks ===

#[tokio::test]
async fn expired_token_is_clock_skew_when_just_beyond_the_tolerance_else_expired() {
    let env = Env::with_options(|o| o.pending_max_age = Duration::from_secs(24 * 3600)).await;
    let idp = entra_idp(APP, SECRET);

    // The gateway's clock runs 1 h 5 min 30 s ahead: the fresh 1-hour token looks expired
    // 30 s beyond the 5-minute tolerance.
    let (pending, callback) = env.callback_for(&idp, ALICE).await;
    env.clock.advance(Duration::from_secs(3600 + 300 + 30));
    let err = env.client.complete(&idp, &pending, callback).await.unwrap_err();
    assert!(matches!(err, SignInError::IdToken(IdTokenError::Expired { .. })), "{err}");
    assert_diagnosis(&err, "clock_skew");

    // Three hours ahead: an expired token.
    let (pending, callback) = env.callback_for(&idp, ALICE).await;
    env.clock.advance(Duration::from_secs(3 * 3600));
    let err = env.client.complete(&idp, &pending, callback).await.unwrap_err();
    assert!(matches!(err, SignInError::IdToken(IdTokenError::Expired { .. })), "{err}");
    assert_diagnosis(&err, "token_expired");
}

#[tokio::test]
async fn token_from_the_future_is_clock_skew() {
    let env = Env::new().await;
    let idp = entra_idp(APP, SECRET);
    // The IdP's clock runs an hour ahead of the gateway's.
    env.sim.advance_clock(Duration::from_secs(3600));
    let err = env.sign_in(&idp, ALICE).await.unwrap_err();
    assert!(matches!(err, SignInError::IdToken(IdTokenError::NotYetValid { .. })), "{err}");
    assert_diagnosis(&err, "clock_skew");

    // Four minutes ahead is within the tolerance.
    let env = Env::new().await;
    env.sim.advance_clock(Duration::from_secs(240));
    env.sign_in(&idp, ALICE).await.unwrap();
}

// === Entra setup mistakes, as Entra reports them ===

#[tokio::test]
async fn aadsts50011_redirect_uri_not_registered() {
    let env = Env::new().await;
    let idp = entra_idp(APP, SECRET);
    let unregistered = "https://gatehouse.example.com/cdn-cgi/access/callback";
    // The browser would see Entra's error page, never the gateway; preflight finds it.
    let (url, _) = env.client.begin(&idp, unregistered, None).unwrap();
    assert_eq!(http().get(url.as_str()).send().await.unwrap().status(), 400);
    let err = env.client.preflight(&idp, unregistered).await.unwrap_err();
    assert_eq!(err.aadsts(), Some(50011));
    let d = assert_diagnosis(&err, "redirect_uri_mismatch");
    assert!(d.fix.contains(unregistered), "the exact URI to register: {}", d.fix);

    // The same after the registration changes under a working configuration.
    env.client.preflight(&idp, REDIRECT).await.unwrap();
    env.sim
        .tenant()
        .edit(|t| {
            t.update_app(
                app(APP),
                AppUpdate { redirect_uris: Some(vec!["https://x.example/cb".into()]), ..Default::default() },
            )
        })
        .unwrap();
    let err = env.client.preflight(&idp, REDIRECT).await.unwrap_err();
    assert!(assert_diagnosis(&err, "redirect_uri_mismatch").fix.contains(REDIRECT));
}

#[tokio::test]
async fn aadsts7000215_secret_id_instead_of_value_and_wrong_secret() {
    let env = Env::new().await;
    let err = env.sign_in(&entra_idp(APP, SECRET_ID), ALICE).await.unwrap_err();
    assert_eq!(err.aadsts(), Some(7000215));
    let d = assert_diagnosis(&err, "client_secret_is_secret_id");
    assert!(d.fix.contains("Value") && d.fix.contains("Certificates & secrets"));

    let err = env.sign_in(&entra_idp(APP, "Qq8Q~not-the-secret"), ALICE).await.unwrap_err();
    assert_eq!(err.aadsts(), Some(7000215));
    assert_diagnosis(&err, "client_secret_invalid");
}

#[tokio::test]
async fn aadsts7000222_expired_secret() {
    let env = Env::new().await;
    let err = env.sign_in(&entra_idp(APP, EXPIRED_SECRET), ALICE).await.unwrap_err();
    assert!(matches!(&err, SignInError::TokenRejected { status: 401, .. }), "{err}");
    let d = assert_diagnosis(&err, "client_secret_expired");
    assert!(d.details.iter().any(|x| x.label == "Trace ID"), "Entra's trace id is kept: {d:?}");
}

#[tokio::test]
async fn aadsts65001_admin_consent_not_granted() {
    let env = Env::new().await;
    let err = env.sign_in(&entra_idp(NO_CONSENT_APP, OTHER_SECRET), ALICE).await.unwrap_err();
    assert!(matches!(&err, SignInError::Authorization { .. }), "delivered to the redirect URI: {err}");
    assert_eq!(err.aadsts(), Some(65001));
    assert!(assert_diagnosis(&err, "consent_required").fix.contains("Grant admin consent"));

    // Revoking consent on a working app gives the same diagnosis.
    env.sim
        .tenant()
        .edit(|t| t.update_app(app(APP), AppUpdate { admin_consent: Some(false), ..Default::default() }))
        .unwrap();
    let err = env.sign_in(&entra_idp(APP, SECRET), ALICE).await.unwrap_err();
    assert_diagnosis(&err, "consent_required");
}

#[tokio::test]
async fn aadsts700016_unknown_client_and_aadsts90002_unknown_tenant() {
    let env = Env::new().await;
    let unknown = "a0000000-0000-4000-8000-0000000000aa";
    let err = env.client.preflight(&entra_idp(unknown, SECRET), REDIRECT).await.unwrap_err();
    assert_eq!(err.aadsts(), Some(700016));
    let d = assert_diagnosis(&err, "unknown_client");
    assert!(d.explanation.contains(unknown) && d.explanation.contains(TENANT_ID));

    let mut idp = entra_idp(APP, SECRET);
    idp.config.directory_id = Some(Uuid::parse_str(OTHER_TENANT_ID).unwrap());
    let err = env.client.preflight(&idp, REDIRECT).await.unwrap_err();
    assert_eq!(err.aadsts(), Some(90002));
    assert_diagnosis(&err, "tenant_not_found");
}

#[tokio::test]
async fn aadsts50126_bad_password_is_read_from_the_sign_in_page() {
    let env = Env::new().await;
    let (url, _) = env.client.begin(&entra_idp(APP, SECRET), REDIRECT, None).unwrap();
    // A wrong password never reaches the relying party: Entra shows the form again.
    let response = browser_submit(url.as_str(), ALICE, "wrong", None).await;
    assert_eq!(response.status(), 400);
    let page = response.text().await.unwrap();
    let (code, message) = gatehouse_oidc::find_aadsts_message(&page).unwrap();
    assert_eq!(code, 50126);
    let err = SignInError::Authorization {
        error: Box::new(gatehouse_oidc::OAuthError::from_callback("invalid_grant", Some(&message))),
        context: Box::new(gatehouse_oidc::ErrorContext {
            client_id: APP.into(),
            directory_id: None,
            redirect_uri: REDIRECT.into(),
        }),
    };
    assert_diagnosis(&err, "bad_password");
}

#[tokio::test]
async fn aadsts54005_code_redeemed_twice_and_aadsts70008_code_expired() {
    let env = Env::new().await;
    let idp = entra_idp(APP, SECRET);
    let (pending, callback) = env.callback_for(&idp, ALICE).await;
    env.client.complete(&idp, &pending, callback.clone()).await.unwrap();
    // Another gateway instance (which has not seen this state) gets the same callback.
    let second = OidcClient::new(overrides(&env.sim, AzureCloud::Global), options(&env.clock)).unwrap();
    let err = second.complete(&idp, &pending, callback).await.unwrap_err();
    assert_eq!(err.aadsts(), Some(54005));
    assert_diagnosis(&err, "code_reused");

    let (pending, callback) = env.callback_for(&idp, ALICE).await;
    env.sim.advance_clock(Duration::from_secs(601));
    let err = env.client.complete(&idp, &pending, callback).await.unwrap_err();
    assert_eq!(err.aadsts(), Some(70008));
    assert_diagnosis(&err, "code_expired");
}

#[tokio::test]
async fn graph_403_without_the_permission() {
    let env = Env::with_options(|o| o.graph.resolve_nested = true).await;
    let err = env.sign_in(&entra_idp(NO_GRAPH_APP, OTHER_SECRET), ALICE).await.unwrap_err();
    assert!(matches!(&err, SignInError::Graph(GraphError::Forbidden { .. })), "{err}");
    let d = assert_diagnosis(&err, "graph_permission_missing");
    assert!(d.fix.contains("GroupMember.Read.All") && d.fix.contains("Grant admin consent"));

    // Overage without resolve_nested needs Graph too.
    let env = Env::new().await;
    let err = env.sign_in(&entra_idp(NO_GRAPH_APP, OTHER_SECRET), DAVE).await.unwrap_err();
    assert_diagnosis(&err, "graph_permission_missing");
}

#[tokio::test]
async fn graph_429_is_retried_after_retry_after() {
    let env = Env::with_options(|o| o.graph.page_size = 100).await;
    env.sim.set_graph_throttle(ThrottleConfig { every_nth: 0, next: 2, retry_after_seconds: 7 });
    let s = env.sign_in(&entra_idp(APP, SECRET), DAVE).await.unwrap();
    assert_eq!(s.identity.groups.len(), 251);
    assert_eq!(env.clock.sleeps(), vec![Duration::from_secs(7), Duration::from_secs(7)], "waited as told");

    // Throttled beyond the retry budget: a distinct diagnosis.
    let env = Env::with_options(|o| {
        o.graph.max_retries = 2;
        o.pending_max_age = Duration::from_secs(3600);
    })
    .await;
    env.sim.set_graph_throttle(ThrottleConfig { every_nth: 0, next: 10, retry_after_seconds: 3 });
    let err = env.sign_in(&entra_idp(APP, SECRET), DAVE).await.unwrap_err();
    assert!(matches!(err, SignInError::Graph(GraphError::Throttled { attempts: 3, waited_secs: 6 })), "{err}");
    assert_diagnosis(&err, "graph_throttled");

    // A Retry-After beyond the total wait allowed is not waited for.
    let env = Env::with_options(|o| o.graph.max_total_wait = Duration::from_secs(10)).await;
    env.sim.set_graph_throttle(ThrottleConfig { every_nth: 0, next: 1, retry_after_seconds: 60 });
    let err = env.sign_in(&entra_idp(APP, SECRET), DAVE).await.unwrap_err();
    assert!(matches!(err, SignInError::Graph(GraphError::Throttled { attempts: 1, .. })), "{err}");
    assert!(env.clock.sleeps().is_empty());
}

#[tokio::test]
async fn unreachable_idp_names_the_url() {
    let port = closed_port().await;
    let base = format!("http://127.0.0.1:{port}");
    let clock = Arc::new(ManualClock::starting_now());
    let dead = CloudOverrides::none()
        .with(AzureCloud::Global, CloudUrls { login_url: base.clone(), graph_url: base.clone(), issuer_url: None });
    let client = OidcClient::new(dead, options(&clock)).unwrap();
    let idp = entra_idp(APP, SECRET);

    let err = client.preflight(&idp, REDIRECT).await.unwrap_err();
    let fetch = err.fetch_error().unwrap();
    assert!(
        matches!(fetch.failure, gatehouse_oidc::FetchFailure::Unreachable { kind: UnreachableKind::Refused, .. }),
        "{err}"
    );
    let d = assert_diagnosis(&err, "idp_unreachable");
    assert!(d.explanation.contains(&format!("{base}/{TENANT_ID}/oauth2/v2.0/authorize")), "{}", d.explanation);

    // The callback of a sign-in started before the IdP went away.
    let (_, pending) = client.begin(&idp, REDIRECT, None).unwrap();
    let callback = CallbackParams { code: Some("c".into()), state: Some(pending.state.clone()), ..Default::default() };
    let err = client.complete(&idp, &pending, callback).await.unwrap_err();
    let d = assert_diagnosis(&err, "idp_unreachable");
    assert!(d.explanation.contains(&format!("{base}/{TENANT_ID}/oauth2/v2.0/token")), "{}", d.explanation);
}

#[tokio::test]
async fn idp_errors_need_the_state_and_are_diagnosed() {
    let env = Env::new().await;
    let idp = entra_idp(APP, SECRET);
    let error = "error=access_denied&error_description=AADSTS50105%3A+not+assigned";

    // Without the state, a crafted error link is refused like any foreign callback.
    let (_, pending) = env.client.begin(&idp, REDIRECT, None).unwrap();
    let err = env.client.complete(&idp, &pending, CallbackParams::from_query(error).unwrap()).await.unwrap_err();
    assert!(matches!(err, SignInError::MissingState), "{err}");

    let (_, pending) = env.client.begin(&idp, REDIRECT, None).unwrap();
    let state = url::form_urlencoded::byte_serialize(pending.state.as_bytes()).collect::<String>();
    let callback = CallbackParams::from_query(&format!("{error}&state={state}")).unwrap();
    let err = env.client.complete(&idp, &pending, callback).await.unwrap_err();
    assert_eq!(err.aadsts(), Some(50105));
    assert_diagnosis(&err, "user_not_assigned");

    let (_, pending) = env.client.begin(&idp, REDIRECT, None).unwrap();
    let callback = CallbackParams {
        error: Some("server_error".into()),
        error_description: Some("something new".into()),
        state: Some(pending.state.clone()),
        code: None,
    };
    let err = env.client.complete(&idp, &pending, callback).await.unwrap_err();
    assert_diagnosis(&err, "idp_error");
}

#[tokio::test]
async fn https_to_a_plain_http_port_is_a_tls_failure() {
    let env = Env::new().await;
    let port = env.sim.local_addr().port();
    let tls = CloudOverrides::none().with(
        AzureCloud::Global,
        CloudUrls {
            login_url: format!("https://127.0.0.1:{port}"),
            graph_url: format!("https://127.0.0.1:{port}"),
            issuer_url: None,
        },
    );
    let client = OidcClient::new(tls, options(&env.clock)).unwrap();
    let err = client.preflight(&entra_idp(APP, SECRET), REDIRECT).await.unwrap_err();
    let fetch = err.fetch_error().unwrap();
    assert!(
        matches!(fetch.failure, gatehouse_oidc::FetchFailure::Unreachable { kind: UnreachableKind::Tls, .. }),
        "{err}"
    );
    assert!(assert_diagnosis(&err, "idp_unreachable").explanation.contains("TLS"));
}
