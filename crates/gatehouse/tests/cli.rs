//! The binary's contract: `--help` everywhere, exit codes, `check`, `api-token create`, the
//! generated secret key, and listeners on the configured addresses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{AdminClient, Server, create_token, run};
use reqwest::Method;
use serde_json::json;

#[test]
fn help_works_on_every_command() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["check", "--help"],
        vec!["api-token", "--help"],
        vec!["api-token", "create", "--help"],
        vec!["demo", "--help"],
        vec!["help", "serve"],
    ] {
        let out = run(&args, &[]);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
    }
    let serve = String::from_utf8(run(&["serve", "--help"], &[]).stdout).unwrap();
    for flag in ["--config", "--data-dir", "--store-url", "--public-url", "--public-listen", "--admin-listen"] {
        assert!(serve.contains(flag), "serve --help lacks {flag}");
    }
}

#[test]
fn usage_and_config_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let bad_file = dir.path().join("bad.toml");
    std::fs::write(&bad_file, "listen = { public = \"127.0.0.1:1\", admin = \"127.0.0.1:2\", extra = 1 }\n").unwrap();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["frobnicate"], vec![], "unrecognized subcommand"),
        (vec!["api-token", "create", "--data-dir", d], vec![], "--name"),
        (vec!["check", "--config", bad_file.to_str().unwrap()], vec![], "listen.extra: unknown key"),
        (vec!["check", "--config", "/nonexistent/gatehouse.toml"], vec![], "does not exist"),
        (vec!["check", "--public-listen", "nope"], vec![], "listen.public"),
        (vec!["check", "--public-url", "ftp://x"], vec![], "public_url"),
        (vec!["check", "--store-url", "mysql://x"], vec![], "store.url"),
        (vec!["check"], vec![("GATEHOUSE_NOPE", "1")], "nope: unknown key"),
        (vec!["check"], vec![("GATEHOUSE_ADMIN_LISTEN", "127.0.0.1:8080")], "must differ"),
        (vec!["serve", "--data-dir", d], vec![("GATEHOUSE_SECRET_KEY", "too-short")], "GATEHOUSE_SECRET_KEY"),
    ];
    for (args, env, words) in cases {
        let out = run(&args, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(words), "{args:?}: expected {words:?} in {stderr}");
    }
}

#[test]
fn runtime_failures_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // Nothing listens on port 1: the store is unreachable.
    let out =
        run(&["serve", "--data-dir", d, "--store-url", "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    // A listener address that is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["serve", "--data-dir", d, "--public-listen", &addr, "--admin-listen", "127.0.0.1:0"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&addr));
}

#[test]
fn check_prints_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let file = dir.path().join("gatehouse.toml");
    std::fs::write(
        &file,
        "public_url = \"https://auth.example.com\"\n\
         [[ingress]]\nhostname = \"app.example.com\"\nservice = \"http://127.0.0.1:3000\"\n\
         [[ingress]]\nservice = \"http_status:404\"\n",
    )
    .unwrap();
    let out = run(
        &["check", "--config", file.to_str().unwrap(), "--store-url", "postgres://gh:hunter2@db.internal/gh"],
        &[("GATEHOUSE_SECRET_KEY", key), ("GATEHOUSE_ADMIN_LISTEN", "127.0.0.1:9999")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The configuration is valid, but db.internal does not resolve here: a runtime failure.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("open the store") && !stderr.contains("hunter2"), "{stderr}");
    assert!(!text.contains(key) && !text.contains("hunter2"), "secret leaked: {text}");
    assert!(text.contains("secret_key = \"[redacted]\""), "{text}");
    assert!(
        text.contains("postgres://gh:%5Bredacted%5D@db.internal/gh") || text.contains("[redacted]@db.internal"),
        "{text}"
    );
    assert!(text.contains("public_url = \"https://auth.example.com/\""), "{text}");
    assert!(text.contains("admin = \"127.0.0.1:9999\""), "env overrides default: {text}");
    assert!(text.contains("hostname = \"app.example.com\""), "{text}");

    let bad = dir.path().join("bad-ingress.toml");
    std::fs::write(&bad, "[[ingress]]\nhostname = \"a.example.com\"\nservice = \"http://127.0.0.1:1\"\n").unwrap();
    let out = run(&["check", "--config", bad.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("catch-all"));
}

#[test]
fn flags_override_env_which_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.toml");
    std::fs::write(&file, "data_dir = \"/from/file\"\npublic_url = \"https://file.example.com\"\n[listen]\npublic = \"127.0.0.1:8181\"\nadmin = \"127.0.0.1:9191\"\n").unwrap();
    let f = file.to_str().unwrap();
    let out = run(
        &["check", "--config", f, "--data-dir", "/from/flag"],
        &[("GATEHOUSE_DATA_DIR", "/from/env"), ("GATEHOUSE_PUBLIC_URL", "https://env.example.com")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("data_dir = \"/from/flag\""), "{text}");
    assert!(text.contains("public_url = \"https://env.example.com/\""), "{text}");
    assert!(text.contains("admin = \"127.0.0.1:9191\""), "{text}");
    let out = run(&["check"], &[("GATEHOUSE_CONFIG", f)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("data_dir = \"/from/file\""));
}

#[tokio::test]
async fn serve_generates_a_private_key_and_tokens_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[]);
    let key_file = dir.path().join("secret.key");
    assert!(key_file.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Health on the admin listener; the public listener answers the catch-all.
    let health = reqwest::get(format!("{}/healthz", server.admin)).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("{}/readyz", server.admin)).await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = reqwest::get(format!("{}/metrics", server.admin)).await.unwrap();
    assert_eq!(metrics.status(), 200);
    let public = reqwest::get(format!("{}/anything", server.public)).await.unwrap();
    assert_eq!(public.status(), 404);

    let rw = create_token(dir.path(), false, &[]);
    let ro = create_token(dir.path(), true, &[]);
    assert!(rw.starts_with("gth_") && rw != ro);
    let admin = AdminClient::new(&server, &rw);
    let (s, b) = admin.call(Method::GET, "/user/tokens/verify", None).await;
    assert_eq!((s, b["result"]["status"].clone()), (200, json!("active")));
    let account = admin.account().await;
    let ro_client = AdminClient::new(&server, &ro);
    let (s, b) = ro_client
        .call(Method::PUT, &format!("/accounts/{account}/access/organizations"), Some(json!({"name": "x"})))
        .await;
    assert_eq!((s, b["errors"][0]["code"].clone()), (403, json!(10000)));
    // The token is stored hashed: it does not appear in the database files.
    let mut bytes = std::fs::read(dir.path().join("gatehouse.db")).unwrap_or_default();
    bytes.extend(std::fs::read(dir.path().join("gatehouse.db-wal")).unwrap_or_default());
    assert!(!bytes.windows(rw.len()).any(|w| w == rw.as_bytes()), "token stored in plaintext");
    assert!(server.terminate().success());
}

#[tokio::test]
async fn certs_follow_an_on_demand_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[]);
    let token = create_token(dir.path(), false, &[]);
    let certs = || async {
        reqwest::get(format!("{}/cdn-cgi/access/certs", server.public))
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let before = certs().await;
    assert_eq!(before["keys"].as_array().map(Vec::len), Some(1), "{before}");
    let first_kid = before["public_cert"]["kid"].clone();
    assert_eq!(before["keys"][0]["kid"], first_kid);

    let admin = AdminClient::new(&server, &token);
    let account = admin.account().await;
    let (s, b) = admin.call(Method::POST, &format!("/accounts/{account}/access/keys/rotate"), None).await;
    assert_eq!(s, 200, "{b}");
    // The data plane hears the change; poll with a deadline rather than sleeping blindly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let after = loop {
        let doc = certs().await;
        if doc["keys"].as_array().map(Vec::len) == Some(2) || std::time::Instant::now() > deadline {
            break doc;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(after["keys"].as_array().map(Vec::len), Some(2), "{after}");
    assert_ne!(after["public_cert"]["kid"], first_kid);
    assert_eq!(after["public_certs"].as_array().map(Vec::len), Some(2));
}

fn demo_tenant() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gatehouse-entra-sim/tenants/demo.toml")
}

#[tokio::test]
async fn entra_sim_command_serves_the_tenant() {
    let tenant = demo_tenant();
    let (mut child, rx) = common::spawn_lines(common::bin().args([
        "entra-sim",
        "--tenant",
        tenant.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]));
    let discovery = loop {
        let line = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("emulator printed its URLs");
        if let Some(url) = line.trim().strip_prefix("discovery:") {
            break url.trim().to_owned();
        }
    };
    let doc: serde_json::Value = reqwest::get(&discovery).await.unwrap().json().await.unwrap();
    assert!(doc["issuer"].as_str().is_some_and(|i| i.ends_with("/v2.0")), "{doc}");
    assert!(doc["authorization_endpoint"].as_str().is_some_and(|u| u.ends_with("/oauth2/v2.0/authorize")));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn entra_sim_provision_reports_failures_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = dir.path().join("tenant.toml");
    std::fs::copy(demo_tenant(), &tenant).unwrap();
    let t = tenant.to_str().unwrap();
    // Nothing listens on port 1: every request fails, the command says so and exits 1.
    let out = run(
        &["entra-sim", "provision", "--tenant", t, "--scim-url", "http://127.0.0.1:1/scim/v2", "--token", "x"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("failures"));
    let out = run(
        &[
            "entra-sim",
            "provision",
            "--tenant",
            t,
            "--scim-url",
            "http://127.0.0.1:1/scim/v2",
            "--token",
            "x",
            "--mode",
            "weird",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["entra-sim", "--tenant", "/nonexistent.toml", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
