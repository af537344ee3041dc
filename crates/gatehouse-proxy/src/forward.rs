//! Forwarding to origins: pooled HTTP/1.1 connections, header filtering in both directions,
//! streaming bodies, WebSocket (and any HTTP/1.1) upgrades, and clear 502/504 pages when the
//! origin fails. Plain-HTTP requests without a body take the lean path of [`crate::origin_h1`]
//! (the requesting task writes and reads the connection itself); other plain-HTTP requests use
//! a per-thread pool of hyper connections. Neither takes a lock or sets a timer on the hot
//! path. TLS origins and upgrades use hyper-util's pooled client.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::ingress::Origin;
use crate::origin_h1;

/// Identity headers an origin receives; any client-supplied `Cf-Access-*` header is removed.
pub const JWT_ASSERTION: HeaderName = HeaderName::from_static("cf-access-jwt-assertion");
/// The signed-in user's e-mail.
pub const AUTHENTICATED_EMAIL: HeaderName = HeaderName::from_static("cf-access-authenticated-user-email");

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The client's address as Cloudflare gives it to origins; set from the peer.
const CF_CONNECTING_IP: HeaderName = HeaderName::from_static("cf-connecting-ip");
/// Other client-address headers an origin might trust; a client must not choose them.
const CLIENT_ADDRESS_HEADERS: [HeaderName; 4] = [
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-client-ip"),
];
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// A connection to a plain-HTTP origin, ready or busy.
type PlainSender = hyper::client::conn::http1::SendRequest<Body>;
/// One origin's idle connections on one thread.
struct Pool<C> {
    /// The [`Origins`] instance.
    owner: u64,
    authority: http::uri::Authority,
    idle: Vec<C>,
}

/// This thread's idle connections to `authority` from the [`Origins`] instance `owner`.
fn pool_of<'a, C>(owner: u64, pools: &'a mut Vec<Pool<C>>, authority: &http::uri::Authority) -> &'a mut Vec<C> {
    let i = match pools.iter().position(|p| p.owner == owner && p.authority.as_str() == authority.as_str()) {
        Some(i) => i,
        None => {
            pools.push(Pool { owner, authority: authority.clone(), idle: Vec::new() });
            pools.len() - 1
        }
    };
    &mut pools[i].idle
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    connect_timeout: Duration,
    keep_alive_timeout: Duration,
    keep_alive_connections: usize,
    no_tls_verify: bool,
    server_name: Option<String>,
}

thread_local! {
    /// Each thread's idle HTTP/1.1 connections to plain-HTTP origins, by [`Origins`] instance
    /// and origin address: the common case gets a pool with no locks and no timers. A short
    /// list (one entry per origin), searched without hashing.
    static PLAIN: RefCell<Vec<Pool<(Instant, PlainSender)>>> = const { RefCell::new(Vec::new()) };
    /// The same for the lean path's connections ([`origin_h1::Conn`]).
    static LEAN: RefCell<Vec<Pool<origin_h1::Conn>>> = const { RefCell::new(Vec::new()) };
    /// Each thread's own pools: a connection is only ever used by the thread (and runtime)
    /// that opened it. Keyed by the [`Origins`] instance and the connection settings.
    static CLIENTS: RefCell<HashMap<(u64, ClientKey), HttpClient>> = RefCell::new(HashMap::new());
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Pooled clients, one per thread and distinct connection setting (usually one or two).
#[derive(Debug, Clone)]
pub struct Origins {
    id: u64,
    roots: Arc<rustls::RootCertStore>,
    response_timeout: Duration,
}

/// Why forwarding failed, for the page and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginFailure {
    /// Connection refused, reset, DNS, TLS: 502.
    Unreachable,
    /// No response headers in time, or connecting timed out: 504.
    Timeout,
}

impl Origins {
    /// Clients with the given pool settings; `response_timeout` bounds the wait for response
    /// headers.
    pub fn new(response_timeout: Duration) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
        Self { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), roots: Arc::new(roots), response_timeout }
    }

    fn client(&self, origin: &Origin) -> Result<HttpClient, String> {
        let key = ClientKey {
            connect_timeout: origin.connect_timeout,
            keep_alive_timeout: origin.keep_alive_timeout,
            keep_alive_connections: origin.keep_alive_connections,
            no_tls_verify: origin.no_tls_verify,
            server_name: origin.server_name.clone(),
        };
        let key = (self.id, key);
        if let Some(c) = CLIENTS.with_borrow(|m| m.get(&key).cloned()) {
            return Ok(c);
        }
        let client = self.build(&key.1)?;
        CLIENTS.with_borrow_mut(|m| m.insert(key, client.clone()));
        Ok(client)
    }

    /// Sends `req` over an idle pooled connection to a plain-HTTP origin, or a new one. A
    /// request the pooled connection could not take (it was closing) is sent again on a new
    /// connection; it was never written, so this is safe for any method.
    async fn send_plain(
        &self,
        origin: &Origin,
        req: Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, OriginFailure> {
        let idle = PLAIN.with_borrow_mut(|pools| {
            let pool = pool_of(self.id, pools, &origin.authority);
            let now = Instant::now();
            // Newest first, usually the first one looked at. Closed and expired connections
            // go; connections still streaming an earlier response body stay for later.
            let mut i = pool.len();
            while i > 0 {
                i -= 1;
                let (since, sender) = &pool[i];
                let expired = now.saturating_duration_since(*since) > origin.keep_alive_timeout;
                if !expired && sender.is_ready() {
                    return Some(pool.swap_remove(i).1);
                }
                if expired || sender.is_closed() {
                    // What takes its place was looked at already.
                    pool.swap_remove(i);
                }
            }
            None
        });
        let req = match idle {
            Some(mut sender) => match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.put_back(origin, sender);
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    Some(req) => req,
                    None => {
                        tracing::debug!(error = %e.error(), origin = %origin, "origin request failed");
                        return Err(OriginFailure::Unreachable);
                    }
                },
            },
            None => req,
        };
        // A new connection is the rare case: its (large) future lives on the heap, so the
        // common path's future stays small and cheap to move.
        let mut sender = Box::pin(connect_plain(origin)).await?;
        match sender.send_request(req).await {
            Ok(resp) => {
                self.put_back(origin, sender);
                Ok(resp)
            }
            Err(e) => {
                tracing::debug!(error = %e, origin = %origin, "origin request failed");
                Err(OriginFailure::Unreachable)
            }
        }
    }

    fn put_back(&self, origin: &Origin, sender: PlainSender) {
        PLAIN.with_borrow_mut(|pools| {
            let pool = pool_of(self.id, pools, &origin.authority);
            // As for the lean pool: the oldest, at the bottom, are closed once idle too long.
            // A connection's idle time counts from its last response head.
            let now = Instant::now();
            let stale = pool
                .iter()
                .take_while(|(since, _)| now.saturating_duration_since(*since) > origin.keep_alive_timeout)
                .count();
            pool.drain(..stale);
            if pool.len() < origin.keep_alive_connections {
                pool.push((now, sender));
            }
        });
    }

    fn build(&self, key: &ClientKey) -> Result<HttpClient, String> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(key.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let tls = if key.no_tls_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            builder.with_root_certificates(self.roots.clone()).with_no_client_auth()
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
        let connector = match &key.server_name {
            Some(name) => {
                let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| e.to_string())?;
                connector
                    .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
                    .enable_http1()
                    .wrap_connector(http)
            }
            None => connector.enable_http1().wrap_connector(http),
        };
        Ok(Client::builder(TokioExecutor::new())
            .pool_idle_timeout(key.keep_alive_timeout)
            .pool_max_idle_per_host(key.keep_alive_connections)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector))
    }

    /// Sends `req` (prepared by [`upstream_request`]) to the origin; relays an upgrade when
    /// the origin accepts one.
    pub async fn send(
        &self,
        origin: &Origin,
        req: Request<Body>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Result<Response, OriginFailure> {
        if client_upgrade.is_none() && !origin.https {
            if lean(&req) {
                return self.within_response_timeout(self.send_lean(origin, req)).await;
            }
            return self.within_response_timeout(self.send_plain(origin, req)).await.map(to_client);
        }
        // TLS and upgrades: rarer, with a much larger future, kept on the heap.
        Box::pin(self.send_pooled(origin, req, client_upgrade)).await
    }

    /// `fut`, or a timeout failure once the response timeout has passed.
    async fn within_response_timeout<T>(
        &self,
        fut: impl Future<Output = Result<T, OriginFailure>>,
    ) -> Result<T, OriginFailure> {
        tokio::time::timeout(self.response_timeout, fut).await.unwrap_or(Err(OriginFailure::Timeout))
    }

    /// Sends a bodiless request over the lean path: an idle connection of this thread's pool
    /// (checked still open) or a new one. When a reused connection is closed or reset before
    /// any byte of a response, the request is sent once more on a new connection: `GET`,
    /// `HEAD` and `OPTIONS` are idempotent, which RFC 9110 §9.2.2 allows to repeat, as nginx's
    /// `proxy_next_upstream` does. Usually the origin had closed the idle connection just as
    /// the request went out; an origin that crashes on a `GET` sees it twice. A new
    /// connection is never retried.
    async fn send_lean(&self, origin: &Origin, req: Request<Body>) -> Result<Response, OriginFailure> {
        let (parts, _) = req.into_parts();
        let head_only = parts.method == Method::HEAD;
        let mut idle = LEAN.with_borrow_mut(|pools| {
            let pool = pool_of(self.id, pools, &origin.authority);
            let now = Instant::now();
            // Newest first; the ones looked at and found closed or stale are dropped.
            while let Some(mut conn) = pool.pop() {
                if conn.usable(now, origin.keep_alive_timeout) {
                    return Some(conn);
                }
            }
            None
        });
        loop {
            let reused = idle.is_some();
            let mut conn = match idle.take() {
                Some(c) => c,
                None => origin_h1::Conn::new(Box::pin(connect_tcp(origin)).await?, origin.authority.clone()),
            };
            let head = match conn.exchange(&parts, head_only).await {
                Ok(head) => head,
                Err(origin_h1::ExchangeError::ClosedBeforeResponse) if reused => continue,
                Err(e) => {
                    tracing::debug!(error = %e, origin = %origin, "origin request failed");
                    return Err(OriginFailure::Unreachable);
                }
            };
            let home = LeanHome {
                owner: self.id,
                max_idle: origin.keep_alive_connections,
                idle_timeout: origin.keep_alive_timeout,
            };
            let mut body = origin_h1::OriginBody::new(conn, head.framing, head.reusable, home);
            let body = if body.is_complete() {
                Body::empty()
            } else {
                match body.take_buffered() {
                    Some(data) => Body::from(data),
                    None => Body::new(body),
                }
            };
            let mut resp = Response::new(body);
            *resp.status_mut() = head.status;
            *resp.headers_mut() = head.headers;
            if let Some(reason) = head.reason {
                resp.extensions_mut().insert(reason);
            }
            if head.connection_names_fields {
                strip_hop_by_hop(resp.headers_mut(), false);
            }
            return Ok(resp);
        }
    }

    /// [`Self::send`] through hyper-util's pooled client.
    async fn send_pooled(
        &self,
        origin: &Origin,
        mut req: Request<Body>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Result<Response, OriginFailure> {
        // hyper-util's client takes the origin from an absolute URI.
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let absolute = Uri::builder()
            .scheme(if origin.https { "https" } else { "http" })
            .authority(origin.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| OriginFailure::Unreachable)?;
        *req.uri_mut() = absolute;
        let client = self.client(origin).map_err(|e| {
            tracing::error!(error = %e, origin = %origin, "cannot set up a client for the origin");
            OriginFailure::Unreachable
        })?;
        let fut = client.request(req);
        let mut resp = match tokio::time::timeout(self.response_timeout, fut).await {
            Err(_) => return Err(OriginFailure::Timeout),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, origin = %origin, "origin request failed");
                return Err(if is_timeout(&e) { OriginFailure::Timeout } else { OriginFailure::Unreachable });
            }
            Ok(Ok(r)) => r,
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_side) = client_upgrade
        {
            let origin_side = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                match tokio::try_join!(client_side, origin_side) {
                    Ok((c, o)) => {
                        let (mut c, mut o) = (TokioIo::new(c), TokioIo::new(o));
                        if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut o).await {
                            tracing::debug!(error = %e, "upgraded connection ended");
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
            let (parts, _) = resp.into_parts();
            let mut out = Response::from_parts(parts, Body::empty());
            strip_hop_by_hop(out.headers_mut(), true);
            return Ok(out);
        }
        Ok(to_client(resp))
    }
}

/// Whether a request takes the lean path: `GET`, `HEAD` or `OPTIONS` without a body, so it
/// can be sent again when a reused connection had been closed.
fn lean(req: &Request<Body>) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD || req.method() == Method::OPTIONS)
        && http_body::Body::size_hint(req.body()).exact() == Some(0)
}

/// Where the lean path's connections go back to: this thread's pool for the connection's
/// origin.
#[derive(Debug)]
struct LeanHome {
    owner: u64,
    max_idle: usize,
    idle_timeout: Duration,
}

impl origin_h1::Home for LeanHome {
    fn put_back(&self, conn: origin_h1::Conn) {
        LEAN.with_borrow_mut(|pools| {
            let pool = pool_of(self.owner, pools, conn.authority());
            // The oldest are at the bottom, where taking (from the top) rarely reaches under
            // steady load: those idle too long are closed here.
            let now = Instant::now();
            let stale = pool.iter().take_while(|c| c.expired(now, self.idle_timeout)).count();
            pool.drain(..stale);
            if pool.len() < self.max_idle {
                pool.push(conn);
            }
        });
    }
}

/// Opens a TCP connection to a plain-HTTP origin, within its connect timeout.
async fn connect_tcp(origin: &Origin) -> Result<tokio::net::TcpStream, OriginFailure> {
    let connect = tokio::net::TcpStream::connect(origin.authority.as_str());
    let stream = match tokio::time::timeout(origin.connect_timeout, connect).await {
        Err(_) => return Err(OriginFailure::Timeout),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, origin = %origin, "cannot connect to the origin");
            return Err(OriginFailure::Unreachable);
        }
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Opens a plain-HTTP/1.1 connection to `origin`, its I/O side running as a task of its own.
async fn connect_plain(origin: &Origin) -> Result<PlainSender, OriginFailure> {
    let stream = connect_tcp(origin).await?;
    // One buffer per write, as for responses to clients (see `public::serve`).
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|_| OriginFailure::Unreachable)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "origin connection ended with an error");
        }
    });
    Ok(sender)
}

/// The origin's response as the client gets it: streamed body, hop-by-hop headers removed.
fn to_client(resp: http::Response<hyper::body::Incoming>) -> Response {
    let (parts, body) = resp.into_parts();
    let mut out = Response::from_parts(parts, Body::new(body));
    strip_hop_by_hop(out.headers_mut(), false);
    out
}

fn is_timeout(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        if s.to_string().contains("timed out") {
            return true;
        }
        source = s.source();
    }
    false
}

/// Certificate verifier for `noTLSVerify`: accepts any certificate but still checks that the
/// handshake is signed by it.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether the request asks for a protocol upgrade (`Connection: upgrade` + `Upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))))
}

/// Whether a field is hop-by-hop (not forwarded), `Connection` aside.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Removes hop-by-hop headers (and those the `Connection` header names). With `upgrade`, the
/// `Connection: upgrade` / `Upgrade` pair is kept. One pass over the names; a header is only
/// removed when it is there.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let mut drop: Vec<HeaderName> = Vec::new();
    let mut connection = false;
    for name in headers.keys() {
        if name == header::CONNECTION {
            connection = true;
        } else if is_hop_by_hop(name) && !(upgrade && name == header::UPGRADE) {
            drop.push(name.clone());
        }
    }
    if connection {
        for v in &headers.get_all(header::CONNECTION) {
            for token in v.as_bytes().split(|b| *b == b',') {
                let token = token.trim_ascii();
                // `keep-alive` and `close` name no header to remove (Keep-Alive is dropped above).
                if token.is_empty() || token.eq_ignore_ascii_case(b"keep-alive") || token.eq_ignore_ascii_case(b"close")
                {
                    continue;
                }
                if let Ok(n) = HeaderName::from_bytes(token)
                    && !(upgrade && n == header::UPGRADE)
                {
                    drop.push(n);
                }
            }
        }
        headers.remove(header::CONNECTION);
    }
    for n in drop {
        headers.remove(n);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Headers only the gateway may set: `Cf-Access-*` and the client-address headers.
fn is_client_supplied(name: &HeaderName) -> bool {
    name.as_str().starts_with("cf-access-") || name == CF_CONNECTING_IP || CLIENT_ADDRESS_HEADERS.contains(name)
}

/// Removes every client-supplied `Cf-Access-*` header, the client-address headers an origin
/// might trust, and the gateway's cookies.
pub fn strip_gateway_headers(headers: &mut HeaderMap) {
    let mut drop: Vec<HeaderName> = Vec::new();
    let mut cookie = false;
    for name in headers.keys() {
        if name == header::COOKIE {
            cookie = true;
        } else if is_client_supplied(name) {
            drop.push(name.clone());
        }
    }
    for n in drop {
        headers.remove(n);
    }
    if cookie {
        crate::cookies::strip_gateway(headers);
    }
}

/// What the origin is told about the client.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded<'a> {
    /// The client's address, formatted for `Cf-Connecting-Ip` and `X-Forwarded-For`.
    pub client_ip: &'a HeaderValue,
    /// The scheme the client used.
    pub proto: &'static str,
    /// The `Host` the client sent.
    pub host: &'a HeaderValue,
}

/// Prepares a client request for the origin: origin-form target, filtered headers,
/// `X-Forwarded-*`. [`Origins::send`] gives it the origin's address.
pub fn upstream_request(
    mut req: Request<Body>,
    origin: &Origin,
    fwd: Forwarded<'_>,
    upgrade: bool,
) -> Result<Request<Body>, http::Error> {
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        // An absolute-form target (`GET http://host/path`): the origin gets the path only.
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        *req.uri_mut() = Uri::builder().path_and_query(pq).build()?;
    }
    *req.version_mut() = http::Version::HTTP_11;
    let h = req.headers_mut();
    // Room for what is added here and the identity headers, so the map grows at most once.
    h.reserve(8);
    strip_hop_by_hop(h, upgrade);
    strip_gateway_headers(h);
    h.insert(CF_CONNECTING_IP, fwd.client_ip.clone());
    h.insert(X_FORWARDED_FOR, fwd.client_ip.clone());
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(fwd.proto));
    if !fwd.host.is_empty() {
        h.insert(X_FORWARDED_HOST, fwd.host.clone());
    }
    match &origin.host_header {
        Some(host) => {
            h.insert(header::HOST, host.clone());
        }
        None if !h.contains_key(header::HOST) => {
            if let Ok(host) = HeaderValue::from_str(origin.authority.as_str()) {
                h.insert(header::HOST, host);
            }
        }
        None => {}
    }
    Ok(req)
}

/// The page shown when the origin fails.
pub fn failure_page(f: OriginFailure) -> Response {
    let (status, title, text) = match f {
        OriginFailure::Unreachable => (
            StatusCode::BAD_GATEWAY,
            "Bad gateway",
            "The application's server could not be reached. Try again in a moment; if it keeps happening, tell the application's owner.",
        ),
        OriginFailure::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            "Gateway timeout",
            "The application's server did not answer in time. Try again in a moment; if it keeps happening, tell the application's owner.",
        ),
    };
    crate::pages::page(status, title, text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoofed_identity_and_gateway_cookies_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("cf-access-jwt-assertion", HeaderValue::from_static("forged"));
        h.insert("Cf-Access-Authenticated-User-Email", HeaderValue::from_static("ceo@example.com"));
        h.insert("cf-access-client-secret", HeaderValue::from_static("s"));
        h.insert("x-other", HeaderValue::from_static("kept"));
        h.append(header::COOKIE, HeaderValue::from_static("a=1; CF_Authorization=tok; cf_appsession=x"));
        h.append(header::COOKIE, HeaderValue::from_static("CF_Binding=y; b=2"));
        strip_gateway_headers(&mut h);
        assert!(h.keys().all(|k| !k.as_str().starts_with("cf-access-")), "{h:?}");
        assert_eq!(h.get("x-other").map(|v| v.as_bytes()), Some(&b"kept"[..]));
        assert_eq!(
            h.get_all(header::COOKIE).iter().map(|v| v.to_str().unwrap_or_default()).collect::<Vec<_>>(),
            ["a=1; b=2"]
        );
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, HeaderValue::from_static("CF_Authorization=tok"));
        strip_gateway_headers(&mut only);
        assert!(only.get(header::COOKIE).is_none());
    }

    fn origin(host_header: Option<&'static str>) -> Origin {
        Origin {
            https: false,
            authority: "127.0.0.1:9".parse().unwrap_or_else(|_| unreachable!()),
            connect_timeout: Duration::from_secs(1),
            host_header: host_header.map(HeaderValue::from_static),
            no_tls_verify: false,
            server_name: None,
            keep_alive_timeout: crate::ingress::DEFAULT_KEEP_ALIVE_TIMEOUT,
            keep_alive_connections: crate::ingress::DEFAULT_KEEP_ALIVE_CONNECTIONS,
        }
    }

    #[test]
    fn the_origin_gets_an_origin_form_target_forwarding_headers_and_no_spoofed_ones() {
        let ip = HeaderValue::from_static("192.0.2.7");
        let host = HeaderValue::from_static("app.example.com");
        let fwd = Forwarded { client_ip: &ip, proto: "https", host: &host };
        let req = Request::builder()
            .uri("http://app.example.com/a/b?c=1")
            .header("x-forwarded-for", "10.6.6.6")
            .header("x-real-ip", "10.6.6.6")
            .header("cf-connecting-ip", "10.6.6.6")
            .header("cf-access-authenticated-user-email", "ceo@example.com")
            .header(header::CONNECTION, "close")
            .body(Body::empty())
            .unwrap_or_else(|_| unreachable!());
        let up = upstream_request(req, &origin(None), fwd, false).unwrap_or_else(|_| unreachable!());
        assert_eq!(up.uri().to_string(), "/a/b?c=1");
        let h = up.headers();
        let get = |n: &str| h.get_all(n).iter().map(|v| v.to_str().unwrap_or_default()).collect::<Vec<_>>();
        assert_eq!(get("x-forwarded-for"), ["192.0.2.7"]);
        assert_eq!(get("cf-connecting-ip"), ["192.0.2.7"]);
        assert_eq!(get("x-forwarded-proto"), ["https"]);
        assert_eq!(get("x-forwarded-host"), ["app.example.com"]);
        assert_eq!(get("host"), ["127.0.0.1:9"], "a request without Host gets the origin's");
        assert!(get("x-real-ip").is_empty() && get("connection").is_empty());
        assert!(h.keys().all(|k| !k.as_str().starts_with("cf-access-")), "{h:?}");

        let req = Request::builder()
            .uri("/")
            .header(header::HOST, "app.example.com")
            .body(Body::empty())
            .unwrap_or_else(|_| unreachable!());
        let up =
            upstream_request(req, &origin(Some("internal.example")), fwd, false).unwrap_or_else(|_| unreachable!());
        assert_eq!(up.headers().get(header::HOST), Some(&HeaderValue::from_static("internal.example")));
    }

    #[test]
    fn hop_by_hop_headers_go_but_upgrades_survive_when_asked() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade, x-secret-hop"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        assert!(is_upgrade(&h));
        let mut up = h.clone();
        strip_hop_by_hop(&mut up, true);
        assert_eq!(up.get(header::UPGRADE).map(|v| v.as_bytes()), Some(&b"websocket"[..]));
        assert_eq!(up.get(header::CONNECTION).map(|v| v.as_bytes()), Some(&b"upgrade"[..]));
        assert!(up.get("x-secret-hop").is_none() && up.get(header::TRANSFER_ENCODING).is_none());
        strip_hop_by_hop(&mut h, false);
        assert!(h.get(header::UPGRADE).is_none() && h.get(header::CONNECTION).is_none());
    }
}
