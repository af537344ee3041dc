//! The discovery document and the signing keys (JWKS), in Entra's exact shapes.
//!
//! For a tenant authority every URL carries the tenant GUID and `issuer` is concrete; for
//! `common`/`organizations` the URLs keep that segment and `issuer` is the literal template
//! `https://{host}/{tenantid}/v2.0` (reference §1.3). Keys carry the template issuer, as
//! Entra's shared keys do. Both responses are cacheable and CORS-open like Entra's.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Authority, resolve_authority};
use crate::aadsts::AadstsError;
use crate::server::SimState;

fn cacheable(body: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "max-age=86400, private"), (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        axum::Json(body),
    )
        .into_response()
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub(crate) async fn openid_configuration(State(st): State<Arc<SimState>>, Path(segment): Path<String>) -> Response {
    let now = st.clock.now();
    let doc = st.tenant.read(|t| {
        let authority = resolve_authority(&segment, t)?;
        let seg = authority.segment(t);
        let login = &st.urls.login;
        let cloud = t.info().cloud;
        let issuer = match authority {
            Authority::Tenant => format!("{}/{}/v2.0", st.urls.issuer, t.id()),
            Authority::Common | Authority::Organizations => format!("{}/{{tenantid}}/v2.0", st.urls.issuer),
        };
        let region = match authority {
            Authority::Tenant => json!(cloud.tenant_region_scope()),
            _ => serde_json::Value::Null,
        };
        Ok(json!({
            "token_endpoint": format!("{login}/{seg}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{login}/{seg}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer,
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{}/oidc/userinfo", st.urls.graph),
            "authorization_endpoint": format!("{login}/{seg}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{login}/{seg}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{login}/{seg}/oauth2/v2.0/logout"),
            "claims_supported": [
                "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
                "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name",
                "tid", "ver", "at_hash", "c_hash", "email"
            ],
            "kerberos_endpoint": format!("{login}/{seg}/kerberos"),
            "tenant_region_scope": region,
            "cloud_instance_name": cloud.cloud_instance_name(),
            "cloud_graph_host_name": cloud.legacy_graph_host(),
            "msgraph_host": st.urls.graph_host(),
            "rbac_url": "https://pas.windows.net",
        }))
    });
    match doc {
        Ok(doc) => cacheable(doc),
        Err(kind) => AadstsError::new(kind, now, None).json_response(&st.urls.login),
    }
}

/// `GET /{tenant}/discovery/v2.0/keys`.
pub(crate) async fn keys_v2(State(st): State<Arc<SimState>>, Path(segment): Path<String>) -> Response {
    keys(&st, &segment, format!("{}/{{tenantid}}/v2.0", st.urls.issuer))
}

/// `GET /{tenant}/discovery/keys` (v1.0 metadata, same keys).
pub(crate) async fn keys_v1(State(st): State<Arc<SimState>>, Path(segment): Path<String>) -> Response {
    let host = st.tenant.read(|t| t.info().cloud.v1_issuer_host());
    keys(&st, &segment, format!("https://{host}/{{tenantid}}/"))
}

fn keys(st: &SimState, segment: &str, issuer: String) -> Response {
    if let Err(kind) = st.tenant.read(|t| resolve_authority(segment, t)) {
        return AadstsError::new(kind, st.clock.now(), None).json_response(&st.urls.login);
    }
    cacheable(st.keys().jwks(&issuer))
}
