//! Form bodies and query strings as ordered name/value pairs, so repeated fields (the rows of
//! the policy builder) keep their order. Parsing never fails: malformed percent-encoding is
//! decoded lossily, and what a field must contain is checked by the API's validation.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// Decoded `application/x-www-form-urlencoded` pairs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pairs(pub Vec<(String, String)>);

impl Pairs {
    /// Parses a body or query string.
    pub(crate) fn parse(raw: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(raw).into_owned().collect())
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
    }

    /// The first value of `name`, trimmed, or `None` when absent or empty.
    pub(crate) fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name)).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    /// Every value of `name`, in order, untrimmed.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// Whether a checkbox named `name` was ticked.
    pub(crate) fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && !v.is_empty() && v != "false" && v != "0")
    }
}

/// The request's query string, as [`Pairs`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Query(pub Pairs);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(Pairs::parse(parts.uri.query().unwrap_or_default().as_bytes())))
    }
}

/// A POST form body, already read and CSRF-checked by the session layer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Form(pub Pairs);

impl<S: Send + Sync> FromRequestParts<S> for Form {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Form>().cloned().unwrap_or_default())
    }
}

/// Splits a comma- or whitespace-separated list, dropping empty entries.
pub(crate) fn split_list(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_repeats() {
        let p = Pairs::parse(b"a=1&b=+x+&a=2&c=&bad=%ZZ");
        assert_eq!(p.all("a"), ["1", "2"]);
        assert_eq!(p.get("b"), "x");
        assert_eq!(p.opt("c"), None);
        assert!(!p.checked("c"));
        assert_eq!(p.get("bad"), "%ZZ");
        assert_eq!(split_list("openid, email  profile,"), ["openid", "email", "profile"]);
    }
}
