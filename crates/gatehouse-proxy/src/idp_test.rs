//! The result page of `/cdn-cgi/access/test-idp/<idp_id>`: either "Your connection works!"
//! with the identity received (claims, groups with names, which claim gave the e-mail), or
//! the diagnosis of what is wrong and how to fix it, in plain words.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use gatehouse_core::idp::IdentityProvider;
use gatehouse_oidc::{SignInError, SignedIn};

use crate::signin::escape;

fn row(label: &str, value: &str) -> String {
    format!("<tr><th>{}</th><td>{}</td></tr>", escape(label), escape(value))
}

/// Renders the outcome of an IdP test.
pub fn result_page(idp: &IdentityProvider, result: &Result<SignedIn, SignInError>) -> Response {
    let head = "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
                <style>body{font-family:sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}\
                th{text-align:left;padding-right:1rem;vertical-align:top}pre{white-space:pre-wrap}</style>";
    let (status, body) = match result {
        Ok(s) => {
            let id = &s.identity;
            let groups: Vec<String> = id
                .groups
                .iter()
                .map(|g| match &g.name {
                    Some(n) => format!("{n} ({})", g.id),
                    None => g.id.clone(),
                })
                .collect();
            let claims = serde_json::to_string_pretty(&s.claims).unwrap_or_default();
            let mut rows = row("Identity provider", &format!("{} ({})", idp.name, idp.kind.as_str()));
            rows += &row("E-mail", &id.email);
            rows += &row("E-mail taken from claim", &s.email_claim);
            rows += &row("Name", id.name.as_deref().unwrap_or(""));
            rows += &row("User key", &id.user_key.as_string());
            rows += &row("Groups", &if groups.is_empty() { "none".to_owned() } else { groups.join(", ") });
            rows += &row("Custom claims (oidc_fields)", &serde_json::Value::Object(id.oidc_fields.clone()).to_string());
            (
                StatusCode::OK,
                format!(
                    "<title>Your connection works!</title><h1>Your connection works!</h1>\
                     <p>Gatehouse signed you in through this identity provider and received the identity below.</p>\
                     <table>{rows}</table><h2>ID token claims</h2><pre>{}</pre>",
                    escape(&claims)
                ),
            )
        }
        Err(e) => {
            let d = e.diagnosis();
            tracing::info!(idp = %idp.id, code = d.code, "identity provider test failed");
            let details: String = d.details.iter().map(|x| row(&x.label, &x.value)).collect();
            (
                StatusCode::OK,
                format!(
                    "<title>The connection does not work</title><h1>The connection does not work</h1>\
                     <h2 id=\"diagnosis\" data-code=\"{code}\">{title}</h2><p>{explanation}</p>\
                     <h3>How to fix it</h3><p>{fix}</p><table>{details}</table>",
                    code = escape(&d.code),
                    title = escape(&d.title),
                    explanation = escape(&d.explanation),
                    fix = escape(&d.fix),
                ),
            )
        }
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Html(format!("{head}{body}"))).into_response()
}
