//! The state file's unit tests: round trips, rewritten files, files set aside, paths refused.

use super::*;

/// A state with something in every field, so its file is large enough for layouts to matter.
fn busy_state(api_url: &str) -> SavedState {
    let mut state = SavedState::new(api_url);
    state.cursor = Some(1_700_000_000);
    state.floor_millis = Some(1_699_999_000_000);
    state.horizon_millis = 1_699_999_500_000;
    state.ids = (1..=50).map(|id| (id, 1_699_999_600_000 + id as i64 * 1000)).collect();
    state.unreadable = vec![(77, 1_699_999_700_000)];
    state.counters = vec![CounterValue {
        name: "emnify_events_total".into(),
        labels: [("event_type".to_string(), "Generic".to_string())].into_iter().collect(),
        value: 12,
    }];
    state.event_types = vec![(0, "Generic".into()), (1, "Update location".into())];
    state
}

/// The file `store` saved, rewritten as `jq -S .` and `jq -S -c .` would: keys sorted (serde_json's
/// default map is a BTreeMap), pretty-printed or compact.
fn rewritten_sorted(path: &Path, pretty: bool) -> Vec<u8> {
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let text = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) };
    let text = text.unwrap();
    let (api, format) = (text.find("\"api_url\"").unwrap(), text.find("\"format\"").unwrap());
    assert!(api < format && format > 64, "the format member is neither first nor near the start: {text}");
    text.into_bytes()
}

fn set_aside(loaded: Loaded) -> SetAside {
    match loaded {
        Loaded::SetAside(aside) => aside,
        other => panic!("not set aside: {other:?}"),
    }
}

#[test]
fn saves_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path().join("state.json"), "http://api");
    assert_eq!(store.read().unwrap(), None);
    let mut state = SavedState::new("http://api");
    state.cursor = Some(42);
    state.ids = vec![(1, 10), (2, 20)];
    store.save(&state).unwrap();
    assert_eq!(store.read().unwrap(), Some(state));
    assert!(!dir.path().join("state.json.tmp").exists());
}

/// A valid file is recognised by what it holds, not by key order or layout: `jq -S .` output resumes.
#[test]
fn a_file_with_sorted_keys_or_pretty_printed_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let store = StateStore::new(&path, "http://api");
    let state = busy_state("http://api");
    for pretty in [true, false] {
        store.save(&state).unwrap();
        std::fs::write(&path, rewritten_sorted(&path, pretty)).unwrap();
        store.check().unwrap();
        match store.load().unwrap() {
            Loaded::Resume(loaded) => assert_eq!(*loaded, state, "pretty: {pretty}"),
            other => panic!("pretty: {pretty}: did not resume: {other:?}"),
        }
        assert!(!path.with_extension("rejected").exists());
    }
}

/// A damaged file of ours is set aside with its reason, wherever its format member is and however it
/// is spaced; the fresh start shows in the metrics.
#[test]
fn a_truncated_file_of_ours_is_set_aside_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let rejected = path.with_extension("rejected");
    let store = StateStore::new(&path, "http://api");
    store.save(&busy_state("http://api")).unwrap();
    let saved = std::fs::read(&path).unwrap();
    let sorted = rewritten_sorted(&path, true);
    let truncated = [
        saved[..saved.len() / 2].to_vec(),
        saved[..saved.len() - 1].to_vec(),
        // Sorted keys and cut before the end: the format member is far from the start.
        sorted[..sorted.len() - 2].to_vec(),
        b"{ \"format\" :\n\t\"emnify-exporter-state\", \"version\": 1, \"cur".to_vec(),
        // A whole object of ours, but fields are missing.
        b"{\"format\": \"emnify-exporter-state\", \"version\": 1}".to_vec(),
    ];
    for bad in truncated {
        let _ = std::fs::remove_file(&rejected);
        std::fs::write(&path, &bad).unwrap();
        store.check().unwrap();
        let aside = set_aside(store.load().unwrap());
        assert_eq!(aside.reason, SetAsideReason::Corrupt, "{}", String::from_utf8_lossy(&bad));
        assert_eq!(aside.moved_to.as_ref().ok(), Some(&rejected));
        assert!(aside.error.contains("not a valid state file"), "{}", aside.error);
        assert_eq!(std::fs::read(&rejected).unwrap(), bad, "the bad file is kept aside for inspection");
        assert!(!path.exists());
    }

    let metrics = crate::metrics::Metrics::new();
    std::fs::write(&path, &saved[..100]).unwrap();
    set_aside(store.load().unwrap()).record(&metrics.state);
    let text = String::from_utf8(metrics.encode()).unwrap();
    assert!(text.contains("emnify_state_set_aside{reason=\"corrupt\"} 1"), "{text}");
    assert!(text.contains("emnify_state_set_aside{reason=\"other_api\"} 0"), "{text}");
    let noted = metrics.status().state_set_aside.expect("the landing page learns it");
    assert_eq!((noted.reason, noted.moved_to), ("corrupt", Ok(rejected.display().to_string())));
    assert!(noted.at_unix > 1.6e9);
}

#[test]
fn other_versions_and_apis_of_ours_are_set_aside_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let store = StateStore::new(&path, "http://api");
    let mut other = busy_state("http://other-api");
    StateStore::new(&path, "http://other-api").save(&other).unwrap();
    assert!(matches!(store.read(), Err(StateError::Foreign { .. })));
    assert_eq!(set_aside(store.load().unwrap()).reason, SetAsideReason::OtherApi);
    other.api_url = "http://api".into();
    other.version = 99;
    store.save(&other).unwrap();
    assert!(matches!(store.read(), Err(StateError::Foreign { .. })));
    assert_eq!(set_aside(store.load().unwrap()).reason, SetAsideReason::OtherVersion);
    // A later version that also changed the fields: its version is the reason, not corruption.
    std::fs::write(&path, b"{\"version\": 2, \"format\": \"emnify-exporter-state\", \"progress\": {}}").unwrap();
    let aside = set_aside(store.load().unwrap());
    assert_eq!(aside.reason, SetAsideReason::OtherVersion);
    assert!(aside.error.contains("version 2"), "{}", aside.error);
    for reason in [SetAsideReason::Corrupt, SetAsideReason::OtherVersion, SetAsideReason::OtherApi] {
        assert!(crate::metrics::SET_ASIDE_REASONS.contains(&reason.label()));
    }
}

#[test]
fn paths_that_cannot_hold_the_state_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let unusable =
        |path: &Path| matches!(StateStore::new(path, "http://api").check(), Err(StateError::Unusable { .. }));
    assert!(unusable(dir.path()), "a directory");
    assert!(unusable(&dir.path().join("missing/state.json")), "a directory that does not exist");
    let foreign = dir.path().join("notes.txt");
    let mut other_format = serde_json::to_value(busy_state("http://api")).unwrap();
    other_format["format"] = "something-else".into();
    let foreign_files = [
        b"\x00\xff garbage"[..].to_vec(),
        b"{\"hello\": 1}".to_vec(),
        b"{\"format\":\"something-else\"}".to_vec(),
        serde_json::to_vec(&other_format).unwrap(),
        // They name the marker, but are not state files of ours: only a top-level object's format counts.
        b"[\"emnify-exporter-state\", 1]".to_vec(),
        b"{\"kind\": \"emnify-exporter-state\"}".to_vec(),
        b"{\"format\": \"x\", \"copy\": {\"format\": \"emnify-exporter-state\"}}".to_vec(),
        b"precious notes about \"emnify-exporter-state\" files".to_vec(),
        b"  \n".to_vec(),
    ];
    for text in foreign_files {
        std::fs::write(&foreign, &text).unwrap();
        let shown = String::from_utf8_lossy(&text).into_owned();
        assert!(unusable(&foreign), "{shown}");
        let loaded = StateStore::new(&foreign, "http://api").load();
        assert!(matches!(loaded, Err(StateError::Unusable { .. })), "{shown}: {loaded:?}");
        assert_eq!(std::fs::read(&foreign).unwrap(), text, "another program's file is not touched");
        assert!(!dir.path().join("notes.rejected").exists(), "{shown}");
    }
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, b"").unwrap();
    let loaded = StateStore::new(&empty, "http://api").load().unwrap();
    assert!(matches!(loaded, Loaded::Nothing), "an empty file is a fresh start: {loaded:?}");
    assert!(StateStore::new(dir.path().join("new.json"), "http://api").check().is_ok());
    assert!(!dir.path().join("new.json.tmp").exists(), "the probe is cleaned up");
}
