//! emnify's official Python SDK (`emnify-sdk` on PyPI) talks to the simulator: proof that it speaks emnify's API.

use crate::common::{self, TestSimulator};

use std::path::Path;
use std::process::Command;

use emnify_exporter::simulator::SimulatorConfig;

/// The interpreter with `emnify-sdk` installed: `EMNIFY_TEST_PYTHON`, else the venv `scripts/test` makes.
fn python() -> String {
    if let Ok(p) = std::env::var("EMNIFY_TEST_PYTHON") {
        return p;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        venv.to_string_lossy().into_owned()
    } else {
        "python3".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_logs_in_and_pages_through_device_events() {
    // A small default page so the SDK has to follow X-Total-Pages across several pages.
    let test_sim = TestSimulator::start(SimulatorConfig { default_per_page: 7, ..common::sim_config(99) }).await;
    let sim = &test_sim.sim;
    sim.generate(3000);
    sim.generic_burst(0, 40);
    let endpoint = (0..25).map(|k| 719_710 * 1000 + k).max_by_key(|e| sim.endpoint_event_ids(*e).len()).unwrap();
    let mut expected = sim.endpoint_event_ids(endpoint);
    assert!(expected.len() > 20, "the device needs several pages of events");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/device_events.py");
    let token = sim.application_token();
    let api = format!("{}/api", test_sim.url);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .arg(token)
            .arg(endpoint.to_string())
            .env("EMNIFY_SDK_API_ENDPOINT_URL", api)
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'emnify'"),
        "emnify-sdk is not installed: run scripts/test, or set EMNIFY_TEST_PYTHON"
    );
    assert!(output.status.success(), "the SDK failed:\n{stderr}");
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    let mut got: Vec<u64> = result["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    got.sort_unstable();
    expected.sort_unstable();
    assert_eq!(got, expected, "the SDK read every event of the device exactly once");
    assert!(result["types"].as_array().unwrap().contains(&serde_json::json!(0)), "Generic events included");
    let stats = sim.stats();
    assert_eq!(stats.logins, 1, "the SDK logged in once (after its first, token-less 401)");
    assert!(stats.event_pages as usize >= expected.len().div_ceil(7));
}
