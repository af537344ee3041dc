//! The SCIM HTTP client of the provisioning driver and its request log.
//!
//! Every request goes through [`Cycle::call`], which sends it with the bearer token,
//! classifies the answer (expected statuses are a success, anything else — including a
//! transport error or an unparseable body — a failure with Entra's error code
//! `SystemForCrossDomainIdentityManagementServiceIncompatible`), and appends one
//! [`ProvisioningLogEntry`]. The token is held in a [`Secret`] and never logged.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    ProvisioningCounts, ProvisioningLogEntry, ProvisioningMode, ProvisioningOperation, ProvisioningOutcome,
    ResourceType,
};
use crate::SimError;
use crate::secret::Secret;

/// Entra's provisioning-log error code for an endpoint answer it cannot use.
const INCOMPATIBLE: &str = "SystemForCrossDomainIdentityManagementServiceIncompatible";

/// Where a cycle sends its requests.
#[derive(Debug)]
pub(crate) struct ScimTarget {
    /// The tenant URL without query string or trailing slash.
    pub(crate) base: String,
    pub(crate) mode: ProvisioningMode,
    token: Secret,
    http: reqwest::Client,
}

impl ScimTarget {
    /// Parses the SCIM base URL. A `aadOptscim062020` flag in its query string switches to
    /// that mode, as it does in Entra; the query string itself is not sent.
    pub(crate) fn new(url: &str, token: &str, mode: ProvisioningMode) -> Result<Self, SimError> {
        let invalid = |reason: &str| SimError::InvalidScimUrl { url: url.to_owned(), reason: reason.to_owned() };
        let mut parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("must be an http(s) URL"));
        }
        let flagged = parsed.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("aadOptscim062020"));
        parsed.set_query(None);
        parsed.set_fragment(None);
        let mut builder =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(30));
        // Names under `.localhost` are loopback (RFC 6761), as browsers treat them, but the
        // system resolver may not know them: a local gateway's team domain such as
        // `auth.localhost` must still be reachable.
        if let Some(host) = parsed.host_str().map(str::to_ascii_lowercase)
            && (host == "localhost" || host.ends_with(".localhost"))
        {
            let port = parsed.port_or_known_default().unwrap_or(80);
            builder = builder.resolve(&host, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        }
        let http = builder.build().map_err(SimError::HttpClient)?;
        Ok(Self {
            base: parsed.as_str().trim_end_matches('/').to_owned(),
            mode: if flagged { ProvisioningMode::AadOptscim062020 } else { mode },
            token: Secret::new(token),
            http,
        })
    }
}

/// One request's description, for the log.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub(crate) operation: ProvisioningOperation,
    pub(crate) resource_type: ResourceType,
    pub(crate) source: Option<(Uuid, &'a str)>,
    pub(crate) target_id: Option<&'a str>,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) body: Option<Value>,
    pub(crate) expect: &'static [u16],
}

/// A cycle in progress: the target, the log so far and the counters.
#[derive(Debug)]
pub(crate) struct Cycle<'t> {
    pub(crate) target: &'t ScimTarget,
    pub(crate) number: u64,
    pub(crate) log: Vec<ProvisioningLogEntry>,
    pub(crate) counts: ProvisioningCounts,
}

impl<'t> Cycle<'t> {
    pub(crate) fn new(target: &'t ScimTarget, number: u64) -> Self {
        Self { target, number, log: Vec::new(), counts: ProvisioningCounts::default() }
    }

    /// Sends one request and logs it. `Ok` carries the parsed body (or `Null` when empty).
    pub(crate) async fn call(&mut self, call: Call<'_>) -> Result<Value, ()> {
        let url = format!("{}{}", self.target.base, call.path);
        let mut request = self
            .target
            .http
            .request(call.method.clone(), &url)
            .bearer_auth(self.target.token.expose())
            .header(reqwest::header::ACCEPT, "application/scim+json");
        if let Some(body) = &call.body {
            let bytes = serde_json::to_vec(body).unwrap_or_default();
            request = request.header(reqwest::header::CONTENT_TYPE, "application/scim+json; charset=utf-8").body(bytes);
        }
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(bytes) => Ok((status, bytes)),
                    Err(e) => Err((Some(status), format!("reading the response failed: {e}"))),
                }
            }
            Err(e) => Err((None, format!("request failed: {e}"))),
        };
        let (status, result) = match answer {
            Ok((status, bytes)) if call.expect.contains(&status) => {
                if bytes.is_empty() {
                    (Some(status), Ok(Value::Null))
                } else {
                    match serde_json::from_slice::<Value>(&bytes) {
                        Ok(v) => (Some(status), Ok(v)),
                        Err(_) => (Some(status), Err("the response body is not JSON".to_owned())),
                    }
                }
            }
            Ok((status, bytes)) => {
                let text = String::from_utf8_lossy(&bytes);
                let excerpt: String = text.chars().take(300).collect();
                let reason = reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("unexpected status");
                (Some(status), Err(format!("HTTP {status} {reason}: {excerpt}")))
            }
            Err((status, reason)) => (status, Err(reason)),
        };
        let (outcome, error_code, reason) = match &result {
            Ok(_) => (ProvisioningOutcome::Success, None, None),
            Err(reason) => (ProvisioningOutcome::Failure, Some(INCOMPATIBLE.to_owned()), Some(reason.clone())),
        };
        if let Some(reason) = &reason {
            tracing::warn!(method = %call.method, path = %call.path, %reason, "provisioning request failed");
        }
        self.log.push(ProvisioningLogEntry {
            cycle: self.number,
            time: OffsetDateTime::now_utc(),
            operation: call.operation,
            resource_type: call.resource_type,
            source_id: call.source.map(|(id, _)| id),
            source_name: call.source.map(|(_, name)| name.to_owned()),
            target_id: call.target_id.map(str::to_owned),
            method: call.method.to_string(),
            path: call.path,
            request_body: call.body,
            status,
            outcome,
            error_code,
            reason,
        });
        result.map_err(|_| ())
    }
}
