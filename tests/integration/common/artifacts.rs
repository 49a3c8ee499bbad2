//! Reads the shipped dashboards, Prometheus rules and Grafana alert files, and pulls out their PromQL.

use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Every dashboard in `dashboards/`, as `(file name, JSON)`.
pub fn dashboards() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo_path("dashboards")).expect("dashboards/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).expect("readable");
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            out.push((name, json));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no dashboards found");
    out
}

/// Every panel of a dashboard, panels inside collapsed rows included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().map(Vec::as_slice).unwrap_or_default() {
        out.push(panel);
        for inner in panel["panels"].as_array().map(Vec::as_slice).unwrap_or_default() {
            out.push(inner);
        }
    }
    out
}

/// One PromQL query a dashboard runs.
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    pub dashboard: String,
    pub panel: String,
    pub expr: String,
}

/// The queries of every panel target and every query variable (`label_values(X, l)` becomes `X`).
pub fn dashboard_queries() -> Vec<DashboardQuery> {
    let mut out = Vec::new();
    for (name, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or("").to_string();
            for target in panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default() {
                if let Some(expr) = target["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                    out.push(DashboardQuery { dashboard: name.clone(), panel: title.clone(), expr: expr.to_string() });
                }
            }
        }
        for variable in dashboard["templating"]["list"].as_array().map(Vec::as_slice).unwrap_or_default() {
            if variable["type"] != "query" {
                continue;
            }
            let query = variable["query"].as_str().or_else(|| variable["query"]["query"].as_str()).unwrap_or("");
            if let Some(selector) = label_values_selector(query) {
                let panel = format!("variable {}", variable["name"].as_str().unwrap_or("?"));
                out.push(DashboardQuery { dashboard: name.clone(), panel, expr: selector });
            }
        }
    }
    out
}

/// `label_values(metric{...}, label)` → `metric{...}`; `label_values(label)` has no selector.
fn label_values_selector(query: &str) -> Option<String> {
    let inner = query.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, _label) = inner.rsplit_once(',')?;
    Some(selector.trim().to_string())
}

/// Replaces Grafana's variables with values Prometheus accepts: ranges for the interval variables, `.*` for the rest.
pub fn substitute(expr: &str, rate_interval: &str, range: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').expect("closed ${...}");
            (braced[..end].split(':').next().unwrap_or(""), end + 2)
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..end], end)
        };
        out.push_str(match name {
            "__rate_interval" | "__interval" => rate_interval,
            "__range" => range,
            _ => ".*",
        });
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// One rule of a Prometheus rule file.
#[derive(Debug, Clone)]
pub struct Rule {
    pub group: String,
    /// The `record:` or `alert:` name.
    pub name: String,
    pub alert: bool,
    pub expr: String,
}

/// The recording rules, then the Prometheus alerts.
pub const RULES_FILES: [&str; 2] =
    ["deploy/prometheus/emnify-recording-rules.yml", "deploy/prometheus/emnify-alert-rules.yml"];
pub const RULE_TESTS_FILE: &str = "deploy/prometheus/emnify-rules.test.yml";
pub const GRAFANA_ALERTS_FILE: &str = "deploy/grafana/provisioning/alerting/emnify-alerts.yml";

pub fn yaml(relative: &str) -> Value {
    let text = std::fs::read_to_string(repo_path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"))
}

/// The rules of a rule file given as text.
pub fn rules_in(text: &str) -> Vec<Rule> {
    let doc: Value = serde_yaml_ng::from_str(text).expect("rules are valid YAML");
    let mut out = Vec::new();
    for group in doc["groups"].as_array().expect("groups") {
        let group_name = group["name"].as_str().expect("group name").to_string();
        for rule in group["rules"].as_array().expect("rules") {
            let (name, alert) = match (rule["record"].as_str(), rule["alert"].as_str()) {
                (Some(r), None) => (r, false),
                (None, Some(a)) => (a, true),
                _ => panic!("a rule needs exactly one of record/alert: {rule}"),
            };
            let expr = rule["expr"].as_str().expect("expr").trim().to_string();
            out.push(Rule { group: group_name.clone(), name: name.to_string(), alert, expr });
        }
    }
    out
}

/// Both shipped rule files as one (their groups in one list), for tools that take a single file.
pub fn shipped_rules_text() -> String {
    let mut groups = Vec::new();
    for file in RULES_FILES {
        groups.extend(yaml(file)["groups"].as_array().expect("groups").iter().cloned());
    }
    serde_yaml_ng::to_string(&serde_json::json!({ "groups": groups })).expect("rules serialise")
}

/// The PromQL of every Grafana-managed alert rule, as `(rule uid, expr)`.
pub fn grafana_alert_queries() -> Vec<(String, String)> {
    let doc = yaml(GRAFANA_ALERTS_FILE);
    let mut out = Vec::new();
    for group in doc["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let uid = rule["uid"].as_str().expect("uid").to_string();
            for query in rule["data"].as_array().expect("data") {
                if query["datasourceUid"] == "__expr__" {
                    continue;
                }
                let expr = query["model"]["expr"].as_str().expect("a Prometheus query has model.expr");
                out.push((uid.clone(), expr.trim().to_string()));
            }
        }
    }
    out
}

/// Metric names (and recording-rule names) an expression reads.
pub fn metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "sum",
        "max",
        "min",
        "avg",
        "count",
        "rate",
        "irate",
        "increase",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "offset",
        "topk",
        "bottomk",
        "sort",
        "sort_desc",
        "histogram_quantile",
        "time",
        "clamp_min",
        "clamp_max",
        "avg_over_time",
        "max_over_time",
        "min_over_time",
        "absent",
        "absent_over_time",
        "vector",
        "scalar",
        "label_replace",
        "delta",
        "deriv",
        "changes",
        "resets",
        "bool",
        "le",
        "quantile",
        "stddev",
        "abs",
        "round",
        "ceil",
        "floor",
        "timestamp",
        "last_over_time",
        "count_over_time",
        "sum_over_time",
        "group",
        "inf",
        "nan",
    ];
    let mut names = Vec::new();
    let mut chars = expr.char_indices().peekable();
    let mut in_braces = 0;
    let mut in_string = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' => in_braces += 1,
            '}' => in_braces -= 1,
            '[' => {
                // Skip range durations like [5m].
                for (_, c) in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                }
            }
            c if in_braces == 0 && (c.is_ascii_alphabetic() || c == '_' || c == ':') => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' || d == ':' {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = &expr[i..end];
                let is_call_or_clause = expr[end..].trim_start().starts_with('(');
                let preceded_by_digit = i > 0 && expr.as_bytes()[i - 1].is_ascii_digit();
                if matches!(word, "by" | "without" | "on" | "ignoring" | "group_left" | "group_right") {
                    // Skip the label list that follows.
                    while chars.peek().is_some_and(|&(_, d)| d.is_whitespace()) {
                        chars.next();
                    }
                    if chars.peek().is_some_and(|&(_, d)| d == '(') {
                        for (_, d) in chars.by_ref() {
                            if d == ')' {
                                break;
                            }
                        }
                    }
                } else if !KEYWORDS.contains(&word) && !is_call_or_clause && !preceded_by_digit {
                    names.push(word.to_string());
                }
            }
            _ => {}
        }
    }
    names.sort();
    names.dedup();
    names
}
