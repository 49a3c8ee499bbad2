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

use crate::metrics::{CounterValue, StateMetrics};

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
    /// Whether `floor_millis` was fixed, or checked since, on a confirmed emnify clock: only an unsettled
    /// start of counting may still move back. Files from before this field are taken as settled.
    #[serde(default = "settled")]
    pub floor_settled: bool,
    /// The payload time (Unix ms) of the newest event polls have read: after windows ran ahead on a
    /// wrong clock, reading goes back from there, across a restart too. Absent in older files.
    #[serde(default)]
    pub newest_polled_millis: Option<i64>,
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
            floor_settled: true,
            newest_polled_millis: None,
            horizon_millis: 0,
            ids: Vec::new(),
            unreadable: Vec::new(),
            counters: Vec::new(),
            event_types: Vec::new(),
        }
    }
}

fn settled() -> bool {
    true
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

/// Why a state file of ours was set aside at start-up: the `reason` of `emnify_state_set_aside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetAsideReason {
    /// It cannot be read as a state file: truncated, damaged, a field missing or of the wrong type.
    Corrupt,
    /// Written by a version of the exporter with another state format.
    OtherVersion,
    /// The progress of another `--emnify.api-url`.
    OtherApi,
}

impl SetAsideReason {
    /// The metric's label value, one of [`crate::metrics::SET_ASIDE_REASONS`].
    pub fn label(self) -> &'static str {
        match self {
            SetAsideReason::Corrupt => "corrupt",
            SetAsideReason::OtherVersion => "other_version",
            SetAsideReason::OtherApi => "other_api",
        }
    }
}

/// A state file of ours that could not be used at start-up: the exporter starts fresh, and says so.
#[derive(Debug)]
pub struct SetAside {
    pub reason: SetAsideReason,
    /// Why it could not be used (names the path; never a secret: the file holds none).
    pub error: String,
    /// Where it was moved, or why it could not be (then the first save overwrites it).
    pub moved_to: Result<PathBuf, String>,
}

impl SetAside {
    /// Makes the fresh start visible: the metrics, the landing page and the alert read this.
    pub fn record(&self, metrics: &StateMetrics) {
        let moved_to = self.moved_to.as_ref().map(|p| p.display().to_string()).map_err(String::clone);
        let now = crate::timefmt::now_millis() as f64 / 1000.0;
        metrics.record_set_aside(self.reason.label(), &self.error, moved_to, now);
    }
}

/// What [`StateStore::load`] found at the path.
#[derive(Debug)]
pub enum Loaded {
    /// No file, or an empty one: nothing saved yet, a fresh start.
    Nothing,
    /// Progress to resume.
    Resume(Box<SavedState>),
    /// A file of ours that could not be used, moved aside: a fresh start that must not go unnoticed
    /// (the counters restart from zero), see [`SetAside::record`].
    SetAside(SetAside),
}

/// What a file holds, by its content.
enum Examined {
    Usable(Box<SavedState>),
    /// Ours, but not usable by this exporter.
    Unusable(SetAsideReason, StateError),
    /// Another program's file.
    Foreign,
}

/// The two fields that say whose a JSON object is and which version wrote it; every other field is
/// skipped without being stored, so even a large file costs one pass and no allocations.
#[derive(Deserialize)]
struct Head {
    format: Option<serde_json::Value>,
    version: Option<serde_json::Value>,
}

/// Whether bytes are a state file of ours, by content rather than layout (key order, indentation:
/// `jq -S .` sorts `api_url` and `counters` before `format`). A file that parses is ours when it is a
/// JSON object whose `format` is ours; one that does not parse (truncated, damaged) is ours when it
/// still carries that `"format"` member anywhere. `Some(version)` is the version it names, if any.
fn ownership(bytes: &[u8]) -> Option<Option<u64>> {
    match serde_json::from_slice::<Head>(bytes) {
        Ok(head) => {
            // serde would also fill `Head` from a JSON array; only an object is a state file.
            let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            let ours = object && head.format.as_ref().and_then(serde_json::Value::as_str) == Some(FORMAT);
            ours.then(|| head.version.as_ref().and_then(serde_json::Value::as_u64))
        }
        Err(_) => carries_format_member(bytes).then_some(None),
    }
}

/// Whether `"format"`, JSON white space, `:`, white space and `"emnify-exporter-state"` appear anywhere.
fn carries_format_member(bytes: &[u8]) -> bool {
    const KEY: &[u8] = b"\"format\"";
    let value = format!("\"{FORMAT}\"");
    let skip_space = |mut i: usize| {
        while bytes.get(i).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            i += 1;
        }
        i
    };
    bytes.windows(KEY.len()).enumerate().filter(|(_, w)| *w == KEY).any(|(at, _)| {
        let colon = skip_space(at + KEY.len());
        bytes.get(colon) == Some(&b':') && bytes[skip_space(colon + 1)..].starts_with(value.as_bytes())
    })
}

impl StateStore {
    pub fn new(path: impl Into<PathBuf>, api_url: &str) -> Self {
        StateStore { path: path.into(), api_url: api_url.to_string() }
    }

    fn display(&self) -> String {
        self.path.display().to_string()
    }

    /// The file's bytes; `None` when there is no file or an empty one (created ahead, e.g. by a
    /// volume's set-up): nothing saved yet. Read whole once: it is parsed whole anyway.
    fn bytes(&self) -> Result<Option<Vec<u8>>, StateError> {
        match std::fs::read(&self.path) {
            Ok(bytes) if bytes.is_empty() => Ok(None),
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Read { path: self.display(), source }),
        }
    }

    /// Reads the saved state; `Ok(None)` when there is no file yet.
    pub fn read(&self) -> Result<Option<SavedState>, StateError> {
        let Some(bytes) = self.bytes()? else { return Ok(None) };
        match self.examine(&bytes) {
            Examined::Usable(state) => Ok(Some(*state)),
            Examined::Unusable(_, err) => Err(err),
            Examined::Foreign => Err(self.foreign()),
        }
    }

    /// Parses the file once as a state; only a file that does not parse is looked at again, to tell
    /// a damaged file of ours from another program's.
    fn examine(&self, bytes: &[u8]) -> Examined {
        let other_version = |version: u64| StateError::Foreign {
            path: self.display(),
            found: format!("format {FORMAT} version {version}"),
            expected: format!("format {FORMAT} version {VERSION}"),
        };
        match serde_json::from_slice::<SavedState>(bytes) {
            Ok(state) if state.format != FORMAT => Examined::Foreign,
            Ok(state) if state.version != VERSION => {
                Examined::Unusable(SetAsideReason::OtherVersion, other_version(state.version.into()))
            }
            Ok(state) if state.api_url != self.api_url => Examined::Unusable(
                SetAsideReason::OtherApi,
                StateError::Foreign { path: self.display(), found: state.api_url, expected: self.api_url.clone() },
            ),
            Ok(state) => Examined::Usable(Box::new(state)),
            Err(e) => match ownership(bytes) {
                None => Examined::Foreign,
                // Another version may have changed the fields too: its version is the better reason.
                Some(Some(version)) if version != u64::from(VERSION) => {
                    Examined::Unusable(SetAsideReason::OtherVersion, other_version(version))
                }
                Some(_) => Examined::Unusable(
                    SetAsideReason::Corrupt,
                    StateError::Corrupt { path: self.display(), detail: e.to_string() },
                ),
            },
        }
    }

    fn foreign(&self) -> StateError {
        StateError::Unusable {
            path: self.display(),
            reason: "it exists and is not an emnify-exporter state file; it is left as it is (move it or name \
                     another path)"
                .into(),
        }
    }

    /// Whether the path can hold the state: not a directory or anything but a regular file, in a
    /// directory that exists and takes a new file, and not another program's file (which would be
    /// overwritten). Checked at start-up, so a wrong path fails at once instead of freezing the counts.
    pub fn check(&self) -> Result<(), StateError> {
        self.check_place()?;
        match self.bytes()? {
            Some(bytes) if ownership(&bytes).is_none() => Err(self.foreign()),
            _ => Ok(()),
        }
    }

    /// [`StateStore::check`] without reading the file.
    fn check_place(&self) -> Result<(), StateError> {
        let unusable = |reason: String| StateError::Unusable { path: self.display(), reason };
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.is_dir() => return Err(unusable("it is a directory; name a file in it".into())),
            Ok(meta) if !meta.is_file() => return Err(unusable("it is not a regular file".into())),
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

    /// Reads the state for start-up, reading and parsing the file once. A file of ours that cannot
    /// be used (truncated, another version, another API) is logged and moved aside, and the caller
    /// starts fresh and records [`Loaded::SetAside`], so a bad file cannot cause a crash loop and the
    /// fresh start is seen; anything else at the path is refused, never touched ([`StateStore::check`]).
    pub fn load(&self) -> Result<Loaded, StateError> {
        self.check_place()?;
        let Some(bytes) = self.bytes()? else { return Ok(Loaded::Nothing) };
        let (reason, err) = match self.examine(&bytes) {
            Examined::Usable(state) => return Ok(Loaded::Resume(state)),
            Examined::Foreign => return Err(self.foreign()),
            Examined::Unusable(reason, err) => (reason, err),
        };
        let aside = self.path.with_extension("rejected");
        let moved_to = match std::fs::rename(&self.path, &aside) {
            Ok(()) => Ok(aside),
            Err(e) => Err(format!("cannot move it to {}: {e}", aside.display())),
        };
        tracing::error!(
            error = %err,
            reason = reason.label(),
            moved_to = moved_to.as_ref().ok().map(|p| p.display().to_string()),
            not_moved = moved_to.as_ref().err(),
            "ignoring the state file and starting fresh: every counter restarts from zero (see \
             emnify_state_set_aside and the landing page)"
        );
        Ok(Loaded::SetAside(SetAside { reason, error: err.to_string(), moved_to }))
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
mod tests;
