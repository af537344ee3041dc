//! The demo's sample origin: a small HTTP server on loopback that answers every request with
//! a page showing what the gateway sent it — the identity headers and the claims of the
//! application token (`Cf-Access-Jwt-Assertion`), decoded for reading.
//!
//! It decodes the token only to display it; a real origin verifies it against the team
//! domain's `/cdn-cgi/access/certs` (the page says so).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Request;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use serde_json::Value;

/// A running sample origin.
#[derive(Debug)]
pub struct SampleOrigin {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SampleOrigin {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(page);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "sample origin stopped");
            }
        });
        Ok(Self { addr, task })
    }
}

impl Drop for SampleOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The JSON of one base64url part of a JWT, pretty-printed, or why it cannot be read.
fn decode_part(part: &str) -> String {
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')) {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
            Err(_) => "(not JSON)".to_owned(),
        },
        Err(_) => "(not base64url)".to_owned(),
    }
}

async fn page(req: Request) -> Response {
    let h = req.headers();
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let email = text("cf-access-authenticated-user-email");
    let host = text("host");
    let mut rows = String::new();
    let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).filter(|k| k.starts_with("cf-")).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let value = text(name);
        let shown = if value.chars().count() > 80 {
            format!("{}…", value.chars().take(80).collect::<String>())
        } else {
            value
        };
        rows.push_str(&format!("<tr><th>{}</th><td><code>{}</code></td></tr>", esc(name), esc(&shown)));
    }
    let jwt = text("cf-access-jwt-assertion");
    let mut parts = jwt.split('.');
    let (header_json, claims_json) = match (parts.next(), parts.next()) {
        (Some(h), Some(c)) if !jwt.is_empty() => (decode_part(h), decode_part(c)),
        _ => ("(no token)".to_owned(), "(no token)".to_owned()),
    };
    let who = if email.is_empty() { "Hello!".to_owned() } else { format!("Hello, {}!", esc(&email)) };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sample origin · {host}</title>\
         <style>body{{font:15px/1.5 system-ui,sans-serif;max-width:900px;margin:40px auto;padding:0 20px;color:#1d2430}}\
         th{{text-align:left;padding:4px 12px 4px 0;vertical-align:top}}code,pre{{font:13px ui-monospace,monospace}}\
         pre{{background:#eef1f5;padding:12px;border-radius:6px;overflow:auto}}</style></head><body>\
         <p>Sample origin behind Gatehouse · <code>{host}</code> · <code>{method} {path}</code></p>\
         <h1 id=\"who\">{who}</h1>\
         <p>Gatehouse checked this application's policies, then forwarded the request with these headers.</p>\
         <h2>Identity headers</h2><table id=\"headers\">{rows}</table>\
         <h2>Application token (Cf-Access-Jwt-Assertion), decoded</h2>\
         <p>Decoded for display only: an origin must verify the signature against the team domain's \
         <code>/cdn-cgi/access/certs</code> and check <code>aud</code>.</p>\
         <h3>Header</h3><pre id=\"jwt-header\">{jh}</pre><h3>Claims</h3><pre id=\"jwt-claims\">{jc}</pre>\
         <p><a href=\"/cdn-cgi/access/get-identity\">Full identity (get-identity)</a> · \
         <a href=\"/cdn-cgi/access/logout\">Sign out</a></p></body></html>",
        host = esc(&host),
        method = esc(req.method().as_str()),
        path = esc(req.uri().path()),
        jh = esc(&header_json),
        jc = esc(&claims_json),
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_token_parts_and_escapes() {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"email":"a@b.c"}"#);
        assert!(decode_part(&claims).contains("\"email\": \"a@b.c\""));
        assert_eq!(decode_part("!!"), "(not base64url)");
        assert_eq!(esc("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }
}
