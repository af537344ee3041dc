//! Reading the request's `Cookie` headers and removing the gateway's own cookies before a
//! request goes to an origin. Both run on every proxied request, so they work on bytes and
//! look for separators with `memchr` instead of validating and splitting strings.

use http::header::{self, HeaderMap, HeaderValue};

/// Cookies the gateway owns; never sent to an origin (matched without regard to case).
pub const GATEWAY_COOKIES: &[&str] = &["CF_Authorization", "CF_AppSession", "CF_Binding", "CF_Session"];

/// The `;`-separated parts of one `Cookie` header value.
fn segments(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b';', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// The `name=value` pairs of one `Cookie` header value, trimmed; pairs without `=` are
/// skipped.
fn pairs(value: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    segments(value).filter_map(|pair| {
        let eq = memchr::memchr(b'=', pair)?;
        Some((pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()))
    })
}

/// The value of cookie `name` (compared exactly) among the request's cookies; empty values
/// count as absent.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    get_bytes(headers, name).and_then(|v| std::str::from_utf8(v).ok())
}

/// [`get`] without the UTF-8 check, for a caller that compares the value as bytes first
/// (the session token, looked up in the verified-token cache on every request).
pub fn get_bytes<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| pairs(v.as_bytes()))
        .find(|(n, _)| *n == name.as_bytes())
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn is_gateway_cookie(name: &[u8]) -> bool {
    GATEWAY_COOKIES.iter().any(|g| g.as_bytes().eq_ignore_ascii_case(name))
}

/// Removes the gateway's cookies from the request; the other cookies stay, joined into one
/// header. Nothing is rebuilt when there is no gateway cookie, and the header goes when
/// there is nothing else.
pub fn strip_gateway(headers: &mut HeaderMap) {
    let (mut gateway, mut other) = (0usize, 0usize);
    for v in &headers.get_all(header::COOKIE) {
        for (name, _) in pairs(v.as_bytes()) {
            if is_gateway_cookie(name) {
                gateway += 1;
            } else {
                other += 1;
            }
        }
    }
    if gateway == 0 {
        return;
    }
    let mut kept: Vec<u8> = Vec::new();
    if other > 0 {
        for v in &headers.get_all(header::COOKIE) {
            for pair in segments(v.as_bytes()) {
                let pair = pair.trim_ascii();
                let name = memchr::memchr(b'=', pair).map_or(pair, |eq| pair[..eq].trim_ascii());
                if pair.is_empty() || is_gateway_cookie(name) {
                    continue;
                }
                if !kept.is_empty() {
                    kept.extend_from_slice(b"; ");
                }
                kept.extend_from_slice(pair);
            }
        }
    }
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_bytes(&kept)
    {
        headers.insert(header::COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_static(v));
        }
        h
    }

    fn cookies(h: &HeaderMap) -> Vec<&str> {
        h.get_all(header::COOKIE).iter().map(|v| v.to_str().unwrap_or_default()).collect()
    }

    #[test]
    fn finds_a_cookie_among_several_headers() {
        let h = headers(&["a=1; CF_Authorization = tok ;b=2", "CF_Session=s"]);
        assert_eq!(get(&h, "CF_Authorization"), Some("tok"));
        assert_eq!(get(&h, "CF_Session"), Some("s"));
        assert_eq!(get(&h, "cf_authorization"), None, "names are compared exactly");
        assert_eq!(get(&headers(&["CF_Authorization="]), "CF_Authorization"), None);
        assert_eq!(get(&headers(&["CF_Authorization"]), "CF_Authorization"), None);
        assert_eq!(get_bytes(&h, "CF_Authorization"), Some(&b"tok"[..]));
        let latin1 = HeaderValue::from_bytes(b"CF_Authorization=t\xe9").unwrap_or_else(|_| unreachable!());
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, latin1);
        assert_eq!(get_bytes(&h, "CF_Authorization"), Some(&b"t\xe9"[..]));
        assert_eq!(get(&h, "CF_Authorization"), None, "not UTF-8");
    }

    #[test]
    fn strips_only_gateway_cookies() {
        let mut h = headers(&["a=1; CF_Authorization=tok; cf_appsession=x", "CF_Binding=y; b=2; flag"]);
        strip_gateway(&mut h);
        assert_eq!(cookies(&h), ["a=1; b=2; flag"]);

        let mut only = headers(&["CF_Authorization=tok", "CF_Session=s"]);
        strip_gateway(&mut only);
        assert!(only.get(header::COOKIE).is_none());

        let mut none = headers(&["a=1", "b=2"]);
        strip_gateway(&mut none);
        assert_eq!(cookies(&none), ["a=1", "b=2"], "untouched when there is nothing to strip");
    }
}
