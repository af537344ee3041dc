//! SCIM PATCH paths (RFC 7644 §3.5.2): `displayName`, `name.givenName`,
//! `emails[type eq "work"].value`, `members[value eq "2819c223"]`,
//! `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`.
//!
//! Entra ID sends all of these; a path that does not parse is SCIM's `invalidPath`.

use crate::filter::{self, AttrPath, Filter, FilterError};

/// A parsed PATCH path.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (with schema URN and sub-attribute when written that way).
    pub attr: AttrPath,
    /// For `attr[filter]`: which elements of the multi-valued attribute.
    pub filter: Option<Filter>,
    /// For `attr[filter].sub`: the sub-attribute of the selected elements.
    pub sub_after_filter: Option<String>,
}

/// Parses a PATCH path.
pub fn parse(input: &str) -> Result<PatchPath, FilterError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(FilterError { pos: 0, reason: "empty path".into() });
    }
    if input.len() > filter::MAX_LEN {
        return Err(FilterError { pos: filter::MAX_LEN, reason: "path too long".into() });
    }
    let Some(open) = input.find('[') else {
        let attr = filter::parse_attr_path(input)
            .ok_or_else(|| FilterError { pos: 0, reason: format!("invalid attribute path {input:?}") })?;
        return Ok(PatchPath { attr, filter: None, sub_after_filter: None });
    };
    let close = input.rfind(']').ok_or_else(|| FilterError { pos: input.len(), reason: "expected ']'".into() })?;
    if close < open {
        return Err(FilterError { pos: close, reason: "']' before '['".into() });
    }
    let attr = filter::parse_attr_path(&input[..open])
        .filter(|a| a.sub.is_none())
        .ok_or_else(|| FilterError { pos: 0, reason: format!("invalid attribute path {:?}", &input[..open]) })?;
    let inner =
        filter::parse(&input[open + 1..close]).map_err(|e| FilterError { pos: e.pos + open + 1, reason: e.reason })?;
    let rest = &input[close + 1..];
    let sub_after_filter = match rest.strip_prefix('.') {
        None if rest.is_empty() => None,
        Some(sub) if filter::parse_attr_path(sub).is_some_and(|p| p.uri.is_none() && p.sub.is_none()) => {
            Some(sub.to_owned())
        }
        _ => return Err(FilterError { pos: close + 1, reason: format!("unexpected {rest:?} after ']'") }),
    };
    Ok(PatchPath { attr, filter: Some(inner), sub_after_filter })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_entra_paths() {
        let p = parse("name.givenName").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (p.attr.name.as_str(), p.attr.sub.as_deref(), p.filter.is_none()),
            ("name", Some("givenName"), true)
        );
        let p = parse(r#"emails[type eq "work"].value"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.attr.name.as_str(), p.sub_after_filter.as_deref()), ("emails", Some("value")));
        assert!(p.filter.is_some());
        let p = parse(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.attr.name.as_str(), p.sub_after_filter), ("members", None));
        let p = parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.attr.uri.as_deref(), Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
        assert_eq!(p.attr.name, "manager");
        let p = parse(r#"addresses[type eq "work"].streetAddress"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.sub_after_filter.as_deref(), Some("streetAddress"));
    }

    #[test]
    fn refuses_bad_paths() {
        for bad in [
            "",
            "a..b",
            "emails[type eq]",
            "emails[type eq \"w\"",
            "emails]",
            "emails[type eq \"w\"]x",
            "emails.value[type eq \"w\"]",
            "emails[type eq \"w\"].a.b",
            "1abc",
            // Multi-byte characters around byte 4 once panicked the URN check.
            "*/5\u{fb4e}x",
            "urn\u{e9}:x",
            "ur\u{fb4e}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = parse(&s);
        }
    }
}
