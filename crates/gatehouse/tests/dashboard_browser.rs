//! The dashboard and the demo in a real headless Chromium: `gatehouse demo` runs on port-0
//! listeners (gateway, Entra ID emulator, sample origin), and `tests/browser/dashboard.mjs`
//! drives Chromium through playwright-core: sign in to the dashboard with a token, add an
//! identity provider, build a policy with a SCIM group from the dropdown, sign in to the demo
//! application through the emulator's sign-in page and see the origin's identity page, be
//! refused on the other application (and the reverse for a Sales user), sign in with 252
//! groups (token overage), revoke the user and see their next request refused.
//!
//! Needs Node.js, Chromium (`/usr/bin/chromium`, Debian's `chromium` package) and `npm ci` in
//! `tests/browser` (the README's test command does it). Without them the test fails under CI
//! and is skipped loudly elsewhere. Set `GH_SCREENSHOTS=DIR` to keep screenshots of the pages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Whether Node.js, Chromium and playwright-core are there; fails under CI when not.
fn browser_available() -> bool {
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let chromium_ok = chromium().is_file();
    let installed = browser_dir().join("node_modules/playwright-core/package.json").is_file();
    let why = match (node, chromium_ok, installed) {
        (true, true, true) => return true,
        (false, _, _) => "Node.js (`node`) is not installed",
        (_, false, _) => "Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)",
        (_, _, false) => "tests/browser/node_modules is missing (run `npm ci` there)",
    };
    assert!(std::env::var_os("CI").is_none(), "the browser tests must run under CI: {why}");
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! SKIPPING the dashboard and demo browser tests: {why}.\n\
         !! Run ./scripts/test (it runs npm ci) with Node.js 20+ and Chromium.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    false
}

/// What `gatehouse demo` printed that the browser needs.
struct Demo {
    admin: String,
    token: String,
    team: String,
    wiki: String,
    sales: String,
}

fn parse(text: &str) -> Demo {
    let after = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|rest| rest.split_whitespace().next().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no {label} in:\n{text}"))
    };
    let team = text
        .lines()
        .find_map(|l| l.split_once("(team domain ").map(|(_, t)| t.trim_end_matches(')').to_owned()))
        .unwrap_or_else(|| panic!("no team domain in:\n{text}"));
    Demo {
        admin: after("Admin API ").trim_end_matches("/client/v4").to_owned(),
        token: after("Admin API token"),
        team,
        wiki: after("Engineering wiki"),
        sales: after("Sales dashboard"),
    }
}

/// Kills the demo when the test ends, also when an assertion fails first.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dashboard_and_demo_in_headless_chromium() {
    if !browser_available() {
        return;
    }
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
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                text.push_str(&line);
                text.push('\n');
            }
            Err(e) => {
                drop(child);
                panic!("gatehouse demo did not start ({e}):\n{text}");
            }
        }
    }
    let demo = parse(&text);
    let mut node = Command::new("node");
    node.arg(browser_dir().join("dashboard.mjs"))
        .env("GH_ADMIN", &demo.admin)
        .env("GH_TOKEN", &demo.token)
        .env("GH_TEAM", &demo.team)
        .env("GH_WIKI", &demo.wiki)
        .env("GH_SALES", &demo.sales)
        .env("CHROMIUM", chromium())
        .stdin(Stdio::null());
    let out = node.output().expect("run node");
    drop(child);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(out.status.success(), "browser flows failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("0 failed") && !stdout.contains("not ok"), "{stdout}");
    for flow in [
        "sign in with an API token",
        "add Entra ID",
        "build a policy with a SCIM group",
        "alice signs in to the wiki through the emulator",
        "alice is refused on the Sales dashboard",
        "revoke alice, and her next proxied request is refused",
        "bob (no mailbox) gets into the Sales dashboard",
        "dave, in 252 groups",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with("ok - ") && l.contains(flow)),
            "flow {flow:?} did not pass:\n{stdout}"
        );
    }
    // The policy was built from the SCIM dropdown, not by typing the object id: the demo's
    // provisioning cycle delivered the groups.
    assert!(!stdout.contains("no SCIM group provisioned"), "{stdout}");
}
