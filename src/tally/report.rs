//! What a batch skipped or could not read, logged as one summary line at most every few seconds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::emnify::IdText;

/// What a batch skipped, for one log line per batch rather than one per record (a push of 100,000
/// bad records would otherwise write 100,000 lines, again on every resend).
#[derive(Default)]
pub(super) struct BatchReport {
    unreadable: BTreeMap<&'static str, u64>,
    skipped: u64,
    /// An id of a skipped or unreadable record, for looking it up.
    example_id: Option<u64>,
    /// The text of an id that is not a valid one (`invalid_id`), as it appeared: such records have no
    /// `example_id`. A field of its own, so `example_id` stays a number in JSON logs.
    example_invalid_id: Option<IdText>,
}

impl BatchReport {
    pub(super) fn unreadable(&mut self, reason: &'static str, id: Option<u64>, invalid_id: Option<IdText>) {
        *self.unreadable.entry(reason).or_default() += 1;
        self.example_id = self.example_id.or(id);
        self.example_invalid_id = self.example_invalid_id.or(invalid_id);
    }

    pub(super) fn skipped(&mut self, id: u64) {
        self.skipped += 1;
        self.example_id = self.example_id.or(Some(id));
    }

    /// One warning for the batch, and at most one every [`SKIP_LOG_EVERY`]: what batches in between
    /// skipped is summed into the line written by the first batch after it (with skips or without).
    pub(super) fn log(self, limit: &mut LogLimit, now: Instant) {
        for (reason, n) in self.unreadable {
            *limit.unreadable.entry(reason).or_default() += n;
        }
        limit.skipped += self.skipped;
        limit.example_id = limit.example_id.or(self.example_id);
        limit.example_invalid_id = limit.example_invalid_id.or(self.example_invalid_id);
        let pending = !limit.unreadable.is_empty() || limit.skipped > 0;
        if !pending || limit.logged.is_some_and(|at| now.saturating_duration_since(at) < SKIP_LOG_EVERY) {
            return;
        }
        limit.logged = Some(now);
        let unreadable: Vec<String> = limit.unreadable.iter().map(|(reason, n)| format!("{reason}: {n}")).collect();
        tracing::warn!(
            unreadable = %unreadable.join(", "),
            beyond_dedup_horizon = limit.skipped,
            example_id = limit.example_id,
            example_invalid_id = limit.example_invalid_id.as_ref().map(tracing::field::display),
            "skipped records that cannot be read or are older than the dedup memory (see \
             emnify_events_unreadable_total and emnify_events_skipped_total)"
        );
        limit.unreadable.clear();
        limit.skipped = 0;
        limit.example_id = None;
        limit.example_invalid_id = None;
    }
}

/// Skips not yet logged, and when the last line about them was written.
#[derive(Default)]
pub(super) struct LogLimit {
    unreadable: BTreeMap<&'static str, u64>,
    skipped: u64,
    example_id: Option<u64>,
    example_invalid_id: Option<IdText>,
    logged: Option<Instant>,
}

/// Least time between two log lines about skipped records.
const SKIP_LOG_EVERY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod batch_report_tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::{Context, SubscriberExt};

    use std::time::Instant;

    use super::{BatchReport, LogLimit};
    use crate::emnify::IdText;

    /// The fields of each logged event, by name, as their `Debug` (for `%` values: `Display`) text.
    type Line = Vec<(&'static str, String)>;

    struct Lines(Arc<Mutex<Vec<Line>>>);

    struct Fields(Line);

    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push((field.name(), format!("{value:?}")));
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }

    fn logged(report: BatchReport) -> Vec<Line> {
        let out = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Lines(out.clone()));
        tracing::subscriber::with_default(subscriber, || report.log(&mut LogLimit::default(), Instant::now()));
        let lines = out.lock().unwrap().clone();
        lines
    }

    fn field<'l>(line: &'l Line, name: &str) -> Option<&'l str> {
        line.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_summary_names_an_invalid_id_as_it_appeared() {
        let mut report = BatchReport::default();
        report.unreadable("missing_id", None, None);
        report.unreadable("invalid_id", None, Some(IdText::new("18446744073709551616")));
        report.unreadable("invalid_id", None, Some(IdText::new("-5")));
        let lines = logged(report);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(field(&lines[0], "unreadable"), Some("invalid_id: 2, missing_id: 1"));
        assert_eq!(field(&lines[0], "example_invalid_id"), Some("18446744073709551616"));
        assert_eq!(field(&lines[0], "example_id"), None);

        // A valid id stays the number in `example_id`; a long invalid one is cut, and says so.
        let mut report = BatchReport::default();
        report.unreadable("missing_event_type", Some(7), None);
        report.unreadable("invalid_id", None, Some(IdText::new(&format!("\"{}\"", "x".repeat(40)))));
        let lines = logged(report);
        assert_eq!(field(&lines[0], "example_id"), Some("7"));
        assert_eq!(field(&lines[0], "example_invalid_id"), Some(format!("\"{}…", "x".repeat(31)).as_str()));
    }
}
