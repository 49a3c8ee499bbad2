//! Counting a batch of events into `emnify_events_total`: one lock of the handle cache per batch.

use super::*;

/// Counts new events for [`EventMetrics::recorder`].
pub struct EventRecorder<'a> {
    pub(super) metrics: &'a EventMetrics,
    pub(super) handles: MutexGuard<'a, HandleCache>,
    pub(super) counted: u64,
    pub(super) newest_millis: Option<i64>,
}

impl EventRecorder<'_> {
    /// Counts one event, already known to be new; `time_millis` is its time as the tally settled it (see
    /// `tally::Origin`), for `emnify_last_event_timestamp_seconds`.
    pub fn record(&mut self, event: &Event<'_>, time_millis: Option<i64>) {
        let metrics = self.metrics;
        let mut key = EventKey {
            event_type: Some(event.event_type_id),
            source: event.source_id,
            severity: event.severity_id,
            organisation: OrgKey::of(event.organisation_id),
            alert: event.alert,
        };
        // The fast path: a label set of an admitted organisation seen before. Otherwise the organisation
        // is admitted under the limit, or its event goes to the overflow series (cached per label set
        // there, so an organisation beyond the limit costs no memory of its own).
        if !self.handles.contains_key(&key) {
            key.organisation = metrics.names.admit(event.organisation_id, event.organisation_name.as_deref());
            if key.organisation == OrgKey::Overflow {
                metrics.note_over_limit(event.organisation_id);
            }
            // The same for an event type without a name: admitted under its limit, or the overflow.
            key.event_type = metrics.names.admit_type(event.event_type_id);
            if key.event_type.is_none() {
                metrics.note_over_type_limit(event.event_type_id);
            }
        }
        let series = &mut *self.handles;
        let h = match series.get_mut(&key) {
            Some(h) => h,
            None => {
                let created = metrics.resolve(key);
                series.entry(key).or_insert(created)
            }
        };
        // A name differing from the last one this label set saw may be a rename; an event without a
        // name says nothing about it.
        // Only what a label keeps of the name is compared and stored: a 30 MB name costs its label's length.
        if let (OrgKey::Id(id), Some(name)) = (key.organisation, event.organisation_name.as_deref()) {
            let name = metrics.names.bounded_str(name);
            if h.last_org_name.as_deref() != Some(name) {
                h.last_org_name = Some(name.into());
                // Its event series keep their first name (see `LabelNames::organisation`).
                metrics.org_info.set(id, name);
            }
        }
        h.events.inc();
        let exemplar = time_millis.or(event.timestamp_millis).map(|timestamp_millis| Exemplar {
            event_id: event.id,
            endpoint_id: event.endpoint_id,
            iccid: event.iccid,
            timestamp_millis,
        });
        if let Some(exemplar) = exemplar {
            h.exemplar.offer(exemplar);
        }
        if let Some(alerts) = &h.alerts {
            alerts.inc();
        }
        if event.event_type_id == GENERIC_EVENT_TYPE {
            let cause = generic_cause(&event.description);
            let (counter, slot) = metrics.generic_counter(key.organisation, cause);
            counter.inc();
            if let Some(exemplar) = exemplar {
                slot.offer(exemplar);
            }
        }
        self.counted += 1;
        if let Some(ts) = time_millis {
            self.newest_millis = Some(self.newest_millis.map_or(ts, |n| n.max(ts)));
        }
    }
}

impl Drop for EventRecorder<'_> {
    /// Settles the batch's totals once rather than per event.
    fn drop(&mut self) {
        self.metrics.counted.inc_by(self.counted);
        if let Some(ts) = self.newest_millis {
            let secs = ts as f64 / 1000.0;
            if secs > self.metrics.last_event.get() {
                self.metrics.last_event.set(secs);
            }
        }
    }
}
