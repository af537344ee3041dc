//! The emulator's HTML: the sign-in page, Entra's error page, the `form_post` response, the
//! signed-out page and the index page.
//!
//! Pages are deliberately plain so a script can complete them with any HTTP client: the
//! sign-in form has the id `signin`, posts to its `action`, and has the fields `flow`
//! (hidden), `username` and `password`; an "already signed in" choice is a second form,
//! `continue`, with the hidden fields `flow` and `continue=1`. Every dynamic value is
//! HTML-escaped here and nowhere else.

use crate::aadsts::AadstsError;

/// Escapes text for HTML element content and double-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:Segoe UI,Helvetica,Arial,sans-serif;background:#f2f2f2;margin:0}}\
         main{{max-width:440px;margin:8vh auto;background:#fff;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}}\
         h1{{font-size:24px;font-weight:600}}input[type=text],input[type=password]{{width:100%;padding:6px 0;\
         margin:8px 0 16px;border:0;border-bottom:1px solid #666;font-size:15px}}button{{background:#0067b8;\
         color:#fff;border:0;padding:8px 32px;font-size:15px;cursor:pointer}}.error{{color:#e81123}}\
         .small{{font-size:12px;color:#555;word-break:break-all}}.tag{{font-size:12px;color:#777}}</style>\
         </head><body><main><div class=\"tag\">Microsoft Entra ID &middot; local emulator</div>{}</main></body></html>\n",
        escape(title),
        body
    )
}

/// What the sign-in page shows.
#[derive(Debug)]
pub(crate) struct SignInPage<'a> {
    pub(crate) action: &'a str,
    pub(crate) flow: &'a str,
    pub(crate) app_name: &'a str,
    pub(crate) login_hint: Option<&'a str>,
    /// The signed-in account offered by `prompt=select_account`/`consent`.
    pub(crate) signed_in_as: Option<&'a str>,
    /// Permissions listed by `prompt=consent`.
    pub(crate) permissions: Option<&'a [String]>,
    pub(crate) error: Option<&'a AadstsError>,
}

/// The username/password page.
pub(crate) fn sign_in_page(p: &SignInPage<'_>) -> String {
    let mut body = String::new();
    body.push_str(&format!("<h1>Sign in</h1><p>to continue to <b>{}</b></p>", escape(p.app_name)));
    if let Some(e) = p.error {
        let friendly = match e.kind.code() {
            50126 => "Your account or password is incorrect.",
            50034 => "This username may be incorrect. Make sure you typed it correctly.",
            _ => "We couldn't sign you in.",
        };
        body.push_str(&format!(
            "<p class=\"error\" id=\"error\">{}</p><p class=\"small\" id=\"error-code\">{}</p>",
            escape(friendly),
            escape(&e.headline())
        ));
    }
    if let Some(perms) = p.permissions {
        body.push_str("<h2>Permissions requested</h2><ul id=\"permissions\">");
        for perm in perms {
            body.push_str(&format!("<li>{}</li>", escape(perm)));
        }
        body.push_str("</ul>");
    }
    if let Some(account) = p.signed_in_as {
        body.push_str(&format!(
            "<form method=\"post\" action=\"{}\" id=\"continue\"><input type=\"hidden\" name=\"flow\" value=\"{}\">\
             <input type=\"hidden\" name=\"continue\" value=\"1\"><p>Signed in as <b>{}</b></p>\
             <button type=\"submit\">Continue</button></form><p>or use another account:</p>",
            escape(p.action),
            escape(p.flow),
            escape(account)
        ));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"{}\" id=\"signin\"><input type=\"hidden\" name=\"flow\" value=\"{}\">\
         <label for=\"username\">Email, phone, or Skype</label>\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{}\" autocomplete=\"username\" autofocus>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\">\
         <button type=\"submit\">Sign in</button></form>",
        escape(p.action),
        escape(p.flow),
        escape(p.login_hint.unwrap_or_default())
    ));
    page("Sign in to your account", &body)
}

/// Entra's error page, shown when the error cannot go back to the client.
pub(crate) fn error_page(e: &AadstsError) -> String {
    let body = format!(
        "<h1>Sign in</h1><p>Sorry, but we\u{2019}re having trouble signing you in.</p>\
         <p class=\"error\" id=\"error-code\">{}</p>\
         <h2>Troubleshooting details</h2><p class=\"small\">Request Id: {}<br>Correlation Id: {}<br>\
         Timestamp: {}<br>Message: {}</p>",
        escape(&e.headline()),
        e.trace_id,
        e.correlation_id,
        escape(&e.timestamp_text()),
        escape(&e.headline())
    );
    page("Sign in to your account", &body)
}

/// The `response_mode=form_post` page: an auto-submitting form to the redirect URI.
pub(crate) fn form_post_page(action: &str, fields: &[(&str, String)]) -> String {
    let mut inputs = String::new();
    for (name, value) in fields {
        inputs.push_str(&format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(name), escape(value)));
    }
    format!(
        "<!DOCTYPE html>\n<html><head><title>Working...</title></head><body onload=\"document.forms[0].submit()\">\
         <form method=\"POST\" name=\"hiddenform\" action=\"{}\">{}<noscript><p>Script is disabled. Click Submit \
         to continue.</p><input type=\"submit\" value=\"Submit\"></noscript></form></body></html>\n",
        escape(action),
        inputs
    )
}

/// The page shown after logout when there is nowhere to return to.
pub(crate) fn signed_out_page() -> String {
    page("Sign out", "<h1>You signed out of your account</h1><p>It's a good idea to close all browser windows.</p>")
}

/// The emulator's front page: where things are.
pub(crate) fn index_page(lines: &[(&str, String)]) -> String {
    let mut body = String::from("<h1>Entra ID emulator</h1><dl>");
    for (label, value) in lines {
        body.push_str(&format!("<dt>{}</dt><dd class=\"small\">{}</dd>", escape(label), escape(value)));
    }
    body.push_str("</dl>");
    page("Entra ID emulator", &body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn form_post_escapes_values() {
        let html = form_post_page("https://rp/cb?a=1&b=2", &[("state", "\"><script>".into())]);
        assert!(html.contains("action=\"https://rp/cb?a=1&amp;b=2\""));
        assert!(!html.contains("<script>"));
    }
}
