//! A standard OpenID Connect relying party (the `openidconnect` crate) completes a code flow
//! with PKCE S256 against the emulator: discovery, authorize URL, the sign-in form (completed
//! with reqwest), code exchange, ID token signature, issuer, audience and nonce checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    RedirectUrl, Scope, TokenResponse,
};

async fn code_flow(sim: &gatehouse_entra_sim::RunningSim) {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(sim.issuer()).unwrap(), &http).await.unwrap();
    assert_eq!(metadata.issuer().as_str(), sim.issuer());
    let rp =
        CoreClient::from_provider_metadata(metadata, ClientId::new(APP.into()), Some(ClientSecret::new(SECRET.into())))
            .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize, csrf, nonce) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    assert!(authorize.as_str().contains("code_challenge_method=S256"));

    // The user completes the sign-in page; a script can, with a plain HTTP client.
    let mut browser = Browser::default();
    let response = browser.sign_in(sim, authorize.as_str(), ALICE, PASSWORD).await;
    let params = location_params(&response);
    assert_eq!(params["state"], *csrf.secret());
    let code = params["code"].clone();

    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    assert!(tokens.refresh_token().is_some());
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token.claims(&rp.id_token_verifier(), &nonce).expect("the ID token verifies");
    assert_eq!(claims.issuer().as_str(), sim.issuer());
    assert_eq!(claims.audiences()[0].as_str(), APP);
    assert_eq!(claims.nonce().map(Nonce::secret), Some(nonce.secret()));
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some(ALICE));
    assert_eq!(claims.email().map(|e| e.as_str()), Some("alice@contoso.com"));
    assert_eq!(claims.subject().len(), 43);

    // A wrong nonce is caught by the relying party.
    assert!(id_token.claims(&rp.id_token_verifier(), &Nonce::new("other".into())).is_err());
}

#[tokio::test]
async fn openidconnect_completes_a_pkce_code_flow() {
    let sim = start().await;
    code_flow(&sim).await;
}

#[tokio::test]
async fn openidconnect_works_when_the_issuer_host_differs_from_the_endpoint_host() {
    let sim = start_cloud("china").await;
    assert_ne!(sim.issuer_url(), sim.login_url());
    code_flow(&sim).await;
}
