//! [`OidcClient`]: the API the gateway signs users in with.
//!
//! `begin` builds the authorization URL and a [`PendingSignIn`]; `complete` checks the
//! callback against it (state in constant time, single use, age), redeems the code, validates
//! the ID token, reads groups and builds the [`Identity`]; `preflight` checks an IdP's
//! configuration without a user (Entra's error page for a wrong redirect URI, client or
//! tenant; reachable, usable signing keys). One client serves every IdP and holds the shared
//! HTTP client and signing-key cache, so it should live as long as the gateway.
//!
//! This module orchestrates; parsing and checks live in the modules it calls. It must not
//! log codes, tokens or secrets: every entry point is `#[instrument(skip_all)]`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::digest;
use gatehouse_core::idp::{IdentityProvider, IdpType, Prompt};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use url::Url;
use uuid::Uuid;

use crate::authorize::{
    AuthorizeParams, PendingSignIn, authorize_url, check_redirect_uri, pkce_challenge, random_token, scopes_for,
};
use crate::clock::{Clock, SystemClock};
use crate::endpoints::{CloudOverrides, Endpoints};
use crate::error::{ErrorContext, SignInError};
use crate::graph::{GraphError, GraphOptions, GroupsClaim, groups_claim, transitive_groups};
use crate::http::{self, ClientBuildError, Endpoint, FetchError, FetchFailure};
use crate::id_token::{ENTRA_ALGORITHMS, Expect, OIDC_ALGORITHMS, validate};
use crate::identity::{self, Group, GroupsSource, Identity};
use crate::jwks::{JwksCache, KeyError};
use crate::token::{
    CallbackParams, ClientAuthMethod, Exchange, ExchangeError, OAuthError, exchange_code, find_aadsts_message,
};

/// Largest authorize page read by `preflight`.
const PAGE_LIMIT: usize = 1024 * 1024;
/// Pending states remembered for replay detection before expired ones are pruned.
const USED_STATES_PRUNE_AT: usize = 4096;

/// Settings of an [`OidcClient`].
#[derive(Debug, Clone)]
pub struct OidcOptions {
    /// Client authentication at the token endpoint (default `client_secret_post`).
    pub client_auth: ClientAuthMethod,
    /// TCP connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Timeout of a whole request (default 15 s).
    pub request_timeout: Duration,
    /// Tolerated clock difference for `exp`/`nbf`/`iat` (default 5 minutes).
    pub clock_skew: Duration,
    /// How long a started sign-in may take (default 15 minutes).
    pub pending_max_age: Duration,
    /// Least time between two refetches of a JWKS for an unknown `kid` (default 5 minutes).
    pub jwks_min_refetch_interval: Duration,
    /// Longest a fetched JWKS is used before it is refetched (default 24 hours).
    pub jwks_max_age: Duration,
    /// Microsoft Graph group reading.
    pub graph: GraphOptions,
    /// The clock (the wall clock by default; tests inject a [`crate::ManualClock`]).
    pub clock: Arc<dyn Clock>,
}

impl Default for OidcOptions {
    fn default() -> Self {
        Self {
            client_auth: ClientAuthMethod::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            clock_skew: Duration::from_secs(300),
            pending_max_age: Duration::from_secs(15 * 60),
            jwks_min_refetch_interval: Duration::from_secs(300),
            jwks_max_age: Duration::from_secs(24 * 3600),
            graph: GraphOptions::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// A completed sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The user's identity, for the session.
    pub identity: Identity,
    /// Every claim of the validated ID token, for the IdP test page.
    pub claims: Map<String, Value>,
    /// The claim the e-mail address was taken from.
    pub email_claim: String,
    /// The token's issuer.
    pub issuer: String,
}

/// The relying party. See the module documentation.
#[derive(Debug)]
pub struct OidcClient {
    http: reqwest::Client,
    jwks: JwksCache,
    overrides: CloudOverrides,
    options: OidcOptions,
    /// SHA-256 of used states → when they could no longer be completed anyway.
    used_states: Mutex<HashMap<[u8; 32], i64>>,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

fn context(idp: &IdentityProvider, redirect_uri: &str) -> Box<ErrorContext> {
    Box::new(ErrorContext {
        client_id: idp.config.client_id.clone(),
        directory_id: idp.config.directory_id,
        redirect_uri: redirect_uri.to_owned(),
    })
}

impl OidcClient {
    /// A client with `overrides` for Entra's hosts.
    ///
    /// TLS uses the process's default rustls crypto provider when one is installed (the
    /// binary installs aws-lc-rs at start-up), else ring.
    ///
    /// # Errors
    /// [`ClientBuildError`] when the HTTP client cannot be built (no usable root
    /// certificates).
    pub fn new(overrides: CloudOverrides, options: OidcOptions) -> Result<Self, ClientBuildError> {
        let http = http::build_client(options.connect_timeout, options.request_timeout)?;
        let jwks = JwksCache::new(options.jwks_min_refetch_interval, options.jwks_max_age);
        Ok(Self { http, jwks, overrides, options, used_states: Mutex::new(HashMap::new()) })
    }

    /// The endpoints this client uses for `idp`.
    ///
    /// # Errors
    /// [`SignInError::Config`] when the IdP's configuration is incomplete.
    pub fn endpoints(&self, idp: &IdentityProvider) -> Result<Endpoints, SignInError> {
        Ok(Endpoints::for_idp(idp, &self.overrides)?)
    }

    /// Starts a sign-in with `idp`: the URL to send the browser to, and the state to keep
    /// server-side until the callback. `prompt_override` replaces the IdP's configured
    /// `prompt` (the IdP test forces `Prompt::Login`).
    ///
    /// # Errors
    /// [`SignInError::Config`], [`SignInError::RedirectUri`] or [`SignInError::Random`].
    #[tracing::instrument(skip_all, fields(idp = %idp.id))]
    pub fn begin(
        &self,
        idp: &IdentityProvider,
        redirect_uri: &str,
        prompt_override: Option<Prompt>,
    ) -> Result<(Url, PendingSignIn), SignInError> {
        let endpoints = self.endpoints(idp)?;
        check_redirect_uri(redirect_uri)
            .map_err(|reason| SignInError::RedirectUri { uri: redirect_uri.to_owned(), reason })?;
        let state = random_token(32).map_err(|_| SignInError::Random)?;
        let nonce = random_token(32).map_err(|_| SignInError::Random)?;
        let verifier =
            if idp.config.pkce_enabled { Some(random_token(32).map_err(|_| SignInError::Random)?) } else { None };
        let challenge = verifier.as_deref().map(pkce_challenge);
        let scopes = scopes_for(idp, &endpoints);
        let url = authorize_url(
            &endpoints.authorize,
            &AuthorizeParams {
                client_id: &idp.config.client_id,
                redirect_uri,
                scopes: &scopes,
                state: &state,
                nonce: &nonce,
                code_challenge: challenge.as_deref(),
                prompt: prompt_override.or(idp.config.prompt),
            },
        );
        tracing::debug!(pkce = verifier.is_some(), "sign-in started");
        let pending = PendingSignIn {
            idp_id: idp.id,
            state,
            nonce,
            pkce_verifier: verifier,
            redirect_uri: redirect_uri.to_owned(),
            created_at: self.options.clock.unix(),
        };
        Ok((url, pending))
    }

    /// Completes a sign-in from the IdP's callback.
    ///
    /// Checks, in order: the pending sign-in is for `idp`; the callback's `state` equals the
    /// pending one (constant time, also when the callback carries an error); the
    /// pending sign-in was not completed before by this client (the gateway must also delete
    /// it from its store before calling); it is not older than
    /// [`OidcOptions::pending_max_age`]; then reports a callback `error`, or redeems the
    /// code, validates the ID token, reads groups and builds the identity.
    ///
    /// # Errors
    /// A [`SignInError`]; [`SignInError::diagnosis`] explains it.
    #[tracing::instrument(skip_all, fields(idp = %idp.id))]
    pub async fn complete(
        &self,
        idp: &IdentityProvider,
        pending: &PendingSignIn,
        callback: CallbackParams,
    ) -> Result<SignedIn, SignInError> {
        let result = self.complete_inner(idp, pending, callback).await;
        match &result {
            Ok(s) => {
                tracing::info!(user = %s.identity.user_key.as_string(), groups = s.identity.groups.len(), "signed in")
            }
            Err(e) => tracing::warn!(code = %e.diagnosis().code, error = %e, "sign-in failed"),
        }
        result
    }

    async fn complete_inner(
        &self,
        idp: &IdentityProvider,
        pending: &PendingSignIn,
        callback: CallbackParams,
    ) -> Result<SignedIn, SignInError> {
        if pending.idp_id != idp.id {
            return Err(SignInError::IdpMismatch);
        }
        let endpoints = self.endpoints(idp)?;
        // Errors are accepted only with the right state too (Entra always echoes it), so a
        // crafted link cannot make the gateway display text of an attacker's choosing.
        match &callback.state {
            Some(s) if bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())) => {}
            Some(_) => return Err(SignInError::StateMismatch),
            None => return Err(SignInError::MissingState),
        }
        let now = self.options.clock.unix();
        let max_age = secs(self.options.pending_max_age);
        let age = now.saturating_sub(pending.created_at);
        self.consume_state(&pending.state, pending.created_at.saturating_add(max_age), now)?;
        if age > max_age || age < -secs(self.options.clock_skew) {
            return Err(SignInError::SignInExpired { age_secs: age, max_secs: max_age });
        }
        let ctx = || context(idp, &pending.redirect_uri);
        if let Some(error) = &callback.error {
            return Err(SignInError::Authorization {
                error: Box::new(OAuthError::from_callback(error, callback.error_description.as_deref())),
                context: ctx(),
            });
        }
        let code = callback.code.as_deref().filter(|c| !c.is_empty()).ok_or(SignInError::MissingCode)?;

        let secret = idp.client_secret.expose();
        let tokens = exchange_code(
            &self.http,
            &Exchange {
                token_url: &endpoints.token,
                client_id: &idp.config.client_id,
                client_secret: secret,
                method: self.options.client_auth,
                code,
                redirect_uri: &pending.redirect_uri,
                code_verifier: pending.pkce_verifier.as_deref(),
            },
        )
        .await
        .map_err(|e| match e {
            ExchangeError::Rejected { status, error } => SignInError::TokenRejected {
                status,
                error: Box::new(error),
                context: ctx(),
                secret_looks_like_id: Uuid::parse_str(secret.trim()).is_ok(),
            },
            ExchangeError::Fetch(f) => SignInError::Fetch(f),
        })?;
        let id_token = tokens.id_token.as_deref().ok_or(SignInError::NoIdToken)?;

        let entra = idp.kind == IdpType::AzureAd;
        let expect = Expect {
            client_id: &idp.config.client_id,
            issuer: &endpoints.issuer,
            tenant_id: endpoints.tenant_id,
            nonce: &pending.nonce,
            algorithms: if entra { ENTRA_ALGORITHMS } else { OIDC_ALGORITHMS },
            skew_secs: secs(self.options.clock_skew),
            key_issuer_scoping: entra,
        };
        let valid =
            validate(id_token, &expect, &self.jwks, &self.http, self.options.clock.as_ref(), &endpoints.jwks).await?;

        let user_key = identity::user_key(idp, &valid.claims, &valid.issuer, &valid.subject)
            .map_err(|claim| SignInError::IdToken(crate::IdTokenError::MissingClaim(claim.to_owned())))?;
        let (email, email_claim) = identity::resolve_email(&valid.claims, idp.config.email_claim_name.as_deref())
            .map_err(|tried| SignInError::NoEmail { tried, claims: Box::new(valid.claims.clone()) })?;
        let (groups, groups_source) =
            self.groups(idp, &endpoints, &valid.claims, tokens.access_token.as_deref()).await?;
        let identity = Identity {
            idp_id: idp.id,
            idp_type: idp.kind,
            user_key,
            email,
            email_claim: email_claim.clone(),
            name: valid.claims.get("name").and_then(Value::as_str).map(str::to_owned),
            groups,
            groups_source,
            oidc_fields: identity::oidc_fields(&valid.claims, &idp.config.claims),
            amr: identity::amr(&valid.claims),
        };
        Ok(SignedIn { identity, claims: valid.claims, email_claim, issuer: valid.issuer })
    }

    /// Group memberships per the IdP's type and settings.
    async fn groups(
        &self,
        idp: &IdentityProvider,
        endpoints: &Endpoints,
        claims: &Map<String, Value>,
        access_token: Option<&str>,
    ) -> Result<(Vec<Group>, GroupsSource), SignInError> {
        match idp.kind {
            IdpType::Oidc => Ok(match identity::generic_groups(idp, claims) {
                Some(groups) => (groups, GroupsSource::Claim),
                None => (Vec::new(), GroupsSource::None),
            }),
            IdpType::AzureAd if !idp.config.support_groups => Ok((Vec::new(), GroupsSource::None)),
            IdpType::AzureAd => {
                let claim = groups_claim(claims);
                if let GroupsClaim::Listed(ids) = &claim
                    && !self.options.graph.resolve_nested
                {
                    return Ok((
                        ids.iter().map(|id| Group { id: id.clone(), name: None }).collect(),
                        GroupsSource::Claim,
                    ));
                }
                // Overage, no groups claim configured, or names and nesting wanted: ask Graph.
                let token = access_token.filter(|t| !t.is_empty()).ok_or(GraphError::NoAccessToken)?;
                let root = endpoints.graph.as_ref().ok_or(GraphError::NoAccessToken)?;
                let groups =
                    transitive_groups(&self.http, self.options.clock.as_ref(), root, token, &self.options.graph)
                        .await?;
                Ok((groups, GroupsSource::Graph))
            }
        }
    }

    /// Marks a state as used; a second use is refused.
    fn consume_state(&self, state: &str, valid_until: i64, now: i64) -> Result<(), SignInError> {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest::digest(&digest::SHA256, state.as_bytes()).as_ref());
        let mut used = self.used_states.lock().unwrap_or_else(|e| e.into_inner());
        if used.len() >= USED_STATES_PRUNE_AT {
            used.retain(|_, until| *until >= now);
        }
        if used.insert(key, valid_until).is_some() {
            return Err(SignInError::StateReplayed);
        }
        Ok(())
    }

    /// Checks an IdP's configuration without a user: requests the authorization endpoint as
    /// a browser would (nothing is followed or submitted) and looks for the IdP's error page
    /// — Entra shows AADSTS50011 (redirect URI not registered), 700016 (unknown client) or
    /// 90002 (unknown tenant) there, never at the redirect URI — then fetches the signing
    /// keys.
    ///
    /// # Errors
    /// [`SignInError::Authorization`] with the IdP's AADSTS error, [`SignInError::Fetch`]
    /// when an endpoint is unreachable or unusable, or [`SignInError::Config`].
    #[tracing::instrument(skip_all, fields(idp = %idp.id))]
    pub async fn preflight(&self, idp: &IdentityProvider, redirect_uri: &str) -> Result<(), SignInError> {
        let endpoints = self.endpoints(idp)?;
        let (url, pending) = self.begin(idp, redirect_uri, Some(Prompt::Login))?;
        let ctx = || context(idp, &pending.redirect_uri);
        let fail = |failure| SignInError::Fetch(FetchError::new(Endpoint::Authorize, &endpoints.authorize, failure));
        let response = self.http.get(url).send().await.map_err(|e| fail(http::classify(&e)))?;
        let status = response.status();
        if status.is_redirection() {
            let location = http::location(&response).unwrap_or_default();
            let params = Url::parse(&location)
                .ok()
                .and_then(|u| u.query().map(|q| CallbackParams::from_query(q).unwrap_or_default()))
                .unwrap_or_default();
            if let Some(error) = params.error {
                return Err(SignInError::Authorization {
                    error: Box::new(OAuthError::from_callback(&error, params.error_description.as_deref())),
                    context: ctx(),
                });
            }
        } else {
            let body = http::read_limited(response, PAGE_LIMIT).await.map_err(fail)?;
            if let Some((_, message)) = find_aadsts_message(&String::from_utf8_lossy(&body)) {
                return Err(SignInError::Authorization {
                    error: Box::new(OAuthError::from_callback("invalid_request", Some(&message))),
                    context: ctx(),
                });
            }
            if !status.is_success() {
                return Err(fail(FetchFailure::Status { status: status.as_u16(), excerpt: http::excerpt(&body) }));
            }
        }
        self.jwks.candidates(&self.http, self.options.clock.as_ref(), &endpoints.jwks, None).await.map_err(
            |e| match e {
                KeyError::Fetch(f) => SignInError::Fetch(f),
                KeyError::UnknownKid { url, .. } => SignInError::Fetch(FetchError {
                    endpoint: Endpoint::Jwks,
                    url,
                    failure: FetchFailure::Malformed("no usable signing key".into()),
                }),
            },
        )?;
        Ok(())
    }
}
