//! Cloudflare's v4 response envelope and the API's one error type. Every failure of the
//! admin API becomes an [`ApiError`] and is rendered here, in one place.
//!
//! Error codes follow those observed on Cloudflare's API where one exists; the full table
//! is in `docs/api.md`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_core::ValidationErrors;
use gatehouse_store::StoreError;
use serde::Serialize;
use serde_json::{Value, json};

/// Numeric error codes used in `errors[].code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    /// No credentials at all (Cloudflare 9106).
    MissingAuth = 9106,
    /// `Authorization` header not of the form `Bearer <token>` (Cloudflare 6003/6111).
    InvalidHeaders = 6003,
    /// Unknown, invalid or insufficient token (Cloudflare 10000).
    Authentication = 10000,
    /// Unknown route or object identifier (Cloudflare 7003).
    NoRoute = 7003,
    /// Method not allowed on this route.
    MethodNotAllowed = 10405,
    /// Request body is not valid JSON, has wrong types or unknown fields.
    InvalidBody = 9207,
    /// Request body larger than the limit.
    BodyTooLarge = 9208,
    /// Request body not declared as JSON.
    UnsupportedMediaType = 9209,
    /// Invalid query parameter.
    InvalidQuery = 9210,
    /// A field failed validation (Cloudflare Access 12130).
    InvalidRequest = 12130,
    /// The object does not exist (Cloudflare Access 12135).
    NotFound = 12135,
    /// The object conflicts with an existing one.
    Conflict = 12136,
    /// Something failed on our side; details are logged, not returned.
    Internal = 10002,
    /// The store is unreachable.
    Unavailable = 10003,
}

/// One entry of `errors[]` or `messages[]`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorItem {
    /// Numeric code.
    pub code: u32,
    /// Human message.
    pub message: String,
    /// Which part of the request is at fault, as a JSON pointer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
}

/// An API failure: HTTP status plus the `errors[]` array.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    errors: Vec<ErrorItem>,
    /// The field errors this failure came from, kept so the dashboard can show each one
    /// beside its field.
    fields: Option<ValidationErrors>,
}

impl ApiError {
    /// A failure with one error.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            errors: vec![ErrorItem { code: code as u32, message: message.into(), source: None }],
            fields: None,
        }
    }

    /// The field errors, when this is a validation failure.
    pub fn field_errors(&self) -> Option<&ValidationErrors> {
        self.fields.as_ref()
    }

    /// The messages of `errors[]`.
    pub fn messages(&self) -> impl Iterator<Item = &str> {
        self.errors.iter().map(|e| e.message.as_str())
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// 404 `access.api.error.not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("access.api.error.not_found: {what} not found"))
    }

    /// 400/7003 for an identifier that cannot be one.
    pub fn bad_identifier(path: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::NoRoute,
            format!("Could not route to {path}, perhaps your object identifier is invalid?"),
        )
    }

    /// 403/10000, Cloudflare's answer for a missing permission.
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Authentication, "Authentication error")
    }

    /// An internal failure: logs `err` in full, returns a message without internals.
    pub fn internal(err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "admin API request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "Internal error; see the gateway log")
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errs: ValidationErrors) -> Self {
        let errors = errs
            .0
            .iter()
            .map(|e| ErrorItem {
                code: ErrorCode::InvalidRequest as u32,
                message: format!("access.api.error.invalid_request: {}: {}", e.path, e.message),
                source: Some(json!({ "pointer": format!("/{}", e.path.replace('.', "/")) })),
            })
            .collect();
        Self { status: StatusCode::BAD_REQUEST, errors, fields: Some(errs) }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, what),
            e if e.is_unavailable() => {
                tracing::error!(error = %e, "store unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, "Store unavailable; try again")
            }
            other => Self::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "success": false, "errors": self.errors, "messages": [], "result": null });
        (self.status, Json(body)).into_response()
    }
}

/// Pagination facts of a list response.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ResultInfo {
    /// 1-based page number.
    pub page: u32,
    /// Page size.
    pub per_page: u32,
    /// Items on this page.
    pub count: usize,
    /// Items on all pages.
    pub total_count: u64,
    /// Number of pages.
    pub total_pages: u64,
}

/// A successful single-object response.
pub fn ok<T: Serialize>(result: T) -> Response {
    Json(json!({ "success": true, "errors": [], "messages": [], "result": result })).into_response()
}

/// A successful list response with `result_info`.
pub fn ok_list<T: Serialize>(items: Vec<T>, page: u32, per_page: u32, total: u64) -> Response {
    let info = ResultInfo {
        page,
        per_page,
        count: items.len(),
        total_count: total,
        total_pages: total.div_ceil(u64::from(per_page.max(1))),
    };
    Json(json!({ "success": true, "errors": [], "messages": [], "result": items, "result_info": info })).into_response()
}
