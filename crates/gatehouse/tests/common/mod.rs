//! Running the real `gatehouse` binary in tests: spawn `serve` on port 0, read the bound
//! addresses from its standard output, create tokens, and kill it like an operator would.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary under test.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    // Tests must not pick up the caller's gateway settings.
    for (k, _) in std::env::vars() {
        if k.starts_with("GATEHOUSE_") {
            c.env_remove(k);
        }
    }
    c.env("GATEHOUSE_LOG_LEVEL", "warn");
    c
}

/// Runs the binary to completion.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = bin();
    c.args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run gatehouse")
}

/// Spawns `cmd` with standard output piped and returns its lines through a channel, read by a
/// thread so the child never blocks on a full pipe.
pub fn spawn_lines(cmd: &mut Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn().expect("spawn gatehouse");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// A running `gatehouse serve`.
pub struct Server {
    pub child: Child,
    pub public: String,
    pub admin: String,
    _lines: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `serve` with `args` plus port-0 listeners, and waits until both are bound.
    pub fn start(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut c = bin();
        c.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--public-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(extra)
            .stderr(Stdio::inherit());
        for (k, v) in env {
            c.env(k, v);
        }
        let (mut child, rx) = spawn_lines(&mut c);
        let (mut public, mut admin) = (None, None);
        while public.is_none() || admin.is_none() {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("public listener: ") {
                        public = Some(a.to_owned());
                    } else if let Some(a) = line.strip_prefix("admin listener: ") {
                        admin = Some(a.to_owned());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    panic!("gatehouse serve did not report its listeners (exit: {status:?})");
                }
            }
        }
        Self { child, public: public.unwrap(), admin: admin.unwrap(), _lines: rx }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gatehouse api-token create`, returning the printed token.
pub fn create_token(data_dir: &Path, read_only: bool, env: &[(&str, &str)]) -> String {
    let dir = data_dir.to_str().unwrap();
    let mut args = vec!["api-token", "create", "--name", "test", "--data-dir", dir];
    if read_only {
        args.push("--read-only");
    }
    let out = run(&args, env);
    assert!(out.status.success(), "api-token create failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "api-token create must print only the token: {stdout:?}");
    lines[0].to_owned()
}

/// A client for the admin API.
pub struct AdminClient {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl AdminClient {
    pub fn new(server: &Server, token: &str) -> Self {
        Self { base: format!("{}/client/v4", server.admin), token: token.to_owned(), http: reqwest::Client::new() }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn account(&self) -> String {
        let (_, b) = self.call(reqwest::Method::GET, "/accounts", None).await;
        b["result"][0]["id"].as_str().expect("account id").to_owned()
    }
}
