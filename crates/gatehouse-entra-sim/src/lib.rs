//! A faithful local emulator of a Microsoft Entra ID tenant.
//!
//! The emulator lets Gatehouse — its demo, its tests, and users testing policies offline —
//! sign in, read groups and receive provisioning exactly as with Entra ID, without Microsoft:
//!
//! - **OIDC v2.0** on Entra's paths and shapes (`oidc`): discovery, authorize with a sign-in
//!   page a script can complete, token (`client_secret_post`/`_basic`, PKCE, refresh,
//!   client credentials), JWKS with rotation, logout, and AADSTS errors as Entra returns them.
//! - **Microsoft Graph** group calls (`graph`): `memberOf`, `transitiveMemberOf`,
//!   `getMemberObjects`, with paging, `$select`, permission checks and injectable 429s.
//! - **The provisioning service** as a SCIM client ([`provision`]): test connection,
//!   filter-before-create, Entra's PATCH dialects (default and `aadOptscim062020`),
//!   incremental cycles, a provisioning log.
//! - **Sovereign clouds** ([`cloud`]): global, US Government and China host rules, mapped
//!   onto loopback.
//!
//! The tenant is declared in a TOML file ([`Tenant`]) and can be edited while running
//! through [`RunningSim::tenant`] or the admin API. The binary calls [`serve`] and
//! [`provision_once`]; tests call [`EntraSim::start`] on port 0. The emulator is a test tool:
//! it must not be needed by the gateway at run time, and its admin API is unauthenticated.

mod aadsts;
mod admin;
mod clock;
pub mod cloud;
mod error;
mod graph;
mod html;
mod keys;
mod oidc;
pub mod provision;
mod secret;
mod server;
pub mod tenant;

use std::net::SocketAddr;
use std::path::Path;

pub use cloud::{Cloud, HostOverrides, SimUrls};
pub use error::SimError;
pub use provision::{
    ProvisioningCounts, ProvisioningLogEntry, ProvisioningMode, ProvisioningOperation, ProvisioningOutcome,
    ProvisioningReport, ProvisioningState, ResourceType,
};
pub use secret::Secret;
pub use server::{EntraSim, RunningSim};
pub use tenant::{Tenant, TenantHandle, ThrottleConfig};

/// Runs the emulator for a tenant file on `listen` until ctrl-c, printing where it is.
///
/// # Errors
/// Loading the tenant file, binding the listener, or a server failure.
#[allow(clippy::print_stdout)] // Printing the URLs is this command's output.
pub async fn serve(tenant_path: &Path, listen: SocketAddr) -> Result<(), SimError> {
    let mut sim = EntraSim::start_from_file(tenant_path, listen).await?;
    let tid = sim.tenant_id();
    println!("Entra ID emulator for tenant {tid} ({})", sim.tenant().read(|t| t.info().cloud));
    println!("  login URL:     {}", sim.login_url());
    println!("  issuer:        {}", sim.issuer());
    println!("  discovery:     {}", sim.discovery_url());
    println!("  Graph URL:     {}  (API under {})", sim.graph_url(), sim.graph_base_url());
    println!("  admin API:     {}", sim.admin_url());
    for (client_id, name) in
        sim.tenant().read(|t| t.apps().map(|a| (a.client_id, a.display_name.clone())).collect::<Vec<_>>())
    {
        println!("  app:           {name} (client id {client_id})");
    }
    println!("Press ctrl-c to stop.");
    tokio::select! {
        result = sim.wait() => result,
        signal = tokio::signal::ctrl_c() => {
            sim.stop_signal();
            signal.map_err(SimError::Serve)?;
            sim.shutdown().await
        }
    }
}

/// Runs one provisioning cycle for a tenant file against a SCIM endpoint, as Entra's
/// provisioning service would, and returns the report.
///
/// The id mapping and what was sent are kept in a state file next to the tenant file
/// (`<name>.provisioning.json`, see [`provision::state_file_for`]), so running it again after
/// editing the tenant file sends only the changes. Failed requests are in the report, not
/// errors. The token is never logged or stored.
///
/// # Errors
/// Loading the tenant file, an unusable SCIM URL, or reading/writing the state file.
pub async fn provision_once(
    tenant_path: &Path,
    scim_url: &str,
    token: &str,
    mode: ProvisioningMode,
) -> Result<ProvisioningReport, SimError> {
    let tenant = Tenant::load(tenant_path)?;
    let state_path = provision::state_file_for(tenant_path);
    let mut state = ProvisioningState::load(&state_path)?;
    let report = provision::run(&tenant, &mut state, scim_url, token, mode).await?;
    state.save(&state_path)?;
    Ok(report)
}
