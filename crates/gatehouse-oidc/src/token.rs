//! The IdP's answers: the callback's query parameters, the token endpoint exchange, and
//! Entra's error bodies with their AADSTS codes.
//!
//! The code is redeemed with `client_secret_post` (default) or `client_secret_basic`
//! ([`ClientAuthMethod`]), repeating the redirect URI and sending the PKCE verifier when one
//! was used. A refusal is parsed into an [`OAuthError`] (`error`, `error_description`,
//! `error_codes`, `trace_id`, `correlation_id`, `timestamp`) whose AADSTS code drives the
//! diagnosis; the same type carries an `error` delivered to the redirect URI.
//!
//! Everything here parses outside input and must never panic on it. Tokens and secrets are
//! never logged; `Debug` of the token response redacts them.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::http::{self, Endpoint, FetchError, FetchFailure};

/// Largest token response read.
const TOKEN_BODY_LIMIT: usize = 1024 * 1024;
/// Longest callback parameter value accepted.
const MAX_PARAM_LEN: usize = 16 * 1024;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// `client_id` and `client_secret` in the form body.
    #[default]
    ClientSecretPost,
    /// HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
}

/// An OAuth error as an IdP reports it, with Entra's extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OAuthError {
    /// The OAuth `error` (`invalid_client`, `invalid_grant`, `consent_required`...).
    pub error: String,
    /// `error_description`; Entra's starts with `AADSTSnnnn: ` and ends with trace lines.
    pub error_description: Option<String>,
    /// Entra's `error_codes`.
    pub error_codes: Vec<u64>,
    /// Entra's `trace_id`.
    pub trace_id: Option<String>,
    /// Entra's `correlation_id`.
    pub correlation_id: Option<String>,
    /// Entra's `timestamp`.
    pub timestamp: Option<String>,
}

fn short(text: &str, max: usize) -> String {
    text.chars().filter(|c| *c != '\0').take(max).collect()
}

impl OAuthError {
    /// Parses a token endpoint's JSON error body. Lenient: fields of the wrong type are
    /// ignored; only a non-empty string `error` is required.
    pub fn parse_body(body: &[u8]) -> Option<Self> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let obj = value.as_object()?;
        let text = |key: &str| obj.get(key).and_then(Value::as_str).map(|s| short(s, MAX_PARAM_LEN));
        let error = text("error").filter(|e| !e.is_empty())?;
        let error_codes = match obj.get("error_codes") {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_u64).take(16).collect(),
            _ => Vec::new(),
        };
        Some(Self {
            error,
            error_description: text("error_description"),
            error_codes,
            trace_id: text("trace_id"),
            correlation_id: text("correlation_id"),
            timestamp: text("timestamp"),
        })
    }

    /// An error delivered to the redirect URI (`error`, `error_description`).
    pub fn from_callback(error: &str, description: Option<&str>) -> Self {
        let description = description.map(|d| short(d, MAX_PARAM_LEN));
        let mut out = Self { error: short(error, 256), ..Self::default() };
        if let Some(d) = &description {
            out.trace_id = trace_line(d, "Trace ID:");
            out.correlation_id = trace_line(d, "Correlation ID:");
            out.timestamp = trace_line(d, "Timestamp:");
        }
        out.error_description = description;
        out
    }

    /// The AADSTS code: the first of `error_codes`, else the one in the description.
    pub fn aadsts(&self) -> Option<u32> {
        self.error_codes
            .first()
            .and_then(|c| u32::try_from(*c).ok())
            .or_else(|| self.error_description.as_deref().and_then(find_aadsts_code))
    }

    /// The first line of the description (`AADSTSnnnn: message`), or the `error`.
    pub fn summary(&self) -> String {
        self.error_description
            .as_deref()
            .and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
            .map(|l| short(l, 1000))
            .unwrap_or_else(|| self.error.clone())
    }
}

fn trace_line(text: &str, label: &str) -> Option<String> {
    text.lines().find_map(|l| l.trim().strip_prefix(label)).map(|v| short(v.trim(), 100)).filter(|v| !v.is_empty())
}

/// Finds the first `AADSTS` code in a text (`AADSTS50011`), if any.
pub fn find_aadsts_code(text: &str) -> Option<u32> {
    find_aadsts(text).map(|(code, _)| code)
}

/// Finds the first `AADSTSnnnn: message` in a text — an error description, or the HTML of
/// Entra's error page — and returns the code and the message up to the end of its line or
/// the next HTML tag, with the basic HTML entities decoded.
pub fn find_aadsts_message(text: &str) -> Option<(u32, String)> {
    let mut rest = text;
    while let Some(at) = rest.find("AADSTS") {
        let after = &rest[at + 6..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).take(10).collect();
        let tail = &after[digits.len()..];
        if (4..=8).contains(&digits.len())
            && let Some(message) = tail.strip_prefix(": ")
            && let Ok(code) = digits.parse::<u32>()
        {
            let end = message.find(['<', '\r', '\n', '"']).unwrap_or(message.len());
            let message = unescape_html(message[..end].trim());
            return Some((code, format!("AADSTS{code}: {}", short(&message, 1000))));
        }
        rest = after;
    }
    None
}

fn find_aadsts(text: &str) -> Option<(u32, usize)> {
    let mut offset = 0;
    while let Some(at) = text[offset..].find("AADSTS") {
        let start = offset + at + 6;
        let digits: String = text[start..].chars().take_while(char::is_ascii_digit).take(10).collect();
        if (4..=8).contains(&digits.len())
            && let Ok(code) = digits.parse::<u32>()
        {
            return Some((code, start));
        }
        offset = start;
    }
    None
}

fn unescape_html(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The query parameters the IdP sends the browser back with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// The echoed `state`.
    pub state: Option<String>,
    /// An OAuth error (`access_denied`, `consent_required`...).
    pub error: Option<String>,
    /// The error's description (Entra: `AADSTSnnnn: ...`).
    pub error_description: Option<String>,
}

/// A callback whose parameters cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// A parameter appears twice (an attempt to confuse which value is used).
    #[error("the callback parameter '{0}' appears more than once")]
    Duplicate(&'static str),
    /// A parameter is absurdly long.
    #[error("the callback parameter '{0}' is too long")]
    TooLong(&'static str),
}

impl CallbackParams {
    /// Parses the callback's query string (without `?`). Unknown parameters (`session_state`,
    /// `iss`...) are ignored; `code`, `state`, `error` and `error_description` may appear
    /// at most once.
    ///
    /// # Errors
    /// [`CallbackError`] for a duplicated or over-long parameter.
    pub fn from_query(query: &str) -> Result<Self, CallbackError> {
        Self::from_pairs(url::form_urlencoded::parse(query.as_bytes()))
    }

    /// Parses already-decoded parameters (a framework's query map, or a `form_post` body).
    ///
    /// # Errors
    /// As [`CallbackParams::from_query`].
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, CallbackError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut out = Self::default();
        for (key, value) in pairs {
            let (slot, name) = match key.as_ref() {
                "code" => (&mut out.code, "code"),
                "state" => (&mut out.state, "state"),
                "error" => (&mut out.error, "error"),
                "error_description" => (&mut out.error_description, "error_description"),
                _ => continue,
            };
            if slot.is_some() {
                return Err(CallbackError::Duplicate(name));
            }
            let value = value.as_ref();
            if value.len() > MAX_PARAM_LEN {
                return Err(CallbackError::TooLong(name));
            }
            *slot = Some(value.to_owned());
        }
        Ok(out)
    }
}

/// A successful token response. `Debug` redacts the tokens.
#[derive(Clone, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub(crate) id_token: Option<String>,
    #[serde(default)]
    pub(crate) access_token: Option<String>,
    #[serde(default)]
    pub(crate) token_type: Option<String>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field("access_token", &self.access_token.as_ref().map(|_| "[redacted]"))
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .finish()
    }
}

/// How the token endpoint refused.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// An OAuth error body.
    Rejected { status: u16, error: OAuthError },
    /// Anything else.
    Fetch(FetchError),
}

/// What the exchange sends.
#[derive(Debug)]
pub(crate) struct Exchange<'a> {
    pub(crate) token_url: &'a Url,
    pub(crate) client_id: &'a str,
    pub(crate) client_secret: &'a str,
    pub(crate) method: ClientAuthMethod,
    pub(crate) code: &'a str,
    pub(crate) redirect_uri: &'a str,
    pub(crate) code_verifier: Option<&'a str>,
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Redeems an authorization code.
#[tracing::instrument(skip_all, fields(url = %http::display_url(x.token_url)))]
pub(crate) async fn exchange_code(client: &reqwest::Client, x: &Exchange<'_>) -> Result<TokenResponse, ExchangeError> {
    let mut form: Vec<(&str, &str)> =
        vec![("grant_type", "authorization_code"), ("code", x.code), ("redirect_uri", x.redirect_uri)];
    if let Some(v) = x.code_verifier {
        form.push(("code_verifier", v));
    }
    let mut request = client.post(x.token_url.clone()).header(reqwest::header::ACCEPT, "application/json");
    match x.method {
        ClientAuthMethod::ClientSecretPost => {
            form.push(("client_id", x.client_id));
            form.push(("client_secret", x.client_secret));
        }
        ClientAuthMethod::ClientSecretBasic => {
            let credentials = format!("{}:{}", form_encode(x.client_id), form_encode(x.client_secret));
            request = request.header(reqwest::header::AUTHORIZATION, format!("Basic {}", STANDARD.encode(credentials)));
            // Some IdPs want the id in the body too; it is not a credential.
            form.push(("client_id", x.client_id));
        }
    }
    let fetch = |failure| ExchangeError::Fetch(FetchError::new(Endpoint::Token, x.token_url, failure));
    let response = request.form(&form).send().await.map_err(|e| fetch(http::classify(&e)))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(fetch(FetchFailure::Redirect { status: status.as_u16(), location: http::location(&response) }));
    }
    let body = http::read_limited(response, TOKEN_BODY_LIMIT).await.map_err(fetch)?;
    if status.is_success() {
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            fetch(FetchFailure::Malformed(format!("the token response is not JSON of the expected shape ({e})")))
        })?;
        tracing::debug!(scope = parsed.scope.as_deref().unwrap_or(""), "code redeemed");
        return Ok(parsed);
    }
    match OAuthError::parse_body(&body) {
        Some(error) => {
            tracing::info!(status = status.as_u16(), error = %error.error, aadsts = ?error.aadsts(), "token endpoint refused the code");
            Err(ExchangeError::Rejected { status: status.as_u16(), error })
        }
        None => Err(fetch(FetchFailure::Status { status: status.as_u16(), excerpt: http::excerpt(&body) })),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn entra_error_body() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: t-1\r\nCorrelation ID: c-1\r\nTimestamp: 2016-01-09 02:02:12Z","error_codes":[7000215],"timestamp":"2016-01-09 02:02:12Z","trace_id":"t-1","correlation_id":"c-1","error_uri":"https://x"}"#;
        let e = OAuthError::parse_body(body).unwrap();
        assert_eq!(e.error, "invalid_client");
        assert_eq!(e.aadsts(), Some(7000215));
        assert_eq!(e.summary(), "AADSTS7000215: Invalid client secret provided.");
        assert_eq!(e.trace_id.as_deref(), Some("t-1"));
        assert_eq!(e.correlation_id.as_deref(), Some("c-1"));
        assert!(OAuthError::parse_body(b"{}").is_none());
        assert!(OAuthError::parse_body(b"<html>").is_none());
        let generic = OAuthError::parse_body(br#"{"error":"invalid_grant","error_codes":"x"}"#).unwrap();
        assert_eq!((generic.aadsts(), generic.summary()), (None, "invalid_grant".to_owned()));
    }

    #[test]
    fn callback_error_carries_trace_lines() {
        let e = OAuthError::from_callback(
            "consent_required",
            Some(
                "AADSTS65001: The user or administrator has not consented.\r\nTrace ID: abc\r\nCorrelation ID: def\r\nTimestamp: 2024-01-01 00:00:00Z",
            ),
        );
        assert_eq!(e.aadsts(), Some(65001));
        assert_eq!(e.trace_id.as_deref(), Some("abc"));
        assert_eq!(e.correlation_id.as_deref(), Some("def"));
    }

    #[test]
    fn aadsts_in_html() {
        let page = "<p class=\"error\" id=\"error-code\">AADSTS50011: The redirect URI &#39;http://x/cb?a=&lt;b&gt;&#39; specified</p>";
        let (code, message) = find_aadsts_message(page).unwrap();
        assert_eq!(code, 50011);
        assert_eq!(message, "AADSTS50011: The redirect URI 'http://x/cb?a=<b>' specified");
        assert_eq!(find_aadsts_code("see AADSTS700016 for details"), Some(700016));
        assert_eq!(find_aadsts_message("AADSTS is nice; AADSTS12: no"), None);
    }

    #[test]
    fn callback_params() {
        let p = CallbackParams::from_query("code=abc&state=s%20t&session_state=x").unwrap();
        assert_eq!(p.code.as_deref(), Some("abc"));
        assert_eq!(p.state.as_deref(), Some("s t"));
        assert_eq!(CallbackParams::from_query("state=a&state=b"), Err(CallbackError::Duplicate("state")));
        let long = format!("code={}", "a".repeat(MAX_PARAM_LEN + 1));
        assert_eq!(CallbackParams::from_query(&long), Err(CallbackError::TooLong("code")));
    }

    #[test]
    fn token_response_debug_redacts() {
        let t: TokenResponse = serde_json::from_str(r#"{"id_token":"SECRET1","access_token":"SECRET2"}"#).unwrap();
        let text = format!("{t:?}");
        assert!(!text.contains("SECRET"));
    }
}
