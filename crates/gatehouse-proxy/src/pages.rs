//! The small HTML pages the gateway answers with itself (errors, denials). They name nothing
//! internal: no origin address, no policy contents.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML content and attributes.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A small HTML page; `title` and `body` are escaped. Never cached.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>{t}</title><h1>{t}</h1><p>{b}</p>",
        t = escape(title),
        b = escape(body)
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}
