//! Compatibility with the official Cloudflare Python SDK: `tests/sdk/test_identity_providers.py`
//! drives a real `gatehouse serve` through `cloudflare.Cloudflare(base_url=...)`.
//!
//! The interpreter is `TEST_PYTHON`, else `.venv-test/bin/python` at the workspace root (the
//! README's test command creates it). Without an interpreter that has the SDK, the test fails
//! under CI and is skipped loudly elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Server, create_token};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python_with_sdk() -> Option<PathBuf> {
    let candidate = std::env::var_os("TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv-test/bin/python"));
    let ok = Command::new(&candidate).args(["-c", "import cloudflare"]).output().is_ok_and(|o| o.status.success());
    if ok {
        return Some(candidate);
    }
    let why = format!("{} cannot import the cloudflare SDK", candidate.display());
    assert!(std::env::var_os("CI").is_none(), "the Python SDK test must run under CI: {why}");
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! SKIPPING the Cloudflare Python SDK test: {why}.\n\
         !! Run ./scripts/test (it installs the SDK) or set TEST_PYTHON.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    None
}

#[test]
fn cloudflare_python_sdk_round_trip() {
    let Some(python) = python_with_sdk() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = create_token(dir.path(), false, &[]);
    let read_only = create_token(dir.path(), true, &[]);
    let server = Server::start(dir.path(), &[], &[]);
    let out = Command::new(python)
        .arg(workspace_root().join("tests/sdk/test_identity_providers.py"))
        .env("SDK_BASE_URL", format!("{}/client/v4", server.admin))
        .env("SDK_API_TOKEN", &token)
        .env("SDK_READ_ONLY_TOKEN", &read_only)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "SDK round trip failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("checks passed"), "{stdout}");
}
