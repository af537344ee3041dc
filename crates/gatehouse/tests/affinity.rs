//! `proxy.cpu_affinity`: where the public-listener threads may run, read back from `/proc`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse::config::{Config, Overrides};
use gatehouse::gateway::{Gateway, allowed_cpus};
use gatehouse_core::secret::SecretKey;

/// Expands a `/proc` CPU list such as `0-2,5`.
fn cpu_list(s: &str) -> Vec<usize> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .flat_map(|p| match p.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().unwrap()..=b.parse().unwrap()).collect::<Vec<_>>(),
            None => vec![p.parse().unwrap()],
        })
        .collect()
}

/// The CPUs each of this process's public-listener threads may run on, sorted by thread.
fn public_thread_cpus() -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with("gatehouse-publi") {
            continue;
        }
        let status = std::fs::read_to_string(path.join("status")).unwrap();
        let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim();
        out.push(cpu_list(list));
    }
    out.sort();
    out
}

async fn start(threads: usize, affinity: &str) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("GATEHOUSE_DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("GATEHOUSE_PUBLIC_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_ADMIN_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_PROXY__THREADS".to_owned(), threads.to_string()),
        ("GATEHOUSE_PROXY__CPU_AFFINITY".to_owned(), affinity.to_owned()),
    ];
    let config = Config::load_with_env(None, &Overrides::default(), vars).unwrap();
    let gw = Gateway::start(&config, SecretKey::generate().unwrap(), None).await.unwrap();
    (gw, dir)
}

/// One test, its gateways one after another: `shutdown` joins the threads, so each check
/// sees only the threads of the gateway it started, under any test runner.
#[tokio::test]
async fn auto_pins_one_thread_per_allowed_cpu_and_nothing_else() {
    let cpus = allowed_cpus();
    assert!(public_thread_cpus().is_empty());

    let (gw, _dir) = start(cpus.len(), "auto").await;
    let threads = public_thread_cpus();
    if cpus.len() > 1 {
        // One CPU each, every allowed CPU once.
        let pinned: Vec<Vec<usize>> = cpus.iter().map(|c| vec![*c]).collect();
        assert_eq!(threads, pinned);
    } else {
        eprintln!("only one CPU here: a single thread is never pinned");
        assert_eq!(threads, vec![cpus.clone()]);
    }
    gw.shutdown().await;
    assert!(public_thread_cpus().is_empty(), "shutdown joins the threads");

    // Turned off: every thread may run anywhere the process may.
    let (gw, _dir) = start(cpus.len(), "off").await;
    assert_eq!(public_thread_cpus(), vec![cpus.clone(); cpus.len()]);
    gw.shutdown().await;

    // More threads than CPUs (or fewer): the kernel places them.
    let (gw, _dir) = start(cpus.len() + 1, "auto").await;
    assert_eq!(public_thread_cpus(), vec![cpus.clone(); cpus.len() + 1]);
    gw.shutdown().await;
}
