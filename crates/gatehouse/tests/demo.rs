//! `gatehouse demo` starts the emulator and a gateway wired to it, with an Entra ID identity
//! provider (SCIM on) and an admin token, and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

#[tokio::test]
async fn demo_starts_everything_and_prints_how_to_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let (mut child, rx) =
        common::spawn_lines(common::bin().args(["demo", "--data-dir", data.to_str().unwrap()]).args([
            "--public-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--entra-listen",
            "127.0.0.1:0",
        ]));
    let mut text = String::new();
    while !text.contains("Press Ctrl-C") {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("demo output");
        text.push_str(&line);
        text.push('\n');
    }
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|rest| rest.split_whitespace().next().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no {label} in:\n{text}"))
    };
    let api = field("Admin API ");
    let token = field("Admin API token");
    assert!(
        text.contains("/cdn-cgi/access/login/app.localhost:") && text.contains("/cdn-cgi/access/test-idp/"),
        "{text}"
    );
    for user in ["alice@", "bob@", "carol@", "dave@", "erin@"] {
        assert!(text.contains(user), "{user} missing:\n{text}");
    }
    let http = reqwest::Client::new();
    let accounts: serde_json::Value =
        http.get(format!("{api}/accounts")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let account = accounts["result"][0]["id"].as_str().unwrap().to_owned();
    let idps: serde_json::Value = http
        .get(format!("{api}/accounts/{account}/access/identity_providers"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let idp = &idps["result"][0];
    assert_eq!(idp["type"], "azureAD", "{idps}");
    assert_eq!(idp["scim_config"]["enabled"], true);
    assert_eq!(idp["config"]["support_groups"], true);
    let apps: serde_json::Value = http
        .get(format!("{api}/accounts/{account}/access/apps"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(apps["result"][0]["policies"][0]["name"], "Engineering", "{apps}");
    let _ = child.kill();
    let _ = child.wait();
}
