//! The lean path to plain-HTTP origins, for requests without a body (`GET`, `HEAD`,
//! `OPTIONS`): the request head is written straight to a pooled connection and the response is
//! read back by the requesting task itself. No connection task, no channel between tasks and
//! no buffer allocated per request: each connection keeps its read and write buffers.
//!
//! Responses are framed as RFC 9112 §6.3 says: no body for `HEAD`, 1xx, 204 and 304;
//! `Transfer-Encoding` over `Content-Length` (and the connection is not reused when both are
//! sent); differing `Content-Length` values are refused; otherwise the body runs to the close.
//! A connection is reused only after its response was read to the end, nothing more arrived,
//! and neither side asked to close. Heads are parsed by `httparse`; chunked bodies by
//! [`Chunked`], which is strict about CRLF and bounds chunk extensions and trailers.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;

/// The read buffer a connection starts with; response heads may grow it up to [`MAX_HEAD`].
const READ_BUFFER: usize = 16 * 1024;
/// The largest response head accepted: hyper's default, so every request gets the same limit
/// whichever client path it takes.
pub const MAX_HEAD: usize = 8192 + 4096 * 100;
/// Header fields accepted in one response head (hyper's default).
pub const MAX_HEADERS: usize = 100;
/// Bytes of chunk extensions accepted on one chunk-size line.
const MAX_CHUNK_EXTENSION: usize = 4096;
/// Bytes of trailer fields accepted (they are read and dropped).
const MAX_TRAILERS: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug)]
pub enum ExchangeError {
    /// The connection was closed (or reset) before any byte of a response: on a reused
    /// connection, the origin had closed it while it was idle, and a new one may be tried.
    ClosedBeforeResponse,
    /// Reading or writing failed.
    Io(io::Error),
    /// The response is not valid HTTP/1.x, or breaks a limit.
    Invalid(&'static str),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClosedBeforeResponse => f.write_str("the origin closed the connection before responding"),
            Self::Io(e) => write!(f, "{e}"),
            Self::Invalid(why) => write!(f, "invalid response from the origin: {why}"),
        }
    }
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the origin closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    /// The status.
    pub status: StatusCode,
    /// The header fields as sent, less the hop-by-hop ones; a `Connection` field that names
    /// other fields is kept (see `connection_names_fields`).
    pub headers: HeaderMap,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request once the body is read.
    pub reusable: bool,
    /// Whether a `Connection` field names fields to remove: then `headers` still has it and
    /// `forward::strip_hop_by_hop` must run.
    pub connection_names_fields: bool,
    /// The reason phrase, when it is not the status's usual one (passed on as hyper does).
    pub reason: Option<hyper::ext::ReasonPhrase>,
}

/// One connection to an origin, with its buffers.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// The origin it is connected to (which pool it belongs in).
    authority: http::uri::Authority,
    /// Read buffer; bytes `start..end` are received and not yet used.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The request head being written.
    out: Vec<u8>,
    /// When it was last put back in a pool.
    idle_since: Instant,
}

impl Conn {
    /// A connection over `stream`, to the origin at `authority`.
    pub fn new(stream: TcpStream, authority: http::uri::Authority) -> Self {
        Self {
            stream,
            authority,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            out: Vec::with_capacity(2048),
            idle_since: Instant::now(),
        }
    }

    /// Whether an idle connection can take a request: not idle longer than `idle_timeout`,
    /// and nothing (no close, no stray bytes) has arrived since its last response. Costs no
    /// system call unless the socket was reported readable.
    pub fn usable(&mut self, now: Instant, idle_timeout: Duration) -> bool {
        if self.expired(now, idle_timeout) || self.start != self.end {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// The origin it is connected to.
    pub fn authority(&self) -> &http::uri::Authority {
        &self.authority
    }

    /// Whether it has been idle longer than `timeout` (for pruning a pool).
    pub fn expired(&self, now: Instant, timeout: Duration) -> bool {
        now.saturating_duration_since(self.idle_since) > timeout
    }

    /// Marks the connection idle (for [`Self::usable`]); `false` when it cannot be reused.
    pub fn park(&mut self, now: Instant) -> bool {
        self.idle_since = now;
        if self.buf.len() > READ_BUFFER && self.start == self.end {
            // A large head grew the buffer; an idle connection keeps only the usual size.
            self.start = 0;
            self.end = 0;
            self.buf.truncate(READ_BUFFER);
            self.buf.shrink_to_fit();
        }
        self.start == self.end
    }

    /// Sends a bodiless request and reads the response head (skipping 1xx responses). For
    /// `HEAD` requests, `head_only` makes every response bodiless.
    pub async fn exchange(&mut self, req: &http::request::Parts, head_only: bool) -> Result<Head, ExchangeError> {
        encode_request(&mut self.out, req);
        if let Err(e) = self.stream.write_all(&self.out).await {
            return Err(match e.kind() {
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => ExchangeError::ClosedBeforeResponse,
                _ => ExchangeError::Io(e),
            });
        }
        let mut received = false;
        loop {
            if self.start != self.end {
                match parse_head(&self.buf[self.start..self.end], head_only)? {
                    None => {}
                    Some((used, None)) => {
                        self.start += used;
                        continue;
                    }
                    Some((used, Some(head))) => {
                        self.start += used;
                        return Ok(head);
                    }
                }
                if self.end - self.start >= MAX_HEAD {
                    return Err(ExchangeError::Invalid("the response head is larger than 408 KiB"));
                }
            }
            let n = match std::future::poll_fn(|cx| self.poll_fill(cx, MAX_HEAD)).await {
                Ok(n) => n,
                Err(e) if !received && e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(ExchangeError::ClosedBeforeResponse);
                }
                Err(e) => return Err(ExchangeError::Io(e)),
            };
            if n == 0 {
                return Err(if received {
                    ExchangeError::Invalid("the connection closed in the middle of the response head")
                } else {
                    ExchangeError::ClosedBeforeResponse
                });
            }
            received = true;
        }
    }

    /// Bytes received and not yet used.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` buffered bytes used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more into the buffer, making room first (compacting, or growing it up to
    /// `limit`). `Ok(0)` is the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<io::Result<usize>> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < limit {
                self.buf.resize((self.buf.len() * 2).min(limit), 0);
            }
        }
        if self.end == self.buf.len() {
            // Full at the limit: the caller checks its limit before asking for more.
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "read buffer full")));
        }
        let mut rb = ReadBuf::new(&mut self.buf[self.end..]);
        ready!(Pin::new(&mut self.stream).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        self.end += n;
        Poll::Ready(Ok(n))
    }
}

/// Writes the request head: request line in origin form, then the header fields as given.
pub fn encode_request(out: &mut Vec<u8>, req: &http::request::Parts) {
    out.clear();
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &req.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Parses one response head from the start of `buf`: `None` when more bytes are needed;
/// `Some((used, None))` for an informational (1xx) response to skip; the head otherwise.
pub fn parse_head(buf: &[u8], head_only: bool) -> Result<Option<(usize, Option<Head>)>, ExchangeError> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut []);
    let used = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut r, buf, &mut fields) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ExchangeError::Invalid("more than 100 header fields")),
        Err(_) => return Err(ExchangeError::Invalid("not an HTTP/1.x response head")),
    };
    let status =
        StatusCode::from_u16(r.code.unwrap_or(0)).map_err(|_| ExchangeError::Invalid("status code out of range"))?;
    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(ExchangeError::Invalid("101 Switching Protocols to a request that asked for no upgrade"));
        }
        return Ok(Some((used, None)));
    }
    let version = if r.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    let reason = match r.reason {
        Some(text) if !text.is_empty() && status.canonical_reason() != Some(text) => {
            hyper::ext::ReasonPhrase::try_from(text.as_bytes()).ok()
        }
        _ => None,
    };
    let mut headers = HeaderMap::with_capacity(r.headers.len());
    let mut length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut connection_names_fields = false;
    for f in r.headers.iter() {
        let name =
            HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| ExchangeError::Invalid("invalid header name"))?;
        let value = HeaderValue::from_bytes(f.value).map_err(|_| ExchangeError::Invalid("invalid header value"))?;
        if name == header::CONTENT_LENGTH {
            for part in f.value.split(|b| *b == b',') {
                let n =
                    parse_length(part.trim_ascii()).ok_or(ExchangeError::Invalid("Content-Length is not a number"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(ExchangeError::Invalid("differing Content-Length values"));
                }
                length = Some(n);
            }
        } else if name == header::TRANSFER_ENCODING {
            transfer_encoding = true;
            // The final coding decides: `chunked` must be last for the body to be chunked.
            if let Some(last) = f.value.rsplit(|b| *b == b',').map(<[u8]>::trim_ascii).find(|t| !t.is_empty()) {
                chunked = last.eq_ignore_ascii_case(b"chunked");
            }
            continue;
        } else if name == header::CONNECTION {
            let mut names = false;
            for token in f.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                } else {
                    names |= !token.is_empty();
                }
            }
            if !names {
                // Names no field to remove: not kept (it is hop-by-hop).
                continue;
            }
            connection_names_fields = true;
        } else if crate::forward::is_hop_by_hop(&name) {
            continue;
        }
        headers.append(name, value);
    }
    let mut reusable = !close && (version == Version::HTTP_11 || keep_alive);
    if transfer_encoding {
        // HTTP/1.0 has no transfer codings: refused, as hyper refuses it.
        if version == Version::HTTP_10 {
            return Err(ExchangeError::Invalid("Transfer-Encoding in an HTTP/1.0 response"));
        }
        // Transfer-Encoding overrides Content-Length; a response with both is suspect, so its
        // connection is not reused.
        if length.is_some() {
            reusable = false;
        }
        headers.remove(header::CONTENT_LENGTH);
    }
    let framing = if head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        Framing::Empty
    } else if transfer_encoding {
        if chunked { Framing::Chunked } else { Framing::UntilClose }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    if framing == Framing::UntilClose {
        reusable = false;
    }
    Ok(Some((used, Some(Head { status, headers, framing, reusable, connection_names_fields, reason }))))
}

/// A `Content-Length` value: ASCII digits only, at most 18 of them.
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// What [`Chunked::decode`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// These bytes of the input are body data.
    Data(std::ops::Range<usize>),
    /// The last chunk and the trailers are read: the body is complete.
    Done,
    /// All the input was used; more is needed.
    More,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size { value: u64, digits: bool },
    SizeSpace(u64),
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// A decoder for `Transfer-Encoding: chunked` bodies (RFC 9112 §7.1). Lines end in CRLF (a
/// bare LF is an error, as a smuggling guard); chunk sizes are limited to 2^60 bytes; chunk
/// extensions and trailer fields are bounded and dropped.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    extension: usize,
    trailers: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Self::new()
    }
}

impl Chunked {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self { state: State::Size { value: 0, digits: false }, extension: 0, trailers: 0 }
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`: returns how many bytes were used and what they were.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Step), &'static str> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            self.state = match self.state {
                State::Size { value, digits } => match hex(b) {
                    Some(d) => {
                        if value >> 56 != 0 {
                            return Err("chunk size too large");
                        }
                        State::Size { value: value << 4 | d, digits: true }
                    }
                    None if !digits => return Err("chunk size missing"),
                    None => after_size(value, b)?,
                },
                State::SizeSpace(value) => after_size(value, b)?,
                State::Extension(value) => match b {
                    b'\r' => State::SizeLf(value),
                    b'\n' => return Err("bare LF in a chunk extension"),
                    _ => {
                        self.extension += 1;
                        if self.extension > MAX_CHUNK_EXTENSION {
                            return Err("chunk extension too long");
                        }
                        State::Extension(value)
                    }
                },
                State::SizeLf(value) => {
                    if b != b'\n' {
                        return Err("chunk size line not ended by CRLF");
                    }
                    self.extension = 0;
                    if value == 0 { State::TrailerStart } else { State::Data(value) }
                }
                State::Data(remaining) => {
                    let available = (input.len() - i) as u64;
                    let n = remaining.min(available);
                    self.state = if n == remaining { State::DataCr } else { State::Data(remaining - n) };
                    // `n` is at most the input's length.
                    let end = i + usize::try_from(n).unwrap_or(input.len() - i);
                    return Ok((end, Step::Data(i..end)));
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err("chunk data longer than its size");
                    }
                    State::DataLf
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err("chunk data not followed by CRLF");
                    }
                    State::Size { value: 0, digits: false }
                }
                // A CR at the start of a line ends the trailers; within a line, the line.
                State::TrailerStart | State::TrailerLine => match b {
                    b'\r' if self.state == State::TrailerStart => State::EndLf,
                    b'\r' => State::TrailerLf,
                    b'\n' => return Err("bare LF in the trailers"),
                    _ => {
                        self.trailers += 1;
                        if self.trailers > MAX_TRAILERS {
                            return Err("trailers too long");
                        }
                        State::TrailerLine
                    }
                },
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err("trailer line not ended by CRLF");
                    }
                    State::TrailerStart
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err("chunked body not ended by CRLF");
                    }
                    self.state = State::Done;
                    return Ok((i + 1, Step::Done));
                }
                State::Done => return Ok((i, Step::Done)),
            };
            i += 1;
        }
        Ok((i, if self.state == State::Done { Step::Done } else { Step::More }))
    }
}

/// The state after a byte that follows a chunk size's digits (or the spaces after them).
fn after_size(value: u64, b: u8) -> Result<State, &'static str> {
    match b {
        b' ' | b'\t' => Ok(State::SizeSpace(value)),
        b';' => Ok(State::Extension(value)),
        b'\r' => Ok(State::SizeLf(value)),
        _ => Err("invalid chunk size"),
    }
}

fn hex(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// Where a connection goes when its response body has been read.
pub trait Home: Send + 'static {
    /// Takes back a connection that may carry another request.
    fn put_back(&self, conn: Conn);
}

#[derive(Debug)]
enum BodyState {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

/// A response body read from the connection by whoever polls it; the connection goes home
/// when the body is complete (if reusable) and is closed if the body is dropped early.
#[derive(Debug)]
pub struct OriginBody<H: Home> {
    conn: Option<Conn>,
    state: BodyState,
    reusable: bool,
    home: H,
}

impl<H: Home> OriginBody<H> {
    /// The body of a response whose head `conn` has just read. A response without a body
    /// sends the connection home at once.
    pub fn new(conn: Conn, framing: Framing, reusable: bool, home: H) -> Self {
        let state = match framing {
            Framing::Empty => BodyState::Length(0),
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::Chunked(Chunked::new()),
            Framing::UntilClose => BodyState::UntilClose,
        };
        let mut body = Self { conn: Some(conn), state, reusable, home };
        if framing == Framing::Empty {
            body.finish();
        }
        body
    }

    /// Whether the body has been read to the end.
    pub fn is_complete(&self) -> bool {
        self.conn.is_none()
    }

    /// If the whole body is already buffered (the common case for small responses): the
    /// body, with the connection sent home.
    pub fn take_buffered(&mut self) -> Option<Bytes> {
        let BodyState::Length(n) = self.state else { return None };
        let conn = self.conn.as_mut()?;
        let n = usize::try_from(n).ok().filter(|n| *n <= conn.buffered().len())?;
        let data = Bytes::copy_from_slice(&conn.buffered()[..n]);
        conn.consume(n);
        self.state = BodyState::Length(0);
        self.finish();
        Some(data)
    }

    fn finish(&mut self) {
        if let Some(mut conn) = self.conn.take()
            && self.reusable
            && conn.park(Instant::now())
        {
            self.home.put_back(conn);
        }
    }

    fn fail(&mut self, why: &'static str) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.conn = None;
        Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, why))))
    }
}

impl<H: Home + Unpin> http_body::Body for OriginBody<H> {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            let buffered = conn.buffered();
            if !buffered.is_empty() {
                match &mut this.state {
                    BodyState::Length(remaining) => {
                        let n = usize::try_from(*remaining).map_or(buffered.len(), |r| r.min(buffered.len()));
                        let data = Bytes::copy_from_slice(&buffered[..n]);
                        conn.consume(n);
                        *remaining -= n as u64;
                        if *remaining == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    BodyState::Chunked(decoder) => match decoder.decode(buffered) {
                        Err(why) => return this.fail(why),
                        Ok((used, Step::Data(range))) => {
                            let data = Bytes::copy_from_slice(&buffered[range]);
                            conn.consume(used);
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        Ok((used, Step::Done)) => {
                            conn.consume(used);
                            this.finish();
                            return Poll::Ready(None);
                        }
                        Ok((used, Step::More)) => conn.consume(used),
                    },
                    BodyState::UntilClose => {
                        let data = Bytes::copy_from_slice(buffered);
                        let n = data.len();
                        conn.consume(n);
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            match ready!(conn.poll_fill(cx, READ_BUFFER)) {
                Ok(0) => {
                    if matches!(this.state, BodyState::UntilClose) {
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    return this.fail("the origin closed the connection before the end of the body");
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn head(text: &str) -> Head {
        match parse_head(text.as_bytes(), false) {
            Ok(Some((n, Some(h)))) => {
                assert_eq!(n, text.len());
                h
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn invalid(text: &str) -> &'static str {
        match parse_head(text.as_bytes(), false) {
            Err(ExchangeError::Invalid(why)) => why,
            other => panic!("{text:?} was accepted: {other:?}"),
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        assert_eq!((h.framing, h.reusable), (Framing::Length(5), true));
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5));
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!((h.framing, h.reusable), (Framing::Chunked, true));
        assert!(h.headers.is_empty(), "hop-by-hop fields are not kept: {:?}", h.headers);
        // Transfer-Encoding wins over Content-Length, which is dropped; no reuse.
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((h.framing, h.reusable), (Framing::Chunked, false));
        assert!(h.headers.get(header::CONTENT_LENGTH).is_none());
        // A final coding other than chunked: the body runs to the close.
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert_eq!((h.framing, h.reusable), (Framing::UntilClose, false));
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.reusable), (Framing::UntilClose, false));
        for s in ["204 No Content", "304 Not Modified"] {
            let h = head(&format!("HTTP/1.1 {s}\r\nContent-Length: 10\r\n\r\n"));
            assert_eq!((h.framing, h.reusable), (Framing::Empty, true), "{s}");
        }
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.framing, Framing::Empty);
        let Ok(Some((_, Some(h)))) = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true) else {
            panic!("HEAD response not parsed")
        };
        assert_eq!(h.framing, Framing::Empty);
        assert_eq!(h.headers.get(header::CONTENT_LENGTH).map(HeaderValue::as_bytes), Some(&b"10"[..]));
    }

    #[test]
    fn connection_reuse_follows_the_version_and_connection_header() {
        assert!(!head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n").reusable);
        assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").reusable);
        assert!(head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n").reusable);
        assert!(invalid("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").contains("HTTP/1.0"));
        assert!(!head("HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\n").reusable);
    }

    #[test]
    fn unusual_reason_phrases_are_kept() {
        let h = head("HTTP/1.1 200 Fine Thanks\r\nContent-Length: 1\r\n\r\n");
        assert_eq!(h.reason.as_ref().map(|r| r.as_bytes()), Some(&b"Fine Thanks"[..]));
        assert!(head("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n").reason.is_none());
        assert!(head("HTTP/1.1 404 \r\nContent-Length: 1\r\n\r\n").reason.is_none());
    }

    #[test]
    fn hop_by_hop_fields_are_dropped_and_connection_named_ones_flagged() {
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nTrailer: x\r\nProxy-Authenticate: Basic\r\nX-App: 1\r\nContent-Length: 1\r\n\r\n",
        );
        assert_eq!(h.headers.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["x-app", "content-length"]);
        assert!(!h.connection_names_fields);
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: x-internal\r\nX-Internal: secret\r\nContent-Length: 1\r\n\r\n",
        );
        assert!(h.connection_names_fields && !h.reusable);
        assert!(h.headers.contains_key(header::CONNECTION) && h.headers.contains_key("x-internal"));
    }

    #[test]
    fn informational_responses_are_skipped_and_bad_heads_refused() {
        assert!(matches!(parse_head(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false), Ok(Some((_, None)))));
        assert!(matches!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le", false), Ok(None)));
        assert!(invalid("HTTP/1.1 101 Switching Protocols\r\n\r\n").contains("101"));
        assert!(invalid("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n").contains("differing"));
        for bad in ["-1", "5x", "", "0x10", "1 2", "99999999999999999999"] {
            assert!(invalid(&format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n")).contains("number"), "{bad}");
        }
        assert!(invalid("HTTP/1.1 999999 OK\r\n\r\n").len() > 1);
        assert!(invalid("SSH-2.0-OpenSSH\r\n\r\n").contains("HTTP/1.x"));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: y\r\n")).collect();
        assert!(invalid(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")).contains("100"));
    }

    #[test]
    fn requests_are_encoded_in_origin_form() {
        let Ok(req) = http::Request::get("/a/b?c=1").header("host", "app.test").header("x-y", "z").body(()) else {
            panic!("request")
        };
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        encode_request(&mut out, &parts);
        assert_eq!(out, b"GET /a/b?c=1 HTTP/1.1\r\nhost: app.test\r\nx-y: z\r\n\r\n");
    }

    /// Feeds `input` to a decoder in pieces cut at `cuts`; the data and whether it finished.
    fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, bool), &'static str> {
        let mut d = Chunked::new();
        let mut out = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.push(input.len());
        points.sort_unstable();
        let mut last = 0;
        for p in points {
            pending.extend_from_slice(&input[last..p]);
            last = p;
            loop {
                let (used, step) = d.decode(&pending)?;
                if let Step::Data(r) = &step {
                    out.extend_from_slice(&pending[r.clone()]);
                }
                pending.drain(..used);
                match step {
                    Step::Done => return Ok((out, true)),
                    Step::More => break,
                    Step::Data(_) => {}
                }
            }
        }
        Ok((out, d.is_done()))
    }

    #[test]
    fn chunked_bodies_decode_with_extensions_and_trailers() {
        let body = b"4;name=value\r\nWiki\r\n5 \r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n";
        assert_eq!(decode_in_pieces(body, &[]), Ok((b"Wikipedia in\r\n\r\nchunks.".to_vec(), true)));
        assert_eq!(decode_in_pieces(b"0\r\n\r\nleftover", &[]), Ok((Vec::new(), true)));
        for (bad, why) in [
            (&b"4\nWiki\r\n0\r\n\r\n"[..], "invalid"),
            (b"4\r\r\nWiki\r\n", "CRLF"),
            (b"4\r\nWikipedia\r\n", "longer"),
            (b"x\r\n", "missing"),
            (b"4x\r\n", "invalid"),
            (b"fffffffffffffffff\r\n", "too large"),
            (b"0\r\nA: b\n\r\n", "bare LF"),
        ] {
            match decode_in_pieces(bad, &[]) {
                Err(e) => assert!(e.contains(why), "{bad:?}: {e}"),
                Ok(r) => panic!("{bad:?} accepted: {r:?}"),
            }
        }
        let long_ext = format!("1;{}\r\na\r\n0\r\n\r\n", "x".repeat(MAX_CHUNK_EXTENSION + 1));
        assert!(decode_in_pieces(long_ext.as_bytes(), &[]).is_err());
        let long_trailers = format!("0\r\nx: {}\r\n\r\n", "y".repeat(MAX_TRAILERS));
        assert!(decode_in_pieces(long_trailers.as_bytes(), &[]).is_err());
        // Incomplete: everything so far decoded, not finished.
        assert_eq!(decode_in_pieces(b"3\r\nabc\r\n", &[]), Ok((b"abc".to_vec(), false)));
    }

    fn encode_chunked(body: &[u8], sizes: &[usize], ext: bool, trailer: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = body;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes.get(i).map_or(rest.len(), |s| (s % 40).max(1)).min(rest.len());
            i += 1;
            out.extend_from_slice(format!("{n:x}").as_bytes());
            if ext {
                out.extend_from_slice(b" ;a=\"b\"");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        out.extend_from_slice(b"0\r\n");
        if trailer {
            out.extend_from_slice(b"X-Checksum: 1\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    proptest! {
        #[test]
        fn chunked_decoding_does_not_depend_on_how_bytes_arrive(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            sizes in proptest::collection::vec(0usize..100, 0..20),
            cuts in proptest::collection::vec(0usize..2000, 0..12),
            ext in any::<bool>(),
            trailer in any::<bool>(),
        ) {
            let encoded = encode_chunked(&body, &sizes, ext, trailer);
            prop_assert_eq!(decode_in_pieces(&encoded, &cuts), Ok((body, true)));
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_parsers(
            input in proptest::collection::vec(any::<u8>(), 0..400),
            cuts in proptest::collection::vec(0usize..500, 0..6),
        ) {
            let _ = decode_in_pieces(&input, &cuts);
            let _ = parse_head(&input, false);
            let mut text = b"HTTP/1.1 200 OK\r\n".to_vec();
            text.extend_from_slice(&input);
            let _ = parse_head(&text, false);
        }

        #[test]
        fn framing_fields_in_any_mix_are_framed_consistently(
            version in prop_oneof![Just("1.0"), Just("1.1")],
            status in prop_oneof![Just(200u16), Just(204), Just(304), Just(404), Just(103)],
            fields in proptest::collection::vec(
                (
                    prop_oneof![Just("Content-Length"), Just("Transfer-Encoding"), Just("Connection"), Just("X-Other"), Just("Keep-Alive")],
                    prop_oneof![Just("0"), Just("5"), Just("5, 5"), Just("5, 6"), Just("-1"), Just("chunked"), Just("gzip, chunked"), Just("chunked, gzip"), Just("close"), Just("keep-alive"), Just("x-other"), Just("")],
                ),
                0..6,
            ),
            head_only in any::<bool>(),
        ) {
            let mut text = format!("HTTP/{version} {status} X\r\n");
            for (name, value) in &fields {
                text.push_str(&format!("{name}: {value}\r\n"));
            }
            text.push_str("\r\n");
            match parse_head(text.as_bytes(), head_only) {
                Ok(Some((used, Some(h)))) => {
                    prop_assert_eq!(used, text.len());
                    let te = fields.iter().any(|(n, _)| *n == "Transfer-Encoding");
                    // Framing fields never reach the client side.
                    prop_assert!(!h.headers.contains_key(header::TRANSFER_ENCODING));
                    if te {
                        prop_assert!(!h.headers.contains_key(header::CONTENT_LENGTH));
                        prop_assert!(version == "1.1");
                    }
                    if head_only || status == 204 || status == 304 {
                        prop_assert_eq!(h.framing, Framing::Empty);
                    }
                    if let Framing::Length(n) = h.framing {
                        prop_assert!(!te && n == 5);
                    }
                    if h.framing == Framing::UntilClose {
                        prop_assert!(!h.reusable);
                    }
                    if fields.iter().any(|(n, v)| *n == "Connection" && v.contains("close")) || (version == "1.0" && !fields.iter().any(|(n, v)| *n == "Connection" && *v == "keep-alive")) {
                        prop_assert!(!h.reusable);
                    }
                }
                Ok(Some((_, None))) => prop_assert_eq!(status, 103),
                Ok(None) => prop_assert!(false, "a complete head was reported partial"),
                Err(ExchangeError::Invalid(_)) => {}
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }
    }
}
