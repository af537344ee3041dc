//! The OpenID Connect relying party Gatehouse signs users in with: Microsoft Entra ID
//! (`azureAD`) and any OpenID Connect provider (`oidc`).
//!
//! ```text
//!  begin ──► browser ──► IdP sign-in ──► callback ──► complete
//!  │                                                  │
//!  ├ endpoints (cloud hosts / overrides)              ├ state (constant time, single use, age)
//!  ├ state, nonce, PKCE S256                          ├ callback error → AADSTS diagnosis
//!  └ authorize URL + PendingSignIn ─ kept server-side ├ code → token endpoint (post / basic)
//!                                                     ├ ID token: JWKS by kid (rate-limited
//!                                                     │   refetch), alg, tid, iss, aud, time, nonce
//!                                                     ├ groups: claim, or Graph on overage
//!                                                     └ Identity (user key, e-mail, groups, fields)
//! ```
//!
//! Every failure is a [`SignInError`] whose [`SignInError::diagnosis`] explains it to an
//! administrator in plain words ([`Diagnosis`]): redirect URI not registered, secret ID
//! pasted instead of the secret value, expired secret, consent not granted, wrong directory,
//! missing Graph permission, clock skew, unreachable IdP, invalid signature, state or nonce
//! mismatch. [`OidcClient::preflight`] finds the configuration errors Entra reports only on
//! its own error page.
//!
//! This crate does HTTP to IdPs and Microsoft Graph only. It must not store sessions or
//! pending sign-ins (the gateway does), and must never log codes, tokens or secrets.

#![warn(missing_docs)]

mod authorize;
mod client;
mod clock;
mod diagnose;
mod endpoints;
mod error;
mod graph;
mod http;
mod id_token;
mod identity;
mod jwks;
mod token;

pub use authorize::{PendingSignIn, pkce_challenge, prompt_value, scopes_for};
pub use client::{OidcClient, OidcOptions, SignedIn};
pub use clock::{Clock, ManualClock, SleepFuture, SystemClock};
pub use diagnose::{CLOCK_SKEW_REPORT_WINDOW_SECS, Diagnosis, DiagnosisDetail};
pub use endpoints::{
    CloudHosts, CloudOverrides, CloudUrls, EndpointError, Endpoints, IssuerPolicy, cloud_hosts, is_stable_issuer,
};
pub use error::{ErrorContext, SignInError};
pub use graph::{GraphError, GraphOptions, GroupsClaim, groups_claim};
pub use http::{ClientBuildError, Endpoint, FetchError, FetchFailure, UnreachableKind};
pub use id_token::IdTokenError;
pub use identity::{Group, GroupsSource, Identity, UserKey};
pub use token::{CallbackError, CallbackParams, ClientAuthMethod, OAuthError, find_aadsts_code, find_aadsts_message};
