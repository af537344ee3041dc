//! The gateway's configuration: one typed struct, layered as defaults → TOML file →
//! `GATEHOUSE_*` environment → command-line flags, validated once. Unknown keys are errors
//! (a typo must not silently fall back to a default); secrets are redacted in `Debug` and
//! in `gatehouse check`.
//!
//! Environment names: `GATEHOUSE_` + the key in upper case, nested keys joined with `__`
//! (`GATEHOUSE_LISTEN__PUBLIC`), plus the fixed aliases of the contract:
//! `GATEHOUSE_PUBLIC_LISTEN`, `GATEHOUSE_ADMIN_LISTEN`, `GATEHOUSE_STORE_URL`, and
//! `GATEHOUSE_SECRET_KEY` (the key itself).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use gatehouse_core::secret::SecretString;
use serde::{Deserialize, Serialize, Serializer};

/// Everything `serve`, `check` and `api-token create` read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the embedded store, the generated secret key and other state live.
    pub data_dir: PathBuf,
    /// The team domain as browsers reach it: scheme, host and port.
    pub public_url: url::Url,
    /// Listener addresses.
    pub listen: ListenConfig,
    /// The store.
    pub store: StoreConfig,
    /// File holding the at-rest encryption key (hex or base64 of 32 bytes).
    pub secret_key_file: Option<PathBuf>,
    /// The at-rest encryption key itself; normally from `GATEHOUSE_SECRET_KEY`.
    #[serde(serialize_with = "redact")]
    pub secret_key: Option<SecretKeyText>,
    /// Log filter (`info`, `debug`, `gatehouse=debug,info`, ...).
    pub log_level: String,
    /// Origins by hostname, in the form of `cloudflared` ingress rules.
    pub ingress: Vec<IngressRule>,
    /// Microsoft Entra ID settings.
    pub entra: EntraConfig,
    /// The data plane.
    pub proxy: ProxyConfig,
}

/// Data-plane settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// How long to wait for an origin's response headers before answering 504.
    pub origin_response_timeout: gatehouse_core::GoDuration,
    /// Record every proxied request in the access log, not only new sessions, refusals,
    /// bypasses and service-token requests.
    pub log_every_request: bool,
    /// Threads serving the public listener; 0 = one per CPU core.
    pub threads: usize,
    /// Whether each public-listener thread is kept on a CPU of its own.
    pub cpu_affinity: CpuAffinity,
}

/// Whether the public-listener threads are pinned to CPUs (`proxy.cpu_affinity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuAffinity {
    /// Pin thread *i* to the *i*-th CPU the process may run on, when there is exactly one
    /// thread per such CPU; otherwise leave placement to the kernel.
    Auto,
    /// Never pin.
    Off,
}

/// A secret read from configuration; `Debug` prints nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "String")]
pub struct SecretKeyText(pub SecretString);

impl From<String> for SecretKeyText {
    fn from(s: String) -> Self {
        Self(SecretString::new(s))
    }
}

fn redact<S: Serializer, T>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_some("[redacted]"),
        None => s.serialize_none(),
    }
}

/// Listener addresses.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Data plane: team domain and protected applications.
    pub public: SocketAddr,
    /// Admin API, dashboard, health and metrics. Keep it on loopback or a private network.
    pub admin: SocketAddr,
}

/// The store.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://...`; default: SQLite file `gatehouse.db` in `data_dir`.
    #[serde(serialize_with = "redact_url")]
    pub url: Option<String>,
}

fn redact_url<S: Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(u) => s.serialize_some(&redact_password(u)),
        None => s.serialize_none(),
    }
}

/// `url` with any password replaced by `[redacted]`.
pub fn redact_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("[redacted]"));
            u.to_string()
        }
        _ => raw.to_owned(),
    }
}

pub use gatehouse_proxy::ingress::IngressRule;

/// Microsoft Entra ID settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EntraConfig {
    /// Per-cloud host overrides, keyed by `azure_cloud` (`default`, `usgov`, `china`), so an
    /// emulator can stand in for Microsoft.
    #[serde(default)]
    pub clouds: BTreeMap<String, CloudEndpoints>,
}

/// Hosts of one Microsoft cloud.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CloudEndpoints {
    /// Login (authority) base URL, e.g. `https://login.microsoftonline.com`.
    pub login_url: url::Url,
    /// Microsoft Graph base URL, e.g. `https://graph.microsoft.com`.
    pub graph_url: url::Url,
}

/// Flags that override the file and environment (each `None` when not given).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--public-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// `--public-listen`, `--admin-listen`.
    #[serde(skip_serializing_if = "ListenOverrides::is_empty")]
    pub listen: ListenOverrides,
    /// `--store-url`.
    #[serde(skip_serializing_if = "StoreOverrides::is_empty")]
    pub store: StoreOverrides,
}

/// Listener flags.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ListenOverrides {
    /// `--public-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// `--admin-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
}

impl ListenOverrides {
    fn is_empty(&self) -> bool {
        self.public.is_none() && self.admin.is_none()
    }
}

/// Store flags.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreOverrides {
    /// `--store-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl StoreOverrides {
    fn is_empty(&self) -> bool {
        self.url.is_none()
    }
}

/// A configuration that cannot be used; exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, an environment variable or a flag could not be read as the expected type,
    /// or names an unknown key. One line per problem, naming the key and its source.
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Load(Vec<String>),
    /// The config file given with `--config` does not exist.
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    /// Values that parse but make no sense together.
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// A layer whose values are reported under a human name in errors.
struct Named {
    name: &'static str,
    inner: Serialized<serde_json::Value>,
}

impl Named {
    fn new(name: &'static str, value: serde_json::Value) -> Self {
        Self { name, inner: Serialized::defaults(value) }
    }
}

/// Sets `map[a][b][c] = value` for the dotted `path` `a.b.c`.
fn insert_path(map: &mut serde_json::Map<String, serde_json::Value>, path: &str, value: serde_json::Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = map.entry(head.to_owned()).or_insert_with(|| serde_json::Value::Object(Default::default()));
            if let serde_json::Value::Object(child) = child {
                insert_path(child, rest, value);
            }
        }
    }
}

impl figment::Provider for Named {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.name)
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        figment::Provider::data(&self.inner)
    }
}

/// One readable line per problem: `key: what is wrong (source)`.
fn describe(err: figment::Error) -> Vec<String> {
    err.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let key = key.strip_prefix("default.").unwrap_or(&key).to_owned();
            let source = match &e.metadata {
                Some(m) => match &m.source {
                    Some(figment::Source::File(p)) => format!(" (in {})", p.display()),
                    _ => format!(" (from {})", m.name),
                },
                None => String::new(),
            };
            let kind = match &e.kind {
                figment::error::Kind::UnknownField(field, _) => format!("unknown key `{field}`"),
                other => other.to_string(),
            };
            if key.is_empty() { format!("{kind}{source}") } else { format!("{key}: {kind}{source}") }
        })
        .collect()
}

/// Built-in defaults, the bottom layer.
fn defaults() -> serde_json::Value {
    serde_json::json!({
        "data_dir": "./gatehouse-data",
        "public_url": "http://auth.localhost:8080",
        "listen": { "public": "127.0.0.1:8080", "admin": "127.0.0.1:9090" },
        "store": {},
        "log_level": "info",
        "ingress": [],
        "entra": { "clouds": {} },
        "proxy": { "origin_response_timeout": "100s", "log_every_request": false, "threads": 0, "cpu_affinity": "auto" },
    })
}

/// An environment value as the type its key has in the defaults: `GATEHOUSE_PROXY__THREADS=4`
/// is the number 4 and `GATEHOUSE_PROXY__LOG_EVERY_REQUEST=true` a boolean, while keys whose
/// default is a string (or that have no default) stay strings. A value that does not parse
/// stays a string too, so serde names the key and the expected type.
fn typed_like_default(defaults: &serde_json::Value, key: &str, value: String) -> serde_json::Value {
    let default = key.split('.').try_fold(defaults, |v, k| v.get(k));
    match default {
        Some(serde_json::Value::Bool(_)) => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => serde_json::Value::Bool(true),
            "false" | "0" | "no" | "off" => serde_json::Value::Bool(false),
            _ => serde_json::Value::String(value),
        },
        Some(serde_json::Value::Number(_)) => value
            .trim()
            .parse::<u64>()
            .map(serde_json::Value::from)
            .or_else(|_| value.trim().parse::<i64>().map(serde_json::Value::from))
            .unwrap_or(serde_json::Value::String(value)),
        _ => serde_json::Value::String(value),
    }
}

/// Maps an environment variable name (prefix stripped, lower-cased) to a config key path.
fn env_key(name: &str) -> String {
    match name {
        "public_listen" => "listen.public".to_owned(),
        "admin_listen" => "listen.admin".to_owned(),
        "store_url" => "store.url".to_owned(),
        other => other.replace("__", "."),
    }
}

impl Config {
    /// Loads the layered configuration from `file` (if given), the process environment and
    /// `overrides`, then validates it.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_with_env(file, overrides, std::env::vars())
    }

    /// As [`Config::load`], with the environment given explicitly (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(defaults()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        // Environment values are taken as strings; typed parsing happens in serde, so
        // `GATEHOUSE_DATA_DIR=8080` is a directory named 8080, not a number.
        let vars: BTreeMap<String, String> = env
            .into_iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix("GATEHOUSE_")?.to_ascii_lowercase();
                // GATEHOUSE_CONFIG names the file itself (read by the CLI), not a key in it.
                (!key.is_empty() && key != "config").then(|| (env_key(&key), v))
            })
            .collect();
        let mut env_layer = serde_json::Map::new();
        let typed = defaults();
        for (key, value) in vars {
            let value = typed_like_default(&typed, &key, value);
            insert_path(&mut env_layer, &key, value);
        }
        fig = fig.merge(Named::new("environment GATEHOUSE_*", serde_json::Value::Object(env_layer)));
        let flags = serde_json::to_value(overrides).unwrap_or_default();
        fig = fig.merge(Named::new("command-line flags", flags));
        let config: Self = fig.extract().map_err(|e| ConfigError::Load(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut errs = Vec::new();
        let u = &self.public_url;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            errs.push(format!("public_url {u}: must be an http(s) URL with a host"));
        }
        if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
            errs.push(format!("public_url {u}: must be scheme://host[:port] with no path, query or fragment"));
        }
        if let Some(url) = &self.store.url
            && !(url.starts_with("sqlite:") || url.starts_with("postgres:") || url.starts_with("postgresql:"))
        {
            errs.push(format!("store.url {}: must start with sqlite: or postgres:", redact_password(url)));
        }
        if self.listen.public == self.listen.admin && self.listen.public.port() != 0 {
            errs.push("listen.public and listen.admin must differ".to_owned());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            errs.push(format!("log_level {:?}: {e}", self.log_level));
        }
        for name in self.entra.clouds.keys() {
            if gatehouse_core::idp::AzureCloud::parse(name).is_none() || name.is_empty() {
                errs.push(format!("entra.clouds.{name}: unknown cloud (use default, usgov or china)"));
            }
        }
        validate_ingress(&self.ingress, &mut errs);
        if errs.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(errs)) }
    }

    /// The store URL in effect.
    pub fn store_url(&self) -> String {
        match &self.store.url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("gatehouse.db").display()),
        }
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.store.url = Some(self.store_url());
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

fn validate_ingress(rules: &[IngressRule], errs: &mut Vec<String>) {
    if rules.is_empty() {
        return; // none configured: everything answers 404 until rules are set through the API
    }
    if let Err(e) = gatehouse_proxy::ingress::validate(rules) {
        errs.extend(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn load(toml: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::Invalid(vec![e.to_string()]))?;
        let path = dir.path().join("g.toml");
        if let Some(t) = toml {
            std::fs::write(&path, t).map_err(|e| ConfigError::Invalid(vec![e.to_string()]))?;
        }
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Config::load_with_env(toml.map(|_| path.as_path()), &Overrides::default(), env)
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = load(None, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.listen.public.to_string(), "127.0.0.1:8080");
        assert_eq!(c.listen.admin.to_string(), "127.0.0.1:9090");
        assert_eq!(c.public_url.as_str(), "http://auth.localhost:8080/");
        assert_eq!(c.store_url(), "sqlite://./gatehouse-data/gatehouse.db");
    }

    #[test]
    fn env_aliases_and_nested_names() {
        let c = load(
            None,
            &[
                ("GATEHOUSE_PUBLIC_LISTEN", "127.0.0.1:1"),
                ("GATEHOUSE_LISTEN__ADMIN", "127.0.0.1:2"),
                ("GATEHOUSE_STORE_URL", "postgres://u:p@h/db"),
                ("GATEHOUSE_SECRET_KEY", "k"),
                ("GATEHOUSE_ENTRA__CLOUDS__USGOV__LOGIN_URL", "http://127.0.0.1:3"),
                ("GATEHOUSE_ENTRA__CLOUDS__USGOV__GRAPH_URL", "http://127.0.0.1:4"),
                ("OTHER", "ignored"),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.listen.public.port(), 1);
        assert_eq!(c.listen.admin.port(), 2);
        assert_eq!(c.store.url.as_deref(), Some("postgres://u:p@h/db"));
        assert_eq!(c.entra.clouds.get("usgov").map(|e| e.graph_url.port()), Some(Some(4)));
        assert_eq!(format!("{:?}", c.secret_key), "Some(SecretKeyText([redacted]))");
        assert!(!c.to_redacted_toml().contains("u:p@"));
    }

    #[test]
    fn env_values_take_the_type_of_their_key() {
        let c = load(None, &[("GATEHOUSE_PROXY__THREADS", "3"), ("GATEHOUSE_PROXY__LOG_EVERY_REQUEST", "true")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.proxy.threads, 3);
        assert!(c.proxy.log_every_request);
        // A directory named like a number stays a directory.
        let c = load(None, &[("GATEHOUSE_DATA_DIR", "8080")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.data_dir, std::path::PathBuf::from("8080"));
        let err = load(None, &[("GATEHOUSE_PROXY__THREADS", "many")]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("proxy.threads"), "{err}");
    }

    #[test]
    fn cpu_affinity_is_auto_unless_turned_off_and_other_values_are_refused() {
        let c = load(None, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.proxy.cpu_affinity, CpuAffinity::Auto);
        let c = load(Some("[proxy]\ncpu_affinity = \"off\"\n"), &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.proxy.cpu_affinity, CpuAffinity::Off);
        let err = load(None, &[("GATEHOUSE_PROXY__CPU_AFFINITY", "sometimes")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("proxy.cpu_affinity") && err.contains("auto"), "{err}");
    }

    #[test]
    fn the_documented_ingress_samples_load() {
        let doc = include_str!("../../../docs/configuration.md");
        let section = doc.split("## Ingress rules").nth(1).unwrap_or_default();
        let samples: Vec<&str> =
            section.split("```toml").skip(1).filter_map(|b| b.split("```").next()).take(2).collect();
        assert_eq!(samples.len(), 2, "two TOML samples under Ingress rules");
        let c = load(Some(samples[0]), &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.ingress.len(), 3);
        // The second sample, with the catch-all the first ends with.
        let with_catch_all = format!("{}\n[[ingress]]\nservice = \"http_status:404\"\n", samples[1]);
        let c = load(Some(&with_catch_all), &[]).unwrap_or_else(|e| panic!("{e}"));
        let Ok(ingress) = gatehouse_proxy::ingress::validate(&c.ingress) else { panic!("invalid ingress") };
        let Some(gatehouse_proxy::ingress::Service::Origin(o)) =
            ingress.resolve("wiki.example.com", "/").map(|s| (**s).clone())
        else {
            panic!("no origin")
        };
        assert_eq!(o.connect_timeout, std::time::Duration::from_secs(5));
        assert_eq!(o.keep_alive_connections, 16);
        assert_eq!(o.keep_alive_timeout, gatehouse_proxy::ingress::DEFAULT_KEEP_ALIVE_TIMEOUT);
    }

    #[test]
    fn unknown_keys_everywhere_are_errors() {
        for (toml, env) in [
            (Some("nope = 1"), vec![]),
            (Some("[listen]\npublic = \"127.0.0.1:1\"\nadmin = \"127.0.0.1:2\"\nthird = \"x\""), vec![]),
            (Some("[[ingress]]\nservice = \"http_status:404\"\nbogus = 1"), vec![]),
            (None, vec![("GATEHOUSE_LISTEN__THIRD", "x")]),
            (Some("[entra.clouds.default]\nlogin_url = \"https://x\"\ngraph_url = \"https://y\"\nextra = 1"), vec![]),
        ] {
            let err = load(toml, &env).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("unknown key"), "{toml:?} {env:?}: {err}");
        }
        let err = load(Some("[entra.clouds.mars]\nlogin_url = \"https://x\"\ngraph_url = \"https://y\""), &[]);
        assert!(err.err().map(|e| e.to_string()).unwrap_or_default().contains("unknown cloud"));
    }

    proptest! {
        /// Arbitrary file contents never panic the loader.
        #[test]
        fn arbitrary_toml_never_panics(text in "\\PC{0,200}") {
            let _ = load(Some(&text), &[]);
        }

        /// Arbitrary environment values never panic the loader.
        #[test]
        fn arbitrary_env_never_panics(key in "[A-Z_]{1,20}", value in "\\PC{0,40}") {
            let name = format!("GATEHOUSE_{key}");
            let _ = load(None, &[(name.as_str(), value.as_str())]);
        }
    }
}
