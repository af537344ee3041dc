//! Logs: the access log (every decision the data plane recorded) with filters, and the SCIM
//! provisioning log.

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use gatehouse_core::{AppId, IdpId};
use gatehouse_store::{AccessLogFilter, AppStore, DataPlaneStore, IdpFilter, IdpStore, Page, ScimLogFilter, ScimStore};

use super::apps::Opt;
use super::form::Query;
use super::page::{Chrome, PageError, Pager, page_of, render, when};
use super::session::Dash;
use crate::AdminState;

struct Row {
    at: String,
    app: String,
    email: String,
    ip: String,
    allowed: bool,
    decision: String,
    reason: String,
    request: String,
    status: u16,
}

/// The filters as entered (kept in the form and the page links).
struct Filters {
    email: String,
    allowed: String,
    app: String,
    since: String,
    until: String,
    order: String,
}

#[derive(Template)]
#[template(path = "logs.html")]
struct AccessPage {
    chrome: Chrome,
    f: Filters,
    apps: Vec<Opt>,
    rows: Vec<Row>,
    pager: Pager,
    error: Option<String>,
}

/// A filter time: `2026-12-02T16:00` (as a browser's date-time field sends it, read as UTC)
/// or a full RFC 3339 time.
fn instant(name: &str, raw: &str) -> Result<Option<i64>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    let rfc = time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(raw, &rfc)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{raw}:00Z"), &rfc))
        .map_err(|_| format!("{name}: {raw:?} is not a time; use the date picker or 2026-01-31T12:00 (UTC)"))?;
    Ok(Some(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)))
}

/// `GET /logs`: the access log, newest first, filtered by user, outcome, application and time.
pub(crate) async fn access(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let page = page_of(&q)?;
    let f = Filters {
        email: q.get("email").to_owned(),
        allowed: q.get("allowed").to_owned(),
        app: q.get("app").to_owned(),
        since: q.get("since").to_owned(),
        until: q.get("until").to_owned(),
        order: q.get("order").to_owned(),
    };
    let apps_all = state.store.list_apps(Page::new(1, Page::MAX_PER_PAGE)).await?.items;
    let apps: Vec<Opt> = apps_all.iter().map(|a| Opt { value: a.id.to_string(), label: a.name.clone() }).collect();
    let mut error = None;
    let mut bad = |e: String| {
        error.get_or_insert(e);
    };
    let since = instant("From", &f.since).unwrap_or_else(|e| {
        bad(e);
        None
    });
    let until = instant("Until", &f.until).unwrap_or_else(|e| {
        bad(e);
        None
    });
    let app_id = match f.app.as_str() {
        "" => None,
        raw => raw.parse::<AppId>().map_err(|_| bad(format!("Application: {raw:?} is not an application id"))).ok(),
    };
    let allowed = match f.allowed.as_str() {
        "allowed" => Some(true),
        "denied" => Some(false),
        _ => None,
    };
    let filter = AccessLogFilter {
        since,
        until,
        email: Some(f.email.clone()).filter(|e| !e.is_empty()),
        allowed,
        app_id,
        newest_first: f.order != "oldest",
    };
    let (rows, total) = if error.is_some() {
        (Vec::new(), 0)
    } else {
        let found = state.store.list_access_logs(&filter, page).await?;
        let rows = found
            .items
            .into_iter()
            .map(|l| Row {
                at: when(Some(l.created_at)),
                app: l
                    .app_id
                    .and_then(|id| apps_all.iter().find(|a| a.id == id).map(|a| a.name.clone()))
                    .unwrap_or(l.app_domain),
                email: l.user_email,
                ip: l.ip_address,
                allowed: l.allowed,
                decision: l.decision,
                reason: l.reason,
                request: l.request,
                status: l.status,
            })
            .collect();
        (rows, found.total)
    };
    let pager = Pager::new("/logs", &q, page, total);
    Ok(render(&AccessPage { chrome: Chrome::new(&dash, "logs", &q), f, apps, rows, pager, error }))
}

struct ScimRow {
    at: String,
    idp: String,
    method: String,
    kind: String,
    subject: String,
    ok: bool,
    error: String,
    body: String,
}

struct ScimFilters {
    idp: String,
    method: String,
    kind: String,
    status: String,
    email: String,
    group: String,
    since: String,
    until: String,
}

#[derive(Template)]
#[template(path = "scim_logs.html")]
struct ScimPage {
    chrome: Chrome,
    f: ScimFilters,
    idps: Vec<Opt>,
    rows: Vec<ScimRow>,
    pager: Pager,
    error: Option<String>,
}

/// `GET /logs/scim`: every request Entra's provisioning service made, with its outcome,
/// filtered by IdP, operation, resource and time.
pub(crate) async fn scim(
    State(state): State<AdminState>,
    Extension(dash): Extension<Dash>,
    Query(q): Query,
) -> Result<Response, PageError> {
    let page = page_of(&q)?;
    let f = ScimFilters {
        idp: q.get("idp").to_owned(),
        method: q.get("method").to_ascii_uppercase(),
        kind: q.get("kind").to_ascii_uppercase(),
        status: q.get("status").to_ascii_uppercase(),
        email: q.get("email").to_owned(),
        group: q.get("group").to_owned(),
        since: q.get("since").to_owned(),
        until: q.get("until").to_owned(),
    };
    let all_idps = state.store.list_idps(IdpFilter::default(), Page::new(1, Page::MAX_PER_PAGE)).await?.items;
    let idps: Vec<Opt> = all_idps.iter().map(|i| Opt { value: i.id.to_string(), label: i.name.clone() }).collect();
    let mut error = None;
    let mut bad = |e: String| {
        error.get_or_insert(e);
    };
    let since = instant("From", &f.since).unwrap_or_else(|e| {
        bad(e);
        None
    });
    let until = instant("Until", &f.until).unwrap_or_else(|e| {
        bad(e);
        None
    });
    let idp_ids = match f.idp.as_str() {
        "" => Vec::new(),
        raw => match raw.parse::<IdpId>() {
            Ok(id) => vec![id],
            Err(_) => {
                bad(format!("Identity provider: {raw:?} is not an id"));
                Vec::new()
            }
        },
    };
    let one = |v: &str| if v.is_empty() { Vec::new() } else { vec![v.to_owned()] };
    let filter = ScimLogFilter {
        idp_ids,
        methods: one(&f.method),
        resource_types: one(&f.kind),
        statuses: one(&f.status),
        resource_user_email: Some(f.email.clone()).filter(|s| !s.is_empty()),
        resource_group_name: Some(f.group.clone()).filter(|s| !s.is_empty()),
        since,
        until,
        ..ScimLogFilter::default()
    };
    let (rows, total) = if error.is_some() {
        (Vec::new(), 0)
    } else {
        let found = state.store.scim_logs(&filter, page).await?;
        let rows = found
            .items
            .into_iter()
            .map(|l| ScimRow {
                at: when(Some(l.logged_at)),
                idp: all_idps
                    .iter()
                    .find(|i| i.id == l.idp_id)
                    .map_or_else(|| l.idp_id.to_string(), |i| i.name.clone()),
                method: l.request_method,
                kind: l.resource_type,
                subject: l.resource_user_email.or(l.resource_group_name).or(l.idp_resource_id).unwrap_or_default(),
                ok: l.status == "SUCCESS",
                error: l.error_description.unwrap_or_default(),
                body: l.request_body.unwrap_or_default(),
            })
            .collect();
        (rows, found.total)
    };
    let pager = Pager::new("/logs/scim", &q, page, total);
    Ok(render(&ScimPage { chrome: Chrome::new(&dash, "logs", &q), f, idps, rows, pager, error }))
}
