//! `gatehouse demo`: the product on one machine with embedded defaults. It starts the Entra ID
//! emulator with the demo tenant, a gateway on a fresh demo store pointed at the emulator, an
//! Entra ID identity provider with SCIM enabled, and an admin API token, then prints how to
//! reach everything and who can sign in.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use gatehouse::config::{CloudEndpoints, Config, Overrides};
use gatehouse::gateway::Gateway;
use gatehouse_core::AppId;
use gatehouse_core::IdpId;
use gatehouse_core::app::{AppSettings, Application, generate_aud};
use gatehouse_core::idp::{IdentityProvider, IdentityUpdateBehavior, IdpConfig, IdpType, ScimSettings};
use gatehouse_core::policy::input::{RuleSet, StoredPolicy};
use gatehouse_core::policy::{PolicyDecision, Rule};
use gatehouse_core::secret::SecretKey;
use gatehouse_core::secret::{SecretString, generate_bearer_secret, hash_bearer_secret};
use gatehouse_entra_sim::{EntraSim, RunningSim, Tenant};
use gatehouse_store::{AppPolicies, AppStore, IdpStore, OrgStore, PolicyStore, Store};

use crate::Failure;

/// Options of `gatehouse demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Directory for the demo's state; emptied at start [default: ./gatehouse-demo].
    #[arg(long, value_name = "DIR", default_value = "./gatehouse-demo")]
    data_dir: PathBuf,
    /// Public listen address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    public_listen: String,
    /// Admin listen address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    admin_listen: String,
    /// Listen address of the built-in Entra ID emulator.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9080")]
    entra_listen: std::net::SocketAddr,
}

/// The demo tenant shipped with the emulator (docs/entra-sim.md).
const DEMO_TENANT: &str = include_str!("../../gatehouse-entra-sim/tenants/demo.toml");

#[allow(clippy::print_stdout)]
pub async fn run(args: DemoArgs) -> Result<(), Failure> {
    if args.data_dir.exists() {
        let marker = args.data_dir.join(".gatehouse-demo");
        if !marker.exists() {
            return Err(Failure::Usage(anyhow::anyhow!(
                "{} exists and was not created by 'gatehouse demo'; choose another --data-dir",
                args.data_dir.display()
            )));
        }
        std::fs::remove_dir_all(&args.data_dir).context("reset the demo directory")?;
    }
    std::fs::create_dir_all(&args.data_dir).context("create the demo directory")?;
    std::fs::write(args.data_dir.join(".gatehouse-demo"), b"").context("mark the demo directory")?;

    let overrides = Overrides {
        data_dir: Some(args.data_dir.clone()),
        listen: gatehouse::config::ListenOverrides {
            public: Some(args.public_listen.clone()),
            admin: Some(args.admin_listen.clone()),
        },
        ..Overrides::default()
    };
    let mut config = Config::load(None, &overrides).map_err(|e| Failure::Usage(anyhow::anyhow!("{e}")))?;
    crate::init_tracing(&config.log_level);

    let tenant = Tenant::from_toml_str(DEMO_TENANT).context("demo tenant")?;
    let sim = EntraSim::start(tenant, args.entra_listen).await.context("start the Entra ID emulator")?;
    let url = |s: &str| url::Url::parse(s).with_context(|| format!("emulator URL {s}"));
    config.entra.clouds.insert(
        "default".to_owned(),
        CloudEndpoints { login_url: url(sim.login_url())?, graph_url: url(sim.graph_url())? },
    );
    let key = SecretKey::generate().context("generate a key")?;
    let gateway = Gateway::start(&config, key, crate::install_metrics()).await.context("start")?;
    let account = gateway.store.account_id().await.context("account")?;
    let token = crate::create_api_token(&gateway.store, "demo", false).await?;
    let (idp, scim_secret) = create_demo_idp(&gateway.store, &sim).await?;
    let team = config.public_url.origin().ascii_serialization();
    let app_host = format!("app.localhost:{}", config.public_url.port_or_known_default().unwrap_or(80));
    let aud = create_demo_app(&gateway.store, &sim, &app_host).await?;
    let admin = format!("http://{}", gateway.admin_addr);
    println!(
        "\nGatehouse demo is running.\n\n\
         \x20 Admin API        {admin}/client/v4   (health: {admin}/healthz, metrics: {admin}/metrics)\n\
         \x20 Public listener  http://{}        (team domain {})\n\
         \x20 Account id       {account}\n\
         \x20 Admin API token  {token}\n\n\
         Identity provider  \"{idp_name}\" (azureAD, id {idp_id}) signing in through the emulator at {login}\n\
         \x20 SCIM endpoint    {team}/populations/{idp_id}/scim/v2\n\
         \x20 SCIM secret      {scim_secret}\n\n\
         Sign in to the demo application (Engineering only):\n\
         \x20 {team}/cdn-cgi/access/login/{app_host}?kid={aud}&redirect_url=/cdn-cgi/access/get-identity\n\
         Test the identity provider:\n\
         \x20 {team}/cdn-cgi/access/test-idp/{idp_id}\n\n\
         Demo users (password Passw0rd!):\n\
         \x20 alice@contoso.onmicrosoft.com  Platform (nested in Engineering), Gatehouse Admins\n\
         \x20 bob@contoso.onmicrosoft.com    Sales; no mailbox\n\
         \x20 carol@contoso.onmicrosoft.com  disabled: cannot sign in\n\
         \x20 dave@contoso.onmicrosoft.com   Engineering, Sales and 250 more groups (token overage)\n\
         \x20 erin@contoso.onmicrosoft.com   Engineering\n\n\
         Try:\n\
         \x20 curl -s -H 'Authorization: Bearer {token}' {admin}/client/v4/accounts/{account}/access/identity_providers\n\n\
         Press Ctrl-C to stop.",
        gateway.public_addr,
        team,
        idp_name = idp.name,
        idp_id = idp.id,
        login = sim.login_url(),
        scim_secret = scim_secret.expose(),
    );
    crate::wait_for_signal().await;
    gateway.shutdown().await;
    let _ = sim.shutdown().await;
    Ok(())
}

/// The demo application on `app_host`, open to the tenant's Engineering group (and its
/// nested groups). Returns its audience tag.
async fn create_demo_app(store: &Store, sim: &RunningSim, app_host: &str) -> Result<String, Failure> {
    let engineering = sim
        .tenant()
        .read(|t| t.groups().find(|g| g.display_name == "Engineering").map(|g| g.id))
        .ok_or_else(|| anyhow::anyhow!("the demo tenant has no Engineering group"))?;
    let now = gatehouse_core::now_millis();
    let app = Application {
        id: AppId::generate(),
        name: "Demo application".to_owned(),
        domain: app_host.to_owned(),
        destinations: vec![app_host.to_owned()],
        aud: generate_aud().context("audience tag")?,
        settings: AppSettings {
            session_duration: "8h".parse().context("duration")?,
            allowed_idps: Vec::new(),
            auto_redirect_to_identity: false,
            same_site_cookie_attribute: None,
            http_only_cookie_attribute: true,
            path_cookie_attribute: false,
            enable_binding_cookie: false,
            service_auth_401_redirect: false,
            custom_deny_message: Some("The demo application is open to the Engineering group only.".to_owned()),
        },
        created_at: now,
        updated_at: now,
    };
    store.insert_app(&app).await.context("create the demo application")?;
    let policy = StoredPolicy {
        id: uuid::Uuid::new_v4(),
        name: "Engineering".to_owned(),
        decision: PolicyDecision::Allow,
        rules: RuleSet {
            include: vec![Rule::AzureGroup { id: engineering.to_string(), idp: None }],
            ..RuleSet::default()
        },
        session_duration: None,
        reusable: false,
        created_at: now,
        updated_at: now,
    };
    store
        .set_app_policies(app.id, &AppPolicies { owned: vec![policy.clone()], links: vec![(policy.id, 1)] })
        .await
        .context("attach the demo policy")?;
    Ok(app.aud)
}

/// The identity provider for the demo tenant's "Gatehouse" app registration, with SCIM on.
async fn create_demo_idp(store: &Store, sim: &RunningSim) -> Result<(IdentityProvider, SecretString), Failure> {
    let (client_id, secret) = sim
        .tenant()
        .read(|t| t.apps().next().map(|a| (a.client_id, a.secrets.first().map(|s| s.value().expose().to_owned()))))
        .ok_or_else(|| anyhow::anyhow!("the demo tenant has no app registration"))?;
    let secret = secret.ok_or_else(|| anyhow::anyhow!("the demo app registration has no secret"))?;
    let directory_id = sim.tenant_id();
    let scim_secret = generate_bearer_secret("ghscim_").context("SCIM secret")?;
    let now = gatehouse_core::now_millis();
    let idp = IdentityProvider {
        id: IdpId::generate(),
        name: "Contoso Entra ID (emulated)".to_owned(),
        kind: IdpType::AzureAd,
        config: IdpConfig {
            client_id: client_id.to_string(),
            directory_id: Some(directory_id),
            support_groups: true,
            pkce_enabled: true,
            claims: vec!["employee_id".to_owned()],
            ..IdpConfig::default()
        },
        client_secret: SecretString::new(secret),
        scim: ScimSettings {
            enabled: true,
            user_deprovision: true,
            seat_deprovision: true,
            identity_update_behavior: IdentityUpdateBehavior::Automatic,
            ..ScimSettings::default()
        },
        scim_secret_hash: Some(hash_bearer_secret(scim_secret.expose())),
        created_at: now,
        updated_at: now,
    };
    store.insert_idp(&idp).await.context("create the demo identity provider")?;
    Ok((idp, scim_secret))
}
