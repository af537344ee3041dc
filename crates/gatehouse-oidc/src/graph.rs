//! Group memberships for Entra ID: the ID token's `groups` claim, its overage, and Microsoft
//! Graph.
//!
//! When the ID token lists `groups`, they are used as they are (object ids; Entra already
//! includes nested memberships of security groups). When it carries an overage instead
//! (`_claim_names.groups`, more than 200 groups) — or always, when
//! [`GraphOptions::resolve_nested`] is on — the groups come from
//! `GET {graph}/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id,displayName` with
//! the Graph access token of the same code exchange. The overage's own URL (legacy Azure AD
//! Graph) is ignored, as Microsoft requires. Pages are followed through `@odata.nextLink`
//! (only on Graph's own host, so the token never goes elsewhere) up to a page limit;
//! 429/503/504 are retried after `Retry-After`, with bounded retries and total wait.
//!
//! This module must not send the access token anywhere but the configured Graph origin, and
//! must not log it.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Map, Value};
use url::Url;

use crate::clock::Clock;
use crate::http::{self, Endpoint, FetchError, FetchFailure};
use crate::identity::Group;

/// Largest Graph page read.
const PAGE_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Most groups read from a `groups` claim.
const MAX_CLAIM_GROUPS: usize = 10_000;

/// How groups are read from Microsoft Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphOptions {
    /// Always read groups from Graph (transitive, with display names), even when the token
    /// lists them. Off: Graph is called only on overage.
    pub resolve_nested: bool,
    /// Graph page size (`$top`, 1–999).
    pub page_size: u16,
    /// Most pages followed before giving up (a partial group list is never used).
    pub max_pages: u32,
    /// Most retries of one request after 429/503/504.
    pub max_retries: u32,
    /// Most time spent waiting for `Retry-After` in one sign-in.
    pub max_total_wait: Duration,
}

impl Default for GraphOptions {
    fn default() -> Self {
        Self {
            resolve_nested: false,
            page_size: 999,
            max_pages: 50,
            max_retries: 4,
            max_total_wait: Duration::from_secs(30),
        }
    }
}

/// What the ID token says about groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupsClaim {
    /// The `groups` claim, as listed (string values only).
    Listed(Vec<String>),
    /// An overage (`_claim_names.groups`, or `hasgroups: true`): ask Graph.
    Overage,
    /// No group information.
    Absent,
}

/// Reads the groups claim and its overage markers. Never panics on any claim shape.
pub fn groups_claim(claims: &Map<String, Value>) -> GroupsClaim {
    let overage =
        claims.get("_claim_names").and_then(Value::as_object).is_some_and(|names| names.contains_key("groups"))
            || claims.get("hasgroups") == Some(&Value::Bool(true));
    if overage {
        return GroupsClaim::Overage;
    }
    match claims.get("groups") {
        Some(Value::Array(items)) => GroupsClaim::Listed(
            items
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .take(MAX_CLAIM_GROUPS)
                .map(str::to_owned)
                .collect(),
        ),
        Some(Value::String(one)) if !one.is_empty() => GroupsClaim::Listed(vec![one.clone()]),
        _ => GroupsClaim::Absent,
    }
}

/// Why groups could not be read from Graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The token endpoint issued no access token to call Graph with.
    #[error("the token endpoint issued no access token for Microsoft Graph")]
    NoAccessToken,
    /// 403: the app lacks the permission, or consent was not granted.
    #[error("Microsoft Graph refused to list group memberships: {code}: {message}")]
    Forbidden {
        /// Graph's error code (`Authorization_RequestDenied`).
        code: String,
        /// Graph's message.
        message: String,
    },
    /// 401: Graph did not accept the access token.
    #[error("Microsoft Graph did not accept the access token: {code}: {message}")]
    Unauthorized {
        /// Graph's error code.
        code: String,
        /// Graph's message.
        message: String,
    },
    /// Still throttled after the allowed retries or wait.
    #[error("Microsoft Graph kept throttling the requests ({attempts} attempts, {waited_secs} s waited)")]
    Throttled {
        /// Requests made.
        attempts: u32,
        /// Seconds waited in all.
        waited_secs: u64,
    },
    /// More pages than allowed.
    #[error("the user is in more groups than {max_pages} pages of Graph results")]
    TooManyPages {
        /// The limit.
        max_pages: u32,
    },
    /// `@odata.nextLink` points away from Graph.
    #[error("Microsoft Graph's next-page link points to another host ({link}); not followed")]
    ForeignNextLink {
        /// The link, without its query.
        link: String,
    },
    /// Unreachable, an unexpected status, or an unusable page.
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

fn graph_error_body(body: &[u8]) -> (String, String) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let field = |name: &str| {
        error.and_then(|e| e.get(name)).and_then(Value::as_str).map(|s| s.chars().take(500).collect::<String>())
    };
    (field("code").unwrap_or_default(), field("message").unwrap_or_else(|| http::excerpt(body)))
}

/// `Retry-After`: delta-seconds or an HTTP date.
fn retry_after(response: &reqwest::Response, now: time::OffsetDateTime) -> Option<Duration> {
    let text = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc2822).ok()?;
    Some(Duration::from_secs(u64::try_from((at - now).whole_seconds()).unwrap_or(0)))
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

#[derive(Debug, Default)]
struct Budget {
    waited: Duration,
}

/// One GET with the bearer token, retried after throttling.
async fn get_page(
    client: &reqwest::Client,
    clock: &dyn Clock,
    url: &Url,
    token: &str,
    options: &GraphOptions,
    budget: &mut Budget,
) -> Result<Vec<u8>, GraphError> {
    let fail = |failure| GraphError::Fetch(FetchError::new(Endpoint::Graph, url, failure));
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let response = client
            .get(url.clone())
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| fail(http::classify(&e)))?;
        let status = response.status().as_u16();
        if matches!(status, 429 | 503 | 504) {
            let backoff = Duration::from_secs(1u64 << attempts.min(5));
            let delay = retry_after(&response, clock.now()).unwrap_or(backoff);
            if attempts > options.max_retries || budget.waited + delay > options.max_total_wait {
                tracing::warn!(
                    attempts,
                    waited = budget.waited.as_secs(),
                    "Microsoft Graph keeps throttling; giving up"
                );
                return Err(GraphError::Throttled { attempts, waited_secs: budget.waited.as_secs() });
            }
            tracing::info!(status, delay = delay.as_secs(), "Microsoft Graph throttled; waiting as asked");
            budget.waited += delay;
            clock.sleep(delay).await;
            continue;
        }
        if (300..400).contains(&status) {
            return Err(fail(FetchFailure::Redirect { status, location: http::location(&response) }));
        }
        let body = http::read_limited(response, PAGE_BODY_LIMIT).await.map_err(fail)?;
        return match status {
            200..=299 => Ok(body),
            401 => {
                let (code, message) = graph_error_body(&body);
                Err(GraphError::Unauthorized { code, message })
            }
            403 => {
                let (code, message) = graph_error_body(&body);
                Err(GraphError::Forbidden { code, message })
            }
            _ => {
                let (code, message) = graph_error_body(&body);
                Err(fail(FetchFailure::Status { status, excerpt: format!("{code} {message}").trim().to_owned() }))
            }
        };
    }
}

/// One page of `transitiveMemberOf`: its groups and the next link.
pub(crate) fn parse_page(body: &[u8]) -> Result<(Vec<Group>, Option<String>), String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let items = doc.get("value").and_then(Value::as_array).ok_or("no \"value\" array")?;
    let mut groups = Vec::with_capacity(items.len());
    for item in items {
        let Some(obj) = item.as_object() else { continue };
        if obj.get("@odata.type").and_then(Value::as_str).is_some_and(|t| t != "#microsoft.graph.group") {
            continue;
        }
        let Some(id) = obj.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) else { continue };
        let name = obj.get("displayName").and_then(Value::as_str).map(|s| s.chars().take(256).collect());
        groups.push(Group { id: id.chars().take(128).collect(), name });
    }
    let next = doc.get("@odata.nextLink").and_then(Value::as_str).map(str::to_owned);
    Ok((groups, next))
}

/// Every group the signed-in user is in, nested memberships included, with display names.
#[tracing::instrument(skip_all)]
pub(crate) async fn transitive_groups(
    client: &reqwest::Client,
    clock: &dyn Clock,
    graph_root: &Url,
    access_token: &str,
    options: &GraphOptions,
) -> Result<Vec<Group>, GraphError> {
    let top = options.page_size.clamp(1, 999);
    let first = format!(
        "{}/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id,displayName&$top={top}",
        graph_root.as_str().trim_end_matches('/')
    );
    let malformed = |url: &Url, reason: String| {
        GraphError::Fetch(FetchError::new(Endpoint::Graph, url, FetchFailure::Malformed(reason)))
    };
    let mut url = Url::parse(&first).map_err(|e| malformed(graph_root, e.to_string()))?;
    let mut budget = Budget::default();
    let mut groups = Vec::new();
    let mut seen = HashSet::new();
    let mut pages = 0u32;
    loop {
        pages += 1;
        if pages > options.max_pages {
            return Err(GraphError::TooManyPages { max_pages: options.max_pages });
        }
        let body = get_page(client, clock, &url, access_token, options, &mut budget).await?;
        let (page, next) = parse_page(&body).map_err(|reason| malformed(&url, format!("a Graph page is {reason}")))?;
        for g in page {
            if seen.insert(g.id.clone()) {
                groups.push(g);
            }
        }
        let Some(next) = next else { break };
        let next_url = Url::parse(&next).map_err(|e| malformed(&url, format!("@odata.nextLink is not a URL ({e})")))?;
        if !same_origin(&next_url, graph_root) {
            return Err(GraphError::ForeignNextLink { link: http::display_url(&next_url) });
        }
        url = next_url;
    }
    tracing::info!(groups = groups.len(), pages, "groups read from Microsoft Graph");
    Ok(groups)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn claim_shapes() {
        assert_eq!(
            groups_claim(&map(json!({"groups": ["a", "b", 3, ""]}))),
            GroupsClaim::Listed(vec!["a".into(), "b".into()])
        );
        assert_eq!(groups_claim(&map(json!({"groups": "a"}))), GroupsClaim::Listed(vec!["a".into()]));
        assert_eq!(
            groups_claim(&map(
                json!({"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "x"}}})
            )),
            GroupsClaim::Overage
        );
        assert_eq!(groups_claim(&map(json!({"hasgroups": true}))), GroupsClaim::Overage);
        assert_eq!(groups_claim(&map(json!({"_claim_names": "groups"}))), GroupsClaim::Absent);
        assert_eq!(groups_claim(&map(json!({}))), GroupsClaim::Absent);
    }

    #[test]
    fn pages_skip_non_groups() {
        let body = json!({"value": [
            {"@odata.type": "#microsoft.graph.group", "id": "g1", "displayName": "One"},
            {"@odata.type": "#microsoft.graph.directoryRole", "id": "r1", "displayName": "Role"},
            {"id": "g2"},
            {"displayName": "no id"},
            7
        ], "@odata.nextLink": "https://graph.microsoft.com/v1.0/me/transitiveMemberOf?$skiptoken=x"});
        let (groups, next) = parse_page(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            groups,
            vec![Group { id: "g1".into(), name: Some("One".into()) }, Group { id: "g2".into(), name: None }]
        );
        assert!(next.is_some());
        assert!(parse_page(b"{}").is_err());
    }

    #[test]
    fn origins() {
        let g = Url::parse("https://graph.microsoft.com/").unwrap();
        assert!(same_origin(&Url::parse("https://graph.microsoft.com:443/v1.0/x").unwrap(), &g));
        assert!(!same_origin(&Url::parse("https://evil.example/v1.0/x").unwrap(), &g));
        assert!(!same_origin(&Url::parse("http://graph.microsoft.com/v1.0/x").unwrap(), &g));
    }

    proptest::proptest! {
        #[test]
        fn graph_pages_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_page(&body);
            let _ = graph_error_body(&body);
        }

        #[test]
        fn graph_page_items_of_any_shape(id in proptest::option::of("\\PC{0,10}"), name in proptest::option::of("\\PC{0,10}"),
                                         kind in "(#microsoft.graph.group|#microsoft.graph.directoryRole|x)", next in proptest::option::of("\\PC{0,20}")) {
            let body = json!({"value": [{"@odata.type": kind, "id": id, "displayName": name}], "@odata.nextLink": next});
            let (groups, _) = parse_page(body.to_string().as_bytes()).unwrap();
            proptest::prop_assert!(groups.iter().all(|g| !g.id.is_empty()));
        }
    }
}
