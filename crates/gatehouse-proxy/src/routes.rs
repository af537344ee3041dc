//! Which application serves a request: an immutable table built from the store's
//! applications and policies, swapped whole when they change. Lookups allocate nothing.
//!
//! Matching: the `Host` (with its port if the destination names one, else without), exact
//! hosts before `*.` wildcards (which match one or more labels), and the longest path prefix
//! on a segment boundary (`/wiki` serves `/wiki` and `/wiki/x`, not `/wikipedia`).

use std::collections::HashMap;

use gatehouse_core::AppId;
use gatehouse_core::app::Application;
use gatehouse_core::policy::CompiledPolicies;
use gatehouse_core::policy::Policy;
use gatehouse_core::policy::eval::GroupRules;
use gatehouse_core::policy::input::{StoredGroup, StoredPolicy};

/// An application and its compiled policies.
#[derive(Debug)]
pub struct AppRoute {
    /// The application.
    pub app: Application,
    /// Its policies, ready to evaluate.
    pub policies: CompiledPolicies,
}

/// One destination: the path prefix (empty = whole host) and the application.
#[derive(Debug, Clone)]
struct Entry {
    path: String,
    app: usize,
}

/// The routing table.
#[derive(Debug, Default)]
pub struct Routes {
    apps: Vec<AppRoute>,
    /// Looked up on every request: foldhash (seeded per process), not SipHash.
    exact: HashMap<String, Vec<Entry>, foldhash::fast::RandomState>,
    /// `(suffix including the leading dot, entries)`, longest suffix first.
    wildcard: Vec<(String, Vec<Entry>)>,
    by_aud: HashMap<String, usize>,
    by_id: HashMap<AppId, usize>,
}

fn split(dest: &str) -> (&str, &str) {
    match dest.find('/') {
        Some(i) => (&dest[..i], &dest[i..]),
        None => (dest, ""),
    }
}

fn path_matches(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

fn best<'a>(entries: &'a [Entry], path: &str) -> Option<&'a Entry> {
    // Entries are sorted longest path first.
    entries.iter().find(|e| path_matches(&e.path, path))
}

impl Routes {
    /// Builds the table from applications, their policy attachments and the Access groups.
    pub fn build(apps: Vec<Application>, attachments: &[(AppId, StoredPolicy, u32)], groups: &[StoredGroup]) -> Self {
        let group_rules: HashMap<uuid::Uuid, GroupRules> = groups
            .iter()
            .map(|g| {
                let r = g.rules.clone();
                (g.id, GroupRules { include: r.include, require: r.require, exclude: r.exclude })
            })
            .collect();
        let lists = HashMap::new();
        let mut table = Self::default();
        for app in apps {
            let policies: Vec<Policy> = attachments
                .iter()
                .filter(|(a, _, _)| *a == app.id)
                .map(|(_, p, precedence)| Policy {
                    id: p.id.to_string(),
                    name: p.name.clone(),
                    decision: p.decision,
                    include: p.rules.include.clone(),
                    require: p.rules.require.clone(),
                    exclude: p.rules.exclude.clone(),
                    precedence: *precedence,
                })
                .collect();
            let idx = table.apps.len();
            for dest in &app.destinations {
                let (host, path) = split(dest);
                let entry = Entry { path: path.to_owned(), app: idx };
                match host.strip_prefix('*') {
                    Some(suffix) => match table.wildcard.iter_mut().find(|(s, _)| s == suffix) {
                        Some((_, entries)) => entries.push(entry),
                        None => table.wildcard.push((suffix.to_owned(), vec![entry])),
                    },
                    None => table.exact.entry(host.to_owned()).or_default().push(entry),
                }
            }
            table.by_aud.insert(app.aud.clone(), idx);
            table.by_id.insert(app.id, idx);
            let policies = CompiledPolicies::compile(&policies, &group_rules, &lists);
            table.apps.push(AppRoute { app, policies });
        }
        for entries in table.exact.values_mut() {
            entries.sort_by_key(|e| std::cmp::Reverse(e.path.len()));
        }
        for (_, entries) in &mut table.wildcard {
            entries.sort_by_key(|e| std::cmp::Reverse(e.path.len()));
        }
        table.wildcard.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        table
    }

    /// The application serving `host` (as sent, possibly with `:port`) and `path`.
    pub fn resolve(&self, host: &str, path: &str) -> Option<&AppRoute> {
        let host = host.trim_end_matches('.');
        let bare = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
            _ => host,
        };
        // Host names are case-insensitive; compare in lower case without allocating when
        // the request is already lower case (the common case).
        let lower_host;
        let (host, bare) = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower_host = host.to_ascii_lowercase();
            let bare_len = bare.len();
            (lower_host.as_str(), &lower_host[..bare_len])
        } else {
            (host, bare)
        };
        for candidate in [host, bare] {
            if let Some(e) = self.exact.get(candidate).and_then(|entries| best(entries, path)) {
                return self.apps.get(e.app);
            }
        }
        for candidate in [host, bare] {
            for (suffix, entries) in &self.wildcard {
                if candidate.len() > suffix.len()
                    && candidate.ends_with(suffix.as_str())
                    && let Some(e) = best(entries, path)
                {
                    return self.apps.get(e.app);
                }
            }
        }
        None
    }

    /// Applications with a destination on `host` (any path), for cookies scoped to a host.
    pub fn on_host<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a AppRoute> + 'a {
        self.apps.iter().filter(move |r| {
            r.app.destinations.iter().any(|d| d.split('/').next().is_some_and(|h| h.eq_ignore_ascii_case(host)))
        })
    }

    /// The application with this audience tag.
    pub fn by_aud(&self, aud: &str) -> Option<&AppRoute> {
        self.by_aud.get(aud).and_then(|i| self.apps.get(*i))
    }

    /// The application with this id.
    pub fn by_id(&self, id: AppId) -> Option<&AppRoute> {
        self.by_id.get(&id).and_then(|i| self.apps.get(*i))
    }
}

/// The routing table in effect, swapped atomically on change. Readers never block.
#[derive(Debug, Clone)]
pub struct RoutesHandle(std::sync::Arc<arc_swap::ArcSwap<Routes>>);

impl RoutesHandle {
    /// Wraps a built table.
    pub fn new(routes: Routes) -> Self {
        Self(std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(routes)))
    }

    /// The current table.
    pub fn load(&self) -> std::sync::Arc<Routes> {
        self.0.load_full()
    }

    /// The current table, for the length of one request (no reference count taken).
    pub fn snapshot(&self) -> arc_swap::Guard<std::sync::Arc<Routes>> {
        self.0.load()
    }
}

/// Builds the table from the store.
pub async fn load(store: &gatehouse_store::Store) -> Result<Routes, gatehouse_store::StoreError> {
    use gatehouse_store::{AppStore as _, PolicyStore as _};
    let apps = store.all_apps().await?;
    let attachments = store.all_app_policies().await?;
    let groups = store.all_groups().await?;
    Ok(Routes::build(apps, &attachments, &groups))
}

/// Keeps `handle` current as applications, policies and groups change.
pub fn spawn_refresher(store: gatehouse_store::Store, handle: RoutesHandle) -> tokio::task::JoinHandle<()> {
    let bus = store.clone();
    crate::reload::spawn_reloader(
        &bus,
        |c| c == gatehouse_store::Change::Applications,
        move || {
            let (store, handle) = (store.clone(), handle.clone());
            async move {
                match load(&store).await {
                    Ok(routes) => handle.0.store(std::sync::Arc::new(routes)),
                    Err(e) => tracing::error!(error = %e, "could not reload applications; keeping the current ones"),
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::app::AppSettings;

    fn app(name: &str, destinations: &[&str]) -> Application {
        Application {
            id: AppId::generate(),
            name: name.to_owned(),
            domain: destinations[0].to_owned(),
            destinations: destinations.iter().map(|d| (*d).to_owned()).collect(),
            aud: format!("aud-{name}"),
            settings: AppSettings {
                session_duration: "24h".parse().unwrap_or_else(|e| panic!("{e}")),
                allowed_idps: vec![],
                auto_redirect_to_identity: false,
                same_site_cookie_attribute: None,
                http_only_cookie_attribute: true,
                path_cookie_attribute: false,
                enable_binding_cookie: false,
                service_auth_401_redirect: false,
                custom_deny_message: None,
            },
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn resolves_by_host_wildcard_and_path() {
        let routes = Routes::build(
            vec![
                app("wiki", &["wiki.example.com"]),
                app("wiki-admin", &["wiki.example.com/admin"]),
                app("apps", &["*.apps.example.com"]),
                app("deep", &["*.example.com/deep"]),
                app("local", &["app.localhost:8443"]),
                app("api", &["api.apps.example.com/v2"]),
            ],
            &[],
            &[],
        );
        let name = |host: &str, path: &str| routes.resolve(host, path).map(|r| r.app.name.clone());
        let cases = [
            ("wiki.example.com", "/", Some("wiki")),
            ("wiki.example.com:8080", "/page", Some("wiki")),
            ("WIKI.Example.COM", "/", Some("wiki")),
            ("wiki.example.com.", "/", Some("wiki")),
            ("wiki.example.com", "/admin", Some("wiki-admin")),
            ("wiki.example.com", "/admin/users", Some("wiki-admin")),
            ("wiki.example.com", "/administrator", Some("wiki")),
            ("grafana.apps.example.com", "/", Some("apps")),
            ("a.b.apps.example.com", "/", Some("apps")),
            ("apps.example.com", "/", None),
            ("api.apps.example.com", "/v2/x", Some("api")),
            ("api.apps.example.com", "/v1", Some("apps")),
            ("other.example.com", "/deep/x", Some("deep")),
            ("other.example.com", "/shallow", None),
            ("app.localhost:8443", "/", Some("local")),
            ("app.localhost:9000", "/", None),
            ("app.localhost", "/", None),
            ("unknown.test", "/", None),
            ("", "/", None),
        ];
        for (host, path, want) in cases {
            assert_eq!(name(host, path).as_deref(), want, "{host}{path}");
        }
        assert_eq!(routes.by_aud("aud-api").map(|r| r.app.name.as_str()), Some("api"));
        assert!(routes.by_aud("nope").is_none());
    }
}
