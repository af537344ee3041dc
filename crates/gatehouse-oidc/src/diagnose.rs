//! Plain-words diagnoses of failed sign-ins, for administrators.
//!
//! Every [`SignInError`] maps to a [`Diagnosis`]: a stable `code` (for tests, logs and
//! documentation links), a title, what happened, and how to fix it, plus technical details
//! (the IdP's own message, trace and correlation ids, the URL involved). The gateway's
//! `/cdn-cgi/access/test-idp` page renders it. The common setup mistakes — redirect URI not
//! registered, the client secret's ID pasted instead of its value, an expired secret, admin
//! consent not granted, the wrong directory id, a missing Graph permission — each get their
//! own diagnosis.
//!
//! This module only formats; it must not include secrets, codes or tokens in its output.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorContext, SignInError};
use crate::graph::GraphError;
use crate::http::{FetchError, FetchFailure, UnreachableKind};
use crate::id_token::IdTokenError;
use crate::token::{CallbackError, OAuthError};

/// A token that expired less than this long beyond the allowed skew is reported as clock
/// skew rather than as an old token.
pub const CLOCK_SKEW_REPORT_WINDOW_SECS: i64 = 600;

/// One technical detail of a diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosisDetail {
    /// What it is ("Redirect URI", "Trace ID").
    pub label: String,
    /// Its value.
    pub value: String,
}

/// A failed sign-in explained for an administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Stable identifier (`redirect_uri_mismatch`, `client_secret_is_secret_id`...).
    pub code: String,
    /// One line.
    pub title: String,
    /// What happened, in plain words.
    pub explanation: String,
    /// What to do.
    pub fix: String,
    /// Technical details.
    pub details: Vec<DiagnosisDetail>,
}

impl Diagnosis {
    fn new(code: &str, title: impl Into<String>, explanation: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            title: title.into(),
            explanation: explanation.into(),
            fix: fix.into(),
            details: Vec::new(),
        }
    }

    fn detail(mut self, label: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        if !value.is_empty() {
            self.details.push(DiagnosisDetail { label: label.into(), value });
        }
        self
    }

    fn oauth(mut self, e: &OAuthError) -> Self {
        self = self.detail("Identity provider's message", e.summary()).detail("Error", e.error.clone());
        if let Some(t) = &e.trace_id {
            self = self.detail("Trace ID", t.clone());
        }
        if let Some(c) = &e.correlation_id {
            self = self.detail("Correlation ID", c.clone());
        }
        if let Some(t) = &e.timestamp {
            self = self.detail("Timestamp", t.clone());
        }
        self
    }
}

impl SignInError {
    /// The plain-words diagnosis of this failure.
    pub fn diagnosis(&self) -> Diagnosis {
        diagnose(self)
    }
}

fn context_details(d: Diagnosis, c: &ErrorContext) -> Diagnosis {
    let d = d.detail("Application (client) ID", c.client_id.clone());
    let d = match c.directory_id {
        Some(t) => d.detail("Directory (tenant) ID", t.to_string()),
        None => d,
    };
    d.detail("Redirect URI", c.redirect_uri.clone())
}

/// Diagnoses an AADSTS (or OAuth) error reported by the IdP.
fn idp_error(e: &OAuthError, c: &ErrorContext, secret_looks_like_id: bool) -> Diagnosis {
    let description = e.error_description.as_deref().unwrap_or_default();
    let d = match e.aadsts() {
        Some(50011) => Diagnosis::new(
            "redirect_uri_mismatch",
            "The redirect URI is not registered in Entra ID",
            format!(
                "Entra ID refused to send the user back because the app registration does not list this gateway's \
                 callback URL. The URL must match exactly: scheme, host, port, path and any trailing slash. This \
                 gateway uses {}.",
                c.redirect_uri
            ),
            format!(
                "In the Microsoft Entra admin center open App registrations → your app → Authentication, add a \
                 Web platform redirect URI of exactly {} and save. Then test again.",
                c.redirect_uri
            ),
        ),
        Some(7000215) if secret_looks_like_id || description.contains("The value sent is the secret ID") => {
            Diagnosis::new(
                "client_secret_is_secret_id",
                "The Application Secret is the secret's ID, not its value",
                "The client secret configured here is the secret's ID (a GUID, the \"Secret ID\" column), which Entra ID \
             does not accept as a password. Entra ID needs the secret's value.",
                "In the Entra admin center open App registrations → your app → Certificates & secrets. The value of an \
             existing secret cannot be shown again, so choose New client secret, then copy the Value column (not \
             Secret ID) right away and paste it as this identity provider's Application Secret.",
            )
        }
        Some(7000215) => Diagnosis::new(
            "client_secret_invalid",
            "The Application Secret is wrong",
            "Entra ID does not recognise the client secret configured here for this application. It may be mistyped, \
             belong to another app registration, or have been deleted.",
            "In the Entra admin center open App registrations → your app → Certificates & secrets, choose New client \
             secret, copy its Value (not Secret ID) and paste it as this identity provider's Application Secret.",
        ),
        Some(7000222) => Diagnosis::new(
            "client_secret_expired",
            "The Application Secret has expired",
            "The client secret configured here was valid but has passed its expiry date, so Entra ID no longer \
             accepts it.",
            "In the Entra admin center open App registrations → your app → Certificates & secrets, create a new \
             client secret, copy its Value and update this identity provider's Application Secret. Delete the \
             expired secret afterwards, and note the new expiry date.",
        ),
        Some(7000218) => Diagnosis::new(
            "client_secret_missing",
            "No Application Secret was sent",
            "Entra ID expects a client secret from this application, but none is configured.",
            "Create a client secret under Certificates & secrets and paste its Value as this identity provider's \
             Application Secret.",
        ),
        Some(65001) => Diagnosis::new(
            "consent_required",
            "Admin consent has not been granted",
            "The application's API permissions have not been consented to in this tenant, so Entra ID will not \
             let users sign in to it (and users cannot consent for themselves).",
            "In the Entra admin center open App registrations → your app → API permissions and choose \"Grant admin \
             consent for <your organisation>\". The permissions needed are openid, profile, email and, for groups, \
             GroupMember.Read.All (or Directory.Read.All).",
        ),
        Some(700016) => Diagnosis::new(
            "unknown_client",
            "The application is not found in this directory",
            format!(
                "Entra ID has no application with client ID {} in directory {}. Either the Application (client) ID is \
                 wrong, or the app is registered in another tenant than the Directory (tenant) ID configured here.",
                c.client_id,
                c.directory_id.map(|t| t.to_string()).unwrap_or_else(|| "(none)".into())
            ),
            "Open the app registration's Overview page and copy both the Application (client) ID and the Directory \
             (tenant) ID from it into this identity provider's settings.",
        ),
        Some(90002) => Diagnosis::new(
            "tenant_not_found",
            "The directory (tenant) does not exist in this cloud",
            "Entra ID does not know the Directory (tenant) ID configured here. It may be mistyped, or the tenant may \
             live in another Microsoft cloud (US Government, China) than the one selected.",
            "Copy the Directory (tenant) ID from the app registration's Overview page, and check the Azure cloud \
             setting.",
        ),
        Some(50126) => Diagnosis::new(
            "bad_password",
            "The user name or password is wrong",
            "The user typed a wrong password (or user name) at Entra ID's sign-in page. The configuration is fine.",
            "Try again with the right password, or reset it in Entra ID.",
        ),
        Some(50034) => Diagnosis::new(
            "unknown_user",
            "The user does not exist in this directory",
            "The account typed at the sign-in page is not a user of this Entra tenant.",
            "Sign in with an account of this tenant, or invite the user as a guest.",
        ),
        Some(50057) => Diagnosis::new(
            "user_disabled",
            "The user account is disabled",
            "The account exists but is blocked from signing in.",
            "Enable the user in Entra ID (Users → the user → Account enabled) if they should have access.",
        ),
        Some(50105) => Diagnosis::new(
            "user_not_assigned",
            "The user is not assigned to the application",
            "The enterprise application requires user assignment, and this user (or a group they are in) is not \
             assigned to it.",
            "In the Entra admin center open Enterprise applications → your app → Users and groups and assign the \
             user or one of their groups, or set \"Assignment required\" to No under Properties.",
        ),
        Some(50058) => Diagnosis::new(
            "login_required",
            "No one is signed in at Entra ID",
            "The sign-in asked Entra ID not to show any page (prompt=none), but no user is signed in there.",
            "Sign in again without prompt=none, or change the identity provider's prompt setting.",
        ),
        Some(54005) => Diagnosis::new(
            "code_reused",
            "The sign-in response was used twice",
            "The authorization code from this sign-in had already been redeemed. This happens when a callback URL is \
             reloaded or replayed, or when two gateway instances process the same callback.",
            "Start a new sign-in. If it keeps happening, check that a proxy in front of the gateway does not retry \
             requests to the callback URL.",
        ),
        Some(70008) => Diagnosis::new(
            "code_expired",
            "The sign-in response expired",
            "The authorization code is valid for about ten minutes and was redeemed too late — the sign-in took too \
             long, or the gateway's clock is far off.",
            "Start a new sign-in. If it keeps happening, check the gateway host's clock (NTP).",
        ),
        Some(9002313) => Diagnosis::new(
            "code_invalid",
            "The sign-in response is not valid",
            "Entra ID did not recognise the authorization code sent by the gateway.",
            "Start a new sign-in.",
        ),
        Some(501481) => Diagnosis::new(
            "pkce_mismatch",
            "The PKCE proof did not match",
            "The code verifier sent by the gateway does not match the challenge of the sign-in, so the code was \
             probably issued to another sign-in.",
            "Start a new sign-in. If it keeps happening, make sure the callback is handled by the same gateway \
             that started the sign-in.",
        ),
        Some(70000) => Diagnosis::new(
            "grant_invalid",
            "The sign-in response belongs to another application",
            "The authorization code was issued to a different application than the one redeeming it.",
            "Check that each identity provider in the gateway uses its own Application (client) ID, then sign in again.",
        ),
        Some(500113) => Diagnosis::new(
            "no_redirect_uri",
            "The app registration has no redirect URI",
            "The Entra app registration lists no redirect URI at all.",
            format!("Under Authentication, add a Web redirect URI of exactly {}.", c.redirect_uri),
        ),
        Some(700054) => Diagnosis::new(
            "response_type_not_enabled",
            "The app registration does not allow this response type",
            "Entra ID refused the authorization request's response type.",
            "Check the app registration's Authentication settings; the gateway uses the authorization code flow.",
        ),
        Some(70011 | 500011) => Diagnosis::new(
            "invalid_scope",
            "Entra ID refused the requested permissions",
            "A requested scope is not valid for this tenant; with groups on, the gateway asks for Microsoft Graph's \
             permissions. This happens when the tenant is in another Microsoft cloud than the one selected.",
            "Check the Azure cloud setting and the app registration's API permissions.",
        ),
        _ => match e.error.as_str() {
            "access_denied" => Diagnosis::new(
                "access_denied",
                "The sign-in was cancelled or denied",
                "The user cancelled the sign-in, or a policy at the identity provider denied it.",
                "Try again; if a Conditional Access policy blocks the user, check Entra ID's sign-in logs.",
            ),
            "consent_required" | "interaction_required" | "login_required" => Diagnosis::new(
                "interaction_required",
                "The identity provider needs the user to interact",
                "The identity provider could not complete the sign-in silently.",
                "Sign in again; if consent is missing, grant admin consent for the application.",
            ),
            "invalid_client" | "unauthorized_client" => Diagnosis::new(
                "client_rejected",
                "The identity provider rejected the application's credentials",
                "The client ID or client secret configured here is not accepted.",
                "Check the client ID and create a fresh client secret at the identity provider.",
            ),
            _ => Diagnosis::new(
                "idp_error",
                "The identity provider reported an error",
                "The identity provider refused the sign-in. Its message is below.",
                "Look up the error code in the identity provider's documentation or sign-in logs.",
            ),
        },
    };
    context_details(d.oauth(e), c)
}

fn fetch(f: &FetchError) -> Diagnosis {
    let d = match &f.failure {
        FetchFailure::Unreachable { kind, .. } => {
            let why = match kind {
                UnreachableKind::Refused => "the connection was refused (nothing is listening at that address)",
                UnreachableKind::Timeout => "it did not answer in time",
                UnreachableKind::Dns => "its host name could not be resolved",
                UnreachableKind::Tls => "the TLS handshake failed (certificate not trusted, or not HTTPS)",
                UnreachableKind::Other => "the connection failed",
            };
            Diagnosis::new(
                "idp_unreachable",
                "The identity provider cannot be reached",
                format!("The gateway could not reach {} at {}: {why}.", f.endpoint, f.url),
                "Check the URL in the identity provider's settings (and the Azure cloud for Entra ID), and that the \
                 gateway can make outbound HTTPS connections to it (DNS, firewall, proxy).",
            )
        }
        FetchFailure::Redirect { location, .. } => Diagnosis::new(
            "endpoint_redirects",
            "An identity provider URL redirects",
            format!(
                "{} at {} answered with a redirect{}; the gateway does not follow redirects on these calls.",
                f.endpoint,
                f.url,
                location.as_deref().map(|l| format!(" to {l}")).unwrap_or_default()
            ),
            "Configure the final URL, copied from the identity provider's discovery document.",
        ),
        FetchFailure::Status { status, .. } => Diagnosis::new(
            "idp_bad_response",
            "The identity provider answered with an error",
            format!("{} at {} answered HTTP {status}.", f.endpoint, f.url),
            "Check the URL in the identity provider's settings; it should be copied from its discovery document.",
        ),
        FetchFailure::TooLarge { .. } | FetchFailure::Malformed(_) => Diagnosis::new(
            "idp_bad_response",
            "The identity provider's answer is not usable",
            format!("{} at {} sent a response the gateway cannot use.", f.endpoint, f.url),
            "Check that the URL points at the right endpoint (token endpoint, JWKS URI) of the identity provider.",
        ),
    };
    d.detail("URL", f.url.clone()).detail("Problem", f.failure.to_string())
}

fn id_token(e: &IdTokenError) -> Diagnosis {
    let d = match e {
        IdTokenError::Keys(f) => return fetch(f),
        IdTokenError::TenantMismatch { expected, actual } => Diagnosis::new(
            "tenant_mismatch",
            "The user signed in to another tenant",
            format!(
                "The ID token comes from tenant {actual}, but this identity provider's Directory (tenant) ID is \
                 {expected}. The Directory ID does not match the tenant that signed the user in."
            ),
            "Copy the Directory (tenant) ID from the app registration's Overview page into this identity provider's \
             settings.",
        ),
        IdTokenError::IssuerMismatch { expected, actual } => {
            let tenant_part = |s: &str| s.rsplit('/').nth(1).map(str::to_owned);
            if tenant_part(expected) != tenant_part(actual) {
                Diagnosis::new(
                    "tenant_mismatch",
                    "The user signed in to another tenant",
                    format!(
                        "The ID token's issuer is {actual}, but this identity provider expects {expected}. The \
                         Directory (tenant) ID does not match the tenant that signed the user in."
                    ),
                    "Copy the Directory (tenant) ID from the app registration's Overview page into this identity \
                     provider's settings.",
                )
            } else {
                Diagnosis::new(
                    "issuer_mismatch",
                    "The token's issuer is not the expected one",
                    format!("The ID token's issuer is {actual}, but {expected} was expected."),
                    "Check the Azure cloud setting: each Microsoft cloud issues tokens under its own host.",
                )
            }
        }
        IdTokenError::UnstableIssuer { issuer } => Diagnosis::new(
            "issuer_not_https",
            "The token's issuer is not an HTTPS URL",
            format!("The ID token's issuer {issuer:?} is not an https URL, so users cannot be keyed by it safely."),
            "Use an identity provider that issues tokens with an https issuer.",
        ),
        IdTokenError::Expired { expires_at, now, skew } => {
            let late = now - expires_at - skew;
            if late <= CLOCK_SKEW_REPORT_WINDOW_SECS {
                Diagnosis::new(
                    "clock_skew",
                    "The clocks of the gateway and the identity provider disagree",
                    format!(
                        "The ID token had just been issued but already looked expired to the gateway, by {late} \
                         seconds beyond the {skew} seconds of tolerance. The gateway's clock is probably ahead."
                    ),
                    "Synchronise the gateway host's clock (NTP) and test again.",
                )
            } else {
                Diagnosis::new(
                    "token_expired",
                    "The ID token has expired",
                    format!(
                        "The ID token expired {} seconds ago. Either an old sign-in response was replayed, or the \
                         gateway's clock is far off.",
                        now - expires_at
                    ),
                    "Start a new sign-in; if it keeps happening, check the gateway host's clock (NTP).",
                )
            }
        }
        IdTokenError::NotYetValid { valid_from, now, skew } => Diagnosis::new(
            "clock_skew",
            "The clocks of the gateway and the identity provider disagree",
            format!(
                "The ID token is valid only from {} seconds in the future by the gateway's clock (tolerance {skew} \
                 seconds). The gateway's clock is probably behind.",
                valid_from - now
            ),
            "Synchronise the gateway host's clock (NTP) and test again.",
        ),
        IdTokenError::UnknownKey { kid, refetch_rate_limited, jwks_url } => Diagnosis::new(
            "unknown_signing_key",
            "The token is signed with a key the identity provider does not publish",
            format!(
                "The ID token names signing key {} which is not in the identity provider's published keys at \
                 {jwks_url}{}.",
                kid.as_deref().unwrap_or("(none)"),
                if *refetch_rate_limited {
                    "; the keys were refreshed moments ago, so they were not fetched again yet"
                } else {
                    ""
                }
            ),
            if *refetch_rate_limited {
                "If the identity provider just rotated its keys, try again in a few minutes."
            } else {
                "Check that the JWKS URL belongs to the same identity provider as the token endpoint."
            },
        ),
        IdTokenError::BadSignature { .. } | IdTokenError::KeyIssuerMismatch { .. } => Diagnosis::new(
            "invalid_signature",
            "The ID token's signature is invalid",
            "The ID token was not signed by the identity provider's published key. It was altered, or it comes \
             from somewhere else than the configured identity provider.",
            "Check that the token and JWKS URLs belong to the same identity provider. If they do, treat this as an \
             attack and check the gateway's logs.",
        ),
        IdTokenError::AlgorithmNotAllowed { alg, allowed } => Diagnosis::new(
            "algorithm_not_allowed",
            "The ID token uses a signature algorithm that is not allowed",
            format!("The ID token is signed with {alg:?}; only {} are accepted.", allowed.join(", ")),
            "Configure the identity provider to sign ID tokens with RS256 (or another algorithm listed).",
        ),
        IdTokenError::AudienceMismatch { expected, actual } => Diagnosis::new(
            "audience_mismatch",
            "The ID token was issued to another application",
            format!("The ID token is meant for {actual:?}, not for client ID {expected}."),
            "Check the Application (client) ID in this identity provider's settings.",
        ),
        IdTokenError::AuthorizedPartyMismatch { expected, actual } => Diagnosis::new(
            "audience_mismatch",
            "The ID token was issued to another application",
            format!("The ID token's authorized party is {actual:?}, not client ID {expected}."),
            "Check the Application (client) ID in this identity provider's settings.",
        ),
        IdTokenError::NonceMissing | IdTokenError::NonceMismatch => Diagnosis::new(
            "nonce_mismatch",
            "The ID token does not belong to this sign-in",
            "The ID token's nonce is missing or differs from the one this sign-in sent, so it may be replayed from \
             another sign-in.",
            "Start a new sign-in. If it keeps happening, check that the identity provider returns the nonce.",
        ),
        IdTokenError::Malformed(_) => Diagnosis::new(
            "id_token_malformed",
            "The ID token is malformed",
            "The identity provider returned an ID token the gateway cannot read.",
            "Check that the identity provider issues signed (not encrypted) JWT ID tokens.",
        ),
        IdTokenError::MissingClaim(name) => Diagnosis::new(
            "claim_missing",
            "The ID token lacks a required claim",
            format!("The ID token has no valid {name:?} claim."),
            if name == "oid" {
                "Entra ID includes oid with the profile scope; check the app's token configuration."
            } else {
                "Check the identity provider's token configuration."
            },
        ),
    };
    d.detail("Problem", e.to_string())
}

fn graph(e: &GraphError) -> Diagnosis {
    let d = match e {
        GraphError::Fetch(f) => return fetch(f),
        GraphError::Forbidden { .. } => Diagnosis::new(
            "graph_permission_missing",
            "The app may not read group memberships",
            "Groups are on for this identity provider, and Microsoft Graph refused to list the user's groups: the \
             app registration lacks a permission to read them, or admin consent for it was not granted.",
            "In the Entra admin center open App registrations → your app → API permissions → Add a permission → \
             Microsoft Graph → Delegated permissions, add GroupMember.Read.All (or Directory.Read.All), then \
             choose \"Grant admin consent\".",
        ),
        GraphError::Unauthorized { .. } => Diagnosis::new(
            "graph_token_rejected",
            "Microsoft Graph did not accept the access token",
            "The access token from the sign-in was refused by Microsoft Graph.",
            "Check the Azure cloud setting: Graph must be the one of the tenant's cloud.",
        ),
        GraphError::NoAccessToken => Diagnosis::new(
            "graph_no_access_token",
            "No access token for Microsoft Graph",
            "Groups had to be read from Microsoft Graph, but the sign-in returned no access token.",
            "Check the app registration's API permissions for Microsoft Graph and grant admin consent.",
        ),
        GraphError::Throttled { .. } => Diagnosis::new(
            "graph_throttled",
            "Microsoft Graph is throttling requests",
            "Microsoft Graph kept answering \"too many requests\" while the gateway read the user's groups.",
            "Try again in a minute. If it persists, other applications in the tenant may use up its Graph quota.",
        ),
        GraphError::TooManyPages { .. } => Diagnosis::new(
            "too_many_groups",
            "The user is in too many groups",
            "The user's group list is longer than the gateway reads; a partial list is never used.",
            "Raise the Graph page limit, or use group filtering in the app registration's token configuration.",
        ),
        GraphError::ForeignNextLink { .. } => Diagnosis::new(
            "graph_failed",
            "Microsoft Graph returned an unexpected link",
            "A page of results pointed to another host; the gateway does not send the user's token there.",
            "Check the Graph URL in the cloud settings.",
        ),
    };
    d.detail("Problem", e.to_string())
}

fn diagnose(e: &SignInError) -> Diagnosis {
    match e {
        SignInError::Authorization { error, context } => idp_error(error, context, false),
        SignInError::TokenRejected { error, context, secret_looks_like_id, status } => {
            idp_error(error, context, *secret_looks_like_id).detail("HTTP status", status.to_string())
        }
        SignInError::Fetch(f) => fetch(f),
        SignInError::IdToken(t) => id_token(t),
        SignInError::Graph(g) => graph(g),
        SignInError::Config(c) => Diagnosis::new(
            "configuration",
            "The identity provider's settings are incomplete",
            c.to_string(),
            "Edit the identity provider and fill in the missing or invalid field.",
        ),
        SignInError::RedirectUri { uri, reason } => Diagnosis::new(
            "configuration",
            "The gateway's callback URL is not usable",
            format!("The redirect URI {uri} {reason}."),
            "Check the gateway's team domain setting.",
        ),
        SignInError::Random => Diagnosis::new(
            "internal",
            "The gateway could not generate random values",
            "The operating system's random generator failed.",
            "Check the gateway host; this is not a configuration problem of the identity provider.",
        ),
        SignInError::IdpMismatch => Diagnosis::new(
            "state_mismatch",
            "The sign-in response is for another identity provider",
            "The browser came back for a different identity provider than the one the sign-in started with.",
            "Start a new sign-in.",
        ),
        SignInError::MissingState | SignInError::StateMismatch => Diagnosis::new(
            "state_mismatch",
            "The sign-in response does not belong to this browser's sign-in",
            "The state parameter of the response is missing or does not match the sign-in this browser started. \
             This happens when a sign-in is started twice in parallel, when cookies are blocked, or when someone \
             tries to slip a foreign sign-in response to the user.",
            "Start a new sign-in from a single tab, with cookies enabled for the gateway's domain.",
        ),
        SignInError::StateReplayed => Diagnosis::new(
            "state_replayed",
            "The sign-in response was used before",
            "This sign-in had already been completed; a response can be used only once.",
            "Start a new sign-in instead of reloading the callback page.",
        ),
        SignInError::SignInExpired { max_secs, .. } => Diagnosis::new(
            "sign_in_expired",
            "The sign-in took too long",
            format!("The sign-in was started more than {max_secs} seconds ago."),
            "Start a new sign-in.",
        ),
        SignInError::Callback(c) => Diagnosis::new(
            "callback_malformed",
            "The sign-in response is malformed",
            match c {
                CallbackError::Duplicate(p) => format!("The response repeats the parameter {p}."),
                CallbackError::TooLong(p) => format!("The response's {p} parameter is too long."),
            },
            "Start a new sign-in.",
        ),
        SignInError::MissingCode => Diagnosis::new(
            "callback_malformed",
            "The sign-in response has no code",
            "The identity provider sent the browser back without an authorization code or an error.",
            "Start a new sign-in; check that the identity provider uses the authorization code flow.",
        ),
        SignInError::NoIdToken => Diagnosis::new(
            "no_id_token",
            "The identity provider returned no ID token",
            "The token response has no ID token, so the user cannot be identified.",
            "Make sure the openid scope is configured and allowed for the application.",
        ),
        SignInError::NoEmail { tried, .. } => Diagnosis::new(
            "no_email",
            "The ID token has no e-mail address",
            format!("None of the claims {} carries an e-mail address for this user.", tried.join(", ")),
            "For Entra ID, add the email and upn optional claims under Token configuration, or set the e-mail \
             claim name to a claim the token carries.",
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ctx() -> ErrorContext {
        ErrorContext {
            client_id: "c".into(),
            directory_id: None,
            redirect_uri: "https://team.example.com/cdn-cgi/access/callback".into(),
        }
    }

    #[test]
    fn redirect_uri_mismatch_names_the_uri_to_register() {
        let e = SignInError::Authorization {
            error: Box::new(OAuthError::from_callback("invalid_request", Some("AADSTS50011: The redirect URI ..."))),
            context: Box::new(ctx()),
        };
        let d = e.diagnosis();
        assert_eq!(d.code, "redirect_uri_mismatch");
        assert!(d.fix.contains("https://team.example.com/cdn-cgi/access/callback"));
    }

    #[test]
    fn clock_skew_window() {
        let near = IdTokenError::Expired { expires_at: 1000, now: 1000 + 300 + 600, skew: 300 };
        assert_eq!(SignInError::IdToken(near).diagnosis().code, "clock_skew");
        let far = IdTokenError::Expired { expires_at: 1000, now: 1000 + 300 + 601, skew: 300 };
        assert_eq!(SignInError::IdToken(far).diagnosis().code, "token_expired");
        let early = IdTokenError::NotYetValid { valid_from: 5000, now: 1000, skew: 300 };
        assert_eq!(SignInError::IdToken(early).diagnosis().code, "clock_skew");
    }

    #[test]
    fn unknown_aadsts_codes_still_diagnose() {
        let e = SignInError::TokenRejected {
            status: 400,
            error: Box::new(OAuthError::from_callback("invalid_grant", Some("AADSTS123456: something new"))),
            context: Box::new(ctx()),
            secret_looks_like_id: false,
        };
        let d = e.diagnosis();
        assert_eq!(d.code, "idp_error");
        assert!(d.details.iter().any(|x| x.value.contains("AADSTS123456")));
    }
}
