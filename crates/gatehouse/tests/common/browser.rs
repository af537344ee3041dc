//! A test browser for sign-in flows over real HTTP: a cookie jar (host-only cookies,
//! path-matched) that follows redirects one by one and fills in sign-in forms. Included by
//! the sign-in test files with `#[path = "common/browser.rs"] mod browser;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Mutex;

#[derive(Debug, Clone)]
pub struct Cookie {
    pub host: String,
    pub path: String,
    pub name: String,
    pub value: String,
}

/// A browser with a cookie jar (host-only cookies, path-matched) that follows no redirect by
/// itself. Names under `.test` resolve to the gateway's public listener.
pub struct Browser {
    pub http: reqwest::Client,
    pub gateway: SocketAddr,
    pub jar: Mutex<Vec<Cookie>>,
}

fn path_matches(cookie_path: &str, path: &str) -> bool {
    path == cookie_path
        || (path.starts_with(cookie_path) && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
}

impl Browser {
    pub fn new(gateway: SocketAddr) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, gateway, jar: Mutex::new(Vec::new()) }
    }

    pub fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar.lock().unwrap().iter().find(|c| c.host == host && c.name == name).map(|c| c.value.clone())
    }

    pub fn store_cookies(&self, url: &url::Url, resp: &reqwest::Response) {
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut jar = self.jar.lock().unwrap();
        for raw in resp.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let mut parts = raw.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|kv| kv.split_once('=')) else { continue };
            let default_path = match url.path().rfind('/') {
                Some(0) | None => "/".to_owned(),
                Some(i) => url.path()[..i].to_owned(),
            };
            let (mut path, mut delete) = (default_path, false);
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                match k.to_ascii_lowercase().as_str() {
                    "path" if v.starts_with('/') => path = v.to_owned(),
                    "max-age" => delete |= v.parse::<i64>().is_ok_and(|n| n <= 0),
                    "expires" => delete |= v.contains("1970"),
                    _ => {}
                }
            }
            jar.retain(|c| !(c.host == host && c.name == name && c.path == path));
            if !delete && !value.is_empty() {
                jar.push(Cookie { host: host.clone(), path, name: name.to_owned(), value: value.to_owned() });
            }
        }
    }

    pub async fn send(&self, method: reqwest::Method, url: &str, form: Option<&[(&str, &str)]>) -> reqwest::Response {
        let url = url::Url::parse(url).unwrap_or_else(|e| panic!("{e}: {url}"));
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut target = url.clone();
        let mut host_header = None;
        if host.ends_with(".test") {
            target.set_ip_host(self.gateway.ip()).unwrap();
            target.set_port(Some(self.gateway.port())).unwrap();
            host_header = Some(match url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            });
        }
        let cookies: Vec<String> = self
            .jar
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.host == host && path_matches(&c.path, url.path()))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        let mut req = self.http.request(method, target);
        if let Some(h) = host_header {
            req = req.header("host", h);
        }
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        if let Some(f) = form {
            req = req.form(f);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        self.store_cookies(&url, &resp);
        resp
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, url, None).await
    }

    /// Follows redirects from `resp` (at `at`) until a non-redirect, recording every URL.
    pub async fn follow(
        &self,
        at: &str,
        mut resp: reqwest::Response,
        visited: &mut Vec<String>,
    ) -> (String, reqwest::Response) {
        let mut current = at.to_owned();
        for _ in 0..20 {
            if !resp.status().is_redirection() {
                return (current, resp);
            }
            let location = resp.headers()["location"].to_str().unwrap().to_owned();
            current = url::Url::parse(&current).unwrap().join(&location).unwrap().to_string();
            visited.push(current.clone());
            resp = self.get(&current).await;
        }
        panic!("too many redirects: {visited:?}");
    }

    /// Opens `url` and, when a page with the form `form` is reached, fills in `fields` (plus
    /// the form's hidden inputs) and submits it; returns the final URL and response, and
    /// every URL passed through.
    pub async fn open_and_sign_in(&self, url: &str, form: &str, fields: &[(&str, &str)]) -> Landed {
        let mut visited = vec![url.to_owned()];
        let first = self.get(url).await;
        let (at, resp) = self.follow(url, first, &mut visited).await;
        let status = resp.status().as_u16();
        let html = resp.text().await.unwrap();
        let Some(form_at) = html.find(&format!("id=\"{form}\"")) else {
            // No sign-in form: the IdP remembered the user, or the gateway answered itself.
            return Landed { url: at, status, body: html, visited };
        };
        let start = html[..form_at].rfind("<form").unwrap();
        let end = start + html[start..].find("</form>").unwrap();
        let form_html = &html[start..end];
        let attr = |tag: &str, name: &str| -> Option<String> {
            let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
            Some(tag[at..at + tag[at..].find('"')?].replace("&amp;", "&"))
        };
        let action = url::Url::parse(&at).unwrap().join(&attr(form_html, "action").unwrap()).unwrap().to_string();
        let mut values: Vec<(String, String)> = form_html
            .split("<input")
            .skip(1)
            .filter(|tag| tag.contains("type=\"hidden\""))
            .filter_map(|tag| Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default())))
            .collect();
        values.extend(fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let pairs: Vec<(&str, &str)> = values.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        visited.push(action.clone());
        let posted = self.send(reqwest::Method::POST, &action, Some(&pairs)).await;
        let (at, resp) = self.follow(&action, posted, &mut visited).await;
        let status = resp.status().as_u16();
        Landed { url: at, status, body: resp.text().await.unwrap(), visited }
    }
}

/// Where a browser ended up: the last URL, its status and body, and every URL on the way.
pub struct Landed {
    pub url: String,
    pub status: u16,
    pub body: String,
    pub visited: Vec<String>,
}
