//! Acknowledged writes survive: a graceful restart keeps everything, and so does `kill -9`
//! sent the moment a write was answered with 2xx — on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{AdminClient, Server, create_token};
use gatehouse_testkit::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

const KEY: &str = "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn idp(i: usize) -> Value {
    json!({
        "name": format!("Entra {i}"),
        "type": "azureAD",
        "config": {
            "client_id": "c37d0163-d4a4-43a8-8b1e-1a2b3c4d5e6f",
            "client_secret": format!("value~{i}"),
            "directory_id": "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f",
            "support_groups": true
        },
        "scim_config": {"enabled": i.is_multiple_of(2), "user_deprovision": true}
    })
}

/// Writes, kills -9 right after the last 2xx, restarts, and checks every write is there.
async fn writes_survive_kill9(data_dir: &std::path::Path, store_url: Option<&str>) {
    let mut env = vec![("GATEHOUSE_SECRET_KEY", KEY)];
    if let Some(url) = store_url {
        env.push(("GATEHOUSE_STORE_URL", url));
    }
    let extra: &[&str] = &[];
    let token = create_token(data_dir, false, &env);
    let server = Server::start(data_dir, extra, &env);
    let admin = AdminClient::new(&server, &token);
    let account = admin.account().await;
    let base = format!("/accounts/{account}/access/identity_providers");
    let mut ids = Vec::new();
    for i in 0..12 {
        let (s, b) = admin.call(Method::POST, &base, Some(idp(i))).await;
        assert_eq!(s, 200, "{b}");
        ids.push(b["result"]["id"].as_str().unwrap().to_owned());
    }
    let (s, _) = admin
        .call(Method::PUT, &format!("/accounts/{account}/access/organizations"), Some(json!({"name": "Durable"})))
        .await;
    assert_eq!(s, 200);
    let (s, _) = admin.call(Method::DELETE, &format!("{base}/{}", ids[0]), None).await;
    assert_eq!(s, 200);
    server.kill9();

    let server = Server::start(data_dir, extra, &env);
    let admin = AdminClient::new(&server, &token);
    assert_eq!(admin.account().await, account, "account id changed across restart");
    let (_, b) = admin.call(Method::GET, &format!("{base}?per_page=100"), None).await;
    let got: Vec<&str> = b["result"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(got, ids[1..].iter().map(String::as_str).collect::<Vec<_>>());
    let (_, b) = admin.call(Method::GET, &format!("/accounts/{account}/access/organizations"), None).await;
    assert_eq!(b["result"]["name"], json!("Durable"));
    assert!(server.terminate().success());

    // A graceful restart keeps everything too.
    let server = Server::start(data_dir, extra, &env);
    let admin = AdminClient::new(&server, &token);
    let (_, b) = admin.call(Method::GET, &format!("{base}/{}", ids[5]), None).await;
    assert_eq!(b["result"]["name"], json!("Entra 5"));
}

#[tokio::test]
async fn sqlite_writes_survive_kill9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    writes_survive_kill9(dir.path(), None).await;
}

#[tokio::test]
async fn postgres_writes_survive_kill9_and_restart() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    writes_survive_kill9(dir.path(), Some(db.url())).await;
}

#[tokio::test]
async fn a_different_secret_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[("GATEHOUSE_SECRET_KEY", KEY)]);
    assert!(server.terminate().success());
    let other = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let out = common::run(
        &[
            "serve",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--public-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[("GATEHOUSE_SECRET_KEY", other)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret key does not match"));
}
