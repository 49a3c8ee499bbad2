//! Restarts without loss or double counting: the exporter is SIGKILLed at random moments and restarted
//! with its `--state.file`; the final counters equal every event produced since the first start.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{blocking_get, blocking_post, blocking_total, parse_exposition, sum, Process};
use emnify_exporter::rng::SplitMix64;

fn start_exporter(sim: &str, state: &str) -> (Process, String) {
    let process = Process::start(
        &[
            "--emnify.api-url",
            sim,
            "--state.file",
            state,
            "--emnify.poll-interval=1s",
            "--emnify.min-request-interval=0s",
            "--emnify.page-size=50",
            // Some events reach emnify late, stamped before the first start; a lookback counts them too.
            "--emnify.lookback=5m",
            "--web.listen-address=127.0.0.1:0",
        ],
        &[("EMNIFY_APPLICATION_TOKEN", "demo-application-token")],
    );
    let metrics_url = format!("{}/metrics", process.exporter_base());
    (process, metrics_url)
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_repeats_nothing() {
    let sim = Process::start(&["simulate", "--listen=127.0.0.1:0", "--events-per-second=0", "--seed=5"], &[]);
    let sim_url = sim.simulator_base();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json").to_string_lossy().into_owned();
    let mut rng = SplitMix64::new(77);
    let mut last_seen = 0.0;
    let cycles = 6;
    for cycle in 0..cycles {
        let (exporter, metrics_url) = start_exporter(&sim_url, &state);
        let first = blocking_total(&metrics_url);
        assert!(
            first >= last_seen,
            "cycle {cycle}: the counter went back from {last_seen} to {first} across a restart"
        );
        let count = 50 + rng.below(400);
        blocking_post(&format!("{sim_url}/simulator/generate?count={count}"));
        if rng.chance(0.5) {
            blocking_post(&format!("{sim_url}/simulator/generate?count=30&generic_org={}", rng.below(3)));
        }
        // Kill at a random moment: before, during or after the polls that fetch these events.
        let kill_at = Instant::now() + Duration::from_millis(rng.below(2500));
        while Instant::now() < kill_at {
            last_seen = last_seen.max(blocking_total(&metrics_url));
            std::thread::sleep(Duration::from_millis(25));
        }
        exporter.kill();
        // Events keep happening while the exporter is down, some reaching emnify late.
        blocking_post(&format!("{sim_url}/simulator/generate?count={}", rng.below(200)));
        blocking_post(&format!("{sim_url}/simulator/generate?count=20&age=30"));
    }

    let (exporter, metrics_url) = start_exporter(&sim_url, &state);
    let truth: serde_json::Value =
        serde_json::from_str(&blocking_get(&format!("{sim_url}/simulator/truth")).1).unwrap();
    let produced = truth["total"].as_f64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while blocking_total(&metrics_url) < produced {
        if Instant::now() >= deadline {
            let text = blocking_get(&metrics_url).1;
            let interesting: Vec<&str> =
                text.lines().filter(|l| l.starts_with("emnify_") && !l.starts_with("emnify_events_total")).collect();
            panic!("only {} of {produced} counted\n{}", blocking_total(&metrics_url), interesting.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let samples = parse_exposition(&blocking_get(&metrics_url).1);
    let mismatches = common::truth_json_mismatches(&samples, &truth);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(sum(&samples, "emnify_events_total", &[]), produced, "nothing counted twice");
    println!("{cycles} SIGKILL/restart cycles: {produced} events counted exactly once");
    exporter.kill();
}

/// A corrupt state file: a clear log line, a metric and a fresh start, never a crash loop.
#[test]
fn a_corrupt_state_file_means_a_logged_fresh_start() {
    let sim = Process::start(&["simulate", "--listen=127.0.0.1:0", "--events-per-second=0"], &[]);
    let sim_url = sim.simulator_base();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, b"{\"format\": \"emnify-exporter-state\", \"version\": 1, \"cur").unwrap();
    let (exporter, metrics_url) = start_exporter(&sim_url, &state.to_string_lossy());
    let logs = exporter.drain_logs().join("\n");
    assert!(logs.contains("ignoring the state file and starting fresh"), "{logs}");
    assert!(dir.path().join("state.rejected").exists());
    // Not only in the log: the metric the alert EmnifyStateFileSetAside reads.
    let samples = parse_exposition(&blocking_get(&metrics_url).1);
    assert_eq!(sum(&samples, "emnify_state_set_aside", &[("reason", "corrupt")]), 1.0);
    blocking_post(&format!("{sim_url}/simulator/generate?count=25"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while blocking_total(&metrics_url) < 25.0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(state.exists(), "a good state file replaces the bad one");
}

/// SIGTERM (what Kubernetes sends to PID 1): a clean exit within the bound, with the last state saved,
/// so the next start continues from exactly what was served.
#[test]
fn sigterm_saves_the_last_state_and_exits_cleanly() {
    let sim = Process::start(&["simulate", "--listen=127.0.0.1:0", "--events-per-second=0"], &[]);
    let sim_url = sim.simulator_base();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (mut exporter, metrics_url) = start_exporter(&sim_url, &state.to_string_lossy());
    blocking_post(&format!("{sim_url}/simulator/generate?count=120"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while blocking_total(&metrics_url) < 120.0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    assert!(exporter.terminate(Duration::from_secs(15)).success(), "exit code 0 after SIGTERM");
    println!("stopped {:.0} ms after SIGTERM", started.elapsed().as_secs_f64() * 1000.0);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let saved_total: u64 = saved["counters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "emnify_events_total")
        .map(|c| c["value"].as_u64().unwrap())
        .sum();
    assert_eq!(saved_total, 120, "the state holds every counted event");
    let (restarted, metrics_url) = start_exporter(&sim_url, &state.to_string_lossy());
    assert_eq!(blocking_total(&metrics_url), 120.0, "the restart serves the saved counters at once");
    restarted.kill();
}

/// Where the state file's directory stops taking writes: a full small tmpfs where this process may
/// mount one (root, as in CI), else (no mount) a directory made read-only.
struct FullDisk {
    dir: std::path::PathBuf,
    mounted: bool,
}

impl FullDisk {
    fn new(under: &std::path::Path) -> FullDisk {
        let dir = under.join("volume");
        std::fs::create_dir(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            // Without the right to mount, permissions must bite: that holds for anyone but root.
            // SAFETY: geteuid only reads the process's effective user id.
            assert_ne!(unsafe { libc::geteuid() }, 0, "root that cannot mount a tmpfs cannot inject a full disk");
        }
        FullDisk { dir, mounted }
    }

    /// Fills the tmpfs (or makes the directory read-only) so the next save fails.
    fn fill(&self) {
        if self.mounted {
            use std::io::Write;
            let mut filler = std::fs::File::create(self.dir.join("filler")).unwrap();
            let block = vec![0u8; 4096];
            while filler.write_all(&block).and_then(|()| filler.sync_all()).is_ok() {}
        } else {
            set_mode(&self.dir, 0o500);
        }
    }

    fn free(&self) {
        if self.mounted {
            std::fs::remove_file(self.dir.join("filler")).unwrap();
        } else {
            set_mode(&self.dir, 0o700);
        }
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount").arg(&self.dir).status();
        } else {
            set_mode(&self.dir, 0o700);
        }
    }
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The disk under the state file fills up: saves fail loudly (metric, landing page), the published
/// counts stay as of the last good save, a SIGKILL meanwhile loses nothing, and once there is room
/// again every event is counted exactly once.
#[test]
fn a_full_disk_freezes_counts_loudly_and_loses_nothing() {
    let sim = Process::start(&["simulate", "--listen=127.0.0.1:0", "--events-per-second=0", "--seed=6"], &[]);
    let sim_url = sim.simulator_base();
    let dir = tempfile::tempdir().unwrap();
    let disk = FullDisk::new(dir.path());
    let state = disk.dir.join("state.json").to_string_lossy().into_owned();
    let (exporter, metrics_url) = start_exporter(&sim_url, &state);
    let base = metrics_url.trim_end_matches("/metrics").to_string();
    let wait_total = |url: &str, n: f64| {
        let deadline = Instant::now() + common::PATIENCE;
        while blocking_total(url) < n {
            assert!(Instant::now() < deadline, "never counted {n}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    blocking_post(&format!("{sim_url}/simulator/generate?count=100"));
    wait_total(&metrics_url, 100.0);

    disk.fill();
    blocking_post(&format!("{sim_url}/simulator/generate?count=100"));
    let deadline = Instant::now() + common::PATIENCE;
    let failures = loop {
        let samples = parse_exposition(&blocking_get(&metrics_url).1);
        let failures = sum(&samples, "emnify_state_save_failures_total", &[]);
        if failures >= 2.0 {
            break samples;
        }
        assert!(Instant::now() < deadline, "save failures never showed");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(sum(&failures, "emnify_events_total", &[]), 100.0, "published counts stay as of the last save");
    let landing = blocking_get(&format!("{base}/")).1;
    assert!(landing.contains("saving FAILS") && !landing.contains("succeeded"), "{landing}");
    assert!(
        landing.contains("<tr id=\"status\"><th>Status</th><td><strong class=\"bad\">NOT PUBLISHING</strong>"),
        "{landing}"
    );
    let logs = exporter.drain_logs().join("\n");
    assert_eq!(logs.matches("saving the state failed").count(), 1, "one log line, not one per checkpoint");
    exporter.kill();

    disk.free();
    let (restarted, metrics_url) = start_exporter(&sim_url, &state);
    wait_total(&metrics_url, 200.0);
    let truth: serde_json::Value =
        serde_json::from_str(&blocking_get(&format!("{sim_url}/simulator/truth")).1).unwrap();
    let samples = parse_exposition(&blocking_get(&metrics_url).1);
    assert_eq!(common::truth_json_mismatches(&samples, &truth), Vec::<String>::new());
    assert_eq!(sum(&samples, "emnify_events_total", &[]), 200.0, "nothing counted twice");
    restarted.kill();
}
