//! AADSTS errors: the codes, OAuth error names, HTTP statuses and message texts Entra uses,
//! and their three wire forms.
//!
//! One [`Aadsts`] value describes a failure; [`AadstsError`] adds the per-response trace id,
//! correlation id and timestamp. It renders as the token endpoint's JSON body
//! ([`AadstsError::json_response`]), as `error`/`error_description` parameters sent to a
//! client's redirect URI ([`AadstsError::redirect_params`]), or as Entra's "Sorry, but we're
//! having trouble signing you in" page when no trustworthy redirect URI exists
//! (`html::error_page`). Texts follow Entra's; where Entra's text is the same for two causes
//! the emulator must tell apart (a secret ID sent instead of its value), the description
//! adds a sentence after Entra's text.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

/// A failure Entra reports with an AADSTS code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Aadsts {
    /// 90002: the `{tenant}` path segment names no tenant.
    TenantNotFound { tenant: String },
    /// 900144: a required parameter is missing.
    MissingParameter { name: &'static str },
    /// 9000411: a parameter appears twice.
    DuplicateParameter { name: String },
    /// 90100: a parameter has an unusable value.
    InvalidParameter { name: &'static str },
    /// 700016: unknown client id.
    UnknownClient { client_id: String, tenant_name: String },
    /// 50011: redirect URI not registered.
    RedirectUriMismatch { redirect_uri: String, client_id: String },
    /// 500113: no redirect URI registered at all.
    NoReplyAddress,
    /// 700054: response type other than `code`.
    UnsupportedResponseType { response_type: String },
    /// 7000215: wrong secret. `secret_id_sent` when the caller sent a secret's ID.
    InvalidSecret { client_id: String, secret_id_sent: Option<Uuid> },
    /// 7000222: the matching secret has expired.
    ExpiredSecret { client_id: String },
    /// 7000218: confidential client without a credential.
    MissingCredential,
    /// 65001: no consent for the app (or for a requested permission).
    ConsentRequired { client_id: String, app_name: String },
    /// 50034: no such user.
    UnknownUser { tenant_name: String },
    /// 50126: wrong password.
    BadPassword,
    /// 50057: the account is disabled.
    UserDisabled,
    /// 50058: `prompt=none` without a signed-in user.
    LoginRequired,
    /// 54005: the authorization code was already redeemed.
    CodeRedeemed,
    /// 70008: the authorization code expired.
    CodeExpired,
    /// 9002313: a code, refresh token or sign-in request that is unknown or malformed.
    MalformedRequest,
    /// 70000: a grant issued to another client.
    GrantInvalid,
    /// 500112: `redirect_uri` at the token endpoint differs from the authorize request's.
    RedirectUriChanged { sent: String, original: String },
    /// 501481: PKCE verifier does not match.
    PkceMismatch,
    /// 700082: refresh token expired through inactivity.
    RefreshTokenExpired,
    /// 70003: unsupported grant type.
    UnsupportedGrantType { grant_type: String },
    /// 70011: invalid scope.
    InvalidScope { scope: String },
    /// 1002012: client credentials need `{resource}/.default`.
    ClientCredentialsScope { scope: String },
    /// 500011: a scope names an unknown resource.
    UnknownResource { resource: String, tenant_name: String },
}

impl Aadsts {
    /// The numeric AADSTS code.
    pub(crate) fn code(&self) -> u32 {
        match self {
            Aadsts::TenantNotFound { .. } => 90002,
            Aadsts::MissingParameter { .. } => 900144,
            Aadsts::DuplicateParameter { .. } => 9000411,
            Aadsts::InvalidParameter { .. } => 90100,
            Aadsts::UnknownClient { .. } => 700016,
            Aadsts::RedirectUriMismatch { .. } => 50011,
            Aadsts::NoReplyAddress => 500113,
            Aadsts::UnsupportedResponseType { .. } => 700054,
            Aadsts::InvalidSecret { .. } => 7000215,
            Aadsts::ExpiredSecret { .. } => 7000222,
            Aadsts::MissingCredential => 7000218,
            Aadsts::ConsentRequired { .. } => 65001,
            Aadsts::UnknownUser { .. } => 50034,
            Aadsts::BadPassword => 50126,
            Aadsts::UserDisabled => 50057,
            Aadsts::LoginRequired => 50058,
            Aadsts::CodeRedeemed => 54005,
            Aadsts::CodeExpired => 70008,
            Aadsts::MalformedRequest => 9002313,
            Aadsts::GrantInvalid => 70000,
            Aadsts::RedirectUriChanged { .. } => 500112,
            Aadsts::PkceMismatch => 501481,
            Aadsts::RefreshTokenExpired => 700082,
            Aadsts::UnsupportedGrantType { .. } => 70003,
            Aadsts::InvalidScope { .. } => 70011,
            Aadsts::ClientCredentialsScope { .. } => 1002012,
            Aadsts::UnknownResource { .. } => 500011,
        }
    }

    /// The OAuth 2.0 `error` value Entra pairs with the code.
    pub(crate) fn oauth_error(&self) -> &'static str {
        match self {
            Aadsts::TenantNotFound { .. } => "invalid_tenant",
            Aadsts::MissingParameter { .. }
            | Aadsts::DuplicateParameter { .. }
            | Aadsts::InvalidParameter { .. }
            | Aadsts::RedirectUriMismatch { .. }
            | Aadsts::NoReplyAddress => "invalid_request",
            Aadsts::UnknownClient { .. } => "unauthorized_client",
            Aadsts::UnsupportedResponseType { .. } => "unsupported_response_type",
            Aadsts::InvalidSecret { .. } | Aadsts::ExpiredSecret { .. } | Aadsts::MissingCredential => "invalid_client",
            Aadsts::ConsentRequired { .. } => "consent_required",
            Aadsts::LoginRequired => "login_required",
            Aadsts::UnknownUser { .. }
            | Aadsts::BadPassword
            | Aadsts::UserDisabled
            | Aadsts::CodeRedeemed
            | Aadsts::CodeExpired
            | Aadsts::MalformedRequest
            | Aadsts::GrantInvalid
            | Aadsts::RedirectUriChanged { .. }
            | Aadsts::PkceMismatch
            | Aadsts::RefreshTokenExpired => "invalid_grant",
            Aadsts::UnsupportedGrantType { .. } => "unsupported_grant_type",
            Aadsts::InvalidScope { .. } | Aadsts::ClientCredentialsScope { .. } => "invalid_scope",
            Aadsts::UnknownResource { .. } => "invalid_resource",
        }
    }

    /// The HTTP status of the token endpoint's JSON error: 401 for client authentication
    /// failures, 400 otherwise.
    pub(crate) fn token_status(&self) -> StatusCode {
        match self {
            Aadsts::InvalidSecret { .. } | Aadsts::ExpiredSecret { .. } | Aadsts::MissingCredential => {
                StatusCode::UNAUTHORIZED
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Entra's message text, without the `AADSTSnnnn: ` prefix and trace lines.
    pub(crate) fn message(&self) -> String {
        match self {
            Aadsts::TenantNotFound { tenant } => format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into \
                 the correct cloud. Check with your subscription administrator, this may happen if there are no \
                 active subscriptions for the tenant."
            ),
            Aadsts::MissingParameter { name } => {
                format!("The request body must contain the following parameter: '{name}'.")
            }
            Aadsts::DuplicateParameter { name } => {
                format!("The request is not properly formatted. The parameter '{name}' is duplicated.")
            }
            Aadsts::InvalidParameter { name } => format!("{name} parameter is empty or not valid."),
            Aadsts::UnknownClient { client_id, tenant_name } => format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. This can \
                 happen if the application has not been installed by the administrator of the tenant or consented \
                 to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
            Aadsts::RedirectUriMismatch { redirect_uri, client_id } => format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs \
                 configured for the application '{client_id}'. Make sure the redirect URI sent in the request \
                 matches one added to your application in the Azure portal. Navigate to \
                 https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
            ),
            Aadsts::NoReplyAddress => "No reply address is registered for the application.".into(),
            Aadsts::UnsupportedResponseType { response_type } => {
                format!("response_type '{response_type}' is not enabled for the application.")
            }
            Aadsts::InvalidSecret { client_id, secret_id_sent } => {
                let mut text = format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client \
                     secret value, not the client secret ID, for a secret added to app '{client_id}'."
                );
                if let Some(id) = secret_id_sent {
                    text.push_str(&format!(
                        " The value sent is the secret ID '{id}' of one of this app's secrets, not its secret value."
                    ));
                }
                text
            }
            Aadsts::ExpiredSecret { client_id } => format!(
                "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create \
                 new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials \
                 for added security: https://aka.ms/certCreds."
            ),
            Aadsts::MissingCredential => {
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into()
            }
            Aadsts::ConsentRequired { client_id, app_name } => format!(
                "The user or administrator has not consented to use the application with ID '{client_id}' named \
                 '{app_name}'. Send an interactive authorization request for this user and resource."
            ),
            Aadsts::UnknownUser { tenant_name } => format!(
                "The user account {{EUII Hidden}} does not exist in the '{tenant_name}' directory. To sign into this \
                 application, the account must be added to the directory."
            ),
            Aadsts::BadPassword => "Error validating credentials due to invalid username or password.".into(),
            Aadsts::UserDisabled => "The user account is disabled.".into(),
            Aadsts::LoginRequired => "A silent sign-in request was sent but no user is signed in.".into(),
            Aadsts::CodeRedeemed => "OAuth2 Authorization code was already redeemed, please retry with a new valid \
                                     code or use an existing refresh token."
                .into(),
            Aadsts::CodeExpired => "The provided authorization code or refresh token has expired due to \
                                    inactivity. Send a new interactive authorization request for this user and \
                                    resource."
                .into(),
            Aadsts::MalformedRequest => "Invalid request. Request is malformed or invalid.".into(),
            Aadsts::GrantInvalid => "Provided grant is invalid or malformed.".into(),
            Aadsts::RedirectUriChanged { sent, original } => format!(
                "The reply address '{sent}' does not match the reply address '{original}' provided when requesting \
                 Authorization code."
            ),
            Aadsts::PkceMismatch => {
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.".into()
            }
            Aadsts::RefreshTokenExpired => "The refresh token has expired due to inactivity.".into(),
            Aadsts::UnsupportedGrantType { grant_type } => {
                format!("The app requested an unsupported grant type '{grant_type}'.")
            }
            Aadsts::InvalidScope { scope } => {
                format!(
                    "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
                )
            }
            Aadsts::ClientCredentialsScope { scope } => format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value \
                 with /.default suffixed to the resource identifier (application ID URI)."
            ),
            Aadsts::UnknownResource { resource, tenant_name } => format!(
                "The resource principal named {resource} was not found in the tenant named {tenant_name}. This can \
                 happen if the application has not been installed by the administrator of the tenant or consented \
                 to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        }
    }
}

/// An [`Aadsts`] failure as one response reports it.
#[derive(Clone, Debug)]
pub(crate) struct AadstsError {
    pub(crate) kind: Aadsts,
    pub(crate) trace_id: Uuid,
    pub(crate) correlation_id: Uuid,
    pub(crate) timestamp: OffsetDateTime,
}

impl AadstsError {
    /// Stamps a failure with fresh ids. `correlation_id` is the client's
    /// `client-request-id` when it sent one, as Entra echoes it.
    pub(crate) fn new(kind: Aadsts, now: OffsetDateTime, correlation_id: Option<Uuid>) -> Self {
        Self {
            kind,
            trace_id: Uuid::new_v4(),
            correlation_id: correlation_id.unwrap_or_else(Uuid::new_v4),
            timestamp: now,
        }
    }

    /// `2016-01-09 02:02:12Z`, Entra's error timestamp format.
    pub(crate) fn timestamp_text(&self) -> String {
        let t = self.timestamp;
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }

    /// `AADSTSnnnn: message` without the trace lines.
    pub(crate) fn headline(&self) -> String {
        format!("AADSTS{}: {}", self.kind.code(), self.kind.message())
    }

    /// The full `error_description`, trace lines included.
    pub(crate) fn description(&self) -> String {
        format!(
            "{}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            self.headline(),
            self.trace_id,
            self.correlation_id,
            self.timestamp_text()
        )
    }

    /// The token endpoint's JSON error response.
    pub(crate) fn json_response(&self, login_base: &str) -> Response {
        let body = json!({
            "error": self.kind.oauth_error(),
            "error_description": self.description(),
            "error_codes": [self.kind.code()],
            "timestamp": self.timestamp_text(),
            "trace_id": self.trace_id,
            "correlation_id": self.correlation_id,
            "error_uri": format!("{login_base}/error?code={}", self.kind.code()),
        });
        (
            self.kind.token_status(),
            [(header::CACHE_CONTROL, "no-store, no-cache"), (header::PRAGMA, "no-cache")],
            axum::Json(body),
        )
            .into_response()
    }

    /// Parameters for an error sent to the client's redirect URI.
    pub(crate) fn redirect_params(&self) -> Vec<(&'static str, String)> {
        vec![("error", self.kind.oauth_error().to_owned()), ("error_description", self.description())]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_start_with_the_code_and_carry_trace_lines() {
        let e = AadstsError::new(
            Aadsts::InvalidSecret { client_id: "c".into(), secret_id_sent: None },
            OffsetDateTime::UNIX_EPOCH,
            None,
        );
        let d = e.description();
        assert!(d.starts_with("AADSTS7000215: Invalid client secret provided."), "{d}");
        assert!(d.contains("\r\nTrace ID: ") && d.ends_with("Timestamp: 1970-01-01 00:00:00Z"));
        let id = Uuid::nil();
        let with_id = Aadsts::InvalidSecret { client_id: "c".into(), secret_id_sent: Some(id) }.message();
        assert!(with_id.contains("secret ID") && with_id != e.kind.message());
    }

    #[test]
    fn client_authentication_failures_are_401() {
        assert_eq!(Aadsts::MissingCredential.token_status(), StatusCode::UNAUTHORIZED);
        assert_eq!(Aadsts::CodeRedeemed.token_status(), StatusCode::BAD_REQUEST);
        assert_eq!(Aadsts::CodeRedeemed.oauth_error(), "invalid_grant");
    }
}
