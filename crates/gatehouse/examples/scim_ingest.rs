//! SCIM ingestion at scale: the Entra emulator's provisioning driver pushes a tenant of
//! 10,000 users and 1,000 groups of 100 direct members each (every user in 10 groups) into a
//! gateway on SQLite, as Entra's initial cycle would (lookup, create, then member PATCHes),
//! followed by an incremental cycle with nothing to do. Prints total time, requests per
//! second and the process's peak resident memory (VmHWM; gateway and driver share it).
//!
//! `cargo run --release -p gatehouse --example scim_ingest -- [users] [groups] [members]`

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fmt::Write as _;
use std::time::Instant;

use gatehouse::config::{Config, Overrides};
use gatehouse::gateway::Gateway;
use gatehouse_core::secret::{SecretKey, hash_bearer_secret};
use gatehouse_core::{IdpId, TokenId};
use gatehouse_entra_sim::{ProvisioningMode, ProvisioningState, Tenant};
use gatehouse_store::{ApiToken, ScimStore as _, TokenStore as _};
use serde_json::json;

const TENANT_ID: &str = "c0ffee00-0000-4000-8000-0000000000be";

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A tenant file: each user is in `groups * members / users` groups, user `i` in groups
/// `(i / stride + k * step) % groups`, so every group gets the same number of members.
fn tenant(users: usize, groups: usize, members: usize) -> String {
    let per_user = (groups * members).div_ceil(users).max(1);
    let stride = (users / groups).max(1);
    let step = (groups / per_user).max(1);
    let mut t = format!("[tenant]\nid = \"{TENANT_ID}\"\n\n");
    for g in 0..groups {
        let _ = writeln!(t, "[[groups]]\ndisplay_name = \"Group {g:04}\"\n");
    }
    for i in 0..users {
        let mine: Vec<String> =
            (0..per_user).map(|k| format!("\"Group {:04}\"", (i / stride + k * step) % groups)).collect();
        let _ = writeln!(
            t,
            "[[users]]\nupn = \"user{i:05}@bench.onmicrosoft.com\"\ndisplay_name = \"User {i:05}\"\n\
             mail = \"user{i:05}@bench.example\"\ngiven_name = \"User\"\nsurname = \"{i:05}\"\ngroups = [{}]\n",
            mine.join(", ")
        );
    }
    let all: Vec<String> = (0..groups).map(|g| format!("\"Group {g:04}\"")).collect();
    let _ = writeln!(t, "[scim]\ngroups = [{}]", all.join(", "));
    t
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let users = args.first().copied().unwrap_or(10_000);
    let groups = args.get(1).copied().unwrap_or(1_000);
    let members = args.get(2).copied().unwrap_or(100);

    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("GATEHOUSE_DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("GATEHOUSE_PUBLIC_URL".to_owned(), "http://127.0.0.1".to_owned()),
        ("GATEHOUSE_PUBLIC_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_ADMIN_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
    ];
    let config = Config::load_with_env(None, &Overrides::default(), vars).unwrap();
    let gw = Gateway::start(&config, SecretKey::generate().unwrap(), None).await.unwrap();
    gw.store
        .insert_token(&ApiToken {
            id: TokenId::generate(),
            name: "bench".into(),
            secret_hash: hash_bearer_secret("gth_bench"),
            read_only: false,
            created_at: 0,
            last_used_at: None,
        })
        .await
        .unwrap();
    let account = gatehouse_store::OrgStore::account_id(&gw.store).await.unwrap();
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("http://{}/client/v4/accounts/{account}/access/identity_providers", gw.admin_addr))
        .bearer_auth("gth_bench")
        .json(&json!({
            "name": "Entra ID", "type": "azureAD",
            "config": {"client_id": "c37d0163-d4a4-43a8-8b1e-1a2b3c4d5e6f", "client_secret": "s", "directory_id": TENANT_ID},
            "scim_config": {"enabled": true, "user_deprovision": true, "identity_update_behavior": "automatic"},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let idp = created["result"]["id"].as_str().unwrap().to_owned();
    let secret = created["result"]["scim_config"]["secret"].as_str().unwrap().to_owned();
    let url = format!("http://{}/populations/{idp}/scim/v2", gw.public_addr);

    let started = Instant::now();
    let tenant = Tenant::from_toml_str(&tenant(users, groups, members)).unwrap();
    println!(
        "tenant: {users} users, {groups} groups of {members} members (built in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let mut state = ProvisioningState::default();
    for (name, initial) in [("initial", true), ("incremental", false)] {
        let t = Instant::now();
        let report = gatehouse_entra_sim::provision::run(&tenant, &mut state, &url, &secret, ProvisioningMode::Default)
            .await
            .unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{name} cycle: {} requests in {secs:.1} s = {:.0} requests/s; {} failed",
            report.requests,
            report.requests as f64 / secs.max(f64::EPSILON),
            report.failures
        );
        println!("  {}", report.summary());
        if initial {
            assert_eq!(report.failures, 0, "{:#?}", report.failed().take(3).collect::<Vec<_>>());
        }
    }
    let idp: IdpId = idp.parse().unwrap();
    let stored = gw.store.scim_list_users(idp, None, 0, 0).await.unwrap().total;
    let stored_groups = gw.store.scim_list_groups(idp, None, 0, 0).await.unwrap().total;
    println!("stored: {stored} users, {stored_groups} groups");
    match peak_rss_kib() {
        Some(kib) => println!("peak memory (VmHWM, gateway and driver in one process): {:.0} MiB", kib as f64 / 1024.0),
        None => println!("peak memory: /proc/self/status not available"),
    }
    gw.shutdown().await;
}
