//! Static checks of the shipped Grafana dashboards, rules and provisioning files.

use crate::common::{self, TestSimulator};

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use crate::common::artifacts::{self, dashboard_queries, dashboards, metric_names, panels};
use crate::common::{parse_exposition, sum, wait_for, TestExporter};

#[test]
fn dashboards_have_stable_uids_tags_and_unique_panel_ids() {
    let mut uids = HashSet::new();
    for (name, dashboard) in dashboards() {
        let uid = dashboard["uid"].as_str().unwrap_or_else(|| panic!("{name}: no uid"));
        assert!(uids.insert(uid.to_string()), "{name}: uid {uid} is not unique");
        assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}: title");
        assert!(dashboard["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == "emnify")), "{name}: tag emnify");
        assert!(!dashboard.to_string().contains("${DS_"), "{name}: import placeholders break file provisioning");
        let mut ids = HashSet::new();
        for panel in panels(&dashboard) {
            let id = panel["id"].as_u64().unwrap_or_else(|| panic!("{name}: panel without id: {}", panel["title"]));
            assert!(ids.insert(id), "{name}: panel id {id} used twice");
        }
    }
}

#[test]
fn every_panel_uses_the_datasource_variable_and_explains_itself() {
    for (name, dashboard) in dashboards() {
        let variables: Vec<&str> = dashboard["templating"]["list"]
            .as_array()
            .expect("templating")
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        for wanted in ["datasource", "job", "instance"] {
            assert!(variables.contains(&wanted), "{name}: no ${wanted} variable");
        }
        let ds =
            dashboard["templating"]["list"].as_array().unwrap().iter().find(|v| v["name"] == "datasource").unwrap();
        assert_eq!((ds["type"].as_str(), ds["query"].as_str()), (Some("datasource"), Some("prometheus")), "{name}");
        for panel in panels(&dashboard) {
            if panel["type"] == "row" {
                continue;
            }
            let title = panel["title"].as_str().unwrap_or("?");
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{name} / {title}: panel datasource");
            assert_eq!(panel["datasource"]["type"], "prometheus", "{name} / {title}");
            let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("{name} / {title}: no targets"));
            assert!(!targets.is_empty(), "{name} / {title}: no targets");
            for target in targets {
                assert_eq!(target["datasource"]["uid"], "${datasource}", "{name} / {title}: target datasource");
            }
            assert!(
                panel["description"].as_str().is_some_and(|d| d.len() >= 20),
                "{name} / {title}: needs a description a newcomer understands"
            );
            assert!(
                panel["fieldConfig"]["defaults"]["unit"].as_str().is_some_and(|u| !u.is_empty()),
                "{name} / {title}: no unit"
            );
        }
    }
}

/// Rate windows follow Grafana's `$__rate_interval`/`$__range`; only the Generic alert window (10m) is fixed.
#[test]
fn no_hard_coded_rate_windows() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "only {} queries", queries.len());
    for q in queries {
        let mut rest = q.expr.as_str();
        while let Some(i) = rest.find('[') {
            let end = rest[i..].find(']').expect("closed range") + i;
            let window = &rest[i + 1..end];
            let window = window.split(':').next().unwrap_or(window);
            let allowed = matches!(window, "$__rate_interval" | "$__range" | "$__interval")
                || (window == "10m" && q.expr.contains("event_type_id=\"0\""));
            assert!(allowed, "{} / {}: hard-coded window [{window}] in {}", q.dashboard, q.panel, q.expr);
            rest = &rest[end..];
        }
    }
}

/// Every metric a dashboard reads is one the exporter serves (or a shipped recording rule). The exporter
/// polls and receives pushes, and has had one push, so the push metrics that only exist after a push
/// (`emnify_push_requests_total{code}`) are served too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_referenced_metric_exists() {
    let test_sim = TestSimulator::start(common::sim_config(31)).await;
    let sim = &test_sim.sim;
    sim.generate(3000);
    sim.generic_burst(0, 10);
    let config = emnify_exporter::config::Config { push: Some(common::open_receiver()), ..test_sim.exporter_config() };
    let running = TestExporter::start(config).await;
    let (status, body) = running.push("/webhook/events", &[], "[]").await;
    assert_eq!(status, 200, "an empty push is accepted: {body}");
    let url = format!("{}/metrics", running.base);
    let mut text = String::new();
    assert!(
        wait_for(Duration::from_secs(20), async || {
            text = common::blocking_get(&url).1;
            sum(&parse_exposition(&text), "emnify_events_total", &[]) >= 3010.0
        })
        .await
    );
    let mut served: BTreeSet<String> = BTreeSet::new();
    for sample in parse_exposition(&text) {
        served.insert(sample.name.clone());
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.name.strip_suffix(suffix) {
                served.insert(base.to_string());
            }
        }
    }
    let recorded: BTreeSet<String> = artifacts::rules_in(&artifacts::shipped_rules_text())
        .into_iter()
        .filter(|r| !r.alert)
        .map(|r| r.name)
        .collect();
    let mut checked = 0;
    for q in dashboard_queries() {
        for metric in metric_names(&q.expr) {
            let known = served.contains(&metric) || recorded.contains(&metric) || metric == "up";
            assert!(known, "{} / {}: {metric} is neither served nor recorded ({})", q.dashboard, q.panel, q.expr);
            checked += 1;
        }
    }
    assert!(checked >= 20);
    println!("{checked} metric references checked");
}

#[test]
fn provisioning_files_agree_on_the_datasource() {
    let datasources = artifacts::yaml("deploy/grafana/provisioning/datasources/emnify-prometheus.yml");
    let ds = &datasources["datasources"][0];
    assert_eq!(ds["type"], "prometheus");
    let uid = ds["uid"].as_str().expect("a fixed datasource uid");
    let providers = artifacts::yaml("deploy/grafana/provisioning/dashboards/emnify.yml");
    assert_eq!(providers["apiVersion"], 1);
    assert_eq!(providers["providers"][0]["type"], "file");
    let alerts = artifacts::yaml(artifacts::GRAFANA_ALERTS_FILE);
    assert_eq!(alerts["apiVersion"], 1);
    let mut rules = 0;
    for group in alerts["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            rules += 1;
            for query in rule["data"].as_array().unwrap() {
                let source = query["datasourceUid"].as_str().unwrap();
                assert!(source == uid || source == "__expr__", "{}: datasource {source}", rule["uid"]);
            }
        }
    }
    assert!(rules >= 4, "Generic spike and exporter-down rules at least");
}

#[test]
fn metric_name_extraction_ignores_functions_labels_and_durations() {
    let names = metric_names(
        r#"sum by (organisation) (rate(emnify_events_total{job=~"$job", event_type="Generic x"}[$__rate_interval])) / on (organisation) group_left() clamp_min(3 * organisation:emnify_generic_events:baseline_increase10m offset 1h, 1e3)"#,
    );
    assert_eq!(names, vec!["emnify_events_total", "organisation:emnify_generic_events:baseline_increase10m"]);
}

fn promtool(args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new("promtool")
        .args(args)
        .current_dir(artifacts::repo_path("deploy/prometheus"))
        .output()
        .unwrap_or_else(|e| panic!("promtool is not installed ({e}): run scripts/test, which installs `prometheus`"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The shipped rules are valid, and their unit tests (spike, no-baseline burst, quiet cases, restarts,
/// HA replicas, exporter-down alerts) pass.
#[test]
fn prometheus_rules_pass_promtool_check_and_unit_tests() {
    let (ok, out) = promtool(&["check", "rules", "emnify-recording-rules.yml", "emnify-alert-rules.yml"]);
    assert!(ok, "promtool check rules:\n{out}");
    assert!(out.contains("SUCCESS: 10 rules found") && out.contains("SUCCESS: 8 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "emnify-rules.test.yml"]);
    assert!(ok && out.contains("SUCCESS"), "promtool test rules:\n{out}");
    let tests = std::fs::read_to_string(artifacts::repo_path(artifacts::RULE_TESTS_FILE)).unwrap();
    let cases = tests.lines().filter(|l| l.trim_start().starts_with("- interval:")).count();
    assert!(cases >= 20, "only {cases} rule test cases");
}

/// The Grafana-managed alerts are the Prometheus alerts, one for one (scripts/grafana-alerts writes them):
/// the same names, PromQL, `for`, labels and summaries, and a condition that holds for every series the
/// query returns, as Prometheus fires for every series its expression returns.
#[test]
fn grafana_alerts_equal_the_prometheus_alerts() {
    let prometheus: Vec<_> =
        artifacts::rules_in(&artifacts::shipped_rules_text()).into_iter().filter(|r| r.alert).collect();
    let doc = artifacts::yaml(artifacts::RULES_FILES[1]);
    let prometheus_rules: Vec<&serde_json::Value> =
        doc["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()).collect();
    let grafana_doc = artifacts::yaml(artifacts::GRAFANA_ALERTS_FILE);
    let grafana: Vec<&serde_json::Value> =
        grafana_doc["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()).collect();
    let titles: Vec<&str> = grafana.iter().map(|r| r["title"].as_str().unwrap()).collect();
    let names: Vec<&str> = prometheus.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(titles, names, "the same alerts, in the same order");
    for (rule, source) in grafana.iter().zip(&prometheus_rules) {
        let title = rule["title"].as_str().unwrap();
        let query = rule["data"].as_array().unwrap().iter().find(|q| q["refId"] == "A").expect("query A");
        assert_eq!(query["model"]["expr"].as_str().unwrap().trim(), source["expr"].as_str().unwrap().trim(), "{title}");
        assert_eq!(query["model"]["instant"], true, "{title}");
        let for_ = source["for"].as_str().unwrap_or("0s");
        assert_eq!(rule["for"].as_str(), Some(for_), "{title}: for");
        assert_eq!(rule["labels"], source["labels"], "{title}: labels");
        assert_eq!(rule["annotations"]["summary"], source["annotations"]["summary"], "{title}: summary");
        let condition = rule["data"].as_array().unwrap().iter().find(|q| q["refId"] == rule["condition"]).unwrap();
        assert_eq!(condition["model"]["expression"], "is_number($B)", "{title}: fires for every series");
        assert_eq!(rule["noDataState"], "OK", "{title}: no series, no alert");
        let description = rule["annotations"]["description"].as_str().unwrap();
        assert!(!description.contains("query") && !description.contains("$value "), "{title}: {description}");
    }
}

/// Runs tests/grafana-schema/check.mjs (the dashboards' type-check against Grafana's published types)
/// over `files`: (passed, tsc's output).
fn grafana_type_check(files: &[std::path::PathBuf]) -> (bool, String) {
    let modules = artifacts::repo_path(".venv/npm/node_modules");
    for wanted in ["@grafana/schema", "@grafana/grafana-foundation-sdk", "typescript"] {
        assert!(
            modules.join(wanted).join("package.json").is_file(),
            "{wanted} is not installed in .venv/npm: run scripts/test, which installs @grafana/schema, \
             @grafana/grafana-foundation-sdk and typescript there (pinned) for the dashboards' type-check"
        );
    }
    let output = std::process::Command::new("node")
        .arg(artifacts::repo_path("tests/grafana-schema/check.mjs"))
        .arg(&modules)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("node is not installed ({e}): the dashboards' type-check needs Node.js and npm"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Every dashboard type-checks (`tsc --strict`) as @grafana/schema's `Dashboard`, with each panel's options
/// and custom field config checked against its panel plugin's published types and every query against the
/// Prometheus query type (tests/grafana-schema/dashboard-types.ts lists the few adaptations and why).
#[test]
fn dashboards_match_grafanas_published_dashboard_types() {
    let files: Vec<_> =
        dashboards().iter().map(|(name, _)| artifacts::repo_path(&format!("dashboards/{name}"))).collect();
    assert_eq!(files.len(), 2);
    let (ok, out) = grafana_type_check(&files);
    assert!(ok, "the dashboards do not match Grafana's dashboard types:\n{out}");
    assert!(out.contains("2 dashboard(s) match"), "{out}");
}

/// The type-check fails for what Grafana would not read: each broken copy of a dashboard is rejected, at its
/// own mistake, and the unbroken copy beside them passes.
#[test]
fn the_grafana_type_check_rejects_broken_dashboards() {
    let (_, health) = dashboards().into_iter().find(|(name, _)| name == "emnify-exporter-health.json").unwrap();
    let first_stat = health["panels"].as_array().unwrap().iter().position(|p| p["type"] == "stat").unwrap();
    let first_series = health["panels"].as_array().unwrap().iter().position(|p| p["type"] == "timeseries").unwrap();
    type Break = fn(&mut serde_json::Value, usize, usize);
    let breaks: [(&str, Break, &str); 7] = [
        (
            "numeric-title",
            |d, s, _| d["panels"][s]["title"] = 42.into(),
            "Type 'number' is not assignable to type 'string'",
        ),
        (
            "unknown-panel-type",
            |d, s, _| d["panels"][s]["type"] = "singlestat".into(),
            "'\"singlestat\"' is not assignable",
        ),
        (
            "misspelt-target-key",
            |d, s, _| d["panels"][s]["targets"][0]["legendFromat"] = "x".into(),
            "'\"legendFromat\"' does not exist",
        ),
        (
            "bad-stat-option",
            |d, s, _| d["panels"][s]["options"]["colorMode"] = "loud".into(),
            "'\"loud\"' is not assignable",
        ),
        (
            "bad-draw-style",
            |d, _, t| d["panels"][t]["fieldConfig"]["defaults"]["custom"]["drawStyle"] = "dots".into(),
            "'\"dots\"' is not assignable",
        ),
        (
            "bad-mapping-type",
            |d, s, _| {
                d["panels"][s]["fieldConfig"]["defaults"]["mappings"] =
                    serde_json::json!([{"type": "text", "options": {}}])
            },
            "'\"text\"' is not assignable",
        ),
        (
            "bad-variable-refresh",
            |d, _, _| d["templating"]["list"][1]["refresh"] = 7.into(),
            "Type '7' is not assignable to type 'VariableRefresh",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![];
    for (name, mutate, _) in &breaks {
        let mut broken = health.clone();
        mutate(&mut broken, first_stat, first_series);
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&broken).unwrap()).unwrap();
        files.push(path);
    }
    let intact = dir.path().join("intact.json");
    std::fs::write(&intact, serde_json::to_string_pretty(&health).unwrap()).unwrap();
    files.push(intact);
    let (ok, out) = grafana_type_check(&files);
    assert!(!ok, "the broken dashboards passed the type-check:\n{out}");
    for (name, _, error) in &breaks {
        let errors: Vec<&str> = out.lines().filter(|l| l.starts_with(&format!("{name}.ts("))).collect();
        assert!(errors.iter().any(|l| l.contains(error)), "{name}: expected an error with {error:?}, got:\n{out}");
    }
    assert!(!out.contains("intact.ts("), "the intact copy failed:\n{out}");
}
