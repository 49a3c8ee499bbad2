//! An egress proxy from the usual variables (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`), as
//! docs/configuration.md documents it. The simulator stands in for the proxy: a forward proxy receives
//! each request with the whole URL (`GET http://host/path`), and the simulator answers such requests by
//! their path, so an exporter whose API host does not exist counts only if it went through the proxy.

use std::time::{Duration, Instant};

use crate::common::{self, Process};

/// The exporter polling `http://emnify.invalid` (a name that never resolves: RFC 6761) with the
/// given proxy variables; returns it with the simulator.
fn exporter_behind(proxy_env: &[(&str, &str)], simulator: &str) -> Process {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_emnify-exporter"));
    for name in
        ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"]
    {
        cmd.env_remove(name);
    }
    let proxy_env: Vec<(String, String)> =
        proxy_env.iter().map(|(k, v)| (k.to_string(), v.replace("SIMULATOR", simulator))).collect();
    cmd.envs(proxy_env).env("EMNIFY_APPLICATION_TOKEN", "demo-application-token").args([
        "--log.format=json",
        "--emnify.api-url",
        "http://emnify.invalid",
        "--emnify.poll-interval",
        "1s",
        "--web.listen-address",
        "127.0.0.1:0",
    ]);
    Process::spawn(cmd)
}

fn simulator() -> (Process, String) {
    let sim = Process::start(&["simulate", "--listen", "127.0.0.1:0", "--events-per-second", "50"], &[]);
    let base = sim.simulator_base();
    (sim, base.trim_start_matches("http://").to_string())
}

#[test]
fn http_proxy_is_used_for_the_emnify_api() {
    let (sim, address) = simulator();
    let exporter = exporter_behind(&[("HTTP_PROXY", "http://SIMULATOR")], &address);
    let metrics = format!("{}/metrics", exporter.exporter_base());
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::blocking_total(&metrics) == 0.0 {
        assert!(Instant::now() < deadline, "nothing counted through the proxy within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    exporter.kill();
    sim.kill();
}

/// `NO_PROXY` naming the API host sends requests straight to it, which here cannot be resolved: the
/// poll fails as `connection`, which is how the landing page and the metric show a proxy not taken.
#[test]
fn no_proxy_bypasses_it() {
    let (sim, address) = simulator();
    let exporter = exporter_behind(&[("HTTP_PROXY", "http://SIMULATOR"), ("NO_PROXY", "emnify.invalid")], &address);
    let failed = exporter.wait_for_log("poll failed");
    assert!(failed.to_string().contains("connection"), "{failed}");
    exporter.kill();
    sim.kill();
}
