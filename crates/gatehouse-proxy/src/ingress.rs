//! Which origin serves a request: `cloudflared`-style ingress rules — an ordered list of
//! `{hostname, path, service, originRequest}` whose first match wins, ending with a catch-all.
//!
//! Rules come from the configuration file, or from the API (`cfd_tunnel/{id}/configurations`)
//! once an administrator has written them there; the API's copy then takes precedence. Both
//! are validated by [`validate`] with messages that name the rule and field.
//!
//! `hostname` matches the request's host without its port (or with it, when the rule names a
//! port), case-insensitively; `*.example.com` matches any subdomain. `path` is a regular
//! expression searched in the request path, as `cloudflared` does (anchor it with `^` for a
//! prefix).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One ingress rule, as written in TOML or JSON.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IngressRule {
    /// Host to match; `*.example.com` wildcards allowed; absent = any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Regular expression searched in the path; absent = any path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `http://host:port`, `https://host:port`, or `http_status:NNN`.
    pub service: String,
    /// Per-origin settings, as `cloudflared` names them.
    #[serde(rename = "originRequest", default, skip_serializing_if = "OriginRequest::is_empty")]
    pub origin_request: OriginRequest,
}

/// A number of seconds, written as an integer (the API) or a duration string such as `"30s"`
/// (`cloudflared`'s YAML).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0.as_secs())
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Self(Duration::from_secs(n))),
            Raw::Text(t) => t
                .parse::<gatehouse_core::GoDuration>()
                .map(|g| Self(g.get()))
                .map_err(|e| serde::de::Error::custom(e.to_string())),
        }
    }
}

/// `originRequest`: the `cloudflared` settings. Those marked "honoured" change behaviour; the
/// others are accepted so existing configurations load, and have no effect here.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OriginRequest {
    /// Honoured: time allowed to open a connection to the origin (default 30 s).
    #[serde(rename = "connectTimeout", default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Seconds>,
    /// Honoured: the `Host` header sent to the origin instead of the client's.
    #[serde(rename = "httpHostHeader", default, skip_serializing_if = "Option::is_none")]
    pub http_host_header: Option<String>,
    /// Honoured: accept any certificate from an `https` origin.
    #[serde(rename = "noTLSVerify", default, skip_serializing_if = "Option::is_none")]
    pub no_tls_verify: Option<bool>,
    /// Honoured: the TLS server name checked on an `https` origin's certificate.
    #[serde(rename = "originServerName", default, skip_serializing_if = "Option::is_none")]
    pub origin_server_name: Option<String>,
    /// Honoured: how long an idle pooled connection is kept (default 90 s). Checked when the
    /// connection is next wanted (no timer runs for it).
    #[serde(rename = "keepAliveTimeout", default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_timeout: Option<Seconds>,
    /// Honoured: idle connections kept per origin and proxy thread, for bodiless requests and
    /// for the others each (default 100; 0 keeps none).
    #[serde(rename = "keepAliveConnections", default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_connections: Option<usize>,
    /// Accepted, no effect.
    #[serde(rename = "tlsTimeout", default, skip_serializing_if = "Option::is_none")]
    pub tls_timeout: Option<Seconds>,
    /// Accepted, no effect.
    #[serde(rename = "tcpKeepAlive", default, skip_serializing_if = "Option::is_none")]
    pub tcp_keep_alive: Option<Seconds>,
    /// Accepted, no effect.
    #[serde(rename = "noHappyEyeballs", default, skip_serializing_if = "Option::is_none")]
    pub no_happy_eyeballs: Option<bool>,
    /// Accepted, no effect.
    #[serde(rename = "disableChunkedEncoding", default, skip_serializing_if = "Option::is_none")]
    pub disable_chunked_encoding: Option<bool>,
    /// Accepted, no effect (origins are spoken to over HTTP/1.1).
    #[serde(rename = "http2Origin", default, skip_serializing_if = "Option::is_none")]
    pub http2_origin: Option<bool>,
    /// Accepted, no effect.
    #[serde(rename = "proxyType", default, skip_serializing_if = "Option::is_none")]
    pub proxy_type: Option<String>,
    /// Accepted, no effect (the gateway's trust store is used).
    #[serde(rename = "caPool", default, skip_serializing_if = "Option::is_none")]
    pub ca_pool: Option<String>,
    /// Accepted, no effect (the gateway enforces Access itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<serde_json::Value>,
}

impl OriginRequest {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What a rule sends requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// An HTTP(S) origin.
    Origin(Origin),
    /// A fixed status, no origin.
    Status(u16),
}

/// An HTTP(S) origin and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Whether to speak TLS.
    pub https: bool,
    /// `host:port` (port always present).
    pub authority: http::uri::Authority,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// `Host` header override.
    pub host_header: Option<http::HeaderValue>,
    /// Skip certificate verification.
    pub no_tls_verify: bool,
    /// TLS server name override.
    pub server_name: Option<String>,
    /// How long an idle pooled connection may wait for its next request.
    pub keep_alive_timeout: Duration,
    /// Idle connections kept per proxy thread (0: none, every request gets a new one).
    pub keep_alive_connections: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", if self.https { "https" } else { "http" }, self.authority)
    }
}

/// Default connect timeout, as `cloudflared`'s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default idle time of a pooled origin connection, as `cloudflared`'s.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default idle connections kept per origin, as `cloudflared`'s.
pub const DEFAULT_KEEP_ALIVE_CONNECTIONS: usize = 100;

#[derive(Debug, Clone)]
enum HostMatch {
    Any,
    /// Exact host, lower case; `with_port` when the rule names a port.
    Exact {
        host: String,
        with_port: bool,
    },
    /// `.example.com` (leading dot kept).
    Suffix(String),
}

#[derive(Debug, Clone)]
struct Compiled {
    host: HostMatch,
    path: Option<Regex>,
    service: Arc<Service>,
}

/// Validated, compiled rules ready to match requests.
#[derive(Debug, Clone)]
pub struct Ingress {
    rules: Vec<Compiled>,
    source: Vec<IngressRule>,
}

impl Default for Ingress {
    /// No rules: everything answers 404.
    fn default() -> Self {
        Self { rules: vec![], source: vec![] }
    }
}

/// The rule set to use when none is configured.
pub fn default_rules() -> Vec<IngressRule> {
    vec![IngressRule {
        hostname: None,
        path: None,
        service: "http_status:404".into(),
        origin_request: OriginRequest::default(),
    }]
}

fn parse_service(i: usize, rule: &IngressRule, errs: &mut Vec<String>) -> Option<Service> {
    let s = rule.service.trim();
    if let Some(code) = s.strip_prefix("http_status:") {
        return match code.parse::<u16>() {
            Ok(c) if (100..600).contains(&c) => Some(Service::Status(c)),
            _ => {
                errs.push(format!("ingress[{i}].service {s:?}: http_status needs a code 100-599"));
                None
            }
        };
    }
    let bad = |errs: &mut Vec<String>, why: &str| {
        errs.push(format!(
            "ingress[{i}].service {s:?}: {why}; use http://host:port, https://host:port or http_status:NNN"
        ));
        None
    };
    let Ok(url) = url::Url::parse(s) else { return bad(errs, "not a URL") };
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => return bad(errs, &format!("the {other:?} service type is not supported")),
    };
    let Some(host) = url.host_str() else { return bad(errs, "no host") };
    if !(url.path() == "/" || url.path().is_empty()) || url.query().is_some() || !url.username().is_empty() {
        return bad(errs, "a service is an origin only, without path, query or credentials");
    }
    let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
    let Ok(authority) = format!("{host}:{port}").parse::<http::uri::Authority>() else {
        return bad(errs, "not a valid host and port");
    };
    let o = &rule.origin_request;
    let host_header = match &o.http_host_header {
        Some(h) => match http::HeaderValue::from_str(h) {
            Ok(v) if gatehouse_core::org::valid_domain(h) => Some(v),
            _ => {
                errs.push(format!("ingress[{i}].originRequest.httpHostHeader {h:?}: not a host name"));
                None
            }
        },
        None => None,
    };
    Some(Service::Origin(Origin {
        https,
        authority,
        connect_timeout: o.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |s| s.0),
        host_header,
        no_tls_verify: o.no_tls_verify.unwrap_or(false),
        server_name: o.origin_server_name.clone(),
        keep_alive_timeout: o.keep_alive_timeout.map_or(DEFAULT_KEEP_ALIVE_TIMEOUT, |s| s.0),
        keep_alive_connections: o.keep_alive_connections.unwrap_or(DEFAULT_KEEP_ALIVE_CONNECTIONS),
    }))
}

/// Checks rules; every problem is reported, each naming the rule (`ingress[i]`) and field.
pub fn validate(rules: &[IngressRule]) -> Result<Ingress, Vec<String>> {
    let mut errs = Vec::new();
    let mut compiled = Vec::with_capacity(rules.len());
    if rules.is_empty() {
        errs.push(
            "ingress: at least one rule is needed; the last must be a catch-all such as service = \"http_status:404\""
                .into(),
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        let last = i + 1 == rules.len();
        let catch_all = rule.hostname.is_none() && rule.path.is_none();
        if catch_all && !last {
            errs.push(format!(
                "ingress[{i}]: a rule without hostname and path matches everything; it must be the last rule"
            ));
        }
        if last && !catch_all {
            errs.push(format!(
                "ingress[{i}]: the last rule must be a catch-all without hostname or path, e.g. service = \"http_status:404\""
            ));
        }
        let host = match rule.hostname.as_deref() {
            None => Some(HostMatch::Any),
            Some(h) => {
                let lower = h.trim().to_ascii_lowercase();
                let bare = lower.strip_prefix("*.").unwrap_or(&lower);
                if !gatehouse_core::org::valid_domain(bare) || bare.contains('*') {
                    errs.push(format!("ingress[{i}].hostname {h:?}: not a host name (a leading \"*.\" is allowed)"));
                    None
                } else if let Some(rest) = lower.strip_prefix('*') {
                    Some(HostMatch::Suffix(rest.to_owned()))
                } else {
                    Some(HostMatch::Exact { with_port: lower.contains(':'), host: lower })
                }
            }
        };
        let path = match rule.path.as_deref() {
            None => None,
            Some(p) => match regex::RegexBuilder::new(p).size_limit(1 << 20).build() {
                Ok(r) => Some(r),
                Err(e) => {
                    let first = e.to_string().lines().last().unwrap_or_default().trim().to_owned();
                    errs.push(format!("ingress[{i}].path {p:?}: not a valid regular expression: {first}"));
                    None
                }
            },
        };
        let service = parse_service(i, rule, &mut errs);
        if let (Some(host), Some(service)) = (host, service) {
            compiled.push(Compiled { host, path, service: Arc::new(service) });
        }
    }
    if errs.is_empty() { Ok(Ingress { rules: compiled, source: rules.to_vec() }) } else { Err(errs) }
}

impl Ingress {
    /// The service for `host` (as sent, possibly with a port) and `path`; `None` when no rule
    /// matches (only possible for an empty rule set).
    pub fn resolve(&self, host: &str, path: &str) -> Option<&Arc<Service>> {
        let host = host.trim_end_matches('.');
        let bare = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
            _ => host,
        };
        self.rules
            .iter()
            .find(|r| {
                let host_ok = match &r.host {
                    HostMatch::Any => true,
                    HostMatch::Exact { host: h, with_port: true } => h.eq_ignore_ascii_case(host),
                    HostMatch::Exact { host: h, with_port: false } => h.eq_ignore_ascii_case(bare),
                    HostMatch::Suffix(s) => {
                        bare.len() > s.len()
                            && bare.is_char_boundary(bare.len() - s.len())
                            && bare[bare.len() - s.len()..].eq_ignore_ascii_case(s)
                    }
                };
                host_ok && r.path.as_ref().is_none_or(|re| re.is_match(path))
            })
            .map(|r| &r.service)
    }

    /// The rules as written.
    pub fn rules(&self) -> &[IngressRule] {
        &self.source
    }
}

/// The ingress rules in effect, swapped atomically on change.
#[derive(Debug, Clone)]
pub struct IngressHandle(Arc<arc_swap::ArcSwap<Ingress>>);

impl IngressHandle {
    /// Wraps compiled rules.
    pub fn new(ingress: Ingress) -> Self {
        Self(Arc::new(arc_swap::ArcSwap::from_pointee(ingress)))
    }

    /// The current rules (cheap; no reference count taken).
    pub fn load(&self) -> arc_swap::Guard<Arc<Ingress>> {
        self.0.load()
    }

    /// Replaces the rules.
    pub fn store(&self, ingress: Ingress) {
        self.0.store(Arc::new(ingress));
    }
}

/// Parses the API's `config` object (`{"ingress": [...], ...}`) into rules.
pub fn rules_from_config(config: &serde_json::Value) -> Result<Vec<IngressRule>, Vec<String>> {
    let Some(obj) = config.as_object() else { return Err(vec!["config: must be an object".into()]) };
    let mut errs = Vec::new();
    for key in obj.keys() {
        if !matches!(key.as_str(), "ingress" | "originRequest" | "warp-routing") {
            errs.push(format!("config.{key}: unknown field (expected ingress, originRequest, warp-routing)"));
        }
    }
    let Some(list) = obj.get("ingress") else {
        errs.push("config.ingress: required".into());
        return Err(errs);
    };
    let Some(items) = list.as_array() else {
        errs.push("config.ingress: must be an array of rules".into());
        return Err(errs);
    };
    let defaults = obj.get("originRequest").cloned();
    let mut rules = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut item = item.clone();
        // A top-level originRequest applies to every rule that does not set the key itself.
        if let (Some(serde_json::Value::Object(d)), Some(obj)) = (&defaults, item.as_object_mut()) {
            let own = obj.entry("originRequest").or_insert_with(|| serde_json::json!({}));
            if let Some(own) = own.as_object_mut() {
                for (k, v) in d {
                    own.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        match serde_json::from_value::<IngressRule>(item) {
            Ok(r) => rules.push(r),
            Err(e) => errs.push(format!("config.ingress[{i}]: {e}")),
        }
    }
    if errs.is_empty() { Ok(rules) } else { Err(errs) }
}

/// The rules in effect: the API's when one was stored, else the configuration file's.
pub async fn load(store: &gatehouse_store::Store, file_rules: &[IngressRule]) -> Result<Ingress, String> {
    use gatehouse_store::DataPlaneStore as _;
    let stored = store.ingress().await.map_err(|e| e.to_string())?;
    let rules = match stored {
        Some(s) => rules_from_config(&s.config).map_err(|e| e.join("; "))?,
        None if file_rules.is_empty() => default_rules(),
        None => file_rules.to_vec(),
    };
    validate(&rules).map_err(|e| e.join("; "))
}

/// Keeps `handle` current as the stored ingress configuration changes.
pub fn spawn_refresher(
    store: gatehouse_store::Store,
    file_rules: Vec<IngressRule>,
    handle: IngressHandle,
) -> tokio::task::JoinHandle<()> {
    let bus = store.clone();
    let file_rules = Arc::new(file_rules);
    crate::reload::spawn_reloader(
        &bus,
        |c| c == gatehouse_store::Change::Ingress,
        move || {
            let (store, handle, file_rules) = (store.clone(), handle.clone(), file_rules.clone());
            async move {
                match load(&store, &file_rules).await {
                    Ok(i) => handle.store(i),
                    Err(e) => tracing::error!(error = %e, "could not reload ingress rules; keeping the current ones"),
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(host: Option<&str>, path: Option<&str>, service: &str) -> IngressRule {
        IngressRule {
            hostname: host.map(str::to_owned),
            path: path.map(str::to_owned),
            service: service.to_owned(),
            origin_request: OriginRequest::default(),
        }
    }

    fn origin_of(i: &Ingress, host: &str, path: &str) -> Option<String> {
        i.resolve(host, path).map(|s| match &**s {
            Service::Origin(o) => o.to_string(),
            Service::Status(c) => format!("status {c}"),
        })
    }

    #[test]
    fn first_matching_rule_wins() {
        let i = validate(&[
            rule(Some("wiki.example.com"), Some("^/api"), "http://127.0.0.1:9001"),
            rule(Some("wiki.example.com"), None, "http://127.0.0.1:9000"),
            rule(Some("*.apps.example.com"), None, "https://10.0.0.5"),
            rule(Some("app.localhost:8080"), None, "http://127.0.0.1:7000"),
            rule(None, None, "http_status:404"),
        ])
        .unwrap_or_else(|e| panic!("{e:?}"));
        let cases = [
            ("wiki.example.com", "/api/x", "http://127.0.0.1:9001"),
            ("WIKI.example.com:443", "/api", "http://127.0.0.1:9001"),
            ("wiki.example.com", "/v1/api", "http://127.0.0.1:9000"),
            ("grafana.apps.example.com", "/", "https://10.0.0.5:443"),
            ("apps.example.com", "/", "status 404"),
            ("app.localhost:8080", "/", "http://127.0.0.1:7000"),
            ("app.localhost:9999", "/", "status 404"),
            ("unknown", "/", "status 404"),
        ];
        for (host, path, want) in cases {
            assert_eq!(origin_of(&i, host, path).as_deref(), Some(want), "{host}{path}");
        }
    }

    #[test]
    fn every_problem_is_named() {
        let errs = validate(&[
            rule(None, None, "http_status:404"),
            rule(Some("bad host!"), Some("(unclosed"), "ftp://x"),
            rule(Some("ok.example.com"), None, "http://127.0.0.1:1/path"),
            rule(Some("ok.example.com"), None, "http_status:99"),
        ])
        .err()
        .unwrap_or_default();
        let all = errs.join("\n");
        for needle in [
            "ingress[0]: a rule without hostname and path matches everything",
            "ingress[1].hostname \"bad host!\"",
            "ingress[1].path \"(unclosed\": not a valid regular expression",
            "ingress[1].service \"ftp://x\": the \"ftp\" service type is not supported",
            "ingress[2].service \"http://127.0.0.1:1/path\": a service is an origin only",
            "ingress[3].service \"http_status:99\"",
            "ingress[3]: the last rule must be a catch-all",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert!(validate(&[]).is_err());
    }

    #[test]
    fn api_config_applies_top_level_origin_request() {
        let config = serde_json::json!({
            "originRequest": {"connectTimeout": 5, "httpHostHeader": "internal.example.com", "keepAliveConnections": 4},
            "ingress": [
                {"hostname": "a.example.com", "service": "http://127.0.0.1:1", "originRequest": {"connectTimeout": "2s", "keepAliveTimeout": "15s"}},
                {"hostname": "b.example.com", "service": "http://127.0.0.1:2", "originRequest": {}},
                {"service": "http_status:404"}
            ]
        });
        let rules = rules_from_config(&config).unwrap_or_else(|e| panic!("{e:?}"));
        let i = validate(&rules).unwrap_or_else(|e| panic!("{e:?}"));
        let Some(Service::Origin(o)) = i.resolve("a.example.com", "/").map(|s| (**s).clone()) else {
            panic!("no origin")
        };
        assert_eq!(o.connect_timeout, Duration::from_secs(2));
        assert_eq!((o.keep_alive_timeout, o.keep_alive_connections), (Duration::from_secs(15), 4));
        let Some(Service::Origin(b)) = i.resolve("b.example.com", "/").map(|s| (**s).clone()) else {
            panic!("no origin")
        };
        assert_eq!((b.keep_alive_timeout, b.keep_alive_connections), (DEFAULT_KEEP_ALIVE_TIMEOUT, 4));
        assert_eq!(o.host_header.as_ref().map(|h| h.to_str().unwrap_or_default()), Some("internal.example.com"));
        let bad =
            rules_from_config(&serde_json::json!({"ingress": [{"service": "http_status:404", "bogus": 1}], "x": 1}))
                .err()
                .unwrap_or_default()
                .join("\n");
        assert!(bad.contains("config.x: unknown field"), "{bad}");
        assert!(bad.contains("config.ingress[0]: unknown field `bogus`"), "{bad}");
    }
}
