//! The lean path to plain-HTTP origins over real sockets, against origins that answer with
//! exactly the bytes each test gives: framing, connection reuse, a reused connection the
//! origin had closed, informational responses, and responses that must be refused.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use gatehouse_proxy::forward::{OriginFailure, Origins};
use gatehouse_proxy::ingress::Origin;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

type Script = Arc<dyn Fn(usize, TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// An origin on port 0 that runs `script(n, stream)` for its n-th connection (from 0).
struct TestOrigin {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

async fn origin_with(script: Script) -> TestOrigin {
    let Ok(listener) = TcpListener::bind("127.0.0.1:0").await else { panic!("bind") };
    let Ok(addr) = listener.local_addr() else { panic!("addr") };
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(script(n, stream));
        }
    });
    TestOrigin { addr, accepted }
}

/// Reads one request head; `None` when the connection closed first.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// An origin that answers every request on every connection with `response`.
async fn answering(response: &'static str) -> TestOrigin {
    origin_with(Arc::new(move |_, mut s| {
        Box::pin(async move {
            while read_request(&mut s).await.is_some() {
                if s.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
            }
        })
    }))
    .await
}

fn target(o: &TestOrigin) -> Origin {
    let Ok(authority) = o.addr.to_string().parse() else { panic!("authority") };
    Origin {
        https: false,
        authority,
        connect_timeout: Duration::from_secs(5),
        host_header: None,
        no_tls_verify: false,
        server_name: None,
        keep_alive_timeout: gatehouse_proxy::ingress::DEFAULT_KEEP_ALIVE_TIMEOUT,
        keep_alive_connections: gatehouse_proxy::ingress::DEFAULT_KEEP_ALIVE_CONNECTIONS,
    }
}

fn request(method: Method, path: &str) -> Request<Body> {
    let Ok(r) = Request::builder().method(method).uri(path).header("host", "app.test").body(Body::empty()) else {
        panic!("request")
    };
    r
}

/// Sends a request; the status and the whole body (or the body's error).
async fn fetch(origins: &Origins, o: &TestOrigin, method: Method, path: &str) -> (StatusCode, Result<Vec<u8>, String>) {
    let resp = match origins.send(&target(o), request(method, path), None).await {
        Ok(r) => r,
        Err(f) => panic!("{path}: {f:?}"),
    };
    let status = resp.status();
    let body = resp.into_body().collect().await.map(|b| b.to_bytes().to_vec()).map_err(|e| e.to_string());
    (status, body)
}

/// Sends `times` requests one after another; each must get `status` and `body`.
async fn answers_each(
    origins: &Origins,
    o: &TestOrigin,
    method: Method,
    times: usize,
    status: StatusCode,
    body: &[u8],
) {
    for _ in 0..times {
        assert_eq!(fetch(origins, o, method.clone(), "/").await, (status, Ok(body.to_vec())));
    }
}

async fn failure(origins: &Origins, o: &TestOrigin) -> OriginFailure {
    match origins.send(&target(o), request(Method::GET, "/"), None).await {
        Ok(r) => panic!("answered {}", r.status()),
        Err(f) => f,
    }
}

#[tokio::test]
async fn connections_are_reused_for_length_chunked_and_bodiless_responses() {
    let o = answering("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: fixed\r\n\r\nhello").await;
    let origins = Origins::new(Duration::from_secs(5));
    answers_each(&origins, &o, Method::GET, 5, StatusCode::OK, b"hello").await;
    assert_eq!(o.accepted.load(Ordering::SeqCst), 1, "five requests, one connection");

    // A chunked body sent in pieces, with an extension and a trailer; HEAD answers with a
    // length but no body. The connection carries them all.
    let o = origin_with(Arc::new(|_, mut s| {
        Box::pin(async move {
            while let Some(req) = read_request(&mut s).await {
                if req.starts_with("HEAD") {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n").await;
                    continue;
                }
                for piece in [
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWi",
                    "ki\r\n",
                    "5\r\npedia\r\n0\r\n",
                    "Trailer: 1\r\n\r\n",
                ] {
                    let _ = s.write_all(piece.as_bytes()).await;
                    let _ = s.flush().await;
                    tokio::task::yield_now().await;
                }
            }
        })
    }))
    .await;
    for _ in 0..3 {
        let (status, body) = fetch(&origins, &o, Method::GET, "/wiki").await;
        assert_eq!((status, body), (StatusCode::OK, Ok(b"Wikipedia".to_vec())));
        let resp = match origins.send(&target(&o), request(Method::HEAD, "/wiki"), None).await {
            Ok(r) => r,
            Err(f) => panic!("{f:?}"),
        };
        assert_eq!(resp.headers().get("content-length").map(|v| v.as_bytes()), Some(&b"10"[..]));
        assert!(resp.headers().get("transfer-encoding").is_none());
        let Ok(body) = resp.into_body().collect().await else { panic!("HEAD body") };
        assert!(body.to_bytes().is_empty());
    }
    assert_eq!(o.accepted.load(Ordering::SeqCst), 1, "six requests, one connection");
}

#[tokio::test]
async fn a_reused_connection_the_origin_closed_is_replaced_without_failing_the_request() {
    // First connection: one answer, then the next request is read and the connection closed
    // unanswered, the race an origin's idle timeout makes. Later connections answer.
    let o = origin_with(Arc::new(|n, mut s| {
        Box::pin(async move {
            let mut answered = 0;
            while read_request(&mut s).await.is_some() {
                if n == 0 && answered == 1 {
                    return;
                }
                answered += 1;
                let body = format!("connection {n}");
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                let _ = s.write_all(resp.as_bytes()).await;
            }
        })
    }))
    .await;
    let origins = Origins::new(Duration::from_secs(5));
    assert_eq!(fetch(&origins, &o, Method::GET, "/").await.1, Ok(b"connection 0".to_vec()));
    assert_eq!(fetch(&origins, &o, Method::GET, "/").await.1, Ok(b"connection 1".to_vec()));
    assert_eq!(fetch(&origins, &o, Method::GET, "/").await.1, Ok(b"connection 1".to_vec()));
    assert_eq!(o.accepted.load(Ordering::SeqCst), 2);

    // An origin that closes after every answer (without saying so): every request still
    // gets its answer.
    let o = origin_with(Arc::new(|_, mut s| {
        Box::pin(async move {
            if read_request(&mut s).await.is_some() {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
            }
        })
    }))
    .await;
    answers_each(&origins, &o, Method::GET, 4, StatusCode::OK, b"ok").await;
}

#[tokio::test]
async fn keep_alive_settings_bound_the_pool() {
    let o = answering("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let origins = Origins::new(Duration::from_secs(5));
    let send = |t: Origin, method: Method| {
        let origins = origins.clone();
        async move {
            let Ok(resp) = origins.send(&t, request(method, "/"), None).await else { panic!("send") };
            let Ok(body) = resp.into_body().collect().await else { panic!("body") };
            assert_eq!(&body.to_bytes()[..], b"ok");
        }
    };
    // keepAliveConnections = 0: nothing is kept; the lean path (GET) and the general one
    // (DELETE) alike.
    let none = Origin { keep_alive_connections: 0, ..target(&o) };
    for method in [Method::GET, Method::GET, Method::DELETE, Method::DELETE] {
        send(none.clone(), method).await;
    }
    assert_eq!(o.accepted.load(Ordering::SeqCst), 4);
    // keepAliveTimeout = 0: an idle connection has always waited too long.
    let o = answering("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let stale = Origin { keep_alive_timeout: Duration::ZERO, ..target(&o) };
    for method in [Method::GET, Method::GET, Method::DELETE, Method::DELETE] {
        send(stale.clone(), method).await;
    }
    assert_eq!(o.accepted.load(Ordering::SeqCst), 4);
    // The defaults keep them.
    let o = answering("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    for method in [Method::GET, Method::GET, Method::DELETE, Method::DELETE] {
        send(target(&o), method).await;
    }
    assert_eq!(o.accepted.load(Ordering::SeqCst), 2, "one connection per path");
}

#[tokio::test]
async fn close_delimited_and_connection_close_responses_are_not_reused() {
    let o = origin_with(Arc::new(|_, mut s| {
        Box::pin(async move {
            if read_request(&mut s).await.is_some() {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end").await;
            }
        })
    }))
    .await;
    let origins = Origins::new(Duration::from_secs(5));
    answers_each(&origins, &o, Method::GET, 2, StatusCode::OK, b"until the end").await;
    assert_eq!(o.accepted.load(Ordering::SeqCst), 2);

    let o = answering("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye").await;
    for _ in 0..2 {
        let Ok(resp) = origins.send(&target(&o), request(Method::GET, "/"), None).await else { panic!("send") };
        assert!(resp.headers().get("connection").is_none(), "hop-by-hop headers are removed");
        let Ok(body) = resp.into_body().collect().await else { panic!("body") };
        assert_eq!(&body.to_bytes()[..], b"bye");
    }
    assert_eq!(o.accepted.load(Ordering::SeqCst), 2);

    // Fields the origin's `Connection` names stay between the origin and the gateway.
    let o = answering(
        "HTTP/1.1 200 OK\r\nConnection: x-internal\r\nX-Internal: secret\r\nX-App: 1\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    let Ok(resp) = origins.send(&target(&o), request(Method::GET, "/"), None).await else { panic!("send") };
    let mut names: Vec<&str> = resp.headers().keys().map(http::HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["content-length", "x-app"]);
}

#[tokio::test]
async fn large_heads_within_the_limit_pass_and_their_connection_is_reused() {
    let big: &'static str = Box::leak(
        format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok", "b".repeat(40_000)).into_boxed_str(),
    );
    let o = answering(big).await;
    let origins = Origins::new(Duration::from_secs(5));
    for _ in 0..3 {
        let Ok(resp) = origins.send(&target(&o), request(Method::GET, "/"), None).await else { panic!("send") };
        assert_eq!(resp.headers().get("x-big").map(|v| v.len()), Some(40_000));
        let Ok(body) = resp.into_body().collect().await else { panic!("body") };
        assert_eq!(&body.to_bytes()[..], b"ok");
    }
    assert_eq!(o.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn informational_responses_are_skipped() {
    let o = answering(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\ngone",
    )
    .await;
    let origins = Origins::new(Duration::from_secs(5));
    answers_each(&origins, &o, Method::GET, 2, StatusCode::NOT_FOUND, b"gone").await;
    assert_eq!(o.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn malformed_responses_are_502_and_silence_is_504() {
    let origins = Origins::new(Duration::from_secs(5));
    for bad in [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        "NOT HTTP AT ALL\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Header Name: x\r\n\r\n",
    ] {
        let o = answering(bad).await;
        assert_eq!(failure(&origins, &o).await, OriginFailure::Unreachable, "{bad}");
    }
    // A head larger than hyper's limit, which both client paths share.
    let o = origin_with(Arc::new(|_, mut s| {
        Box::pin(async move {
            if read_request(&mut s).await.is_some() {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
                let line = format!("X-Filler: {}\r\n", "a".repeat(110_000));
                for _ in 0..4 {
                    if s.write_all(line.as_bytes()).await.is_err() {
                        return;
                    }
                }
                let _ = s.write_all(b"\r\n").await;
            }
        })
    }))
    .await;
    assert_eq!(failure(&origins, &o).await, OriginFailure::Unreachable);
    // Closed before any answer, on a new connection: not retried, 502.
    let o = origin_with(Arc::new(|_, mut s| {
        Box::pin(async move {
            let _ = read_request(&mut s).await;
        })
    }))
    .await;
    assert_eq!(failure(&origins, &o).await, OriginFailure::Unreachable);
    assert_eq!(o.accepted.load(Ordering::SeqCst), 1);
    // No answer at all.
    let o = origin_with(Arc::new(|_, mut s| {
        Box::pin(async move {
            let _ = read_request(&mut s).await;
            std::future::pending::<()>().await;
        })
    }))
    .await;
    let quick = Origins::new(Duration::from_millis(200));
    assert_eq!(failure(&quick, &o).await, OriginFailure::Timeout);
}

#[tokio::test]
async fn truncated_or_abandoned_bodies_close_the_connection() {
    // The length promises ten bytes; four come, then the close: the body ends in an error.
    let o = origin_with(Arc::new(|_, mut s| {
        Box::pin(async move {
            if read_request(&mut s).await.is_some() {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n").await;
                let _ = s.flush().await;
                tokio::task::yield_now().await;
                let _ = s.write_all(b"abcd").await;
            }
        })
    }))
    .await;
    let origins = Origins::new(Duration::from_secs(5));
    let (status, body) = fetch(&origins, &o, Method::GET, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_err(), "a truncated body must not look complete: {body:?}");

    // Bad chunk framing mid-body is an error too.
    let o = answering("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n").await;
    assert!(fetch(&origins, &o, Method::GET, "/").await.1.is_err());

    // A body dropped unread: its connection is not reused.
    let o = origin_with(Arc::new(|_, mut s| {
        Box::pin(async move {
            while read_request(&mut s).await.is_some() {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n").await;
                let _ = s.write_all(&[b'x'; 100_000]).await;
            }
        })
    }))
    .await;
    let Ok(resp) = origins.send(&target(&o), request(Method::GET, "/"), None).await else { panic!("send") };
    drop(resp);
    let (_, body) = fetch(&origins, &o, Method::GET, "/").await;
    assert_eq!(body.map(|b| b.len()), Ok(100_000));
    assert_eq!(o.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn requests_with_bodies_still_reach_the_origin() {
    // POST goes through the general path; the origin sees the body and its length.
    let o = origin_with(Arc::new(|_, mut s| {
        Box::pin(async move {
            if let Some(head) = read_request(&mut s).await {
                let mut body = [0u8; 4];
                let _ = s.read_exact(&mut body).await;
                let echo = format!("{}|{}", head.lines().next().unwrap_or_default(), String::from_utf8_lossy(&body));
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{echo}", echo.len());
                let _ = s.write_all(resp.as_bytes()).await;
            }
        })
    }))
    .await;
    let origins = Origins::new(Duration::from_secs(5));
    let Ok(req) =
        Request::post("/form").header("host", "app.test").header("content-length", "4").body(Body::from("a=1&"))
    else {
        panic!("request")
    };
    let Ok(resp) = origins.send(&target(&o), req, None).await else { panic!("send") };
    let Ok(body) = resp.into_body().collect().await else { panic!("body") };
    assert_eq!(&body.to_bytes()[..], b"POST /form HTTP/1.1|a=1&");
}

#[tokio::test]
async fn bytes_beyond_the_response_keep_the_connection_out_of_the_pool() {
    // Extra bytes after a complete body, and a body sent to a HEAD request: neither
    // connection may carry another request.
    let origins = Origins::new(Duration::from_secs(5));
    let o = answering("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA").await;
    answers_each(&origins, &o, Method::GET, 3, StatusCode::OK, b"ok").await;
    assert_eq!(o.accepted.load(Ordering::SeqCst), 3);
    let o = answering("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody").await;
    answers_each(&origins, &o, Method::HEAD, 3, StatusCode::OK, &[]).await;
    assert_eq!(o.accepted.load(Ordering::SeqCst), 3);
    // HTTP/1.0 with keep-alive is reused; without it, not.
    let o = answering("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok").await;
    answers_each(&origins, &o, Method::GET, 3, StatusCode::OK, b"ok").await;
    assert_eq!(o.accepted.load(Ordering::SeqCst), 1);
    let o = answering("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    answers_each(&origins, &o, Method::GET, 2, StatusCode::OK, b"ok").await;
    assert_eq!(o.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_closed_reused_connection_is_retried_once_and_a_started_answer_never() {
    let origins = Origins::new(Duration::from_secs(5));
    // Connection 0 answers once, then closes on the next request; connection 1 closes
    // unanswered too. The retry happens once: 502, two connections.
    let o = origin_with(Arc::new(|n, mut s| {
        Box::pin(async move {
            if n == 0 && read_request(&mut s).await.is_some() {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
            }
            let _ = read_request(&mut s).await;
        })
    }))
    .await;
    assert_eq!(fetch(&origins, &o, Method::GET, "/").await.1, Ok(b"ok".to_vec()));
    assert_eq!(failure(&origins, &o).await, OriginFailure::Unreachable);
    assert_eq!(o.accepted.load(Ordering::SeqCst), 2);

    // Part of a head, then the close: not retried.
    let o = origin_with(Arc::new(|n, mut s| {
        Box::pin(async move {
            if read_request(&mut s).await.is_some() {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
            }
            if n == 0 && read_request(&mut s).await.is_some() {
                let _ = s.write_all(b"HTTP/1.1 200 O").await;
            }
        })
    }))
    .await;
    assert_eq!(fetch(&origins, &o, Method::GET, "/").await.1, Ok(b"ok".to_vec()));
    assert_eq!(failure(&origins, &o).await, OriginFailure::Unreachable);
    assert_eq!(o.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unusual_reason_phrases_reach_the_client_side() {
    let o = answering("HTTP/1.1 403 Not Today\r\nContent-Length: 0\r\n\r\n").await;
    let origins = Origins::new(Duration::from_secs(5));
    let Ok(resp) = origins.send(&target(&o), request(Method::GET, "/"), None).await else { panic!("send") };
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let reason = resp.extensions().get::<hyper::ext::ReasonPhrase>().map(|r| r.as_bytes().to_vec());
    assert_eq!(reason.as_deref(), Some(&b"Not Today"[..]));
}

#[tokio::test]
async fn connections_idle_too_long_are_closed_when_others_come_back() {
    // With keepAliveTimeout = 0, the first connection back is stale by the time the second
    // comes back, and is closed then; the origin sees the close. Both pools.
    for method in [Method::GET, Method::DELETE] {
        let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let o = origin_with(Arc::new(move |n, mut s| {
            let closed = closed_tx.clone();
            Box::pin(async move {
                while read_request(&mut s).await.is_some() {
                    if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.is_err() {
                        break;
                    }
                }
                let _ = closed.send(n);
            })
        }))
        .await;
        let origins = Origins::new(Duration::from_secs(5));
        let t = Origin { keep_alive_timeout: Duration::ZERO, ..target(&o) };
        let one = async {
            let Ok(resp) = origins.send(&t, request(method.clone(), "/"), None).await else { panic!("send") };
            resp.into_body().collect().await.map(|b| b.to_bytes())
        };
        let (a, b) = tokio::join!(one, async {
            let Ok(resp) = origins.send(&t, request(method.clone(), "/"), None).await else { panic!("send") };
            resp.into_body().collect().await.map(|b| b.to_bytes())
        });
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(o.accepted.load(Ordering::SeqCst), 2, "{method}: two connections at once");
        let closed = tokio::time::timeout(Duration::from_secs(5), closed_rx.recv()).await;
        assert!(matches!(closed, Ok(Some(_))), "{method}: a stale idle connection was left open");
    }
}
