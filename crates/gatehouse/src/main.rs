//! The `gatehouse` command line. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or config.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use gatehouse::config::{Config, ListenOverrides, Overrides, StoreOverrides};
use gatehouse::gateway::Gateway;
use gatehouse::keyfile;
use gatehouse_core::TokenId;
use gatehouse_core::secret::{generate_bearer_secret, hash_bearer_secret};
use gatehouse_store::{ApiToken, OrgStore, Store, TokenStore};

mod demo;

/// mimalloc: the data plane allocates and frees small buffers on every request from several
/// threads, where it is markedly cheaper than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Writes to standard output, ignoring a closed pipe (`gatehouse check | head`).
pub(crate) fn out(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// `println!` that does not panic when standard output is closed.
macro_rules! outln {
    () => { out("\n") };
    ($($arg:tt)*) => { out(&format!("{}\n", format_args!($($arg)*))) };
}

/// Gatehouse: a self-hosted Zero Trust access gateway with Microsoft Entra ID.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (public and admin listeners).
    Serve(ServeArgs),
    /// Validate a configuration and print what it would serve.
    Check(ServeArgs),
    /// Manage admin API tokens.
    #[command(name = "api-token", subcommand)]
    ApiToken(ApiTokenCommand),
    /// Run a complete demonstration on this machine with embedded defaults.
    Demo(demo::DemoArgs),
    /// Run the Microsoft Entra ID emulator (OIDC v2, Graph, provisioning driver).
    #[command(name = "entra-sim", args_conflicts_with_subcommands = true)]
    EntraSim(EntraSimArgs),
}

#[derive(Debug, Args)]
struct EntraSimArgs {
    /// Tenant file (TOML); see docs/entra-sim.md.
    #[arg(long, value_name = "FILE", required = true)]
    tenant: Option<PathBuf>,
    /// Listen address of the emulator.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9080")]
    listen: std::net::SocketAddr,
    #[command(subcommand)]
    command: Option<EntraSimCommand>,
}

#[derive(Debug, Subcommand)]
enum EntraSimCommand {
    /// Run one provisioning cycle against a SCIM endpoint, as Entra's provisioning service
    /// does; later runs send only what changed in the tenant file.
    Provision(ProvisionArgs),
}

#[derive(Debug, Args)]
struct ProvisionArgs {
    /// Tenant file (TOML).
    #[arg(long, value_name = "FILE")]
    tenant: PathBuf,
    /// SCIM base URL, e.g. http://auth.localhost:8080/populations/<idp-id>/scim/v2
    #[arg(long, value_name = "URL")]
    scim_url: String,
    /// SCIM bearer secret.
    #[arg(long, value_name = "T")]
    token: String,
    /// Provisioning-service behaviour: default, or the aadOptscim062020 compliance flag.
    #[arg(long, value_name = "MODE", default_value = "default")]
    mode: String,
}

#[derive(Debug, Subcommand)]
enum ApiTokenCommand {
    /// Create a token and print it (once) on standard output; only its hash is stored.
    Create(TokenArgs),
}

/// Options shared by every command that touches the store.
#[derive(Debug, Clone, Args)]
struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE", env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the embedded store and generated key [default: ./gatehouse-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Store URL: sqlite://PATH or postgres://... [default: SQLite in the data directory].
    #[arg(long, value_name = "URL")]
    store_url: Option<String>,
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The team domain as browsers reach it [default: http://auth.localhost:8080].
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Public (data plane) listen address [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    public_listen: Option<String>,
    /// Admin (API, dashboard, metrics) listen address [default: 127.0.0.1:9090].
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
}

#[derive(Debug, Clone, Args)]
struct TokenArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// A label for the token.
    #[arg(long)]
    name: String,
    /// The token may only read (GET); writes are refused with 403.
    #[arg(long)]
    read_only: bool,
}

/// A failure with its exit code.
enum Failure {
    /// Bad usage or configuration: exit 2.
    Usage(anyhow::Error),
    /// Anything else: exit 1.
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Runtime(e)
    }
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.store.data_dir.clone(),
            public_url: self.public_url.clone(),
            listen: ListenOverrides { public: self.public_listen.clone(), admin: self.admin_listen.clone() },
            store: StoreOverrides { url: self.store.store_url.clone() },
        }
    }
}

impl StoreArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            store: StoreOverrides { url: self.store_url.clone() },
            ..Overrides::default()
        }
    }
}

fn load(file: Option<&std::path::Path>, overrides: &Overrides) -> Result<Config, Failure> {
    Config::load(file, overrides).map_err(|e| Failure::Usage(anyhow::anyhow!("{e}")))
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Check(args) => check(args).await,
        Command::ApiToken(ApiTokenCommand::Create(args)) => create_token(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::EntraSim(args) => entra_sim(args).await,
    }
}

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let config = load(args.store.config.as_deref(), &args.overrides())?;
    init_tracing(&config.log_level);
    let key = secret_key(&config)?;
    let stop = stop_signal();
    let gateway = Gateway::start(&config, key, gatehouse::gateway::install_metrics()).await.context("start")?;
    print_listeners(&gateway, &config);
    stop.await;
    tracing::info!("shutting down");
    gateway.shutdown().await;
    Ok(())
}

/// The listener lines on standard output; scripts and tests read the bound addresses here.
fn print_listeners(gateway: &Gateway, config: &Config) {
    outln!("public listener: http://{}", gateway.public_addr);
    outln!("admin listener: http://{}", gateway.admin_addr);
    outln!("team domain: {}", config.public_url.origin().ascii_serialization());
}

async fn entra_sim(args: EntraSimArgs) -> Result<(), Failure> {
    init_tracing("info");
    let usage = |e: gatehouse_entra_sim::SimError| Failure::Usage(anyhow::anyhow!("{e}"));
    match args.command {
        Some(EntraSimCommand::Provision(p)) => {
            let mode = p.mode.parse::<gatehouse_entra_sim::ProvisioningMode>().map_err(usage)?;
            let report = gatehouse_entra_sim::provision_once(&p.tenant, &p.scim_url, &p.token, mode).await.map_err(
                |e| match e {
                    e @ (gatehouse_entra_sim::SimError::ReadTenant { .. }
                    | gatehouse_entra_sim::SimError::ParseTenant { .. }
                    | gatehouse_entra_sim::SimError::InvalidTenant(_)
                    | gatehouse_entra_sim::SimError::InvalidScimUrl { .. }) => usage(e),
                    e => Failure::Runtime(anyhow::anyhow!("{e}")),
                },
            )?;
            outln!("{}", report.summary());
            for entry in report.failed() {
                outln!("  failed: {entry:?}");
            }
            if report.is_success() {
                Ok(())
            } else {
                Err(Failure::Runtime(anyhow::anyhow!("provisioning cycle had failures")))
            }
        }
        None => {
            let Some(tenant) = args.tenant else {
                return Err(Failure::Usage(anyhow::anyhow!("--tenant is required")));
            };
            gatehouse_entra_sim::serve(&tenant, args.listen).await.map_err(|e| match e {
                e @ (gatehouse_entra_sim::SimError::ReadTenant { .. }
                | gatehouse_entra_sim::SimError::ParseTenant { .. }
                | gatehouse_entra_sim::SimError::InvalidTenant(_)) => usage(e),
                e => Failure::Runtime(anyhow::anyhow!("{e}")),
            })
        }
    }
}

/// The at-rest key, generated on first use. A malformed key is a configuration error (2);
/// an unreadable or unwritable key file is a runtime failure (1).
fn secret_key(config: &Config) -> Result<gatehouse_core::secret::SecretKey, Failure> {
    match keyfile::resolve(config, true) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(Failure::Runtime(anyhow::anyhow!("no secret key could be created"))),
        Err(e @ keyfile::KeyError::Invalid { .. }) => Err(Failure::Usage(anyhow::anyhow!("secret key: {e}"))),
        Err(e) => Err(Failure::Runtime(anyhow::anyhow!("secret key: {e}"))),
    }
}

/// SIGTERM or Ctrl-C. The handlers are installed when this is called, not when the future
/// is first polled: a stop requested right after the listeners are announced is not lost
/// (and does not kill the process before it shuts down cleanly).
pub(crate) fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (term, interrupt) {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn check(args: ServeArgs) -> Result<(), Failure> {
    let config = load(args.store.config.as_deref(), &args.overrides())?;
    outln!("# configuration is valid; effective values (secrets masked):\n");
    out(&config.to_redacted_toml());
    outln!();
    outln!("# would serve:");
    outln!(
        "#   public listener  http://{}  (team domain {})",
        config.listen.public,
        config.public_url.origin().ascii_serialization()
    );
    outln!("#   admin listener   http://{}  (/client/v4, /healthz, /readyz, /metrics)", config.listen.admin);
    let store_url = config.store_url();
    let sqlite_path = store_url.strip_prefix("sqlite://").map(PathBuf::from);
    if sqlite_path.as_ref().is_some_and(|p| !p.exists()) {
        outln!("#   store            {} (not created yet; created on first start)", store_url);
        return Ok(());
    }
    let Some(key) = keyfile::resolve(&config, false).map_err(|e| Failure::Usage(e.into()))? else {
        outln!("#   store            {} (no secret key yet; generated on first start)", store_url);
        return Ok(());
    };
    let store = Store::connect(&store_url, key).await.context("open the store")?;
    let account = store.account_id().await.context("read the account")?;
    let idps = gatehouse_store::IdpStore::list_idps(
        &store,
        gatehouse_store::IdpFilter::default(),
        gatehouse_store::Page::new(1, 1),
    )
    .await
    .context("read identity providers")?;
    outln!("#   store            {} ({:?})", gatehouse::config::redact_password(&store_url), store.backend_kind());
    outln!("#   account          {account}");
    outln!("#   identity providers: {}", idps.total);
    store.close().await;
    Ok(())
}

async fn create_token(args: TokenArgs) -> Result<(), Failure> {
    let config = load(args.store.config.as_deref(), &args.store.overrides())?;
    init_tracing(&config.log_level);
    if args.name.trim().is_empty() {
        return Err(Failure::Usage(anyhow::anyhow!("--name must not be empty")));
    }
    let key = secret_key(&config)?;
    let store = Store::connect(&config.store_url(), key).await.context("open the store")?;
    store.account_id().await.context("initialise the account")?;
    let token = create_api_token(&store, args.name.trim(), args.read_only).await?;
    store.close().await;
    outln!("{token}");
    Ok(())
}

/// Creates a token in `store` and returns its bearer value.
async fn create_api_token(store: &Store, name: &str, read_only: bool) -> Result<String, Failure> {
    let secret = generate_bearer_secret("gth_").context("generate token")?;
    let record = ApiToken {
        id: TokenId::generate(),
        name: name.to_owned(),
        secret_hash: hash_bearer_secret(secret.expose()),
        read_only,
        created_at: gatehouse_core::now_millis(),
        last_used_at: None,
    };
    store.insert_token(&record).await.context("store the token")?;
    tracing::info!(token = %record.id, read_only, "API token created");
    Ok(secret.expose().to_owned())
}
