//! scripts/local-stack as a newcomer meets it when a port is taken (its end-to-end `--check` is in
//! deploy_manifests.rs).

use std::process::{Command, Stdio};

use crate::common::artifacts::repo_path;

/// A port held by another process: the script stops at once, naming the port, whose it is and the
/// variable that moves it, instead of "gave up waiting" after starting the others.
#[test]
fn local_stack_names_a_port_in_use_and_its_variable() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let output = Command::new("bash")
        .arg(repo_path("scripts/local-stack"))
        .arg("--check")
        .env("EMNIFY_EXPORTER_BIN", env!("CARGO_BIN_EXE_emnify-exporter"))
        .env("LOCAL_STACK_EXPORTER_PORT", &port)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("port {port} (the exporter's) is in use")), "{stderr}");
    assert!(stderr.contains("LOCAL_STACK_EXPORTER_PORT=PORT"), "{stderr}");
}
