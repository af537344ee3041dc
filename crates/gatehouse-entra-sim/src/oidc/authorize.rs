//! The authorization endpoint and the sign-in page.
//!
//! Order of checks follows Entra: the tenant, the client and the redirect URI are checked
//! first and fail on Entra's error page (there is no trustworthy place to send the user);
//! everything after that fails by redirecting `error`/`error_description` to the client.
//! Then `prompt` and the browser session decide between silent sign-in (a code straight
//! away), the sign-in page, or `login_required`. A completed sign-in issues a single-use
//! code bound to the client, redirect URI, PKCE challenge, nonce and scopes, after the
//! consent check (AADSTS65001). Credentials are checked only here, in constant time.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use time::OffsetDateTime;
use uuid::Uuid;

use super::scopes::{ScopeSet, graph_prefixes};
use super::store::{AuthCode, FLOW_LIFETIME_SECS, Grant, PendingFlow, Pkce, Session, opaque};
use super::{Params, SESSION_COOKIE, cookie, resolve_authority};
use crate::aadsts::{Aadsts, AadstsError};
use crate::html::{self, SignInPage};
use crate::server::SimState;
use crate::tenant::Tenant;

/// How the response goes back to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

/// `prompt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prompt {
    Login,
    None,
    Consent,
    SelectAccount,
}

/// A validated authorization request.
#[derive(Clone, Debug)]
pub(crate) struct AuthorizeRequest {
    pub(crate) tenant_segment: String,
    pub(crate) client_id: Uuid,
    pub(crate) redirect_uri: String,
    pub(crate) redirect_uri_sent: bool,
    pub(crate) response_mode: ResponseMode,
    pub(crate) scopes: ScopeSet,
    pub(crate) state: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) prompt: Option<Prompt>,
    pub(crate) login_hint: Option<String>,
    pub(crate) pkce: Option<Pkce>,
    pub(crate) max_age: Option<i64>,
}

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub(crate) async fn authorize_get(
    State(st): State<Arc<SimState>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    authorize(&st, &segment, &params, &headers)
}

/// `POST /{tenant}/oauth2/v2.0/authorize` (form-encoded parameters).
pub(crate) async fn authorize_post(
    State(st): State<Arc<SimState>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    authorize(&st, &segment, &Params::parse(&body), &headers)
}

fn authorize(st: &SimState, segment: &str, params: &Params, headers: &HeaderMap) -> Response {
    let now = st.clock.now();
    let req = match st.tenant.read(|t| validate(st, t, segment, params, now)) {
        Ok(req) => req,
        Err(response) => return *response,
    };
    // max_age=0 asks for fresh credentials, like prompt=login.
    let session = current_session(st, headers, now.unix_timestamp())
        .filter(|s| req.max_age.is_none_or(|max| max > 0 && now.unix_timestamp() - s.auth_time <= max));
    match (req.prompt, session) {
        (Some(Prompt::None) | None, Some(s)) => complete(st, &req, s, None),
        (Some(Prompt::None), None) => {
            deliver(&req, AadstsError::new(Aadsts::LoginRequired, now, None).redirect_params(), None)
        }
        (Some(Prompt::Login) | None, _) => start_sign_in(st, req, None),
        (Some(Prompt::SelectAccount | Prompt::Consent), session) => start_sign_in(st, req, session),
    }
}

/// Checks an authorization request in Entra's order. `Err` is the response to send.
fn validate(
    st: &SimState,
    t: &Tenant,
    segment: &str,
    params: &Params,
    now: OffsetDateTime,
) -> Result<AuthorizeRequest, Box<Response>> {
    let page = |kind: Aadsts| Box::new(error_page(AadstsError::new(kind, now, None)));
    resolve_authority(segment, t).map_err(page)?;
    let client = params.require("client_id").map_err(page)?;
    let unknown_client =
        || Aadsts::UnknownClient { client_id: client.to_owned(), tenant_name: t.info().display_name.clone() };
    let client_id = Uuid::parse_str(client).map_err(|_| page(unknown_client()))?;
    let app = t.app(client_id).ok_or_else(|| page(unknown_client()))?;
    let sent = params.get("redirect_uri").map_err(page)?;
    let redirect_uri = match sent {
        Some(uri) if app.redirect_uris.iter().any(|r| r == uri) => uri.to_owned(),
        Some(uri) => {
            return Err(page(Aadsts::RedirectUriMismatch {
                redirect_uri: uri.to_owned(),
                client_id: client_id.to_string(),
            }));
        }
        None => app.redirect_uris.first().cloned().ok_or_else(|| page(Aadsts::NoReplyAddress))?,
    };

    // From here on errors go back to the client.
    let mut req = AuthorizeRequest {
        tenant_segment: segment.to_owned(),
        client_id,
        redirect_uri,
        redirect_uri_sent: sent.is_some(),
        response_mode: ResponseMode::Query,
        scopes: ScopeSet::default(),
        state: params.get("state").ok().flatten().map(str::to_owned),
        nonce: None,
        prompt: None,
        login_hint: None,
        pkce: None,
        max_age: None,
    };
    let to_client = |req: &AuthorizeRequest, kind: Aadsts| {
        Box::new(deliver(req, AadstsError::new(kind, now, None).redirect_params(), None))
    };
    req.response_mode = match params.get("response_mode") {
        Ok(None | Some("query")) => ResponseMode::Query,
        Ok(Some("fragment")) => ResponseMode::Fragment,
        Ok(Some("form_post")) => ResponseMode::FormPost,
        Ok(Some(_)) => {
            return Err(to_client(&req, Aadsts::InvalidParameter { name: "response_mode" }));
        }
        Err(kind) => return Err(to_client(&req, kind)),
    };
    match (|| -> Result<(), Aadsts> {
        let response_type = params.require("response_type")?;
        if response_type != "code" {
            return Err(Aadsts::UnsupportedResponseType { response_type: response_type.to_owned() });
        }
        let prefixes = graph_prefixes(t.info().cloud.graph_host(), &st.urls.graph);
        req.scopes = ScopeSet::parse(params.require("scope")?, &prefixes, &t.info().display_name)?;
        req.nonce = params.get("nonce")?.map(str::to_owned);
        req.login_hint = params.get("login_hint")?.map(str::to_owned);
        req.prompt = match params.get("prompt")? {
            None => None,
            Some("login") => Some(Prompt::Login),
            Some("none") => Some(Prompt::None),
            Some("consent") => Some(Prompt::Consent),
            Some("select_account") => Some(Prompt::SelectAccount),
            Some(_) => return Err(Aadsts::InvalidParameter { name: "prompt" }),
        };
        req.max_age = params
            .get("max_age")?
            .map(|v| v.parse::<i64>().map_err(|_| Aadsts::InvalidParameter { name: "max_age" }))
            .transpose()?;
        req.pkce = match (params.get("code_challenge")?, params.get("code_challenge_method")?) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(Aadsts::MissingParameter { name: "code_challenge" });
            }
            (Some(challenge), method) => {
                let s256 = match method {
                    None | Some("plain") => false,
                    Some("S256") => true,
                    Some(_) => {
                        return Err(Aadsts::InvalidParameter { name: "code_challenge_method" });
                    }
                };
                if s256 && challenge.len() != 43 {
                    return Err(Aadsts::InvalidParameter { name: "code_challenge" });
                }
                Some(Pkce { challenge: challenge.to_owned(), s256 })
            }
        };
        Ok(())
    })() {
        Ok(()) => Ok(req),
        Err(kind) => Err(to_client(&req, kind)),
    }
}

/// The valid browser session, if the request carries one.
fn current_session(st: &SimState, headers: &HeaderMap, now: i64) -> Option<Session> {
    let handle = cookie(headers, SESSION_COOKIE)?;
    let session = *st.store().sessions.get(handle)?;
    let usable = session.expires > now && st.tenant.read(|t| t.user(session.user_id).is_some_and(|u| u.can_sign_in()));
    usable.then_some(session)
}

/// Stores the request as a pending flow and shows the sign-in page.
fn start_sign_in(st: &SimState, req: AuthorizeRequest, session: Option<Session>) -> Response {
    let now = st.clock.unix();
    let flow = opaque("");
    let response = render_sign_in(st, &req, &flow, session, None, StatusCode::OK);
    let mut store = st.store();
    store.flows.insert(flow, PendingFlow { request: req, expires: now + FLOW_LIFETIME_SECS });
    store.inserted(now, 0);
    response
}

fn render_sign_in(
    st: &SimState,
    req: &AuthorizeRequest,
    flow: &str,
    session: Option<Session>,
    error: Option<&AadstsError>,
    status: StatusCode,
) -> Response {
    let (app_name, signed_in_as, permissions) = st.tenant.read(|t| {
        let app = t.app(req.client_id);
        let name = app.map(|a| a.display_name.clone()).unwrap_or_default();
        let who = session.and_then(|s| t.user(s.user_id)).map(|u| u.upn.clone());
        let perms = (req.prompt == Some(Prompt::Consent)).then(|| {
            let mut list = vec!["Sign you in and read your profile".to_owned()];
            if req.scopes.offline_access {
                list.push("Maintain access to data you have given it access to".to_owned());
            }
            list.extend(app.map(|a| a.graph_permissions.clone()).unwrap_or_default());
            list
        });
        (name, who, perms)
    });
    let action = format!("/{}/login", req.tenant_segment);
    let page = html::sign_in_page(&SignInPage {
        action: &action,
        flow,
        app_name: &app_name,
        login_hint: req.login_hint.as_deref(),
        signed_in_as: signed_in_as.as_deref(),
        permissions: permissions.as_deref(),
        error,
    });
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

/// `POST /{tenant}/login`: the sign-in form.
pub(crate) async fn login(
    State(st): State<Arc<SimState>>,
    Path(_segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = st.clock.now();
    let unix = now.unix_timestamp();
    let params = Params::parse(&body);
    let flow_id = params.get("flow").ok().flatten().unwrap_or_default().to_owned();
    let pending = st.store().flows.get(&flow_id).cloned().filter(|f| f.expires > unix);
    let Some(flow) = pending else {
        return error_page(AadstsError::new(Aadsts::MalformedRequest, now, None));
    };
    let req = flow.request;

    if params.get("continue").ok().flatten() == Some("1") {
        return match current_session(&st, &headers, unix) {
            Some(session) => {
                st.store().flows.remove(&flow_id);
                complete(&st, &req, session, None)
            }
            None => render_sign_in(&st, &req, &flow_id, None, None, StatusCode::OK),
        };
    }

    let username = params.get("username").ok().flatten().unwrap_or_default().trim().to_owned();
    let password = params.get("password").ok().flatten().unwrap_or_default().to_owned();
    let checked = st.tenant.read(|t| {
        let Some(user) = t.user_by_upn(&username) else {
            return Err(Aadsts::UnknownUser { tenant_name: t.info().display_name.clone() });
        };
        if !user.password.as_ref().is_some_and(|p| p.matches(&password)) {
            return Err(Aadsts::BadPassword);
        }
        if !user.can_sign_in() {
            return Err(Aadsts::UserDisabled);
        }
        Ok(user.id)
    });
    let user_id = match checked {
        Ok(id) => id,
        Err(Aadsts::UserDisabled) => {
            st.store().flows.remove(&flow_id);
            tracing::info!(username = %username, "sign-in refused: account disabled");
            return error_page(AadstsError::new(Aadsts::UserDisabled, now, None));
        }
        Err(kind) => {
            tracing::info!(username = %username, code = kind.code(), "sign-in refused");
            let error = AadstsError::new(kind, now, None);
            return render_sign_in(&st, &req, &flow_id, None, Some(&error), StatusCode::BAD_REQUEST);
        }
    };

    let lifetime = st.tenant.read(|t| t.info().settings.session_lifetime_secs);
    let session = Session {
        user_id,
        auth_time: unix,
        sid: Uuid::new_v4(),
        expires: unix.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)),
    };
    let handle = opaque("");
    {
        let mut store = st.store();
        store.flows.remove(&flow_id);
        store.sessions.insert(handle.clone(), session);
        store.inserted(unix, 0);
    }
    tracing::info!(username = %username, "signed in");
    let cookie = HeaderValue::from_str(&format!("{SESSION_COOKIE}={handle}; Path=/; HttpOnly; SameSite=Lax")).ok();
    complete(&st, &req, session, cookie)
}

/// Finishes a sign-in: consent check, code, response to the client.
fn complete(st: &SimState, req: &AuthorizeRequest, session: Session, cookie: Option<HeaderValue>) -> Response {
    let now = st.clock.now();
    let checked = st.tenant.read(|t| {
        let Some(app) = t.app(req.client_id) else {
            return Err(Aadsts::UnknownClient {
                client_id: req.client_id.to_string(),
                tenant_name: t.info().display_name.clone(),
            });
        };
        if !t.user(session.user_id).is_some_and(|u| u.can_sign_in()) {
            return Err(Aadsts::UserDisabled);
        }
        let missing = req.scopes.graph.iter().any(|p| !app.has_graph_permission(p));
        if !app.admin_consent || missing {
            return Err(Aadsts::ConsentRequired {
                client_id: app.client_id.to_string(),
                app_name: app.display_name.clone(),
            });
        }
        Ok(t.info().settings.code_lifetime_secs)
    });
    let code_lifetime = match checked {
        Ok(lifetime) => lifetime,
        Err(kind @ Aadsts::ConsentRequired { .. }) => {
            return deliver(req, AadstsError::new(kind, now, None).redirect_params(), cookie);
        }
        Err(kind) => return error_page(AadstsError::new(kind, now, None)),
    };
    let unix = now.unix_timestamp();
    let code = opaque("1.A");
    let record = AuthCode {
        grant: Grant {
            client_id: req.client_id,
            user_id: session.user_id,
            scopes: req.scopes.clone(),
            nonce: req.nonce.clone(),
            auth_time: session.auth_time,
            sid: session.sid,
        },
        redirect_uri: req.redirect_uri.clone(),
        redirect_uri_sent: req.redirect_uri_sent,
        pkce: req.pkce.clone(),
        expires: unix.saturating_add(i64::try_from(code_lifetime).unwrap_or(i64::MAX)),
        redeemed: false,
    };
    {
        let mut store = st.store();
        store.codes.insert(code.clone(), record);
        store.inserted(unix, 0);
    }
    deliver(req, vec![("code", code), ("session_state", session.sid.to_string())], cookie)
}

/// Sends parameters to the client's redirect URI in the requested response mode, `state`
/// appended when the request had one.
pub(crate) fn deliver(
    req: &AuthorizeRequest,
    mut params: Vec<(&'static str, String)>,
    cookie: Option<HeaderValue>,
) -> Response {
    if let Some(state) = &req.state {
        params.push(("state", state.clone()));
    }
    let mut response = match req.response_mode {
        ResponseMode::FormPost => {
            (StatusCode::OK, Html(html::form_post_page(&req.redirect_uri, &params))).into_response()
        }
        ResponseMode::Query | ResponseMode::Fragment => {
            let encoded = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            let location = if req.response_mode == ResponseMode::Fragment {
                format!("{}#{encoded}", req.redirect_uri)
            } else if req.redirect_uri.contains('?') {
                format!("{}&{encoded}", req.redirect_uri)
            } else {
                format!("{}?{encoded}", req.redirect_uri)
            };
            match HeaderValue::from_str(&location) {
                Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
                Err(_) => error_page(AadstsError::new(Aadsts::MalformedRequest, OffsetDateTime::now_utc(), None)),
            }
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(cookie) = cookie {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

/// Entra's error page (400 here, so scripts need not read the page to see it failed).
pub(crate) fn error_page(error: AadstsError) -> Response {
    tracing::info!(code = error.kind.code(), "sign-in error page");
    (StatusCode::BAD_REQUEST, [(header::CACHE_CONTROL, "no-store")], Html(html::error_page(&error))).into_response()
}
