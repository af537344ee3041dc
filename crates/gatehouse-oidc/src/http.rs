//! The outbound HTTP client and what can go wrong with a request, in one place.
//!
//! The client follows no redirects (an IdP endpoint that redirects is misconfigured, and
//! following could carry a code or a bearer token elsewhere), has connect and overall
//! timeouts, and reads bodies only up to a per-endpoint limit. Failures are classified into
//! a [`FetchError`] that names the endpoint and URL and says whether the host was unreachable
//! (refused, timed out, unknown name, TLS), answered an unexpected status, or sent something
//! unusable, because that is what an administrator needs to fix it.
//!
//! This module must not log request or response bodies: they carry codes and tokens.

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Which endpoint a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// The authorization endpoint (checked by [`crate::OidcClient::preflight`]).
    Authorize,
    /// The token endpoint.
    Token,
    /// The signing-keys (JWKS) endpoint.
    Jwks,
    /// Microsoft Graph.
    Graph,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Endpoint::Authorize => "the authorization endpoint",
            Endpoint::Token => "the token endpoint",
            Endpoint::Jwks => "the signing-keys (JWKS) endpoint",
            Endpoint::Graph => "Microsoft Graph",
        })
    }
}

/// Why a host could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnreachableKind {
    /// Nothing listens there (connection refused).
    Refused,
    /// No answer within the timeout.
    Timeout,
    /// The host name does not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// Any other connection failure.
    Other,
}

/// How a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchFailure {
    /// The host could not be reached.
    Unreachable {
        /// Why.
        kind: UnreachableKind,
        /// The underlying error, for administrators.
        detail: String,
    },
    /// The endpoint answered with a redirect, which is never followed.
    Redirect {
        /// The HTTP status.
        status: u16,
        /// Where it pointed.
        location: Option<String>,
    },
    /// The endpoint answered an unexpected status.
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body, for administrators (never a token response).
        excerpt: String,
    },
    /// The body was larger than allowed.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body was not what the protocol requires.
    Malformed(String),
}

/// A failed request to an IdP or Graph endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{endpoint} at {url}: {failure}")]
pub struct FetchError {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The URL requested (without query).
    pub url: String,
    /// What went wrong.
    pub failure: FetchFailure,
}

impl fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchFailure::Unreachable { kind, detail } => {
                let what = match kind {
                    UnreachableKind::Refused => "connection refused",
                    UnreachableKind::Timeout => "timed out",
                    UnreachableKind::Dns => "host name not found",
                    UnreachableKind::Tls => "TLS handshake failed",
                    UnreachableKind::Other => "could not connect",
                };
                write!(f, "{what} ({detail})")
            }
            FetchFailure::Redirect { status, location } => {
                write!(f, "answered HTTP {status}, a redirect to {}", location.as_deref().unwrap_or("nowhere"))
            }
            FetchFailure::Status { status, excerpt } => write!(f, "answered HTTP {status}: {excerpt}"),
            FetchFailure::TooLarge { limit } => write!(f, "the response is larger than {limit} bytes"),
            FetchFailure::Malformed(reason) => write!(f, "unusable response: {reason}"),
        }
    }
}

impl FetchError {
    pub(crate) fn new(endpoint: Endpoint, url: &url::Url, failure: FetchFailure) -> Self {
        Self { endpoint, url: display_url(url), failure }
    }
}

/// A URL without its query and fragment, safe to show and log.
pub(crate) fn display_url(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Errors building the HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// reqwest refused the configuration (for example, no usable system root certificates).
    #[error("building the HTTP client failed: {0}")]
    Http(String),
}

/// Builds the client: no redirects, timeouts, a fixed user agent.
pub(crate) fn build_client(connect_timeout: Duration, timeout: Duration) -> Result<reqwest::Client, ClientBuildError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .user_agent(concat!("gatehouse-oidc/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientBuildError::Http(e.to_string()))
}

/// Classifies a transport error.
pub(crate) fn classify(err: &reqwest::Error) -> FetchFailure {
    let mut detail = err.to_string();
    let mut kind = if err.is_timeout() { UnreachableKind::Timeout } else { UnreachableKind::Other };
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => kind = UnreachableKind::Refused,
                std::io::ErrorKind::TimedOut => kind = UnreachableKind::Timeout,
                // rustls reports handshake failures (bad certificate, not TLS at all) as
                // invalid data; a plain TCP connect never does.
                std::io::ErrorKind::InvalidData if err.is_connect() => kind = UnreachableKind::Tls,
                _ => {}
            }
        }
        let lower = text.to_ascii_lowercase();
        if kind == UnreachableKind::Other {
            if lower.contains("dns error") || lower.contains("failed to lookup address") {
                kind = UnreachableKind::Dns;
            } else if ["certificate", "tls", "handshake", "corrupt message", "alert"].iter().any(|w| lower.contains(w))
            {
                kind = UnreachableKind::Tls;
            } else if lower.contains("connection refused") {
                kind = UnreachableKind::Refused;
            }
        }
        detail = text;
        source = e.source();
    }
    if err.is_decode() || err.is_body() {
        return FetchFailure::Malformed(detail);
    }
    FetchFailure::Unreachable { kind, detail }
}

/// Reads a body up to `limit` bytes.
pub(crate) async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, FetchFailure> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(FetchFailure::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(FetchFailure::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first characters of a body, on one line, for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// `Location` of a redirect, if readable.
pub(crate) fn location(response: &reqwest::Response) -> Option<String> {
    response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned)
}
