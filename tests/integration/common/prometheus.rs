//! A real Prometheus server (Debian package `prometheus`) on a loopback port, for end-to-end tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::wait_for;

/// The Prometheus server binary, from the Debian package `prometheus`.
pub fn prometheus_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "the `prometheus` server is not installed: run scripts/test (it installs the Debian package `prometheus`)"
        )
    })
}

/// A Prometheus server on a loopback port with a temporary storage directory; killed on drop.
pub struct Prometheus {
    pub base: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Starts Prometheus scraping `targets` (comma-separated `host:port`s) as job `emnify-exporter` every
/// second, with `rules` loaded and exemplar storage on.
pub async fn start_prometheus(targets: &str, rules: &str) -> Prometheus {
    let target = targets.split(',').map(|t| format!("'{}'", t.trim())).collect::<Vec<_>>().join(", ");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n\
         scrape_configs:\n  - job_name: emnify-exporter\n    static_configs:\n      - targets: [{target}]\n"
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let child = Command::new(prometheus_binary())
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // Stores the exemplars of OpenMetrics scrapes (`/api/v1/query_exemplars`).
        .arg("--enable-feature=exemplar-storage")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let server = Prometheus { child, base: format!("http://127.0.0.1:{port}"), _dir: dir };
    let ready = format!("{}/-/ready", server.base);
    assert!(
        wait_for(Duration::from_secs(60), async || super::blocking_get_ok(&ready)).await,
        "Prometheus did not become ready"
    );
    server
}

impl Prometheus {
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let url = format!("{}{path}?{query}", self.base);
        let body = tokio::task::spawn_blocking(move || super::blocking_get(&url)).await.unwrap().1;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
    }

    /// An instant query; panics if Prometheus refuses it.
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let answer = self.api("/api/v1/query", &[("query", expr)]).await;
        assert_eq!(answer["status"], "success", "Prometheus refused `{expr}`: {}", answer["error"]);
        answer["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}
