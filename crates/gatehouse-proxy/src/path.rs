//! Request paths made canonical before an application is chosen for them.
//!
//! Applications are matched by path prefix, and the origin serves whatever path it is sent.
//! If the two read a path differently, a request authorised for one application can reach
//! another: `/public/../admin` matches a bypassed `/public` while the origin serves `/admin`.
//! So the data plane matches and forwards one canonical form: percent-encoded unreserved
//! characters decoded, `.` and `..` segments removed (RFC 3986 §5.2.4), runs of `/`
//! collapsed. Paths whose meaning depends on the origin (an encoded `/` or `\`, a literal
//! `\`, an encoded NUL or control character) are refused rather than guessed at.

use std::borrow::Cow;

/// Why a path was refused; the request gets a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an origin-form path (`*`, or not starting with `/`).
    #[error("the request path must start with '/'")]
    NotAbsolute,
    /// An encoded `/` or `\`, a backslash, or an encoded control character.
    #[error("the request path contains an ambiguous or control character")]
    Ambiguous,
    /// A `%` not followed by two hex digits.
    #[error("the request path has a malformed percent-encoding")]
    BadEncoding,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The canonical form of `path` (borrowed when it already is canonical).
pub fn canonical(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let fast = !path.contains("//") && !path.contains("/.") && !path.contains('%') && !path.contains('\\');
    if fast {
        return Ok(Cow::Borrowed(path));
    }
    // Decode unreserved characters, keep other escapes (upper-cased), refuse ambiguous ones.
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => return Err(PathError::Ambiguous),
            b'%' => {
                let (Some(h), Some(l)) =
                    (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
                else {
                    return Err(PathError::BadEncoding);
                };
                let v = h * 16 + l;
                if v == b'/' || v == b'\\' || v < 0x20 || v == 0x7f {
                    return Err(PathError::Ambiguous);
                }
                if unreserved(v) {
                    decoded.push(char::from(v));
                } else {
                    decoded.push('%');
                    decoded.push(char::from(b"0123456789ABCDEF"[usize::from(h)]));
                    decoded.push(char::from(b"0123456789ABCDEF"[usize::from(l)]));
                }
                i += 3;
            }
            _ => {
                // `path` is a `str`, so copying whole characters keeps it valid UTF-8.
                let ch_len = path[i..].chars().next().map_or(1, char::len_utf8);
                decoded.push_str(&path[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    // Remove dot segments and empty segments; keep a trailing slash.
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing = false;
    for (n, seg) in segments.iter().enumerate() {
        match *seg {
            "" | "." => trailing = n == last,
            ".." => {
                out.pop();
                trailing = n == last;
            }
            s => {
                out.push(s);
                trailing = false;
            }
        }
    }
    let mut result = String::with_capacity(decoded.len());
    for s in &out {
        result.push('/');
        result.push_str(s);
    }
    if trailing || out.is_empty() {
        result.push('/');
    }
    Ok(Cow::Owned(result))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn canonical_forms() {
        for (raw, want) in [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("/public/../admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2E/admin", "/admin"),
            ("/./admin", "/admin"),
            ("//admin", "/admin"),
            ("/a//b///c", "/a/b/c"),
            ("/%61dmin", "/admin"),
            ("/../../etc", "/etc"),
            ("/a/..", "/"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/q%20x", "/q%20x"),
            ("/q%3fx", "/q%3Fx"),
            ("/caf\u{e9}/x", "/caf\u{e9}/x"),
            ("/.well-known/x", "/.well-known/x"),
        ] {
            assert_eq!(canonical(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for raw in ["/admin%2fx", "/a%5Cb", "/a\\b", "/a%00b", "/a%0ab"] {
            assert_eq!(canonical(raw), Err(PathError::Ambiguous), "{raw}");
        }
        for raw in ["/a%", "/a%2", "/a%zz"] {
            assert_eq!(canonical(raw), Err(PathError::BadEncoding), "{raw}");
        }
        assert_eq!(canonical("*"), Err(PathError::NotAbsolute));
        assert_eq!(canonical(""), Err(PathError::NotAbsolute));
    }

    proptest! {
        /// Whatever comes in, the result is canonical: it starts with `/`, has no dot or
        /// empty segments, and is a fixed point.
        #[test]
        fn canonical_is_canonical(raw in "/[a-z./%2eE]{0,40}") {
            if let Ok(c) = canonical(&raw) {
                prop_assert!(c.starts_with('/'));
                prop_assert!(!c.contains("//"));
                prop_assert!(!c.split('/').any(|s| s == "." || s == ".."));
                let again = canonical(&c).unwrap();
                prop_assert_eq!(again.as_ref(), c.as_ref());
            }
        }

        /// Arbitrary input never panics.
        #[test]
        fn never_panics(raw in "\\PC{0,60}") {
            let _ = canonical(&raw);
        }
    }
}
