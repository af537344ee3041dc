//! `gatehouse demo`: the product on one machine with embedded defaults. It starts a gateway
//! on a fresh demo store, creates an admin API token, and prints how to reach everything.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use gatehouse::config::{Config, Overrides};
use gatehouse::gateway::Gateway;
use gatehouse_core::secret::SecretKey;
use gatehouse_store::OrgStore;

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
}

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
    let config = Config::load(None, &overrides).map_err(|e| Failure::Usage(anyhow::anyhow!("{e}")))?;
    crate::init_tracing(&config.log_level);
    let key = SecretKey::generate().context("generate a key")?;
    let gateway = Gateway::start(&config, key, crate::install_metrics()).await.context("start")?;
    let account = gateway.store.account_id().await.context("account")?;
    let token = crate::create_api_token(&gateway.store, "demo", false).await?;
    let admin = format!("http://{}", gateway.admin_addr);
    println!(
        "\nGatehouse demo is running.\n\n\
         \x20 Admin API        {admin}/client/v4   (health: {admin}/healthz, metrics: {admin}/metrics)\n\
         \x20 Public listener  http://{}        (team domain {})\n\
         \x20 Account id       {account}\n\
         \x20 Admin API token  {token}\n\n\
         Try:\n\
         \x20 curl -s -H 'Authorization: Bearer {token}' {admin}/client/v4/accounts/{account}/access/identity_providers\n\n\
         Press Ctrl-C to stop.",
        gateway.public_addr,
        config.public_url.origin().ascii_serialization(),
    );
    crate::wait_for_signal().await;
    gateway.shutdown().await;
    Ok(())
}
