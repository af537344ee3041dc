//! SCIM errors (RFC 7644 §3.12): an HTTP status, an optional `scimType` keyword and a
//! human-readable `detail`, rendered as the RFC's error body with [`ScimError::to_json`].
//!
//! Entra's provisioning logs show the `detail` of a failed request to the administrator, so
//! it names the offending operation, path or value rather than a generic reason.

use std::fmt;

use serde_json::{Value, json};

/// Schema URI of SCIM error responses.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `scimType` keywords of RFC 7644 §3.12, Table 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScimType {
    /// The filter syntax was invalid or the filter is not supported.
    InvalidFilter,
    /// The filter yields more results than the server is willing to return.
    TooMany,
    /// A unique attribute value is already in use.
    Uniqueness,
    /// The change is incompatible with an attribute's mutability (for example `id`).
    Mutability,
    /// The request body was not a valid SCIM message.
    InvalidSyntax,
    /// The `path` attribute was invalid or malformed.
    InvalidPath,
    /// The `path` did not yield anything that could be operated on.
    NoTarget,
    /// A required value was missing or a value was not compatible with the attribute.
    InvalidValue,
    /// The requested protocol version is not supported.
    InvalidVers,
    /// The request cannot be completed because of sensitive information in the URI.
    Sensitive,
}

impl ScimType {
    /// The keyword as it appears in `scimType`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidFilter => "invalidFilter",
            Self::TooMany => "tooMany",
            Self::Uniqueness => "uniqueness",
            Self::Mutability => "mutability",
            Self::InvalidSyntax => "invalidSyntax",
            Self::InvalidPath => "invalidPath",
            Self::NoTarget => "noTarget",
            Self::InvalidValue => "invalidValue",
            Self::InvalidVers => "invalidVers",
            Self::Sensitive => "sensitive",
        }
    }
}

impl fmt::Display for ScimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SCIM error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    /// HTTP status code.
    pub status: u16,
    /// The `scimType` keyword, when one applies.
    pub scim_type: Option<ScimType>,
    /// What went wrong, for the client's logs.
    pub detail: String,
}

impl ScimError {
    /// A 400 Bad Request with the given `scimType`.
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self { status: 400, scim_type: Some(scim_type), detail: detail.into() }
    }

    /// The RFC 7644 §3.12 error body. `status` is a string as the RFC requires (Microsoft's
    /// tooling accepts both, other clients only the string).
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(map)) = (self.scim_type, body.as_object_mut()) {
            map.insert("scimType".into(), Value::String(t.as_str().into()));
        }
        body
    }
}

impl fmt::Display for ScimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scim_type {
            Some(t) => write!(f, "SCIM error {} {t}: {}", self.status, self.detail),
            None => write!(f, "SCIM error {}: {}", self.status, self.detail),
        }
    }
}

impl std::error::Error for ScimError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_follows_rfc_7644() {
        let e = ScimError::bad_request(ScimType::InvalidPath, "bad path");
        assert_eq!(
            e.to_json(),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "400",
                "scimType": "invalidPath",
                "detail": "bad path",
            })
        );
        assert_eq!(e.to_string(), "SCIM error 400 invalidPath: bad path");
        let e = ScimError { status: 404, scim_type: None, detail: "no such user".into() };
        assert_eq!(e.to_json(), json!({"schemas": [ERROR_SCHEMA], "status": "404", "detail": "no such user"}));
    }
}
