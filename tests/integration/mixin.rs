//! The jsonnet monitoring mixin (mixin/): with its defaults it renders exactly the shipped rule files
//! and dashboards; docs/alerting.md's one-liner for another job name runs as written and gives rules
//! that pass the unit tests with the job renamed; a threshold set changes that threshold alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::artifacts::repo_path;
use crate::deploy_manifests::{text, which, yaml_documents};

const RULE_FILES: [&str; 2] = ["emnify-recording-rules.yml", "emnify-alert-rules.yml"];
const DASHBOARDS: [&str; 2] = ["emnify-events.json", "emnify-exporter-health.json"];

fn jsonnet() -> PathBuf {
    which("jsonnet")
        .unwrap_or_else(|| panic!("jsonnet is not installed: apt-get install jsonnet (scripts/test does this)"))
}

/// A directory where `mixin/` and `dashboards/` are the repository's, for commands run "in the
/// repository" without writing into it.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["mixin", "dashboards"] {
        std::os::unix::fs::symlink(repo_path(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// Renders the mixin with `config` (a jsonnet object) into `out`.
fn render(config: &str, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    let output = Command::new(jsonnet())
        .current_dir(repo_path(""))
        .args(["-S", "-m"])
        .arg(out)
        .arg("-e")
        .arg(format!("(import \"mixin/render.libsonnet\")({config})"))
        .output()
        .expect("jsonnet runs");
    assert!(output.status.success(), "jsonnet: {}", text(&output));
}

fn parsed(path: &Path) -> Value {
    let content = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&content).unwrap()
    } else {
        yaml_documents(&content, &path.display().to_string()).remove(0)
    }
}

/// Every expression of a rendered rule file, in order.
fn exprs(rules: &Value) -> Vec<String> {
    let groups = rules["groups"].as_array().expect("groups");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .map(|r| r["expr"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn with_its_defaults_the_mixin_renders_the_shipped_files() {
    let out = tempfile::tempdir().unwrap();
    render("{}", out.path());
    for file in RULE_FILES {
        let shipped = parsed(&repo_path(&format!("deploy/prometheus/{file}")));
        assert_eq!(parsed(&out.path().join(file)), shipped, "{file}: the mixin and the shipped file differ");
    }
    for file in DASHBOARDS {
        let shipped = parsed(&repo_path(&format!("dashboards/{file}")));
        assert_eq!(parsed(&out.path().join(file)), shipped, "{file}: the mixin and the shipped file differ");
    }
}

/// docs/alerting.md's command, as written, for a job named `emnify`: no rule selects the old job, each
/// selects the new one where it selected the old, and the rule unit tests, with the job renamed in
/// their series and expectations, pass against what it wrote.
#[test]
fn the_documented_one_liner_renders_the_rules_for_another_job() {
    let docs = std::fs::read_to_string(repo_path("docs/alerting.md")).unwrap();
    let line = docs.lines().find(|l| l.starts_with("mkdir -p out && jsonnet")).expect("the one-liner");
    assert!(line.contains(r#"job=\"emnify\""#), "{line}");
    let dir = workspace();
    let output = Command::new("bash").arg("-c").arg(line).current_dir(dir.path()).output().unwrap();
    assert!(output.status.success(), "{line}: {}", text(&output));
    let out = dir.path().join("out");
    for file in RULE_FILES {
        let shipped = exprs(&parsed(&repo_path(&format!("deploy/prometheus/{file}"))));
        let renamed = exprs(&parsed(&out.join(file)));
        let fixed: Vec<String> =
            shipped.iter().map(|e| e.replace(r#"job="emnify-exporter""#, r#"job="emnify""#)).collect();
        assert_eq!(renamed, fixed, "{file}: only the job changes");
        assert!(shipped.iter().filter(|e| e.contains("job=")).count() >= 2, "{file}: selectors were compared");
    }
    let tests = std::fs::read_to_string(repo_path("deploy/prometheus/emnify-rules.test.yml")).unwrap();
    let tests = tests
        .replace(r#"job="emnify-exporter""#, r#"job="emnify""#)
        .replace("job: emnify-exporter", "job: emnify")
        .replace("(job emnify-exporter)", "(job emnify)");
    std::fs::write(out.join("emnify-rules.test.yml"), tests).unwrap();
    let promtool = which("promtool").expect("promtool (apt-get install prometheus; scripts/test does this)");
    let output =
        Command::new(promtool).args(["test", "rules", "emnify-rules.test.yml"]).current_dir(&out).output().unwrap();
    assert!(output.status.success(), "the unit tests on the renamed job:\n{}", text(&output));
}

/// The mixin's alerts with `config` (a jsonnet object), as JSON: only the rules, as a jsonnet project
/// reads them (rendering the dashboards too takes jsonnet 0.18 seconds).
fn alerts(config: &str) -> Value {
    let program = format!("((import \"mixin/mixin.libsonnet\") + {{ _config+:: {config} }}).prometheusAlerts");
    let output = Command::new(jsonnet()).current_dir(repo_path("")).arg("-e").arg(program).output().unwrap();
    assert!(output.status.success(), "jsonnet: {}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A threshold set in the config changes that threshold in the spike alert and nothing else.
#[test]
fn a_threshold_changes_only_itself() {
    let before = alerts("{}");
    let after = alerts("{spikeSevereRatio: 20, spikeNoBaselineMinEvents10m: 150}");
    let expected = before.to_string().replace("[2m]) > 10", "[2m]) > 20").replace("[5m]) >= 100", "[5m]) >= 150");
    let expected = expected.replace("absolute threshold of 100 applied", "absolute threshold of 150 applied");
    assert_ne!(expected, before.to_string(), "the thresholds are where the test looks for them");
    assert_eq!(after.to_string(), expected);
}
