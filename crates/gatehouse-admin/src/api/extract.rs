//! Extractors that answer bad input in the API's own envelope instead of axum's plain text:
//! [`ApiJson`] for bodies, [`ApiQuery`] for query strings, [`ApiPath`] for ids in paths.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::envelope::{ApiError, ErrorCode};

/// A JSON body; malformed JSON, wrong types and unknown fields are `400`, a missing JSON
/// content type is `415`, a body over the limit is `413`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
            format!(
                "Request body is invalid: {}",
                e.body_text().trim_start_matches("Failed to deserialize the JSON body into the target type: ")
            ),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
            format!(
                "Request body is not valid JSON: {}",
                e.body_text().trim_start_matches("Failed to parse the request body as JSON: ")
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Request body must be JSON with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTooLarge,
            format!("Request body is larger than {} bytes", crate::MAX_BODY_BYTES),
        ),
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
            format!("Request body could not be read: {}", other.body_text()),
        ),
    }
}

/// Query parameters; unparsable values are `400` naming the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                format!(
                    "Invalid query string: {}",
                    e.body_text().trim_start_matches("Failed to deserialize query string: ")
                ),
            )),
            Err(other) => Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery, other.body_text())),
        }
    }
}

/// Parses the path parameter `name` with `FromStr`; a malformed id is `400/7003`.
pub fn path_id<T: std::str::FromStr>(uri: &OriginalUri, raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::bad_identifier(uri.path()))
}

/// Standard list parameters.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
pub struct PageParams {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Page size (default 25, at most 1000).
    pub per_page: Option<u32>,
}

impl PageParams {
    /// Default page size.
    pub const DEFAULT_PER_PAGE: u32 = 25;

    /// The validated page.
    pub fn page(self) -> Result<gatehouse_store::Page, ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(Self::DEFAULT_PER_PAGE);
        if page == 0 {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery, "page must be 1 or more"));
        }
        if per_page == 0 || per_page > gatehouse_store::Page::MAX_PER_PAGE {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                format!("per_page must be between 1 and {}", gatehouse_store::Page::MAX_PER_PAGE),
            ));
        }
        Ok(gatehouse_store::Page::new(page, per_page))
    }
}
