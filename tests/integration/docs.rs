//! The operator's documentation agrees with the binary: every flag and variable documented, no flag
//! or variable named that the exporter does not have, and the README short and in the operator's order.

use std::collections::BTreeSet;

use clap::CommandFactory;
use emnify_exporter::config::{Cli, RENAMED_ENV, TOKEN_ENV, WEBHOOK_PASSWORD_ENV, WEBHOOK_SECRET_ENV};

fn read(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The README and every page under docs/.
fn pages() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("docs/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    names.sort();
    names.insert(0, "README.md".into());
    names.into_iter().map(|n| (n.clone(), read(&n))).collect()
}

/// Every flag (`--long`) and the variable it reads, for the exporter and for `simulate`.
fn flags() -> Vec<(String, String)> {
    let cmd = Cli::command();
    let simulate = cmd.find_subcommand("simulate").expect("simulate").clone();
    cmd.get_arguments()
        .chain(simulate.get_arguments())
        .filter_map(|a| Some((a.get_long()?.to_string(), a.get_env()?.to_string_lossy().into_owned())))
        .collect()
}

/// Words in `text` that start with `prefix` and go on with `[A-Za-z0-9_.-]`.
fn words_with(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at + prefix.len()..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c))).unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            found.insert(format!("{prefix}{}", tail[..end].trim_end_matches(['.', '-'])));
        }
        rest = &tail[end..];
    }
    found
}

/// docs/configuration.md lists every flag with its environment variable.
#[test]
fn configuration_reference_lists_every_flag_and_variable() {
    let reference = read("docs/configuration.md");
    for (long, env) in flags() {
        assert!(reference.contains(&format!("--{long}")), "docs/configuration.md lacks --{long}");
        assert!(reference.contains(&env), "docs/configuration.md lacks {env} (--{long})");
    }
    for (old, new) in RENAMED_ENV {
        assert!(reference.contains(old) && reference.contains(new), "the rename {old} → {new} is not documented");
    }
    for secret in
        ["EMNIFY_APPLICATION_TOKEN", "EMNIFY_EXPORTER_WEBHOOK_SECRET", "EMNIFY_EXPORTER_WEBHOOK_BASIC_AUTH_PASSWORD"]
    {
        assert!(reference.contains(secret), "docs/configuration.md lacks {secret}");
    }
}

/// No page names a flag of the exporter's groups, or an `EMNIFY_` variable, that the exporter does not have.
#[test]
fn no_page_names_a_flag_or_variable_that_does_not_exist() {
    let flags = flags();
    let known_flags: BTreeSet<String> = flags.iter().map(|(l, _)| format!("--{l}")).collect();
    let mut known_env: BTreeSet<String> = flags.iter().map(|(_, e)| e.clone()).collect();
    known_env.extend(RENAMED_ENV.iter().map(|(old, _)| old.to_string()));
    known_env.extend([TOKEN_ENV, WEBHOOK_SECRET_ENV, WEBHOOK_PASSWORD_ENV].map(String::from));
    // Prometheus has --web.* and --log.* flags of its own; the exporter's other groups are its alone.
    let ours = ["--emnify.", "--state.", "--ingest.", "--webhook.", "--metrics."];
    let mut problems = Vec::new();
    for (name, text) in pages() {
        for flag in words_with(&text, "--") {
            if ours.iter().any(|g| flag.starts_with(g)) && !known_flags.contains(&flag) {
                problems.push(format!("{name}: {flag} is no flag"));
            }
        }
        for variable in words_with(&text, "EMNIFY_") {
            // The SDK's, the tests' and the release scripts' own variables are not the exporter's.
            let foreign = [
                "EMNIFY_SDK_",
                "EMNIFY_TEST_",
                "EMNIFY_EXPORTER_REVISION",
                "EMNIFY_EXPORTER_BRANCH",
                "EMNIFY_EXPORTER_RUSTC_VERSION",
            ];
            let wildcard = variable.ends_with('_') || variable.ends_with('*');
            if !wildcard && !foreign.iter().any(|f| variable.starts_with(f)) && !known_env.contains(&variable) {
                problems.push(format!("{name}: {variable} is read by nothing"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The README is a quick start: short, the two set-up commands first, then the operator's path, and
/// it links every page under docs/. docs/development.md starts with the same two commands.
#[test]
fn readme_is_a_short_quick_start_linking_the_docs() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(lines <= 260, "README.md has {lines} lines; the rest belongs in docs/");
    let demo = "cargo run --release -- --demo";
    let tests = "scripts/test";
    let first_block = readme.split("```").nth(1).expect("a code block");
    assert!(first_block.contains(demo) && first_block.contains(tests), "the first code block: {first_block}");
    let development = read("docs/development.md");
    let first_block = development.split("```").nth(1).expect("a code block in docs/development.md");
    assert!(first_block.contains(demo) && first_block.contains(tests), "docs/development.md: {first_block}");
    for (name, _) in pages().into_iter().skip(1) {
        assert!(readme.contains(&format!("]({name})")), "README.md does not link {name}");
    }
    let headings: Vec<&str> = readme.lines().filter(|l| l.starts_with("## ")).collect();
    let position = |word: &str| headings.iter().position(|h| h.to_lowercase().contains(word));
    let order = ["install", "run", "scrape", "dashboard", "alert", "kubernetes", "secur", "troubleshoot"];
    let found: Vec<(usize, &str)> = order.iter().filter_map(|w| position(w).map(|p| (p, *w))).collect();
    assert_eq!(found.len(), order.len(), "README sections for each step ({order:?}): {headings:?}");
    assert!(found.windows(2).all(|w| w[0].0 <= w[1].0), "in the operator's order: {headings:?}");
    for image in ["docs/images/prometheus-generic-burst.png", "docs/images/landing-page.png"] {
        assert!(readme.contains(image), "README.md shows no {image}");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(image);
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{image}: {e}"));
        assert_eq!(&png[..4], b"\x89PNG", "{image}");
    }
}

/// The README's Alerts section names every shipped alert, so an operator reading it knows what can page.
#[test]
fn the_readme_names_every_alert() {
    let rules = read("deploy/prometheus/emnify-alert-rules.yml");
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).map(str::trim).collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    let readme = read("README.md");
    let section = readme.split("\n## Alerts").nth(1).and_then(|s| s.split("\n## ").next()).expect("## Alerts");
    let missing: Vec<&&str> = alerts.iter().filter(|a| !section.contains(&format!("`{a}`"))).collect();
    assert!(missing.is_empty(), "README.md's Alerts section does not name {missing:?}");
}

/// The README's Prometheus scrape configuration is valid for Prometheus itself.
#[test]
fn the_readme_scrape_config_passes_promtool() {
    let readme = read("README.md");
    let block = readme
        .split("```yaml")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("scrape_configs:"))
        .expect("a scrape config in the README");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, block).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "config", "--syntax-only"])
        .arg(&file)
        .output()
        .expect("promtool is installed by scripts/test");
    assert!(
        out.status.success(),
        "promtool check config:\n{block}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
