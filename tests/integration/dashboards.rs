//! Static checks of the shipped Grafana dashboards, rules and provisioning files.

use crate::common::{self, TestSimulator};

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use crate::common::artifacts::{self, dashboard_queries, dashboards, metric_names, panels};
use crate::common::{parse_exposition, sum, wait_for, TestExporter};
use emnify_exporter::simulator::data_stream::StreamStatus;

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
                || (window == "10m"
                    && (q.expr.contains("event_type_id=\"0\"") || q.expr.contains("emnify_generic_events_total")));
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
    // A stream of the exporter's for the watchdog to read, so the emnify_data_stream_* series exist.
    sim.add_data_stream("exporter", 2, "https://x.example.com/webhook/events", StreamStatus::Running);
    let watchdog = crate::watchdog::watchdog_for(&test_sim, false);
    let config = emnify_exporter::config::Config {
        push: Some(common::open_receiver()),
        watchdog: Some(watchdog),
        ..test_sim.exporter_config()
    };
    let running = TestExporter::start(config).await;
    let (status, body) = running.push("/webhook/events", &[], "[]").await;
    assert_eq!(status, 200, "an empty push is accepted: {body}");
    let url = format!("{}/metrics", running.base);
    let mut text = String::new();
    assert!(
        wait_for(Duration::from_secs(20), async || {
            text = common::blocking_get(&url).1;
            let samples = parse_exposition(&text);
            sum(&samples, "emnify_events_total", &[]) >= 3010.0 && sum(&samples, "emnify_data_stream_info", &[]) >= 1.0
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

/// From the alert to the device: a Generic panel asks for the raw counter's exemplars, and the
/// datasource turns an exemplar's `endpoint_id` into a link to the device in the emnify Portal.
#[test]
fn generic_panels_show_exemplars_linked_to_the_device() {
    let with_exemplars: Vec<_> = artifacts::dashboards()
        .into_iter()
        .flat_map(|(_, d)| d["panels"].as_array().cloned().unwrap_or_default())
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["exemplar"] == true)
        .collect();
    assert!(!with_exemplars.is_empty(), "no panel asks for exemplars");
    for target in &with_exemplars {
        let expr = target["expr"].as_str().unwrap();
        assert!(expr.contains("emnify_generic_events_total"), "exemplars live on the raw counters, not on {expr}");
    }
    let datasources = artifacts::yaml("deploy/grafana/provisioning/datasources/emnify-prometheus.yml");
    let links = datasources["datasources"][0]["jsonData"]["exemplarTraceIdDestinations"].as_array().cloned();
    let links = links.expect("exemplar links on the datasource");
    let device = links.iter().find(|l| l["name"] == "endpoint_id").expect("a link for endpoint_id");
    // Grafana expands `${NAME}` in provisioning files from its environment; `$$` is a literal `$`.
    let url = device["url"].as_str().unwrap();
    assert!(url.contains("$${__value.raw}"), "the endpoint id must be escaped for provisioning: {url}");
    assert!(!url.replace("$${", "").contains("${"), "another `${{` Grafana would expand: {url}");
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
    // 10 recording rules and 11 alerts.
    assert!(out.contains("SUCCESS: 10 rules found") && out.contains("SUCCESS: 11 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "emnify-rules.test.yml"]);
    assert!(ok && out.contains("SUCCESS"), "promtool test rules:\n{out}");
    let tests = std::fs::read_to_string(artifacts::repo_path(artifacts::RULE_TESTS_FILE)).unwrap();
    let cases = tests.lines().filter(|l| l.trim_start().starts_with("- interval:")).count();
    assert!(cases >= 21, "only {cases} rule test cases");
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
        // tsc names a file relative to where it runs (a path when .venv is a link elsewhere).
        let file = format!("{name}.ts(");
        let errors: Vec<&str> =
            out.lines().filter(|l| l.starts_with(&file) || l.contains(&format!("/{file}"))).collect();
        assert!(errors.iter().any(|l| l.contains(error)), "{name}: expected an error with {error:?}, got:\n{out}");
    }
    assert!(!out.contains("intact.ts("), "the intact copy failed:\n{out}");
}

/// The template variable `name` of a dashboard.
fn variable<'a>(dashboard: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    dashboard["templating"]["list"].as_array().unwrap().iter().find(|v| v["name"] == name).unwrap_or_else(|| {
        panic!("{}: no ${name} variable", dashboard["title"]);
    })
}

/// Every `metric{matchers}` an expression reads, as (metric, the text between the braces, "" without).
fn selectors(expr: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for metric in metric_names(expr) {
        let mut from = 0;
        while let Some(i) = expr[from..].find(metric.as_str()).map(|i| i + from) {
            from = i + metric.len();
            let before = expr[..i].chars().next_back();
            let after = expr[from..].chars().next();
            let part_of_a_word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            if part_of_a_word(before) || part_of_a_word(after) || before == Some('"') {
                continue;
            }
            let matchers = match after {
                Some('{') => expr[from + 1..].split('}').next().unwrap_or("").to_string(),
                _ => String::new(),
            };
            out.push((metric.clone(), matchers));
        }
    }
    out
}

/// Whether a metric is a shipped recording rule (their names have colons) rather than one the exporter or
/// Prometheus serves.
fn recorded(metric: &str) -> bool {
    metric.contains(':')
}

/// Panels that read recording rules say that Workspace, Job and Instance do not apply to them (recorded series
/// have no such labels) and use none of those variables; every selector of a metric the exporter (or
/// Prometheus) serves filters by all three, so they apply everywhere else.
#[test]
fn recording_rule_panels_say_so_and_raw_queries_follow_workspace_job_and_instance() {
    let (mut rule_panels, mut raw_selectors) = (0, 0);
    for (name, dashboard) in dashboards() {
        for panel in panels(&dashboard).into_iter().filter(|p| p["type"] != "row") {
            let title = panel["title"].as_str().unwrap();
            let exprs: Vec<&str> =
                panel["targets"].as_array().unwrap().iter().filter_map(|t| t["expr"].as_str()).collect();
            let metrics: Vec<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
            if metrics.iter().any(|m| recorded(m)) {
                rule_panels += 1;
                assert!(metrics.iter().all(|m| recorded(m)), "{name} / {title}: mixes recorded and raw series");
                let description = panel["description"].as_str().unwrap();
                assert!(
                    description.contains("Workspace, Job and Instance do not apply"),
                    "{name} / {title}: the description must say the selections do not apply: {description}"
                );
                for expr in &exprs {
                    for var in ["$job", "$instance", "$workspace"] {
                        assert!(!expr.contains(var), "{name} / {title}: {var} cannot filter recorded series: {expr}");
                    }
                }
            }
            for expr in exprs {
                for (metric, matchers) in selectors(expr).into_iter().filter(|(m, _)| !recorded(m)) {
                    raw_selectors += 1;
                    for wanted in [r#"job=~"$job""#, r#"instance=~"$instance""#, r#"workspace=~"$workspace""#] {
                        assert!(matchers.contains(wanted), "{name} / {title}: {metric} without {wanted} in {expr}");
                    }
                }
            }
        }
    }
    assert!(
        // The Generic-by-cause panel reads the raw counter, whose exemplars (devices) it shows.
        rule_panels >= 3 && raw_selectors >= 40,
        "{rule_panels} recording-rule panels, {raw_selectors} raw selectors"
    );
}

/// `workspace` (a target label, absent where nobody adds it) lists its values, has All, and All matches series
/// without the label (`.*` matches the empty value); `job` and `instance` list only exporters, and their All is
/// exactly those (no allValue), so `up` and `process_*` of other jobs never show.
#[test]
fn workspace_job_and_instance_variables() {
    for (name, dashboard) in dashboards() {
        let names: Vec<&str> =
            dashboard["templating"]["list"].as_array().unwrap().iter().filter_map(|v| v["name"].as_str()).collect();
        let position = |n: &str| names.iter().position(|v| *v == n).unwrap();
        assert!(position("workspace") < position("job") && position("job") < position("instance"), "{name}: order");
        let workspace = variable(&dashboard, "workspace");
        assert_eq!(workspace["query"], "label_values(emnify_exporter_build_info, workspace)", "{name}");
        assert_eq!(
            (workspace["includeAll"].as_bool(), workspace["allValue"].as_str()),
            (Some(true), Some(".*")),
            "{name}"
        );
        for var in ["job", "instance"] {
            let v = variable(&dashboard, var);
            let query = v["query"].as_str().unwrap();
            assert!(query.starts_with("label_values(emnify_exporter_build_info{"), "{name} / {var}: {query}");
            assert!(query.contains(r#"workspace=~"$workspace""#), "{name} / {var}: {query}");
            assert_eq!(v["includeAll"], true, "{name} / {var}");
            assert!(v.get("allValue").is_none(), "{name} / {var}: All must mean the listed exporters, not .*");
        }
    }
}

/// `up` and the process metrics show the exporter's own targets only: `process_*` is joined with
/// `emnify_exporter_build_info` on job and instance.
#[test]
fn process_and_up_panels_show_only_the_exporter() {
    let (_, health) = dashboards().into_iter().find(|(n, _)| n == "emnify-exporter-health.json").unwrap();
    let mut process_queries = 0;
    let mut up = 0;
    for q in dashboard_queries().into_iter().filter(|q| q.dashboard == "emnify-exporter-health.json") {
        let metrics = metric_names(&q.expr);
        if metrics.iter().any(|m| m.starts_with("process_")) {
            process_queries += 1;
            assert!(q.expr.contains("and on (job, instance) emnify_exporter_build_info"), "{}: {}", q.panel, q.expr);
        }
        if metrics.iter().any(|m| m == "up") {
            up += 1;
            assert!(q.expr.starts_with(r#"up{job=~"$job""#), "{}: {}", q.panel, q.expr);
        }
    }
    assert_eq!((process_queries, up), (3, 1), "memory, CPU and fds, and one up tile");
    let cpu = panels(&health).into_iter().find(|p| p["title"] == "Exporter CPU usage").unwrap();
    assert!(cpu["targets"][0]["expr"].as_str().unwrap().starts_with("rate(process_cpu_seconds_total{"));
}

/// A timestamp gauge is 0 until its first event (no poll yet, no push, no state file): `time() - it` would read
/// as 56 years. Stat panels map such ages to a word ("never"), time series drop the 0 (`> 0`).
#[test]
fn ages_of_zero_timestamps_read_never_not_56_years() {
    let mut checked = 0;
    for (name, dashboard) in dashboards() {
        for panel in panels(&dashboard).into_iter().filter(|p| p["type"] != "row") {
            let title = panel["title"].as_str().unwrap();
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                if !expr.contains("time() - ") {
                    continue;
                }
                checked += 1;
                if panel["type"] == "stat" {
                    let mappings = panel["fieldConfig"]["defaults"]["mappings"].as_array().unwrap();
                    let never = mappings.iter().find(|m| m["type"] == "range").unwrap_or_else(|| {
                        panic!("{name} / {title}: no range mapping for a 0 timestamp");
                    });
                    // Grafana's getValueMappingResult: a bound is compared unless isNaN(bound), and
                    // isNaN(null) is false in JavaScript (null compares as 0), so null is no open end.
                    let bound = |b: &str| never["options"][b].as_f64().unwrap_or(0.0);
                    let maps = |age: f64| age >= bound("from") && age <= bound("to");
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
                    assert!(maps(now) && maps(now + 1e9), "{name} / {title}: time() - 0 is not mapped: {never}");
                    for real_age in [0.0, 600.0, 86400.0 * 365.0 * 20.0] {
                        assert!(!maps(real_age), "{name} / {title}: a real age of {real_age} s is mapped: {never}");
                    }
                    let text = never["options"]["result"]["text"].as_str().unwrap();
                    assert!(text.starts_with("never") || text.starts_with("no "), "{name} / {title}: {text}");
                } else {
                    assert!(
                        expr.contains("_timestamp_seconds{") && expr.contains("} > 0)"),
                        "{name} / {title}: {expr}"
                    );
                }
            }
        }
    }
    assert!(checked >= 6, "{checked} age queries");
}

/// What an operator counts (failed polls, 429s, refused pushes, failed saves, unreadable records, evictions,
/// events over a series limit) is shown as counts, over the time range or per interval, never as a per-second rate.
#[test]
fn errors_are_counted_not_rated() {
    let counted = [
        "emnify_poll_errors_total",
        "emnify_push_rejected_total",
        "emnify_state_save_failures_total",
        "emnify_events_unreadable_total",
        "emnify_events_skipped_total",
        "emnify_http_connections_evicted_total",
        "emnify_events_over_organisation_limit_total",
        "emnify_events_over_event_type_limit_total",
    ];
    let mut seen = BTreeSet::new();
    for q in dashboard_queries() {
        let reads = |m: &str| metric_names(&q.expr).iter().any(|n| n == m);
        for metric in counted.iter().filter(|m| reads(m)) {
            seen.insert(*metric);
            assert!(
                q.expr.contains("increase(") && !q.expr.contains("rate("),
                "{} / {}: {}",
                q.dashboard,
                q.panel,
                q.expr
            );
        }
        if q.expr.contains(r#"code="429""#) {
            seen.insert("429");
            assert!(q.expr.contains("[$__range]") && q.expr.contains("increase("), "{}: {}", q.panel, q.expr);
        }
    }
    assert_eq!(seen.len(), counted.len() + 1, "every error counter has a panel: {seen:?}");
    for (name, dashboard) in dashboards() {
        for panel in panels(&dashboard).into_iter().filter(|p| p["type"] == "timeseries") {
            let per_interval = panel["targets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["expr"].as_str().unwrap().contains("[$__interval]"));
            if per_interval {
                // At least 2 minutes, so each interval holds several scrapes (30 s) and increase() has samples.
                assert_eq!(panel["interval"], "2m", "{name} / {}: needs a minimum interval", panel["title"]);
                assert!(panel["title"].as_str().unwrap().contains("per interval"), "{name} / {}", panel["title"]);
            }
        }
    }
}

/// Organisations are listed by name and selected by id: the variable's regex, applied the way Grafana applies it
/// (a JavaScript RegExp over each `query_result` line, named groups `value` and `text`), gives each
/// organisation_id its current name, whatever characters the name holds.
#[test]
fn organisation_variable_shows_names_and_selects_ids() {
    let (_, events) = dashboards().into_iter().find(|(n, _)| n == "emnify-events.json").unwrap();
    let org = variable(&events, "organisation");
    let query = org["query"].as_str().unwrap();
    assert!(query.starts_with("query_result(") && query.contains("emnify_organisation_info{"), "{query}");
    let regex = org["regex"].as_str().unwrap();
    // How Grafana's Prometheus datasource renders query_result: the labels in Prometheus' order (sorted by name).
    let names =
        [("891418", "Acme Logistics GmbH"), ("719710", r#"Sample "Corp", organisation="x""#), ("7", "Ünïcödé & Co")];
    let lines: Vec<String> = names
        .iter()
        .map(|(id, n)| format!(r#"{{organisation="{n}",organisation_id="{id}"}} 1 1767225600000"#))
        .collect();
    let script = r#"
        const [source, lines] = [process.argv[1], JSON.parse(process.argv[2])];
        // Grafana's stringToJsRegex, then metricNamesToVariableValues' use of the groups.
        const parts = source.match(new RegExp('^/(.*?)/(g?i?m?s?y?)$'));
        const regex = new RegExp(parts[1], parts[2]);
        console.log(JSON.stringify(lines.map((line) => {
          const m = regex.exec(line);
          if (!m) return null;
          const g = m.groups || {};
          return { value: g.value ?? g.text, text: g.text ?? g.value };
        })));
    "#;
    let output = std::process::Command::new("node")
        .args(["-e", script, regex, &serde_json::to_string(&lines).unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("node is not installed ({e})"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let options: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    for ((id, n), option) in names.iter().zip(&options) {
        assert_eq!(option, &serde_json::json!({"value": id, "text": n}), "{regex}");
    }
    // The alert's link selects the organisation by id.
    assert!(artifacts::shipped_rules_text().contains("var-organisation={{ $labels.organisation_id }}"));
}

/// Firing spike alerts are drawn as annotations: a Prometheus query of ALERTS for the shipped alert, titled with
/// labels the alert really has.
#[test]
fn spike_alerts_are_annotations() {
    let (_, events) = dashboards().into_iter().find(|(n, _)| n == "emnify-events.json").unwrap();
    let list = events["annotations"]["list"].as_array().unwrap();
    let spike = list.iter().find(|a| a["target"]["expr"].as_str().is_some_and(|e| e.starts_with("ALERTS{"))).unwrap();
    assert_eq!(spike["datasource"], serde_json::json!({"type": "prometheus", "uid": "${datasource}"}));
    assert_eq!(spike["enable"], true);
    let expr = spike["target"]["expr"].as_str().unwrap();
    assert!(
        expr.contains(r#"alertname="EmnifyGenericDisconnectSpike""#)
            && expr.contains(r#"organisation_id=~"$organisation""#)
    );
    let alert = artifacts::rules_in(&artifacts::shipped_rules_text())
        .into_iter()
        .find(|r| r.alert && r.name == "EmnifyGenericDisconnectSpike")
        .expect("the alert the annotation shows is shipped");
    // organisation and organisation_id come from the alert's expression, severity from its labels.
    assert!(alert.expr.contains("group_left (organisation)") && alert.expr.contains("on (organisation_id)"));
    let doc = artifacts::yaml(artifacts::RULES_FILES[1]);
    let rule = doc["groups"][0]["rules"].as_array().unwrap().iter().find(|r| r["alert"] == alert.name).unwrap();
    assert!(rule["labels"]["severity"].is_string());
    for field in ["titleFormat", "textFormat"] {
        let format = spike[field].as_str().unwrap();
        for label in format.split("{{").skip(1).map(|s| s.split("}}").next().unwrap()) {
            assert!(["organisation", "organisation_id", "severity"].contains(&label), "{field}: {label}");
        }
    }
}

/// The spike panel names its threshold lines in the legend and styles them apart: the alert threshold (dashed
/// red, per organisation) and the no-baseline threshold of 100 (dotted orange).
#[test]
fn spike_panel_names_and_styles_both_thresholds() {
    let (_, events) = dashboards().into_iter().find(|(n, _)| n == "emnify-events.json").unwrap();
    let panel = panels(&events).into_iter().find(|p| p["id"] == 6).unwrap();
    let legends: Vec<&str> =
        panel["targets"].as_array().unwrap().iter().map(|t| t["legendFormat"].as_str().unwrap()).collect();
    assert_eq!(legends, ["{{organisation}}", "alert threshold {{organisation}}", "no-baseline threshold (100)"]);
    assert_eq!(panel["targets"][2]["expr"], "vector(100)");
    let threshold_expr = panel["targets"][1]["expr"].as_str().unwrap();
    assert!(threshold_expr.starts_with("clamp_min(3 * organisation:emnify_generic_events:expected_increase10m{"));
    let overrides = panel["fieldConfig"]["overrides"].as_array().unwrap();
    let style = |matcher: &str| {
        let o = overrides.iter().find(|o| o["matcher"]["options"] == matcher).unwrap_or_else(|| panic!("{matcher}"));
        let prop =
            |id: &str| o["properties"].as_array().unwrap().iter().find(|p| p["id"] == id).unwrap()["value"].clone();
        (prop("color")["fixedColor"].clone(), prop("custom.lineStyle"))
    };
    let (alert_color, alert_line) = style("^alert threshold.*");
    let (none_color, none_line) = style("no-baseline threshold (100)");
    assert_eq!((alert_color, none_color), ("red".into(), "orange".into()));
    assert_ne!(alert_line, none_line);
    assert_eq!(
        panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"], "off",
        "no unnamed threshold line"
    );
}

/// A 10-minute count sits beside 10-minute counts, never beside a per-second rate: in a row of the grid, a
/// 10-minute-count panel has only 10-minute-count neighbours, and counts (unit `short`) stand beside rates
/// (events, operations or requests per second) only where every title says which it is.
#[test]
fn panels_side_by_side_share_their_units() {
    let rate_units = ["eps", "ops", "reqps"];
    let mut rows_checked = 0;
    for (name, dashboard) in dashboards() {
        let mut by_row: std::collections::BTreeMap<u64, Vec<&serde_json::Value>> = Default::default();
        for panel in panels(&dashboard).into_iter().filter(|p| p["type"] == "timeseries") {
            by_row.entry(panel["gridPos"]["y"].as_u64().unwrap()).or_default().push(panel);
        }
        for (y, row) in by_row {
            rows_checked += 1;
            let titles: Vec<&str> = row.iter().map(|p| p["title"].as_str().unwrap()).collect();
            let ten_minute = titles.iter().filter(|t| t.contains("10-minute")).count();
            assert!(ten_minute == 0 || ten_minute == titles.len(), "{name} row {y}: {titles:?}");
            let unit = |p: &&serde_json::Value| p["fieldConfig"]["defaults"]["unit"].as_str().unwrap().to_string();
            let rates = row.iter().filter(|p| rate_units.contains(&unit(p).as_str())).count();
            let counts = row.iter().filter(|p| unit(p) == "short").count();
            if rates > 0 && counts > 0 {
                let says = |t: &&str| t.contains("per second") || t.contains("per interval") || t.contains("10-minute");
                assert!(titles.iter().all(says), "{name} row {y}: a rate beside a count: {titles:?}");
            }
        }
    }
    assert!(rows_checked >= 10);
}

/// One wording for an organisation without an expected count, everywhere it is mentioned.
#[test]
fn the_no_baseline_period_has_one_wording() {
    const WORDING: &str = "no baseline yet (no history between 25h and 1h ago)";
    let readme = std::fs::read_to_string(artifacts::repo_path("dashboards/README.md")).unwrap();
    let mut texts = vec![("dashboards/README.md".to_string(), readme)];
    for (name, dashboard) in dashboards() {
        texts.push((name, dashboard.to_string()));
    }
    let mut mentions = 0;
    for (name, text) in texts {
        let text = text.replace("\\n", " ").split_whitespace().collect::<Vec<_>>().join(" ");
        for (i, _) in text.match_indices("baseline yet") {
            mentions += 1;
            assert!(
                text[i.saturating_sub(3)..].starts_with(WORDING),
                "{name}: {}",
                &text[i.saturating_sub(40)..(i + 80).min(text.len())]
            );
        }
        assert!(!text.contains("without a baseline") && !text.contains("no baseline ("), "{name}: another wording");
    }
    assert!(mentions >= 3, "{mentions} mentions");
}

/// dashboards/README.md describes every panel: each title appears there in bold.
#[test]
fn the_dashboards_readme_names_every_panel() {
    let readme = std::fs::read_to_string(artifacts::repo_path("dashboards/README.md")).unwrap();
    for (name, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap();
            assert!(
                readme.contains(&format!("**{title}**")),
                "dashboards/README.md does not describe {name} / {title}"
            );
        }
        for v in dashboard["templating"]["list"].as_array().unwrap() {
            assert!(readme.contains(&format!("`{}`", v["name"].as_str().unwrap())), "{name}: variable {}", v["name"]);
        }
    }
}
