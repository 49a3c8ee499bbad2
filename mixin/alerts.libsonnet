// The alert rules (deploy/prometheus/emnify-alert-rules.yml, whose comments explain each one), with
// the job selector and the spike alert's thresholds from the config.
{
  prometheusAlerts+:: {
    local c = $._config,
    groups+: [
      {
        name: "emnify-alerts",
        rules: [
          {
            alert: "EmnifyGenericDisconnectSpike",
            expr: |||
              (
                organisation:emnify_generic_events:increase10m
                and on (organisation_id)
                  (
                      (
                          min_over_time(organisation:emnify_generic_events:spike_ratio5m[2m]) > %(spikeSevereRatio)s
                        and on (organisation_id)
                          organisation:emnify_generic_events:increase5m >= %(spikeSevereMinEvents5m)s
                      )
                    or
                      (
                          min_over_time(organisation:emnify_generic_events:spike_ratio5m[5m]) > %(spikeLargeRatio)s
                        and on (organisation_id)
                          organisation:emnify_generic_events:increase10m >= %(spikeLargeMinEvents10m)s
                      )
                    or
                      (
                          min_over_time(organisation:emnify_generic_events:spike_ratio10m[9m]) > %(spikeSustainedRatio)s
                        and on (organisation_id)
                          organisation:emnify_generic_events:increase10m >= %(spikeSustainedMinEvents10m)s
                      )
                    or
                      (
                          (
                              min_over_time(organisation:emnify_generic_events:increase10m[5m]) >= %(spikeNoBaselineMinEvents10m)s
                            or
                              min_over_time(organisation:emnify_generic_events:increase5m[2m]) >= %(spikeNoBaselineMinEvents5m)s
                          )
                        unless on (organisation_id)
                          organisation:emnify_generic_events:expected_increase10m
                      )
                  )
              )
              * on (organisation_id) group_left (organisation)
                (
                    organisation:emnify_organisation:info
                  or on (organisation_id)
                    label_replace(
                      0 * organisation:emnify_generic_events:increase10m + 1,
                      "organisation", "$1", "organisation_id", "(.+)"
                    )
                )
            ||| % c,
            'for': "1m",
            labels: {
              severity: "warning",
            },
            annotations: {
              summary: "Spike of emnify Generic events (data sessions disconnected by throttling or a quota update).",
              dashboard: "https://grafana.example.com/d/emnify-events/emnify-events?var-organisation={{ $labels.organisation_id }}",
              portal: "https://portal.emnify.com/events?organisation={{ $labels.organisation_id }}&event_type=0",
              description: std.strReplace("Organisation {{ $labels.organisation }} (id {{ $labels.organisation_id }}) had {{ printf \"%.0f\" $value }} Generic events in the last 10 minutes, {{ with printf \"organisation:emnify_generic_events:expected_increase10m{organisation_id='%s'}\" $labels.organisation_id | query -}} {{ with first . }}against {{ printf \"%.1f\" .Value }} expected for this time of day (the largest of its average over the day before the last hour, this time yesterday and this time a week ago){{ end }} {{- else -}} and it has no baseline yet (no history between 25h and 1h ago), so the absolute threshold of NO_BASELINE_MIN applied {{- end }}. {{- with printf \"sort_desc(organisation_cause:emnify_generic_events:increase10m{organisation_id='%s'} > 0)\" $labels.organisation_id | query }} By cause: {{ range $i, $s := . }}{{ if $i }}, {{ end }}{{ $s.Labels.cause }} {{ printf \"%.0f\" $s.Value }}{{ end }}. {{- end }}", 'NO_BASELINE_MIN', std.toString(c.spikeNoBaselineMinEvents10m)),
            },
          },
          {
            alert: "EmnifyExporterDown",
            expr: |||
              up{%(jobSelector)s} == 0
            ||| % c,
            'for': "5m",
            labels: {
              severity: "critical",
            },
            annotations: {
              summary: "emnify-exporter cannot be scraped.",
              description: "Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) for 5 minutes. No emnify events are counted, so EmnifyGenericDisconnectSpike cannot fire. Check the exporter process or pod, its logs and /-/healthy.",
            },
          },
          {
            alert: "EmnifyExporterAbsent",
            expr: |||
              absent(up{%(jobSelector)s})
            ||| % c,
            'for': "15m",
            labels: {
              severity: "critical",
            },
            annotations: {
              summary: "emnify-exporter has disappeared from Prometheus.",
              description: "Prometheus has had no target with job=\"{{ $labels.job }}\" for 15 minutes. No emnify events are counted, so EmnifyGenericDisconnectSpike cannot fire. Check that the exporter is deployed and that the scrape configuration and service discovery still find it.",
            },
          },
          {
            alert: "EmnifyPollingFailing",
            expr: |||
              emnify_up{%(jobSelector)s} == 0
            ||| % c,
            'for': "10m",
            labels: {
              severity: "warning",
            },
            annotations: {
              summary: "emnify-exporter cannot poll the emnify API.",
              description: "The last polls of {{ $labels.instance }} have failed for 10 minutes (emnify_up is 0), so its event counts lag behind emnify. Check sum by (reason) (increase(emnify_poll_errors_total[15m])) for this instance {{- with printf \"sum by (reason) (increase(emnify_poll_errors_total{job='%s', instance='%s'}[15m])) > 0\" $labels.job $labels.instance | query | sortByLabel \"reason\" }} (in the last 15 minutes: {{ range $i, $s := . }}{{ if $i }}, {{ end }}{{ $s.Labels.reason }} {{ printf \"%.0f\" $s.Value }}{{ end }}) {{- end }} and the exporter's log: auth means a wrong or revoked application token, rate_limited means emnify answers 429, timeout/connection/http_5xx point at the network or emnify.",
            },
          },
          {
            alert: "EmnifyNoRecentSuccessfulPoll",
            expr: |||
              time() - (
                  emnify_last_poll_success_timestamp_seconds{%(jobSelector)s} > 0
                or
                  process_start_time_seconds{%(jobSelector)s}
              ) > 900
            ||| % c,
            labels: {
              severity: "critical",
            },
            annotations: {
              summary: "emnify-exporter has had no successful poll of the emnify API for more than 15 minutes.",
              description: "{{ $labels.instance }} has not completed a successful poll of the emnify API for {{ humanizeDuration $value }} (or since it started, if it never has). Its event counts are frozen and EmnifyGenericDisconnectSpike cannot see new events. Check emnify_poll_errors_total by reason and the exporter's log.",
            },
          },
          {
            alert: "EmnifyStateFileNotSaved",
            expr: |||
              increase(emnify_state_save_failures_total{%(jobSelector)s}[5m]) > 0
            ||| % c,
            'for': "5m",
            labels: {
              severity: "critical",
            },
            annotations: {
              summary: "emnify-exporter cannot save its state file; its published counts are frozen.",
              description: "{{ $labels.instance }} has failed to save --state.file for at least 5 minutes ({{ printf \"%.0f\" $value }} failed saves in the last 5). Its counts on /metrics stay as of the last good save until a save works; nothing is lost meanwhile. Check the volume behind the state file (free space, read-only mount, the directory still there), the exporter's log and its landing page.",
            },
          },
          {
            alert: "EmnifyStateFileSetAside",
            expr: |||
              max_over_time(emnify_state_set_aside{%(jobSelector)s}[1h]) == 1
            ||| % c,
            labels: {
              severity: "warning",
            },
            annotations: {
              summary: "emnify-exporter set its state file aside at start; its counters restarted from zero.",
              description: "{{ $labels.instance }} found its --state.file unusable at start (reason {{ $labels.reason }}: corrupt = truncated or damaged, other_version = written by another version, other_api = the progress of another --emnify.api-url), moved it aside as *.rejected and started fresh: every counter restarted from zero, and the events between that file's last save and the start are missing (with --emnify.lookback, some are counted twice). The landing page says why and where the file went; docs/reliability.md says what to do with it. This clears an hour after the exporter restarts with a usable state file.",
            },
          },
          {
            alert: "EmnifyPushStreamSilent",
            expr: |||
              time() - emnify_last_push_timestamp_seconds{%(jobSelector)s} > 3600
                and
              emnify_last_push_timestamp_seconds{%(jobSelector)s} > 0
            ||| % c,
            labels: {
              severity: "warning",
            },
            annotations: {
              summary: "emnify-exporter has received no Data Streamer push for more than an hour.",
              description: "{{ $labels.instance }} has accepted no push for {{ humanizeDuration $value }}. Check the data stream in the emnify Portal (paused, or in Error after too many failed deliveries), that its URL still points at this exporter's webhook, and emnify_push_rejected_total by reason (unauthorized: the secret or password changed; overloaded, too_large, timeout: limits too tight).",
            },
          },
          {
            alert: "EmnifyOrganisationLimitReached",
            expr: |||
              increase(emnify_events_over_organisation_limit_total{%(jobSelector)s}[15m]) > 0
            ||| % c,
            labels: {
              severity: "warning",
            },
            annotations: {
              summary: "emnify-exporter counts some organisations under organisation_id=\"overflow\".",
              description: "{{ $labels.instance }} has series for --metrics.max-organisations organisations already; {{ printf \"%.0f\" $value }} events in the last 15 minutes came from organisations beyond that and are counted under organisation_id=\"overflow\" (never dropped). Raise --metrics.max-organisations if the token really sees that many organisations (about 7 series each), or check who pushes to the webhook if it does not.",
            },
          },
          {
            alert: "EmnifyEventTypeLimitReached",
            expr: |||
              increase(emnify_events_over_event_type_limit_total{%(jobSelector)s}[15m]) > 0
            ||| % c,
            labels: {
              severity: "warning",
            },
            annotations: {
              summary: "emnify-exporter counts some event types under event_type_id=\"overflow\".",
              description: "{{ $labels.instance }} has series for --metrics.max-unknown-event-types event types without a name already; {{ printf \"%.0f\" $value }} events in the last 15 minutes were of unnamed types beyond that and are counted under event_type_id=\"overflow\" (never dropped). emnify's catalogue names every real type: check who pushes to the webhook, or raise the limit if emnify added many types.",
            },
          },
          {
            alert: "EmnifyDataStreamFailed",
            expr: |||
              (
                  emnify_data_stream_state{%(jobSelector)s, state="error"} == 1
                or
                  (
                      emnify_data_stream_state{%(jobSelector)s, state="paused"} == 1
                    and on (job, instance, data_stream_id)
                      time() - emnify_data_stream_state_change_timestamp_seconds{%(jobSelector)s} > %(dataStreamPausedSeconds)s
                  )
              )
              * on (job, instance, data_stream_id) group_left (name)
                emnify_data_stream_info{%(jobSelector)s, ours="true"}
            ||| % c,
            'for': "5m",
            labels: {
              severity: '{{ if eq $labels.state "error" }}critical{{ else }}warning{{ end }}',
            },
            annotations: {
              summary: "emnify's Data Streamer stream of emnify-exporter is {{ $labels.state }}.",
              description: "Data stream {{ $labels.name }} (id {{ $labels.data_stream_id }}), which pushes to {{ $labels.instance }}, is {{ $labels.state }} in emnify. {{ if eq $labels.state \"error\" }}It sends nothing until it is restarted: make sure the exporter's webhook is reachable from emnify (URL, TLS certificate, the secret header), then restart the stream in the emnify Portal (Integrations, Data Streamer) or run the exporter with --watchdog.restart; emnify_data_stream_restarts_total shows its attempts. A stream that fails again after a restart is misconfigured.{{ else }}It sends nothing while paused and keeps events for up to 7 days: resume it in the emnify Portal; it delivers the held events first.{{ end }} In both mode polling counts the events meanwhile.",
            },
          },
        ],
      },
    ],
  },
}
