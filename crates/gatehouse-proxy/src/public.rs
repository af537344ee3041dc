//! The public listener: `/cdn-cgi/access/certs` on every host (the signing keys origins
//! validate application tokens with), the sign-in endpoints (`login`, `callback` on the team
//! domain, `authorized` on application hosts; see [`crate::signin`]), and everything else
//! through the [`DataPlane`] to the applications' origins.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::dataplane::{DataPlane, Peer};

use crate::signin::{self, SignInState};

/// What the public handlers need.
pub type PublicState = SignInState;

/// The `/cdn-cgi/access` routes of the public listener; [`with_data_plane`] adds the rest.
pub fn router(state: PublicState) -> Router {
    Router::new()
        .route("/cdn-cgi/access/certs", get(certs))
        .route("/cdn-cgi/access/login/{app_host}", get(signin::login))
        .route("/cdn-cgi/access/callback", get(signin::callback))
        .route("/cdn-cgi/access/authorized", get(signin::authorized))
        .route("/cdn-cgi/access/get-identity", get(signin::get_identity))
        .route("/cdn-cgi/access/test-idp/{idp_id}", get(signin::test_idp))
        .route("/cdn-cgi/access/logout", get(signin::logout).post(signin::logout))
        .with_state(state)
}

/// Sends every request no other route takes through the data plane. Serve the result with
/// connect info (`SocketAddr`).
pub fn with_data_plane(router: Router, data_plane: DataPlane) -> Router {
    router.fallback(move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request| {
        let data_plane = data_plane.clone();
        async move { data_plane.handle(&Peer::new(peer), req).await }
    })
}

async fn certs(State(state): State<PublicState>) -> impl IntoResponse {
    let doc = state.keys.load().certs_document();
    ([(header::CACHE_CONTROL, "public, max-age=300")], axum::Json(doc))
}

/// The public listener's dispatch when it is served per core: requests for the control
/// routes (`/cdn-cgi/...`, `/populations/...`) run on `control_runtime`, where the store and
/// its connections live; everything else goes through the data plane on the thread that
/// accepted the connection, without a router in between.
#[derive(Debug, Clone)]
pub struct PublicService {
    control: Router,
    data_plane: DataPlane,
    control_runtime: tokio::runtime::Handle,
}

impl PublicService {
    /// `control` is [`router`]'s result (plus any other control routes).
    pub fn new(control: Router, data_plane: DataPlane, control_runtime: tokio::runtime::Handle) -> Self {
        Self { control, data_plane, control_runtime }
    }

    /// Answers one request from `peer`.
    pub async fn call(&self, peer: &Peer, req: axum::http::Request<hyper::body::Incoming>) -> axum::response::Response {
        let mut req = req.map(axum::body::Body::new);
        let path = req.uri().path();
        if !(path.starts_with("/cdn-cgi/") || path.starts_with("/populations/")) {
            return self.data_plane.handle(peer, req).await;
        }
        req.extensions_mut().insert(ConnectInfo(peer.addr()));
        let control = self.control.clone();
        let run = async move {
            use tower::ServiceExt as _;
            match control.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        };
        match self.control_runtime.spawn(run).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::error!(error = %e, "control request failed");
                crate::pages::page(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The gateway could not answer this request.",
                )
            }
        }
    }
}

/// Tells one connection's task that the listener is stopping. Its own, not shared: checking
/// it on each poll of the connection touches nothing another connection or thread uses (a
/// shared `watch` would lock its waiter list on every poll).
#[derive(Debug, Default)]
struct ConnStop {
    stopping: std::sync::atomic::AtomicBool,
    waker: std::sync::Mutex<Option<std::task::Waker>>,
}

impl ConnStop {
    fn stop(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the connection should stop; otherwise `cx` is woken when it should.
    fn poll_stopping(&self, cx: &std::task::Context<'_>) -> bool {
        use std::sync::atomic::Ordering;
        if self.stopping.load(Ordering::Acquire) {
            return true;
        }
        {
            let mut w = self.waker.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        // A stop between the first look and the waker being stored.
        self.stopping.load(Ordering::Acquire)
    }
}

/// How long a client may take to send a request's head.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a stopping listener waits for requests in flight.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One thread's accept loop for the public listener: HTTP/1.1 with upgrades straight on hyper, each connection a
/// task on this thread; on stop, accepting ends and open connections are drained.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: PublicService,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // Every connection task holds a sender; when all are gone, the drain is complete.
    let (drain, mut drained) = tokio::sync::mpsc::channel::<()>(1);
    // Each open connection's stop signal, to tell them all when the listener stops.
    let mut open: Vec<std::sync::Weak<ConnStop>> = Vec::with_capacity(64);
    let mut http = hyper::server::conn::http1::Builder::new();
    // Responses are written from one buffer (head and body copied together) rather than
    // gathered with writev: for the small responses most requests get, measurably cheaper.
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).writev(false);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let _ = stream.set_nodelay(true);
        // What every request on this connection needs, in one allocation of its own: cloning
        // it per request touches no reference count another connection or thread shares.
        let conn = std::sync::Arc::new((service.clone(), Peer::new(peer)));
        let handler = hyper::service::service_fn(move |req| {
            let conn = conn.clone();
            async move { Ok::<_, std::convert::Infallible>(conn.0.call(&conn.1, req).await) }
        });
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), handler).with_upgrades();
        let signal = std::sync::Arc::new(ConnStop::default());
        if open.len() == open.capacity() {
            open.retain(|c| c.strong_count() > 0);
        }
        open.push(std::sync::Arc::downgrade(&signal));
        let held = drain.clone();
        tokio::spawn(async move {
            let _held = held;
            let mut conn = std::pin::pin!(conn);
            let mut shutting_down = false;
            let ended = std::future::poll_fn(|cx| {
                if !shutting_down && signal.poll_stopping(cx) {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    shutting_down = true;
                }
                conn.as_mut().poll(cx)
            })
            .await;
            if let Err(e) = ended {
                tracing::debug!(error = %e, "client connection ended with an error");
            }
        });
    }
    for c in &open {
        if let Some(c) = c.upgrade() {
            c.stop();
        }
    }
    drop(listener);
    drop(drain);
    if tokio::time::timeout(DRAIN_TIMEOUT, drained.recv()).await.is_err() {
        tracing::warn!("connections still open after the drain timeout");
    }
}
