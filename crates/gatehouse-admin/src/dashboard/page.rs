//! What every page shares: the chrome (navigation, CSRF token, read-only badge, notices),
//! rendering, the one HTML error surface, field errors beside their inputs, and pagination.

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use gatehouse_core::ValidationErrors;
use gatehouse_store::{AppStore, IdpFilter, IdpStore, Page, StoreError, UserStore};

use super::form::{Pairs, Query};
use super::session::Dash;
use crate::AdminState;
use crate::api::envelope::ApiError;

/// Default page size of every list.
pub(crate) const PER_PAGE: u32 = 25;

/// The frame around every signed-in page.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    /// The synchroniser token for forms.
    pub csrf: String,
    /// The session may only view.
    pub read_only: bool,
    /// Which navigation entry is current.
    pub nav: &'static str,
    /// A confirmation to show at the top, from `?notice=`.
    pub notice: Option<&'static str>,
}

impl Chrome {
    pub(crate) fn new(dash: &Dash, nav: &'static str, q: &Pairs) -> Self {
        Self { csrf: dash.csrf.clone(), read_only: dash.read_only, nav, notice: notice(q.get("notice")) }
    }
}

/// Confirmations after a redirect. Only these fixed texts can appear, so a crafted link
/// cannot put words on the page.
fn notice(code: &str) -> Option<&'static str> {
    Some(match code {
        "created" => "Created.",
        "saved" => "Saved.",
        "deleted" => "Deleted.",
        "revoked" => "Every session of the user was revoked; their next request is refused.",
        "rotated" => "A new signing key is in use; the previous one stays valid for 7 days.",
        "policy-added" => "Policy added.",
        "policy-saved" => "Policy saved.",
        "policy-removed" => "Policy removed.",
        _ => return None,
    })
}

/// Renders a template; a rendering failure is logged and answered with a plain 500.
pub(crate) fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dashboard template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal error; see the gateway log").into_response()
        }
    }
}

/// `303 See Other` to a dashboard path (after a successful POST).
pub(crate) fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}

/// A failure shown as an HTML page.
#[derive(Debug)]
pub(crate) enum PageError {
    /// 404: the object does not exist.
    NotFound(&'static str),
    /// 400 with a plain-words reason.
    BadRequest(String),
    /// 403 with a plain-words reason.
    Forbidden(String),
    /// A failure of an API operation, shown with its messages.
    Api(ApiError),
    /// Something failed on our side (already logged).
    Internal,
}

impl PageError {
    pub(crate) fn internal(e: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %e, "dashboard request failed");
        Self::Internal
    }

    pub(crate) fn bad_request(msg: &str) -> Self {
        Self::BadRequest(msg.to_owned())
    }

    pub(crate) fn cross_origin() -> Self {
        Self::Forbidden(
            "This change did not come from a page of the dashboard itself (its Origin header names another site, or none), so it was refused."
                .into(),
        )
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        Self::Api(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: &'static str,
    messages: Vec<String>,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, messages) = match self {
            Self::NotFound(what) => (StatusCode::NOT_FOUND, "Not found", vec![format!("No such {what}.")]),
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", vec![m]),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", vec![m]),
            Self::Api(e) => (e.status(), "Request failed", e.messages().map(plain).collect()),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                vec!["Internal error; see the gateway log".into()],
            ),
        };
        let mut resp = render(&ErrorPage { title, messages });
        *resp.status_mut() = status;
        resp
    }
}

/// An API message without its machine prefix (`access.api.error.invalid_request: `).
fn plain(m: &str) -> String {
    m.strip_prefix("access.api.error.invalid_request: ")
        .or_else(|| m.strip_prefix("access.api.error.not_found: "))
        .unwrap_or(m)
        .to_owned()
}

/// Validation messages by field path (the API's paths, which are also the forms' input
/// names), plus messages that belong to no field.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldErrors {
    fields: Vec<(String, String)>,
    /// Messages shown above the form.
    pub general: Vec<String>,
}

impl FieldErrors {
    /// The errors of a failed operation. `known` says which paths have an input on the form;
    /// the rest are shown above it, naming the field. `strip` removes a path prefix
    /// (`policies[0].`) the operation added.
    pub(crate) fn from_api(e: &ApiError, known: &dyn Fn(&str) -> bool, strip: Option<&str>) -> Self {
        let mut out = Self::default();
        match e.field_errors() {
            Some(v) => out.add(v, known, strip),
            None => out.general.extend(e.messages().map(plain)),
        }
        out
    }

    pub(crate) fn add(&mut self, v: &ValidationErrors, known: &dyn Fn(&str) -> bool, strip: Option<&str>) {
        for f in &v.0 {
            let path = strip.and_then(|s| f.path.strip_prefix(s)).unwrap_or(&f.path).to_owned();
            if known(&path) {
                self.fields.push((path, f.message.clone()));
            } else {
                self.general.push(format!("{path}: {}", f.message));
            }
        }
    }

    /// Adds one message for `path`.
    pub(crate) fn push(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.fields.push((path.into(), msg.into()));
    }

    /// The message of a field, if any.
    pub(crate) fn get(&self, path: &str) -> Option<&str> {
        self.fields.iter().find(|(p, _)| p == path).map(|(_, m)| m.as_str())
    }

    /// Every field message whose path starts with `prefix`, for grouped inputs.
    pub(crate) fn under(&self, prefix: &str) -> Vec<String> {
        self.fields.iter().filter(|(p, _)| p.starts_with(prefix)).map(|(_, m)| m.clone()).collect()
    }
}

/// One page of a list and the links around it.
#[derive(Debug, Clone)]
pub(crate) struct Pager {
    /// Current page (1-based).
    pub page: u32,
    /// Number of pages (at least 1).
    pub pages: u64,
    /// Items in all pages.
    pub total: u64,
    /// Link to the previous page.
    pub prev: Option<String>,
    /// Link to the next page.
    pub next: Option<String>,
}

/// The page asked for in `?page=` and `?per_page=`, or a clear message.
pub(crate) fn page_of(q: &Pairs) -> Result<Page, PageError> {
    let num = |name: &str, default: u32| -> Result<u32, PageError> {
        match q.get(name) {
            "" => Ok(default),
            v => v
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| PageError::BadRequest(format!("{name} must be a whole number from 1, not {v:?}"))),
        }
    };
    Ok(Page::new(num("page", 1)?, num("per_page", PER_PAGE)?))
}

impl Pager {
    /// The pager of `path` showing `page` of `total`, keeping the query's other parameters.
    pub(crate) fn new(path: &str, q: &Pairs, page: Page, total: u64) -> Self {
        let pages = total.div_ceil(u64::from(page.per_page)).max(1);
        let link = |n: u32| {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &q.0 {
                if k != "page" && k != "notice" && !v.is_empty() {
                    s.append_pair(k, v);
                }
            }
            s.append_pair("page", &n.to_string());
            format!("{path}?{}", s.finish())
        };
        Self {
            page: page.page,
            pages,
            total,
            prev: (page.page > 1).then(|| link(page.page - 1)),
            next: (u64::from(page.page) < pages).then(|| link(page.page + 1)),
        }
    }
}

/// A time for tables: `2026-12-02 16:04 UTC`, or `never`.
pub(crate) fn when(ms: Option<i64>) -> String {
    match ms {
        None => "never".to_owned(),
        Some(ms) => {
            let s = gatehouse_core::rfc3339(ms);
            match (s.get(..10), s.get(11..16)) {
                (Some(d), Some(t)) => format!("{d} {t} UTC"),
                _ => s,
            }
        }
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    chrome: Chrome,
    idps: u64,
    apps: u64,
    users: u64,
    team_url: String,
}

/// `GET /`: what is configured, and where to start.
pub(crate) async fn overview(
    State(state): State<AdminState>,
    axum::Extension(dash): axum::Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let one = Page::new(1, 1);
    let idps = state.store.list_idps(IdpFilter::default(), one).await?.total;
    let apps = state.store.list_apps(one).await?.total;
    let users = state.store.list_users(None, one).await?.total;
    Ok(render(&Overview {
        chrome: Chrome::new(&dash, "overview", &q),
        idps,
        apps,
        users,
        team_url: crate::api::idps::base(&state).await?,
    }))
}
