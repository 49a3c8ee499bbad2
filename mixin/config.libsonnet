// The settings of the emnify-exporter mixin: the selector of the exporter's series and the thresholds
// people tune. With these defaults the mixin renders exactly the shipped files (deploy/prometheus/,
// dashboards/); tests/integration/mixin.rs keeps them equal. What each threshold does: the TUNABLES
// comment of deploy/prometheus/emnify-alert-rules.yml and docs/alerting.md, "Tuning the spike alert".
{
  _config+:: {
    // The scrape job's selector, in every rule and alert and in the dashboards' notes.
    jobSelector: 'job="emnify-exporter"',

    // EmnifyGenericDisconnectSpike: each branch's ratio to the expected count and its floor of events.
    spikeSevereRatio: 10,  // 5-minute rate > this x expected, held 2 evaluations ...
    spikeSevereMinEvents5m: 50,  // ... with at least this many events in 5 minutes
    spikeLargeRatio: 5,  // 5-minute rate > this x expected, held 5 minutes ...
    spikeLargeMinEvents10m: 20,  // ... with at least this many in 10 minutes
    spikeSustainedRatio: 3,  // 10-minute count > this x expected, held 10 minutes ...
    spikeSustainedMinEvents10m: 20,  // ... with at least this many
    spikeNoBaselineMinEvents10m: 100,  // no baseline yet: this many in 10 minutes, held 5 minutes ...
    spikeNoBaselineMinEvents5m: 500,  // ... or this many in 5 minutes, held 2 evaluations

    // EmnifyDataStreamFailed: a stream of the exporter's paused longer than this warns (Error is critical).
    dataStreamPausedSeconds: 3600,
  },
}
