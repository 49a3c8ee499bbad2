//! The README's commands run as written: each test reads its block out of README.md, so a changed
//! flag, token or path there fails here rather than for a newcomer.

use std::time::{Duration, Instant};

use crate::common::{self, Process};

/// The `sh` block after the paragraph that starts with `lead`, as its lines.
fn block_after(lead: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(common::artifacts::repo_path("README.md")).expect("README.md");
    let start = readme.find(lead).unwrap_or_else(|| panic!("README.md has no paragraph {lead:?}"));
    let rest = &readme[start..];
    let open = rest.find("```sh\n").expect("a sh block follows") + "```sh\n".len();
    let close = rest[open..].find("```").expect("the block ends");
    rest[open..open + close].lines().map(str::to_string).collect()
}

/// One command line as a shell would split it: leading `NAME=value` words are its environment, the
/// rest its words; a `#` comment is dropped. Quoting is not supported, so the test refuses it.
fn command(line: &str) -> (Vec<(String, String)>, Vec<String>) {
    let code = line.split(" #").next().unwrap_or(line).trim();
    assert!(!code.contains(['\'', '"', '$', '&', '|']), "a plain command, without shell syntax: {line}");
    let words: Vec<&str> = code.split_whitespace().collect();
    let env_words = words.iter().take_while(|w| w.contains('=') && !w.starts_with('-')).count();
    let env = words[..env_words]
        .iter()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (env, words[env_words..].iter().map(|w| w.to_string()).collect())
}

/// The binary for the block's `emnify-exporter`, started in `dir` with the block's arguments plus `extra`.
fn start(words: &[String], env: &[(String, String)], extra: &[&str], dir: &std::path::Path) -> Process {
    assert_eq!(words[0], "emnify-exporter", "{words:?}");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_emnify-exporter"));
    cmd.current_dir(dir).arg("--log.format=json").args(&words[1..]).args(extra);
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Process::spawn(cmd)
}

/// "Before using a real token": the simulator, then the exporter against it with the token its line
/// names, counting and saving to a state directory that did not exist. Only the ports are changed:
/// the test asks for free ones and puts the simulator's into the exporter's URL.
#[test]
fn the_real_path_against_the_simulator_runs_as_written() {
    let lines = block_after("**Before using a real token**");
    assert_eq!(lines.len(), 2, "two commands: {lines:?}");
    let dir = tempfile::tempdir().unwrap();
    let (sim_env, sim_words) = command(&lines[0]);
    assert_eq!(sim_words.get(1).map(String::as_str), Some("simulate"));
    let simulator = start(&sim_words, &sim_env, &["--listen", "127.0.0.1:0"], dir.path());
    let up = simulator.wait_for_log("simulator listening");
    let address = up["address"].as_str().expect("the line names the address").to_string();
    let token = up["token"].as_str().expect("the line names the token").to_string();
    assert!(up["try_it"].as_str().is_some_and(|t| t.contains(&format!("--emnify.api-url http://{address}"))), "{up}");

    let (env, words) = command(&lines[1]);
    assert!(env.contains(&("EMNIFY_APPLICATION_TOKEN".to_string(), token)), "the README uses the token the line names");
    let default_url = "http://127.0.0.1:9854";
    assert!(words.iter().any(|w| w == default_url), "the README names the simulator's default address: {words:?}");
    let words: Vec<String> =
        words.into_iter().map(|w| if w == default_url { format!("http://{address}") } else { w }).collect();
    let mut exporter = start(&words, &env, &["--web.listen-address", "127.0.0.1:0"], dir.path());
    let metrics = format!("{}/metrics", exporter.exporter_base());
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::blocking_total(&metrics) == 0.0 {
        assert!(Instant::now() < deadline, "nothing counted from the simulator within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(exporter.terminate(Duration::from_secs(15)).success());
    let state = words.iter().skip_while(|w| *w != "--state.file").nth(1).expect("the README keeps a state file");
    assert!(dir.path().join(state).is_file(), "the state was saved in {state}, its directory made");
    simulator.kill();
}
