//! `--state.file`: the exporter's progress saved together and atomically, so a restart resumes it.
//!
//! One file holds the poll cursor, the remembered event ids and every counter
//! value, written as a whole (temporary file, fsync, rename, fsync of the
//! directory). After a restart, even a SIGKILL, the counters continue from the
//! saved values and the poller fetches everything since the saved cursor; the
//! remembered ids keep events counted before the save from being counted again.
//! A state file of ours that cannot be used is logged and set aside for a fresh start; anything else
//! at the path (a directory, another program's file) is refused, never renamed or overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::metrics::CounterValue;

/// Written into every state file, to recognise a foreign file.
const FORMAT: &str = "emnify-exporter-state";
const VERSION: u32 = 1;

/// Everything a restart needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedState {
    pub format: String,
    pub version: u32,
    /// The emnify API this progress belongs to.
    pub api_url: String,
    pub saved_at_millis: i64,
    /// End of the last successful poll window, Unix seconds.
    pub cursor: Option<i64>,
    /// Events before this (Unix ms, emnify's clock) are not counted; `None` until a first poll fixed it.
    pub floor_millis: Option<i64>,
    /// The dedup memory: `(event id, event time)`, the time in whole seconds written as milliseconds
    /// (older files with exact milliseconds load the same way), complete from `horizon_millis` on.
    pub horizon_millis: i64,
    pub ids: Vec<(u64, i64)>,
    /// Fingerprints of unreadable records already reported.
    pub unreadable: Vec<(u64, i64)>,
    pub counters: Vec<CounterValue>,
    /// Event-type names known when saved (the catalogue's and those learned from the API), so a
    /// restart names every id as before, and names series saved as `unknown` whose id got a name.
    #[serde(default)]
    pub event_types: Vec<(u32, String)>,
}

impl SavedState {
    pub fn new(api_url: &str) -> Self {
        SavedState {
            format: FORMAT.into(),
            version: VERSION,
            api_url: api_url.into(),
            saved_at_millis: crate::timefmt::now_millis(),
            cursor: None,
            floor_millis: None,
            horizon_millis: 0,
            ids: Vec::new(),
            unreadable: Vec::new(),
            counters: Vec::new(),
            event_types: Vec::new(),
        }
    }
}

/// Where the state lives and whose it is.
#[derive(Debug, Clone)]
pub struct StateStore {
    pub path: PathBuf,
    pub api_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("state file {path} is not a valid state file ({detail})")]
    Corrupt { path: String, detail: String },
    #[error("state file {path} belongs to {found}, not to {expected}")]
    Foreign { path: String, found: String, expected: String },
    #[error("cannot write state file {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("{path} cannot hold the state: {reason}")]
    Unusable { path: String, reason: String },
}

/// How far into a file the format marker must appear for it to be one this exporter wrote (it writes
/// the marker first; a hand-edited file may add white space).
const MARKER_WITHIN: usize = 64;

impl StateStore {
    pub fn new(path: impl Into<PathBuf>, api_url: &str) -> Self {
        StateStore { path: path.into(), api_url: api_url.to_string() }
    }

    fn display(&self) -> String {
        self.path.display().to_string()
    }

    /// Reads the saved state; `Ok(None)` when there is no file yet.
    pub fn read(&self) -> Result<Option<SavedState>, StateError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path: self.display(), source }),
        };
        if bytes.is_empty() {
            // Nothing saved yet (a file created ahead, e.g. by a volume's set-up).
            return Ok(None);
        }
        let state: SavedState = serde_json::from_slice(&bytes)
            .map_err(|e| StateError::Corrupt { path: self.display(), detail: e.to_string() })?;
        if state.format != FORMAT || state.version != VERSION {
            return Err(StateError::Foreign {
                path: self.display(),
                found: format!("format {} version {}", state.format, state.version),
                expected: format!("format {FORMAT} version {VERSION}"),
            });
        }
        if state.api_url != self.api_url {
            return Err(StateError::Foreign {
                path: self.display(),
                found: state.api_url,
                expected: self.api_url.clone(),
            });
        }
        Ok(Some(state))
    }

    /// Whether the path can hold the state: not a directory or anything but a regular file, in a
    /// directory that exists and takes a new file, and not another program's file (which would be
    /// overwritten). Checked at start-up, so a wrong path fails at once instead of freezing the counts.
    pub fn check(&self) -> Result<(), StateError> {
        let unusable = |reason: String| StateError::Unusable { path: self.display(), reason };
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.is_dir() => return Err(unusable("it is a directory; name a file in it".into())),
            Ok(meta) if !meta.is_file() => return Err(unusable("it is not a regular file".into())),
            Ok(_) if !self.is_ours()? => {
                return Err(unusable(
                    "it exists and is not an emnify-exporter state file; it is left as it is (move it or name \
                     another path)"
                        .into(),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(unusable(e.to_string())),
        }
        let dir = match self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => dir.to_path_buf(),
            None => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(unusable(format!("the directory {} does not exist", dir.display())));
        }
        // A save writes a temporary file beside it and renames it over: that must work.
        let probe = temp_path(&self.path);
        std::fs::write(&probe, b"").map_err(|e| unusable(format!("cannot create files in {}: {e}", dir.display())))?;
        let _ = std::fs::remove_file(&probe);
        Ok(())
    }

    /// Whether the file at the path is empty or one this exporter wrote (its format marker up front).
    fn is_ours(&self) -> Result<bool, StateError> {
        use std::io::Read;
        let mut head = Vec::with_capacity(MARKER_WITHIN);
        let file =
            std::fs::File::open(&self.path).map_err(|source| StateError::Read { path: self.display(), source })?;
        file.take(MARKER_WITHIN as u64)
            .read_to_end(&mut head)
            .map_err(|source| StateError::Read { path: self.display(), source })?;
        let marker = format!("\"{FORMAT}\"");
        Ok(head.is_empty() || head.windows(marker.len()).any(|w| w == marker.as_bytes()))
    }

    /// Reads the state for start-up. A file of ours that cannot be used (truncated, another version,
    /// another API) is logged and moved aside, and `Ok(None)` means a fresh start, so a bad file
    /// cannot cause a crash loop; anything else at the path is refused ([`StateStore::check`]).
    pub fn load(&self) -> Result<Option<SavedState>, StateError> {
        self.check()?;
        match self.read() {
            Ok(state) => Ok(state),
            Err(err) => {
                let aside = self.path.with_extension("rejected");
                let moved = std::fs::rename(&self.path, &aside).is_ok();
                tracing::error!(
                    error = %err,
                    moved_to = moved.then(|| aside.display().to_string()),
                    "ignoring the state file and starting fresh"
                );
                Ok(None)
            }
        }
    }

    /// Writes the state atomically: readers see the old file or the new one, never a mix.
    pub fn save(&self, state: &SavedState) -> Result<(), StateError> {
        let write_error = |source| StateError::Write { path: self.display(), source };
        let tmp = temp_path(&self.path);
        let bytes = serde_json::to_vec(state).map_err(|e| write_error(std::io::Error::other(e)))?;
        let mut file = std::fs::File::create(&tmp).map_err(write_error)?;
        file.write_all(&bytes).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(write_error)?;
        // The rename itself must reach the disk too.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn bad_files_of_ours_mean_a_fresh_start_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store = StateStore::new(&path, "http://api");
        for bad in
            [&b"{\"format\": \"emnify-exporter-state\", \"vers"[..], b"{\"format\":\"emnify-exporter-state\",\"versi"]
        {
            std::fs::write(&path, bad).unwrap();
            assert!(matches!(store.read(), Err(StateError::Corrupt { .. })));
            assert_eq!(store.load().unwrap(), None);
            assert!(path.with_extension("rejected").exists(), "the bad file is kept aside for inspection");
        }
        let mut other = SavedState::new("http://other-api");
        StateStore::new(&path, "http://other-api").save(&other).unwrap();
        assert!(matches!(store.read(), Err(StateError::Foreign { .. })));
        other.api_url = "http://api".into();
        other.version = 99;
        StateStore::new(&path, "http://api").save(&other).unwrap();
        assert!(matches!(store.read(), Err(StateError::Foreign { .. })));
        assert_eq!(store.load().unwrap(), None, "another version of ours: set aside");
    }

    #[test]
    fn paths_that_cannot_hold_the_state_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let unusable =
            |path: &Path| matches!(StateStore::new(path, "http://api").check(), Err(StateError::Unusable { .. }));
        assert!(unusable(dir.path()), "a directory");
        assert!(unusable(&dir.path().join("missing/state.json")), "a directory that does not exist");
        let foreign = dir.path().join("notes.txt");
        for text in [&b"\x00\xff garbage"[..], b"{\"hello\": 1}", b"precious notes"] {
            std::fs::write(&foreign, text).unwrap();
            assert!(unusable(&foreign));
            assert!(StateStore::new(&foreign, "http://api").load().is_err());
            assert_eq!(std::fs::read(&foreign).unwrap(), text, "another program's file is not touched");
        }
        assert!(!dir.path().join("notes.rejected").exists());
        let empty = dir.path().join("empty.json");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(StateStore::new(&empty, "http://api").load().unwrap(), None, "an empty file is a fresh start");
        assert!(StateStore::new(dir.path().join("new.json"), "http://api").check().is_ok());
        assert!(!dir.path().join("new.json.tmp").exists(), "the probe is cleaned up");
    }
}
