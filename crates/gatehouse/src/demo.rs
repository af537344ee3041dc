//! `gatehouse demo`: the product on one machine with embedded defaults. It starts the Entra ID
//! emulator with the demo tenant, a sample origin that shows what it receives (identity
//! headers and the decoded application token), a gateway on a fresh demo store pointed at the
//! emulator, an Entra ID identity provider with SCIM enabled and one provisioning cycle run,
//! two applications with group policies (one open to Engineering, one to Sales) and an admin
//! API token, then prints how to reach everything and who can sign in.
//!
//! Hostnames are under `*.localhost`, which browsers resolve to this machine without any DNS
//! change.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use gatehouse::config::{CloudEndpoints, Config, IngressRule, Overrides};
use gatehouse::gateway::Gateway;
use gatehouse_core::AppId;
use gatehouse_core::IdpId;
use gatehouse_core::app::{AppSettings, Application, generate_aud};
use gatehouse_core::idp::{IdentityProvider, IdentityUpdateBehavior, IdpConfig, IdpType, ScimSettings};
use gatehouse_core::policy::input::{RuleSet, StoredPolicy};
use gatehouse_core::policy::{PolicyDecision, Rule};
use gatehouse_core::secret::SecretKey;
use gatehouse_core::secret::{SecretString, generate_bearer_secret, hash_bearer_secret};
use gatehouse_entra_sim::{EntraSim, ProvisioningMode, RunningSim, Tenant};
use gatehouse_store::{AppPolicies, AppStore, IdpStore, OrgStore, PolicyStore, Store};

use crate::Failure;

mod origin;

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

/// The address to listen on: `addr` itself, or for port 0 a free port chosen now, so the team
/// domain's URL (which browsers and the emulator's redirects need) can name it.
fn resolve_port(raw: &str) -> Result<std::net::SocketAddr, Failure> {
    let addr: std::net::SocketAddr =
        raw.parse().map_err(|e| Failure::Usage(anyhow::anyhow!("--public-listen {raw:?}: {e}")))?;
    if addr.port() != 0 {
        return Ok(addr);
    }
    let probe = std::net::TcpListener::bind(addr).context("find a free port for the public listener")?;
    Ok(probe.local_addr().context("free port")?)
}

#[allow(clippy::print_stdout)]
pub async fn run(args: DemoArgs) -> Result<(), Failure> {
    let stop = crate::stop_signal();
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

    let public = resolve_port(&args.public_listen)?;
    let overrides = Overrides {
        data_dir: Some(args.data_dir.clone()),
        public_url: Some(format!("http://auth.localhost:{}", public.port())),
        listen: gatehouse::config::ListenOverrides {
            public: Some(public.to_string()),
            admin: Some(args.admin_listen.clone()),
        },
        ..Overrides::default()
    };
    let mut config = Config::load(None, &overrides).map_err(|e| Failure::Usage(anyhow::anyhow!("{e}")))?;
    crate::init_tracing(&config.log_level);

    // The tenant's app registration lists the default team domain's callback; register the
    // one this demo really uses (another port when 8080 is taken or port 0 was asked for).
    let callback = format!("{}/cdn-cgi/access/callback", config.public_url.origin().ascii_serialization());
    let tenant_text = DEMO_TENANT.replace("http://auth.localhost:8080/cdn-cgi/access/callback", &callback);
    let tenant = Tenant::from_toml_str(&tenant_text).context("demo tenant")?;
    let sim = EntraSim::start(tenant, args.entra_listen).await.context("start the Entra ID emulator")?;
    let url = |s: &str| url::Url::parse(s).with_context(|| format!("emulator URL {s}"));
    config.entra.clouds.insert(
        "default".to_owned(),
        CloudEndpoints { login_url: url(sim.login_url())?, graph_url: url(sim.graph_url())? },
    );
    let origin = origin::SampleOrigin::start().await.context("start the sample origin")?;
    let service = format!("http://{}", origin.addr);
    let rule = |host: Option<&str>, service: &str| -> Result<IngressRule, Failure> {
        let v = serde_json::json!({"hostname": host, "service": service});
        Ok(serde_json::from_value(v).context("ingress rule")?)
    };
    config.ingress =
        vec![rule(Some(WIKI_HOST), &service)?, rule(Some(SALES_HOST), &service)?, rule(None, "http_status:404")?];
    let key = SecretKey::generate().context("generate a key")?;
    let gateway = Gateway::start(&config, key, gatehouse::gateway::install_metrics()).await.context("start")?;
    let account = gateway.store.account_id().await.context("account")?;
    let token = crate::create_api_token(&gateway.store, "demo", false).await?;
    let (idp, scim_secret) = create_demo_idp(&gateway.store, &sim).await?;
    let team = config.public_url.origin().ascii_serialization();
    let port = public.port();
    let wiki = format!("{WIKI_HOST}:{port}");
    let sales = format!("{SALES_HOST}:{port}");
    let group = |name: &str| {
        sim.tenant()
            .read(|t| t.groups().find(|g| g.display_name == name).map(|g| g.id))
            .ok_or_else(|| anyhow::anyhow!("the demo tenant has no {name} group"))
    };
    let wiki_app = DemoApp {
        name: "Engineering wiki",
        host: &wiki,
        group_name: "Engineering",
        group_id: group("Engineering")?,
        deny_message: "The Engineering wiki is open to the Engineering group (and the groups nested in it) only.",
    };
    let sales_app = DemoApp {
        name: "Sales dashboard",
        host: &sales,
        group_name: "Sales",
        group_id: group("Sales")?,
        deny_message: "The Sales dashboard is open to the Sales group only.",
    };
    let wiki_aud = create_demo_app(&gateway.store, &wiki_app).await?;
    create_demo_app(&gateway.store, &sales_app).await?;
    let scim_url = format!("{team}/populations/{}/scim/v2", idp.id);
    let provisioning = match sim.provision(&scim_url, scim_secret.expose(), ProvisioningMode::Default).await {
        Ok(r) if r.failures == 0 => format!(
            "one cycle run: {} users and {} groups created, {} memberships",
            r.counts.users_created, r.counts.groups_created, r.counts.members_added
        ),
        Ok(r) => {
            format!("one cycle run: {} of {} requests failed (see Logs › SCIM provisioning)", r.failures, r.requests)
        }
        Err(e) => format!("not run: {e}"),
    };
    let admin = format!("http://{}", gateway.admin_addr);
    println!(
        "\nGatehouse demo is running.\n\n\
         \x20 Dashboard        {admin}/login#token={token}\n\
         \x20 Admin API        {admin}/client/v4   (health: {admin}/healthz, metrics: {admin}/metrics)\n\
         \x20 Public listener  http://{}        (team domain {})\n\
         \x20 Account id       {account}\n\
         \x20 Admin API token  {token}\n\n\
         Identity provider  \"{idp_name}\" (azureAD, id {idp_id}) signing in through the emulator at {login}\n\
         \x20 SCIM endpoint    {scim_url}\n\
         \x20 SCIM secret      {scim_secret}\n\
         \x20 SCIM             {provisioning}\n\n\
         Applications (the sample origin at {service} shows the identity it receives):\n\
         \x20 Engineering wiki http://{wiki}/   open to Engineering (alice through Platform, dave, erin)\n\
         \x20 Sales dashboard  http://{sales}/   open to Sales (bob)\n\
         Sign in to the wiki and land on your identity:\n\
         \x20 {team}/cdn-cgi/access/login/{wiki}?kid={wiki_aud}&redirect_url=/cdn-cgi/access/get-identity\n\
         Test the identity provider:\n\
         \x20 {team}/cdn-cgi/access/test-idp/{idp_id}\n\n\
         Demo users (password Passw0rd!):\n\
         \x20 alice@contoso.onmicrosoft.com  Platform (nested in Engineering), Gatehouse Admins: wiki yes, sales no\n\
         \x20 bob@contoso.onmicrosoft.com    Sales; no mailbox: wiki no, sales yes\n\
         \x20 carol@contoso.onmicrosoft.com  disabled: cannot sign in\n\
         \x20 dave@contoso.onmicrosoft.com   Engineering, Sales and 250 more groups (token overage): both\n\
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
    stop.await;
    gateway.shutdown().await;
    drop(origin);
    let _ = sim.shutdown().await;
    Ok(())
}

/// Host of the demo application open to Engineering.
const WIKI_HOST: &str = "wiki.localhost";
/// Host of the demo application open to Sales.
const SALES_HOST: &str = "sales.localhost";

/// One demo application: open to the members of one tenant group.
struct DemoApp<'a> {
    name: &'a str,
    host: &'a str,
    group_name: &'a str,
    group_id: uuid::Uuid,
    deny_message: &'a str,
}

/// A demo application on `app.host`, open to the tenant group `app.group_id` (and the groups
/// nested in it). Returns its audience tag.
async fn create_demo_app(store: &Store, app: &DemoApp<'_>) -> Result<String, Failure> {
    let now = gatehouse_core::now_millis();
    let record = Application {
        id: AppId::generate(),
        name: app.name.to_owned(),
        domain: app.host.to_owned(),
        destinations: vec![app.host.to_owned()],
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
            custom_deny_message: Some(app.deny_message.to_owned()),
        },
        created_at: now,
        updated_at: now,
    };
    store.insert_app(&record).await.context("create a demo application")?;
    let policy = StoredPolicy {
        id: uuid::Uuid::new_v4(),
        name: app.group_name.to_owned(),
        decision: PolicyDecision::Allow,
        rules: RuleSet {
            include: vec![Rule::AzureGroup { id: app.group_id.to_string(), idp: None }],
            ..RuleSet::default()
        },
        session_duration: None,
        reusable: false,
        created_at: now,
        updated_at: now,
    };
    store
        .set_app_policies(record.id, &AppPolicies { owned: vec![policy.clone()], links: vec![(policy.id, 1)] })
        .await
        .context("attach a demo policy")?;
    Ok(record.aud)
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
