//! Throughput and latency of authenticated proxying, side by side with nginx.
//!
//! Starts an origin (nginx answering a small static body), nginx as a plain reverse proxy to
//! it (keep-alive upstream, access log off), and a gateway in front of the same origin with an
//! application whose policy admits the benchmark user, who holds a valid session. Then drives
//! both proxies with `wrk` in alternating rounds, with byte-identical requests (the session
//! cookie included), and prints requests/s and p50/p99 latency side by side with the ratios.
//! Run through `scripts/bench-proxy` (which installs nginx and wrk if missing), or directly:
//! `cargo run --release -p gatehouse --example proxy_bench -- [seconds] [connections] [rounds]`.
//! With `BENCH_HOLD=1` it sets everything up, prints the addresses and headers, and waits
//! for Ctrl-C instead of running rounds (for profiling with other tools).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gatehouse::config::{Config, IngressRule, Overrides};
use gatehouse::gateway::Gateway;
use gatehouse_core::secret::SecretKey;
use gatehouse_proxy::keys::KeyRing;
use gatehouse_proxy::token::{self, AccessClaims};
use gatehouse_store::{KeyStore as _, SessionKind, SessionRecord, SessionStore as _, UserStore as _};
use serde_json::json;

/// The binary's allocator, so the gateway measured here is the one `gatehouse serve` runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TEAM: &str = "http://auth.bench";
const HOST: &str = "app.bench";
const GROUP: &str = "0a1b2c3d-0001-4e5f-8a9b-000000000001";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn nginx(dir: &Path, name: &str, workers: u32, main: &str, server: &str) -> Child {
    let conf = dir.join(format!("{name}.conf"));
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "worker_processes {workers};\n{main}daemon off;\nmaster_process on;\nuser root;\npid {d}/{name}.pid;\n\
             error_log {d}/{name}.err warn;\nevents {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/{name}-body;\n  proxy_temp_path {d}/{name}-proxy;\n\
             fastcgi_temp_path {d}/{name}-fcgi;\n  uwsgi_temp_path {d}/{name}-uwsgi;\n  scgi_temp_path {d}/{name}-scgi;\n\
             {server}\n}}\n"
        ),
    )
    .unwrap();
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| Path::new(p).exists()).expect("nginx");
    Command::new(nginx)
        .args(["-p", &d.to_string(), "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .spawn()
        .expect("start nginx")
}

async fn wait_for(port: u16) {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nothing listens on {port}");
}

#[derive(Debug, Clone, Copy, Default)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    /// Share of the machine's CPU time the hypervisor took during the run ("steal").
    steal: f64,
    /// The busiest proxy thread's (or worker's) share of the proxy's CPU time during the
    /// run: 1.0 when all connections went to one, 0.5 for an even split of two.
    busiest: f64,
}

/// The `/proc` directories of the gateway's public-listener threads (this process).
fn gateway_threads() -> Vec<std::path::PathBuf> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    tasks
        .filter_map(|t| t.ok().map(|t| t.path()))
        .filter(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.starts_with("gatehouse-publi")))
        .collect()
}

/// The `/proc` directories of an nginx master's worker processes.
fn nginx_workers(master: u32) -> Vec<std::path::PathBuf> {
    let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children")).unwrap_or_default();
    children.split_whitespace().map(|pid| Path::new("/proc").join(pid)).collect()
}

/// User + system clock ticks of each thread or process so far.
fn thread_ticks(dirs: &[std::path::PathBuf]) -> Vec<u64> {
    dirs.iter()
        .map(|d| {
            let stat = std::fs::read_to_string(d.join("stat")).unwrap_or_default();
            // Fields after the parenthesised name: utime and stime are the 12th and 13th.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            rest.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum()
        })
        .collect()
}

/// Rounds in which the hypervisor took less than this share of the CPU from either run.
const QUIET_STEAL: f64 = 0.10;

/// All CPUs' total and stolen time so far, in clock ticks, from `/proc/stat`.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total = fields.iter().take(8).sum();
    Some((total, *fields.get(7)?))
}

fn ms(v: &str) -> f64 {
    let v = v.trim();
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

fn wrk(port: u16, seconds: u32, connections: u32, headers: &[String], threads: &[std::path::PathBuf]) -> Run {
    let mut c = Command::new("wrk");
    c.args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency"]);
    for h in headers {
        c.args(["-H", h]);
    }
    let before = cpu_ticks();
    let busy_before = thread_ticks(threads);
    let out = c.arg(format!("http://127.0.0.1:{port}/")).output().expect("run wrk");
    let busy: Vec<u64> = thread_ticks(threads).iter().zip(&busy_before).map(|(a, b)| a.saturating_sub(*b)).collect();
    let all: u64 = busy.iter().sum();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut run = Run::default();
    if let (Some((t0, s0)), Some((t1, s1))) = (before, cpu_ticks()) {
        run.steal = (s1 - s0) as f64 / (t1 - t0).max(1) as f64;
    }
    run.busiest = busy.iter().max().map_or(f64::NAN, |m| *m as f64 / all.max(1) as f64);
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            run.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("50%") {
            run.p50_ms = ms(v);
        } else if let Some(v) = t.strip_prefix("99%") {
            run.p99_ms = ms(v);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            run.errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if t.starts_with("Socket errors:") {
            run.errors += t.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u64>().ok()).sum::<u64>();
        }
    }
    run
}

/// The middle value, or the mean of the two middle values of an even count.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n.is_multiple_of(2) { (v[n / 2 - 1] + v[n / 2]) / 2.0 } else { v[n / 2] }
}

#[tokio::main]
async fn main() {
    let args: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let seconds = args.first().copied().unwrap_or(10);
    let connections = args.get(1).copied().unwrap_or(32);
    let rounds = args.get(2).copied().unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();

    let origin_port = free_port();
    // Requests from the gateway carry the signed identity token (~900 bytes) and the identity
    // headers, ~1.1 kB in all: more than nginx's default 1 kB header buffer, which would make
    // the origin read twice and copy into a larger buffer for every gateway request only. An
    // origin behind an identity-aware proxy has room for the token; `BENCH_ORIGIN_HEADER_BUFFER=1k`
    // measures with nginx's default instead.
    let header_buffer = std::env::var("BENCH_ORIGIN_HEADER_BUFFER").unwrap_or_else(|_| "4k".into());
    let mut origin = nginx(
        dir.path(),
        "origin",
        1,
        "",
        &format!(
            "client_header_buffer_size {header_buffer};\n\
             server {{ listen 127.0.0.1:{origin_port} ; keepalive_requests 100000; \
             location / {{ default_type text/plain; return 200 \"hello from the origin\\n\"; }} }}"
        ),
    );
    let nginx_port = free_port();
    let workers: u32 = std::env::var("BENCH_NGINX_WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let mut proxy = nginx(
        dir.path(),
        "proxy",
        workers,
        // nginx leaves its workers unpinned unless told; `BENCH_NGINX_AFFINITY=1` pins them
        // one per CPU, as the gateway's `proxy.cpu_affinity = "auto"` does its threads.
        if std::env::var_os("BENCH_NGINX_AFFINITY").is_some() { "worker_cpu_affinity auto;\n" } else { "" },
        &format!(
            "upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 128; keepalive_requests 100000; }}\n\
             server {{ listen 127.0.0.1:{nginx_port}; keepalive_requests 100000; location / {{ proxy_pass http://origin; \
             proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host $host; \
             proxy_set_header X-Forwarded-For $remote_addr; }} }}"
        ),
    );
    wait_for(origin_port).await;
    wait_for(nginx_port).await;

    let vars = [
        ("GATEHOUSE_DATA_DIR".to_owned(), dir.path().join("gatehouse").display().to_string()),
        ("GATEHOUSE_PUBLIC_URL".to_owned(), TEAM.to_owned()),
        ("GATEHOUSE_PUBLIC_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_ADMIN_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_LOG_LEVEL".to_owned(), "warn".to_owned()),
        ("GATEHOUSE_PROXY__THREADS".to_owned(), std::env::var("BENCH_THREADS").unwrap_or_else(|_| "0".into())),
        (
            "GATEHOUSE_PROXY__CPU_AFFINITY".to_owned(),
            std::env::var("BENCH_CPU_AFFINITY").unwrap_or_else(|_| "auto".into()),
        ),
    ];
    let mut config = Config::load_with_env(None, &Overrides::default(), vars).unwrap();
    let rule = |host: Option<&str>, service: String| -> IngressRule {
        serde_json::from_value(json!({"hostname": host, "service": service})).unwrap()
    };
    config.ingress =
        vec![rule(Some(HOST), format!("http://127.0.0.1:{origin_port}")), rule(None, "http_status:404".into())];
    std::fs::create_dir_all(&config.data_dir).unwrap();
    // With the metrics recorder `gatehouse serve` installs: every request updates its counters
    // and latency histogram. `BENCH_NO_METRICS=1` leaves it out.
    let metrics =
        if std::env::var_os("BENCH_NO_METRICS").is_some() { None } else { gatehouse::gateway::install_metrics() };
    let gw = Gateway::start(&config, SecretKey::generate().unwrap(), metrics).await.unwrap();
    let store = gw.store.clone();

    // The application, its policy and a signed-in user, as sign-in would leave them.
    use gatehouse_core::app::{AppSettings, Application, generate_aud};
    use gatehouse_core::policy::PolicyDecision;
    use gatehouse_core::policy::input::{RuleSet, StoredPolicy};
    use gatehouse_store::{AppPolicies, AppStore as _, PolicyStore as _};
    let now = gatehouse_core::now_millis();
    let app = Application {
        id: gatehouse_core::AppId::generate(),
        name: "bench".into(),
        domain: HOST.into(),
        destinations: vec![HOST.into()],
        aud: generate_aud().unwrap(),
        settings: AppSettings {
            session_duration: "24h".parse().unwrap(),
            allowed_idps: vec![],
            auto_redirect_to_identity: false,
            same_site_cookie_attribute: None,
            http_only_cookie_attribute: true,
            path_cookie_attribute: false,
            enable_binding_cookie: false,
            service_auth_401_redirect: false,
            custom_deny_message: None,
        },
        created_at: now,
        updated_at: now,
    };
    store.insert_app(&app).await.unwrap();
    let policy = StoredPolicy {
        id: uuid::Uuid::new_v4(),
        name: "Engineering".into(),
        decision: PolicyDecision::Allow,
        rules: RuleSet {
            include: vec![gatehouse_core::policy::Rule::parse(&json!({"azureAD": {"id": GROUP}}), true).unwrap()],
            ..RuleSet::default()
        },
        session_duration: None,
        reusable: false,
        created_at: now,
        updated_at: now,
    };
    store
        .set_app_policies(app.id, &AppPolicies { owned: vec![policy.clone()], links: vec![(policy.id, 1)] })
        .await
        .unwrap();
    let identity = json!({"email": "bench@example.com", "groups": [{"id": GROUP, "name": "Engineering"}]});
    let user = store
        .record_sign_in(gatehouse_core::IdpId::generate(), "bench", "bench@example.com", "Bench", &identity, now)
        .await
        .unwrap();
    let nonce = "bench-session".to_owned();
    store
        .insert_session(&SessionRecord {
            nonce: nonce.clone(),
            user_id: user.id,
            kind: SessionKind::Org,
            app_id: None,
            created_at: now,
            expires_at: now + 86_400_000,
            revoked_at: None,
        })
        .await
        .unwrap();
    let ring = KeyRing::from_stored(&store.signing_keys().await.unwrap(), now).unwrap();
    let jwt = token::sign(
        &ring,
        &AccessClaims {
            aud: vec![app.aud.clone()],
            email: "bench@example.com".into(),
            exp: now / 1000 + 86_400,
            iat: now / 1000,
            nbf: now / 1000,
            iss: TEAM.into(),
            kind: "app".into(),
            identity_nonce: nonce,
            sub: user.id.to_string(),
            custom: Default::default(),
            country: None,
        },
    )
    .unwrap();

    let gw_port = gw.public_addr.port();
    let gh_headers = vec![format!("Host: {HOST}"), format!("Cookie: CF_Authorization={jwt}")];
    // Both proxies get the same request, session cookie included: nginx passes the cookie
    // on to the origin, the gateway checks it, strips it and sends the signed assertion.
    let ng_headers = gh_headers.clone();
    // Wait until the data plane serves the application, and check it really proxies.
    let client = reqwest::Client::new();
    for _ in 0..500 {
        let r = client
            .get(format!("http://127.0.0.1:{gw_port}/"))
            .header("host", HOST)
            .header("cookie", format!("CF_Authorization={jwt}"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            assert_eq!(r.text().await.unwrap(), "hello from the origin\n");
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    if std::env::var_os("BENCH_HOLD").is_some() {
        // For profiling: leave everything running and print what a load generator needs.
        println!("nginx proxy: 127.0.0.1:{nginx_port}  gateway: 127.0.0.1:{gw_port}  origin: 127.0.0.1:{origin_port}");
        for h in &gh_headers {
            println!("header: {h}");
        }
        println!("holding until interrupted (Ctrl-C)");
        let _ = tokio::signal::ctrl_c().await;
        rounds_done(gw, [&mut proxy, &mut origin]).await;
        return;
    }
    println!("warming up...");
    let (ng_threads, gh_threads) = (nginx_workers(proxy.id()), gateway_threads());
    let _ = wrk(nginx_port, 2, connections, &ng_headers, &ng_threads);
    let _ = wrk(gw_port, 2, connections, &gh_headers, &gh_threads);
    let (mut ng, mut gh) = (Vec::new(), Vec::new());
    let run = |port: u16, headers: Vec<String>, threads: Vec<std::path::PathBuf>| {
        tokio::task::spawn_blocking(move || wrk(port, seconds, connections, &headers, &threads))
    };
    for round in 1..=rounds {
        // Alternate which proxy goes first, so a slow spell on the machine falls on both.
        let (n, g) = if round % 2 == 1 {
            let n = run(nginx_port, ng_headers.clone(), ng_threads.clone()).await.unwrap();
            (n, run(gw_port, gh_headers.clone(), gh_threads.clone()).await.unwrap())
        } else {
            let g = run(gw_port, gh_headers.clone(), gh_threads.clone()).await.unwrap();
            (run(nginx_port, ng_headers.clone(), ng_threads.clone()).await.unwrap(), g)
        };
        println!(
            "round {round}: nginx {:>9.0} req/s p50 {:.2} ms p99 {:.2} ms | gatehouse {:>9.0} req/s p50 {:.2} ms p99 {:.2} ms | ratio {:.2} (errors {}/{}, steal {:.0}%/{:.0}%, busiest thread {:.0}%/{:.0}%)",
            n.rps,
            n.p50_ms,
            n.p99_ms,
            g.rps,
            g.p50_ms,
            g.p99_ms,
            g.rps / n.rps,
            n.errors,
            g.errors,
            n.steal * 100.0,
            g.steal * 100.0,
            n.busiest * 100.0,
            g.busiest * 100.0,
        );
        ng.push(n);
        gh.push(g);
    }
    let m = |v: &[Run], f: fn(&Run) -> f64| median(v.iter().map(f).collect());
    let (n_rps, g_rps) = (m(&ng, |r| r.rps), m(&gh, |r| r.rps));
    let (n_p50, g_p50) = (m(&ng, |r| r.p50_ms), m(&gh, |r| r.p50_ms));
    let (n_p99, g_p99) = (m(&ng, |r| r.p99_ms), m(&gh, |r| r.p99_ms));
    println!();
    println!("authenticated GET through the proxy, {connections} connections, {seconds} s x {rounds} rounds (medians)");
    println!("{:<28}{:>14}{:>12}{:>12}", "", "requests/s", "p50 ms", "p99 ms");
    println!("{:<28}{:>14.0}{:>12.3}{:>12.3}", "nginx (plain proxy)", n_rps, n_p50, n_p99);
    println!("{:<28}{:>14.0}{:>12.3}{:>12.3}", "gatehouse (session+policy)", g_rps, g_p50, g_p99);
    println!("{:<28}{:>14.2}{:>12.2}{:>12.2}", "ratio gatehouse/nginx", g_rps / n_rps, g_p50 / n_p50, g_p99 / n_p99);
    // Rounds run back to back share the machine's conditions; their ratios vary less than
    // the absolute figures when other work comes and goes.
    let ratios: Vec<f64> = ng.iter().zip(&gh).map(|(n, g)| g.rps / n.rps).collect();
    println!("{:<28}{:>14.2}", "median of per-round ratios", median(ratios));
    // On a virtual machine the hypervisor may take a large, changing share of the CPU
    // ("steal"), which swings single rounds by half or more; rounds where it took little
    // from both runs are also summarised on their own. Every round is printed above.
    let quiet: Vec<f64> = ng
        .iter()
        .zip(&gh)
        .filter(|(n, g)| n.steal < QUIET_STEAL && g.steal < QUIET_STEAL)
        .map(|(n, g)| g.rps / n.rps)
        .collect();
    let label = format!("  in rounds with <{:.0}% steal", QUIET_STEAL * 100.0);
    match quiet.len() {
        0 => println!("{label:<28}{:>14}", "none"),
        k => println!("{label:<28}{:>14.2}   ({k} of {rounds} rounds)", median(quiet)),
    }
    let errors: u64 = ng.iter().chain(&gh).map(|r| r.errors).sum();
    if errors > 0 {
        println!("warning: {errors} failed or non-2xx responses");
    }
    rounds_done(gw, [&mut proxy, &mut origin]).await;
}

/// Stops the gateway and the nginx instances.
async fn rounds_done(gw: Gateway, nginx: [&mut Child; 2]) {
    gw.shutdown().await;
    for child in nginx {
        // TERM to the master stops its workers too (a KILL would orphan them).
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let _ = child.wait();
    }
}
