//! `gatehouse demo` starts the emulator, a sample origin and a gateway wired to them, with an
//! Entra ID identity provider (SCIM on, one provisioning cycle run), two applications with
//! group policies and an admin token, and says how to reach them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

/// Kills the demo when the test ends, also when an assertion fails first.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_starts_everything_and_prints_how_to_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let (child, rx) = common::spawn_lines(common::bin().args(["demo", "--data-dir", data.to_str().unwrap()]).args([
        "--public-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--entra-listen",
        "127.0.0.1:0",
    ]));
    let child = KillOnDrop(child);
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
        text.contains("/cdn-cgi/access/login/wiki.localhost:") && text.contains("/cdn-cgi/access/test-idp/"),
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
    let policies: Vec<_> =
        apps["result"].as_array().unwrap().iter().map(|a| a["policies"][0]["name"].clone()).collect();
    assert_eq!(policies, [serde_json::json!("Engineering"), serde_json::json!("Sales")], "{apps}");

    // One provisioning cycle ran against the gateway's SCIM endpoint and delivered the tenant.
    let scim = field("SCIM  ");
    assert_eq!(scim, "one", "{text}");
    assert!(text.contains("4 users and 4 groups created"), "{text}");

    // The dashboard link signs in with the token in the fragment, which browsers never send.
    let dashboard = field("Dashboard");
    assert!(dashboard.ends_with(&format!("/login#token={token}")), "{dashboard}");
    let login = http.get(dashboard.split('#').next().unwrap()).send().await.unwrap();
    assert_eq!(login.status(), 200);
    assert!(login.text().await.unwrap().contains("name=\"token\""));

    // The applications are served by the sample origin behind the gateway: without a session
    // a request is sent to sign in on the team domain.
    let public = field("Public listener");
    let wiki = field("Engineering wiki");
    let wiki_host = wiki.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirects.get(format!("{public}/")).header("host", &wiki_host).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let team = text
        .lines()
        .find_map(|l| l.split_once("(team domain ").map(|(_, t)| t.trim_end_matches(')').to_owned()))
        .unwrap();
    assert!(location.starts_with(&format!("{team}/cdn-cgi/access/login/wiki.localhost")), "{location}");

    // The tenant has the user in more than 200 groups that the overage path needs.
    let tenant =
        gatehouse_entra_sim::Tenant::from_toml_str(include_str!("../../gatehouse-entra-sim/tenants/demo.toml"))
            .unwrap();
    let dave = tenant.user_by_upn("dave@contoso.onmicrosoft.com").unwrap().id;
    let dave_groups = tenant.transitive_groups(dave).len();
    assert!(dave_groups > 200, "dave is in {dave_groups} groups");
    drop(child);
}
